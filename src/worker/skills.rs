//! Skill discovery and OpenClaw's gating.
//!
//! A skill is a folder holding `SKILL.md` (OpenClaw / AgentSkills format: YAML frontmatter
//! with `name`, `description`, `metadata`) or the Python original's `skill.json`. Folders
//! are searched up to six levels below each skills dir; the first dir wins a name clash.
//! `metadata` may be nested YAML, a multi-line JSON5 object (trailing commas allowed) or a
//! one-line JSON string; `metadata.openclaw` (older: `metadata.clawdbot`) holds the gates.
//!
//! Eligibility, in OpenClaw's order: `os` must include this host → `always: true` admits
//! → every `requires.bins` on PATH → one of `requires.anyBins` on PATH → every
//! `requires.env` set. `requires.config` names OpenClaw settings we cannot see: reported as
//! not checked, treated as met. An exec skill also needs its command's program.
//!
//! A skill that declares a command (`metadata.cluster.run`, or `run` in skill.json) is an
//! exec skill; any other is an agent skill, run by the local OpenClaw gateway.
//! A file that does not parse is reported with its error and skipped.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

/// How deep below a skills dir a skill folder may be.
const MAX_DEPTH: usize = 6;

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

/// What keeps a skill from being eligible, in OpenClaw's vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub bins: Vec<String>,
    #[serde(rename = "anyBins")]
    pub any_bins: Vec<String>,
    pub env: Vec<String>,
    /// OpenClaw config paths; never checked here.
    pub config: Vec<String>,
    pub os: Vec<String>,
}

impl Missing {
    /// Nothing that blocks (config is not checked, so it never blocks).
    pub fn is_met(&self) -> bool {
        self.bins.is_empty() && self.any_bins.is_empty() && self.env.is_empty() && self.os.is_empty()
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
            parts.push(format!("config: {} (not checked)", self.config.join(", ")));
        }
        parts.join("; ")
    }
}

/// One skill found on disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skill {
    pub name: String,
    pub description: String,
    pub eligible: bool,
    pub missing: Missing,
    #[serde(flatten)]
    pub kind: Kind,
    /// The skill's folder.
    pub path: PathBuf,
    /// The skills dir it was found under.
    pub source: PathBuf,
    /// The environment variables it declares (`requires.env`, `primaryEnv`): the only
    /// ones, beyond the worker's allowlist, that its command is given.
    #[serde(skip)]
    pub requires_env: Vec<String>,
}

/// A skill file that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub error: String,
}

impl Problem {
    /// The skill folder's name, which stands in for the skill's unreadable name.
    pub fn folder_name(&self) -> String {
        self.path.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }
}

/// The result of a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scan {
    /// Every skill found, in discovery order (later same-named ones are dropped).
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

/// What gating looks at: the OS, PATH and environment variables.
#[derive(Debug, Clone)]
pub struct Host {
    /// OpenClaw's name for it: darwin, linux or win32.
    pub os: &'static str,
    pub path: Option<OsString>,
    pub env: BTreeMap<String, String>,
}

impl Host {
    /// This process's host.
    pub fn current() -> Host {
        Host { os: openclaw_os(), path: std::env::var_os("PATH"), env: crate::config::utf8_vars().collect() }
    }

    fn has_bin(&self, bin: &str, cwd: &Path) -> bool {
        which::which_in(bin, self.path.as_ref(), cwd).is_ok()
    }

