//! The local OpenClaw installation as the worker sees it: where OpenClaw keeps its state
//! and config (with OpenClaw's own environment overrides), what that config says about the
//! gateway and skills, and where OpenClaw's own CLI is (its skills listing is read by
//! `super::skills::native`).
//!
//! Invariants:
//! - Paths are resolved as OpenClaw 2026.9 resolves them: home is `OPENCLAW_HOME`, else
//!   `HOME`, else `USERPROFILE`; the state dir is `OPENCLAW_STATE_DIR`, else `~/.openclaw`
//!   (or the legacy `~/.clawdbot` when only that exists); the config file is
//!   `OPENCLAW_CONFIG_PATH`, else the first existing of `<state>/openclaw.json`,
//!   `<state>/clawdbot.json` and the default dirs' files, else `<state>/openclaw.json`.
//!   The file is JSON5; `${VAR}` in its strings is replaced from the environment.
//! - OpenClaw's CLI is also called `openclaw`: a candidate is taken only when it is a
//!   script or resolves into the npm package `openclaw`, never when it is this executable.
//! - The gateway token read from OpenClaw's config is never logged (`GatewaySettings`'s
//!   `Debug` leaves it out).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Environment variables as a map, so every lookup here can be tested without touching the
/// process's own environment.
pub type Env = BTreeMap<String, String>;

/// The port OpenClaw's gateway uses when nothing says otherwise.
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;

/// The OpenClaw command that turns on the OpenAI-compatible chat endpoint.
pub const ENABLE_CHAT_COMMAND: &str = "openclaw config set gateway.http.endpoints.chatCompletions.enabled true";

/// A non-blank value, as OpenClaw reads its variables (`undefined`/`null` count as unset).
pub fn var<'a>(env: &'a Env, key: &str) -> Option<&'a str> {
    env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty() && *v != "undefined" && *v != "null")
}

/// The operating system's idea of home: `HOME`, else `USERPROFILE`.
fn os_home(env: &Env) -> Option<PathBuf> {
    var(env, "HOME").or_else(|| var(env, "USERPROFILE")).map(PathBuf::from)
}

/// OpenClaw's effective home: `OPENCLAW_HOME` (a leading `~` is the OS home), else the OS
/// home, else the working directory.
pub fn home(env: &Env) -> PathBuf {
    let explicit = var(env, "OPENCLAW_HOME").map(|h| expand_tilde(h, os_home(env).as_deref()));
    let home = explicit.or_else(|| os_home(env)).unwrap_or_else(|| PathBuf::from("."));
    absolute(&home)
}

fn expand_tilde(text: &str, home: Option<&Path>) -> PathBuf {
    let rest = text.strip_prefix('~').filter(|r| r.is_empty() || r.starts_with('/') || r.starts_with('\\'));
    match (rest, home) {
        (Some(rest), Some(home)) => home.join(rest.trim_start_matches(['/', '\\'])),
        _ => PathBuf::from(text),
    }
}

/// A user-given path as OpenClaw resolves it: trimmed, `~` expanded, made absolute.
pub fn user_path(text: &str, env: &Env) -> PathBuf {
    absolute(&expand_tilde(text.trim(), Some(&home(env))))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Where OpenClaw keeps its state and its config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
}

/// Resolves OpenClaw's state dir and config file the way OpenClaw does.
pub fn locations(env: &Env) -> Locations {
    let home = home(env);
    let default_dirs = [home.join(".openclaw"), home.join(".clawdbot")];
    let state_dir = match var(env, "OPENCLAW_STATE_DIR") {
        Some(dir) => user_path(dir, env),
        None => default_dirs.iter().find(|d| d.exists()).cloned().unwrap_or_else(|| default_dirs[0].clone()),
    };
    let config_path = match var(env, "OPENCLAW_CONFIG_PATH") {
        Some(p) => user_path(p, env),
        None => {
            let mut candidates = Vec::new();
            let state_override = var(env, "OPENCLAW_STATE_DIR").is_some();
            let dirs: Vec<&Path> = if state_override {
                std::iter::once(state_dir.as_path()).chain(default_dirs.iter().map(PathBuf::as_path)).collect()
            } else {
                default_dirs.iter().map(PathBuf::as_path).collect()
            };
            for dir in dirs {
                candidates.push(dir.join("openclaw.json"));
                candidates.push(dir.join("clawdbot.json"));
            }
            candidates.into_iter().find(|c| c.exists()).unwrap_or_else(|| state_dir.join("openclaw.json"))
        }
    };
    Locations { state_dir, config_path }
}

