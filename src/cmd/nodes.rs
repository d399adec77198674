//! `openclaw nodes` and `openclaw health`.

use crate::Exit;
use crate::api::{NodeQuery, Route};
use crate::cli::{HealthArgs, NodesAction, NodesArgs};
use crate::config::Config;
use crate::model::{Node, NodeStatus};
use crate::util::{ago, now_ms};

use super::output::{clean, fields, out, outln, table};
use super::remote::connect;

pub async fn nodes(config: &Config, args: NodesArgs) -> anyhow::Result<Exit> {
    if let Some(action) = args.action {
        let target = match &action {
            NodesAction::Drain(t) | NodesAction::Undrain(t) | NodesAction::Forget(t) => t,
        };
        let client = connect(config, &target.client)?;
        let answer = match &action {
            NodesAction::Drain(t) => client.set_draining(&t.node_id, true).await,
            NodesAction::Undrain(t) => client.set_draining(&t.node_id, false).await,
            NodesAction::Forget(t) => client.forget_node(&t.node_id).await,
        };
        let answer = answer.map_err(|e| client.fail(e))?;
        if target.json {
            outln!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            outln!("{}", clean(&answer.message));
        }
        return Ok(Exit::Ok);
    }
    if args.watch {
        return super::watch::nodes(config, &args.client, args.node_id, args.after, args.json).await;
    }
    let client = connect(config, &args.client)?;
    if let Some(id) = &args.node_id {
        let node: Node = client.fetch(&Route::GetNode { node: id.clone() }, args.json).await?;
        if !args.json {
            out!("{}", node_detail(&node));
        }
        return Ok(Exit::Ok);
    }
    let route = if args.online {
        Route::OnlineNodes
    } else if let Some(skill) = &args.skill {
        Route::NodesWithSkill { skill: skill.clone() }
    } else {
        Route::ListNodes(NodeQuery { status: args.status, limit: args.limit, after: args.after_node.clone() })
    };
    let nodes: Vec<Node> = client.fetch(&route, args.json).await?;
    // A full page may not be the last: the next one starts after its last node.
    let next = args.limit.filter(|l| nodes.len() == *l as usize).and(nodes.last());
    if args.json {
        return Ok(Exit::Ok);
    }
    if nodes.is_empty() {
        outln!(
            "no nodes{}",
            if route == Route::ListNodes(NodeQuery::default()) && args.after_node.is_none() {
                " have registered yet: start a worker (openclaw worker)"
            } else {
                " match"
            }
        );
        return Ok(Exit::Ok);
    }
    let now = now_ms();
    let rows = nodes
        .iter()
        .map(|n| {
            vec![
                n.node_id.clone(),
                n.status.to_string(),
                format!("{}/{}", n.running_tasks, n.spec.max_concurrent_tasks),
                // An offline node's figures are its last ones, not current: not shown here.
                if n.status == NodeStatus::Offline { "-".into() } else { format!("{:.0}%", n.usage.cpu_usage) },
                if n.status == NodeStatus::Offline { "-".into() } else { format!("{:.0}%", n.usage.memory_usage) },
                n.last_heartbeat.map(|t| ago(t.0, now)).unwrap_or_else(|| "never".into()),
                n.spec.platform.clone(),
                if n.spec.available_skills.is_empty() { "-".into() } else { n.spec.available_skills.join(",") },
            ]
        })
        .collect();
    out!("{}", table(&["NODE", "STATUS", "TASKS", "CPU", "MEM", "LAST SEEN", "PLATFORM", "SKILLS"], rows));
    if let (Some(last), Some(limit)) = (next, args.limit) {
        let status = args.status.map(|s| format!(" --status {s}")).unwrap_or_default();
        outln!("next page: openclaw nodes{status} --limit {limit} --after-node {}", last.node_id);
    }
    Ok(Exit::Ok)
}

