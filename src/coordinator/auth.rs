//! Authentication: the admin token, the worker join token, the tasks token and per-node
//! secrets.
//!
//! | token | may |
//! |---|---|
//! | admin | everything but a node's own endpoints |
//! | tasks | read nodes, tasks and health; submit and cancel tasks (agents, MCP clients) |
//! | join | register a new or offline node |
//! | node secret | that node's own endpoints, and register that node again |
//!
//! Decided once per request, before dispatch, from the route's [`Access`] and the bearer
//! token. Tokens are compared in constant time; node secrets are kept only as SHA-256
//! hashes (in the store and in memory). On first start the coordinator writes missing
//! tokens to `admin.token`, `worker.token` and `tasks.token` beside the database (mode
//! 0600) and logs their paths, never their values.

use super::error::ApiError;
use crate::api::Access;
use crate::config::Config;
use crate::tokens::{
    ADMIN_TOKEN_FILE, TASKS_TOKEN_FILE, WORKER_TOKEN_FILE, read_token_file, token_path, write_token_file,
};
use crate::util;

/// The cluster-wide tokens.
#[derive(Clone)]
pub struct Tokens {
    /// `auth.enabled`; when false every request is treated as admin.
    pub enabled: bool,
    admin: String,
    worker: String,
    tasks: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

impl Tokens {
    /// The tokens from config, else from the files, else newly generated into the files.
    pub fn load_or_create(config: &Config) -> anyhow::Result<Tokens> {
        use anyhow::Context;
        let resolve = |configured: &Option<String>, file: &str| -> anyhow::Result<String> {
            if let Some(t) = configured {
                return Ok(t.trim().to_string());
            }
            let path = token_path(config, file);
            if let Some(t) = read_token_file(&path).with_context(|| format!("cannot read {}", path.display()))? {
                tracing::info!(target: "openclaw::coordinator", path = %path.display(), "using token file");
                return Ok(t);
            }
            let token = util::new_secret();
            write_token_file(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(target: "openclaw::coordinator", path = %path.display(), "generated a new token file (mode 0600)");
            Ok(token)
        };
        let admin = resolve(&config.auth.admin_token, ADMIN_TOKEN_FILE)?;
        let worker = resolve(&config.auth.worker_token, WORKER_TOKEN_FILE)?;
        let tasks = resolve(&config.auth.tasks_token, TASKS_TOKEN_FILE)?;
        if admin == worker || admin == tasks || worker == tasks {
            anyhow::bail!(
                "auth.admin_token, auth.worker_token and auth.tasks_token must all differ: one kind of client could act as another"
            );
        }
        Ok(Tokens { enabled: config.auth.enabled, admin, worker, tasks })
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    /// The tasks token: read, submit and cancel.
    Tasks,
    Join,
    /// A node, by its secret.
    Node(String),
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<Option<&str>, ApiError> {
    let Some(value) = header else { return Ok(None) };
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    let token = parts.next().map(str::trim).unwrap_or("");
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized("malformed Authorization header: expected `Authorization: Bearer <token>`"));
    }
    Ok(Some(token))
}

/// Decides whether `token` may use a route with `access` (acting for `node` on node
/// routes). `node_of_secret` maps a secret's hash to the node that owns it.
pub fn authorize(
    tokens: &Tokens,
    access: Access,
    node: Option<&str>,
    token: Option<&str>,
    node_of_secret: impl FnOnce(&str) -> Option<String>,
) -> Result<Caller, ApiError> {
    if access == Access::Open || !tokens.enabled {
        return Ok(Caller::Admin);
    }
    let Some(token) = token else {
        return Err(ApiError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (the admin token is in admin.token beside the database)",
        ));
    };
    let caller = if util::constant_time_eq(token, &tokens.admin) {
        Caller::Admin
    } else if util::constant_time_eq(token, &tokens.tasks) {
        Caller::Tasks
    } else if util::constant_time_eq(token, &tokens.worker) {
        Caller::Join
    } else if let Some(node) = node_of_secret(&util::hash_secret(token)) {
        Caller::Node(node)
    } else {
        return Err(ApiError::unauthorized(
            "invalid token: admin calls take the admin token (admin.token beside the database), reads and task submissions the admin or tasks token (tasks.token), registration the worker token, a node's own endpoints its node_secret",
        ));
    };
    match (access, &caller) {
        (Access::Admin | Access::Read | Access::Submit, Caller::Admin) => Ok(caller),
        (Access::Read | Access::Submit, Caller::Tasks) => Ok(caller),
        (_, Caller::Tasks) => Err(ApiError::forbidden(
            "the tasks token reads the cluster and submits and cancels tasks; this endpoint takes the admin token",
        )),
        (Access::Join, Caller::Admin | Caller::Join | Caller::Node(_)) => Ok(caller),
        (Access::Node, Caller::Node(have)) if node == Some(have.as_str()) => Ok(caller),
        (Access::Node, Caller::Node(have)) => Err(ApiError::forbidden(format!(
            "this node secret belongs to node `{have}`; it cannot act for node `{}`",
            node.unwrap_or("?")
        ))),
        (Access::Node, _) => {
            Err(ApiError::forbidden("this endpoint takes the node's own secret (node_secret from registration)"))
        }
        (_, Caller::Join) => Err(ApiError::forbidden("the worker join token only allows registration")),
        (_, _) => Err(ApiError::forbidden("a node secret only authorizes that node's own endpoints")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            enabled: true,
            admin: "admin-token-xxxxxxxx".into(),
            worker: "worker-token-xxxxxxx".into(),
            tasks: "tasks-token-xxxxxxxx".into(),
        }
    }

