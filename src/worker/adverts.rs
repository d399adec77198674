//! What this node advertises: the eligible skills of the last scan, minus agent skills
//! while the local OpenClaw gateway cannot run turns (those are sent as unavailable, with
//! the reason).
//!
//! Owns the scan, the gateway's availability and which version of the lists the
//! coordinator has. Every change bumps a version; a heartbeat sends the lists when the
//! coordinator's version is older and marks that version as sent once it is accepted, so a
//! change made while a heartbeat is in flight is sent with the next one.
//!
//! Locking: one std mutex, held only for short synchronous sections.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::Context;
use super::gateway::{Availability, Gateway};
use super::skills::{self, Kind, Scan, Skill};
use crate::config::Config;
use crate::util::lock;

/// The lists sent to the coordinator: advertised skills and unavailable ones with the reason.
pub type Lists = (Vec<String>, BTreeMap<String, String>);

#[derive(Default)]
struct State {
    scan: Scan,
    gateway: Option<Availability>,
    advertised: Vec<String>,
    unavailable: BTreeMap<String, String>,
    /// Bumped on every change of the lists.
    version: u64,
    /// The version the coordinator has.
    sent: Option<u64>,
    /// Problems already warned about.
    warned: HashSet<(PathBuf, String)>,
}

/// The skills scan and the gateway's state.
pub struct Adverts {
    dirs: Vec<PathBuf>,
    gateway: Gateway,
    state: Mutex<State>,
}

impl Adverts {
    pub fn new(config: &Config, gateway: Gateway) -> Adverts {
        Adverts { dirs: config.worker.skills_dir.0.clone(), gateway, state: Mutex::new(State::default()) }
    }

    /// Rescans the skills dirs; with `probe`, also asks the gateway.
    pub async fn refresh(&self, probe: bool) {
        let dirs = self.dirs.clone();
        let Ok(scan) = tokio::task::spawn_blocking(move || skills::scan(&dirs, &skills::Host::current())).await else {
            return;
        };
        {
            let mut st = lock(&self.state);
            for p in &scan.problems {
                if st.warned.insert((p.path.clone(), p.error.clone())) {
                    tracing::warn!(target: "openclaw::worker", file = %p.path.display(), error = %p.error, "skipping a skill that does not parse");
                }
            }
            st.scan = scan;
        }
        if probe {
            self.probe_gateway().await;
        }
        self.recompute();
    }

    /// An eligible skill by name.
    pub fn skill(&self, name: &str) -> Option<Skill> {
        lock(&self.state).scan.get(name).filter(|s| s.eligible).cloned()
    }

    /// The current lists with their version (for a registration, which sends them).
    pub fn lists(&self) -> (u64, Lists) {
        let st = lock(&self.state);
        (st.version, (st.advertised.clone(), st.unavailable.clone()))
    }

    /// The lists when the coordinator does not have them yet, with their version.
    pub fn unsent(&self) -> Option<(u64, Lists)> {
        let st = lock(&self.state);
        (st.sent != Some(st.version)).then(|| (st.version, (st.advertised.clone(), st.unavailable.clone())))
    }

    /// The coordinator accepted the lists of `version` (or refused them for good).
    pub fn mark_sent(&self, version: u64) {
        lock(&self.state).sent = Some(version);
    }

    /// Send the lists again with the next heartbeat (a task came for a skill we lost).
    pub fn resend(&self) {
        lock(&self.state).sent = None;
    }

    /// The agent runner found the gateway unable to run turns: withdraw agent skills now.
    pub fn gateway_unavailable(&self, why: String) {
        lock(&self.state).gateway = Some(Availability::Unavailable(why));
        self.recompute();
    }

    fn has_agent_skills(&self) -> bool {
        lock(&self.state).scan.skills.iter().any(|s| s.kind == Kind::Agent && s.eligible)
    }

    async fn probe_gateway(&self) {
        let state = self.gateway.probe().await;
        let mut st = lock(&self.state);
        if st.gateway.as_ref() != Some(&state) {
            match &state {
                Availability::Ready => {
                    tracing::info!(target: "openclaw::worker", gateway = %self.gateway.url(), "the OpenClaw gateway can run agent tasks")
                }
                Availability::Unavailable(why) => {
                    tracing::warn!(target: "openclaw::worker", gateway = %self.gateway.url(), reason = %why, "agent skills are unavailable")
                }
            }
            st.gateway = Some(state);
        }
    }

    /// Works out what to advertise from the scan and the gateway's state.
    fn recompute(&self) {
        let mut st = lock(&self.state);
        let gateway = st.gateway.clone().unwrap_or(Availability::Unavailable("not checked yet".into()));
        let mut advertised = Vec::new();
        let mut unavailable = BTreeMap::new();
        for s in st.scan.skills.iter().filter(|s| s.eligible) {
            match (&s.kind, &gateway) {
                (Kind::Exec { .. }, _) | (Kind::Agent, Availability::Ready) => advertised.push(s.name.clone()),
                (Kind::Agent, Availability::Unavailable(why)) => {
                    unavailable.insert(s.name.clone(), why.clone());
                }
            }
        }
        advertised.sort();
        if advertised.len() > crate::model::MAX_SKILLS {
            tracing::warn!(target: "openclaw::worker", found = advertised.len(), "more eligible skills than a node may advertise; advertising the first {}", crate::model::MAX_SKILLS);
            advertised.truncate(crate::model::MAX_SKILLS);
        }
        if advertised != st.advertised || unavailable != st.unavailable {
            tracing::info!(target: "openclaw::worker", skills = ?advertised, unavailable = ?unavailable.keys().collect::<Vec<_>>(), "advertised skills changed");
            st.advertised = advertised;
            st.unavailable = unavailable;
            st.version += 1;
        }
    }
}

/// Rescans the skills dirs every `skills_rescan_interval` until the worker leaves.
pub async fn skills_loop(adverts: Arc<Adverts>, ctx: Arc<Context>) {
    let every = ctx.config.worker.skills_rescan_interval.get();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = ctx.leave.cancelled() => return,
        }
        adverts.refresh(false).await;
    }
}

/// Probes the gateway every `gateway_check_interval` while there are agent skills.
pub async fn gateway_loop(adverts: Arc<Adverts>, ctx: Arc<Context>) {
    let every = ctx.config.worker.gateway_check_interval.get();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = ctx.leave.cancelled() => return,
        }
        if adverts.has_agent_skills() {
            adverts.probe_gateway().await;
            adverts.recompute();
        }
    }
}
