//! Skill discovery and gating, following OpenClaw 2026.9's loader point by point for the
//! worker's `skills_dir` folders (which OpenClaw would treat as `skills.load.extraDirs`).
//!
//! Discovery (OpenClaw's `skill-root-discovery.ts`): a dir holding a `skills/` folder with
//! skills in it is read from there; a dir that holds `SKILL.md` is one skill; otherwise its
//! sub-folders (not hidden, not `node_modules`, symbolic links followed) are searched up to
//! six levels deep (two when neither the dir nor the path is called `skills`), sorted, at
//! most 300 per folder and 200 skills per dir. A folder (or `SKILL.md`) whose real path
//! leaves the dir is skipped unless it is under OpenClaw's `skills.load.allowSymlinkTargets`;
//! so is a hard-linked or larger than 256,000-byte `SKILL.md`. Two skills with one name:
//! the later one wins (later in sorted order, later dir in the list), as in OpenClaw.
//!
//! Reading: [`frontmatter`] has the rules. The name is `name`, else the folder's name; a
//! missing `description` makes the file invalid. The manifest is `metadata.openclaw` (or
//! the legacy `metadata.clawdbot`).
//!
//! Gating (OpenClaw's `evaluateRequirementsFromMetadataWithRemote`): every requirement is
//! checked and every missing one reported. `os` (trimmed, lower-cased, `macos` = `darwin`)
//! must include this host; `always: true` waives bins, anyBins, env and config but not os;
//! `requires.bins` must all be executable on PATH; one of `requires.anyBins`;
//! `requires.env` must be set to something not blank (or in OpenClaw's
//! `skills.entries.<key>.env`, or be the `primaryEnv` with an `apiKey` there);
//! `requires.config` paths must be truthy in OpenClaw's config. `skills.entries.<key>.enabled:
//! false` disables a skill. An exec skill also needs its command's program (ours only).
//!
//! Ours only: `metadata.cluster.run` (or `run` in the Python original's `skill.json`, read
//! when a folder has no SKILL.md) makes an exec skill; any other skill is an agent skill.

pub mod digest;
pub mod frontmatter;
pub mod native;
pub mod package;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::openclaw::{self, Env, OpenClawConfig};

/// OpenClaw's discovery limits (`skill-root-discovery.ts`).
const MAX_DEPTH: usize = 6;
const MAX_DEPTH_OUTSIDE_SKILLS: usize = 2;
const MAX_CANDIDATES_PER_FOLDER: usize = 300;
const MAX_SKILLS_PER_DIR: usize = 200;
/// Raw entries read per folder (OpenClaw: ten per candidate, at least 1,000).
const MAX_ENTRIES_PER_FOLDER: usize = 3000;
pub const MAX_SKILL_FILE_BYTES: u64 = 256_000;

/// How a skill runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Kind {
    /// A command run in the skill's folder.
    Exec { argv: Vec<String> },
    /// A turn of the local OpenClaw agent.
    Agent,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Exec { .. } => "exec",
            Kind::Agent => "agent",
        }
    }
}

/// What keeps a skill from being eligible, in OpenClaw's vocabulary. `os` holds the
/// systems the skill needs when this host is not one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub bins: Vec<String>,
    #[serde(rename = "anyBins")]
    pub any_bins: Vec<String>,
    pub env: Vec<String>,
    pub config: Vec<String>,
    pub os: Vec<String>,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
            && self.any_bins.is_empty()
            && self.env.is_empty()
            && self.config.is_empty()
            && self.os.is_empty()
    }

    /// "bins: ffmpeg; env: API_KEY" for people.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.os.is_empty() {
            parts.push(format!("os: needs {}", self.os.join(" or ")));
        }
        if !self.bins.is_empty() {
            parts.push(format!("bins: {}", self.bins.join(", ")));
        }
        if !self.any_bins.is_empty() {
            parts.push(format!("anyBins: one of {}", self.any_bins.join(", ")));
        }
        if !self.env.is_empty() {
            parts.push(format!("env: {}", self.env.join(", ")));
        }
        if !self.config.is_empty() {
            parts.push(format!("config: {} (in OpenClaw's config)", self.config.join(", ")));
        }
        parts.join("; ")
    }
}

