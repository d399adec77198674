//! Pushed skills at the coordinator's doors: a push's package checked (decoded, unpacked
//! by the one checker, digested) off the state lock before the transition records it, and
//! a node's fetch of a package it is meant to have, read from the store.
//!
//! Invariants: a package is stored only when the checker accepts it and its content has
//! the digest announced, and its `SKILL.md` names the skill pushed (or no name); a node
//! gets only a package that one of its pushes names now.

use base64::Engine;

use super::cluster::Cluster;
use super::core::Error;
use super::store::PackageRow;
use crate::model::{ErrorCode, PushSkill, RemoveSkill, SkillPush, validate_digest};

/// A push that cannot be installed as sent (a rule the API document cannot express).
fn refused(field: &str, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::InvalidSkillPush, format!("{field}: {why}"))
}
use crate::worker::skills::package;

/// The longest `package` text of a push: base64 of the largest package.
pub const MAX_PACKAGE_TEXT: u64 = package::MAX_PACKAGE_BYTES.div_ceil(3) * 4;

impl Cluster {
    /// Checks and records a push.
    pub async fn push_skill(&self, req: PushSkill, by: String) -> Result<SkillPush, Error> {
        let name = req.name.trim().to_string();
        package::check_folder_name(&name).map_err(|e| refused("name", e))?;
        validate_digest(&req.digest).map_err(|e| Error::invalid("digest", e))?;
        let selector = req.selector.checked().map_err(|e| refused("selector", e))?;
        if req.package.len() as u64 > MAX_PACKAGE_TEXT {
            return Err(refused("package", format!("over {} bytes of packed skill", package::MAX_PACKAGE_BYTES)));
        }
        let (digest, text) = (req.digest.clone(), req.package);
        let checked_name = name.clone();
        let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Error> {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| refused("package", format!("not base64: {e}")))?;
            let files = package::verify(&bytes, &digest).map_err(|e| refused("package", e))?;
            let skill_md = files.iter().find(|f| f.path == "SKILL.md").map(|f| f.bytes.as_slice()).unwrap_or_default();
            let named = package::skill_name(skill_md, &checked_name)
                .map_err(|e| refused("package", format!("SKILL.md: {e}")))?;
            if named != checked_name {
                return Err(refused(
                    "name",
                    format!("the package's SKILL.md names the skill `{named}`, not `{checked_name}`"),
                ));
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| Error::new(ErrorCode::Internal, format!("checking the package failed: {e}")))??;
        let now_ms = crate::util::now_ms();
        let row = PackageRow { digest: req.digest.clone(), name: name.clone(), bytes, by: by.clone(), at: now_ms };
        self.mutate(|core, now| core.push_skill(&name, &req.digest, selector, Some(row), by, now)).await
    }

    pub async fn remove_pushed_skill(&self, name: &str, req: RemoveSkill, by: String) -> Result<SkillPush, Error> {
        self.mutate(|core, now| core.remove_pushed_skill(name, req.nodes, by, now)).await
    }

    pub async fn rollback_skill(&self, name: &str, by: String) -> Result<SkillPush, Error> {
        self.mutate(|core, now| core.rollback_skill(name, by, now)).await
    }

    /// A package `node` is meant to have, from the store.
    pub async fn skill_package(&self, node: &str, digest: &str) -> Result<Vec<u8>, Error> {
        let meant =
            self.view(|core| core.skill_packages_for(node).is_some_and(|list| list.iter().any(|p| p.digest == digest)));
        let missing = || {
            Error::new(
                ErrorCode::UnknownSkillPush,
                format!("no package {digest} is pushed to node `{node}` now (its next heartbeat answer says what is)"),
            )
        };
        if !meant {
            return Err(missing());
        }
        // A heartbeat answer may name a push whose commit is still queued (it shows the
        // memory): the package is read once that commit is done.
        self.settled().await?;
        let d = digest.to_string();
        self.read(move |s| s.skill_package(&d)).await?.ok_or_else(missing)
    }
}