/// OpenClaw's config file, read. Its `Debug` leaves the values out: they hold secrets.
#[derive(Clone, Default)]
pub struct OpenClawConfig {
    pub path: PathBuf,
    pub state_dir: PathBuf,
    /// The file exists.
    pub found: bool,
    /// The config with `${VAR}`s replaced; `{}` when there is no file or it does not parse.
    pub value: Value,
    /// Why the file could not be used, for people.
    pub error: Option<String>,
    /// `${VAR}`s whose variable is unset (OpenClaw refuses such a config), with their key.
    pub missing_vars: Vec<(String, String)>,
}

/// Reads OpenClaw's config file (JSON5). A missing file is an empty config, as for OpenClaw.
pub fn load_config(env: &Env) -> OpenClawConfig {
    let loc = locations(env);
    let mut cfg = OpenClawConfig {
        path: loc.config_path.clone(),
        state_dir: loc.state_dir,
        value: Value::Object(Default::default()),
        ..Default::default()
    };
    let text = match std::fs::read_to_string(&loc.config_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return cfg,
        Err(e) => {
            cfg.found = true;
            cfg.error = Some(format!("cannot read OpenClaw's config {}: {e}", loc.config_path.display()));
            return cfg;
        }
    };
    cfg.found = true;
    let parsed = serde_json::from_str::<Value>(&text).or_else(|_| json5::from_str::<Value>(&text));
    match parsed {
        Ok(mut v @ Value::Object(_)) => {
            substitute_vars(&mut v, env, "", &mut cfg.missing_vars);
            cfg.value = v;
        }
        Ok(_) => cfg.error = Some(format!("OpenClaw's config {} is not a JSON5 object", loc.config_path.display())),
        Err(e) => cfg.error = Some(format!("OpenClaw's config {} is not valid JSON5: {e}", loc.config_path.display())),
    }
    cfg
}

impl std::fmt::Debug for OpenClawConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenClawConfig")
            .field("path", &self.path)
            .field("found", &self.found)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Replaces `${VAR}` (uppercase names) in every string; `$${VAR}` is a literal `${VAR}`.
fn substitute_vars(v: &mut Value, env: &Env, at: &str, missing: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) if s.contains('$') => *s = substitute(s, env, at, missing),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_vars(item, env, &format!("{at}[{i}]"), missing);
            }
        }
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                substitute_vars(item, env, &path, missing);
            }
        }
        _ => {}
    }
}