/// One skill found on disk (or listed by OpenClaw's CLI).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub eligible: bool,
    /// Turned off in OpenClaw's config (`skills.entries.<key>.enabled: false`).
    pub disabled: bool,
    pub missing: Missing,
    #[serde(flatten)]
    pub kind: Kind,
    /// The skill's folder (unknown for an OpenClaw skill whose folder was not found).
    pub path: Option<PathBuf>,
    /// Where it was found: a skills dir, or `openclaw:<source>` for OpenClaw's own.
    pub source: String,
    /// Things OpenClaw would read differently from what the author probably meant.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The environment variables it declares (`requires.env`, `primaryEnv`): the only
    /// ones, beyond the worker's allowlist, that an exec skill's command is given.
    #[serde(skip)]
    pub requires_env: Vec<String>,
    /// Exit codes of an exec skill's command that mean "retrying cannot help"
    /// (`metadata.cluster.permanent_exit_codes`): the task fails at once, its retries unspent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub permanent_exit_codes: Vec<i32>,
}

impl Skill {
    /// The SKILL.md's body with `{baseDir}` replaced: the instructions the agent gets.
    pub fn instructions(&self) -> Option<String> {
        let dir = self.path.as_ref()?;
        let text = std::fs::read(dir.join("SKILL.md")).ok()?;
        let body = frontmatter::body(&String::from_utf8_lossy(&text));
        Some(body.replace("{baseDir}", &dir.display().to_string()))
    }

    /// Where it came from, in the cluster's words ([`crate::model::SKILL_SOURCES`]).
    pub fn origin(&self) -> &'static str {
        match self.source.strip_prefix("openclaw:") {
            None => "skills_dir",
            Some("openclaw-bundled" | "openclaw-custodian") => "bundled",
            Some("openclaw-managed") => "managed",
            Some("agents-skills-personal") => "personal",
            Some("openclaw-workspace" | "agents-skills-project") => "workspace",
            Some("openclaw-extra") => "extra",
            Some("openclaw-workshop") => "workshop",
            Some(_) => "openclaw",
        }
    }

    /// Why the coordinator would refuse this name, if it would.
    pub fn unadvertisable(&self) -> Option<String> {
        if self.name.chars().count() > 128 {
            Some("the name is longer than the 128 characters a cluster node may advertise".into())
        } else if self.name.chars().any(char::is_control) {
            Some("the name contains control characters, which a cluster node may not advertise".into())
        } else {
            None
        }
    }
}

/// A skill file that OpenClaw would skip, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub error: String,
}

impl Problem {
    /// The skill folder's name, which stands in for the skill's unreadable name.
    pub fn folder_name(&self) -> String {
        let folder = if self.path.ends_with("SKILL.md") || self.path.ends_with("skill.json") {
            self.path.parent()
        } else {
            Some(self.path.as_path())
        };
        folder.and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// The result of a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Every skill found, sorted by name (of two with one name, the later one).
    pub skills: Vec<Skill>,
    pub problems: Vec<Problem>,
}

impl Scan {
    /// Names of eligible skills, sorted.
    pub fn eligible_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.skills.iter().filter(|s| s.eligible).map(|s| s.name.clone()).collect();
        names.sort();
        names
    }

    pub fn get(&self, name: &str) -> Option<&Skill> {
        self.skills.iter().find(|s| s.name == name)
    }
}

/// What gating looks at: the OS, PATH, the environment and OpenClaw's config.
#[derive(Debug, Clone)]
pub struct Host {
    /// OpenClaw's name for it: darwin, linux or win32.
    pub os: &'static str,
    pub path: Option<OsString>,
    pub env: Env,
    /// Relative PATH entries are relative to this.
    pub cwd: PathBuf,
    pub openclaw: OpenClawConfig,
}

impl Host {
    /// This process's host, with OpenClaw's config as OpenClaw would find it.
    pub fn current() -> Host {
        let env = openclaw::process_env();
        Host {
            os: openclaw_os(),
            path: std::env::var_os("PATH"),
            openclaw: openclaw::load_config(&env),
            env,
            cwd: std::env::current_dir().unwrap_or_default(),
        }
    }

