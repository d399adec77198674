//! NATS JetStream as a second door between the coordinator and its workers, and the
//! cluster's event feed, when `communication.nats_url` is set.
//!
//! What travels where (P = `communication.nats_subject_prefix`, default `cluster`; S = P in
//! upper case with `.` as `_`, e.g. `CLUSTER`):
//!
//! | what | subject | stream / consumer |
//! |---|---|---|
//! | assignment for node N | `P.nodes.<N>.tasks` | `S_TASKS` (work queue); durable `node-<N>-<hash>` per node |
//! | result of task T | `P.task.results.<T>` | `S_RESULTS` (work queue); durable `coordinator` |
//! | task transition | `P.events.tasks.<status>` | `S_EVENTS` (limits), when `nats_events_stream` |
//! | node transition | `P.events.nodes.<status>` | same |
//! | accepted heartbeat | `P.nodes.heartbeat` | none (core NATS, informational) |
//! | "heartbeat now" for node N (a cancel waits for it) | `P.nodes.<N>.wake` | none (core NATS; empty, unsigned: it only makes the worker heartbeat early, at most every 250 ms) |
//!
//! `<N>` is the node id with `.` written `~` (a `.` would split the token; `~` is never in
//! a node id, so the encoding is reversible). Registration, heartbeats and the fenced start
//! report stay on HTTP.
//!
//! Invariants:
//! - The coordinator's store is the truth; NATS only delivers. Delivery is at least once
//!   (a server crash can undo recent acks), so every consumer is idempotent: a worker
//!   runs an assignment only after the coordinator accepted its start report for that
//!   attempt, and the coordinator's attempt fencing refuses a second completion.
//! - Every assignment and result carries an HMAC ([`signature`]) keyed by the node's
//!   secret hash: a NATS message has no identity of its own, and a body never is one.
//! - Nothing on the state machine's path waits for NATS: publishers are separate tasks
//!   that read committed state (the event bus, the store's event log).
//!
//! Layout: this file holds the names, the wire format, signing and the config checks;
//! [`link`] connects (credentials, TLS, what to check when it fails) and tracks the
//! connection; [`coordinator`] and [`worker`] are each role's loops.

pub mod coordinator;
pub mod link;
pub mod worker;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::CommunicationConfig;
use crate::model::{Assignment, Event, EventKind};

/// The header naming the node that sent a result.
pub const HEADER_NODE: &str = "Openclaw-Node";
/// The header with a message's HMAC (base64).
pub const HEADER_SIG: &str = "Openclaw-Sig";
/// The header with an event's id (the store's commit order).
pub const HEADER_EVENT_ID: &str = "Openclaw-Event-Id";
/// The header with an event's name (`completed`, `online`, …).
pub const HEADER_EVENT: &str = "Openclaw-Event";
/// JetStream's de-duplication header.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// The durable consumer of the results stream.
pub const COORDINATOR_CONSUMER: &str = "coordinator";
/// The largest message the streams take. Servers default to a 1 MiB `max_payload`;
/// anything larger than the server's limit goes over HTTP instead.
pub const MAX_MESSAGE_BYTES: i32 = 8 << 20;
/// Room for headers below the server's `max_payload`.
pub const HEADER_ROOM: usize = 1024;

/// Subjects, stream and consumer names, all derived from the prefix.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
    upper: String,
}