fn substitute(s: &str, env: &Env, at: &str, missing: &mut Vec<(String, String)>) -> String {
    let is_name = |n: &str| {
        let mut chars = n.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    };
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (escaped, open) = if tail.starts_with("$${") { (true, 3) } else { (false, 2) };
        if (escaped || tail.starts_with("${"))
            && let Some(end) = tail[open..].find('}')
            && is_name(&tail[open..open + end])
        {
            let name = &tail[open..open + end];
            match env.get(name).filter(|v| !v.is_empty()) {
                _ if escaped => out.push_str(&format!("${{{name}}}")),
                Some(value) => out.push_str(value),
                None => {
                    missing.push((name.to_string(), at.to_string()));
                    out.push_str(&format!("${{{name}}}"));
                }
            }
            rest = &tail[open + end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// JavaScript's truthiness of a config value, as OpenClaw's `requires.config` uses it.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// Keys OpenClaw never walks into.
fn blocked_key(k: &str) -> bool {
    matches!(k, "__proto__" | "prototype" | "constructor")
}

impl OpenClawConfig {
    /// The value at a dotted path (`gateway.auth.token`); extra dots are ignored.
    pub fn get(&self, dotted: &str) -> Option<&Value> {
        let mut cur = &self.value;
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            if blocked_key(part) {
                return None;
            }
            cur = match cur {
                Value::Object(m) => m.get(part)?,
                Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    fn str_at(&self, dotted: &str) -> Option<&str> {
        self.get(dotted).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }

    /// Whether a `requires.config` path is met: truthy in the config, or one of OpenClaw's
    /// defaults (`browser.enabled`, `browser.evaluateEnabled` are on unless set).
    pub fn path_is_truthy(&self, path: &str) -> bool {
        let value = self.get(path);
        if value.is_none()
            && !path.split('.').any(blocked_key)
            && matches!(path, "browser.enabled" | "browser.evaluateEnabled")
        {
            return true;
        }
        truthy(value)
    }

    /// `skills.entries.<key>`, when it is an object.
    pub fn skill_entry(&self, key: &str) -> Option<&serde_json::Map<String, Value>> {
        self.value.get("skills")?.get("entries")?.get(key)?.as_object()
    }

    /// A trimmed string list at a dotted path (OpenClaw drops blanks and non-strings).
    fn paths_at(&self, dotted: &str, env: &Env) -> Vec<PathBuf> {
        match self.get(dotted) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| user_path(s, env))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `skills.load.extraDirs`.
    pub fn extra_dirs(&self, env: &Env) -> Vec<PathBuf> {
        self.paths_at("skills.load.extraDirs", env)
    }

    /// `skills.load.allowSymlinkTargets`, resolved to real paths (missing ones dropped).
    pub fn allow_symlink_targets(&self, env: &Env) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .paths_at("skills.load.allowSymlinkTargets", env)
            .iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        out.dedup();
        out
    }

    /// The gateway this config describes, with `OPENCLAW_GATEWAY_PORT` and
    /// `OPENCLAW_GATEWAY_TOKEN` applied as OpenClaw applies them. `tailnet` is the address
    /// to use when the gateway binds to the Tailscale interface.
    pub fn gateway(&self, env: &Env, tailnet: impl FnOnce() -> Option<std::net::IpAddr>) -> GatewaySettings {
        let port = var(env, "OPENCLAW_GATEWAY_PORT")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0)
            .or_else(|| self.get("gateway.port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()))
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_GATEWAY_PORT);
        let host = match self.str_at("gateway.bind") {
            Some("custom") => match self.str_at("gateway.customBindHost") {
                Some("0.0.0.0" | "::" | "[::]") | None => "127.0.0.1".to_string(),
                Some(h) if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
                Some(h) => h.to_string(),
            },
            Some("tailnet") => match tailnet() {
                Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
                Some(ip) => ip.to_string(),
                None => "127.0.0.1".to_string(),
            },
            _ => "127.0.0.1".to_string(),
        };
        let tls = self.get("gateway.tls.enabled").and_then(Value::as_bool) == Some(true);
        GatewaySettings {
            scheme: if tls { "https" } else { "http" },
            host,
            port,
            token: self.gateway_token(env),
            chat_completions: self.get("gateway.http.endpoints.chatCompletions.enabled").and_then(Value::as_bool)
                == Some(true),
            config_path: self.path.clone(),
            config_found: self.found,
        }
    }

    /// `gateway.auth.token` (a string, or an `env` secret reference), else
    /// `OPENCLAW_GATEWAY_TOKEN`: the order OpenClaw resolves it in.
    fn gateway_token(&self, env: &Env) -> Result<Option<String>, String> {
        let from_env = || Ok(var(env, "OPENCLAW_GATEWAY_TOKEN").map(str::to_string));
        match self.get("gateway.auth.token") {
            Some(Value::String(s)) if s.contains("${") => Err(format!(
                "gateway.auth.token in {} names an environment variable that is not set",
                self.path.display()
            )),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(Value::Object(r)) => {
                match (r.get("source").and_then(Value::as_str), r.get("id").and_then(Value::as_str)) {
                    (Some("env"), Some(id)) => match var(env, id) {
                        Some(v) => Ok(Some(v.to_string())),
                        None => {
                            Err(format!("gateway.auth.token refers to the environment variable {id}, which is not set"))
                        }
                    },
                    (source, _) => Err(format!(
                        "gateway.auth.token is a `{}` secret reference, which this worker cannot resolve: set worker.gateway_token",
                        source.unwrap_or("?")
                    )),
                }
            }
            _ => from_env(),
        }
    }
}

/// Where the local gateway is and how to talk to it, from OpenClaw's config.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// `https` when OpenClaw's `gateway.tls.enabled` is on.
    pub scheme: &'static str,
    /// Where to reach it from this machine (from `gateway.bind`).
    pub host: String,
    pub port: u16,
    /// The bearer token, or why it could not be resolved.
    pub token: Result<Option<String>, String>,
    /// `gateway.http.endpoints.chatCompletions.enabled` is true.
    pub chat_completions: bool,
    pub config_path: PathBuf,
    pub config_found: bool,
}

impl GatewaySettings {
    /// The gateway's base URL, on `port` when given instead of OpenClaw's.
    pub fn url_on(&self, port: Option<u16>) -> String {
        format!("{}://{}:{}", self.scheme, self.host, port.unwrap_or(self.port))
    }

    pub fn url(&self) -> String {
        self.url_on(None)
    }
}

impl std::fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySettings")
            .field("url", &self.url())
            .field("has_token", &matches!(self.token, Ok(Some(_))))
            .field("chat_completions", &self.chat_completions)
            .field("config_path", &self.config_path)
            .finish()
    }
}

/// OpenClaw's own CLI, found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// What to run (the script, or an npm shim on Windows).
    pub program: PathBuf,
    /// The npm package folder, when known (its `skills/` are the bundled skills).
    pub package: Option<PathBuf>,
}

