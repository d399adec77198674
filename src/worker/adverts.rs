//! What this node advertises: the eligible skills of the last scan of the skills dirs, plus
//! the skills OpenClaw's own CLI says its agent can use (when the CLI is installed), minus
//! agent skills while the local OpenClaw gateway cannot run turns (those are sent as
//! unavailable, with the reason). A skills-dir skill wins a name shared with OpenClaw's.
//!
//! Owns the scan, OpenClaw's listing, the gateway's availability and which version of the
//! lists the coordinator has. Every change bumps a version; a heartbeat sends the lists
//! when the coordinator's version is older and marks that version as sent once it is
//! accepted, so a change made while a heartbeat is in flight is sent with the next one.
//!
//! Locking: one std mutex over the state, held only for short synchronous sections; the
//! OpenClaw listing sits behind a tokio mutex because taking one awaits the CLI (only the
//! skills loop takes it).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::Context;
use super::gateway::{Availability, Gateway};
use super::openclaw::Cli;
use super::runner;
use super::skills::native::Inventory;
use super::skills::{self, Scan, Skill};
use crate::config::Config;
use crate::util::lock;

/// The lists sent to the coordinator: advertised skills and unavailable ones with the reason.
pub type Lists = (Vec<String>, BTreeMap<String, String>);

#[derive(Default)]
struct State {
    scan: Scan,
    /// OpenClaw's own skills (its CLI's listing), not shadowed by the skills dirs.
    native: Vec<Skill>,
    gateway: Option<Availability>,
    advertised: Vec<String>,
    unavailable: BTreeMap<String, String>,
    /// Bumped on every change of the lists.
    version: u64,
    /// The version the coordinator has.
    sent: Option<u64>,
    /// Problems already warned about.
    warned: HashSet<(PathBuf, String)>,
    /// The last listing error warned about.
    listing_error: Option<String>,
}

impl State {
    fn all(&self) -> impl Iterator<Item = &Skill> {
        self.scan.skills.iter().chain(self.native.iter())
    }
}

/// The skills scan, OpenClaw's listing and the gateway's state.
pub struct Adverts {
    dirs: Vec<PathBuf>,
    gateway: Gateway,
    state: Mutex<State>,
    inventory: Option<tokio::sync::Mutex<Inventory>>,
    /// Wakes the gateway loop for a probe now (a turn lost its connection).
    probe_now: Notify,
}

impl Adverts {
    pub fn new(config: &Config, gateway: Gateway) -> Adverts {
        let inventory = match Cli::from_config(config) {
            Ok(Some(cli)) => {
                tracing::info!(target: "openclaw::worker", cli = %cli.program.display(), "OpenClaw's CLI found: its skills listing decides which of OpenClaw's skills the agent has");
                let every = config.worker.openclaw_refresh_interval.get();
                Some(tokio::sync::Mutex::new(Inventory::new(cli, &config.worker.agent_id, every)))
            }
            Ok(None) => None,
            Err(why) => {
                tracing::warn!(target: "openclaw::worker", error = %why, "not using OpenClaw's CLI");
                None
            }
        };
        Adverts {
            dirs: config.worker.skills_dir.0.clone(),
            gateway,
            state: Mutex::new(State::default()),
            inventory,
            probe_now: Notify::new(),
        }
    }

    /// Rescans the skills dirs (and OpenClaw's listing when it is due); with `probe`, also
    /// asks the gateway.
    pub async fn refresh(&self, probe: bool) {
        let dirs = self.dirs.clone();
        let Ok((scan, host)) = tokio::task::spawn_blocking(move || {
            let host = skills::Host::current();
            (skills::scan(&dirs, &host), host)
        })
        .await
        else {
            return;
        };
        let native = match &self.inventory {
            Some(inventory) => {
                let mut inv = inventory.lock().await;
                inv.update(&host).await;
                self.warn_listing(inv.listing.as_ref().err());
                Some(inv.skills().iter().filter(|s| scan.get(&s.name).is_none()).cloned().collect::<Vec<_>>())
            }
            None => None,
        };
        {
            let mut st = lock(&self.state);
            for p in &scan.problems {
                if st.warned.insert((p.path.clone(), p.error.clone())) {
                    tracing::warn!(target: "openclaw::worker", file = %p.path.display(), error = %p.error, "skipping a skill file that OpenClaw skips too");
                }
            }
            st.scan = scan;
            if let Some(native) = native {
                st.native = native;
            }
        }
        // An exec-only worker has no business with the gateway (and no warning about it).
        if probe && self.has_agent_skills() {
            self.probe_gateway().await;
        }
        self.recompute();
    }

