//! Pushed skills on a worker: each heartbeat answer says which packages this node should
//! have (`skill_packages`); the installer loop brings the managed skills folder in line —
//! fetches a missing version with the node secret (at most the package cap, refused past
//! it), checks it with the one checker and its digest, installs it through a staging
//! folder renamed into place, removes the pushed skills the list no longer names, rescans
//! so that the node advertises the change — and reports each outcome with the next
//! heartbeat (`skill_installs`), where it becomes a `skill` event.
//!
//! Where: OpenClaw's managed skills folder (`<OpenClaw state dir>/skills`) when its CLI
//! is found, so OpenClaw's own agent sees the skill too; else
//! `<worker.state_dir>/pushed-skills/<node id>`, which the worker scans as one of its
//! skills dirs.
//!
//! Invariants: nothing is written unless `worker.accept_skill_pushes` is true (a push to
//! a node that does not accept is reported as a failure saying so, once per version); only
//! skills this worker installed by push (its manifest, `pushed-skills-<node id>.json` in
//! the state dir) are ever removed; a version that failed is not tried again by this
//! process until the push names another version (a restart tries again).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::Context;
use super::adverts::Adverts;
use super::session::Session;
use super::skills::package;
use crate::config::Config;
use crate::model::{InstallOutcome, SkillInstallReport, SkillPackageRef, short_digest};
use crate::util::lock;

#[derive(Default)]
struct State {
    /// The last list a heartbeat answer gave (`None`: nothing was ever pushed).
    desired: Option<Vec<SkillPackageRef>>,
    /// What this worker installed by push: name → digest (the manifest).
    installed: BTreeMap<String, String>,
    /// Versions that failed here: not tried again by this process.
    failed: BTreeSet<(String, String)>,
    /// Outcomes not yet delivered with a heartbeat.
    reports: Vec<SkillInstallReport>,
}

/// The managed folder, the manifest and what to do next.
pub struct Installer {
    accept: bool,
    /// Where pushed skills go.
    managed: PathBuf,
    manifest: PathBuf,
    state: Mutex<State>,
    wake: Notify,
}

