//! Cluster secrets at rest: the key file, sealing and opening values, and the catalogue the
//! coordinator keeps in memory (names, scopes, sealed values; never a value in clear).
//!
//! Values are sealed with ChaCha20-Poly1305 (ring's AEAD, already in the tree through
//! rustls), a random 96-bit nonce per value, and the secret's name as associated data (a
//! sealed value copied to another name does not open). The key is 32 random bytes in its
//! own file, `storage.secrets_key_file` (default `secrets.key` beside the database), mode
//! 0600, created on first start: never in the database, so never in a backup, and never
//! logged (its id, a hash prefix, is). Each stored value names the id of the key that
//! sealed it; a value under another key (a backup restored without its key file) is
//! *unreadable*: listed as such, refused by submissions, and everything else works.
//!
//! Rotation (`openclaw secrets rotate-key`): a new key is written to `<key file>.next`,
//! every readable value is sealed again under it and committed, then the file is renamed
//! over the key file. A crash in between is finished at the next start: when stored values
//! use the `.next` key, it becomes the key; otherwise the `.next` file is removed.
//!
//! Invariant: a value in clear exists only in the request that sets it and in the answer
//! to the start report of an attempt that uses it; `Debug` of every type here shows names
//! and key ids only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use super::core::Error;
use super::store::SecretRow;
use crate::config::Config;
use crate::model::{ErrorCode, SecretInfo, Target, Timestamp};

/// The key file's default name, beside the database.
pub const SECRETS_KEY_FILE: &str = "secrets.key";

/// Where the key file is: `storage.secrets_key_file`, else beside the database.
pub fn key_path(config: &Config) -> PathBuf {
    config.storage.secrets_key_file.clone().unwrap_or_else(|| config.data_dir().join(SECRETS_KEY_FILE))
}

/// One sealing key.
pub struct Key {
    id: String,
    key: LessSafeKey,
    /// The file's text (to write it elsewhere on rotation).
    text: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Key {
    /// A new random key.
    pub fn generate() -> Key {
        Key::from_text(&crate::util::new_secret()).expect("a new secret is 32 bytes of base64")
    }

    /// The key a file holds (32 bytes, base64url).
    fn from_text(text: &str) -> Option<Key> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &bytes).ok()?);
        let digest = Sha256::digest([b"openclaw secrets key id\0".as_slice(), &bytes].concat());
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Some(Key { id, key, text: text.trim().to_string() })
    }

    fn read(path: &Path) -> anyhow::Result<Option<Key>> {
        let Some(text) =
            crate::tokens::read_token_file(path).with_context(|| format!("cannot read {}", path.display()))?
        else {
            return Ok(None);
        };
        Key::from_text(&text).map(Some).ok_or_else(|| {
            anyhow::anyhow!(
                "{} is not a secrets key (32 bytes of base64url on one line); restore the right file, or move it aside to start with a new key (secrets sealed under the old one then cannot be read)",
                path.display()
            )
        })
    }

    fn write(&self, path: &Path) -> anyhow::Result<()> {
        crate::tokens::write_token_file(path, &self.text).with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `value` sealed for the secret `name`: nonce, then ciphertext and tag.
    pub fn seal(&self, name: &str, value: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).expect("the system's random source works");
        let mut out = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(name.as_bytes()), &mut out)
            .expect("a value within the cipher's limit");
        [nonce.as_slice(), &out].concat()
    }

    /// The value sealed for `name`, when this key sealed it and nothing changed it.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Option<String> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(name.as_bytes()), &mut body).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// The key file with its pending rotation (`.next`).
fn next_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".next");
    path.with_file_name(name)
}

