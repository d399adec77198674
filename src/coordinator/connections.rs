//! The open client connections, capped overall and per client address.
//!
//! Every accepted connection holds a [`Slot`] in [`Connections`] for as long as it is open.
//! A slot is *waiting* while the connection waits on its client (TLS handshake, request
//! headers, a request body, an idle keep-alive, a response the client does not read) and
//! *busy* while a handler works on a complete request (long polls included). When a new
//! connection would pass a cap, the connection that has been waiting longest (from the same
//! address, for the per-address cap) is closed to make room; when none is waiting, the new
//! connection is refused at once with a 503 written without blocking. So clients that
//! open connections and never finish a request cannot lock out those that do, and the
//! accept loop never waits on a client.
//!
//! Workers always have room: a share of both caps (`coordinator.node_reserve_percent`) is
//! kept for node routes (register, heartbeat, poll, start, output, result). A connection
//! serving any other request *holds* a client place from the moment its route is known
//! until its answer is handed over (a stream: until the stream ends); a request that would
//! hold more than the caps less the reserve is refused with 503 at once. Idle and slow
//! connections are closed to make room as before, so the reserve is always either in use by
//! workers or free to be taken by them.
//!
//! Invariants: a slot is in the table from [`Connections::admit`] until it is dropped or
//! evicted, whichever comes first; the per-address counts, the held counts and the waiting
//! queues always describe exactly the slots in the table. Trusted proxies are exempt from
//! the per-address caps (every client behind them shares their address), not from the
//! overall ones.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// File descriptors kept free for everything that is not a client connection (the store,
/// log files, token files, the listener, DNS): the connection cap is lowered to fit
/// `RLIMIT_NOFILE` minus this.
pub const FD_RESERVE: u64 = 128;

/// The table of open connections.
pub struct Connections {
    /// A std mutex: held only for a few map operations, never across an `.await`.
    table: Mutex<Table>,
    max: usize,
    max_per_ip: usize,
    /// The most connections client requests (all but node routes) may hold, overall and
    /// from one address: the caps less the share kept for workers.
    client_max: usize,
    client_max_per_ip: usize,
    /// Addresses without a per-address cap (trusted proxies).
    exempt: Vec<IpAddr>,
    /// Exported as `openclaw_connections_open` and `openclaw_connections_held`.
    gauges: Option<(Gauge, Gauge)>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    /// Orders waits: a larger stamp started waiting later.
    next_stamp: u64,
    conns: HashMap<u64, Entry>,
    /// Connections holding a client place.
    held: usize,
    /// Waiting connections, longest-waiting first: stamp → id.
    waiting: BTreeMap<u64, u64>,
    per_ip: HashMap<IpAddr, PerIp>,
    /// For the rate-limited WARN about the caps.
    pressure: Throttle,
    evicted: u64,
    refused: u64,
}

#[derive(Default)]
struct PerIp {
    open: usize,
    held: usize,
    waiting: BTreeMap<u64, u64>,
}

struct Entry {
    ip: IpAddr,
    /// Set while the connection waits on its client.
    waiting_since: Option<u64>,
    /// It serves a client request (not a node route).
    held: bool,
    close: CancellationToken,
}

/// Why a client request was refused a place: the numbers and the config key, for its 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoRoom(pub String);

impl Connections {
    /// Caps of `max` connections and `max_per_ip` from one address, of which
    /// `reserve_percent` is kept for node routes.
    pub fn new(max: usize, max_per_ip: usize, reserve_percent: u32, exempt: Vec<IpAddr>) -> Connections {
        let max_per_ip = max_per_ip.min(max);
        let share = |cap: usize| (cap - cap * reserve_percent.min(100) as usize / 100).max(1);
        Connections {
            table: Mutex::new(Table::default()),
            max,
            max_per_ip,
            client_max: share(max),
            client_max_per_ip: share(max_per_ip),
            exempt,
            gauges: None,
        }
    }

    /// Keeps `open` and `held` set to the open connections and those holding a client place.
    pub fn with_gauges(mut self, open: Gauge, held: Gauge) -> Connections {
        self.gauges = Some((open, held));
        self
    }