    fn warn_listing(&self, error: Option<&String>) {
        let mut st = lock(&self.state);
        if st.listing_error.as_ref() != error {
            if let Some(e) = error {
                tracing::warn!(target: "openclaw::worker", error = %e, "OpenClaw's skills listing failed; advertising the skills dirs only");
            }
            st.listing_error = error.cloned();
        }
    }

    /// An eligible skill by name (a skills-dir skill first, then OpenClaw's).
    pub fn skill(&self, name: &str) -> Option<Skill> {
        lock(&self.state).all().find(|s| s.name == name && s.eligible).cloned()
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
        {
            let mut st = lock(&self.state);
            if st.gateway.as_ref() != Some(&Availability::Unavailable(why.clone())) {
                tracing::warn!(target: "openclaw::worker", gateway = %self.gateway.url(), reason = %why, "agent skills withdrawn");
            }
            st.gateway = Some(Availability::Unavailable(why));
        }
        self.recompute();
    }

    /// Probe the gateway now rather than at the next interval.
    pub fn probe_soon(&self) {
        self.probe_now.notify_one();
    }

    /// Whether an eligible skill needs the gateway (agent skills do): it is probed only then.
    fn has_agent_skills(&self) -> bool {
        lock(&self.state).all().any(|s| runner::needs_gateway(&s.kind) && s.eligible)
    }

    async fn probe_gateway(&self) {
        let state = self.gateway.probe().await;
        let mut st = lock(&self.state);
        if st.gateway.as_ref() != Some(&state) {
            // The first state is told by the start's summary line ([`Adverts::summary`]).
            let first = st.gateway.is_none();
            match &state {
                _ if first => {}
                Availability::Ready => {
                    tracing::info!(target: "openclaw::worker", gateway = %self.gateway.url(), from = %self.gateway.origin(), agent = %self.gateway.agent_id(), "the OpenClaw gateway can run agent tasks")
                }
                Availability::Unavailable(why) => {
                    tracing::warn!(target: "openclaw::worker", gateway = %self.gateway.url(), from = %self.gateway.origin(), reason = %why, "agent skills are unavailable")
                }
            }
            st.gateway = Some(state);
        }
    }

    /// Works out what to advertise from the scan, OpenClaw's listing and the gateway.
    fn recompute(&self) {
        let mut st = lock(&self.state);
        let gateway = st.gateway.clone().unwrap_or(Availability::Unavailable("not checked yet".into()));
        let mut advertised = Vec::new();
        let mut unavailable = BTreeMap::new();
        for s in st.all().filter(|s| s.eligible && s.unadvertisable().is_none()) {
            match runner::unavailable(&s.kind, &gateway) {
                None => advertised.push(s.name.clone()),
                Some(why) => {
                    unavailable.insert(s.name.clone(), why);
                }
            }
        }
        advertised.sort();
        advertised.dedup();
        if advertised.len() > crate::model::MAX_SKILLS {
            tracing::warn!(target: "openclaw::worker", found = advertised.len(), "more eligible skills than a node may advertise; advertising the first {}", crate::model::MAX_SKILLS);
            advertised.truncate(crate::model::MAX_SKILLS);
        }
        if advertised != st.advertised || unavailable != st.unavailable {
            // The first lists are told by the start's summary line.
            if st.version > 0 {
                tracing::info!(target: "openclaw::worker", skills = ?advertised, unavailable = ?unavailable.keys().collect::<Vec<_>>(), "advertised skills changed");
            }
            st.advertised = advertised;
            st.unavailable = unavailable;
            st.version += 1;
        }
    }
}

