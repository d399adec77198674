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
use super::store::{EventFilter, Store};
use crate::model::{Event, OutputLine, TaskStatus};

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
    store: Arc<dyn Store>,
    rx: broadcast::Receiver<Event>,
    filter: EventFilter,
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
    pub(super) fn live(rx: broadcast::Receiver<Event>, store: Arc<dyn Store>, filter: EventFilter) -> EventFeed {
        EventFeed { store, rx, filter, cursor: 0, backlog: VecDeque::new(), replaying: false, gap: None, ended: false }
    }

    /// Stored events after `after`, then live ones. `bounds` are the lowest and highest
    /// stored ids, read after `rx` subscribed.
    pub(super) fn resume(
        rx: broadcast::Receiver<Event>,
        store: Arc<dyn Store>,
        filter: EventFilter,
        after: u64,
        bounds: Option<(u64, u64)>,
    ) -> EventFeed {
        let mut feed = EventFeed::live(rx, store, filter);
        feed.replaying = true;
        // A resume point beyond anything stored (another database, a typo) means "from now
        // on", not "skip the next N events".
        feed.cursor = bounds.map(|(_, newest)| after.min(newest)).unwrap_or(0);
        feed.gap = bounds.map(|(oldest, _)| oldest).filter(|oldest| after.saturating_add(1) < *oldest);
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
                    super::store::blocking(&self.store, move |s| s.events_after(after, &filter, REPLAY_PAGE)).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::store::{Batch, NewTask, Write};
    use crate::model::{EventKind, NodeTransition, TaskTransition, Timestamp};

    fn event(id: u64) -> Event {
        Event {
            id,
            at: Timestamp(0),
            kind: if id.is_multiple_of(3) { EventKind::Node } else { EventKind::Task },
            event: if id.is_multiple_of(3) { NodeTransition::Online.into() } else { TaskTransition::Submitted.into() },
            task_id: (!id.is_multiple_of(3)).then(|| format!("t{}", id % 2)),
            node_id: Some("n".into()),
            status: "pending".into(),
            attempt: None,
            skill: None,
            message: None,
            schedule_id: None,
        }
    }

    /// A store holding tasks t0 and t1 and events `stored`, and a bus (whose receivers
    /// subscribe before the store is read, as `Cluster::events` does).
    fn setup(stored: std::ops::RangeInclusive<u64>) -> (tempfile::TempDir, Arc<dyn Store>, broadcast::Sender<Event>) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("cluster.db")).unwrap();
        let settings = crate::coordinator::core::Settings::from_config(&crate::config::Config::default());
        let submit =
            crate::model::SubmitTask { name: "t".into(), required_skills: vec!["x".into()], ..Default::default() };
        let spec = crate::coordinator::core::validate::task_spec(submit, "test", &settings).unwrap();
        let new_tasks = (0..2)
            .map(|i| NewTask { task_id: format!("t{i}"), seq: i + 1, spec: spec.clone(), submitted_at: 0 })
            .collect();
        let batch = Batch { new_tasks, events: stored.map(event).collect(), ..Batch::default() };
        store.write_session(None).unwrap().commit(&mut std::iter::once(&Write::Batch(batch))).unwrap();
        (dir, Arc::new(store), broadcast::channel(64).0)
    }

    async fn drain(feed: &mut EventFeed, until: u64) -> Vec<u64> {
        let mut ids = Vec::new();
        while ids.last() != Some(&until) {
            match feed.next().await.unwrap() {
                EventItem::Event(e) => ids.push(e.id),
                other => panic!("{other:?}"),
            }
        }
        ids
    }

    #[tokio::test]
    async fn a_resume_replays_the_store_then_the_bus_once_each() {
        let (_dir, store, bus) = setup(1..=10);
        let rx = bus.subscribe();
        // Committed after the subscription: on the bus, and 8..10 in the store as well.
        for id in 8..=1200 {
            bus.send(event(id)).unwrap_or_default();
        }
        let mut feed = EventFeed::resume(rx, store.clone(), EventFilter::default(), 5, Some((1, 10)));
        // The bus holds 64: more than that since the subscription is a lag, not a gap.
        assert_eq!(drain(&mut feed, 10).await, (6..=10).collect::<Vec<_>>());
        assert!(matches!(feed.next().await, Some(EventItem::Lagged { .. })));
        assert_eq!(feed.next().await, None);

        let rx = bus.subscribe();
        for id in 8..=20 {
            bus.send(event(id)).unwrap();
        }
        let mut feed = EventFeed::resume(rx, store.clone(), EventFilter::default(), 5, Some((1, 10)));
        assert_eq!(drain(&mut feed, 20).await, (6..=20).collect::<Vec<_>>());

        let rx = bus.subscribe();
        for id in 8..=20 {
            bus.send(event(id)).unwrap();
        }
        let only_t1 = EventFilter { task: Some("t1".into()), ..EventFilter::default() };
        let mut feed = EventFeed::resume(rx, store, only_t1, 0, Some((1, 10)));
        let want: Vec<u64> = (1..=20u64).filter(|i| !i.is_multiple_of(3) && !i.is_multiple_of(2)).collect();
        assert_eq!(drain(&mut feed, 19).await, want);
    }

    #[tokio::test]
    async fn a_gap_is_told_and_a_resume_point_beyond_the_store_means_from_now_on() {
        let (_dir, store, bus) = setup(4..=10);
        let mut feed = EventFeed::resume(bus.subscribe(), store.clone(), EventFilter::default(), 1, Some((4, 10)));
        assert_eq!(feed.next().await, Some(EventItem::Gap { oldest: 4 }));
        assert_eq!(drain(&mut feed, 10).await, (4..=10).collect::<Vec<_>>());
        let mut feed = EventFeed::resume(bus.subscribe(), store.clone(), EventFilter::default(), 3, Some((4, 10)));
        assert_eq!(feed.next().await, Some(EventItem::Event(event(4))));
        let mut feed = EventFeed::resume(bus.subscribe(), store, EventFilter::default(), 5000, Some((4, 10)));
        bus.send(event(11)).unwrap();
        assert_eq!(feed.next().await, Some(EventItem::Event(event(11))));
    }
}