/// Why a candidate is not OpenClaw's CLI.
fn reject_reason(candidate: &Path, own: Option<&Path>) -> Option<String> {
    let real = candidate.canonicalize().ok()?;
    if own.is_some_and(|own| own == real) {
        return Some(format!("{} is this program (openclaw-cluster), not OpenClaw's CLI", candidate.display()));
    }
    if package_of(&real).is_some() || is_script(&real) || package_beside(candidate).is_some() {
        None
    } else {
        Some(format!("{} is neither a script nor inside the npm package `openclaw`", candidate.display()))
    }
}

/// A file starting with `#!` (OpenClaw's CLI is a Node script; our binary never is).
fn is_script(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 2];
    std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"#!"
}

/// The npm package `openclaw` holding `real` (its folder has a package.json naming it).
fn package_of(real: &Path) -> Option<PathBuf> {
    #[derive(Deserialize)]
    struct Package {
        name: Option<String>,
    }
    let dir = real.parent()?;
    let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
    let pkg: Package = serde_json::from_str(&text).ok()?;
    (pkg.name.as_deref() == Some("openclaw")).then(|| dir.to_path_buf())
}

/// On Windows, npm's shims sit beside `node_modules/openclaw`.
fn package_beside(shim: &Path) -> Option<PathBuf> {
    let dir = shim.parent()?.join("node_modules").join("openclaw");
    dir.join("package.json").is_file().then_some(dir)
}