impl Installer {
    /// The installer for this node, with the folder its pushed skills go to; when that is
    /// not OpenClaw's, the worker must scan it (`ours` is true).
    pub fn new(config: &Config, node_id: &str) -> (Installer, bool) {
        let state_dir = config.worker_state_dir();
        let openclaw = matches!(super::openclaw::Cli::from_config(config), Ok(Some(_)));
        let (managed, ours) = if openclaw {
            let env = super::openclaw::process_env();
            (super::openclaw::locations(&env).state_dir.join("skills"), false)
        } else {
            (state_dir.join("pushed-skills").join(node_id), true)
        };
        let manifest = state_dir.join(format!("pushed-skills-{node_id}.json"));
        let installed = std::fs::read(&manifest)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BTreeMap<String, String>>(&bytes).ok())
            .unwrap_or_default();
        let installer = Installer {
            accept: config.worker.accept_skill_pushes,
            managed,
            manifest,
            state: Mutex::new(State { installed, ..Default::default() }),
            wake: Notify::new(),
        };
        (installer, ours)
    }

    /// Where pushed skills go.
    pub fn managed(&self) -> &std::path::Path {
        &self.managed
    }

    /// A heartbeat answer's list (absent: the coordinator has no pushes, or is older).
    pub fn desired(&self, list: Option<&Vec<SkillPackageRef>>) {
        let Some(list) = list else { return };
        let changed = {
            let mut st = lock(&self.state);
            let changed = st.desired.as_ref() != Some(list);
            st.desired = Some(list.clone());
            changed
        };
        // A fetch that failed for want of a link is tried again at the next answer.
        let (install, remove) = self.plan();
        if changed || !install.is_empty() || !remove.is_empty() {
            self.wake.notify_one();
        }
    }

    /// The outcomes to send with this heartbeat.
    pub fn take_reports(&self) -> Vec<SkillInstallReport> {
        std::mem::take(&mut lock(&self.state).reports)
    }

    /// The heartbeat that carried `reports` did not arrive: send them with the next.
    pub fn put_back(&self, mut reports: Vec<SkillInstallReport>) {
        let mut st = lock(&self.state);
        reports.append(&mut st.reports);
        st.reports = reports;
    }

    fn report(&self, name: &str, digest: Option<&str>, outcome: InstallOutcome, reason: Option<String>) {
        lock(&self.state).reports.push(SkillInstallReport {
            name: name.to_string(),
            digest: digest.map(str::to_string),
            outcome,
            reason,
        });
    }

    fn save_manifest(&self, installed: &BTreeMap<String, String>) {
        let text = serde_json::to_vec_pretty(installed).unwrap_or_default();
        let tmp = self.manifest.with_extension("json.tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.manifest));
        if let Err(e) = written {
            tracing::warn!(target: "openclaw::worker", file = %self.manifest.display(), error = %e, "cannot record the pushed skills; a restart may not remove them when asked");
        }
    }

    /// What to do now: versions to install and names to remove.
    fn plan(&self) -> (Vec<SkillPackageRef>, Vec<String>) {
        let st = lock(&self.state);
        let Some(desired) = &st.desired else { return (Vec::new(), Vec::new()) };
        let install = desired
            .iter()
            .filter(|p| st.installed.get(&p.name) != Some(&p.digest))
            .filter(|p| !st.failed.contains(&(p.name.clone(), p.digest.clone())))
            .cloned()
            .collect();
        let remove = st.installed.keys().filter(|n| !desired.iter().any(|p| &p.name == *n)).cloned().collect();
        (install, remove)
    }

    fn failed(&self, p: &SkillPackageRef, why: String) {
        tracing::warn!(target: "openclaw::worker", skill = %p.name, digest = %short_digest(&p.digest), error = %why, "a pushed skill was not installed");
        lock(&self.state).failed.insert((p.name.clone(), p.digest.clone()));
        self.report(&p.name, Some(&p.digest), InstallOutcome::Failed, Some(why));
    }

    /// Brings the managed folder in line with the list once; says whether anything changed.
    async fn reconcile(&self, session: &Session, node_id: &str) -> bool {
        let (install, remove) = self.plan();
        let mut changed = false;
        for p in install {
            if !self.accept {
                self.failed(
                    &p,
                    format!(
                        "this node does not accept pushed skills: set worker.accept_skill_pushes: true in its config and restart the worker to install `{}`",
                        p.name
                    ),
                );
                continue;
            }
            let Some(client) = session.current() else { return changed };
            let bytes = match client.skill_package(node_id, &p.digest, package::MAX_PACKAGE_BYTES).await {
                Ok(b) => b,
                Err(e) => {
                    // Not this version's fault: try again at the next heartbeat's answer.
                    tracing::warn!(target: "openclaw::worker", skill = %p.name, error = %e, "cannot fetch a pushed skill; trying again later");
                    continue;
                }
            };
            let (managed, name, digest) = (self.managed.clone(), p.name.clone(), p.digest.clone());
            let done = tokio::task::spawn_blocking(move || {
                let files = package::verify(&bytes, &digest).map_err(|e| e.to_string())?;
                package::install(&managed, &name, &files, &digest)
            })
            .await
            .unwrap_or_else(|e| Err(format!("the install stopped: {e}")));
            match done {
                Ok(folder) => {
                    tracing::info!(target: "openclaw::worker", skill = %p.name, digest = %short_digest(&p.digest), folder = %folder.display(), "installed a pushed skill");
                    let installed = {
                        let mut st = lock(&self.state);
                        st.installed.insert(p.name.clone(), p.digest.clone());
                        st.installed.clone()
                    };
                    self.save_manifest(&installed);
                    self.report(&p.name, Some(&p.digest), InstallOutcome::Installed, None);
                    changed = true;
                }
                Err(why) => self.failed(&p, why),
            }
        }
        for name in remove {
            let (managed, n) = (self.managed.clone(), name.clone());
            let done = tokio::task::spawn_blocking(move || package::uninstall(&managed, &n))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match done {
                Ok(()) => {
                    tracing::info!(target: "openclaw::worker", skill = %name, "removed a pushed skill");
                    let installed = {
                        let mut st = lock(&self.state);
                        st.installed.remove(&name);
                        st.installed.clone()
                    };
                    self.save_manifest(&installed);
                    self.report(&name, None, InstallOutcome::Removed, None);
                    changed = true;
                }
                Err(why) => {
                    tracing::warn!(target: "openclaw::worker", skill = %name, error = %why, "cannot remove a pushed skill");
                }
            }
        }
        changed
    }
}

/// Acts on each new list until the worker stops taking tasks: installs and removes, then
/// rescans and heartbeats at once so the coordinator hears of it.
pub async fn installer_loop(
    installer: Arc<Installer>,
    session: Arc<Session>,
    adverts: Arc<Adverts>,
    ctx: Arc<Context>,
) {
    loop {
        tokio::select! {
            _ = installer.wake.notified() => {}
            _ = ctx.stop_taking.cancelled() => return,
        }
        let changed = tokio::select! {
            changed = installer.reconcile(&session, &ctx.node_id) => changed,
            _ = ctx.stop_taking.cancelled() => return,
        };
        if changed {
            tokio::select! {
                _ = adverts.refresh(false) => {}
                _ = ctx.stop_taking.cancelled() => return,
            }
        }
        session.heartbeat_now();
    }
}