    fn has_env(&self, key: &str) -> bool {
        self.env.get(key).is_some_and(|v| !v.is_empty())
    }
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

/// Scans the skills dirs.
pub fn scan(dirs: &[PathBuf], host: &Host) -> Scan {
    let mut out = Scan::default();
    let mut seen = HashSet::new();
    for dir in dirs {
        let mut folders = Vec::new();
        find_skill_folders(dir, 0, &mut folders);
        for (folder, file) in folders {
            match load(&folder, &file, dir, host) {
                Ok(skill) => {
                    if seen.insert(skill.name.clone()) {
                        out.skills.push(skill);
                    }
                }
                Err(error) => out.problems.push(Problem { path: file, error }),
            }
        }
    }
    out
}

/// Folders holding `SKILL.md` or `skill.json`, sorted, without descending into a skill.
fn find_skill_folders(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, PathBuf)>) {
    for file in ["SKILL.md", "skill.json"] {
        let candidate = dir.join(file);
        if candidate.is_file() {
            out.push((dir.to_path_buf(), candidate));
            return;
        }
    }
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        // Follows symbolic links (a common way to install skills); MAX_DEPTH bounds loops.
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name != "node_modules"
        })
        .map(|e| e.path())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        find_skill_folders(&sub, depth + 1, out);
    }
}

fn load(folder: &Path, file: &Path, source: &Path, host: &Host) -> Result<Skill, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    let is_json = file.file_name().is_some_and(|n| n == "skill.json");
    let (name, description, metadata, run) = if is_json { parse_skill_json(&text)? } else { parse_skill_md(&text)? };
    check_name(&name)?;
    let kind = match run {
        Some(argv) => Kind::Exec { argv },
        None => Kind::Agent,
    };
    let gates = metadata.get("openclaw").or_else(|| metadata.get("clawdbot")).cloned().unwrap_or(Value::Null);
    let missing = gate(&gates, &kind, folder, host);
    Ok(Skill {
        name,
        description,
        eligible: missing.is_met(),
        missing,
        kind,
        path: folder.to_path_buf(),
        source: source.to_path_buf(),
        requires_env: ["/requires/env", "/primaryEnv"]
            .iter()
            .filter_map(|p| gates.pointer(p))
            .flat_map(|v| v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]))
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    })
}

/// Applies OpenClaw's gates (and, for exec skills, the command's program).
fn gate(gates: &Value, kind: &Kind, folder: &Path, host: &Host) -> Missing {
    let list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let mut missing = Missing::default();
    let requires = gates.get("requires");
    missing.config = list(requires.and_then(|r| r.get("config")));
    let os = list(gates.get("os"));
    if !os.is_empty() && !os.iter().any(|o| o == host.os) {
        missing.os = os;
        return missing;
    }
    if gates.get("always").and_then(Value::as_bool) == Some(true) {
        return missing;
    }
    missing.bins =
        list(requires.and_then(|r| r.get("bins"))).into_iter().filter(|b| !host.has_bin(b, folder)).collect();
    let any = list(requires.and_then(|r| r.get("anyBins")));
    if !any.is_empty() && !any.iter().any(|b| host.has_bin(b, folder)) {
        missing.any_bins = any;
    }
    missing.env = list(requires.and_then(|r| r.get("env"))).into_iter().filter(|k| !host.has_env(k)).collect();
    if let Kind::Exec { argv } = kind
        && let Some(program) = argv.first()
    {
        let local = folder.join(program);
        let found = if program.contains('/') || program.contains('\\') {
            local.is_file()
        } else {
            host.has_bin(program, folder) || local.is_file()
        };
        if !found && !missing.bins.contains(program) {
            missing.bins.push(program.clone());
        }
    }
    missing
}

type Parsed = (String, String, Value, Option<Vec<String>>);

