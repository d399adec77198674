//! Pushed skills: the desired state (per skill name, the version the nodes of a selector
//! should have, and the version before for a rollback), the packages' digests and sizes
//! (their bytes live in the store only: a new package rides in the batch once, and
//! workers fetch it from the store), and each node's last failure (memory only; the
//! events keep the history). The transitions are [`Core`]'s methods below.
//!
//! Invariants: a push record names a digest whose package the store has (it is queued in
//! the same batch as the first record naming it); records are never deleted (a removed
//! push keeps its name with no digest, so nodes remove their copies and a rollback can
//! bring it back); every change records a `skill` event naming who made it.

use std::collections::{BTreeMap, BTreeSet};

use super::{Core, Draft, Error, Now};
use crate::model::{
    ErrorCode, InstallOutcome, NodeStatus, PushState, PushedNode, SkillInstallReport, SkillPackageRef, SkillPush,
    SkillPushList, SkillSelector, SkillTransition, Timestamp, short_digest,
};

/// A push as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRecord {
    pub name: String,
    /// `None`: removed from every chosen node.
    pub digest: Option<String>,
    pub previous: Option<String>,
    pub selector: SkillSelector,
    /// Nodes it was removed from.
    pub except: Vec<String>,
    pub by: String,
    /// Milliseconds since the epoch.
    pub at: i64,
}

/// A package as stored: the tar's bytes under its content digest.
#[derive(Clone, PartialEq)]
pub struct PackageRow {
    pub digest: String,
    pub name: String,
    pub bytes: Vec<u8>,
    pub by: String,
    pub at: i64,
}

impl std::fmt::Debug for PackageRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageRow")
            .field("digest", &self.digest)
            .field("name", &self.name)
            .field("size", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// What changed since the last batch: new packages first, then the records.
#[derive(Debug, Default)]
pub struct PushWrites {
    pub packages: Vec<PackageRow>,
    pub pushes: Vec<PushRecord>,
}

impl PushWrites {
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.pushes.is_empty()
    }
}

/// Every push, and the digest and size of every stored package (what a store loads).
pub type PushRows = (Vec<PushRecord>, Vec<(String, u64)>);

/// The pushes, the known packages and the nodes' failures.
#[derive(Debug, Default)]
pub struct SkillPushes {
    records: BTreeMap<String, PushRecord>,
    /// Digest → size of every stored package.
    sizes: BTreeMap<String, u64>,
    dirty: BTreeSet<String>,
    new_packages: Vec<PackageRow>,
    /// (node, skill) → (digest, reason) of the last failure reported.
    failures: BTreeMap<(String, String), (String, String)>,
}

impl SkillPushes {
    /// The state a store holds.
    pub fn restore(records: Vec<PushRecord>, packages: Vec<(String, u64)>) -> SkillPushes {
        SkillPushes {
            records: records.into_iter().map(|r| (r.name.clone(), r)).collect(),
            sizes: packages.into_iter().collect(),
            ..Default::default()
        }
    }