impl Adverts {
    /// Logs, in one line, which skills can run now and why the others cannot (a WARN when
    /// an eligible skill cannot run, e.g. OpenClaw's gateway is away). Called once, after
    /// the first scan and probe: later changes have their own lines.
    pub fn log_summary(&self) {
        let (line, warn) = self.summary();
        // With agent skills, where the gateway is and where that came from (OpenClaw's
        // config file, the worker's config, or OpenClaw's defaults).
        let gateway = self.has_agent_skills().then(|| (self.gateway.url(), self.gateway.origin()));
        let (url, from) = gateway.unzip();
        let st = lock(&self.state);
        let unavailable: Vec<&String> = st.unavailable.keys().collect();
        if warn {
            tracing::warn!(target: "openclaw::worker", skills = ?st.advertised, ?unavailable, gateway = url, from = from, "{line}");
        } else {
            tracing::info!(target: "openclaw::worker", skills = ?st.advertised, gateway = url, from = from, "{line}");
        }
    }

    /// "skills: echo can run now; summarize cannot: <why>; ocr is not eligible here: bins:
    /// tesseract", and whether an eligible skill cannot run. Skills of the skills dirs are
    /// all named; of OpenClaw's own, the eligible ones (`openclaw-cluster skills` lists the
    /// rest).
    pub fn summary(&self) -> (String, bool) {
        let st = lock(&self.state);
        let mut parts = Vec::new();
        parts.push(match st.advertised.len() {
            0 => "no skill can run now".to_string(),
            _ => format!("{} can run now", some_names(&st.advertised)),
        });
        // Skills with the same reason share one clause.
        let mut why: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (name, reason) in &st.unavailable {
            why.entry(format!("cannot run: {reason}")).or_default().push(name);
        }
        for s in
            st.scan.skills.iter().filter(|s| !st.advertised.contains(&s.name) && !st.unavailable.contains_key(&s.name))
        {
            let reason = if s.disabled {
                "is turned off in OpenClaw's config (skills.entries)".to_string()
            } else if let Some(r) = s.unadvertisable() {
                format!("is not advertised: {r}")
            } else if !s.eligible {
                format!("is not eligible here: {}", s.missing.describe())
            } else {
                continue;
            };
            why.entry(reason).or_default().push(&s.name);
        }
        let warn = !st.unavailable.is_empty();
        for (reason, names) in why {
            parts.push(format!("{} {reason}", some_names(&names)));
        }
        (format!("skills: {}", parts.join("; ")), warn)
    }
}

/// "a, b, c" — or, for a long list (OpenClaw bundles dozens of skills), the first few and
/// "and N more" (`openclaw-cluster skills` lists them all).
fn some_names(names: &[impl AsRef<str>]) -> String {
    const SHOWN: usize = 6;
    let first: Vec<&str> = names.iter().take(SHOWN).map(AsRef::as_ref).collect();
    match names.len().saturating_sub(SHOWN) {
        0 => first.join(", "),
        more => format!("{} and {more} more", first.join(", ")),
    }
}

/// Rescans the skills dirs every `skills_rescan_interval` until the worker stops taking
/// tasks. What a node advertises no longer matters then, so a rescan in flight is dropped
/// rather than awaited: OpenClaw's listing (a Node process of seconds) is killed, and a
/// Ctrl+C never waits for it (issue 17: ~2 s after every Ctrl+C where OpenClaw is installed).
pub async fn skills_loop(adverts: Arc<Adverts>, ctx: Arc<Context>) {
    let every = ctx.config.worker.skills_rescan_interval.get();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = ctx.stop_taking.cancelled() => return,
        }
        tokio::select! {
            _ = adverts.refresh(false) => {}
            _ = ctx.stop_taking.cancelled() => return,
        }
    }
}

/// Probes the gateway every `gateway_check_interval` (or at once when a turn asks) while
/// there are agent skills, until the worker stops taking tasks (a probe in flight, up to
/// two 5 s requests, is dropped then, as a rescan is).
pub async fn gateway_loop(adverts: Arc<Adverts>, ctx: Arc<Context>) {
    let every = ctx.config.worker.gateway_check_interval.get();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = adverts.probe_now.notified() => {}
            _ = ctx.stop_taking.cancelled() => return,
        }
        if adverts.has_agent_skills() {
            tokio::select! {
                _ = adverts.probe_gateway() => adverts.recompute(),
                _ = ctx.stop_taking.cancelled() => return,
            }
        }
    }
}