    /// OpenClaw's `hasBinary`: `<dir>/<bin>` (plus PATHEXT's extensions on Windows)
    /// exists and is executable, for a PATH entry `dir`.
    fn has_bin(&self, bin: &str) -> bool {
        let Some(path) = &self.path else { return false };
        let exts: Vec<String> = if cfg!(windows) {
            let raw = self.env.get("PATHEXT").cloned().unwrap_or_else(|| ".EXE;.CMD;.BAT;.COM".into());
            std::iter::once(String::new())
                .chain(raw.split(';').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()))
                .collect()
        } else {
            vec![String::new()]
        };
        std::env::split_paths(path).filter(|d| !d.as_os_str().is_empty()).any(|dir| {
            let dir = self.cwd.join(dir);
            exts.iter().any(|ext| {
                let mut candidate = dir.clone().into_os_string();
                candidate.push(std::path::MAIN_SEPARATOR_STR);
                candidate.push(bin);
                candidate.push(ext);
                executable(Path::new(&candidate))
            })
        })
    }

    /// OpenClaw's `isSkillEnvRequirementSatisfied`.
    fn has_env(&self, key: &str, entry: Option<&serde_json::Map<String, Value>>, primary: Option<&str>) -> bool {
        let blank = |v: Option<&str>| v.is_none_or(|v| frontmatter::js_trim(v).is_empty());
        if !blank(self.env.get(key).map(String::as_str)) {
            return true;
        }
        if !blank(entry.and_then(|e| e.get("env")).and_then(|e| e.get(key)).and_then(Value::as_str)) {
            return true;
        }
        let api_key = entry.and_then(|e| e.get("apiKey"));
        let configured = match api_key {
            Some(Value::String(s)) => !frontmatter::js_trim(s).is_empty(),
            Some(Value::Object(r)) => {
                r.get("source").is_some_and(Value::is_string) && r.get("id").is_some_and(Value::is_string)
            }
            _ => false,
        };
        primary == Some(key) && configured
    }
}

#[cfg(unix)]
fn executable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: access(2) only reads the NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

#[cfg(not(unix))]
fn executable(p: &Path) -> bool {
    p.exists()
}

/// OpenClaw's OS name for this build.
pub fn openclaw_os() -> &'static str {
    if cfg!(target_os = "macos") {
        "darwin"
    } else if cfg!(windows) {
        "win32"
    } else {
        "linux"
    }
}

/// What a root's rules are: OpenClaw checks containment for most sources, and limits the
/// depth of `extraDirs` not called `skills`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// A `skills.load.extraDirs` entry (our skills dirs).
    Extra,
    /// A source whose folders must stay inside it (bundled, workspace).
    Contained,
    /// A source whose folders may be links elsewhere (managed, `~/.agents/skills`).
    Open,
}

/// A skills dir's skills and problems, the later of two same-named skills winning.
pub fn scan(dirs: &[PathBuf], host: &Host) -> Scan {
    let mut problems = Vec::new();
    let mut by_name: BTreeMap<String, Skill> = BTreeMap::new();
    let allowed = host.openclaw.allow_symlink_targets(&host.env);
    for dir in dirs {
        let source = dir.display().to_string();
        for skill in load_root(dir, Rules::Extra, &allowed, host, &source, &mut problems) {
            by_name.insert(skill.name.clone(), skill);
        }
    }
    Scan { skills: by_name.into_values().collect(), problems }
}

/// The skills of one root, in OpenClaw's order (later wins a name clash).
pub fn load_root(
    dir: &Path,
    rules: Rules,
    allowed: &[PathBuf],
    host: &Host,
    source: &str,
    problems: &mut Vec<Problem>,
) -> Vec<Skill> {
    let found = discover(dir, rules, allowed, problems);
    let mut out = Vec::new();
    for candidate in found.candidates {
        if out.len() >= MAX_SKILLS_PER_DIR && !found.root_is_skill {
            break;
        }
        match load(&candidate, host, source) {
            Ok(skill) => out.push(skill),
            Err(error) => problems.push(Problem { path: candidate.file(), error }),
        }
    }
    out
}

