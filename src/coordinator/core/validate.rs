//! The checks of what clients send: names, lists of names, usage figures, a node's
//! registration and a task's submission. Each check names the field that is wrong and says
//! what is accepted; a value that passes comes back cleaned (trimmed, duplicates dropped,
//! defaults applied). The limits themselves are defined once in `model::limits`, for these
//! checks and for the OpenAPI document. The transitions call these before they change
//! anything, so bad input changes nothing.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde_json::Value;

use super::Error;
use crate::model::limits::{Name, SKILL_NAME};
use crate::model::{
    ADDRESS, CLIENT_KEY, DESCRIPTION, HOSTNAME, LABEL, MAX_DEPENDENCIES, MAX_NODE_CONCURRENCY, MAX_RETRIES,
    MAX_TASK_TIMEOUT, NODE_CONCURRENCY, NodeSpec, PERCENT, Priority, RegisterRequest, SKILL_REASON, SkillContent,
    SubmitTask, TASK_NAME, TASK_TIMEOUT_SECS, Target, TaskLinks, TaskSpec, TaskType, split_pin, validate_digest,
    validate_node_id,
};

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
        let name = check_name(&format!("{field}[{i}]"), name, SKILL_NAME)?;
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A trimmed, non-empty name without control characters (NUL included), at most
/// `rule.max()` characters ([`Name::check`]).
pub fn check_name(field: &str, v: &str, rule: Name) -> Result<String, Error> {
    rule.check(v).map_err(|e| Error::invalid(field, e))
}

pub fn check_usage(field: &str, v: f64) -> Result<f64, Error> {
    if v.is_finite() && PERCENT.contains(&v) {
        Ok(v)
    } else {
        Err(Error::invalid(field, format!("must be a percentage between 0 and 100, got {v}")))
    }
}

/// Agent skills that cannot run now: skill names, and reasons of at most 2000 characters
/// without NUL.
pub fn check_unavailable(unavailable: &BTreeMap<String, String>) -> Result<(), Error> {
    for (skill, why) in unavailable {
        check_name("unavailable_skills", skill, SKILL_NAME)?;
        SKILL_REASON.check(why).map_err(|e| Error::invalid(&format!("unavailable_skills.{skill}"), e))?;
    }
    Ok(())
}

