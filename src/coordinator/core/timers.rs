//! Deadlines the state machine acts on at their own moment: a node's heartbeat deadline, a
//! retry coming due, an attempt's backstop.
//!
//! Timers are lazy: a node has at most one deadline timer; when it fires early (the node
//! heartbeated since), it is pushed again at the node's current deadline. Timers of ended
//! tasks stay until they fire (they find nothing to do) or a compaction drops them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A deadline to act on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A node's heartbeat deadline.
    NodeDeadline(String),
    /// A pending task's retry becomes due.
    RetryDue(String),
    /// The backstop for an attempt that never reports.
    AttemptDeadline(String, u32),
}

/// The timer heap and the wake-up of the loop that waits on it.
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Wakes the timer loop when a new earliest deadline is pushed.
    wake: Arc<Notify>,
}

impl Timers {
    /// What the timer loop waits on besides the next deadline.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Wakes the timer loop to look at the deadlines again (a schedule's due time moved).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    pub fn push(&mut self, at: Instant, timer: Timer) {
        let earliest = self.next();
        self.heap.push(Reverse((at, timer)));
        if earliest.is_none_or(|e| at < e) {
            self.wake.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Keeps only the timers `keep` says can still do something.
    pub fn retain(&mut self, mut keep: impl FnMut(&Timer) -> bool) {
        self.heap.retain(|Reverse((_, t))| keep(t));
    }

    /// The next deadline, if any.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Pops every timer due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<Timer> {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, timer))) = self.heap.pop() {
                due.push(timer);
            }
        }
        due
    }
}