/// A folder that holds a skill file.
#[derive(Debug, Clone)]
struct Candidate {
    dir: PathBuf,
    /// Its path below the root, for ordering.
    name: String,
    json: bool,
}

impl Candidate {
    fn file(&self) -> PathBuf {
        self.dir.join(if self.json { "skill.json" } else { "SKILL.md" })
    }
}

struct Found {
    candidates: Vec<Candidate>,
    root_is_skill: bool,
}

/// OpenClaw's `hasSkillFileCandidate`: anything named SKILL.md is there (even a broken link).
fn has_skill_md(dir: &Path) -> bool {
    match std::fs::symlink_metadata(dir.join("SKILL.md")) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory),
    }
}

/// Ours: the Python original's skill.json, in a folder without SKILL.md.
fn has_skill_json(dir: &Path) -> bool {
    !has_skill_md(dir) && dir.join("skill.json").is_file()
}

/// JavaScript's default sort order (UTF-16 code units).
fn js_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// An approximation of `String.prototype.localeCompare` in English: punctuation before
/// digits before letters, case ignored first, then lower case before upper case.
fn locale_order(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| -> Vec<(u8, char)> {
        s.chars()
            .map(|c| {
                let class = if c.is_alphabetic() {
                    2
                } else if c.is_numeric() {
                    1
                } else {
                    0
                };
                (class, c.to_lowercase().next().unwrap_or(c))
            })
            .collect()
    };
    let case = |s: &str| -> Vec<bool> { s.chars().map(char::is_uppercase).collect() };
    key(a).cmp(&key(b)).then_with(|| case(a).cmp(&case(b))).then_with(|| js_order(a, b))
}

/// Sub-folders worth searching: folders and links to folders, not hidden, not
/// `node_modules`, in JavaScript's sort order.
fn child_dirs(dir: &Path, follow_links: bool) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .take(MAX_ENTRIES_PER_FOLDER)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "node_modules" {
                return None;
            }
            let ft = e.file_type().ok()?;
            let is_dir = ft.is_dir() || (follow_links && ft.is_symlink() && e.path().is_dir());
            is_dir.then_some(name)
        })
        .collect();
    out.sort_by(|a, b| js_order(a, b));
    out
}

/// The real path of `candidate` when it stays inside `root_real` or an allowed target.
fn contained(candidate: &Path, root_real: &Path, allowed: &[PathBuf], problems: &mut Vec<Problem>) -> Option<PathBuf> {
    let real = candidate.canonicalize().ok()?;
    if real.starts_with(root_real) || allowed.iter().any(|a| real.starts_with(a)) {
        return Some(real);
    }
    problems.push(Problem {
        path: candidate.to_path_buf(),
        error: format!(
            "resolves to {} outside its skills dir; OpenClaw skips it (allow the target with OpenClaw's skills.load.allowSymlinkTargets)",
            real.display()
        ),
    });
    None
}

