//! A skill's content digest: SHA-256 over its folder's files, so that the cluster can tell
//! two copies of `summarize` apart.
//!
//! What it covers: every entry below the skill folder's real path (the folder itself is
//! resolved, as OpenClaw resolves a linked skill folder), in byte order of its path relative
//! to the folder with `/` between names; for a file its path, whether it is executable (any
//! exec bit; always "no" on Windows, which has none) and its bytes; for a symbolic link that
//! stays inside the folder, what it leads to (a file's bytes, a folder's entries, as the agent
//! reading `{baseDir}` would see them); for a link that leaves the folder or leads nowhere,
//! only its path and the link text (what is outside is not the skill's, and is never read);
//! for anything else (a FIFO, a socket, a device) only its path and kind (it is never opened).
//! Empty folders add nothing. Left out, as install bookkeeping rather than content: `.git`,
//! `.openclaw` (ClawHub's `source-origin.json`) and macOS's `.DS_Store`.
//!
//! Invariants: a digest is computed only from a listing within [`Caps`] (files and bytes),
//! so a huge folder costs one bounded walk and no reading; a file that changes while it is
//! read gives an error, never a digest of half of it. [`Digester`] keeps each folder's digest
//! with a stamp of the listing (paths, sizes, modification times, modes): a rescan reads the
//! folder's files again only when that stamp changed.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};

use crate::model::DIGEST_PREFIX;

/// Entries left out of a digest at any depth.
const LEFT_OUT: &[&str] = &[".git", ".openclaw", ".DS_Store"];
/// Folder depth below the skill folder.
const MAX_DEPTH: usize = 32;

/// How much of a folder may be read for its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Entries (files, links, others), counted as they are listed.
    pub max_files: usize,
    /// The files' bytes, summed.
    pub max_bytes: u64,
}

/// A skill folder bigger than OpenClaw's own skill bundles (256 files, 8 MiB) by a margin.
pub const CAPS: Caps = Caps { max_files: 2000, max_bytes: 64 * 1024 * 1024 };

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    File {
        real: PathBuf,
        len: u64,
        exec: bool,
        modified: Option<SystemTime>,
    },
    /// A link not followed: its text.
    Link(String),
    /// Neither file, folder nor link.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Entry {
    /// The path below the folder, `/` between names.
    rel: String,
    kind: Kind,
}

/// The digest of a skill folder, computed afresh.
pub fn digest(dir: &Path, caps: Caps) -> Result<String, String> {
    let (_, entries) = listing(dir, caps)?;
    hash(&entries)
}

/// The folder's entries in digest order, with its real path.
fn listing(dir: &Path, caps: Caps) -> Result<(PathBuf, Vec<Entry>), String> {
    let root = dir.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    let mut seen = HashSet::from([root.clone()]);
    let mut stack = vec![(root.clone(), String::new(), 0usize)];
    while let Some((folder, prefix, depth)) = stack.pop() {
        let read = std::fs::read_dir(&folder).map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
        for item in read {
            let item = item.map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if LEFT_OUT.contains(&name.as_str()) {
                continue;
            }
            let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let (real, meta) = if meta.file_type().is_symlink() {
                match path.canonicalize() {
                    Ok(real) if real.starts_with(&root) => match std::fs::metadata(&real) {
                        Ok(m) => (real, m),
                        Err(_) => (path.clone(), meta),
                    },
                    _ => (path.clone(), meta),
                }
            } else {
                (path.clone(), meta)
            };
            let kind = if meta.file_type().is_symlink() {
                let text = std::fs::read_link(&path).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                Kind::Link(text)
            } else if meta.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    return Err(format!("{} is more than {MAX_DEPTH} folders deep", path.display()));
                }
                // A link back to a folder already walked would loop: it counts as a link.
                if seen.insert(real.clone()) {
                    stack.push((real, rel, depth + 1));
                    continue;
                }
                Kind::Link(std::fs::read_link(&path).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default())
            } else if meta.is_file() {
                bytes += meta.len();
                if bytes > caps.max_bytes {
                    return Err(format!(
                        "the folder holds more than {} bytes; its digest is not taken (a skill folder that large is probably not one)",
                        caps.max_bytes
                    ));
                }
                Kind::File { len: meta.len(), exec: executable(&meta), modified: meta.modified().ok(), real }
            } else {
                Kind::Other
            };
            entries.push(Entry { rel, kind });
            if entries.len() > caps.max_files {
                return Err(format!(
                    "the folder holds more than {} files; its digest is not taken (a skill folder that large is probably not one)",
                    caps.max_files
                ));
            }
        }
    }
    entries.sort_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    Ok((root, entries))
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    false
}