impl Names {
    /// Names under a prefix already checked by [`check_prefix`].
    pub fn new(prefix: &str) -> Names {
        Names { prefix: prefix.to_string(), upper: prefix.to_ascii_uppercase().replace('.', "_") }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where node `node`'s assignments are published.
    pub fn assignments(&self, node: &str) -> String {
        format!("{}.nodes.{}.tasks", self.prefix, node_token(node))
    }

    /// Where node `node` is asked to heartbeat at once (its heartbeat answer carries news
    /// for it: a cancel).
    pub fn wake(&self, node: &str) -> String {
        format!("{}.nodes.{}.wake", self.prefix, node_token(node))
    }

    /// Every node's assignments (the tasks stream's subject).
    pub fn all_assignments(&self) -> String {
        format!("{}.nodes.*.tasks", self.prefix)
    }

    /// Where the result of `task` is published.
    pub fn result(&self, task: &str) -> String {
        format!("{}.task.results.{task}", self.prefix)
    }

    /// Every result (the results stream's subject).
    pub fn all_results(&self) -> String {
        format!("{}.task.results.*", self.prefix)
    }

    /// The task id in a result's subject.
    pub fn task_of_result<'a>(&self, subject: &'a str) -> Option<&'a str> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix(".task.results.")?;
        (!rest.is_empty() && !rest.contains('.')).then_some(rest)
    }

    /// Where accepted heartbeats are echoed.
    pub fn heartbeats(&self) -> String {
        format!("{}.nodes.heartbeat", self.prefix)
    }

    /// Where an event is published: `P.events.tasks.<status>`, `P.events.nodes.<status>` or
    /// `P.events.schedules.<status>`.
    pub fn event(&self, e: &Event) -> String {
        let kind = match e.kind {
            EventKind::Task => "tasks",
            EventKind::Node => "nodes",
            EventKind::Schedule => "schedules",
        };
        let status: String =
            e.status.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        format!("{}.events.{kind}.{status}", self.prefix)
    }

    /// Every event (the events stream's subject; `nats sub 'P.events.>'`).
    pub fn all_events(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    pub fn tasks_stream(&self) -> String {
        format!("{}_TASKS", self.upper)
    }

    pub fn results_stream(&self) -> String {
        format!("{}_RESULTS", self.upper)
    }

    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.upper)
    }

    /// The durable consumer of node `node`'s assignments. The hash keeps ids that differ
    /// only in case apart on servers whose file system ignores case (consumer names are
    /// folder names there).
    pub fn node_consumer(&self, node: &str) -> String {
        let digest = Sha256::digest(node.as_bytes());
        let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("node-{}-{hash}", node_token(node))
    }
}

/// A node id as one subject token: `.` → `~`.
pub fn node_token(node_id: &str) -> String {
    node_id.replace('.', "~")
}

/// The de-duplication id of an assignment.
pub fn assignment_id(task_id: &str, attempt: u32) -> String {
    format!("{task_id}.{attempt}")
}

/// The de-duplication id of a result.
pub fn result_id(task_id: &str, attempt: u32) -> String {
    format!("{task_id}.{attempt}.result")
}

/// What the coordinator publishes on a node's assignment subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Delivery {
    /// The assignment, as the HTTP poll hands it out.
    Assignment(Assignment),
    /// The assignment is larger than the server's `max_payload`: take it with an HTTP poll.
    Poll { task_id: String, attempt: u32 },
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &str, subject: &str, msg_id: &str, payload: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(subject.as_bytes());
    mac.update(b"\n");
    mac.update(msg_id.as_bytes());
    mac.update(b"\n");
    mac.update(payload);
    mac
}

/// The HMAC-SHA256 (base64) of a message, keyed by the node's secret hash
/// (`util::hash_secret`): over the subject, the message id and the payload.
pub fn signature(key: &str, subject: &str, msg_id: &str, payload: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(mac(key, subject, msg_id, payload).finalize().into_bytes())
}