/// Loads the key for the stored `rows`, creating it on first start and finishing a
/// rotation a crash interrupted (see the module).
pub fn load_key(config: &Config, rows: &[SecretRow]) -> anyhow::Result<Key> {
    let path = key_path(config);
    let next = next_path(&path);
    if let Some(pending) = Key::read(&next)? {
        if rows.iter().any(|r| r.key_id == pending.id) {
            std::fs::rename(&next, &path)
                .with_context(|| format!("cannot rename {} to {}", next.display(), path.display()))?;
            tracing::info!(target: "openclaw::coordinator", path = %path.display(), key_id = pending.id, "finished a secrets key rotation that was interrupted");
        } else {
            std::fs::remove_file(&next).with_context(|| format!("cannot remove {}", next.display()))?;
        }
    }
    let key = match Key::read(&path)? {
        Some(key) => key,
        None => {
            let key = Key::generate();
            key.write(&path)?;
            tracing::info!(target: "openclaw::coordinator", path = %path.display(), key_id = key.id, "generated a new secrets key file (mode 0600); keep it with your backups, apart from them");
            key
        }
    };
    let unreadable: Vec<&str> = rows.iter().filter(|r| r.key_id != key.id).map(|r| r.name.as_str()).collect();
    if !unreadable.is_empty() {
        tracing::warn!(
            target: "openclaw::coordinator",
            path = %path.display(), key_id = key.id, secrets = unreadable.join(", "),
            "these secrets were sealed with another key than {} holds, so they cannot be read (a backup restored without its secrets key file?): restore that file, or set them again with `openclaw secrets set NAME`; tasks that use them are refused until then",
            path.display()
        );
    }
    Ok(key)
}

/// Writes a new key as the pending rotation; [`commit_rotation`] makes it the key.
pub fn begin_rotation(config: &Config) -> anyhow::Result<Key> {
    let key = Key::generate();
    key.write(&next_path(&key_path(config)))?;
    Ok(key)
}

/// The resealed values are committed: the pending key becomes the key.
pub fn commit_rotation(config: &Config) -> anyhow::Result<()> {
    let path = key_path(config);
    let next = next_path(&path);
    std::fs::rename(&next, &path).with_context(|| format!("cannot rename {} to {}", next.display(), path.display()))
}

/// The secrets the coordinator knows, as stored (sealed), by name.
#[derive(Debug, Default)]
pub struct Catalogue {
    rows: BTreeMap<String, SecretRow>,
}

