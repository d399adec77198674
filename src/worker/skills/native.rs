//! OpenClaw's own skills, as its CLI lists them (`openclaw skills list --json`): the
//! listing, the skill folders OpenClaw reads (to find each listed skill's folder and
//! instructions), and when to list again. OpenClaw's verdicts are taken as they are: a
//! skill it calls eligible is, and its reasons are shown for the others.
//!
//! One listing costs a Node process (about 3 s and as much CPU), so [`Inventory`] lists
//! again only when its inputs change (OpenClaw's config file, the skill folders'
//! `SKILL.md` files) or `worker.openclaw_refresh_interval` passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Host, Kind, Missing, Rules, Skill, load_root};
use crate::worker::openclaw::{Cli, Env, OpenClawConfig, home, var};

/// How long one `openclaw skills list` may take (it takes 2-7 s).
const LISTING_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `openclaw skills list --json` (for `agent`, unless it is the default one).
pub async fn list(cli: &Cli, agent: Option<&str>, timeout: Duration) -> Result<Listing, String> {
    let mut cmd = tokio::process::Command::new(&cli.program);
    cmd.args(["skills", "list", "--json"]);
    if let Some(agent) = agent {
        cmd.args(["--agent", agent]);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd.env("NO_COLOR", "1");
    let shown = format!("{} skills list --json", cli.program.display());
    let out = match tokio::time::timeout(timeout, cmd.output()).await {
        Err(_) => return Err(format!("`{shown}` did not answer within {}s", timeout.as_secs())),
        Ok(Err(e)) => return Err(format!("cannot run `{shown}`: {e}")),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(format!("`{shown}` failed ({}): {last}", out.status));
    }
    Listing::parse(&out.stdout).map_err(|e| format!("`{shown}` printed something else than its JSON listing: {e}"))
}

/// What `openclaw skills list --json` reports about one skill.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedSkill {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub eligible: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub blocked_by_allowlist: bool,
    #[serde(default)]
    pub blocked_by_agent_filter: bool,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub missing: ListedMissing,
}

/// Missing requirements, in OpenClaw's words.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ListedMissing {
    #[serde(default)]
    pub bins: Vec<String>,
    #[serde(default, rename = "anyBins")]
    pub any_bins: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub config: Vec<String>,
    #[serde(default)]
    pub os: Vec<String>,
}

impl From<&ListedMissing> for Missing {
    fn from(m: &ListedMissing) -> Missing {
        Missing {
            bins: m.bins.clone(),
            any_bins: m.any_bins.clone(),
            env: m.env.clone(),
            config: m.config.clone(),
            os: m.os.clone(),
        }
    }
}

/// The whole listing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    #[serde(default)]
    pub workspace_dir: Option<PathBuf>,
    #[serde(default)]
    pub managed_skills_dir: Option<PathBuf>,
    pub skills: Vec<ListedSkill>,
}

impl Listing {
    /// Parses the CLI's output (the JSON object may follow log lines).
    pub fn parse(stdout: &[u8]) -> Result<Listing, String> {
        let text = String::from_utf8_lossy(stdout);
        let start = if text.trim_start().starts_with('{') { Some(0) } else { text.find("\n{").map(|i| i + 1) };
        let json = start.map(|s| &text[s..]).ok_or("no JSON object in the output")?;
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// The skills OpenClaw's agent can use: eligible, not excluded by the agent's own list.
    pub fn usable(&self) -> impl Iterator<Item = &ListedSkill> {
        self.skills.iter().filter(|s| s.eligible && !s.blocked_by_agent_filter)
    }
}

/// The skill folders OpenClaw reads, lowest precedence first (a later one wins a name
/// clash): `extraDirs`, generated plugin skills, bundled, managed, `~/.agents/skills`,
/// `<workspace>/.agents/skills`, `<workspace>/skills`.
pub fn skill_roots(cfg: &OpenClawConfig, cli: &Cli, listing: &Listing, env: &Env) -> Vec<PathBuf> {
    let mut roots = cfg.extra_dirs(env);
    roots.push(cfg.state_dir.join("plugin-skills"));
    if let Some(bundled) = var(env, "OPENCLAW_BUNDLED_SKILLS_DIR").map(PathBuf::from).or_else(|| cli.bundled_skills()) {
        if let Some(custodian) = bundled.parent().map(|p| p.join("custodian-skills")) {
            roots.push(bundled);
            roots.push(custodian);
        } else {
            roots.push(bundled);
        }
    }
    roots.push(listing.managed_skills_dir.clone().unwrap_or_else(|| cfg.state_dir.join("skills")));
    roots.push(home(env).join(".agents").join("skills"));
    if let Some(ws) = &listing.workspace_dir {
        roots.push(ws.join(".agents").join("skills"));
        roots.push(ws.join("skills"));
    }
    roots
}

/// The last listing of OpenClaw's CLI and when to take the next one: when its inputs
/// change (OpenClaw's config file, the skill folders' `SKILL.md` files), and at least every
/// `every`. One listing costs a Node process (about 3 s and as much CPU), so it is never run
/// on a fixed short cadence.
#[derive(Debug)]
pub struct Inventory {
    pub cli: Cli,
    agent: Option<String>,
    every: Duration,
    last: Option<(Instant, u64)>,
    pub listing: Result<Listing, String>,
    /// The listing as skills, each with its folder when found.
    skills: Vec<Skill>,
}

impl Inventory {
    pub fn new(cli: Cli, agent_id: &str, every: Duration) -> Inventory {
        let agent = (agent_id != "default").then(|| agent_id.to_string());
        Inventory { cli, agent, every, last: None, listing: Err("not listed yet".into()), skills: Vec::new() }
    }

