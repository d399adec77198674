//! The types on the wire, defined once for the coordinator, the worker and the CLI.
//!
//! Node and cluster shapes keep the Python original's field names (so `jq '.[] |
//! .available_skills'` on `GET /api/v1/nodes` works as in the seed). Times are RFC 3339 in
//! UTC. Requests refuse unknown fields, except that the original's register payload is
//! accepted as it was sent.
//!
//! Split by domain, re-exported here so that every type is `crate::model::Name`:
//! - [`node`]: nodes, registration, heartbeats, node ids;
//! - [`skill`]: skill contents (digests, sources) and the cluster's skills view;
//! - [`skill_push`]: pushed skills (the push, the pushes kept, what a node should have and
//!   what a worker reports);
//! - [`task`]: submissions, the stored spec and state, task views and lists;
//! - [`schedule`]: schedules (cron, every, at), their views and their run history;
//! - [`attempt`]: what the worker and the coordinator exchange about one attempt (poll,
//!   assignment, start, result, output batches);
//! - [`secret`]: cluster secrets (set, list; the values an attempt receives at its start);
//! - [`stream`]: events and kept output, as stream readers see them;
//! - [`cluster`]: cluster and service health, whoami;
//! - [`transport`]: how work travels to a worker, and the NATS transport's health;
//! - [`error`]: the error body and its stable codes;
//! - [`limits`]: what a request may carry (lengths, ranges, characters, formats), each rule
//!   once for the server's check and the document's schema.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::util;

/// A moment, stored as milliseconds since the Unix epoch, written as RFC 3339 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(util::now_ms())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&util::rfc3339(self.0))
    }
}

/// Its serde is hand-written, so is its schema.
impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 time in UTC"))
            .into()
    }
}
impl ToSchema for Timestamp {}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        util::parse_rfc3339(&text)
            .map(Timestamp)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an RFC 3339 time")))
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "`{s}` is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $crate::model::limits::WireNames for $name {
            fn all() -> &'static [Self] {
                Self::ALL
            }
            fn wire(self) -> &'static str {
                self.as_str()
            }
        }

        /// The wire names, from the same list as serde's.
        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::Schema> {
                ::utoipa::openapi::schema::ObjectBuilder::new().schema_type(::utoipa::openapi::schema::Type::String).enum_values(Some([$($text),+])).into()
            }
        }
        impl ::utoipa::ToSchema for $name {}
    };
}

pub mod attempt;
pub mod cluster;
pub mod error;
pub mod limits;
pub mod node;
pub mod schedule;
pub mod secret;
pub mod skill;
pub mod skill_push;
pub mod stream;
pub mod task;
pub mod transport;
pub mod workflow;

