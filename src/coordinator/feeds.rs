//! Feeds: what a follower of the cluster sees, item by item, in commit order — the event
//! feed (task and node transitions) and a task's output feed. Transport-neutral: the SSE
//! endpoints (and any later transport) turn items into frames.
//!
//! Resuming without gaps or duplicates: a feed is made by subscribing to the live bus
//! FIRST, then reading the store after the follower's resume point; it replays the store,
//! then goes on with the live bus, skipping every live item at or below the last one it
//! gave (ids and line numbers only grow, in commit order). Anything committed before the
//! subscription is in the store; anything after is on the bus.
//!
//! A feed that falls behind its bus (the bus keeps [`super::cluster::EVENT_BUS_CAPACITY`]
//! items) yields `Lagged` and nothing more: the follower resumes from the store with its
//! last id. Feeds never block the bus; each one only costs its own reads.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError};

use super::core::Error;
use crate::model::{Event, OutputLine, TaskStatus};
use crate::store::Store;
use crate::store::events::Filter;

/// How many stored events a replay reads at a time.
const REPLAY_PAGE: u32 = 500;

/// What the output bus carries, in commit order.
#[derive(Debug, Clone)]
pub enum OutputNews {
    /// Lines of a task, committed.
    Lines { task_id: Arc<str>, lines: Arc<Vec<OutputLine>> },
    /// The task ended (committed): no more lines will come.
    Ended { task_id: Arc<str>, status: TaskStatus },
}

/// An item of the event feed.
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    /// Events after the resume point were purged; the oldest kept one is `oldest`.
    Gap {
        oldest: u64,
    },
    Event(Event),
    /// The feed fell behind the live bus by `missed` events and ends here.
    Lagged {
        missed: u64,
    },
    /// The store failed a read; the feed ends here.
    Failed(Error),
}

/// Task and node events after a resume point, then live ones.
pub struct EventFeed {
    store: Store,
    rx: broadcast::Receiver<Event>,
    filter: Filter,
    /// The id of the last event given (or skipped by the filter).
    cursor: u64,
    /// Stored events read but not given yet.
    backlog: VecDeque<Event>,
    /// Still reading the store.
    replaying: bool,
    gap: Option<u64>,
    ended: bool,
}

impl EventFeed {
    /// Live events only, from the subscription on.
    pub(super) fn live(rx: broadcast::Receiver<Event>, store: Store, filter: Filter) -> EventFeed {
        EventFeed { store, rx, filter, cursor: 0, backlog: VecDeque::new(), replaying: false, gap: None, ended: false }
    }

    /// Stored events after `after`, then live ones. `bounds` are the lowest and highest
    /// stored ids, read after `rx` subscribed.
    pub(super) fn resume(
        rx: broadcast::Receiver<Event>,
        store: Store,
        filter: Filter,
        after: u64,
        bounds: Option<(u64, u64)>,
    ) -> EventFeed {
        let mut feed = EventFeed::live(rx, store, filter);
        feed.replaying = true;
        feed.cursor = after;
        if let Some((oldest, newest)) = bounds {
            if after.saturating_add(1) < oldest {
                feed.gap = Some(oldest);
            }
            // A resume point beyond anything stored (another database, a typo) means
            // "from now on", not "skip the next N events".
            feed.cursor = after.min(newest);
        }
        feed
    }

    /// The next item; `None` once the feed has ended (after `Lagged` or `Failed`, or when
    /// the coordinator stops).
    pub async fn next(&mut self) -> Option<EventItem> {
        if self.ended {
            return None;
        }
        if let Some(oldest) = self.gap.take() {
            return Some(EventItem::Gap { oldest });
        }
        loop {
            if let Some(e) = self.backlog.pop_front() {
                self.cursor = e.id;
                return Some(EventItem::Event(e));
            }
            if self.replaying {
                let (after, filter) = (self.cursor, self.filter.clone());
                let page =
                    self.store.read(move |c| Ok(crate::store::events::after(c, after, &filter, REPLAY_PAGE)?)).await;
                match page {
                    Ok(page) => {
                        self.replaying = page.len() == REPLAY_PAGE as usize;
                        self.backlog.extend(page);
                        continue;
                    }
                    Err(e) => {
                        self.ended = true;
                        return Some(EventItem::Failed(super::cluster::store_error(e)));
                    }
                }
            }
            match self.rx.recv().await {
                Ok(e) if e.id <= self.cursor => continue,
                Ok(e) => {
                    self.cursor = e.id;
                    if self.filter.matches(&e) {
                        return Some(EventItem::Event(e));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    self.ended = true;
                    return Some(EventItem::Lagged { missed });
                }
                Err(RecvError::Closed) => {
                    self.ended = true;
                    return None;
                }
            }
        }
    }
}

/// An item of a task's output feed.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputItem {
    Line(OutputLine),
    /// The task ended with this status; the feed ends here.
    End(TaskStatus),
    /// The feed fell behind the output bus and ends here.
    Lagged {
        missed: u64,
    },
}

/// A task's kept lines after a resume point, then its live ones, until it ends.
pub struct OutputFeed {
    rx: broadcast::Receiver<OutputNews>,
    task_id: Arc<str>,
    /// The number of the last line given.
    cursor: u64,
    backlog: VecDeque<OutputLine>,
    /// The task had ended when the feed was made.
    ended: Option<TaskStatus>,
    done: bool,
}

impl OutputFeed {
    /// `lines` were read after `rx` subscribed and after `ended` was looked up.
    pub(super) fn new(
        rx: broadcast::Receiver<OutputNews>,
        task_id: &str,
        after: u64,
        lines: Vec<OutputLine>,
        ended: Option<TaskStatus>,
    ) -> OutputFeed {
        OutputFeed { rx, task_id: task_id.into(), cursor: after, backlog: lines.into(), ended, done: false }
    }

    pub async fn next(&mut self) -> Option<OutputItem> {
        if self.done {
            return None;
        }
        loop {
            if let Some(line) = self.backlog.pop_front() {
                if line.seq <= self.cursor {
                    continue;
                }
                self.cursor = line.seq;
                return Some(OutputItem::Line(line));
            }
            if let Some(status) = self.ended {
                self.done = true;
                return Some(OutputItem::End(status));
            }
            match self.rx.recv().await {
                Ok(OutputNews::Lines { task_id, lines }) if task_id == self.task_id => {
                    self.backlog.extend(lines.iter().filter(|l| l.seq > self.cursor).cloned());
                }
                Ok(OutputNews::Ended { task_id, status }) if task_id == self.task_id => self.ended = Some(status),
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    self.done = true;
                    return Some(OutputItem::Lagged { missed });
                }
                Err(RecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}