    pub fn take_writes(&mut self) -> PushWrites {
        let pushes =
            std::mem::take(&mut self.dirty).into_iter().filter_map(|n| self.records.get(&n).cloned()).collect();
        PushWrites { packages: std::mem::take(&mut self.new_packages), pushes }
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn record_mut(&mut self, name: &str) -> Result<&mut PushRecord, Error> {
        self.dirty.insert(name.to_string());
        self.records.get_mut(name).ok_or_else(|| unknown(name))
    }
}

fn unknown(name: &str) -> Error {
    Error::new(ErrorCode::UnknownSkillPush, format!("no pushed skill `{name}` (see `openclaw skills pushes`)"))
}

/// The path a node fetches a package from.
pub fn package_path(node_id: &str, digest: &str) -> String {
    format!("/api/v1/nodes/{node_id}/skills/packages/{digest}")
}

impl Core {
    /// Records a push of `name` at `digest` to `selector` (the package, when the store does
    /// not have this digest yet, was checked by the caller).
    pub fn push_skill(
        &mut self,
        name: &str,
        digest: &str,
        selector: SkillSelector,
        package: Option<PackageRow>,
        by: String,
        now: Now,
    ) -> Result<SkillPush, Error> {
        let size = match (self.pushes.sizes.get(digest), package) {
            (Some(size), _) => *size,
            (None, Some(p)) => {
                let size = p.bytes.len() as u64;
                self.pushes.sizes.insert(digest.to_string(), size);
                self.pushes.new_packages.push(p);
                size
            }
            (None, None) => {
                return Err(Error::invalid("package", "the coordinator has no package with this digest; send it"));
            }
        };
        let previous = match self.pushes.records.get(name) {
            Some(r) if r.digest.as_deref() == Some(digest) => r.previous.clone(),
            Some(r) => r.digest.clone().or(r.previous.clone()),
            None => None,
        };
        let message = format!("{by} pushed {name} {} ({size} bytes) to {selector}", short_digest(digest));
        let record = PushRecord {
            name: name.to_string(),
            digest: Some(digest.to_string()),
            previous,
            selector,
            except: Vec::new(),
            by,
            at: now.ms,
        };
        self.pushes.records.insert(name.to_string(), record);
        self.pushes.dirty.insert(name.to_string());
        self.skill_event(name, SkillTransition::Pushed, None, "pushed", message, now);
        Ok(self.push_view(name).expect("just recorded"))
    }

    /// Removes a pushed skill from every node of its push, or only from `nodes`.
    pub fn remove_pushed_skill(
        &mut self,
        name: &str,
        nodes: Vec<String>,
        by: String,
        now: Now,
    ) -> Result<SkillPush, Error> {
        let record = self.pushes.record_mut(name)?;
        let message = if nodes.is_empty() {
            let Some(digest) = record.digest.take() else {
                return Err(Error::new(ErrorCode::UnknownSkillPush, format!("`{name}` is removed already")));
            };
            record.previous = Some(digest);
            format!("{by} removed {name} from {}", record.selector)
        } else {
            let mut nodes: Vec<String> = nodes.into_iter().map(|n| n.trim().to_string()).collect();
            record.except.append(&mut nodes.clone());
            record.except.sort();
            record.except.dedup();
            nodes.sort();
            format!("{by} removed {name} from {}", nodes.join(", "))
        };
        record.by = by;
        record.at = now.ms;
        self.skill_event(name, SkillTransition::Removed, None, "removed", message, now);
        Ok(self.push_view(name).expect("known"))
    }

    /// Goes back to the version before (the current one becomes the one before).
    pub fn rollback_skill(&mut self, name: &str, by: String, now: Now) -> Result<SkillPush, Error> {
        let record = self.pushes.record_mut(name)?;
        let Some(previous) = record.previous.clone() else {
            return Err(Error::new(
                ErrorCode::NoPreviousVersion,
                format!("`{name}` has no version before this one; push the version you want"),
            ));
        };
        let message = format!("{by} rolled {name} back to {}", short_digest(&previous));
        record.previous = record.digest.replace(previous);
        record.except.clear();
        record.by = by;
        record.at = now.ms;
        self.skill_event(name, SkillTransition::RolledBack, None, "pushed", message, now);
        Ok(self.push_view(name).expect("known"))
    }

    /// The packages `node_id` should have; `None` when nothing was ever pushed (the answer
    /// then leaves the field out and the worker keeps what it has).
    pub fn skill_packages_for(&self, node_id: &str) -> Option<Vec<SkillPackageRef>> {
        if self.pushes.is_empty() {
            return None;
        }
        let node = self.registry.view(node_id).ok()?;
        Some(
            self.pushes
                .records
                .values()
                .filter(|r| r.selector.chooses(node_id, &node.spec.tags) && !r.except.iter().any(|n| n == node_id))
                .filter_map(|r| {
                    let digest = r.digest.clone()?;
                    Some(SkillPackageRef { name: r.name.clone(), url: package_path(node_id, &digest), digest })
                })
                .collect(),
        )
    }

