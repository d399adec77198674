//! The checks of what clients send: names, lists of names, usage figures, a node's
//! registration and a task's submission. Each check names the field that is wrong and says
//! what is accepted; a value that passes comes back cleaned (trimmed, duplicates dropped,
//! defaults applied). The transitions call these before they change anything, so bad input
//! changes nothing.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::Value;

use super::Error;
use crate::model::{
    MAX_NODE_CONCURRENCY, MAX_RETRIES, MAX_TASK_TIMEOUT, NodeSpec, Priority, RegisterRequest, SubmitTask, Target,
    TaskSpec, TaskType, validate_node_id,
};

/// Path words under `/api/v1/nodes/` that cannot be node ids.
pub const RESERVED_IDS: &[&str] = &["online", "register", "skills"];

/// Trims, drops duplicates (keeping order) and checks a list of names.
pub fn clean_names(field: &str, names: &[String]) -> Result<Vec<String>, Error> {
    if names.len() > crate::model::MAX_SKILLS {
        return Err(Error::invalid(
            field,
            format!("at most {} entries, got {}", crate::model::MAX_SKILLS, names.len()),
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = check_name(&format!("{field}[{i}]"), name, 128)?;
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A trimmed, non-empty name without control characters (NUL included), at most `max`
/// characters.
pub fn check_name(field: &str, v: &str, max: usize) -> Result<String, Error> {
    let v = v.trim();
    if v.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(Error::invalid(field, format!("longer than {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(field, "contains control characters"));
    }
    Ok(v.to_string())
}

pub fn check_usage(field: &str, v: f64) -> Result<f64, Error> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(Error::invalid(field, format!("must be a percentage between 0 and 100, got {v}")))
    }
}

/// The spec a registration declares, checked.
pub fn node_spec(req: &RegisterRequest, peer: Option<IpAddr>) -> Result<NodeSpec, Error> {
    let max = req.max_concurrent_tasks.unwrap_or(5);
    if !(1..=MAX_NODE_CONCURRENCY).contains(&max) {
        return Err(Error::invalid(
            "max_concurrent_tasks",
            format!("must be between 1 and {MAX_NODE_CONCURRENCY}, got {max}"),
        ));
    }
    let optional = |field: &str, v: &Option<String>, max: usize| -> Result<String, Error> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => check_name(field, s, max),
            None => Ok(String::new()),
        }
    };
    let unavailable = req.unavailable_skills.clone().unwrap_or_default();
    for (skill, why) in &unavailable {
        check_name("unavailable_skills", skill, 128)?;
        if why.len() > 2000 || why.contains('\0') {
            return Err(Error::invalid("unavailable_skills", "reasons are at most 2000 characters, without NUL"));
        }
    }
    let ip = optional("ip_address", &req.ip_address, 64)?;
    Ok(NodeSpec {
        hostname: check_name("hostname", &req.hostname, 255)?,
        platform: check_name("platform", &req.platform, 64)?,
        arch: check_name("arch", &req.arch, 64)?,
        available_skills: clean_names("available_skills", &req.available_skills)?,
        unavailable_skills: unavailable,
        max_concurrent_tasks: max,
        ip_address: if ip.is_empty() { peer.map(|p| p.to_string()).unwrap_or_default() } else { ip },
        tailscale_ip: optional("tailscale_ip", &req.tailscale_ip, 64)?,
        port: req.port.unwrap_or(18789),
        tags: clean_names("tags", req.tags.as_deref().unwrap_or_default())?,
        version: match &req.version {
            Some(v) => Some(check_name("version", v, 64)?),
            None => None,
        },
    })
}

/// The submission checked, with defaults applied.
pub fn task_spec(req: SubmitTask, origin: &str, settings: &super::Settings) -> Result<TaskSpec, Error> {
    let name = check_name("name", &req.name, 200)?;
    if req.description.contains('\0') || req.description.len() > 100_000 {
        return Err(Error::invalid("description", "at most 100000 bytes, without NUL characters"));
    }
    if req.required_skills.is_empty() {
        return Err(Error::invalid("required_skills", "must name at least one skill"));
    }
    let timeout = match req.timeout {
        None => settings.default_timeout.as_secs_f64(),
        Some(t) if t.is_finite() && t >= 1.0 && t <= MAX_TASK_TIMEOUT.as_secs_f64() => t,
        Some(t) => {
            return Err(Error::invalid(
                "timeout",
                format!("must be between 1 and {} seconds (7 days), got {t}", MAX_TASK_TIMEOUT.as_secs()),
            ));
        }
    };
    let max_retries = req.max_retries.unwrap_or(settings.default_max_retries);
    if max_retries > MAX_RETRIES {
        return Err(Error::invalid("max_retries", format!("must be between 0 and {MAX_RETRIES}, got {max_retries}")));
    }
    let metadata = match req.metadata {
        None => Value::Object(Default::default()),
        Some(m @ Value::Object(_)) => m,
        Some(_) => return Err(Error::invalid("metadata", "must be a JSON object")),
    };
    let user_id = req.user_id.as_deref().map(|u| check_name("user_id", u, 200)).transpose()?;
    let idempotency_key = req.idempotency_key.as_deref().map(|k| check_name("idempotency_key", k, 200)).transpose()?;
    Ok(TaskSpec {
        name,
        description: req.description,
        task_type: req.task_type.unwrap_or(TaskType::Batch),
        priority: req.priority.unwrap_or(Priority::Normal),
        required_skills: clean_names("required_skills", &req.required_skills)?,
        optional_skills: clean_names("optional_skills", &req.optional_skills)?,
        affinity_tags: clean_names("affinity_tags", &req.affinity_tags)?,
        parameters: req.parameters.unwrap_or_else(|| Value::Object(Default::default())),
        metadata,
        timeout: (timeout * 1000.0).round() / 1000.0,
        max_retries,
        user_id,
        idempotency_key,
        target: req.target.map(check_target).transpose()?.filter(|t| !t.is_any()),
        origin: check_name("origin", origin, 64)?,
        retry_of: None,
    })
}

/// A target, checked: a valid node id, a platform name (lower case), tag names.
fn check_target(t: Target) -> Result<Target, Error> {
    let node = t.node.as_deref().map(|n| validate_node_id(n.trim()).map(|_| n.trim().to_string()));
    Ok(Target {
        node: node.transpose().map_err(|e| Error::invalid("target.node", e))?,
        platform: t
            .platform
            .as_deref()
            .map(|p| check_name("target.platform", p, 64))
            .transpose()?
            .map(|p| p.to_lowercase()),
        tags: clean_names("target.tags", &t.tags)?,
    })
}