/// Where each skill came from and its digest: names and sources checked, digests of the
/// `sha256:` form; entries for skills the node does not list (available or unavailable)
/// are dropped, as they describe nothing placement or the skills view would show.
pub fn skill_digests(
    digests: Option<&BTreeMap<String, SkillContent>>,
    available: &[String],
    unavailable: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, SkillContent>, Error> {
    let Some(digests) = digests else { return Ok(BTreeMap::new()) };
    let max = 2 * crate::model::MAX_SKILLS;
    if digests.len() > max {
        return Err(Error::invalid("skill_digests", format!("at most {max} entries, got {}", digests.len())));
    }
    let mut out = BTreeMap::new();
    for (name, content) in digests {
        let name = check_name("skill_digests", name, SKILL_NAME)?;
        let field = format!("skill_digests.{name}");
        let source = check_name(&format!("{field}.source"), &content.source, LABEL)?;
        if let Some(d) = &content.digest {
            validate_digest(d).map_err(|e| Error::invalid(&format!("{field}.digest"), e))?;
        }
        if available.contains(&name) || unavailable.contains_key(&name) {
            out.insert(name, SkillContent { source, digest: content.digest.clone() });
        }
    }
    Ok(out)
}

/// The spec a registration declares, checked.
pub fn node_spec(req: &RegisterRequest, peer: Option<IpAddr>) -> Result<NodeSpec, Error> {
    let max = req.max_concurrent_tasks.unwrap_or(5);
    if !NODE_CONCURRENCY.contains(&max) {
        return Err(Error::invalid(
            "max_concurrent_tasks",
            format!("must be between 1 and {MAX_NODE_CONCURRENCY}, got {max}"),
        ));
    }
    let optional = |field: &str, v: &Option<String>| -> Result<String, Error> {
        let kept = v.as_deref().map(|v| ADDRESS.check_or_blank(v)).transpose();
        Ok(kept.map_err(|e| Error::invalid(field, e))?.flatten().unwrap_or_default())
    };
    let unavailable = req.unavailable_skills.clone().unwrap_or_default();
    check_unavailable(&unavailable)?;
    let ip = optional("ip_address", &req.ip_address)?;
    let available = clean_names("available_skills", &req.available_skills)?;
    Ok(NodeSpec {
        hostname: check_name("hostname", &req.hostname, HOSTNAME)?,
        platform: check_name("platform", &req.platform, LABEL)?,
        arch: check_name("arch", &req.arch, LABEL)?,
        skill_digests: skill_digests(req.skill_digests.as_ref(), &available, &unavailable)?,
        available_skills: available,
        unavailable_skills: unavailable,
        max_concurrent_tasks: max,
        ip_address: if ip.is_empty() { peer.map(|p| p.to_string()).unwrap_or_default() } else { ip },
        tailscale_ip: optional("tailscale_ip", &req.tailscale_ip)?,
        port: req.port.unwrap_or(18789),
        tags: clean_names("tags", req.tags.as_deref().unwrap_or_default())?,
        version: match &req.version {
            Some(v) => Some(check_name("version", v, LABEL)?),
            None => None,
        },
    })
}

/// The submission checked, with defaults applied.
pub fn task_spec(req: SubmitTask, origin: &str, settings: &super::Settings) -> Result<TaskSpec, Error> {
    let name = check_name("name", &req.name, TASK_NAME)?;
    DESCRIPTION.check(&req.description).map_err(|e| Error::invalid("description", e))?;
    if req.required_skills.is_empty() {
        return Err(Error::invalid("required_skills", "must name at least one skill"));
    }
    let timeout = match req.timeout {
        None => settings.default_timeout.as_secs_f64(),
        Some(t) if TASK_TIMEOUT_SECS.contains(&t) => t,
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
    let user_id = req.user_id.as_deref().map(|u| check_name("user_id", u, CLIENT_KEY)).transpose()?;
    let idempotency_key =
        req.idempotency_key.as_deref().map(|k| check_name("idempotency_key", k, CLIENT_KEY)).transpose()?;
    let (required_skills, target) = pin_skills(clean_names("required_skills", &req.required_skills)?, req.target)?;
    let links = TaskLinks {
        depends_on: task_ids("depends_on", &req.depends_on)?,
        on_parent_failure: req.on_parent_failure.unwrap_or_default(),
        ..Default::default()
    };
    Ok(TaskSpec {
        name,
        description: req.description,
        task_type: req.task_type.unwrap_or(TaskType::Batch),
        priority: req.priority.unwrap_or(Priority::Normal),
        required_skills,
        optional_skills: clean_names("optional_skills", &req.optional_skills)?,
        affinity_tags: clean_names("affinity_tags", &req.affinity_tags)?,
        parameters: req.parameters.unwrap_or_else(|| Value::Object(Default::default())),
        metadata,
        timeout: (timeout * 1000.0).round() / 1000.0,
        max_retries,
        user_id,
        idempotency_key,
        target: target.map(check_target).transpose()?.filter(|t| !t.is_any()),
        origin: check_name("origin", origin, LABEL)?,
        retry_of: None,
        secrets: secret_names(&req.secrets)?,
        schedule: None,
        links,
    })
}

/// Task ids (`depends_on`): trimmed, without duplicates (keeping order), at most
/// [`MAX_DEPENDENCIES`]; whether they exist is the transition's to say.
pub fn task_ids(field: &str, ids: &[String]) -> Result<Vec<String>, Error> {
    if ids.len() > MAX_DEPENDENCIES {
        return Err(Error::invalid(field, format!("at most {MAX_DEPENDENCIES} tasks, got {}", ids.len())));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = check_name(&format!("{field}[{i}]"), id, CLIENT_KEY)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// A task's secret names, checked (the names only: whether they exist is the catalogue's
/// to say), sorted, without duplicates.
fn secret_names(names: &[String]) -> Result<Vec<String>, Error> {
    if names.len() > crate::model::MAX_TASK_SECRETS {
        return Err(Error::invalid(
            "secrets",
            format!("at most {} secrets per task, got {}", crate::model::MAX_TASK_SECRETS, names.len()),
        ));
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        crate::model::check_secret_name(name).map_err(|e| Error::invalid("secrets", e))?;
        out.push(name.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Required skills written `name@sha256:…` become the bare name and a pinned version in the
/// target (`target.digests`); a pin must name a required skill, and one skill one digest.
fn pin_skills(required: Vec<String>, target: Option<Target>) -> Result<(Vec<String>, Option<Target>), Error> {
    let mut target = target.unwrap_or_default();
    let mut names = Vec::with_capacity(required.len());
    for (i, entry) in required.into_iter().enumerate() {
        let (name, Some(pin)) = split_pin(&entry) else {
            names.push(entry);
            continue;
        };
        let field = format!("required_skills[{i}]");
        let name = check_name(&field, name, SKILL_NAME)?;
        match target.digests.get(&name) {
            Some(other) if other != pin => {
                return Err(Error::invalid(&field, format!("'{name}' is pinned to two versions: {other} and {pin}")));
            }
            _ => {}
        }
        target.digests.insert(name.clone(), pin.to_string());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok((names, Some(target)))
}

/// A target, checked: a valid node id, a platform name (lower case), tag names, pinned
/// versions of the `sha256:` form.
pub fn check_target(t: Target) -> Result<Target, Error> {
    if t.digests.len() > crate::model::MAX_SKILLS {
        return Err(Error::invalid(
            "target.digests",
            format!("at most {} entries, got {}", crate::model::MAX_SKILLS, t.digests.len()),
        ));
    }
    let mut digests = BTreeMap::new();
    for (skill, pin) in &t.digests {
        let skill = check_name("target.digests", skill, SKILL_NAME)?;
        validate_digest(pin).map_err(|e| Error::invalid(&format!("target.digests.{skill}"), e))?;
        digests.insert(skill, pin.clone());
    }
    let node = t.node.as_deref().map(|n| validate_node_id(n.trim()).map(|_| n.trim().to_string()));
    if t.each_node && t.node.is_some() {
        return Err(Error::invalid(
            "target.each_node",
            "fans out to every matching node, and target.node names one: drop one of the two",
        ));
    }
    Ok(Target {
        each_node: t.each_node,
        node: node.transpose().map_err(|e| Error::invalid("target.node", e))?,
        platform: t
            .platform
            .as_deref()
            .map(|p| check_name("target.platform", p, LABEL))
            .transpose()?
            .map(|p| p.to_lowercase()),
        tags: clean_names("target.tags", &t.tags)?,
        digests,
    })
}
