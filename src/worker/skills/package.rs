//! A pushed skill's package: a deterministic tar of the skill folder (`openclaw skills
//! push`), the pure checker that reads one back (coordinator and worker), and the install
//! of a checked package into a managed skills folder (worker).
//!
//! The format: POSIX ustar, one regular-file entry per file of the folder in digest order
//! (byte order of the `/`-separated relative path), mode `0755` when any exec bit is set
//! and `0644` otherwise, owner 0, no user or group names, modification time 0, no folder
//! entries, then two zero blocks. Its content digest ([`digest::digest_of_files`]) is the
//! folder's digest ([`digest::digest`]): one definition of "the skill's content". `tar tvf`
//! reads it.
//!
//! Invariants of [`unpack`] (pure: it writes nothing and reads nothing but its input): it
//! accepts only regular files (and folder entries, which add nothing) with relative paths
//! below the folder — no `..`, no absolute or drive paths, no backslashes, no NUL, no
//! install bookkeeping (`.git`, `.openclaw`) — no links of either kind, no devices or
//! FIFOs, no entry twice (nor two that differ only in case, which collide on macOS and
//! Windows), a `SKILL.md` at the top, within [`Limits`] (checked from the headers, before
//! any content is copied), with every header's checksum right and every byte the headers
//! announce present. Anything else is an [`Refused`] naming the entry and what to do.
//! [`install`] writes only into a hidden staging folder inside the managed folder, digests
//! what it wrote, and only then renames it into place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::digest::{self, CAPS};

/// The largest package (the tar's bytes): a skill that big is probably not one.
pub const MAX_PACKAGE_BYTES: u64 = 16 * 1024 * 1024;

const BLOCK: usize = 512;

/// What a package may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The tar's bytes.
    pub max_package: u64,
    /// Files (folder entries count too).
    pub max_files: usize,
    /// The files' bytes, summed.
    pub max_bytes: u64,
}

/// The limits every package is held to: the digest's caps, within [`MAX_PACKAGE_BYTES`].
pub const LIMITS: Limits =
    Limits { max_package: MAX_PACKAGE_BYTES, max_files: CAPS.max_files, max_bytes: MAX_PACKAGE_BYTES };

/// One file of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Below the skill folder, `/` between names.
    pub path: String,
    pub exec: bool,
    pub bytes: Vec<u8>,
}

/// A package refused, and why (the message names the entry and what to do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refuse(text: impl Into<String>) -> Refused {
    Refused(text.into())
}

/// A packed skill folder.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The skill's name: its `SKILL.md`'s `name`, else the folder's name.
    pub name: String,
    /// The folder's content digest (= the package's).
    pub digest: String,
    pub files: usize,
    pub tar: Vec<u8>,
}