/// Opens a file for reading without waiting on a FIFO swapped in since it was listed.
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Hashes a listing: for each entry a kind byte and its path, then a file's exec flag,
/// length (8 bytes, big-endian) and bytes, or a link's text; NUL after each text.
fn hash(entries: &[Entry]) -> Result<String, String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    for e in entries {
        match &e.kind {
            Kind::File { real, len, exec, .. } => {
                file_head(&mut h, &e.rel, *exec, *len);
                let changed = || format!("{} changed while its digest was taken", real.display());
                let mut file = open(real).map_err(|err| format!("cannot read {}: {err}", real.display()))?;
                if !file.metadata().is_ok_and(|m| m.is_file()) {
                    return Err(changed());
                }
                let mut left = *len;
                loop {
                    let n = file.read(&mut buf).map_err(|err| format!("cannot read {}: {err}", real.display()))?;
                    if n == 0 {
                        break;
                    }
                    if n as u64 > left {
                        return Err(changed());
                    }
                    h.update(&buf[..n]);
                    left -= n as u64;
                }
                if left != 0 {
                    return Err(changed());
                }
            }
            Kind::Link(text) => {
                h.update(b"l");
                h.update(e.rel.as_bytes());
                h.update(b"\0");
                h.update(text.as_bytes());
                h.update(b"\0");
            }
            Kind::Other => {
                h.update(b"o");
                h.update(e.rel.as_bytes());
                h.update(b"\0");
            }
        }
    }
    Ok(format!("{DIGEST_PREFIX}{}", crate::util::hex(&h.finalize())))
}

/// What a file adds before its bytes: a kind byte, its path, NUL, its exec flag and its
/// length (8 bytes, big-endian).
fn file_head(h: &mut Sha256, rel: &str, exec: bool, len: u64) {
    h.update(b"f");
    h.update(rel.as_bytes());
    h.update(b"\0");
    h.update(if exec { b"x" } else { b"-" });
    h.update(len.to_be_bytes());
}

/// The digest of a skill's files held in memory (a pushed package's content), by the same
/// definition as a folder's: `files` are `(path below the folder with '/' between names,
/// executable, bytes)`, in any order; the caller has checked that no path repeats.
pub fn digest_of_files<'a>(files: impl IntoIterator<Item = (&'a str, bool, &'a [u8])>) -> String {
    let mut files: Vec<(&str, bool, &[u8])> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = Sha256::new();
    for (rel, exec, bytes) in files {
        file_head(&mut h, rel, exec, bytes.len() as u64);
        h.update(bytes);
    }
    format!("{DIGEST_PREFIX}{}", crate::util::hex(&h.finalize()))
}

/// A file read for packing: its path below the folder, whether it is executable, its bytes.
pub type SkillFile = (String, bool, Vec<u8>);

