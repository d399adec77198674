//! Error answers: the `{"error": {"code", "message"}}` body, the stable codes and the HTTP
//! status of each (the server answers with it, the OpenAPI document lists it, clients may
//! branch on either).

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: one of [`ErrorCode`]'s names. Clients branch on it.
    pub code: String,
    pub message: String,
}

string_enum! {
    /// The stable `code` of every error answer. Clients branch on these, never on the
    /// message; each has one HTTP status (see docs/api.md).
    ErrorCode {
        /// The body is not the JSON the endpoint takes (the message names the field).
        BadRequest = "bad_request",
        /// An unknown or malformed query parameter (the message names it).
        InvalidQuery = "invalid_query",
        Unauthorized = "unauthorized",
        Forbidden = "forbidden",
        /// No endpoint at this path.
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        /// No node with this id is registered.
        UnknownNode = "unknown_node",
        /// No task with this id (ended tasks are purged after the retention period).
        UnknownTask = "unknown_task",
        /// No cluster secret with this name.
        UnknownSecret = "unknown_secret",
        /// The secret cannot be read: the coordinator's key did not seal it.
        SecretUnreadable = "secret_unreadable",
        /// No schedule with this id or name.
        UnknownSchedule = "unknown_schedule",
        /// A schedule with this name exists.
        ScheduleExists = "schedule_exists",
        /// No pushed skill with this name (or no package with this digest).
        UnknownSkillPush = "unknown_skill_push",
        /// A rollback of a pushed skill that has no version before.
        NoPreviousVersion = "no_previous_version",
        /// A skill push whose package, name or selector cannot be installed as sent (the
        /// message names the entry or the field).
        InvalidSkillPush = "invalid_skill_push",
        /// A report (start, output, result) for an attempt that is not the task's current
        /// one on this node.
        StaleAttempt = "stale_attempt",
        /// The node id belongs to a live worker; only its secret (or the admin token) may
        /// register it again.
        NodeIdInUse = "node_id_in_use",
        /// The node still has work or is online (e.g. forget).
        NodeBusy = "node_busy",
        /// The cluster holds `coordinator.max_nodes` nodes already.
        NodeLimit = "node_limit",
        /// The task already ended (e.g. cancel).
        TaskEnded = "task_ended",
        /// The task has not ended yet (e.g. retry).
        TaskActive = "task_active",
        /// The idempotency key was used for a different submission.
        IdempotencyConflict = "idempotency_conflict",
        /// No online node can take the task now and the submission asked to be refused
        /// then (`reject_unplaceable`); the message says why.
        Unplaceable = "unplaceable",
        PayloadTooLarge = "payload_too_large",
        /// A body that is not `Content-Type: application/json` on a route that takes JSON.
        UnsupportedMediaType = "unsupported_media_type",
        /// The client did not send its request in time.
        RequestTimeout = "request_timeout",
        /// A stream limit is reached (the message names it and its config key).
        TooManyStreams = "too_many_streams",
        /// Too much work queued for the store: retry after the `Retry-After` seconds.
        Overloaded = "overloaded",
        /// Shutting down, or the store failed: try again shortly.
        Unavailable = "unavailable",
        /// This coordinator is a standby: the `Location` header and the message name the
        /// leader (when one leads).
        NotLeader = "not_leader",
        /// This coordinator's store does not do that (a file backup of PostgreSQL); the
        /// message says what to use instead.
        NotSupported = "not_supported",
        Internal = "internal",
    }
}