/// Packs a skill folder (see the module for the format).
pub fn pack(dir: &Path) -> Result<Packed, String> {
    let (files, digest) = digest::read_files(dir, CAPS)?;
    let skill_md = files.iter().find(|(p, _, _)| p == "SKILL.md").ok_or_else(|| {
        format!("{} has no SKILL.md: a skill folder holds one at its top (see the skills guide)", dir.display())
    })?;
    let folder = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let folder_name = folder.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = skill_name(&skill_md.2, &folder_name).map_err(|e| format!("{}: {e}", dir.join("SKILL.md").display()))?;
    let mut tar = Vec::new();
    for (path, exec, bytes) in &files {
        tar.extend_from_slice(&header(path, *exec, bytes.len() as u64)?);
        tar.extend_from_slice(bytes);
        tar.resize(tar.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    tar.resize(tar.len() + 2 * BLOCK, 0);
    if tar.len() as u64 > MAX_PACKAGE_BYTES {
        return Err(format!(
            "{} packs into {} bytes, over the limit of {MAX_PACKAGE_BYTES} bytes for a pushed skill; leave large data out of the skill folder",
            dir.display(),
            tar.len()
        ));
    }
    Ok(Packed { name, digest, files: files.len(), tar })
}

/// The skill's name from its `SKILL.md` (`name`, else `fallback`, the folder's name),
/// checked as a folder name every platform accepts.
pub fn skill_name(skill_md: &[u8], fallback: &str) -> Result<String, String> {
    let text = String::from_utf8_lossy(skill_md);
    let fm = super::frontmatter::parse(&text)?;
    let name = fm.get("name").map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).unwrap_or(fallback.to_string());
    check_folder_name(&name)?;
    Ok(name)
}

/// A skill name that can be a folder's name on Linux, macOS and Windows.
pub fn check_folder_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 128
        || name.starts_with('.')
        || name.ends_with(['.', ' '])
        || name.chars().any(|c| c.is_control() || "/\\:*?\"<>|".contains(c));
    if bad {
        return Err(format!(
            "`{}` cannot be a pushed skill's folder name: use 1 to 128 characters, not starting with `.`, without / \\ : * ? \" < > | or control characters",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// A ustar header for a regular file.
fn header(path: &str, exec: bool, size: u64) -> Result<[u8; BLOCK], String> {
    let mut h = [0u8; BLOCK];
    let (prefix, name) = split_path(path)
        .ok_or_else(|| format!("`{path}`: a path longer than the tar format holds (100 bytes of name, 255 in all)"))?;
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], if exec { 0o755 } else { 0o644 });
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    octal(&mut h[148..155], sum as u64);
    h[155] = b' ';
    Ok(h)
}

/// `path` as ustar's prefix (up to 155 bytes) and name (up to 100), split at a `/`.
fn split_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    path.char_indices()
        .filter(|(_, c)| *c == '/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(p, n)| p.len() <= 155 && n.len() <= 100 && !n.is_empty())
}

/// An octal field: zero-padded digits and a NUL.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    field[width] = 0;
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// A NUL-terminated text field.
fn text(field: &[u8]) -> Result<&str, ()> {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).map_err(|_| ())
}

/// Reads a package back, checking everything the module promises; nothing is written.
pub fn unpack(tar: &[u8], limits: Limits) -> Result<Vec<File>, Refused> {
    if tar.len() as u64 > limits.max_package {
        return Err(refuse(format!(
            "the package is {} bytes, over the limit of {} bytes",
            tar.len(),
            limits.max_package
        )));
    }
    let mut files: Vec<File> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut folders: HashSet<String> = HashSet::new();
    let (mut at, mut count, mut bytes) = (0usize, 0usize, 0u64);
    loop {
        let Some(h) = tar.get(at..at + BLOCK) else {
            return Err(refuse(
                "the package ends without its end marker: it is truncated (a download cut short?); push it again",
            ));
        };
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let n = count + 1;
        let stored = parse_octal(&h[148..156]);
        let mut copy = [0u8; BLOCK];
        copy.copy_from_slice(h);
        copy[148..156].fill(b' ');
        let sum: u64 = copy.iter().map(|b| *b as u64).sum();
        if stored != Some(sum) {
            return Err(refuse(format!("entry {n}: its header is damaged (checksum mismatch); push the skill again")));
        }
        if &h[257..262] != b"ustar" {
            return Err(refuse(format!(
                "entry {n}: not a ustar header (GNU and PAX extensions are not accepted); pack it with `openclaw skills push`"
            )));
        }
        let name = text(&h[..100]).map_err(|_| refuse(format!("entry {n}: its path is not UTF-8")))?;
        let prefix = text(&h[345..500]).map_err(|_| refuse(format!("entry {n}: its path is not UTF-8")))?;
        let raw = if prefix.is_empty() { name.to_string() } else { format!("{prefix}/{name}") };
        let size = parse_octal(&h[124..136]).ok_or_else(|| refuse(format!("`{raw}`: its size field is damaged")))?;
        let kind = h[156];
        let path = check_path(&raw, kind == b'5')?;
        match kind {
            b'0' | 0 => {}
            b'5' => {}
            b'1' => return Err(refuse(format!("`{raw}` is a hard link; a pushed skill holds plain files only"))),
            b'2' => {
                let to = text(&h[157..257]).unwrap_or("?");
                let leaves = to.starts_with('/') || to.contains('\\') || escapes(&path, to);
                return Err(refuse(if leaves {
                    format!("`{raw}` is a symbolic link that leaves the skill folder (to `{to}`); it is refused")
                } else {
                    format!("`{raw}` is a symbolic link (to `{to}`); a pushed skill holds plain files only")
                }));
            }
            b'3' | b'4' => return Err(refuse(format!("`{raw}` is a device file; it is refused"))),
            b'6' => return Err(refuse(format!("`{raw}` is a FIFO; it is refused"))),
            other => {
                return Err(refuse(format!(
                    "`{raw}` has entry type `{}`, which a pushed skill cannot hold (plain files only)",
                    (other as char).escape_debug()
                )));
            }
        }
        count += 1;
        if count > limits.max_files {
            return Err(refuse(format!("the package holds more than {} entries", limits.max_files)));
        }
        if !seen.insert(path.to_lowercase()) {
            return Err(refuse(format!(
                "`{raw}` appears twice (or beside a name that differs only in case, which collide on macOS and Windows)"
            )));
        }
        at += BLOCK;
        if kind == b'5' {
            if size != 0 {
                return Err(refuse(format!("`{raw}`: a folder entry with content")));
            }
            folders.insert(path.to_lowercase());
            continue;
        }
        bytes += size;
        if bytes > limits.max_bytes {
            return Err(refuse(format!("the package's files hold more than {} bytes", limits.max_bytes)));
        }
        let end = at.checked_add(size as usize).filter(|end| *end <= tar.len()).ok_or_else(|| {
            refuse(format!("`{raw}`: the package ends inside this file: it is truncated (a download cut short?)"))
        })?;
        let exec = parse_octal(&h[100..108]).unwrap_or(0) & 0o111 != 0;
        files.push(File { path, exec, bytes: tar[at..end].to_vec() });
        at = end.div_ceil(BLOCK) * BLOCK;
    }
    // A file where another entry needs a folder.
    let lower: HashSet<String> = files.iter().map(|f| f.path.to_lowercase()).collect();
    for f in &files {
        let mut parent = f.path.to_lowercase();
        while let Some(i) = parent.rfind('/') {
            parent.truncate(i);
            if lower.contains(&parent) {
                return Err(refuse(format!("`{parent}` is a file and a folder at once")));
            }
        }
    }
    let _ = folders;
    if !files.iter().any(|f| f.path == "SKILL.md") {
        return Err(refuse("the package has no SKILL.md at its top; push the skill's folder itself"));
    }
    Ok(files)
}

/// Whether a relative link target, seen from `path`'s folder, climbs out of the skill folder.
fn escapes(path: &str, to: &str) -> bool {
    let mut depth = path.matches('/').count() as i64;
    for part in to.split('/') {
        match part {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// An entry's path checked as one below the skill folder (a folder entry may end in `/`).
fn check_path(raw: &str, folder: bool) -> Result<String, Refused> {
    let path = if folder { raw.strip_suffix('/').unwrap_or(raw) } else { raw };
    let bad = |why: &str| refuse(format!("`{}`: {why}; the entry is refused", raw.escape_debug()));
    if path.is_empty() {
        return Err(bad("an empty path"));
    }
    if path.starts_with('/') || path.as_bytes().get(1) == Some(&b':') {
        return Err(bad("an absolute path"));
    }
    if path.contains('\\') {
        return Err(bad("a backslash in a path"));
    }
    for part in path.split('/') {
        match part {
            ".." => return Err(bad("`..` would leave the skill folder")),
            "" | "." => return Err(bad("an empty or `.` part in the path")),
            ".git" | ".openclaw" => return Err(bad("install bookkeeping, not content")),
            _ if part.chars().any(|c| c.is_control()) => return Err(bad("a control character in the path")),
            _ => {}
        }
    }
    Ok(path.to_string())
}

/// The package's content digest (see the module).
pub fn digest(files: &[File]) -> String {
    digest::digest_of_files(files.iter().map(|f| (f.path.as_str(), f.exec, f.bytes.as_slice())))
}

/// Checks a package against the digest it was announced with and returns its files.
pub fn verify(tar: &[u8], expected: &str) -> Result<Vec<File>, Refused> {
    let files = unpack(tar, LIMITS)?;
    let got = digest(&files);
    if got != expected {
        return Err(refuse(format!(
            "the package's content is {} but {} was announced (damaged in transit?); it is refused",
            crate::model::short_digest(&got),
            crate::model::short_digest(expected)
        )));
    }
    Ok(files)
}

/// Installs checked `files` as `<managed>/<name>`: written into a hidden staging folder
/// beside it, digested again from disk, then renamed into place (a copy already there is
/// moved aside first, then removed). Returns the installed folder.
pub fn install(managed: &Path, name: &str, files: &[File], expected: &str) -> Result<PathBuf, String> {
    check_folder_name(name)?;
    std::fs::create_dir_all(managed).map_err(|e| format!("cannot create {}: {e}", managed.display()))?;
    let tag = crate::util::new_task_id();
    let staging = managed.join(format!(".openclaw-push-{name}-{tag}"));
    // Without exec bits (Windows) the copy's digest is that of the files without them.
    let here = if cfg!(unix) {
        expected.to_string()
    } else {
        digest::digest_of_files(files.iter().map(|f| (f.path.as_str(), false, f.bytes.as_slice())))
    };
    let result = write_staging(&staging, files).and_then(|()| {
        let got = digest::digest(&staging, CAPS)?;
        if got != here {
            return Err(format!(
                "the installed copy digests to {} instead of {} (the folder's file system changed it: exec bits, case?)",
                crate::model::short_digest(&got),
                crate::model::short_digest(&here)
            ));
        }
        Ok(())
    });
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let target = managed.join(name);
    let old = managed.join(format!(".openclaw-old-{name}-{tag}"));
    let had = std::fs::symlink_metadata(&target).is_ok();
    if had {
        std::fs::rename(&target, &old).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            format!("cannot move the old copy {} aside: {e}", target.display())
        })?;
    }
    if let Err(e) = std::fs::rename(&staging, &target) {
        if had {
            let _ = std::fs::rename(&old, &target);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(format!("cannot rename {} to {}: {e}", staging.display(), target.display()));
    }
    if had {
        remove_any(&old);
    }
    Ok(target)
}

/// Removes `<managed>/<name>` (moved aside first, so no half-removed skill is ever scanned).
pub fn uninstall(managed: &Path, name: &str) -> Result<(), String> {
    check_folder_name(name)?;
    let target = managed.join(name);
    if std::fs::symlink_metadata(&target).is_err() {
        return Ok(());
    }
    let old = managed.join(format!(".openclaw-old-{name}-{}", crate::util::new_task_id()));
    std::fs::rename(&target, &old).map_err(|e| format!("cannot remove {}: {e}", target.display()))?;
    remove_any(&old);
    Ok(())
}

fn remove_any(path: &Path) {
    let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
}

fn write_staging(staging: &Path, files: &[File]) -> Result<(), String> {
    std::fs::create_dir(staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    for f in files {
        let path = f.path.split('/').fold(staging.to_path_buf(), |p, part| p.join(part));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &f.bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        set_exec(&path, f.exec)?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_exec(path: &Path, exec: bool) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if exec { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

/// Windows has no exec bits: a skill with scripts digests differently there (the skills
/// guide says so), and the install's own digest check uses the same rule.
#[cfg(not(unix))]
fn set_exec(_: &Path, _: bool) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests;