    #[test]
    fn the_matrix() {
        let t = tokens();
        let secret_of_a = util::hash_secret("secret-a");
        let lookup = |h: &str| (h == secret_of_a).then(|| "a".to_string());
        let check = |access, node, token| authorize(&t, access, node, token, lookup).map_err(|e| e.status().as_u16());
        assert_eq!(check(Access::Open, None, None), Ok(Caller::Admin));
        assert_eq!(check(Access::Admin, None, None), Err(401));
        assert_eq!(check(Access::Admin, None, Some("nope")), Err(401));
        assert_eq!(check(Access::Admin, None, Some("worker-token-xxxxxxx")), Err(403));
        assert_eq!(check(Access::Read, None, Some("worker-token-xxxxxxx")), Err(403));
        assert_eq!(check(Access::Admin, None, Some("admin-token-xxxxxxxx")), Ok(Caller::Admin));
        assert_eq!(check(Access::Submit, None, Some("admin-token-xxxxxxxx")), Ok(Caller::Admin));
        assert_eq!(check(Access::Admin, None, Some("secret-a")), Err(403));
        assert_eq!(check(Access::Join, None, Some("worker-token-xxxxxxx")), Ok(Caller::Join));
        assert_eq!(check(Access::Join, None, Some("admin-token-xxxxxxxx")), Ok(Caller::Admin));
        assert_eq!(check(Access::Join, None, Some("secret-a")), Ok(Caller::Node("a".into())));
        assert_eq!(check(Access::Node, Some("a"), Some("secret-a")), Ok(Caller::Node("a".into())));
        assert_eq!(check(Access::Node, Some("b"), Some("secret-a")), Err(403));
        assert_eq!(check(Access::Node, Some("a"), Some("admin-token-xxxxxxxx")), Err(403));
        assert_eq!(check(Access::Node, Some("a"), None), Err(401));
        assert_eq!(check(Access::Read, None, Some("tasks-token-xxxxxxxx")), Ok(Caller::Tasks));
        assert_eq!(check(Access::Submit, None, Some("tasks-token-xxxxxxxx")), Ok(Caller::Tasks));
        assert_eq!(check(Access::Admin, None, Some("tasks-token-xxxxxxxx")), Err(403));
        assert_eq!(check(Access::Join, None, Some("tasks-token-xxxxxxxx")), Err(403));
        assert_eq!(check(Access::Node, Some("a"), Some("tasks-token-xxxxxxxx")), Err(403));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer(None).unwrap(), None);
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")).unwrap(), Some("abc"));
        assert!(bearer(Some("Basic abc")).is_err());
        assert!(bearer(Some("Bearer")).is_err());
    }
}