/// Whether `sig` is [`signature`]'s answer for the message (constant time).
pub fn verify(key: &str, subject: &str, msg_id: &str, payload: &[u8], sig: &str) -> bool {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(sig) {
        Ok(bytes) => mac(key, subject, msg_id, payload).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// The configured servers: addresses without credentials, how to show them, and the
/// credentials the URLs carried (the client ignores those, so they are applied as options).
#[derive(Debug, Clone)]
pub struct Servers {
    pub addrs: Vec<async_nats::ServerAddr>,
    /// `nats://host:port` list for logs and the health view: never a credential.
    pub shown: String,
    pub url_user: Option<String>,
    pub url_password: Option<String>,
}

/// Parses `communication.nats_url`: one or more `nats://` or `tls://` URLs, comma-separated.
pub fn servers(url: &str) -> Result<Servers, String> {
    let mut addrs = Vec::new();
    let mut shown = Vec::new();
    let (mut url_user, mut url_password) = (None, None);
    for part in url.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(format!("`{url}` has an empty entry; write one URL or several separated by commas"));
        }
        if let Some((scheme, _)) = part.split_once("://")
            && !matches!(scheme, "nats" | "tls")
        {
            return Err(format!("`{}`: the scheme must be nats:// or tls:// (got {scheme}://)", redact(part)));
        }
        let parsed: async_nats::ServerAddr = part.parse().map_err(|e| format!("`{}`: {e}", redact(part)))?;
        if parsed.host().is_empty() {
            return Err(format!("`{}` names no host", redact(part)));
        }
        if let Some(u) = parsed.username() {
            url_user = Some(percent_encoding::percent_decode_str(u).decode_utf8_lossy().into_owned());
            url_password =
                parsed.password().map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned());
        }
        let host = if parsed.host().contains(':') { format!("[{}]", parsed.host()) } else { parsed.host().to_string() };
        let clean = format!("{}://{host}:{}", parsed.scheme(), parsed.port());
        addrs.push(clean.parse().map_err(|e| format!("`{clean}`: {e}"))?);
        shown.push(clean);
    }
    Ok(Servers { addrs, shown: shown.join(","), url_user, url_password })
}

/// A URL for a message, credentials replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_string(),
    }
}

/// A subject prefix is one or more tokens of `a-z 0-9 -` joined by `.` (no `_`: the stream
/// names write `.` as `_`, and two prefixes must not share streams).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > 64 {
        return Err(format!("must be 1-64 characters, got {}", prefix.len()));
    }
    for token in prefix.split('.') {
        if token.is_empty() {
            return Err(format!("`{prefix}` has an empty token (two dots, or a dot at an end)"));
        }
        if let Some(c) = token.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            return Err(format!("`{prefix}` has `{c}`; use lower-case letters, digits and `-`, tokens joined by `.`"));
        }
    }
    Ok(())
}

