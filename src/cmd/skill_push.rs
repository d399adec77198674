//! `openclaw skills push DIR`, `skills remove NAME`, `skills rollback NAME`, `skills
//! pushes`: pushed skills, with the admin token. A push packs the folder here (the same
//! deterministic tar and digest the workers check), sends it, and shows each chosen node's
//! progress until every one advertises the pushed digest, fails (with its reason), or the
//! wait runs out (exit 4; the push stays, and nodes go on installing).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::api::Route;
use crate::cli::{SkillPushArgs, SkillsAction};
use crate::config::Config;
use crate::model::{PushSkill, PushState, RemoveSkill, SkillPush, SkillPushList, SkillSelector, short_digest};
use crate::worker::skills::package;
use crate::{Exit, usage_error};

use super::output::{clean, out, outln, table};
use super::remote::connect;

pub async fn run(config: &Config, action: SkillsAction) -> anyhow::Result<Exit> {
    match action {
        SkillsAction::Push(args) => push(config, args).await,
        SkillsAction::Remove(args) => {
            let client = connect(config, &args.client)?;
            let route = Route::RemoveSkillPush { name: args.name.clone() };
            let push: SkillPush = client.send(&route, &RemoveSkill { nodes: args.nodes.clone() }, args.json).await?;
            if !args.json {
                let from = if args.nodes.is_empty() { push.selector.to_string() } else { args.nodes.join(", ") };
                outln!(
                    "{} removed from {}; the nodes remove their pushed copy at their next heartbeat",
                    clean(&push.name),
                    clean(&from)
                );
            }
            Ok(Exit::Ok)
        }
        SkillsAction::Rollback(args) => {
            let client = connect(config, &args.client)?;
            let route = Route::RollbackSkillPush { name: args.name.clone() };
            let push: SkillPush = client.send(&route, &(), args.json).await?;
            if !args.json {
                let to = push.digest.as_deref().map(short_digest).unwrap_or("-");
                outln!("{} rolled back to {to} on {}", clean(&push.name), push.selector);
            }
            Ok(Exit::Ok)
        }
        SkillsAction::Pushes(args) => {
            let client = connect(config, &args.client)?;
            let list: SkillPushList = client.fetch(&Route::ListSkillPushes, args.json).await?;
            if !args.json {
                if list.pushes.is_empty() {
                    outln!(
                        "nothing pushed: push a skill folder with `openclaw skills push DIR --all` (or --nodes, --tags)"
                    );
                } else {
                    out!("{}", pushes_table(&list.pushes));
                }
            }
            Ok(Exit::Ok)
        }
    }
}

fn pushes_table(pushes: &[SkillPush]) -> String {
    let mut rows = Vec::new();
    for p in pushes {
        let counts = p.nodes.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, n| {
            *m.entry(n.state.as_str()).or_default() += 1;
            m
        });
        let progress: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        rows.push(vec![
            clean(&p.name).into_owned(),
            p.digest.as_deref().map(short_digest).unwrap_or("removed").to_string(),
            p.previous.as_deref().map(short_digest).unwrap_or("-").to_string(),
            clean(&p.selector.to_string()).into_owned(),
            if progress.is_empty() { "no node chosen yet".into() } else { progress.join(", ") },
            clean(&p.by).into_owned(),
        ]);
    }
    table(&["SKILL", "DIGEST", "BEFORE", "NODES", "PROGRESS", "BY"], rows)
}

async fn push(config: &Config, args: SkillPushArgs) -> anyhow::Result<Exit> {
    let dir = args.dir.clone();
    let packed = tokio::task::spawn_blocking(move || package::pack(&dir))
        .await?
        .map_err(|e| usage_error(format!("cannot push {}: {e}", args.dir.display())))?;
    let selector = SkillSelector { nodes: args.nodes.clone(), tags: args.tags.clone(), all: args.all }
        .checked()
        .map_err(usage_error)?;
    let client = connect(config, &args.client)?;
    let req = PushSkill {
        name: packed.name.clone(),
        digest: packed.digest.clone(),
        package: base64::engine::general_purpose::STANDARD.encode(&packed.tar),
        selector,
    };
    let push = client.push_skill(&req).await.map_err(|e| client.fail(e))?;
    if args.json {
        outln!("{}", serde_json::to_string(&push)?);
    } else {
        outln!(
            "pushed {} {} ({} files, {} bytes) to {}",
            clean(&push.name),
            short_digest(&packed.digest),
            packed.files,
            packed.tar.len(),
            push.selector
        );
    }
    if args.no_wait {
        return Ok(Exit::Ok);
    }
    wait(&client, &push.name, &packed.digest, args.timeout, args.json).await
}

/// Shows each chosen node's progress as it changes, until none is pending.
async fn wait(
    client: &super::remote::Remote,
    name: &str,
    digest: &str,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let mut shown: BTreeMap<String, (PushState, Option<String>)> = BTreeMap::new();
    loop {
        let list: SkillPushList = client.fetch(&Route::ListSkillPushes, false).await?;
        let Some(push) = list.pushes.into_iter().find(|p| p.name == name) else {
            anyhow::bail!("the push of {name} is gone from the coordinator");
        };
        if push.digest.as_deref() != Some(digest) {
            outln!(
                "{name} was changed meanwhile (now {}); stopped waiting",
                push.digest.as_deref().map(short_digest).unwrap_or("removed")
            );
            return Ok(Exit::Negative);
        }
        for n in &push.nodes {
            let now = (n.state, n.reason.clone());
            if shown.get(&n.node_id) != Some(&now) {
                if json {
                    outln!("{}", serde_json::to_string(n)?);
                } else {
                    let why = n.reason.as_deref().map(|r| format!(": {}", clean(r))).unwrap_or_default();
                    outln!("  {} {}{why}", clean(&n.node_id), n.state);
                }
                shown.insert(n.node_id.clone(), now);
            }
        }
        let pending = push.nodes.iter().filter(|n| n.state == PushState::Pending).count();
        let failed = push.nodes.iter().filter(|n| n.state == PushState::Failed).count();
        if pending == 0 && !push.nodes.is_empty() {
            let installed = push.nodes.len() - failed;
            if !json {
                outln!("{installed} of {} node(s) have {name} {}", push.nodes.len(), short_digest(digest));
            }
            return Ok(if failed == 0 { Exit::Ok } else { Exit::Negative });
        }
        if started.elapsed() >= timeout {
            if !json {
                let what = if push.nodes.is_empty() {
                    "no registered node is chosen yet; nodes that join later get it".to_string()
                } else {
                    format!("{pending} node(s) still pending")
                };
                outln!(
                    "stopped waiting after {}: {what} (see `openclaw skills pushes`)",
                    crate::util::short_duration(timeout)
                );
            }
            return Ok(Exit::StillRunning);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