fn node_detail(n: &Node) -> String {
    let now = now_ms();
    let (s, u, c) = (&n.spec, &n.usage, &n.counters);
    let mut pairs = vec![
        ("node", n.node_id.clone()),
        ("status", if n.draining { format!("{} (draining)", n.status) } else { n.status.to_string() }),
        ("host", format!("{} ({} {})", s.hostname, s.platform, s.arch)),
        (
            "address",
            format!(
                "{}{}",
                s.ip_address,
                if s.tailscale_ip.is_empty() { String::new() } else { format!(", tailscale {}", s.tailscale_ip) }
            ),
        ),
        ("tasks", format!("{} running of {}", n.running_tasks, s.max_concurrent_tasks)),
        (
            "usage",
            format!(
                "cpu {:.0}%, memory {:.0}%, disk {:.0}%{}",
                u.cpu_usage,
                u.memory_usage,
                u.disk_usage,
                if n.status == NodeStatus::Offline { " (at its last heartbeat)" } else { "" }
            ),
        ),
        ("last heartbeat", n.last_heartbeat.map(|t| ago(t.0, now)).unwrap_or_else(|| "never".into())),
        ("registered", n.registered_at.map(|t| ago(t.0, now)).unwrap_or_default()),
        (
            "processed",
            format!(
                "{} ({} ok, {} failed, {:.1}s average)",
                c.total_tasks_processed, c.successful_tasks, c.failed_tasks, n.average_execution_time
            ),
        ),
        ("skills", if s.available_skills.is_empty() { "-".into() } else { s.available_skills.join(", ") }),
    ];
    if !s.tags.is_empty() {
        pairs.push(("tags", s.tags.join(", ")));
    }
    for (skill, why) in &s.unavailable_skills {
        pairs.push(("unavailable", format!("{skill}: {why}")));
    }
    if let Some(v) = &s.version {
        pairs.push(("version", v.clone()));
    }
    fields(&pairs)
}

pub async fn health(config: &Config, args: HealthArgs) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    if let Some(node) = &args.node {
        let h: crate::model::NodeHealth = client.fetch(&Route::NodeHealth { node: node.clone() }, args.json).await?;
        if !args.json {
            let seen = h
                .time_since_heartbeat
                .map(|s| format!("{} ago", crate::util::short_duration(std::time::Duration::from_secs_f64(s))))
                .unwrap_or_else(|| "never".into());
            let verdict = if h.healthy { "healthy" } else { "unhealthy" };
            if matches!(h.status, NodeStatus::Offline | NodeStatus::Error) {
                // Its figures are those of its last heartbeat, not its load now.
                outln!(
                    "{}: {verdict} ({}) — last seen {seen}; its load is unknown while it is offline",
                    clean(&h.node_id),
                    h.status
                );
            } else {
                outln!(
                    "{}: {verdict} ({}) — last heartbeat {seen}, {} of {} slots free, cpu {:.0}%, memory {:.0}%, disk {:.0}%",
                    clean(&h.node_id),
                    h.status,
                    h.available_capacity,
                    h.max_concurrent_tasks,
                    h.cpu_usage,
                    h.memory_usage,
                    h.disk_usage
                );
            }
            if !h.healthy {
                outln!(
                    "check that its worker runs and can reach the coordinator (openclaw worker logs; firewall; address)"
                );
            }
        }
        return Ok(if h.healthy { Exit::Ok } else { Exit::Negative });
    }
    let h: crate::model::ClusterHealth = client.fetch(&Route::ClusterHealth, args.json).await?;
    if !args.json {
        let tasks: Vec<String> =
            h.tasks_by_status.iter().filter(|(_, n)| **n > 0).map(|(s, n)| format!("{n} {s}")).collect();
        outln!(
            "{}: {} of {} nodes online, {} of {} slots free ({:.0}% used); tasks: {}",
            if h.healthy { "healthy" } else { "unhealthy" },
            h.online_nodes,
            h.total_nodes,
            h.available_capacity,
            h.total_capacity,
            h.capacity_utilization,
            if tasks.is_empty() { "none".into() } else { tasks.join(", ") }
        );
        if !h.healthy {
            outln!(
                "no node is online: start a worker (openclaw worker), check that it reaches {} (firewall, --coordinator-host), and see `openclaw nodes --status {}`",
                client.base(),
                NodeStatus::Offline
            );
        }
        if let Some(nats) = &h.nats {
            outln!("{}", transport_line(h.transport, nats));
        }
    }
    Ok(if h.healthy { Exit::Ok } else { Exit::Negative })
}

/// "transport: nats (nats://…, server 2.9.10; 3 nodes on NATS)" or why it is HTTP.
fn transport_line(transport: crate::model::Transport, n: &crate::model::NatsHealth) -> String {
    let since = crate::util::short_duration(std::time::Duration::from_millis(
        (crate::util::now_ms() - n.since.0).max(0) as u64,
    ));
    match (n.state, n.streams_ready) {
        (crate::model::NatsState::Connected, true) => format!(
            "transport: {transport} ({}, server {}; {} node(s) receive work over NATS; last event published {})",
            n.url,
            n.server_version.as_deref().unwrap_or("?"),
            n.nodes,
            n.last_event_id
        ),
        (crate::model::NatsState::Connected, false) => format!(
            "transport: {transport} — connected to NATS at {} but its streams are not set up: {}",
            n.url,
            n.last_error.as_deref().unwrap_or("setting up")
        ),
        (state, _) => format!(
            "transport: {transport} — NATS at {}: {state} for {since}: {} (work goes over HTTP meanwhile)",
            n.url,
            n.last_error.as_deref().unwrap_or("connecting")
        ),
    }
}
