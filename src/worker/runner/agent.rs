//! The agent runner: one turn of the local OpenClaw agent for an assignment.
//!
//! The turn carries the skill's instructions: the system message (which OpenClaw merges
//! into its own system prompt) names the skill and holds the body of its SKILL.md, so the
//! agent has the skill with any stock OpenClaw config, whether or not the skill is in one
//! of OpenClaw's own skill folders. The prompt is the task's `parameters.prompt`, else its
//! description, else its name; the answer text is the result.
//!
//! What a failure does (see [`TurnOutcome`]): lost before it started, or the gateway cannot
//! run turns → agent skills are withdrawn at once and the attempt is requeued without
//! spending a retry; 429 → requeued after Retry-After (or 30 s) without spending a retry;
//! 400 → failed for good (`permanent`); 408, 5xx, a lost connection → a failed attempt,
//! retried with backoff by the coordinator.
//!
//! Available while the gateway can run turns ([`unavailable`]): the worker probes it
//! (`super::super::gateway`) and advertises agent skills as unavailable, with the reason,
//! while it cannot.

use serde_json::{Value, json};

use super::{Attempt, attempt_timeout, failed};
use crate::model::{Assignment, Outcome, ResultReport};
use crate::worker::adverts::Adverts;
use crate::worker::gateway::{Availability, Gateway, TurnOutcome};

/// The system message: which skill to use, and its instructions.
pub fn system_message(a: &Assignment, instructions: Option<(&str, String)>) -> String {
    let mut text = format!(
        "You are running task `{}` for an openclaw cluster. Use the skill `{}` to do it, and answer with the result only.",
        a.task_id, a.skill
    );
    let others: Vec<&str> = a.required_skills.iter().filter(|s| **s != a.skill).map(String::as_str).collect();
    if !others.is_empty() {
        text.push_str(&format!(" These skills are available too: {}.", others.join(", ")));
    }
    match instructions {
        Some((location, body)) => text.push_str(&format!(
            "\n\nThe skill's instructions follow (its folder is the parent of {location}).\n<skill name=\"{}\" location=\"{location}\">\n{body}\n</skill>",
            a.skill
        )),
        None => text.push_str(&format!(
            " `{}` is one of your available skills: read its SKILL.md first and follow it.",
            a.skill
        )),
    }
    text
}

/// The user message; with the results of the tasks it depends on after it, when it has
/// any (keyed by task id, or by step name in a workflow).
pub fn prompt(a: &Assignment) -> String {
    let asked = match a.parameters.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        _ if !a.description.trim().is_empty() => a.description.clone(),
        _ => a.name.clone(),
    };
    match &a.inputs {
        Some(inputs) => format!(
            "{asked}\n\nThe results of the tasks this one depends on (JSON, by task id or step name):\n{}",
            serde_json::to_string_pretty(inputs).unwrap_or_default()
        ),
        None => asked,
    }
}

/// Why agent skills cannot run now, when the gateway cannot run turns.
pub fn unavailable(gateway: &Availability) -> Option<String> {
    match gateway {
        Availability::Ready => None,
        Availability::Unavailable(why) => Some(why.clone()),
    }
}

/// Runs the attempt as an agent turn.
pub async fn run(gateway: &Gateway, adverts: &Adverts, attempt: Attempt<'_>) -> ResultReport {
    let Attempt { assignment: a, skill, cancel, output, .. } = attempt;
    let instructions = skill.path.as_ref().and_then(|path| {
        let location = path.join("SKILL.md").display().to_string();
        Some((location, skill.instructions()?))
    });
    let system = system_message(a, instructions.as_ref().map(|(l, b)| (l.as_str(), b.clone())));
    let timeout = attempt_timeout(a);
    let prompt = prompt(a);
    let turn = tokio::select! {
        t = gateway.turn(&system, &prompt, timeout, Some(&output)) => t,
        _ = cancel.cancelled() => {
            return ResultReport { outcome: Outcome::Cancelled, ..failed(a.attempt, "cancelled".into()) };
        }
    };
    match turn {
        TurnOutcome::Answer { text, model } => ResultReport {
            outcome: Outcome::Completed,
            result: Some(json!({ "text": text, "model": model })),
            error: None,
            ..failed(a.attempt, String::new())
        },
        TurnOutcome::NotStarted(message) => {
            adverts.gateway_unavailable(message.clone());
            ResultReport { retry_after: Some(0.0), ..failed(a.attempt, message) }
        }
        TurnOutcome::Unavailable { message, retry_after } => {
            adverts.gateway_unavailable(message.clone());
            ResultReport { retry_after: Some(retry_after.as_secs_f64()), ..failed(a.attempt, message) }
        }
        TurnOutcome::RateLimited { retry_after, message } => {
            ResultReport { retry_after: Some(retry_after.as_secs_f64()), ..failed(a.attempt, message) }
        }
        TurnOutcome::Refused(message) => ResultReport { permanent: true, ..failed(a.attempt, message) },
        TurnOutcome::Failed(message) => {
            adverts.probe_soon();
            failed(a.attempt, message)
        }
        TurnOutcome::TimedOut => ResultReport {
            outcome: Outcome::Timeout,
            ..failed(
                a.attempt,
                format!(
                    "the agent did not answer within the task's timeout ({}); the turn was cancelled on the gateway",
                    crate::util::short_duration(timeout)
                ),
            )
        },
    }
}
