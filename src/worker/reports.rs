//! Start reports and results on their way to the coordinator over HTTP, coalesced the way
//! a database coalesces commits: at most one batch (`POST .../tasks/reports`, one commit
//! for all of it) is in flight; reports that come meanwhile wait and go together in the
//! next one. Each caller gets its own report's answer, exactly as the per-task endpoint
//! would have given it (a stale report refuses only itself), so [`super::attempts`] keeps
//! every rule it has: the secrets of a start come only with its answer, a result is
//! delivered only once answered.
//!
//! Falls back to the per-task endpoints (`.../tasks/{task}/start`, `.../result`):
//! - for good, when the coordinator does not know the batch endpoint (an older one answers
//!   404 `not_found` or 405 `method_not_allowed`);
//! - for one batch, when the coordinator refused the batch as a whole for what it carries
//!   (too large, malformed) while holding more than one report: sent one by one, each
//!   report meets its own refusal, and the caller deals with it as before.
//!
//! A batch holds only reports made with the same client (the same registration), and at
//! most [`MAX_BATCH_REPORTS`]. Locking: one std mutex over the queue, never held across
//! `.await`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::client::{Client, ClientError};
use crate::model::{
    AttemptResult, BatchedAnswer, ErrorCode, MAX_BATCH_REPORTS, ReportBatch, ReportResponse, ResultReport, TaskRef,
};
use crate::util::lock;

/// What a report says.
enum Kind {
    Start(u32),
    Result(ResultReport),
}

/// A report waiting for its batch.
struct Pending {
    task_id: String,
    kind: Kind,
    client: Client,
    answer: oneshot::Sender<Result<ReportResponse, ClientError>>,
}

/// The queue, and whether a batch is on its way.
#[derive(Default)]
struct Queue {
    waiting: Vec<Pending>,
    sending: bool,
}

/// The reports of one worker on their way over HTTP.
pub struct Reporter {
    node_id: String,
    queue: Mutex<Queue>,
    /// The coordinator does not know the batch endpoint: per-task requests from now on.
    per_task: AtomicBool,
}

impl Reporter {
    pub fn new(node_id: String) -> Arc<Reporter> {
        Arc::new(Reporter { node_id, queue: Mutex::new(Queue::default()), per_task: AtomicBool::new(false) })
    }

    /// Reports that an attempt started; the answer carries the secrets it uses.
    pub async fn start(
        self: &Arc<Self>,
        client: &Client,
        task_id: &str,
        attempt: u32,
    ) -> Result<ReportResponse, ClientError> {
        self.report(client, task_id, Kind::Start(attempt)).await
    }

    /// Reports how an attempt ended.
    pub async fn result(
        self: &Arc<Self>,
        client: &Client,
        task_id: &str,
        report: &ResultReport,
    ) -> Result<ReportResponse, ClientError> {
        self.report(client, task_id, Kind::Result(report.clone())).await
    }

    async fn report(
        self: &Arc<Self>,
        client: &Client,
        task_id: &str,
        kind: Kind,
    ) -> Result<ReportResponse, ClientError> {
        if self.per_task.load(Ordering::Relaxed) {
            return one_by_one(&self.node_id, client, task_id, &kind).await;
        }
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut queue = lock(&self.queue);
            queue.waiting.push(Pending { task_id: task_id.to_string(), kind, client: client.clone(), answer: tx });
            !std::mem::replace(&mut queue.sending, true)
        };
        if lead {
            let this = self.clone();
            tokio::spawn(async move { this.drain().await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(ClientError::Unreachable {
                url: client.base(),
                method: reqwest::Method::POST,
                path: format!("/api/v1/nodes/{}/tasks/reports", self.node_id),
                cause: "the worker stopped before the report was sent".into(),
            })
        })
    }

    /// Sends batches until the queue is empty.
    async fn drain(self: Arc<Self>) {
        loop {
            let batch = {
                let mut queue = lock(&self.queue);
                let Some(first) = queue.waiting.first() else {
                    queue.sending = false;
                    return;
                };
                let client = first.client.clone();
                let mut batch = Vec::new();
                let mut rest = Vec::new();
                for p in queue.waiting.drain(..) {
                    if batch.len() < MAX_BATCH_REPORTS && p.client.same_as(&client) {
                        batch.push(p);
                    } else {
                        rest.push(p);
                    }
                }
                queue.waiting = rest;
                batch
            };
            self.send(batch).await;
        }
    }

    /// Sends one batch and answers each of its reports.
    async fn send(&self, batch: Vec<Pending>) {
        let client = batch[0].client.clone();
        let mut body = ReportBatch::default();
        for p in &batch {
            match &p.kind {
                Kind::Start(attempt) => body.starts.push(TaskRef { task_id: p.task_id.clone(), attempt: *attempt }),
                Kind::Result(r) => body.results.push(AttemptResult { task_id: p.task_id.clone(), report: r.clone() }),
            }
        }
        match client.report_batch(&self.node_id, &body).await {
            Ok(answer) => {
                let (mut starts, mut results) = (answer.starts.into_iter(), answer.results.into_iter());
                for p in batch {
                    let one = match p.kind {
                        Kind::Start(_) => starts.next(),
                        Kind::Result(_) => results.next(),
                    };
                    let _ = p.answer.send(match one {
                        Some(BatchedAnswer::Taken(r)) => Ok(r),
                        Some(BatchedAnswer::Refused(e)) => Err(ClientError::Status {
                            url: client.base(),
                            method: reqwest::Method::POST,
                            path: format!("/api/v1/nodes/{}/tasks/reports ({})", self.node_id, p.task_id),
                            status: e.error.code.parse::<ErrorCode>().map(ErrorCode::status).unwrap_or(500),
                            code: e.error.code,
                            message: e.error.message,
                        }),
                        None => Err(ClientError::Decode {
                            method: reqwest::Method::POST,
                            path: format!("/api/v1/nodes/{}/tasks/reports", self.node_id),
                            cause: "the answer has fewer answers than the batch had reports".into(),
                        }),
                    });
                }
            }
            Err(e) if matches!(e.code(), Some(ErrorCode::NotFound | ErrorCode::MethodNotAllowed)) => {
                tracing::info!(target: "openclaw::worker", error = %e, "the coordinator does not take batches of reports (an older version); reporting task by task");
                self.per_task.store(true, Ordering::Relaxed);
                self.each(batch).await;
            }
            Err(e)
                if batch.len() > 1 && matches!(e.code(), Some(ErrorCode::BadRequest | ErrorCode::PayloadTooLarge)) =>
            {
                tracing::info!(target: "openclaw::worker", error = %e, reports = batch.len(), "the coordinator refused a batch of reports; sending them one by one");
                self.each(batch).await;
            }
            Err(e) => {
                for p in batch {
                    let _ = p.answer.send(Err(e.clone()));
                }
            }
        }
    }

    /// Sends each report of a batch on its own, at once.
    async fn each(&self, batch: Vec<Pending>) {
        let sends = batch.into_iter().map(|p| async move {
            let answer = one_by_one(&self.node_id, &p.client, &p.task_id, &p.kind).await;
            let _ = p.answer.send(answer);
        });
        futures_util::future::join_all(sends).await;
    }
}

/// A report on its per-task endpoint.
async fn one_by_one(node: &str, client: &Client, task_id: &str, kind: &Kind) -> Result<ReportResponse, ClientError> {
    match kind {
        Kind::Start(attempt) => client.report_start(node, task_id, *attempt).await,
        Kind::Result(r) => client.report_result(node, task_id, r).await,
    }
}
