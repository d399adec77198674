//! `openclaw skills`: every skill this machine has — the skills dirs' and, when OpenClaw's
//! CLI is installed, OpenClaw's own — whether the worker would advertise it, and why not.
//! Agent skills also depend on the local OpenClaw gateway, which is probed (never with a
//! chat call); when it cannot run turns, the reason says what to do (for chat completions
//! switched off: the exact OpenClaw command).

use super::output::{out, outln};
use std::process::ExitCode;

use serde_json::json;

use crate::Exit;
use crate::cli::SkillsArgs;
use crate::config::Config;
use crate::worker::gateway::{Availability, Gateway};
use crate::worker::openclaw::Cli;
use crate::worker::runner;
use crate::worker::skills::native::Inventory;
use crate::worker::skills::{self, Skill};

/// The skills dirs' scan, OpenClaw's skills not shadowed by it, and a note about OpenClaw's
/// CLI when it could not be used.
async fn gather(config: &Config, args: &SkillsArgs) -> (skills::Scan, Vec<Skill>, Option<String>) {
    let dirs = if args.skills_dir.is_empty() { config.worker.skills_dir.0.clone() } else { args.skills_dir.clone() };
    let host = skills::Host::current();
    let scan = skills::scan(&dirs, &host);
    let (native, note) = match Cli::from_config(config) {
        Ok(Some(cli)) => {
            let program = cli.program.display().to_string();
            let mut inventory =
                Inventory::new(cli, &config.worker.agent_id, config.worker.openclaw_refresh_interval.get());
            inventory.update(&host).await;
            let note = inventory.listing.as_ref().err().map(|e| format!("OpenClaw's skills are missing here: {e}"));
            let native = inventory.skills().iter().filter(|s| scan.get(&s.name).is_none()).cloned().collect();
            (native, note.or(Some(format!("OpenClaw's own skills from `{program} skills list`"))))
        }
        Ok(None) if config.worker.openclaw_cli.is_some() => (Vec::new(), None),
        Ok(None) => (
            Vec::new(),
            Some(
                "OpenClaw's CLI is not on PATH: only the skills dirs are listed (set worker.openclaw_cli to its path)"
                    .into(),
            ),
        ),
        Err(e) => (Vec::new(), Some(e)),
    };
    (scan, native, note)
}

pub async fn run(config: &Config, args: &SkillsArgs) -> anyhow::Result<ExitCode> {
    let (scan, native, note) = gather(config, args).await;
    let all: Vec<&Skill> = scan.skills.iter().chain(native.iter()).collect();
    let has_agent = all.iter().any(|s| runner::needs_gateway(&s.kind) && s.eligible);
    let gateway = if has_agent {
        let g = Gateway::from_config(config);
        let state = g.probe().await;
        Some((g.url(), g.origin(), state))
    } else {
        None
    };
    let unavailable = |s: &Skill| match &gateway {
        Some((_, _, state)) if s.eligible => runner::unavailable(&s.kind, state),
        _ => None,
    };
    if args.json {
        let mut items: Vec<serde_json::Value> = all
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let Some(why) = unavailable(s) {
                    v["unavailable"] = json!(why);
                }
                v
            })
            .collect();
        for p in &scan.problems {
            items.push(json!({"name": p.folder_name(), "description": "", "eligible": false, "error": p.error, "path": p.path, "kind": null,
                "missing": {"bins": [], "anyBins": [], "env": [], "config": [], "os": []}}));
        }
        outln!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(Exit::Ok.into());
    }
    if all.is_empty() && scan.problems.is_empty() {
        let dirs = if args.skills_dir.is_empty() { &config.worker.skills_dir.0 } else { &args.skills_dir };
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        outln!("no skills found in {} (a skill is a folder with a SKILL.md; see docs/skills.md)", list.join(", "));
        return Ok(Exit::Ok.into());
    }
    let mut rows = Vec::new();
    for s in &all {
        let (status, mut why) = match unavailable(s) {
            Some(why) => ("unavailable", format!("gateway: {why}")),
            None if s.disabled => ("disabled", "turned off in OpenClaw's config (skills.entries)".into()),
            None if s.eligible => ("ready", String::new()),
            None => ("missing", s.missing.describe()),
        };
        for w in &s.warnings {
            why = if why.is_empty() { format!("note: {w}") } else { format!("{why}; note: {w}") };
        }
        rows.push(vec![s.name.clone(), status.into(), s.kind.name().into(), why, s.source.clone()]);
    }
    for p in &scan.problems {
        rows.push(vec![
            p.folder_name(),
            "parse error".into(),
            "-".into(),
            format!("{}: {}", p.path.display(), p.error),
            "".into(),
        ]);
    }
    out!("{}", super::output::table(&["NAME", "STATUS", "KIND", "MISSING", "SOURCE"], rows));
    if let Some(note) = note {
        outln!("\n{note}");
    }
    if let Some((url, origin, state)) = gateway {
        match state {
            Availability::Ready => outln!("gateway {url} ({origin}): agent skills can run"),
            Availability::Unavailable(why) => {
                outln!("gateway {url} ({origin}): agent skills cannot run: {}", super::output::clean(&why))
            }
        }
    }
    Ok(Exit::Ok.into())
}