/// The files of a skill folder, read for packing: `(path, executable, bytes)` in digest
/// order, with the folder's digest taken from the same reading. A link that leaves the
/// folder, a FIFO or a device cannot be carried: an error names it.
pub fn read_files(dir: &Path, caps: Caps) -> Result<(Vec<SkillFile>, String), String> {
    let (_, entries) = listing(dir, caps)?;
    let mut files = Vec::with_capacity(entries.len());
    for e in &entries {
        match &e.kind {
            Kind::File { real, len, exec, .. } => {
                let bytes = std::fs::read(real).map_err(|err| format!("cannot read {}: {err}", real.display()))?;
                if bytes.len() as u64 != *len {
                    return Err(format!("{} changed while it was read; try again", real.display()));
                }
                files.push((e.rel.clone(), *exec, bytes));
            }
            Kind::Link(text) => {
                return Err(format!(
                    "{}: `{}` is a link that leaves the skill folder (to `{text}`); a pushed skill carries only its own files: copy what it needs into the folder",
                    dir.display(),
                    e.rel
                ));
            }
            Kind::Other => {
                return Err(format!(
                    "{}: `{}` is not a file, a folder or a link (a FIFO, a socket or a device); remove it before pushing",
                    dir.display(),
                    e.rel
                ));
            }
        }
    }
    let digest = digest_of_files(files.iter().map(|(r, x, b)| (r.as_str(), *x, b.as_slice())));
    Ok((files, digest))
}

/// A cheap summary of a listing: what a rescan compares before reading any file again.
fn stamp(entries: &[Entry]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    entries.hash(&mut h);
    h.finish()
}

/// Skill folders' digests, kept between scans and taken again only when a folder's
/// listing changed.
#[derive(Debug)]
pub struct Digester {
    caps: Caps,
    /// By the folder as the scan gave it: the listing's stamp and the digest (or why none).
    kept: BTreeMap<PathBuf, (u64, Result<String, String>)>,
}

impl Default for Digester {
    fn default() -> Digester {
        Digester::new(CAPS)
    }
}

impl Digester {
    pub fn new(caps: Caps) -> Digester {
        Digester { caps, kept: BTreeMap::new() }
    }

    /// The digest of a skill folder (kept from the last scan when its listing is the same).
    pub fn digest(&mut self, dir: &Path) -> Result<String, String> {
        let (_, entries) = match listing(dir, self.caps) {
            Ok(l) => l,
            Err(why) => {
                self.kept.remove(dir);
                return Err(why);
            }
        };
        let now = stamp(&entries);
        if let Some((then, digest)) = self.kept.get(dir)
            && *then == now
        {
            return digest.clone();
        }
        let digest = hash(&entries);
        // A file that changed mid-read is tried again at the next scan.
        if digest.is_ok() {
            self.kept.insert(dir.to_path_buf(), (now, digest.clone()));
        }
        digest
    }