impl ErrorCode {
    /// The HTTP status of the code: a 4xx for the client's mistakes, a 5xx for the server's.
    /// The code alone decides it.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidQuery => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound
            | ErrorCode::UnknownNode
            | ErrorCode::UnknownTask
            | ErrorCode::UnknownSecret
            | ErrorCode::UnknownSchedule
            | ErrorCode::UnknownSkillPush => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::StaleAttempt
            | ErrorCode::NodeIdInUse
            | ErrorCode::NodeBusy
            | ErrorCode::NodeLimit
            | ErrorCode::TaskEnded
            | ErrorCode::TaskActive
            | ErrorCode::IdempotencyConflict
            | ErrorCode::SecretUnreadable
            | ErrorCode::ScheduleExists
            | ErrorCode::NoPreviousVersion
            | ErrorCode::InvalidSkillPush
            | ErrorCode::Unplaceable => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManyStreams => 429,
            ErrorCode::Overloaded | ErrorCode::Unavailable | ErrorCode::NotLeader => 503,
            ErrorCode::Internal => 500,
            ErrorCode::NotSupported => 501,
        }
    }

    /// When the code is sent, for the docs.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => {
                "the body is not what the endpoint takes: invalid JSON, a wrong type, an unknown field, a value out of range (the message names the field)"
            }
            ErrorCode::InvalidQuery => "an unknown query parameter, or one that does not parse (the message names it)",
            ErrorCode::Unauthorized => {
                "no token, a malformed `Authorization` header, or a token nobody has; the answer carries `WWW-Authenticate: Bearer`"
            }
            ErrorCode::Forbidden => {
                "a valid token that may not use this endpoint (or act for this node); with `auth.enabled: false`, a request whose `Host` is not a loopback name or whose `Origin` is another site"
            }
            ErrorCode::NotFound => "no endpoint at this path",
            ErrorCode::MethodNotAllowed => "a known path with another method; the answer carries `Allow`",
            ErrorCode::UnknownNode => "no node with this id is registered (for a node's own endpoints: register again)",
            ErrorCode::UnknownTask => {
                "no task with this id (ended tasks are purged after `storage.task_retention_days`)"
            }
            ErrorCode::UnknownSecret => {
                "no cluster secret with this name (`openclaw secrets list`), in the path or in a task's `secrets`"
            }
            ErrorCode::SecretUnreadable => {
                "a task's secret was sealed with another key than `storage.secrets_key_file` holds (a backup restored without its key): set it again"
            }
            ErrorCode::UnknownSchedule => "no schedule with this id or name",
            ErrorCode::ScheduleExists => "a schedule with this name exists: choose another name, or edit it",
            ErrorCode::UnknownSkillPush => {
                "no pushed skill with this name (`openclaw skills pushes`), or no stored package with this digest"
            }
            ErrorCode::NoPreviousVersion => {
                "the pushed skill has no version before this one to roll back to (push the version you want instead)"
            }
            ErrorCode::InvalidSkillPush => {
                "a skill push the workers could not install: a package that is not base64 of a skill package (a `..` or absolute path, a link, a device, a name twice, over the caps, truncated), whose content is not the `digest` sent or whose SKILL.md names another skill; a name that cannot be a folder; a selector without exactly one of `nodes`, `tags`, `all`. The message names which; nothing was stored"
            }
            ErrorCode::StaleAttempt => {
                "a start, output or result report for an attempt that is not the task's current one on this node"
            }
            ErrorCode::NodeIdInUse => {
                "the node id belongs to a live worker: only its own secret (or the admin token) may register it again"
            }
            ErrorCode::NodeBusy => "the node is online or holds tasks (forget)",
            ErrorCode::NodeLimit => "the registry holds `coordinator.max_nodes` nodes already",
            ErrorCode::TaskEnded => "the task already ended (cancel)",
            ErrorCode::TaskActive => "the task has not ended yet (retry)",
            ErrorCode::IdempotencyConflict => {
                "the idempotency key was used for a different submission (the message names the first task)"
            }
            ErrorCode::Unplaceable => {
                "`reject_unplaceable` was set and no online, undrained node has the skills and matches the target (the message says why, as a pending reason would); nothing was stored"
            }
            ErrorCode::PayloadTooLarge => "the body is over `coordinator.max_body_bytes`",
            ErrorCode::UnsupportedMediaType => {
                "a body whose `Content-Type` is not `application/json` on an endpoint that takes JSON"
            }
            ErrorCode::TooManyStreams => {
                "an event or output stream past `coordinator.max_streams`, `max_streams_per_ip` or `max_streams_per_token` (the message names which); close one, or retry after `Retry-After` seconds"
            }
            ErrorCode::RequestTimeout => {
                "the body did not arrive within `coordinator.body_read_timeout`; the connection is closed"
            }
            ErrorCode::Overloaded => {
                "more than `coordinator.max_write_backlog` changes wait for the disk; retry after `Retry-After` seconds"
            }
            ErrorCode::NotLeader => {
                "this coordinator is a standby of a shared PostgreSQL store: send the request to the leader, which `Location` (the same path there) and the message name; without a `Location`, nobody leads yet — retry after `Retry-After` seconds"
            }
            ErrorCode::Unavailable => {
                "the coordinator is shutting down, stopping after a failed write, or has `coordinator.max_connections` connections all busy, or client requests hold all but the share kept for workers (`coordinator.node_reserve_percent`); retry after `Retry-After` seconds"
            }
            ErrorCode::NotSupported => {
                "the coordinator's store does not do this: `GET /api/v1/backup` on a PostgreSQL store (the message gives the `pg_dump` command)"
            }
            ErrorCode::Internal => {
                "the store failed a read (the message says so; details are in the coordinator's log)"
            }
        }
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code has a status of its class, and 4xx codes are the client's.
    #[test]
    fn every_code_maps_to_one_status() {
        for code in ErrorCode::ALL {
            let s = code.status();
            assert!((400..600).contains(&s), "{code}: {s}");
        }
        assert_eq!(ErrorCode::StaleAttempt.status(), 409);
        assert_eq!(ErrorCode::NodeIdInUse.status(), 409);
        assert_eq!(ErrorCode::Internal.status(), 500);
    }
}
