//! `openclaw nodes` and `openclaw health`.

use crate::Exit;
use crate::cli::{HealthArgs, NodesAction, NodesArgs};
use crate::client::seg;
use crate::config::Config;
use crate::model::{Node, NodeStatus};
use crate::util::{ago, now_ms};

use super::output::{clean, fields, table};
use super::remote::{connect, fail, fetch};

pub async fn nodes(config: &Config, args: NodesArgs) -> anyhow::Result<Exit> {
    if let Some(action) = args.action {
        let (target, answer) = match action {
            NodesAction::Drain(t) => {
                let answer = connect(config, &t.client)?.set_draining(&t.node_id, true).await;
                (t, answer)
            }
            NodesAction::Undrain(t) => {
                let answer = connect(config, &t.client)?.set_draining(&t.node_id, false).await;
                (t, answer)
            }
            NodesAction::Forget(t) => {
                let answer = connect(config, &t.client)?.forget_node(&t.node_id).await;
                (t, answer)
            }
        };
        let answer = answer.map_err(|e| fail(config, e))?;
        if target.json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            println!("{}", clean(&answer.message));
        }
        return Ok(Exit::Ok);
    }
    let client = connect(config, &args.client)?;
    if let Some(id) = &args.node_id {
        let node: Node = fetch(config, &client, &format!("/api/v1/nodes/{}", seg(id)), args.json).await?;
        if !args.json {
            print!("{}", node_detail(&node));
        }
        return Ok(Exit::Ok);
    }
    let path = if args.online {
        "/api/v1/nodes/online".to_string()
    } else if let Some(skill) = &args.skill {
        format!("/api/v1/nodes/skills/{}", seg(skill))
    } else if let Some(status) = args.status {
        format!("/api/v1/nodes?status={status}")
    } else {
        "/api/v1/nodes".to_string()
    };
    let nodes: Vec<Node> = fetch(config, &client, &path, args.json).await?;
    if args.json {
        return Ok(Exit::Ok);
    }
    if nodes.is_empty() {
        println!(
            "no nodes{}",
            if path == "/api/v1/nodes" { " have registered yet: start a worker (openclaw worker)" } else { " match" }
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
                format!("{}/{}", n.running_tasks, n.max_concurrent_tasks),
                format!("{:.0}%", n.cpu_usage),
                format!("{:.0}%", n.memory_usage),
                n.last_heartbeat.map(|t| ago(t.0, now)).unwrap_or_else(|| "never".into()),
                n.platform.clone(),
                if n.available_skills.is_empty() { "-".into() } else { n.available_skills.join(",") },
            ]
        })
        .collect();
    print!("{}", table(&["NODE", "STATUS", "TASKS", "CPU", "MEM", "LAST SEEN", "PLATFORM", "SKILLS"], rows));
    Ok(Exit::Ok)
}

fn node_detail(n: &Node) -> String {
    let now = now_ms();
    let mut pairs = vec![
        ("node", n.node_id.clone()),
        ("status", if n.draining { format!("{} (draining)", n.status) } else { n.status.to_string() }),
        ("host", format!("{} ({} {})", n.hostname, n.platform, n.arch)),
        (
            "address",
            format!(
                "{}{}",
                n.ip_address,
                if n.tailscale_ip.is_empty() { String::new() } else { format!(", tailscale {}", n.tailscale_ip) }
            ),
        ),
        ("tasks", format!("{} running of {}", n.running_tasks, n.max_concurrent_tasks)),
        ("usage", format!("cpu {:.0}%, memory {:.0}%, disk {:.0}%", n.cpu_usage, n.memory_usage, n.disk_usage)),
        ("last heartbeat", n.last_heartbeat.map(|t| ago(t.0, now)).unwrap_or_else(|| "never".into())),
        ("registered", n.registered_at.map(|t| ago(t.0, now)).unwrap_or_default()),
        (
            "processed",
            format!(
                "{} ({} ok, {} failed, {:.1}s average)",
                n.total_tasks_processed, n.successful_tasks, n.failed_tasks, n.average_execution_time
            ),
        ),
        ("skills", if n.available_skills.is_empty() { "-".into() } else { n.available_skills.join(", ") }),
    ];
    if !n.tags.is_empty() {
        pairs.push(("tags", n.tags.join(", ")));
    }
    for (skill, why) in &n.unavailable_skills {
        pairs.push(("unavailable", format!("{skill}: {why}")));
    }
    if let Some(v) = &n.version {
        pairs.push(("version", v.clone()));
    }
    fields(&pairs)
}

pub async fn health(config: &Config, args: HealthArgs) -> anyhow::Result<Exit> {
    let client = connect(config, &args.client)?;
    if let Some(node) = &args.node {
        let h: crate::model::NodeHealth =
            fetch(config, &client, &format!("/api/v1/nodes/{}/health", seg(node)), args.json).await?;
        if !args.json {
            let seen = h
                .time_since_heartbeat
                .map(|s| crate::util::short_duration(std::time::Duration::from_secs_f64(s)))
                .unwrap_or_else(|| "never".into());
            println!(
                "{}: {} ({}) — last heartbeat {} ago, {} of {} slots free, cpu {:.0}%, memory {:.0}%, disk {:.0}%",
                clean(&h.node_id),
                if h.healthy { "healthy" } else { "unhealthy" },
                h.status,
                seen,
                h.available_capacity,
                h.max_concurrent_tasks,
                h.cpu_usage,
                h.memory_usage,
                h.disk_usage
            );
            if !h.healthy {
                println!(
                    "check that its worker runs and can reach the coordinator (openclaw worker logs; firewall; address)"
                );
            }
        }
        return Ok(if h.healthy { Exit::Ok } else { Exit::Negative });
    }
    let h: crate::model::ClusterHealth = fetch(config, &client, "/api/v1/cluster/health", args.json).await?;
    if !args.json {
        let tasks: Vec<String> =
            h.tasks_by_status.iter().filter(|(_, n)| **n > 0).map(|(s, n)| format!("{n} {s}")).collect();
        println!(
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
            println!(
                "no node is online: start a worker (openclaw worker), check that it reaches {} (firewall, --coordinator-host), and see `openclaw nodes --status {}`",
                client.base(),
                NodeStatus::Offline
            );
        }
    }
    Ok(if h.healthy { Exit::Ok } else { Exit::Negative })
}