    /// Whether a new listing is due, given the inputs' fingerprint now.
    pub fn due(&self, fingerprint: u64) -> bool {
        match self.last {
            None => true,
            Some((at, fp)) => fp != fingerprint || at.elapsed() >= self.every,
        }
    }

    /// OpenClaw's skills as the last listing gave them.
    pub fn skills(&self) -> &[Skill] {
        &self.skills
    }

    /// Takes a new listing when it is due; says whether anything changed.
    pub async fn update(&mut self, host: &Host) -> bool {
        let empty = Listing { workspace_dir: None, managed_skills_dir: None, skills: Vec::new() };
        let roots = skill_roots(&host.openclaw, &self.cli, self.listing.as_ref().unwrap_or(&empty), &host.env);
        let config_path = host.openclaw.path.clone();
        let fp = tokio::task::spawn_blocking(move || fingerprint(&config_path, &roots)).await.unwrap_or(0);
        if !self.due(fp) {
            return false;
        }
        let listing = list(&self.cli, self.agent.as_deref(), LISTING_TIMEOUT).await;
        self.last = Some((Instant::now(), fp));
        if listing == self.listing {
            return false;
        }
        if let Ok(l) = &listing {
            let (l, host, cli) = (l.clone(), host.clone(), self.cli.clone());
            self.skills = tokio::task::spawn_blocking(move || to_skills(&l, &cli, &host)).await.unwrap_or_default();
        } else {
            self.skills.clear();
        }
        self.listing = listing;
        true
    }
}

/// The listing as agent skills with OpenClaw's verdicts; folders are looked up in OpenClaw's
/// skill roots (the later root wins a name, as in OpenClaw).
fn to_skills(listing: &Listing, cli: &Cli, host: &Host) -> Vec<Skill> {
    let mut folders: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    let mut problems = Vec::new();
    for root in skill_roots(&host.openclaw, cli, listing, &host.env) {
        for s in load_root(&root, Rules::Open, &[], host, "", &mut problems) {
            folders.insert(s.name, s.path);
        }
    }
    listing
        .skills
        .iter()
        .map(|l| {
            let mut warnings = Vec::new();
            if l.blocked_by_agent_filter {
                warnings.push("not in this agent's skill list (OpenClaw's agents.list[].skills)".to_string());
            }
            Skill {
                name: l.name.clone(),
                description: l.description.clone(),
                eligible: l.eligible && !l.blocked_by_agent_filter,
                disabled: l.disabled,
                missing: Missing::from(&l.missing),
                kind: Kind::Agent,
                path: folders.get(&l.name).cloned().flatten(),
                source: format!("openclaw:{}", l.source),
                warnings,
                requires_env: Vec::new(),
                permanent_exit_codes: Vec::new(),
            }
        })
        .collect()
}

/// A cheap summary of what OpenClaw's listing depends on: the config file and every
/// `SKILL.md` (and folder) under the given roots, by modification time and size.
pub fn fingerprint(config_path: &Path, roots: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let stamp = |p: &Path, h: &mut std::collections::hash_map::DefaultHasher| {
        if let Ok(m) = std::fs::metadata(p) {
            m.len().hash(h);
            m.modified().ok().hash(h);
        }
    };
    stamp(config_path, &mut h);
    let mut budget = 5000usize;
    for root in roots {
        root.hash(&mut h);
        walk_stamps(root, 0, &mut budget, &mut |p| {
            p.hash(&mut h);
            stamp(p, &mut h);
        });
    }
    h.finish()
}

fn walk_stamps(dir: &Path, depth: usize, budget: &mut usize, f: &mut impl FnMut(&Path)) {
    if *budget == 0 || depth > 6 {
        return;
    }
    *budget -= 1;
    f(dir);
    let skill = dir.join("SKILL.md");
    if skill.exists() {
        f(&skill);
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.') && e.file_name() != "node_modules")
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        walk_stamps(&sub, depth + 1, budget, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse_after_log_lines() {
        let out = b"[plugins] loading\n{\"workspaceDir\": \"/w\", \"skills\": [{\"name\": \"a\", \"eligible\": true, \"source\": \"openclaw-bundled\", \"missing\": {\"bins\": [], \"anyBins\": [], \"env\": [], \"config\": [], \"os\": []}}]}";
        let l = Listing::parse(out).unwrap();
        assert_eq!(l.workspace_dir, Some(PathBuf::from("/w")));
        assert_eq!(l.usable().count(), 1);
        assert!(Listing::parse(b"Error: boom").is_err());
    }
}