    /// A lock on the table that publishes the counts when it is let go.
    fn lock_and_publish(&self) -> Published<'_> {
        Published { table: self.lock(), gauges: self.gauges.as_ref() }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes room for a new connection from `ip` and registers it (waiting), or `None` when
    /// every connection in the way is busy: the caller refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Arc<Slot>> {
        let mut t = self.lock_and_publish();
        let capped = !self.exempt.contains(&ip);
        if capped && t.per_ip.get(&ip).is_some_and(|p| p.open >= self.max_per_ip) {
            let oldest = t.per_ip.get(&ip).and_then(|p| p.waiting.values().next().copied());
            match oldest {
                Some(id) => t.evict(id),
                None => return t.refuse(self.max, self.max_per_ip),
            }
        }
        if t.conns.len() >= self.max {
            match t.waiting.values().next().copied() {
                Some(id) => t.evict(id),
                None => return t.refuse(self.max, self.max_per_ip),
            }
        }
        if t.evicted > 0 {
            t.report(self.max, self.max_per_ip);
        }
        let id = t.next_id;
        t.next_id += 1;
        let close = CancellationToken::new();
        t.conns.insert(id, Entry { ip, waiting_since: None, held: false, close: close.clone() });
        t.per_ip.entry(ip).or_default().open += 1;
        t.set_waiting(id, true);
        Some(Arc::new(Slot { id, owner: self.clone(), close }))
    }

    /// Closes the connection that has been waiting longest, to free a file descriptor.
    /// Returns whether there was one.
    pub fn evict_oldest(&self) -> bool {
        let mut t = self.lock_and_publish();
        match t.waiting.values().next().copied() {
            Some(id) => {
                t.evict(id);
                true
            }
            None => false,
        }
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.lock().conns.len()
    }

    fn set_waiting(&self, id: u64, waiting: bool) {
        self.lock().set_waiting(id, waiting);
    }

    /// Gives connection `id` a client place, unless client requests already hold all but
    /// the workers' share overall or from its address.
    fn hold(&self, id: u64) -> Result<(), NoRoom> {
        let mut t = self.lock_and_publish();
        let Some(entry) = t.conns.get(&id) else { return Ok(()) };
        if entry.held {
            return Ok(());
        }
        let ip = entry.ip;
        let from_ip = t.per_ip.get(&ip).map_or(0, |p| p.held);
        if !self.exempt.contains(&ip) && from_ip >= self.client_max_per_ip {
            return Err(NoRoom(format!(
                "client requests from {ip} already hold {from_ip} connections, all but the share of coordinator.max_connections_per_ip ({}) kept for workers (coordinator.node_reserve_percent); try again when one of them ends",
                self.max_per_ip
            )));
        }
        if t.held >= self.client_max {
            return Err(NoRoom(format!(
                "client requests already hold {} connections, all but the share of coordinator.max_connections ({}) kept for workers (coordinator.node_reserve_percent); try again shortly",
                t.held, self.max
            )));
        }
        t.set_held(id, true);
        Ok(())
    }

    fn release(&self, id: u64) {
        self.lock_and_publish().set_held(id, false);
    }

    fn remove(&self, id: u64) {
        self.lock_and_publish().remove(id);
    }
}

/// The table, locked; on drop the gauges get its counts.
struct Published<'a> {
    table: MutexGuard<'a, Table>,
    gauges: Option<&'a (Gauge, Gauge)>,
}

impl std::ops::Deref for Published<'_> {
    type Target = Table;
    fn deref(&self) -> &Table {
        &self.table
    }
}

impl std::ops::DerefMut for Published<'_> {
    fn deref_mut(&mut self) -> &mut Table {
        &mut self.table
    }
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        if let Some((open, held)) = self.gauges {
            open.set(self.table.conns.len() as i64);
            held.set(self.table.held as i64);
        }
    }
}

impl Table {
    fn set_held(&mut self, id: u64, held: bool) {
        let Some(entry) = self.conns.get_mut(&id) else { return };
        if entry.held == held {
            return;
        }
        entry.held = held;
        let per_ip = self.per_ip.entry(entry.ip).or_default();
        if held {
            self.held += 1;
            per_ip.held += 1;
        } else {
            self.held -= 1;
            per_ip.held -= 1;
        }
    }

    fn set_waiting(&mut self, id: u64, waiting: bool) {
        let stamp = self.next_stamp;
        let Some(entry) = self.conns.get_mut(&id) else { return };
        if entry.waiting_since.is_some() == waiting {
            return;
        }
        let ip = entry.ip;
        let per_ip = self.per_ip.entry(ip).or_default();
        if waiting {
            self.next_stamp += 1;
            entry.waiting_since = Some(stamp);
            self.waiting.insert(stamp, id);
            per_ip.waiting.insert(stamp, id);
        } else if let Some(since) = entry.waiting_since.take() {
            self.waiting.remove(&since);
            per_ip.waiting.remove(&since);
        }
    }

