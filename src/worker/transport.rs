//! The worker's seam for a transport besides HTTP (NATS, in `crate::transport`): what the
//! worker asks of one ([`CoordinatorTransport`]), and what one may ask of the worker
//! ([`Handle`]). The worker owns both, as the coordinator owns its `WorkerTransport`: no
//! file of the worker names a transport, and a transport plugs in with one
//! [`TransportPlug`] in `crate::transport::WORKER`.
//!
//! What a transport does for the worker:
//! - **Assignments.** While [`CoordinatorTransport::carries_assignments`], the HTTP long poll
//!   pauses ([`CoordinatorTransport::paused`]) and the transport hands assignments to
//!   [`Handle::take`]; such an assignment runs only once the coordinator accepted its
//!   start report (a transport may deliver an old message again). Each (task, attempt) is
//!   held once, whichever door brought it.
//! - **Results.** [`CoordinatorTransport::send_result`] first; HTTP when the transport cannot
//!   take it. A result the transport took counts as delivered only once the coordinator
//!   confirms it has it (the attempt comes back as a cancel in a heartbeat answer); until
//!   then the attempt stays in the heartbeat's held list, and after two heartbeat answers
//!   without that confirmation the result goes over HTTP too (a repeat of a recorded
//!   result is harmless). See `super::attempts`.
//! - **Heartbeats.** It adds its part to each heartbeat (its link state, its key) and reads
//!   its part of the answer (how assignments travel until the next one).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::Context;
use super::attempts::Attempts;
use super::session::Session;
use crate::client::Client;
use crate::config::Config;
use crate::model::{Assignment, HeartbeatRequest, HeartbeatResponse, ResultReport};

/// Starts a transport's worker side when the config turns it on (`node_id` is this
/// worker's); `None` when it is off. `crate::transport::WORKER` lists one per transport.
pub type TransportPlug = fn(&Config, &str) -> Option<Arc<dyn CoordinatorTransport>>;

/// A second way between this worker and the coordinator, besides HTTP.
pub trait CoordinatorTransport: Send + Sync {
    /// Its name in logs (`via` of "task started").
    fn name(&self) -> &'static str;
    /// Adds this transport's part to a heartbeat (`secret`: the current registration's node
    /// secret, from which a transport may derive its keys).
    fn heartbeat(&self, req: &mut HeartbeatRequest, secret: &str);
    /// Reads this transport's part of a heartbeat answer.
    fn heartbeat_answer(&self, answer: &HeartbeatResponse);
    /// The coordinator refused a heartbeat as malformed, and the transport's part may be why
    /// (an older coordinator): leave it out from now on, carry nothing, and say so. True
    /// when there was something to leave out (the transport logs why), false otherwise.
    fn heartbeat_refused(&self) -> bool;
    /// Assignments come this way now: the HTTP long poll pauses.
    fn carries_assignments(&self) -> bool;
    /// For the paused poll loop: resolves when it must poll again.
    fn paused(&self) -> BoxFuture<'_, Wake>;
    /// Resolves once assignments come this way (never, if they never do).
    fn activated(&self) -> BoxFuture<'_, ()>;
    /// Sends a result for the current registration (`secret`); true once the transport took
    /// it, false when it cannot now (the worker sends it over HTTP then).
    fn send_result<'a>(&'a self, task_id: &'a str, report: &'a ResultReport, secret: &'a str) -> BoxFuture<'a, bool>;
    /// Runs until the worker leaves, handing assignments to `worker`.
    fn run(self: Arc<Self>, worker: Handle) -> BoxFuture<'static, ()>;
}

/// No transport besides HTTP: carries nothing, adds nothing. The worker always has a
/// transport, so no part of it asks whether there is one.
pub struct HttpOnly;

impl CoordinatorTransport for HttpOnly {
    fn name(&self) -> &'static str {
        "http"
    }

    fn heartbeat(&self, _req: &mut HeartbeatRequest, _secret: &str) {}

    fn heartbeat_answer(&self, _answer: &HeartbeatResponse) {}

    fn heartbeat_refused(&self) -> bool {
        false
    }

    fn carries_assignments(&self) -> bool {
        false
    }

    fn paused(&self) -> BoxFuture<'_, Wake> {
        Box::pin(std::future::ready(Wake::Http))
    }

    fn activated(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    fn send_result<'a>(&'a self, _: &'a str, _: &'a ResultReport, _: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(std::future::ready(false))
    }

    fn run(self: Arc<Self>, _worker: Handle) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Why the paused HTTP poll loop wakes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The transport no longer carries the assignments: long-poll as usual.
    Http,
    /// An assignment too large for the transport is waiting: poll once, without waiting.
    PollOnce,
}

/// How an assignment that came over a transport was taken; the transport acknowledges
/// its message, or has it delivered again, on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// This attempt is held here already (it came through the other door too).
    Held,
    /// The coordinator accepted the start report: it runs.
    Started,
    /// The coordinator no longer wants this attempt (or a newer one is held): dropped.
    Refused,
    /// The coordinator could not be asked: not run now.
    Unreachable,
    /// Every slot is taken: not run now.
    Full,
}

/// What a transport may ask of the worker.
#[derive(Clone)]
pub struct Handle {
    pub(super) ctx: Arc<Context>,
    pub(super) attempts: Arc<Attempts>,
    pub(super) session: Arc<Session>,
}

impl Handle {
    pub fn node_id(&self) -> &str {
        &self.ctx.node_id
    }

    /// Cancelled when the worker stops taking tasks.
    pub fn stop_taking(&self) -> &CancellationToken {
        &self.ctx.stop_taking
    }

    /// Cancelled when the worker leaves (after its last result).
    pub fn leaving(&self) -> &CancellationToken {
        &self.ctx.leave
    }

    /// Waits for a free slot: how many are free; `None` once the worker stops taking tasks.
    pub async fn free_slots(&self) -> Option<usize> {
        self.attempts.free_slot(&self.ctx.stop_taking).await
    }

    /// The current registration (its client carries the node secret), waiting for one;
    /// `None` once the worker stops taking tasks.
    pub async fn registered(&self) -> Option<Client> {
        self.session.wait(&self.ctx.stop_taking).await
    }

    /// An assignment from the transport: runs only once the coordinator accepts its start
    /// report (`client`: the registration to report with); the answer says what became of it.
    pub fn take(&self, a: Assignment, client: &Client) -> oneshot::Receiver<Taken> {
        self.attempts.take_confirmed(a, client)
    }

    /// Heartbeat now rather than at the next interval (the coordinator has news, such as a
    /// cancel).
    pub fn heartbeat_now(&self) {
        self.session.heartbeat_now();
    }
}
