//! `openclaw skills`: every skill found on this machine, and why one is not eligible.

use super::output::{out, outln};
use std::process::ExitCode;

use serde_json::json;

use crate::Exit;
use crate::cli::SkillsArgs;
use crate::config::Config;
use crate::worker::gateway::{Availability, Gateway};
use crate::worker::skills::{self, Kind};

pub async fn run(config: &Config, args: &SkillsArgs) -> anyhow::Result<ExitCode> {
    let dirs = if args.skills_dir.is_empty() { config.worker.skills_dir.0.clone() } else { args.skills_dir.clone() };
    let scan = skills::scan(&dirs, &skills::Host::current());
    let has_agent = scan.skills.iter().any(|s| s.kind == Kind::Agent && s.eligible);
    let gateway = if has_agent {
        let g = Gateway::from_config(config);
        Some((g.url().to_string(), g.probe().await))
    } else {
        None
    };
    if args.json {
        let mut items: Vec<serde_json::Value> = scan
            .skills
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                if let (Kind::Agent, Some((_, Availability::Unavailable(why)))) = (&s.kind, &gateway) {
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
    if scan.skills.is_empty() && scan.problems.is_empty() {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        outln!("no skills found in {} (a skill is a folder with a SKILL.md; see README)", list.join(", "));
        return Ok(Exit::Ok.into());
    }
    let mut rows = Vec::new();
    for s in &scan.skills {
        let mut status = if s.eligible { "ready" } else { "missing" };
        let mut missing = s.missing.describe();
        if let (true, Kind::Agent, Some((_, Availability::Unavailable(why)))) = (s.eligible, &s.kind, &gateway) {
            status = "unavailable";
            missing = format!("gateway: {why}");
        }
        rows.push(vec![s.name.clone(), status.into(), s.kind.name().into(), missing, s.source.display().to_string()]);
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
    if let Some((url, state)) = gateway {
        match state {
            Availability::Ready => outln!("\ngateway {url}: agent skills can run"),
            Availability::Unavailable(why) => {
                outln!("\ngateway {url}: agent skills cannot run: {}", super::output::clean(&why))
            }
        }
    }
    Ok(Exit::Ok.into())
}