    /// Drops a connection from the table; returns its close token.
    fn remove(&mut self, id: u64) -> Option<CancellationToken> {
        self.set_held(id, false);
        let entry = self.conns.remove(&id)?;
        if let Some(since) = entry.waiting_since {
            self.waiting.remove(&since);
        }
        if let Some(per_ip) = self.per_ip.get_mut(&entry.ip) {
            per_ip.open -= 1;
            if let Some(since) = entry.waiting_since {
                per_ip.waiting.remove(&since);
            }
            if per_ip.open == 0 {
                self.per_ip.remove(&entry.ip);
            }
        }
        Some(entry.close)
    }

    fn evict(&mut self, id: u64) {
        if let Some(close) = self.remove(id) {
            close.cancel();
            self.evicted += 1;
        }
    }

    fn refuse(&mut self, max: usize, max_per_ip: usize) -> Option<Arc<Slot>> {
        self.refused += 1;
        self.report(max, max_per_ip);
        None
    }

    /// One WARN per [`Throttle::PERIOD`] at most while the caps bite.
    fn report(&mut self, max: usize, max_per_ip: usize) {
        if self.pressure.ready() {
            tracing::warn!(
                target: "openclaw::coordinator",
                closed_waiting = self.evicted, refused = self.refused, open = self.conns.len(),
                max_connections = max, max_connections_per_ip = max_per_ip,
                "connection limit reached: closed connections that waited longest on their client and refused new ones while all were busy (coordinator.max_connections, coordinator.max_connections_per_ip)"
            );
            self.evicted = 0;
            self.refused = 0;
        }
    }
}

/// One open connection's place in the table. Shared by the connection's task and its
/// request handler; the place is given back when the last holder drops it.
pub struct Slot {
    id: u64,
    owner: Arc<Connections>,
    close: CancellationToken,
}

impl Slot {
    /// A handler works on a complete request: not to be closed for room.
    pub fn busy(&self) {
        self.owner.set_waiting(self.id, false);
    }

    /// The connection waits on its client again.
    pub fn waiting(&self) {
        self.owner.set_waiting(self.id, true);
    }

    /// The connection serves a client request (not a node route) from now until
    /// [`Slot::release`] or its end; refused when that would take the workers' share.
    pub fn hold(&self) -> Result<(), NoRoom> {
        self.owner.hold(self.id)
    }

    /// The client request has been answered.
    pub fn release(&self) {
        self.owner.release(self.id);
    }

    /// Resolves when the connection was closed to make room.
    pub fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.close.cancelled()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.owner.remove(self.id);
    }
}

/// Lets an event through at most once per period, counting the ones it holds back.
#[derive(Default)]
pub struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub const PERIOD: Duration = Duration::from_secs(10);

    /// Whether to log now; otherwise the event is counted in [`Throttle::held_back`].
    pub fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Self::PERIOD) {
            self.held += 1;
            return false;
        }
        self.last = Some(now);
        true
    }

    /// How many events were held back since the last one let through; resets the count.
    pub fn held_back(&mut self) -> u64 {
        std::mem::take(&mut self.held)
    }
}

/// The connection cap that the open-file limit allows: raises the soft `RLIMIT_NOFILE`
/// towards the hard one when `wanted` needs it, and lowers the cap (with a WARN) when even
/// the hard limit is too small.
#[cfg(unix)]
// rlim_t is u64 on the platforms we build for, not on every Unix.
#[allow(clippy::unnecessary_cast)]
pub fn fit_to_fd_limit(wanted: usize) -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted;
    }
    let needed = wanted as u64 + FD_RESERVE;
    if (limit.rlim_cur as u64) < needed {
        let raised = libc::rlimit { rlim_cur: needed.min(limit.rlim_max as u64) as libc::rlim_t, ..limit };
        // SAFETY: setrlimit reads the struct we own; raising the soft limit up to the hard
        // one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let fits = (limit.rlim_cur as u64).saturating_sub(FD_RESERVE).max(16) as usize;
    if fits < wanted {
        tracing::warn!(
            target: "openclaw::coordinator",
            max_connections = wanted, open_file_limit = limit.rlim_cur as u64, effective = fits,
            "coordinator.max_connections does not fit the open-file limit (with {FD_RESERVE} kept for the store and logs): raise LimitNOFILE (systemd) or `ulimit -n`, or lower coordinator.max_connections"
        );
        return fits;
    }
    wanted
}