pub use attempt::*;
pub use cluster::*;
pub use error::*;
pub use limits::MAX_SKILLS;
pub use node::*;
pub use schedule::*;
pub use secret::*;
pub use skill::*;
pub use skill_push::*;
pub use stream::*;
pub use task::*;
pub use transport::*;
pub use workflow::Workflow;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_accept_names_and_the_originals_numbers() {
        let p: Priority = serde_json::from_str("\"HIGH\"").unwrap();
        assert_eq!(p, Priority::High);
        let p: Priority = serde_json::from_str("0").unwrap();
        assert_eq!(p, Priority::Critical);
        assert!(serde_json::from_str::<Priority>("7").is_err());
        assert!(serde_json::from_str::<Priority>("\"urgent\"").is_err());
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(validate_node_id("mac-worker_001.local").is_ok());
        assert!(validate_node_id("").is_err());
        assert!(validate_node_id(&"a".repeat(129)).is_err());
        assert!(validate_node_id("a/b").unwrap_err().contains('/'));
        assert!(validate_node_id("..").is_err() && validate_node_id(".").is_err());
        assert!(validate_node_id("online").unwrap_err().contains("reserved"));
        assert!(validate_node_id("Online").is_ok());
    }

    /// A host name always gives a valid id, even one that is a word of the API's paths.
    #[test]
    fn node_ids_from_host_names_are_valid() {
        for host in ["", ".", "..", "online", "ONLINE", " skills ", "mac.local", "ä", &"x".repeat(300)] {
            let id = node_id_from_hostname(host);
            assert!(validate_node_id(&id).is_ok(), "{host:?} gave {id:?}");
        }
        assert_eq!(node_id_from_hostname("Mac Book"), "mac-book");
        assert_eq!(node_id_from_hostname(".."), "node-..");
    }

    mod schemas {
        use proptest::prelude::*;
        use serde_json::Value;
        use utoipa::PartialSchema;

        use crate::model::limits::tests::{near, valid};
        use crate::model::*;

        fn json<T: PartialSchema>() -> Value {
            serde_json::to_value(T::schema()).unwrap()
        }

        proptest! {
            /// What the API takes as a node id (trimmed, then checked) is what `NodeId` says.
            #[test]
            fn node_ids_match_their_schema(s in near(vec![
                "w1".into(), ".".into(), "..".into(), "a.b".into(), "online".into(), "register".into(),
                "skills".into(), "x".repeat(128), "x".repeat(129), "a/b".into(),
            ])) {
                prop_assert_eq!(validate_node_id(s.trim()).is_ok(), valid(&json::<NodeId>(), &Value::String(s.clone())), "{:?}", s);
            }

            #[test]
            fn cursors_match_their_schema(s in near(vec![
                "0".into(), "42".into(), "-5".into(), "+5".into(), "9".repeat(18), "9".repeat(19), "1e3".into(),
            ])) {
                prop_assert_eq!(parse_cursor(&s).is_ok(), valid(&json::<TaskCursor>(), &Value::String(s.clone())), "{:?}", s);
            }

            #[test]
            fn last_event_ids_match_their_schema(s in near(vec![
                "0".into(), "42".into(), "+5".into(), "-1".into(), "9".repeat(19), "9".repeat(20), "yesterday".into(),
            ])) {
                prop_assert_eq!(parse_last_event_id(&s).is_ok(), valid(&json::<LastEventId>(), &Value::String(s.clone())), "{:?}", s);
            }

            #[test]
            fn waits_match_their_schema(s in near(vec![
                "0".into(), "90".into(), "1.5".into(), "250ms".into(), "10m".into(), "2h".into(), "1d".into(),
                ".5".into(), "5.".into(), "1h30m".into(), "9".repeat(12), "9".repeat(13), "1.123456789s".into(),
                "1.1234567891".into(), "inf".into(), "MS".into(),
            ])) {
                prop_assert_eq!(parse_wait(&s).is_ok(), valid(&json::<WaitTimeout>(), &Value::String(s.clone())), "{:?}", s);
            }
        }

        #[test]
        fn waits_read_back_and_stop_at_an_hour() {
            for wait in [0, 1, 250, 90_000, 3_600_000] {
                let d = std::time::Duration::from_millis(wait);
                assert_eq!(parse_wait(&wait_text(d)), Ok(d));
            }
            assert_eq!(parse_wait(" 10m "), Ok(std::time::Duration::from_secs(600)));
            assert_eq!(parse_wait("2h"), Ok(MAX_WAIT));
            assert_eq!(parse_cursor(&cursor(12345)), Ok(12345));
        }
    }

    #[test]
    fn originals_register_payload_is_accepted() {
        let body = r#"{"hostname":"mac","platform":"macos","arch":"arm64","available_skills":["python"],
            "ip_address":"10.0.0.2","tailscale_ip":null,"port":18789,"max_concurrent_tasks":5,
            "status":"online","cpu_usage":1.5,"registered_at":null}"#;
        let r: RegisterRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.hostname, "mac");
        assert!(r.tailscale_ip.is_none());
    }
}
