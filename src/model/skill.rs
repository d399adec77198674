//! Skills across the cluster: what a node says about the content of each skill it has (a
//! digest of its folder and where it came from), and the cluster's view of every skill
//! (`GET /api/v1/skills`): which nodes have it, whether they can run it now, and whether
//! their copies differ (drift).
//!
//! A digest is `sha256:` and 64 lower-case hex digits (the worker's
//! `worker::skills::digest` says what it covers). A node that sends none (an older worker,
//! or a folder over the worker's caps) has a skill of unknown content: it never counts as
//! drift, and a pinned task never runs there.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::ObjectBuilder;

use super::limits::{schema_type, string};
use super::{Label, NodeStatus};

/// What every digest starts with.
pub const DIGEST_PREFIX: &str = "sha256:";
/// The hex digits of a digest shown to people (`sha256:ab12cd34ef56`).
pub const SHORT_DIGEST_HEX: usize = 12;

/// Where a skill came from on its node: our skills dirs (`skills_dir`), or one of
/// OpenClaw's sources (`bundled`, `managed`, `personal` for `~/.agents/skills`, `workspace`,
/// `extra` for `skills.load.extraDirs` and plugins, `workshop`), `openclaw` when OpenClaw
/// names a source this version does not know.
pub const SKILL_SOURCES: &[&str] =
    &["skills_dir", "bundled", "managed", "personal", "workspace", "extra", "workshop", "openclaw"];

schema_type! {
    /// A skill's content digest.
    Digest => string(
        format!("^{DIGEST_PREFIX}[0-9a-f]{{64}}$"),
        "`sha256:` and 64 lower-case hex digits: the digest of the skill's folder".into(),
    );
}

/// What a node says about one of its skills: where it came from and its content's digest
/// (absent when the node could not take it: an older worker, a folder over its caps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillContent {
    /// Where the node found it (see the skills guide: `skills_dir`, `bundled`, `managed`, …).
    #[schema(value_type = Label)]
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Digest>)]
    pub digest: Option<String>,
}

/// Checks a digest's form.
pub fn validate_digest(d: &str) -> Result<(), String> {
    let hex = d
        .strip_prefix(DIGEST_PREFIX)
        .ok_or_else(|| format!("`{d}` is not a digest: it must start with `{DIGEST_PREFIX}`"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("`{d}` is not a digest: `{DIGEST_PREFIX}` must be followed by 64 lower-case hex digits"));
    }
    Ok(())
}

/// A required skill written with a pinned version, `summarize@sha256:…` (a whole digest),
/// split into the name and the pin; any other name (even one with `@` in it) has no pin.
pub fn split_pin(entry: &str) -> (&str, Option<&str>) {
    match entry.rsplit_once('@') {
        Some((name, pin)) if validate_digest(pin).is_ok() && !name.trim().is_empty() => (name, Some(pin)),
        _ => (entry, None),
    }
}

/// `target.digests`: skill names to digests, at most [`super::MAX_SKILLS`].
pub(super) fn pinned_digests() -> utoipa::openapi::Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .property_names(Some(super::limits::SKILL_NAME.schema()))
        .additional_properties(Some(<Digest as utoipa::PartialSchema>::schema()))
        .max_properties(Some(super::MAX_SKILLS))
        .description(Some(
            "Pinned versions: a skill name (white space around it is ignored) and the digest its node's copy must have",
        ))
        .into()
}

/// `sha256:ab12cd34ef56`: enough of a digest to tell versions apart in a message.
pub fn short_digest(d: &str) -> &str {
    let end = (DIGEST_PREFIX.len() + SHORT_DIGEST_HEX).min(d.len());
    d.get(..end).unwrap_or(d)
}

/// The skill-content map of a registration or heartbeat, or null.
pub(super) fn skill_contents_or_null() -> utoipa::openapi::Schema {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::schema::Type::Object,
            utoipa::openapi::schema::Type::Null,
        ]))
        .property_names(Some(super::limits::SKILL_NAME.schema()))
        .additional_properties(Some(<SkillContent as utoipa::PartialSchema>::schema()))
        .description(Some(
            "Per skill of available_skills and unavailable_skills: where it came from and its content's digest; \
             sent with available_skills (absent: the node's skills have unknown content)",
        ))
        .into()
}

/// One node's copy of a skill, in the cluster's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SkillHolder {
    pub node_id: String,
    pub status: NodeStatus,
    /// The node would be given a task for this skill now (online, not drained, and the
    /// skill is available there).
    pub runnable: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// One skill name across the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterSkill {
    pub name: String,
    /// The distinct digests the nodes report, sorted.
    pub digests: Vec<String>,
    /// Nodes have different content under this name.
    pub drift: bool,
    /// How many of its nodes could run it now.
    pub runnable_nodes: u32,
    pub nodes: Vec<SkillHolder>,
}

/// `GET /api/v1/skills`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterSkills {
    /// Every skill any registered node has, by name.
    pub skills: Vec<ClusterSkill>,
    /// The names with drift, sorted.
    pub drifted: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_and_shortened() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert!(validate_digest(&d).is_ok());
        assert!(validate_digest(&d.to_uppercase()).is_err());
        assert!(validate_digest(&d[..70]).unwrap_err().contains("64 lower-case hex"));
        assert!(validate_digest("md5:00").unwrap_err().contains("sha256:"));
        assert_eq!(short_digest(&d), "sha256:abababababab");
        assert_eq!(short_digest("sha256:ab"), "sha256:ab");
        assert_eq!(split_pin(&format!("summarize@{d}")), ("summarize", Some(d.as_str())));
        assert_eq!(split_pin("me@example"), ("me@example", None));
        assert_eq!(split_pin("s@sha256:ab"), ("s@sha256:ab", None), "half a digest is part of a name");
    }
}
