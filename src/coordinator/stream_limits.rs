//! The streams' own budget: how many event and output streams (`GET /api/v1/events`,
//! `GET /api/v1/tasks/{id}/output?follow=true`) may be open at once — overall
//! (`coordinator.max_streams`), from one client address (`max_streams_per_ip`) and with one
//! token (`max_streams_per_token`), each at most half of its connection cap — and how long
//! one may live (`max_stream_lifetime`).
//!
//! A stream holds its connection for as long as it is open, so without a budget of its own a
//! few clients could take every connection a worker needs. The caps are well below the
//! connection caps; a stream past one is refused with 429 `too_many_streams` naming the cap
//! and its config key, before its feed reads anything. A stream that reaches its lifetime is
//! ended by its pump with `event: error` (`stream_lifetime`); the client reconnects with
//! `Last-Event-ID` and misses nothing (see [`super::feeds`]).
//!
//! Invariant: the counts are exactly the [`StreamPermit`]s alive; a permit is given back
//! when it is dropped (its stream's pump ended), whatever ended it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::auth::Caller;
use super::error::ApiError;
use crate::config::Config;
use crate::model::ErrorCode;

/// The budget, shared by every connection of a server.
pub struct StreamLimits {
    /// A std mutex: held for a few map operations, never across an `.await`.
    counts: Mutex<Counts>,
    max: usize,
    per_ip: usize,
    per_token: usize,
    lifetime: Duration,
    /// `auth.enabled`: without it every caller counts as one.
    auth: bool,
}

#[derive(Default)]
struct Counts {
    open: usize,
    by_ip: HashMap<IpAddr, usize>,
    by_token: HashMap<&'static str, usize>,
}

/// One open stream's place in the budget, and when it must end.
pub struct StreamPermit {
    owner: Arc<StreamLimits>,
    ip: IpAddr,
    token: &'static str,
    lifetime: Duration,
}

impl StreamPermit {
    /// How long the stream may stay open: the configured lifetime less up to a tenth, at
    /// random, so that streams opened together do not all reconnect together.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut c = crate::util::lock(&self.owner.counts);
        c.open -= 1;
        decrement(&mut c.by_ip, &self.ip);
        decrement(&mut c.by_token, &self.token);
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// The name of the token a caller used, as the messages and the per-token count know it.
fn token_of(caller: &Caller, auth: bool) -> &'static str {
    match caller {
        Caller::Admin if !auth => "everyone (auth is off)",
        Caller::Admin => "the admin token",
        Caller::Tasks => "the tasks token",
        Caller::Join => "the join token",
        Caller::Node(_) => "a node secret",
    }
}

impl StreamLimits {
    /// The configured caps, each at most half of its connection cap (so that streams always
    /// leave room for plain requests as well as for workers).
    pub fn new(config: &Config) -> StreamLimits {
        let c = &config.coordinator;
        let half = |n: u32| (n as usize / 2).max(1);
        StreamLimits {
            counts: Mutex::default(),
            max: (c.max_streams as usize).min(half(c.max_connections)),
            per_ip: (c.max_streams_per_ip as usize).min(half(c.max_connections_per_ip)),
            per_token: c.max_streams_per_token as usize,
            lifetime: c.max_stream_lifetime.get(),
            auth: config.auth.enabled,
        }
    }

    /// A place for one more stream from `ip` with `caller`'s token, or 429 naming the cap
    /// it would pass.
    pub fn admit(self: &Arc<Self>, caller: &Caller, ip: IpAddr) -> Result<StreamPermit, ApiError> {
        let token = token_of(caller, self.auth);
        let mut c = crate::util::lock(&self.counts);
        let refuse = |what: String, key: &str| {
            Err(ApiError::new(
                ErrorCode::TooManyStreams,
                format!(
                    "{what} (coordinator.{key}); each `openclaw tasks watch`, `nodes --watch`, `tasks logs -f` and dashboard tab holds one: close one, or raise coordinator.{key}"
                ),
            ))
        };
        let from_ip = c.by_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.per_ip {
            return refuse(
                format!("{from_ip} streams are open from {ip}, the most one address may open"),
                "max_streams_per_ip",
            );
        }
        let with_token = c.by_token.get(token).copied().unwrap_or(0);
        if with_token >= self.per_token {
            return refuse(
                format!("{with_token} streams are open with {token}, the most one token may open"),
                "max_streams_per_token",
            );
        }
        if c.open >= self.max {
            return refuse(format!("{} streams are open, the most the coordinator serves", c.open), "max_streams");
        }
        c.open += 1;
        *c.by_ip.entry(ip).or_default() += 1;
        *c.by_token.entry(token).or_default() += 1;
        drop(c);
        let jitter = self.lifetime.mul_f64(rand::random::<f64>() / 10.0);
        Ok(StreamPermit { owner: self.clone(), ip, token, lifetime: self.lifetime - jitter })
    }

    /// How many streams are open.
    pub fn open(&self) -> usize {
        crate::util::lock(&self.counts).open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: u32, per_ip: u32, per_token: u32) -> Arc<StreamLimits> {
        let mut config = Config::default();
        config.coordinator.max_streams = max;
        config.coordinator.max_streams_per_ip = per_ip;
        config.coordinator.max_streams_per_token = per_token;
        Arc::new(StreamLimits::new(&config))
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn each_cap_is_enforced_and_named() {
        let l = limits(5, 3, 4);
        let a: Vec<_> = (0..3).map(|_| l.admit(&Caller::Admin, ip(1)).unwrap()).collect();
        let e = l.admit(&Caller::Tasks, ip(1)).err().unwrap();
        assert_eq!((e.code, e.status().as_u16()), (ErrorCode::TooManyStreams, 429));
        assert!(e.message.contains("from 127.0.0.1") && e.message.contains("coordinator.max_streams_per_ip"), "{e}");
        let b = l.admit(&Caller::Admin, ip(2)).unwrap();
        let e = l.admit(&Caller::Admin, ip(3)).err().unwrap();
        assert!(e.message.contains("the admin token") && e.message.contains("max_streams_per_token"), "{e}");
        let c = l.admit(&Caller::Tasks, ip(3)).unwrap();
        let e = l.admit(&Caller::Tasks, ip(4)).err().unwrap();
        assert!(e.message.contains("(coordinator.max_streams)"), "{e}");
        // Given back when dropped, whatever the order.
        drop(b);
        let again = l.admit(&Caller::Tasks, ip(4)).unwrap();
        drop((a, c, again));
        assert_eq!(l.open(), 0);
        let counts = crate::util::lock(&l.counts);
        assert!(counts.by_ip.is_empty() && counts.by_token.is_empty());
    }

    #[test]
    fn the_lifetime_is_jittered_down_by_a_tenth_at_most() {
        let l = limits(5, 5, 5);
        for _ in 0..50 {
            let p = l.admit(&Caller::Admin, ip(1)).unwrap();
            assert!(p.lifetime() <= Duration::from_secs(1800) && p.lifetime() >= Duration::from_secs(1620));
        }
    }
}
