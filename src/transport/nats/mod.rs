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
//! - Every assignment and result carries an HMAC keyed by the node's [`NodeKey`] (HKDF of
//!   its secret, which only the worker and the coordinator's memory hold: never the store
//!   or a backup), and a de-duplication id that needs the key too: a NATS message has no
//!   identity of its own, a body never is one, and whoever may publish on a subject cannot
//!   have a real message dropped as a duplicate of theirs. A worker that does not send its
//!   key (an older version) is kept on HTTP.
//! - Nothing on the state machine's path waits for NATS: publishers are separate tasks
//!   that read committed state (the event bus, the store's event log).
//!
//! Why a key derived from the secret rather than a key pair per node: both directions need
//! signing (assignments, whose parameters a worker runs, as well as results), the
//! coordinator has no key of its own that its data folder would not also hold, and a
//! derived key needs no schema change and no new secret on disk; the coordinator holds it
//! only from the node's first heartbeat after a restart (results that wait in NATS until
//! then are taken at that heartbeat).
//!
//! Each process connects with an inbox prefix of its own ([`Names::coordinator_inbox`],
//! [`Names::node_inbox`]), so an account per role (see docs/nats.md) keeps one worker out
//! of another's replies and out of the coordinator's.
//!
//! Layout: this file holds the names, the wire format and signing; [`config`] the
//! `communication.nats_*` settings and their checks; [`link`] connects (credentials, TLS,
//! what to check when it fails) and tracks the connection; [`coordinator`] and [`worker`]
//! are each role's side: the coordinator's `WorkerTransport` and loops, the worker's
//! `CoordinatorTransport`.