impl Catalogue {
    pub fn new(rows: Vec<SecretRow>) -> Catalogue {
        Catalogue { rows: rows.into_iter().map(|r| (r.name.clone(), r)).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&SecretRow> {
        self.rows.get(name)
    }

    pub fn rows(&self) -> impl Iterator<Item = &SecretRow> {
        self.rows.values()
    }

    pub fn put(&mut self, row: SecretRow) {
        self.rows.insert(row.name.clone(), row);
    }

    pub fn remove(&mut self, name: &str) -> Option<SecretRow> {
        self.rows.remove(name)
    }

    /// The list view (never a value).
    pub fn list(&self, key: &Key) -> Vec<SecretInfo> {
        self.rows
            .values()
            .map(|r| SecretInfo {
                name: r.name.clone(),
                scope: r.scope.clone(),
                set_by: r.set_by.clone(),
                set_at: Timestamp(r.set_at),
                readable: r.key_id == key.id,
            })
            .collect()
    }

    /// A submission's secrets checked (known, readable) and their scopes added to its
    /// target: the task is placed only where every secret may go.
    pub fn apply(&self, key: &Key, names: &[String], target: Option<Target>) -> Result<Option<Target>, Error> {
        let mut target = target;
        for name in names {
            let row = self.rows.get(name).ok_or_else(|| unknown(name))?;
            if row.key_id != key.id {
                return Err(Error::new(ErrorCode::SecretUnreadable, format!("secrets: {}", unreadable(name))));
            }
            if let Some(scope) = &row.scope {
                target = Some(narrow(target.unwrap_or_default(), scope, name)?);
            }
        }
        Ok(target.filter(|t| !t.is_any()))
    }
}

/// No secret of this name.
pub fn unknown(name: &str) -> Error {
    Error::new(
        ErrorCode::UnknownSecret,
        format!(
            "secrets: no secret `{name}`; set it first (`openclaw secrets set {name}`), see `openclaw secrets list`"
        ),
    )
}

/// The words for a secret the key cannot open.
pub fn unreadable(name: &str) -> String {
    format!(
        "secret `{name}` cannot be read: it was sealed with another key than storage.secrets_key_file holds (a backup restored without its key file?); restore that file, or set it again (`openclaw secrets set {name}`)"
    )
}

/// `target` limited to what `scope` allows too, or why no node could satisfy both.
fn narrow(mut target: Target, scope: &Target, name: &str) -> Result<Target, Error> {
    let clash = |what: &str, a: &str, b: &str| {
        Error::new(
            ErrorCode::Unplaceable,
            format!(
                "secrets: secret `{name}` may only go to {what} `{b}`, but the task's target is {what} `{a}`: no node could run it"
            ),
        )
    };
    match (&target.node, &scope.node) {
        (Some(a), Some(b)) if a != b => return Err(clash("node", a, b)),
        (None, Some(b)) => target.node = Some(b.clone()),
        _ => {}
    }
    match (&target.platform, &scope.platform) {
        (Some(a), Some(b)) if a != b => return Err(clash("platform", a, b)),
        (None, Some(b)) => target.platform = Some(b.clone()),
        _ => {}
    }
    for tag in &scope.tags {
        if !target.tags.contains(tag) {
            target.tags.push(tag.clone());
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, key: &Key, value: &str, scope: Option<Target>) -> SecretRow {
        SecretRow {
            name: name.into(),
            key_id: key.id().into(),
            sealed: key.seal(name, value),
            scope,
            set_by: "admin".into(),
            set_at: 1,
        }
    }

    #[test]
    fn a_value_opens_only_with_its_key_and_its_name() {
        let (a, b) = (Key::generate(), Key::generate());
        let sealed = a.seal("K", "sk-live-123");
        assert!(!sealed.windows(11).any(|w| w == b"sk-live-123"), "sealed, not encoded");
        assert_eq!(a.open("K", &sealed).as_deref(), Some("sk-live-123"));
        assert_eq!(a.open("OTHER", &sealed), None, "bound to its name");
        assert_eq!(b.open("K", &sealed), None, "another key");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(a.open("K", &tampered), None);
        assert_ne!(a.seal("K", "v"), a.seal("K", "v"), "a fresh nonce each time");
        assert!(!format!("{a:?}").contains(&a.text));
        assert_eq!(Key::from_text(&a.text).unwrap().id(), a.id());
    }

    #[test]
    fn submissions_need_known_readable_secrets_and_take_their_scope() {
        let (key, old) = (Key::generate(), Key::generate());
        let gpu = Target { tags: vec!["gpu".into()], ..Default::default() };
        let pinned = Target { node: Some("a".into()), ..Default::default() };
        let c = Catalogue::new(vec![
            row("OPEN", &key, "v", None),
            row("GPU", &key, "v", Some(gpu.clone())),
            row("PINNED", &key, "v", Some(pinned)),
            row("LOST", &old, "v", None),
        ]);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(c.apply(&key, &names(&["OPEN"]), None), Ok(None));
        assert_eq!(c.apply(&key, &names(&["OPEN", "GPU"]), None), Ok(Some(gpu)));
        let e = c.apply(&key, &names(&["NOPE"]), None).unwrap_err();
        assert!(e.code == ErrorCode::UnknownSecret && e.message.contains("`NOPE`"), "{e:?}");
        let e = c.apply(&key, &names(&["LOST"]), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::SecretUnreadable);
        assert!(e.message.contains("cannot be read") && e.message.contains("secrets_key_file"), "{e:?}");
        let elsewhere = Target { node: Some("b".into()), ..Default::default() };
        let e = c.apply(&key, &names(&["PINNED"]), Some(elsewhere)).unwrap_err();
        assert!(e.code == ErrorCode::Unplaceable && e.message.contains("may only go to node `a`"), "{e:?}");
        assert!(c.list(&key).iter().any(|s| s.name == "LOST" && !s.readable));
    }
}
