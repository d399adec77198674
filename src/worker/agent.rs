//! The agent runner: one turn of the local OpenClaw agent for an assignment.
//!
//! The prompt is the task's `parameters.prompt`, else its description, else its name; the
//! answer text is the result. A gateway that turns out unable to run turns withdraws the
//! node's agent skills at once (through [`Adverts::gateway_unavailable`]), and the attempt
//! is requeued without spending a retry.

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::adverts::Adverts;
use super::dispatch::{attempt_timeout, failed};
use super::gateway::{Gateway, TurnOutcome};
use crate::model::{Assignment, Outcome, ResultReport};

/// Runs the assignment as an agent turn.
pub async fn run(gateway: &Gateway, adverts: &Adverts, a: &Assignment, cancel: CancellationToken) -> ResultReport {
    let prompt = match a.parameters.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        _ if !a.description.trim().is_empty() => a.description.clone(),
        _ => a.name.clone(),
    };
    let others: Vec<String> = a.required_skills.iter().filter(|s| **s != a.skill).cloned().collect();
    let timeout = attempt_timeout(a);
    let turn = tokio::select! {
        t = gateway.turn(&a.skill, &others, &prompt, timeout) => t,
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
        TurnOutcome::RateLimited { retry_after, message } => {
            ResultReport { retry_after: Some(retry_after.as_secs_f64()), ..failed(a.attempt, message) }
        }
        TurnOutcome::Disabled(message) => {
            adverts.gateway_unavailable(message.clone());
            ResultReport { retry_after: Some(1.0), ..failed(a.attempt, message) }
        }
        TurnOutcome::Failed(message) => failed(a.attempt, message),
        TurnOutcome::TimedOut => ResultReport {
            outcome: Outcome::Timeout,
            ..failed(
                a.attempt,
                format!(
                    "the agent did not answer within the task's timeout ({})",
                    crate::util::short_duration(timeout)
                ),
            )
        },
    }
}
