//! Recording results: the durable `coordinator` consumer of `P_RESULTS`, up to
//! `RESULTS_IN_FLIGHT` at once. The messages in hand when one arrives form a batch: each
//! is checked (subject, headers, the signature with the node's key, the message id
//! against the report and the key), and the sound ones go to [`Cluster::results`] — one
//! transition and one commit for the batch, each result fenced and answered as the HTTP
//! handler's [`Cluster::result`] would. Each message is acked after the commit or after
//! its refusal (stale, unknown, forged: logged), and delivered again later when the
//! coordinator cannot take it now (shutting down, overloaded, or the node's key not known
//! yet: a restarted coordinator learns it at the node's next heartbeat).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Relay;
use super::metrics::NatsMetrics;
use crate::coordinator::cluster::Cluster;
use crate::coordinator::core::Error;
use crate::model::{ErrorCode, ReportResponse, ResultReport, TaskStatus};
use crate::transport::nats::{COORDINATOR_CONSUMER, HEADER_MSG_ID, HEADER_NODE, HEADER_SIG};

/// How many results are recorded at once.
const RESULTS_IN_FLIGHT: usize = 64;

/// Takes results from the results stream and records them through [`Cluster::result`].
pub(super) async fn results_loop(
    relay: Arc<Relay>,
    cluster: Arc<Cluster>,
    js: jetstream::Context,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(RESULTS_IN_FLIGHT));
    let mut status = relay.link.watch();
    let mut ready = relay.ready.subscribe();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    let mut failures = 0u32;
    'outer: while !shutdown.is_cancelled() {
        if !ready.borrow_and_update().streams || !relay.link.connected() {
            tokio::select! {
                _ = status.changed() => {}
                _ = ready.changed() => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        let consumer: Result<PullConsumer, String> = js
            .get_consumer_from_stream(COORDINATOR_CONSUMER, relay.names.results_stream())
            .await
            .map_err(|e| e.to_string());
        let messages = match consumer {
            Ok(c) => c
                .stream()
                .max_messages_per_batch(RESULTS_IN_FLIGHT)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                failures += 1;
                tracing::debug!(target: "openclaw::nats", error = %e, "cannot pull results yet; retrying");
                let delay = crate::util::backoff(Duration::from_millis(200), Duration::from_secs(5), failures);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        failures = 0;
        // A message read while gathering a batch that does not belong in it.
        let mut held_back = None;
        loop {
            let next = match held_back.take() {
                Some(next) => next,
                None => tokio::select! {
                    m = messages.next() => m,
                    Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
                    _ = shutdown.cancelled() => break 'outer,
                },
            };
            match next {
                Some(Ok(m)) => {
                    // Every message in hand now goes in one batch: one transition, one commit.
                    let mut batch = vec![m];
                    while batch.len() < RESULTS_IN_FLIGHT {
                        match futures_util::FutureExt::now_or_never(messages.next()) {
                            Some(Some(Ok(m))) => batch.push(m),
                            Some(other) => {
                                held_back = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    let permits = tokio::select! {
                        p = slots.clone().acquire_many_owned(batch.len() as u32) => p.expect("the semaphore is never closed"),
                        _ = shutdown.cancelled() => break 'outer,
                    };
                    let (relay, cluster) = (relay.clone(), cluster.clone());
                    in_flight.spawn(async move {
                        take_results(&relay, &cluster, batch).await;
                        drop(permits);
                    });
                }
                Some(Err(e)) => {
                    use async_nats::jetstream::consumer::pull::MessagesErrorKind as K;
                    match e.kind() {
                        // The server is away or restarting: the stream resumes by itself.
                        K::MissingHeartbeat | K::NoResponders | K::Pull | K::Other => {
                            tracing::debug!(target: "openclaw::nats", error = %e, "pulling results");
                        }
                        K::ConsumerDeleted | K::PushBasedConsumer | K::RequestLimitExceeded => {
                            tracing::warn!(target: "openclaw::nats", error = %e, "the results consumer went away; setting it up again");
                            // The setup loop makes it again at the next connection;
                            // meanwhile wait a little and look again.
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = shutdown.cancelled() => break 'outer,
                            }
                            if let Err(e) = relay.set_up(&js).await {
                                tracing::error!(target: "openclaw::nats", error = %e, "{e}");
                            }
                            continue 'outer;
                        }
                    }
                }
                None => continue 'outer,
            }
        }
    }
    // Results in hand are recorded (the writer closes after this loop ends).
    while in_flight.join_next().await.is_some() {}
}

/// How a result message was dealt with.
enum Taken {
    Recorded,
    Refused(String),
    Later(String),
}

/// Checks a batch of result messages, records the sound ones in one transition (one
/// commit), and acks each after the commit or its refusal.
async fn take_results(relay: &Relay, cluster: &Cluster, batch: Vec<jetstream::Message>) {
    let mut taken: Vec<Option<Taken>> = Vec::with_capacity(batch.len());
    let mut sound = Vec::new();
    for m in &batch {
        match judge(relay, cluster, m).await {
            Ok(result) => {
                sound.push(result);
                taken.push(None);
            }
            Err(t) => taken.push(Some(t)),
        }
    }
    let mut recorded = match cluster.results(sound).await {
        Ok(answers) => answers.into_iter().map(outcome).collect::<Vec<_>>().into_iter(),
        Err(e) => {
            let n = taken.iter().filter(|t| t.is_none()).count();
            std::iter::repeat_with(|| outcome(Err(e.clone()))).take(n).collect::<Vec<_>>().into_iter()
        }
    };
    let acks = batch.into_iter().zip(taken).map(|(m, t)| {
        let t = t.or_else(|| recorded.next()).unwrap_or(Taken::Later("no answer for this result".into()));
        acknowledge(relay, m, t)
    });
    // Each ack is a round trip to the server: all at once.
    futures_util::future::join_all(acks.collect::<Vec<_>>()).await;
}

/// How recording a sound result went, as a [`Taken`].
fn outcome(answer: Result<ReportResponse, Error>) -> Taken {
    match answer {
        Ok(_) => Taken::Recorded,
        Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Overloaded | ErrorCode::Internal) => {
            Taken::Later(e.message)
        }
        Err(e) => Taken::Refused(e.message),
    }
}

/// Acks a result message after its commit or its refusal; asks for it again later when
/// it could not be taken now.
async fn acknowledge(relay: &Relay, m: jetstream::Message, taken: Taken) {
    let family = &relay.metrics.results;
    match taken {
        Taken::Recorded => {
            NatsMetrics::count(family, "recorded");
            let _ = m.double_ack().await;
        }
        Taken::Refused(why) => {
            NatsMetrics::count(family, "refused");
            tracing::info!(target: "openclaw::nats", subject = %m.subject, reason = %why, "a result from NATS was not recorded: {why}");
            let _ = m.double_ack().await;
        }
        Taken::Later(why) => {
            NatsMetrics::count(family, "retried");
            tracing::debug!(target: "openclaw::nats", subject = %m.subject, reason = %why, "a result from NATS will be tried again");
            let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
        }
    }
}

/// A sound result message as `(node, task, report)`, or what to do with it instead.
async fn judge(
    relay: &Relay,
    cluster: &Cluster,
    m: &jetstream::Message,
) -> Result<(String, String, ResultReport), Taken> {
    let Some(task) = relay.names.task_of_result(&m.subject) else {
        return Err(Taken::Refused(format!("`{}` is not a result subject", m.subject)));
    };
    let header = |name: &str| m.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
    let (Some(node), Some(sig), Some(id)) = (header(HEADER_NODE), header(HEADER_SIG), header(HEADER_MSG_ID)) else {
        return Err(Taken::Refused(format!("the message lacks one of {HEADER_NODE}, {HEADER_SIG}, {HEADER_MSG_ID}")));
    };
    let Some(key) = relay.key_of(&node) else {
        return Err(unverifiable(cluster, &node, task, &m.payload).await);
    };
    if !key.verify(&m.subject, &id, &m.payload, &sig) {
        return Err(Taken::Refused(format!(
            "the signature does not match node `{node}`'s key (a forged message, or one sent before the node registered again)"
        )));
    }
    let report: ResultReport = match serde_json::from_slice(&m.payload) {
        Ok(r) => r,
        Err(e) => return Err(Taken::Refused(format!("the body is not a result report: {e}"))),
    };
    if id != key.result_id(task, report.attempt) {
        return Err(Taken::Refused(format!(
            "the message id `{id}` does not name task {task} attempt {}",
            report.attempt
        )));
    }
    Ok((node, task.to_string(), report))
}

/// A result from a node whose key is not known here yet (this coordinator restarted and
/// the node has not heartbeated since, or it runs an older worker): kept for later while
/// the attempt it claims is still active on that node, refused once it is not (it could
/// not be recorded anyway). The body is not trusted for more than that choice.
async fn unverifiable(cluster: &Cluster, node: &str, task: &str, payload: &[u8]) -> Taken {
    let attempt = serde_json::from_slice::<ResultReport>(payload).ok().map(|r| r.attempt);
    let active = match (attempt, cluster.task(task, false).await) {
        (Some(attempt), Ok(t)) => {
            t.state.attempt == attempt
                && t.state.assigned_node.as_deref() == Some(node)
                && matches!(t.state.status, TaskStatus::Scheduled | TaskStatus::Running)
        }
        _ => false,
    };
    if active {
        Taken::Later(format!("node `{node}`'s key is not known yet; it comes with the node's next heartbeat"))
    } else {
        Taken::Refused(format!(
            "node `{node}`'s key is not known here and task {task} has no active attempt on it matching the message"
        ))
    }
}
