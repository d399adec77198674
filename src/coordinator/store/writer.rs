//! The one writer: a long-lived blocking task that owns the store's [`WriteSession`] and
//! commits whatever jobs are queued in a single transaction (group commit).
//!
//! Each job has a sequence number; after a commit the writer publishes the highest one
//! committed, so waiting for a write is waiting for that number. The coordinator queues a
//! job while it holds its state lock, so jobs reach the store in the order the in-memory
//! state changed, and it answers a client only after the job's commit — a 2xx on a state
//! change means it is durable (`Cluster::mutate`). A job's [`AfterCommit`] runs on the
//! writer's thread right after the commit that made it durable, in commit order: that is
//! where events are published, so nobody sees an event the store does not have. A failed
//! write or commit stops the writer for good and tells its owner (fail-stop): memory then
//! claims what the store does not have, and only a restart reloads the truth.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::{StoreError, Write, WriteSession};

/// Run by the writer's thread right after the commit that made a write durable (in commit
/// order): the place to publish what the write recorded.
pub type AfterCommit = Box<dyn FnOnce() + Send>;

struct Job {
    seq: u64,
    /// `None` closes the writer after everything queued before it.
    write: Option<Write>,
    after: Option<AfterCommit>,
}

/// How far the writer got.
#[derive(Debug, Clone, PartialEq)]
enum Committed {
    /// Every write with a sequence number up to this one is durable.
    Upto(u64),
    /// A write or commit failed; nothing more will be written.
    Failed(String),
}

struct WriterShared {
    /// The last sequence number handed out and the channel, together so that writes reach
    /// the writer in sequence order.
    queue: Mutex<(u64, mpsc::UnboundedSender<Job>)>,
    committed: watch::Sender<Committed>,
}

/// The handle for queueing writes. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<WriterShared>,
}

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 1024;

impl Writer {
    /// Starts the writer on `session`. `on_failure` is called once, from the writer's
    /// thread, if a write or a commit fails (the caller stops the process through its
    /// shutdown path). The returned handle finishes once the writer is closed and its queue
    /// drained.
    pub fn start(
        session: Box<dyn WriteSession>,
        on_failure: impl FnOnce(String) + Send + 'static,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (committed, _) = watch::channel(Committed::Upto(0));
        let shared = Arc::new(WriterShared { queue: Mutex::new((0, tx)), committed });
        let writer = Writer { shared: shared.clone() };
        let handle = tokio::task::spawn_blocking(move || writer_loop(session, rx, &shared, on_failure));
        (writer, handle)
    }

    /// Queues a write without waiting (safe to call while holding a std mutex) and returns
    /// its sequence number. `after` runs once it is committed.
    pub fn queue(&self, write: Write, after: Option<AfterCommit>) -> u64 {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.0 += 1;
        let seq = queue.0;
        let _ = queue.1.send(Job { seq, write: Some(write), after });
        seq
    }

    /// The sequence number of the last write queued.
    pub fn queued(&self) -> u64 {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// How many queued writes are not committed yet.
    pub fn backlog(&self) -> u64 {
        match &*self.shared.committed.borrow() {
            Committed::Upto(done) => self.queued().saturating_sub(*done),
            Committed::Failed(_) => 0,
        }
    }

    /// Waits until every write up to `seq` is committed.
    pub async fn committed(&self, seq: u64) -> Result<(), StoreError> {
        let mut rx = self.shared.committed.subscribe();
        let state = rx
            .wait_for(|c| match c {
                Committed::Upto(done) => *done >= seq,
                Committed::Failed(_) => true,
            })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        match &*state {
            Committed::Upto(_) => Ok(()),
            Committed::Failed(e) => Err(StoreError::WriteFailed(e.clone())),
        }
    }

    /// Stops the writer once everything queued so far is committed; later writes fail.
    pub fn close(&self) {
        let queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        let _ = queue.1.send(Job { seq: queue.0, write: None, after: None });
    }
}

fn writer_loop(
    mut session: Box<dyn WriteSession>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    shared: &WriterShared,
    on_failure: impl FnOnce(String),
) {
    let mut batch = Vec::with_capacity(64);
    let mut closing = false;
    while !closing {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        closing = first.write.is_none();
        if !closing {
            batch.push(first);
        }
        while !closing && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) if job.write.is_none() => closing = true,
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let Some(last) = batch.last().map(|j| j.seq) else {
            continue;
        };
        // A failing job is a bug that left memory ahead of the store: it fails the whole
        // group, which stops the process.
        match session.commit(&mut batch.iter().filter_map(|j| j.write.as_ref())) {
            Ok(()) => {
                for job in batch.drain(..) {
                    if let Some(after) = job.after {
                        after();
                    }
                }
                shared.committed.send_replace(Committed::Upto(last));
            }
            Err(e) => {
                // The store refused a write or a commit (disk full, I/O error, or a bug).
                // Memory now claims what the store does not have: nobody gets a 2xx for
                // this group or any later one, and the owner stops the process so that a
                // restart reloads the truth from the store.
                let message = e.to_string();
                tracing::error!(target: "openclaw::store", error = %message, "cannot write to the database; stopping so that a restart reloads a consistent state");
                shared.committed.send_replace(Committed::Failed(message.clone()));
                on_failure(message);
                return;
            }
        }
    }
}
