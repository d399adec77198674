//! Pushed skills on the wire: a push (the package, base64 of the deterministic tar that
//! `worker::skills::package` writes, with the digest it must have and the nodes it is
//! for), the pushes as the coordinator keeps them (what each chosen node should have, the
//! version before for a rollback, who pushed and when, and how far each node got), the
//! packages a heartbeat answer tells a node to have, and what a worker reports back.
//!
//! A push is desired state: every node its selector chooses — now, or when it joins or
//! comes back later — should have `name` at `digest`; a removed push (`digest` absent)
//! means those nodes remove the copy they were pushed. The selector is exactly one of
//! `nodes`, `tags` (a node with every one of them) or `all`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// Which nodes a push is for: exactly one of the three.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillSelector {
    /// These nodes, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<super::NodeId>, max_items = 1000)]
    pub nodes: Vec<String>,
    /// Every node that has all of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = super::limits::SkillNames)]
    pub tags: Vec<String>,
    /// Every node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

impl SkillSelector {
    /// Checks that exactly one way of choosing is given, and trims the names.
    pub fn checked(self) -> Result<SkillSelector, String> {
        let trim = |v: Vec<String>| -> Vec<String> {
            let mut v: Vec<String> = v.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            v.sort();
            v.dedup();
            v
        };
        let s = SkillSelector { nodes: trim(self.nodes), tags: trim(self.tags), all: self.all };
        let given = [!s.nodes.is_empty(), !s.tags.is_empty(), s.all].iter().filter(|g| **g).count();
        if given != 1 {
            return Err(
                "choose the nodes with exactly one of `nodes`, `tags` or `all` (CLI: --nodes, --tags or --all)".into(),
            );
        }
        if s.nodes.len() > 1000 || s.tags.len() > super::MAX_SKILLS {
            return Err("at most 1000 nodes or tags".into());
        }
        Ok(s)
    }

    /// Whether a node with this id and these tags is chosen.
    pub fn chooses(&self, node_id: &str, tags: &[String]) -> bool {
        self.all
            || self.nodes.iter().any(|n| n == node_id)
            || (!self.tags.is_empty() && self.tags.iter().all(|t| tags.contains(t)))
    }
}

impl std::fmt::Display for SkillSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.all {
            f.write_str("all nodes")
        } else if !self.nodes.is_empty() {
            write!(f, "nodes {}", self.nodes.join(", "))
        } else {
            write!(f, "nodes tagged {}", self.tags.join(" and "))
        }
    }
}

/// `POST /api/v1/skills/push` (admin token only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushSkill {
    /// The skill's name: its folder's name on each node (the `name` of its SKILL.md, if it
    /// has one, must be this).
    #[schema(value_type = super::Label)]
    pub name: String,
    /// The content digest the package must have.
    #[schema(value_type = super::Digest)]
    pub digest: String,
    /// Base64 (standard alphabet, padded) of the package: the tar `openclaw skills push`
    /// writes, at most 16 MiB.
    pub package: String,
    /// Which nodes should have it.
    pub selector: SkillSelector,
}

/// `POST /api/v1/skills/pushes/{name}/remove`: remove a pushed skill from the nodes it was
/// pushed to, or only from these nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveSkill {
    /// Only from these nodes (they are left out of the push from now on); absent or empty:
    /// from every node of the push.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<super::NodeId>, max_items = 1000)]
    pub nodes: Vec<String>,
}

string_enum! {
    /// How far a chosen node got with a push.
    PushState {
        /// It advertises the skill at the pushed digest.
        Installed = "installed",
        /// Not yet (offline nodes are told when they come back).
        Pending = "pending",
        /// Its worker reported a failure (the reason says why; it tries again when the push
        /// changes or the worker restarts).
        Failed = "failed",
        /// Removed: it no longer has a pushed copy.
        Removed = "removed",
    }
}

/// One chosen node's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PushedNode {
    pub node_id: String,
    pub state: PushState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A push as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkillPush {
    pub name: String,
    /// What the chosen nodes should have; absent: the skill was removed from them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The version before (absent: none); `rollback` goes back to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    pub selector: SkillSelector,
    /// Nodes the skill was removed from (`remove --nodes`), left out of the push.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    /// The package's size in bytes (0 once removed).
    pub size: u64,
    /// Who made the last change (`admin token from 10.0.0.5`).
    pub by: String,
    pub at: Timestamp,
    /// Every registered node the push chooses, and how far it got.
    pub nodes: Vec<PushedNode>,
}

/// `GET /api/v1/skills/pushes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkillPushList {
    pub pushes: Vec<SkillPush>,
}

/// A package a node should have, in a heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SkillPackageRef {
    pub name: String,
    pub digest: String,
    /// Where the node fetches it, with its node secret (a path below the coordinator's URL).
    pub url: String,
}

string_enum! {
    /// What a worker did with a pushed skill.
    InstallOutcome {
        Installed = "installed",
        Removed = "removed",
        Failed = "failed",
    }
}

/// A worker's report about one pushed skill, sent with its next heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillInstallReport {
    #[schema(value_type = super::Label)]
    pub name: String,
    /// The version it is about (absent for a removal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::Digest>)]
    pub digest: Option<String>,
    pub outcome: InstallOutcome,
    /// Why it failed (at most 1000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl<'de> Deserialize<'de> for PushState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for InstallOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_is_exactly_one_way_of_choosing() {
        assert!(SkillSelector::default().checked().is_err());
        let both = SkillSelector { nodes: vec!["w1".into()], all: true, ..Default::default() };
        assert!(both.checked().unwrap_err().contains("exactly one"));
        let tags = SkillSelector { tags: vec![" gpu ".into(), "eu".into()], ..Default::default() }.checked().unwrap();
        assert_eq!(tags.tags, ["eu", "gpu"]);
        assert!(tags.chooses("w1", &["gpu".into(), "eu".into(), "x".into()]));
        assert!(!tags.chooses("w1", &["gpu".into()]));
        let nodes = SkillSelector { nodes: vec!["w1".into()], ..Default::default() }.checked().unwrap();
        assert!(nodes.chooses("w1", &[]) && !nodes.chooses("w2", &[]));
        assert_eq!(tags.to_string(), "nodes tagged eu and gpu");
    }
}