/// OpenClaw's `resolveNestedSkillsRoot`: read `dir/skills` when the skills are there.
fn nested_root(dir: &Path) -> PathBuf {
    let nested = dir.join("skills");
    if !nested.is_dir() {
        return dir.to_path_buf();
    }
    if !has_skill_md(dir) && contains_skill_outside(dir, "skills") {
        return dir.to_path_buf();
    }
    let mut queue = vec![(nested.clone(), 0usize)];
    let mut i = 0;
    while i < queue.len() {
        let (d, depth) = queue[i].clone();
        i += 1;
        if has_skill_md(&d) {
            return nested;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        for child in child_dirs(&d, false).into_iter().take(MAX_CANDIDATES_PER_FOLDER) {
            queue.push((d.join(child), depth + 1));
        }
    }
    dir.to_path_buf()
}

/// OpenClaw's `containsDiscoverableSkill` (a link counts, as it may lead to skills).
fn contains_skill_outside(dir: &Path, skip: &str) -> bool {
    let mut queue = vec![(dir.to_path_buf(), 0usize)];
    let mut i = 0;
    while i < queue.len() {
        let (d, depth) = queue[i].clone();
        i += 1;
        if depth > 0 && has_skill_md(&d) {
            return true;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let skip_here = (depth == 0).then_some(skip);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.filter_map(Result::ok).take(MAX_ENTRIES_PER_FOLDER) {
                let name = e.file_name().to_string_lossy().into_owned();
                if Some(name.as_str()) == skip_here || name.starts_with('.') || name == "node_modules" {
                    continue;
                }
                if e.file_type().is_ok_and(|t| t.is_symlink()) {
                    return true;
                }
            }
        }
        for child in child_dirs(&d, false).into_iter().take(MAX_CANDIDATES_PER_FOLDER) {
            if depth == 0 && child == skip {
                continue;
            }
            queue.push((d.join(child), depth + 1));
        }
    }
    false
}

/// Whether a folder's SKILL.md may be read: a link must stay inside the skill's folder.
fn skill_file_ok(dir: &Path, real: &Path, problems: &mut Vec<Problem>) -> bool {
    let file = dir.join("SKILL.md");
    match file.canonicalize() {
        // A broken link: OpenClaw keeps the candidate and then finds nothing to read.
        Err(_) => true,
        Ok(_) => contained(&file, real, &[], problems).is_some(),
    }
}

/// OpenClaw's `discoverSkillCandidates` for one root.
fn discover(dir: &Path, rules: Rules, allowed: &[PathBuf], problems: &mut Vec<Problem>) -> Found {
    let none = Found { candidates: Vec::new(), root_is_skill: false };
    let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(root_real) = root.canonicalize() else { return none };
    let contain = |candidate: &Path, inside: &Path, problems: &mut Vec<Problem>| match rules {
        Rules::Open => candidate.canonicalize().ok(),
        Rules::Extra => contained(candidate, inside, allowed, problems),
        Rules::Contained => contained(candidate, inside, &[], problems),
    };
    let base = nested_root(&root);
    let Some(base_real) = contain(&base, &root_real, problems) else { return none };
    if has_skill_md(&base) || has_skill_json(&base) {
        let json = !has_skill_md(&base);
        let ok = json || skill_file_ok(&base, &base_real, problems);
        let name = base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let candidates = if ok { vec![Candidate { dir: base, name, json }] } else { Vec::new() };
        return Found { candidates, root_is_skill: true };
    }
    let nested_skills = base.join("skills");
    let base_is_nested = base == root.join("skills");
    let base_named_skills = base.file_name().is_some_and(|n| n == "skills");
    let children = child_dirs(&base, true);
    let mut limited: Vec<String> = children.iter().take(MAX_CANDIDATES_PER_FOLDER).cloned().collect();
    if children.iter().any(|c| c == "skills") && !limited.iter().any(|c| c == "skills") {
        limited.push("skills".into());
    }
    // The dir itself is a skill too, when its skills were read from `dir/skills`: then
    // OpenClaw reads only that one.
    if base != root && has_skill_md(&root) && skill_file_ok(&root, &root_real, problems) {
        let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Found { candidates: vec![Candidate { dir: root.clone(), name, json: false }], root_is_skill: false };
    }
    let mut queue: Vec<(PathBuf, String, usize)> = limited
        .into_iter()
        .map(|name| {
            let path = base.join(&name);
            let depth = if name == "skills" && !has_skill_md(&path) { 0 } else { 1 };
            (path, name, depth)
        })
        .collect();
    let mut candidates = Vec::new();
    let mut i = 0;
    while i < queue.len() {
        let (path, name, depth) = queue[i].clone();
        i += 1;
        let Some(real) = contain(&path, &base_real, problems) else { continue };
        if has_skill_md(&path) {
            if skill_file_ok(&path, &real, problems) {
                candidates.push(Candidate { dir: path, name, json: false });
            }
            continue;
        }
        if has_skill_json(&path) {
            candidates.push(Candidate { dir: path, name, json: true });
            continue;
        }
        let limit = if rules == Rules::Extra
            && !base_is_nested
            && !base_named_skills
            && path != nested_skills
            && !path.starts_with(&nested_skills)
        {
            MAX_DEPTH_OUTSIDE_SKILLS
        } else {
            MAX_DEPTH
        };
        if depth >= limit {
            continue;
        }
        for child in child_dirs(&path, true).into_iter().take(MAX_CANDIDATES_PER_FOLDER) {
            queue.push((path.join(&child), format!("{name}/{child}"), depth + 1));
        }
    }
    candidates.sort_by(|a, b| locale_order(&a.name, &b.name));
    Found { candidates, root_is_skill: false }
}

/// Reads SKILL.md as OpenClaw's `readSkillFileSync` does: not hard-linked, not too large.
fn read_skill_md(c: &Candidate) -> Result<String, String> {
    let file = c.dir.join("SKILL.md");
    let meta = std::fs::metadata(&file).map_err(|e| format!("cannot read: {e}"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err("SKILL.md is hard-linked; OpenClaw refuses hard-linked skill files outside its bundle".into());
        }
    }
    if meta.len() > MAX_SKILL_FILE_BYTES {
        return Err(format!("File exceeds {MAX_SKILL_FILE_BYTES} bytes (OpenClaw's skills.limits.maxSkillFileBytes)"));
    }
    let bytes = std::fs::read(&file).map_err(|e| format!("cannot read: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn load(c: &Candidate, host: &Host, source: &str) -> Result<Skill, String> {
    let folder = c.dir.file_name().map(|n| frontmatter::js_trim(&n.to_string_lossy()).to_string()).unwrap_or_default();
    let mut warnings = Vec::new();
    let (name, description, metadata, run) = if c.json {
        let text = std::fs::read_to_string(c.file()).map_err(|e| format!("cannot read: {e}"))?;
        parse_skill_json(&text)?
    } else {
        let text = read_skill_md(c)?;
        let fm = frontmatter::parse(&text)?;
        let name =
            fm.get("name").map(|n| frontmatter::js_trim(n).to_string()).filter(|n| !n.is_empty()).unwrap_or(folder);
        let description = fm.get("description").map(|d| frontmatter::js_trim(d).to_string()).unwrap_or_default();
        if name.is_empty() {
            return Err("name is required".into());
        }
        if description.is_empty() {
            return Err("description is required".into());
        }
        let metadata = frontmatter::metadata(&fm).unwrap_or_else(|why| {
            warnings.push(why);
            None
        });
        let run = command(
            metadata.as_ref().and_then(|m| m.get("cluster")).and_then(|c| c.get("run")),
            "metadata.cluster.run",
        )?;
        (name, description, metadata, run)
    };
    let kind = match run {
        Some(argv) => Kind::Exec { argv },
        None => Kind::Agent,
    };
    let permanent_exit_codes =
        exit_codes(metadata.as_ref().and_then(|m| m.get("cluster")).and_then(|c| c.get("permanent_exit_codes")))?;
    let manifest = metadata.as_ref().and_then(frontmatter::manifest);
    let key = manifest
        .and_then(|m| m.get("skillKey"))
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .or_else(|| source_origin_slug(&c.dir))
        .unwrap_or_else(|| name.clone());
    let entry = host.openclaw.skill_entry(&key);
    let disabled = entry.and_then(|e| e.get("enabled")) == Some(&Value::Bool(false));
    let missing = gate(manifest, &kind, &c.dir, host, entry);
    let eligible = !disabled && (missing.is_empty() || (always(manifest) && missing.os.is_empty()));
    let missing = if always(manifest) { Missing { os: missing.os, ..Missing::default() } } else { missing };
    let skill = Skill {
        name,
        description,
        eligible,
        disabled,
        missing,
        kind,
        path: Some(c.dir.clone()),
        source: source.to_string(),
        warnings,
        requires_env: frontmatter::list(manifest.and_then(|m| m.get("requires")).and_then(|r| r.get("env")))
            .into_iter()
            .chain(manifest.and_then(|m| m.get("primaryEnv")).and_then(Value::as_str).map(str::to_string))
            .collect(),
        permanent_exit_codes,
    };
    if let Some(why) = skill.unadvertisable() {
        let mut skill = skill;
        skill.warnings.push(why);
        return Ok(skill);
    }
    Ok(skill)
}

fn always(manifest: Option<&Value>) -> bool {
    manifest.and_then(|m| m.get("always")) == Some(&Value::Bool(true))
}

/// The slug of a skill installed from ClawHub (`.openclaw/source-origin.json`), which
/// OpenClaw uses as the skill's key.
fn source_origin_slug(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".openclaw").join("source-origin.json")).ok()?;
    if text.len() > 16384 {
        return None;
    }
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("slug").and_then(Value::as_str).map(frontmatter::js_trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// OpenClaw's requirements check, every requirement at once (`always` is applied by the
/// caller), plus an exec skill's program.
fn gate(
    manifest: Option<&Value>,
    kind: &Kind,
    folder: &Path,
    host: &Host,
    entry: Option<&serde_json::Map<String, Value>>,
) -> Missing {
    let mut missing = Missing::default();
    let requires = manifest.and_then(|m| m.get("requires")).filter(|r| r.is_object() || r.is_array());
    let list = |key: &str| frontmatter::list(requires.and_then(|r| r.get(key)));
    let os = frontmatter::list(manifest.and_then(|m| m.get("os")));
    let norm = |o: &str| {
        let o = frontmatter::js_trim(o).to_lowercase();
        if o == "macos" { "darwin".to_string() } else { o }
    };
    if !os.is_empty() && !os.iter().any(|o| norm(o) == host.os) {
        missing.os = os;
    }
    missing.bins = list("bins").into_iter().filter(|b| !host.has_bin(b)).collect();
    let any = list("anyBins");
    if !any.is_empty() && !any.iter().any(|b| host.has_bin(b)) {
        missing.any_bins = any;
    }
    let primary = manifest.and_then(|m| m.get("primaryEnv")).and_then(Value::as_str);
    missing.env = list("env").into_iter().filter(|k| !host.has_env(k, entry, primary)).collect();
    missing.config = list("config").into_iter().filter(|p| !host.openclaw.path_is_truthy(p)).collect();
    if let Kind::Exec { argv } = kind
        && let Some(program) = argv.first()
    {
        let local = folder.join(program);
        let found = if program.contains('/') || program.contains('\\') {
            local.is_file()
        } else {
            which::which_in(program, host.path.as_ref(), folder).is_ok() || local.is_file()
        };
        if !found && !missing.bins.contains(program) {
            missing.bins.push(program.clone());
        }
    }
    missing
}

type Parsed = (String, String, Option<Value>, Option<Vec<String>>);

/// Parses the original's skill.json (plus our `run`).
pub fn parse_skill_json(text: &str) -> Result<Parsed, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("skill.json is not valid JSON: {e}"))?;
    if !doc.is_object() {
        return Err("skill.json is not a JSON object".into());
    }
    let name = match doc.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::String(_)) | None | Some(Value::Null) => return Err("`name` is missing or empty".into()),
        Some(_) => return Err("`name` must be a string".into()),
    };
    let description = doc.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
    let run = command(doc.get("run"), "run")?;
    let metadata = doc.get("metadata").cloned().filter(Value::is_object);
    Ok((name, description, metadata, run))
}

/// `metadata.cluster.permanent_exit_codes`: a list of exit codes from 1 to 255.
fn exit_codes(v: Option<&Value>) -> Result<Vec<i32>, String> {
    let key = "metadata.cluster.permanent_exit_codes";
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i.as_i64() {
                Some(n @ 1..=255) => Ok(n as i32),
                _ => Err(format!("{key}: every entry must be an exit code from 1 to 255, got {i}")),
            })
            .collect(),
        Some(other) => Err(format!("{key}: must be a list of exit codes, got {other}")),
    }
}

/// A command: an argv list, or one line split like a shell would (without running one).
fn command(v: Option<&Value>, key: &str) -> Result<Option<Vec<String>>, String> {
    let argv = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(line)) => shlex::split(line)
            .ok_or_else(|| format!("{key}: cannot split `{line}` into arguments (unbalanced quotes?)"))?,
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(|| format!("{key}: every argument must be a string")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(format!("{key}: must be a list of arguments or a command line"));
        }
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err(format!("{key}: the command is empty"));
    }
    Ok(Some(argv))
}

#[cfg(test)]
mod tests;