/// Parses a SKILL.md: frontmatter between `---` lines.
pub fn parse_skill_md(text: &str) -> Result<Parsed, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("---") {
        return Err("SKILL.md does not start with a `---` frontmatter line".into());
    }
    let mut front = Vec::new();
    let mut closed = false;
    for line in lines {
        if line.trim_end() == "---" {
            closed = true;
            break;
        }
        front.push(line);
    }
    if !closed {
        return Err("SKILL.md frontmatter has no closing `---` line".into());
    }
    let front = front.join("\n");
    let mut doc: Value = match yaml(&front) {
        Ok(v) => v,
        Err(yaml_error) => {
            parse_with_json5_metadata(&front).ok_or_else(|| format!("frontmatter is not valid YAML: {yaml_error}"))?
        }
    };
    if !doc.is_object() {
        return Err("frontmatter is not a mapping of keys".into());
    }
    let metadata = match doc.get_mut("metadata").map(Value::take) {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::String(s)) => {
            json5::from_str::<Value>(&s).map_err(|e| format!("metadata is a string but not JSON: {e}"))?
        }
        Some(m @ Value::Object(_)) => m,
        Some(_) => return Err("metadata must be a mapping or a JSON object".into()),
    };
    let name = required_str(&doc, "name")?;
    let description = required_str(&doc, "description")?;
    let run = command(metadata.get("cluster").and_then(|c| c.get("run")), "metadata.cluster.run")?;
    Ok((name, description, metadata, run))
}

/// The frontmatter with its `metadata:` block read as JSON5 (what YAML may refuse).
fn parse_with_json5_metadata(front: &str) -> Option<Value> {
    let lines: Vec<&str> = front.lines().collect();
    let start = lines.iter().position(|l| l.starts_with("metadata:"))?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with(' ') && !l.starts_with('\t'))
        .map_or(lines.len(), |p| start + 1 + p);
    let inline = lines[start].trim_start_matches("metadata:");
    let block = std::iter::once(inline).chain(lines[start + 1..end].iter().copied()).collect::<Vec<_>>().join("\n");
    let metadata: Value = json5::from_str(block.trim()).ok()?;
    let rest: Vec<&str> = lines[..start].iter().chain(lines[end..].iter()).copied().collect();
    let mut doc: Value = yaml(&rest.join("\n")).ok()?;
    if doc.is_null() {
        doc = Value::Object(Default::default());
    }
    doc.as_object_mut()?.insert("metadata".into(), metadata);
    Some(doc)
}

/// YAML to JSON values, with one-line errors (they end up in log lines).
fn yaml(text: &str) -> Result<Value, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, serde_saphyr::options! { with_snippet: false })
}

/// Parses the original's skill.json (plus our `run`).
pub fn parse_skill_json(text: &str) -> Result<Parsed, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("skill.json is not valid JSON: {e}"))?;
    if !doc.is_object() {
        return Err("skill.json is not a JSON object".into());
    }
    let name = required_str(&doc, "name")?;
    let description = doc.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
    let run = command(doc.get("run"), "run")?;
    let metadata =
        doc.get("metadata").cloned().filter(Value::is_object).unwrap_or_else(|| Value::Object(Default::default()));
    Ok((name, description, metadata, run))
}

/// The coordinator's rule for skill names: 1-128 characters, no control characters.
fn check_name(name: &str) -> Result<(), String> {
    if name.chars().count() > 128 {
        return Err(format!("`name` is longer than 128 characters ({})", name.chars().count()));
    }
    if name.chars().any(char::is_control) {
        return Err("`name` contains control characters".into());
    }
    Ok(())
}