impl Cli {
    /// OpenClaw's CLI as `worker.openclaw_cli` says: `off`, a path, or the first on PATH.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Cli>, String> {
        match config.worker.openclaw_cli.as_deref().map(str::trim) {
            Some("off" | "") => Ok(None),
            Some(path) => Cli::find(Some(Path::new(path)), None),
            None => Cli::find(None, std::env::var_os("PATH").as_deref()),
        }
    }

    /// OpenClaw's CLI: `configured` when given (an error names why it is not usable),
    /// else the first `openclaw` on `path` that is not this program.
    pub fn find(configured: Option<&Path>, path: Option<&OsStr>) -> Result<Option<Cli>, String> {
        let own = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
        if let Some(p) = configured {
            if !p.is_file() {
                return Err(format!("worker.openclaw_cli: {} is not a file", p.display()));
            }
            if let Some(why) = reject_reason(p, own.as_deref()) {
                return Err(format!("worker.openclaw_cli: {why}"));
            }
            return Ok(Some(Cli::at(p)));
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let Ok(found) = which::which_in_all("openclaw", path, cwd) else { return Ok(None) };
        for candidate in found {
            if reject_reason(&candidate, own.as_deref()).is_none() {
                return Ok(Some(Cli::at(&candidate)));
            }
        }
        Ok(None)
    }

    fn at(p: &Path) -> Cli {
        let package = p.canonicalize().ok().and_then(|r| package_of(&r)).or_else(|| package_beside(p));
        Cli { program: p.to_path_buf(), package }
    }

    /// The bundled skills folder of this installation.
    pub fn bundled_skills(&self) -> Option<PathBuf> {
        self.package.as_ref().map(|p| p.join("skills")).filter(|p| p.is_dir())
    }
}

/// The local gateway's port as OpenClaw's own config (and environment) says.
pub fn local_gateway_port() -> u16 {
    let env = process_env();
    load_config(&env).gateway(&env, || None).port
}

/// The process's environment as an [`Env`].
pub fn process_env() -> Env {
    crate::config::utf8_vars().collect()
}