    /// Whether the store has a package with this digest that `node_id` is meant to fetch
    /// (one of its pushes, now or before).
    pub fn package_known(&self, digest: &str) -> bool {
        self.pushes.sizes.contains_key(digest)
    }

    /// What a worker reports about its pushed skills: an event per report.
    pub fn skill_reports(&mut self, node_id: &str, reports: Vec<SkillInstallReport>, now: Now) {
        for r in reports {
            let reason = r.reason.map(|why| why.chars().take(1000).collect::<String>());
            let digest = r.digest.as_deref().map(short_digest).unwrap_or("-").to_string();
            let key = (node_id.to_string(), r.name.clone());
            let (event, status, message) = match r.outcome {
                InstallOutcome::Installed => {
                    self.pushes.failures.remove(&key);
                    (SkillTransition::Installed, "installed", format!("{node_id} installed {} {digest}", r.name))
                }
                InstallOutcome::Removed => {
                    self.pushes.failures.remove(&key);
                    (SkillTransition::Uninstalled, "removed", format!("{node_id} removed its pushed {}", r.name))
                }
                InstallOutcome::Failed => {
                    let why = reason.clone().unwrap_or_else(|| "no reason given".into());
                    self.pushes.failures.insert(key, (r.digest.clone().unwrap_or_default(), why.clone()));
                    (
                        SkillTransition::InstallFailed,
                        "failed",
                        format!("{node_id} could not install {} {digest}: {why}", r.name),
                    )
                }
            };
            self.skill_event(&r.name, event, Some(node_id), status, message, now);
        }
    }

    fn skill_event(
        &mut self,
        name: &str,
        event: SkillTransition,
        node: Option<&str>,
        status: &str,
        message: String,
        now: Now,
    ) {
        tracing::info!(target: "openclaw::coordinator", skill = name, "{message}");
        self.drafts.push(Draft {
            at: now.ms,
            event: event.into(),
            task_id: None,
            node_id: node.map(str::to_string),
            schedule_id: None,
            status: status.into(),
            attempt: None,
            skill: Some(name.to_string()),
            message: Some(message),
        });
    }

    /// Every push with each chosen node's progress.
    pub fn push_list(&self) -> SkillPushList {
        SkillPushList { pushes: self.pushes.records.keys().filter_map(|n| self.push_view(n)).collect() }
    }

    /// One push with each chosen node's progress.
    pub fn push_view(&self, name: &str) -> Option<SkillPush> {
        let r = self.pushes.records.get(name)?;
        let nodes = self
            .registry
            .list(None)
            .into_iter()
            .filter(|n| r.selector.chooses(&n.node_id, &n.spec.tags))
            .map(|n| {
                let removed = r.digest.is_none() || r.except.contains(&n.node_id);
                let has = n.spec.skill_digests.get(name).and_then(|c| c.digest.as_deref());
                let failure = self.pushes.failures.get(&(n.node_id.clone(), name.to_string()));
                let (state, reason) = match (&r.digest, removed) {
                    (_, true) => (PushState::Removed, None),
                    (Some(d), false) if has == Some(d.as_str()) => (PushState::Installed, None),
                    (Some(d), false) => match failure {
                        Some((fd, why)) if fd == d => (PushState::Failed, Some(why.clone())),
                        _ if n.status == NodeStatus::Offline => {
                            (PushState::Pending, Some("the node is offline; it gets it when it comes back".into()))
                        }
                        _ => (PushState::Pending, None),
                    },
                    (None, false) => (PushState::Removed, None),
                };
                PushedNode { node_id: n.node_id, state, reason }
            })
            .collect();
        Some(SkillPush {
            name: r.name.clone(),
            digest: r.digest.clone(),
            previous: r.previous.clone(),
            selector: r.selector.clone(),
            except: r.except.clone(),
            size: r.digest.as_ref().and_then(|d| self.pushes.sizes.get(d)).copied().unwrap_or(0),
            by: r.by.clone(),
            at: Timestamp(r.at),
            nodes,
        })
    }
}