/// Windows has no small per-process handle limit to fit.
#[cfg(not(unix))]
pub fn fit_to_fd_limit(wanted: usize) -> usize {
    wanted
}

/// Whether an accept error means the process or the system is out of file descriptors.
pub fn out_of_descriptors(err: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
    }
    #[cfg(not(unix))]
    {
        let _ = err;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn the_longest_waiting_connection_makes_room_and_busy_ones_are_kept() {
        let c = Arc::new(Connections::new(3, 3, 0, vec![]));
        let a = c.admit(ip(1)).unwrap();
        let b = c.admit(ip(1)).unwrap();
        let d = c.admit(ip(1)).unwrap();
        a.busy();
        // Full: b waited longest and is closed for the newcomer.
        let e = c.admit(ip(2)).unwrap();
        assert!(b.close.is_cancelled() && !a.close.is_cancelled() && !d.close.is_cancelled());
        assert_eq!(c.open(), 3);
        // b's own drop later must not free anybody else's place.
        drop(b);
        assert_eq!(c.open(), 3);
        d.busy();
        e.busy();
        // Everybody busy: refused.
        assert!(c.admit(ip(3)).is_none());
        e.waiting();
        assert!(c.admit(ip(3)).is_some() && e.close.is_cancelled());
    }

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let c = Arc::new(Connections::new(10, 2, 0, vec![ip(9)]));
        let a = c.admit(ip(1)).unwrap();
        let b = c.admit(ip(1)).unwrap();
        let other = c.admit(ip(2)).unwrap();
        // A third from ip 1 closes ip 1's oldest waiting one, not ip 2's.
        let third = c.admit(ip(1)).unwrap();
        assert!(a.close.is_cancelled() && !other.close.is_cancelled());
        b.busy();
        third.busy();
        assert!(c.admit(ip(1)).is_none(), "both of ip 1's connections are busy");
        // A trusted proxy is not capped per address.
        let proxied: Vec<_> = (0..5).map(|_| c.admit(ip(9)).unwrap()).collect();
        assert_eq!(c.open(), 3 + proxied.len());
        drop(proxied);
        drop((b, other, third));
        assert_eq!(c.open(), 0);
        let t = c.lock();
        assert!(t.per_ip.is_empty() && t.waiting.is_empty());
    }

    #[test]
    fn client_requests_never_take_the_workers_share() {
        // 12 overall, 8 per address; a quarter of each is kept for node routes: clients
        // may hold 9 overall and 6 from one address.
        let c = Arc::new(Connections::new(12, 8, 25, vec![ip(9)]));
        let clients: Vec<_> = (0..6).map(|_| c.admit(ip(1)).unwrap()).collect();
        for s in &clients {
            s.busy();
            s.hold().unwrap();
        }
        let seventh = c.admit(ip(1)).unwrap();
        seventh.busy();
        let refused = seventh.hold().unwrap_err();
        assert!(refused.0.contains("from 127.0.0.1") && refused.0.contains("node_reserve_percent"), "{refused:?}");
        // A node route on the same address still gets a connection and needs no place.
        let worker = c.admit(ip(1)).unwrap();
        worker.busy();
        // The refused one goes back to waiting and makes room for the next newcomer.
        seventh.waiting();
        let worker2 = c.admit(ip(1)).unwrap();
        assert!(seventh.close.is_cancelled() && !worker.close.is_cancelled());
        // Overall: 3 more from elsewhere fill the clients' 9; the 10th is refused.
        let others: Vec<_> = (0..3).map(|i| c.admit(ip(2 + i)).unwrap()).collect();
        for s in &others {
            s.hold().unwrap();
        }
        let tenth = c.admit(ip(7)).unwrap();
        assert!(tenth.hold().unwrap_err().0.contains("coordinator.max_connections (12)"));
        // A place comes back when a request is answered, and when a connection ends.
        clients[0].release();
        tenth.hold().unwrap();
        tenth.release();
        drop(others);
        assert_eq!(c.lock().held, 5);
        drop((clients, tenth, worker, worker2, seventh));
        let t = c.lock();
        assert!(t.held == 0 && t.per_ip.is_empty() && t.conns.is_empty());
    }

    #[test]
    fn the_throttle_lets_one_through_per_period() {
        let mut t = Throttle::default();
        assert!(t.ready());
        assert!(!t.ready() && !t.ready());
        assert_eq!(t.held_back(), 2);
        assert_eq!(t.held_back(), 0);
    }
}