pub mod config;
pub mod coordinator;
pub mod link;
pub mod worker;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// Names under a prefix already checked by [`config::check_prefix`].
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

    /// Where an event is published: `P.events.tasks.<status>`, `P.events.nodes.<status>`,
    /// `P.events.schedules.<status>` or `P.events.skills.<status>`.
    pub fn event(&self, e: &Event) -> String {
        let kind = match e.kind {
            EventKind::Task => "tasks",
            EventKind::Node => "nodes",
            EventKind::Schedule => "schedules",
            EventKind::Skill => "skills",
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

    /// The coordinator's inbox prefix (replies to its requests, the results it pulls): a
    /// subject of its own, so a least-privilege account can keep workers out of it.
    pub fn coordinator_inbox(&self) -> String {
        format!("_INBOX.coordinator.{}", self.prefix)
    }

    /// Node `node`'s inbox prefix (replies, the assignments it pulls).
    pub fn node_inbox(&self, node: &str) -> String {
        format!("_INBOX.node.{}.{}", node_token(node), self.prefix)
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

/// What the coordinator publishes on a node's assignment subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Delivery {
    /// The assignment, as the HTTP poll hands it out.
    Assignment(Assignment),
    /// The assignment is larger than the server's `max_payload`: take it with an HTTP poll.
    Poll { task_id: String, attempt: u32 },
}

/// The key that signs a node's NATS messages, both ways, and makes their de-duplication
/// ids: HKDF-SHA256 of the node's secret. The worker derives it and sends it in its
/// heartbeats (HTTP, authenticated by that secret); the coordinator keeps it in memory
/// only. The store keeps the secret's SHA-256, from which this key cannot be computed, so
/// neither the database nor a backup can sign as a node. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKey([u8; 32]);

/// HKDF's salt: names the purpose and the version of the scheme.
const NODE_KEY_SALT: &[u8] = b"openclaw nats node key v2";

impl NodeKey {
    /// The key of a node secret.
    pub fn derive(secret: &str) -> NodeKey {
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, NODE_KEY_SALT).extract(secret.as_bytes());
        let okm = prk.expand(&[b"sign"], ring::hkdf::HKDF_SHA256).expect("32 bytes is within HKDF-SHA256's output");
        let mut key = [0u8; 32];
        okm.fill(&mut key).expect("the output length is the algorithm's");
        NodeKey(key)
    }

    /// As a heartbeat carries it (`nats_key`, base64).
    pub fn to_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// From a heartbeat's `nats_key`; `None` unless it is 32 bytes of base64.
    pub fn from_base64(text: &str) -> Option<NodeKey> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
        Some(NodeKey(bytes.try_into().ok()?))
    }

    fn hmac(&self, parts: &[&[u8]]) -> ring::hmac::Tag {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let mut ctx = ring::hmac::Context::with_key(&key);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                ctx.update(b"\n");
            }
            ctx.update(part);
        }
        ctx.sign()
    }

    /// The HMAC-SHA256 (base64) of a message: over the subject, the message id and the
    /// payload, joined by newlines (which neither a subject nor a header value can hold).
    pub fn sign(&self, subject: &str, msg_id: &str, payload: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.hmac(&[subject.as_bytes(), msg_id.as_bytes(), payload]))
    }

    /// Whether `sig` is [`NodeKey::sign`]'s answer for the message (constant time).
    pub fn verify(&self, subject: &str, msg_id: &str, payload: &[u8], sig: &str) -> bool {
        use base64::Engine;
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig) else { return false };
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        let mut message = Vec::with_capacity(subject.len() + msg_id.len() + payload.len() + 2);
        for (i, part) in [subject.as_bytes(), msg_id.as_bytes(), payload].iter().enumerate() {
            if i > 0 {
                message.extend_from_slice(b"\n");
            }
            message.extend_from_slice(part);
        }
        ring::hmac::verify(&key, &message, &sig).is_ok()
    }

    /// A tag only the holders of this key can make for (kind, task, attempt): 16 hex digits.
    fn tag(&self, kind: &str, task_id: &str, attempt: u32) -> String {
        let tag = self.hmac(&[kind.as_bytes(), task_id.as_bytes(), attempt.to_string().as_bytes()]);
        tag.as_ref().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The de-duplication id of an assignment: `<task>.<attempt>.<tag>`. JetStream drops a
    /// second message with an id it saw in the last two minutes, so an id anyone could
    /// write would let anyone who may publish there have the real message dropped; this
    /// one needs the key.
    pub fn assignment_id(&self, task_id: &str, attempt: u32) -> String {
        format!("{task_id}.{attempt}.{}", self.tag("assignment", task_id, attempt))
    }

    /// The de-duplication id of a result: `<task>.<attempt>.result.<tag>` (see
    /// [`NodeKey::assignment_id`]).
    pub fn result_id(&self, task_id: &str, attempt: u32) -> String {
        format!("{task_id}.{attempt}.result.{}", self.tag("result", task_id, attempt))
    }
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(..)")
    }
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
        assert_eq!(n.coordinator_inbox(), "_INBOX.coordinator.oc.site-1");
        assert_eq!(n.node_inbox("host.example-1"), "_INBOX.node.host~example-1.oc.site-1");
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
        let k = NodeKey::derive("secret");
        let sig = k.sign("s", "id", b"body");
        assert!(k.verify("s", "id", b"body", &sig));
        assert!(!NodeKey::derive("other").verify("s", "id", b"body", &sig));
        assert!(!k.verify("s2", "id", b"body", &sig));
        assert!(!k.verify("s", "id2", b"body", &sig));
        assert!(!k.verify("s", "id", b"body!", &sig));
        assert!(!k.verify("s", "id", b"body", "not base64!"));
    }

    #[test]
    fn the_node_key_cannot_be_made_from_what_the_store_keeps() {
        let secret = "node-secret-0123456789";
        let key = NodeKey::derive(secret);
        // Deterministic (a restarted worker signs as before) and not the stored hash.
        assert_eq!(key, NodeKey::derive(secret));
        let stored = crate::util::hash_secret(secret);
        assert_ne!(key, NodeKey::derive(&stored));
        assert!(!key.to_base64().contains(&stored[..16]));
        assert_eq!(NodeKey::from_base64(&key.to_base64()), Some(key.clone()));
        assert_eq!(NodeKey::from_base64("c2hvcnQ="), None);
        assert_eq!(format!("{key:?}"), "NodeKey(..)");
    }

    #[test]
    fn message_ids_need_the_key() {
        let k = NodeKey::derive("a");
        let id = k.result_id("task_1", 2);
        assert!(id.starts_with("task_1.2.result."), "{id}");
        assert_eq!(id.len(), "task_1.2.result.".len() + 16);
        assert_eq!(id, k.result_id("task_1", 2));
        assert_ne!(id, NodeKey::derive("b").result_id("task_1", 2));
        assert_ne!(id, k.result_id("task_1", 3));
        assert!(k.assignment_id("task_1", 2).starts_with("task_1.2."));
        assert_ne!(k.assignment_id("task_1", 2), k.result_id("task_1", 2));
    }
}