/// Checks `communication.*`: the URL, one way to authenticate, TLS files in pairs, readable
/// files. Answers the key at fault and what is wrong.
pub fn check_config(c: &CommunicationConfig) -> Result<(), (&'static str, String)> {
    check_prefix(&c.nats_subject_prefix).map_err(|e| ("communication.nats_subject_prefix", e))?;
    if c.nats_events_max_msgs == 0 {
        return Err(("communication.nats_events_max_msgs", "must be at least 1".into()));
    }
    if c.nats_events_max_age.get() < std::time::Duration::from_secs(1) {
        return Err(("communication.nats_events_max_age", "must be at least 1s".into()));
    }
    if !(1..=5).contains(&c.nats_replicas) {
        return Err(("communication.nats_replicas", format!("must be from 1 to 5, not {}", c.nats_replicas)));
    }
    let Some(url) = &c.nats_url else { return Ok(()) };
    let servers = servers(url).map_err(|e| ("communication.nats_url", e))?;
    if c.nats_user.is_some() != c.nats_password.is_some() {
        let key = if c.nats_user.is_some() { "communication.nats_password" } else { "communication.nats_user" };
        return Err((key, "nats_user and nats_password must be set together".into()));
    }
    let ways: Vec<&str> = [
        (servers.url_user.is_some(), "credentials in nats_url"),
        (c.nats_token.is_some(), "nats_token"),
        (c.nats_user.is_some(), "nats_user/nats_password"),
        (c.nats_creds_file.is_some(), "nats_creds_file"),
        (c.nats_nkey_seed_file.is_some(), "nats_nkey_seed_file"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if ways.len() > 1 {
        return Err((
            "communication.nats_url",
            format!("choose one way to authenticate to NATS, not {}", ways.join(" and ")),
        ));
    }
    if c.nats_cert_file.is_some() != c.nats_key_file.is_some() {
        return Err(("communication.nats_cert_file", "nats_cert_file and nats_key_file must be set together".into()));
    }
    for (key, file) in [
        ("communication.nats_creds_file", &c.nats_creds_file),
        ("communication.nats_nkey_seed_file", &c.nats_nkey_seed_file),
        ("communication.nats_ca_file", &c.nats_ca_file),
        ("communication.nats_cert_file", &c.nats_cert_file),
        ("communication.nats_key_file", &c.nats_key_file),
    ] {
        if let Some(path) = file
            && let Err(e) = std::fs::File::open(path)
        {
            return Err((key, format!("cannot read {}: {e}", path.display())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    #[test]
    fn names_follow_the_prefix_and_encode_dots() {
        let n = Names::new("oc.site-1");
        assert_eq!(n.assignments("host.example-1"), "oc.site-1.nodes.host~example-1.tasks");
        assert_eq!(n.tasks_stream(), "OC_SITE-1_TASKS");
        assert_eq!(n.result("task_ab"), "oc.site-1.task.results.task_ab");
        assert_eq!(n.task_of_result("oc.site-1.task.results.task_ab"), Some("task_ab"));
        assert_eq!(n.task_of_result("oc.site-1.task.results.a.b"), None);
        assert_ne!(n.node_consumer("Web1"), n.node_consumer("web1"));
        assert!(n.node_consumer("host.example-1").starts_with("node-host~example-1-"));
        let e = Event {
            id: 1,
            at: Timestamp(0),
            kind: EventKind::Task,
            event: crate::model::TaskTransition::Failed.into(),
            task_id: None,
            node_id: None,
            status: "pending".into(),
            attempt: None,
            skill: None,
            message: None,
            schedule_id: None,
        };
        assert_eq!(n.event(&e), "oc.site-1.events.tasks.pending");
    }

    #[test]
    fn signatures_bind_subject_id_and_payload() {
        let sig = signature("k", "s", "id", b"body");
        assert!(verify("k", "s", "id", b"body", &sig));
        assert!(!verify("other", "s", "id", b"body", &sig));
        assert!(!verify("k", "s2", "id", b"body", &sig));
        assert!(!verify("k", "s", "id2", b"body", &sig));
        assert!(!verify("k", "s", "id", b"body!", &sig));
        assert!(!verify("k", "s", "id", b"body", "not base64!"));
    }

    #[test]
    fn urls_lose_their_credentials() {
        let s = servers("nats://oc:p%40ss@127.0.0.1:4223, tls://[::1]").unwrap();
        assert_eq!(s.shown, "nats://127.0.0.1:4223,tls://[::1]:4222");
        assert_eq!(s.url_user.as_deref(), Some("oc"));
        assert_eq!(s.url_password.as_deref(), Some("p@ss"));
        assert!(servers("http://127.0.0.1:1").unwrap_err().contains("nats:// or tls://"));
        assert!(servers("nats://a,,nats://b").is_err());
        let e = servers("nats://u:secret@[::1").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("cluster").is_ok());
        assert!(check_prefix("site-1.oc").is_ok());
        assert!(check_prefix("Cluster").is_err());
        assert!(check_prefix("a..b").is_err());
        assert!(check_prefix("a_b").is_err());
        assert!(check_prefix("a.*").is_err());
        assert!(check_prefix("").is_err());
    }

    #[test]
    fn one_way_to_authenticate() {
        let c = CommunicationConfig {
            nats_url: Some("nats://u:p@localhost".into()),
            nats_token: Some("t".into()),
            ..Default::default()
        };
        let (key, message) = check_config(&c).unwrap_err();
        assert_eq!(key, "communication.nats_url");
        assert!(message.contains("credentials in nats_url and nats_token"), "{message}");
        let c = CommunicationConfig {
            nats_url: Some("nats://localhost".into()),
            nats_user: Some("u".into()),
            ..Default::default()
        };
        assert_eq!(check_config(&c).unwrap_err().0, "communication.nats_password");
        let c = CommunicationConfig {
            nats_url: Some("nats://localhost".into()),
            nats_creds_file: Some("/nonexistent/x.creds".into()),
            ..Default::default()
        };
        let (key, message) = check_config(&c).unwrap_err();
        assert_eq!(key, "communication.nats_creds_file");
        assert!(message.contains("/nonexistent/x.creds"), "{message}");
        assert!(check_config(&CommunicationConfig::default()).is_ok());
    }
}