    /// Forgets the folders not in `dirs` (skills that went away).
    pub fn keep_only(&mut self, dirs: &HashSet<&Path>) {
        self.kept.retain(|d, _| dirs.contains(d.as_path()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(dir: &Path, body: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("SKILL.md"), body).unwrap();
    }

    #[test]
    fn same_content_same_digest_wherever_it_is() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a/summarize"), t.path().join("b/other-name"));
        for d in [&a, &b] {
            skill(d, "---\nname: summarize\ndescription: d\n---\n");
            std::fs::create_dir_all(d.join("scripts")).unwrap();
            std::fs::write(d.join("scripts/run.sh"), "echo hi\n").unwrap();
        }
        let da = digest(&a, CAPS).unwrap();
        assert!(da.starts_with("sha256:") && da.len() == 71, "{da}");
        assert_eq!(da, digest(&b, CAPS).unwrap());
        // Install bookkeeping is not content.
        std::fs::create_dir_all(b.join(".openclaw")).unwrap();
        std::fs::write(b.join(".openclaw/source-origin.json"), "{}").unwrap();
        std::fs::write(b.join(".DS_Store"), "x").unwrap();
        assert_eq!(da, digest(&b, CAPS).unwrap());
        // A byte, a name or a new empty file each make another digest.
        std::fs::write(b.join("scripts/run.sh"), "echo ho\n").unwrap();
        let changed = digest(&b, CAPS).unwrap();
        assert_ne!(da, changed);
        std::fs::rename(b.join("scripts/run.sh"), b.join("scripts/go.sh")).unwrap();
        assert_ne!(changed, digest(&b, CAPS).unwrap());
        std::fs::write(a.join("empty"), "").unwrap();
        assert_ne!(da, digest(&a, CAPS).unwrap());
    }

    /// The length before the bytes keeps "ab" + "c" apart from "a" + "bc".
    #[test]
    fn file_boundaries_count() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        skill(&a, "x");
        skill(&b, "x");
        std::fs::write(a.join("f1"), "ab").unwrap();
        std::fs::write(a.join("f2"), "c").unwrap();
        std::fs::write(b.join("f1"), "a").unwrap();
        std::fs::write(b.join("f2"), "bc").unwrap();
        assert_ne!(digest(&a, CAPS).unwrap(), digest(&b, CAPS).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn exec_bits_and_links_count_as_openclaw_sees_them() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("s");
        skill(&d, "x");
        std::fs::write(d.join("run.sh"), "echo\n").unwrap();
        let plain = digest(&d, CAPS).unwrap();
        std::fs::set_permissions(d.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = digest(&d, CAPS).unwrap();
        assert_ne!(plain, exec);

        // A link inside the folder is read through: same digest as a copy.
        let copy = t.path().join("copy");
        skill(&copy, "x");
        std::fs::write(copy.join("run.sh"), "echo\n").unwrap();
        std::fs::set_permissions(copy.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(copy.join("alias.sh"), "echo\n").unwrap();
        std::fs::set_permissions(copy.join("alias.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        symlink("run.sh", d.join("alias.sh")).unwrap();
        assert_eq!(digest(&d, CAPS).unwrap(), digest(&copy, CAPS).unwrap());

        // A link out of the folder is its text, never the outside file's bytes.
        let outside = t.path().join("secret.txt");
        std::fs::write(&outside, "one").unwrap();
        symlink(&outside, d.join("out")).unwrap();
        let with_out = digest(&d, CAPS).unwrap();
        std::fs::write(&outside, "two").unwrap();
        assert_eq!(with_out, digest(&d, CAPS).unwrap());

        // A linked skill folder is the folder it leads to; a loop is a link, not a hang.
        let linked = t.path().join("linked");
        symlink(&d, &linked).unwrap();
        assert_eq!(with_out, digest(&linked, CAPS).unwrap());
        symlink(".", d.join("self")).unwrap();
        assert_ne!(with_out, digest(&d, CAPS).unwrap());

        // A FIFO is listed, never opened (opening one would wait for a writer).
        let fifo = d.join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) only reads the NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(digest(&d, CAPS).is_ok());
    }

    #[test]
    fn caps_refuse_before_reading() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("big");
        skill(&d, "x");
        for i in 0..5 {
            std::fs::write(d.join(format!("f{i}")), vec![b'x'; 1000]).unwrap();
        }
        let files = digest(&d, Caps { max_files: 3, max_bytes: u64::MAX }).unwrap_err();
        assert!(files.contains("more than 3 files"), "{files}");
        let bytes = digest(&d, Caps { max_files: 100, max_bytes: 2 * 1024 * 1024 });
        assert!(bytes.is_ok());
        let bytes = digest(&d, Caps { max_files: 100, max_bytes: 4000 }).unwrap_err();
        assert!(bytes.contains("more than 4000 bytes"), "{bytes}");
    }

    #[test]
    fn the_digester_reads_again_only_what_changed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("s");
        skill(&d, "one");
        let mut digester = Digester::default();
        let first = digester.digest(&d).unwrap();
        assert_eq!(first, digester.digest(&d).unwrap());
        std::fs::write(d.join("SKILL.md"), "two, longer").unwrap();
        let second = digester.digest(&d).unwrap();
        assert_ne!(first, second);
        assert_eq!(second, digest(&d, CAPS).unwrap());
        digester.keep_only(&HashSet::new());
        assert!(digester.kept.is_empty());
    }
}