/// `PATH` of an [`Env`], for looking programs up.
pub fn path_of(env: &Env) -> Option<OsString> {
    env.get("PATH").map(OsString::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn locations_follow_openclaws_overrides() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        let l = locations(&env(&[("HOME", h)]));
        assert_eq!(l.state_dir, home.path().join(".openclaw"));
        assert_eq!(l.config_path, home.path().join(".openclaw/openclaw.json"));
        // Only the legacy folder exists: OpenClaw uses it.
        std::fs::create_dir(home.path().join(".clawdbot")).unwrap();
        std::fs::write(home.path().join(".clawdbot/clawdbot.json"), "{}").unwrap();
        let l = locations(&env(&[("HOME", h)]));
        assert_eq!(l.state_dir, home.path().join(".clawdbot"));
        assert_eq!(l.config_path, home.path().join(".clawdbot/clawdbot.json"));
        let l = locations(&env(&[("HOME", h), ("OPENCLAW_STATE_DIR", "~/state ")]));
        assert_eq!(l.state_dir, home.path().join("state"));
        // The state dir has no config yet: the legacy file found in the default dirs wins.
        assert_eq!(l.config_path, home.path().join(".clawdbot/clawdbot.json"));
        let l = locations(&env(&[("HOME", h), ("OPENCLAW_CONFIG_PATH", "/etc/oc.json5")]));
        assert_eq!(l.config_path, PathBuf::from("/etc/oc.json5"));
        let l = locations(&env(&[("HOME", "/nowhere"), ("OPENCLAW_HOME", h)]));
        assert_eq!(l.state_dir, home.path().join(".clawdbot"));
    }

    #[test]
    fn the_config_is_json5_with_variables() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".openclaw")).unwrap();
        std::fs::write(
            home.path().join(".openclaw/openclaw.json"),
            "// comment\n{gateway: {port: 19001, bind: 'lan', auth: {token: '${GW_TOKEN}'},\n http: {endpoints: {chatCompletions: {enabled: true,},},},}, skills: {entries: {x: {enabled: false}}}, note: '$${KEEP} ${lower}'}",
        )
        .unwrap();
        let e = env(&[("HOME", home.path().to_str().unwrap()), ("GW_TOKEN", "s3cret")]);
        let cfg = load_config(&e);
        assert!(cfg.found && cfg.error.is_none(), "{:?}", cfg.error);
        assert_eq!(cfg.get("note").unwrap(), "${KEEP} ${lower}");
        let g = cfg.gateway(&e, || None);
        assert_eq!(g.url(), "http://127.0.0.1:19001");
        assert_eq!(g.token, Ok(Some("s3cret".into())));
        assert!(g.chat_completions);
        assert!(!format!("{g:?}").contains("s3cret"));
        assert_eq!(cfg.skill_entry("x").unwrap()["enabled"], false);
        // The environment's port wins; a missing variable is reported, not guessed.
        let e2 = env(&[("HOME", home.path().to_str().unwrap()), ("OPENCLAW_GATEWAY_PORT", "19555")]);
        let cfg2 = load_config(&e2);
        assert_eq!(cfg2.missing_vars, vec![("GW_TOKEN".to_string(), "gateway.auth.token".to_string())]);
        let g2 = cfg2.gateway(&e2, || None);
        assert_eq!(g2.port, 19555);
        assert!(g2.token.is_err());
    }

    #[test]
    fn no_config_means_defaults_and_the_env_token() {
        let home = tempfile::tempdir().unwrap();
        let e = env(&[("HOME", home.path().to_str().unwrap()), ("OPENCLAW_GATEWAY_TOKEN", "t")]);
        let cfg = load_config(&e);
        assert!(!cfg.found);
        let g = cfg.gateway(&e, || None);
        assert_eq!(g.url(), "http://127.0.0.1:18789");
        assert_eq!(g.token, Ok(Some("t".into())));
        assert!(!g.chat_completions);
        assert!(cfg.path_is_truthy("browser.enabled"));
        assert!(!cfg.path_is_truthy("browser.other"));
    }

    #[test]
    fn config_paths_use_javascript_truthiness() {
        let cfg = OpenClawConfig {
            value: serde_json::json!({"a": {"zero": 0, "blank": "  ", "list": [], "s": "x", "f": false}, "browser": {"enabled": false}}),
            ..Default::default()
        };
        assert!(!cfg.path_is_truthy("a.zero"));
        assert!(!cfg.path_is_truthy("a.blank"));
        assert!(cfg.path_is_truthy("a.list"));
        assert!(cfg.path_is_truthy("a..s"));
        assert!(!cfg.path_is_truthy("a.f"));
        assert!(!cfg.path_is_truthy("browser.enabled"));
        assert!(!cfg.path_is_truthy("a.__proto__"));
    }

    #[cfg(unix)]
    #[test]
    fn our_own_binary_is_never_taken_for_openclaws_cli() {
        use std::os::unix::fs::PermissionsExt;
        let bin = tempfile::tempdir().unwrap();
        // A copy of a real executable (not a script, not in the npm package): refused.
        let own = std::env::current_exe().unwrap();
        std::os::unix::fs::symlink(&own, bin.path().join("openclaw")).unwrap();
        let found = Cli::find(None, Some(bin.path().as_os_str())).unwrap();
        assert_eq!(found, None);
        let err = Cli::find(Some(&bin.path().join("openclaw")), None).unwrap_err();
        assert!(err.contains("this program"), "{err}");
        // A script further down PATH is OpenClaw's CLI.
        let other = tempfile::tempdir().unwrap();
        let pkg = other.path().join("lib/node_modules/openclaw");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("package.json"), r#"{"name": "openclaw"}"#).unwrap();
        std::fs::write(pkg.join("openclaw.mjs"), "#!/usr/bin/env node\n").unwrap();
        std::fs::set_permissions(pkg.join("openclaw.mjs"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(other.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(pkg.join("openclaw.mjs"), other.path().join("bin/openclaw")).unwrap();
        let path = std::env::join_paths([bin.path(), &other.path().join("bin")]).unwrap();
        let cli = Cli::find(None, Some(&path)).unwrap().unwrap();
        assert_eq!(cli.program, other.path().join("bin/openclaw"));
        assert_eq!(cli.package.unwrap().canonicalize().unwrap(), pkg.canonicalize().unwrap());
    }
}
