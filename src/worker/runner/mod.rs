//! Runners: how an attempt of a skill runs, one file per kind of skill
//! ([`super::skills::Kind`]), each with its availability check.
//!
//! - [`exec`]: the skill's command as a process tree in its folder (always available once
//!   its program is found, which the skills scan checks).
//! - [`agent`]: one turn of the local OpenClaw agent through `super::gateway` (available
//!   while the gateway can run turns).
//!
//! Every runner gets an [`Attempt`] and answers a [`ResultReport`]; the attempts loop
//! (`super::attempts`) does the rest the same way for all: the start report, streaming
//! what the runner writes to its output sink, redacting secrets from output and result,
//! the skill's permanent exit codes, and delivering the result. A new runner is a file
//! here, a variant of `Kind` (and how a skill declares it), and one arm in each `match`
//! below.

pub mod agent;
pub mod exec;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::adverts::Adverts;
use super::gateway::{Availability, Gateway};
use super::live_output::OutputSink;
use super::skills::{Kind, Skill};
use crate::config::Config;
use crate::model::{Assignment, Outcome, ResultReport};

/// One attempt as a runner sees it.
pub struct Attempt<'a> {
    pub assignment: &'a Assignment,
    /// The skill it runs, as advertised.
    pub skill: &'a Skill,
    pub node_id: &'a str,
    pub config: &'a Config,
    /// Fires on a cancel from the coordinator, or when the worker stops its tasks.
    pub cancel: CancellationToken,
    /// Where what the attempt prints goes while it runs (dropped when the runner returns).
    pub output: OutputSink,
}

/// The runners, with what they share.
pub struct Runners {
    gateway: Gateway,
    adverts: Arc<Adverts>,
}

impl Runners {
    pub fn new(gateway: Gateway, adverts: Arc<Adverts>) -> Runners {
        Runners { gateway, adverts }
    }

    /// The local OpenClaw gateway (its token is a secret to redact).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Runs the attempt with the runner of its skill's kind.
    pub async fn run(&self, attempt: Attempt<'_>) -> ResultReport {
        match &attempt.skill.kind {
            Kind::Exec { argv } => exec::run(argv, attempt).await,
            Kind::Agent => agent::run(&self.gateway, &self.adverts, attempt).await,
        }
    }
}

/// Why a skill of this kind cannot run here now, given the gateway's state (`None`: it
/// can). The worker advertises it as unavailable with this reason, and `openclaw skills`
/// shows it.
pub fn unavailable(kind: &Kind, gateway: &Availability) -> Option<String> {
    match kind {
        Kind::Exec { .. } => None,
        Kind::Agent => agent::unavailable(gateway),
    }
}

/// Whether skills of this kind need the local OpenClaw gateway (it is probed only while
/// there are such skills).
pub fn needs_gateway(kind: &Kind) -> bool {
    match kind {
        Kind::Exec { .. } => false,
        Kind::Agent => true,
    }
}

/// An assignment's time limit (the coordinator validated it; a bad value falls back to 1 h).
pub fn attempt_timeout(a: &Assignment) -> Duration {
    Duration::try_from_secs_f64(a.timeout).unwrap_or(Duration::from_secs(3600))
}

/// A report for an attempt that did not run to an answer.
pub fn failed(attempt: u32, error: String) -> ResultReport {
    ResultReport {
        attempt,
        outcome: Outcome::Failed,
        result: None,
        error: Some(error),
        duration_ms: 0,
        retry_after: None,
        permanent: false,
    }
}
