//! The types on the wire, defined once for the coordinator, the worker and the CLI.
//!
//! Node and cluster shapes keep the Python original's field names (so `jq '.[] |
//! .available_skills'` on `GET /api/v1/nodes` works as in the seed). Times are RFC 3339 in
//! UTC. Requests refuse unknown fields, except that the original's register payload is
//! accepted as it was sent.
//!
//! Split by domain, re-exported here so that every type is `crate::model::Name`:
//! - [`node`]: nodes, registration, heartbeats, node ids;
//! - [`task`]: submissions, the stored spec and state, task views and lists;
//! - [`attempt`]: what the worker and the coordinator exchange about one attempt (poll,
//!   assignment, start, result, output batches);
//! - [`stream`]: events and kept output, as stream readers see them;
//! - [`cluster`]: cluster and service health, whoami;
//! - [`transport`]: how work travels to a worker, and the NATS transport's health;
//! - [`error`]: the error body and its stable codes.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::util;

/// The longest per-attempt timeout a task may ask for.
pub const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most retries a task may ask for.
pub const MAX_RETRIES: u32 = 100;
/// The most skills a node may advertise.
pub const MAX_SKILLS: usize = 1000;
/// The most concurrent tasks a node may declare.
pub const MAX_NODE_CONCURRENCY: u32 = 1000;

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
pub mod node;
pub mod stream;
pub mod task;
pub mod transport;

pub use attempt::*;
pub use cluster::*;
pub use error::*;
pub use node::*;
pub use stream::*;
pub use task::*;
pub use transport::*;

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