fn required_str(doc: &Value, key: &str) -> Result<String, String> {
    match doc.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(format!("`{key}` is missing or empty")),
        Some(_) => Err(format!("`{key}` must be a string")),
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
mod tests {
    use super::*;

    /// OpenClaw's bundled 1password skill, verbatim (reference/openclaw.md).
    const ONEPASSWORD: &str = r#"---
name: 1password
description: Set up and use 1Password CLI (op). Use when installing the CLI, enabling desktop app integration, signing in (single or multi-account), or reading/injecting/running secrets via op.
homepage: https://developer.1password.com/docs/cli/get-started/
metadata:
  {
    "openclaw":
      {
        "emoji": "🔐",
        "requires": { "bins": ["op"] },
        "install":
          [
            {
              "id": "brew",
              "kind": "brew",
              "formula": "1password-cli",
              "bins": ["op"],
              "label": "Install 1Password CLI (brew)",
            },
          ],
      },
  }
---

# 1Password
"#;

    fn host(path: Option<&Path>, env: &[(&str, &str)]) -> Host {
        Host {
            os: openclaw_os(),
            path: path.map(|p| p.as_os_str().to_owned()),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[cfg(unix)]
    fn fake_bin(dir: &Path, name: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_1password_frontmatter_parses() {
        let (name, description, metadata, run) = parse_skill_md(ONEPASSWORD).unwrap();
        assert_eq!(name, "1password");
        assert!(description.starts_with("Set up and use 1Password CLI"));
        assert_eq!(metadata["openclaw"]["requires"]["bins"], serde_json::json!(["op"]));
        assert_eq!(metadata["openclaw"]["emoji"], "🔐");
        assert_eq!(run, None);
    }

    #[test]
    fn json5_metadata_with_trailing_commas_and_unquoted_keys_parses() {
        let text = "---\nname: a\ndescription: d\nmetadata:\n  {\n    openclaw: { requires: { env: ['TOKEN',], }, },\n    // a comment\n  }\n---\n";
        let (_, _, metadata, _) = parse_skill_md(text).unwrap();
        assert_eq!(metadata["openclaw"]["requires"]["env"], serde_json::json!(["TOKEN"]));
    }

    #[test]
    fn one_line_json_metadata_parses() {
        let text = "---\nname: a\ndescription: d\nmetadata: '{\"openclaw\": {\"os\": [\"darwin\"]}, \"cluster\": {\"run\": \"python3 main.py --x ''a b''\"}}'\n---\n";
        let (_, _, metadata, run) = parse_skill_md(text).unwrap();
        assert_eq!(metadata["openclaw"]["os"], serde_json::json!(["darwin"]));
        assert_eq!(run.unwrap(), vec!["python3", "main.py", "--x", "a b"]);
    }

    #[test]
    fn nested_yaml_and_legacy_clawdbot_parse() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet/SKILL.md",
            "---\nname: fleet\ndescription: d\nmetadata:\n  clawdbot:\n    requires:\n      env: [MOLTBOOK_API_KEY]\n---\n",
        );
        let scan = scan(&[dir.path().into()], &host(None, &[]));
        let s = scan.get("fleet").unwrap();
        assert!(!s.eligible);
        assert_eq!(s.missing.env, vec!["MOLTBOOK_API_KEY"]);
        let scan2 = super::scan(&[dir.path().into()], &host(None, &[("MOLTBOOK_API_KEY", "x")]));
        assert!(scan2.get("fleet").unwrap().eligible);
    }

    #[test]
    fn skill_json_is_read_with_its_run() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "legacy/skill.json",
            r#"{"name": "weather", "description": "w", "category": "network", "run": ["sh", "-c", "echo"]}"#,
        );
        write(dir.path(), "agentish/skill.json", r#"{"name": "notes", "dependencies": [{"name": "x"}]}"#);
        let scan = scan(&[dir.path().into()], &Host::current());
        assert_eq!(
            scan.get("weather").unwrap().kind,
            Kind::Exec { argv: vec!["sh".into(), "-c".into(), "echo".into()] }
        );
        assert_eq!(scan.get("notes").unwrap().kind, Kind::Agent);
    }

    #[test]
    fn malformed_files_are_problems_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a/SKILL.md", "no frontmatter");
        write(dir.path(), "b/SKILL.md", "---\nname: [unclosed\n---\n");
        write(dir.path(), "c/SKILL.md", "---\ndescription: no name\n---\n");
        write(dir.path(), "d/skill.json", "{not json");
        write(
            dir.path(),
            "e/SKILL.md",
            "---\nname: e\ndescription: d\nmetadata:\n  cluster:\n    run: \"unbalanced 'quote\"\n---\n",
        );
        write(dir.path(), "f/SKILL.md", "---\nname: ok\ndescription: fine\n---\n");
        write(dir.path(), "g/SKILL.md", &format!("---\nname: {}\ndescription: d\n---\n", "n".repeat(129)));
        let scan = scan(&[dir.path().into()], &host(None, &[]));
        assert_eq!(scan.problems.len(), 6, "{:?}", scan.problems);
        assert!(scan.problems.iter().any(|p| p.error.contains("longer than 128")));
        assert!(scan.problems.iter().any(|p| p.error.contains("`name` is missing")));
        assert_eq!(scan.eligible_names(), vec!["ok"]);
    }

    #[cfg(unix)]
    #[test]
    fn gating_follows_path_env_and_os() {
        let dir = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        write(dir.path(), "needs-op/SKILL.md", ONEPASSWORD);
        write(
            dir.path(),
            "any/SKILL.md",
            "---\nname: any\ndescription: d\nmetadata: {openclaw: {requires: {anyBins: [zzz-none, op]}}}\n---\n",
        );
        write(
            dir.path(),
            "wrong-os/SKILL.md",
            "---\nname: wrong-os\ndescription: d\nmetadata: {openclaw: {os: [plan9], always: true}}\n---\n",
        );
        write(
            dir.path(),
            "always/SKILL.md",
            "---\nname: always\ndescription: d\nmetadata: {openclaw: {always: true, requires: {bins: [zzz-none], config: [browser.enabled]}}}\n---\n",
        );
        let without = scan(&[dir.path().into()], &host(Some(bin.path()), &[]));
        assert_eq!(without.get("1password").unwrap().missing.bins, vec!["op"]);
        assert_eq!(without.get("any").unwrap().missing.any_bins, vec!["zzz-none", "op"]);
        assert_eq!(without.get("wrong-os").unwrap().missing.os, vec!["plan9"]);
        let always = without.get("always").unwrap();
        assert!(always.eligible && always.missing.config == vec!["browser.enabled"]);
        fake_bin(bin.path(), "op");
        let with = scan(&[dir.path().into()], &host(Some(bin.path()), &[]));
        assert_eq!(with.eligible_names(), vec!["1password", "always", "any"]);
    }

    #[test]
    fn discovery_goes_six_levels_deep_and_the_first_dir_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write(a.path(), "1/2/3/4/5/deep/SKILL.md", "---\nname: deep\ndescription: d\n---\n");
        write(a.path(), "1/2/3/4/5/6/too-deep/SKILL.md", "---\nname: too-deep\ndescription: d\n---\n");
        write(a.path(), "x/SKILL.md", "---\nname: shared\ndescription: from a\n---\n");
        write(b.path(), "y/SKILL.md", "---\nname: shared\ndescription: from b\n---\n");
        write(a.path(), ".git/hidden/SKILL.md", "---\nname: hidden\ndescription: d\n---\n");
        let scan = scan(&[a.path().into(), b.path().into()], &host(None, &[]));
        assert_eq!(scan.eligible_names(), vec!["deep", "shared"]);
        assert_eq!(scan.get("shared").unwrap().description, "from a");
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_skill_folders_are_found() {
        let a = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        write(elsewhere.path(), "linked/SKILL.md", "---\nname: linked\ndescription: d\n---\n");
        std::os::unix::fs::symlink(elsewhere.path().join("linked"), a.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(a.path(), a.path().join("loop")).unwrap();
        let scan = scan(&[a.path().into()], &host(None, &[]));
        assert_eq!(scan.eligible_names(), vec!["linked"]);
    }

    #[test]
    fn an_exec_skill_needs_its_program() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "s/SKILL.md",
            "---\nname: s\ndescription: d\nmetadata:\n  cluster:\n    run: [zzz-no-such-program, x]\n---\n",
        );
        write(
            dir.path(),
            "t/SKILL.md",
            "---\nname: t\ndescription: d\nmetadata:\n  cluster:\n    run: [./run.sh]\n---\n",
        );
        write(dir.path(), "t/run.sh", "#!/bin/sh\n");
        let scan = scan(&[dir.path().into()], &host(None, &[]));
        assert_eq!(scan.get("s").unwrap().missing.bins, vec!["zzz-no-such-program"]);
        assert!(scan.get("t").unwrap().eligible);
    }
}
