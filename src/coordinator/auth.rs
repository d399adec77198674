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
//! token. With `auth.enabled: false` every caller is admin, so the coordinator must be
//! reachable only from its own machine: [`local_only`] refuses (403) every request whose
//! `Host` is not a loopback name or address (a DNS-rebinding page names its own host), whose
//! `Origin`, when sent, is not the coordinator's own, or that a browser marks as sent by
//! another site (`Sec-Fetch-Site`); and `Coordinator::start` refuses to listen on a
//! non-loopback address unless `auth.insecure_listen_without_auth` says so. Tokens are compared in constant time; node secrets are kept only as SHA-256
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
    mut node_of_secret: impl FnMut(&str) -> Option<String>,
) -> Result<Caller, ApiError> {
    if access == Access::Open || !tokens.enabled {
        return Ok(Caller::Admin);
    }
    let Some(token) = token else {
        return Err(ApiError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (the admin token is in admin.token beside the database)",
        ));
    };
    // Node secrets first: most requests are a node's (the lookup is by the secret's hash,
    // so its time says nothing about the secret; the tokens are compared in constant time).
    let by_secret = if access == Access::Node { node_of_secret(&util::hash_secret(token)) } else { None };
    let caller = if let Some(have) = by_secret {
        Caller::Node(have)
    } else if util::constant_time_eq(token, &tokens.admin) {
        Caller::Admin
    } else if util::constant_time_eq(token, &tokens.tasks) {
        Caller::Tasks
    } else if util::constant_time_eq(token, &tokens.worker) {
        Caller::Join
    } else if let Some(have) = (access != Access::Node).then(|| node_of_secret(&util::hash_secret(token))).flatten() {
        Caller::Node(have)
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

/// With auth off: whether a request comes from this machine, judged by its `Host` (and the
/// authority of an absolute request target, when there is one: both must be loopback), its
/// `Origin` and its `Sec-Fetch-Site` (see the module). `https` is whether the coordinator
/// speaks TLS (its own origin's scheme).
pub fn local_only(headers: &hyper::HeaderMap, authority: Option<&str>, https: bool) -> Result<(), ApiError> {
    let header = |name: hyper::header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let why = "auth is off (auth.enabled: false), so the coordinator serves only this machine";
    let Some(host) = header(hyper::header::HOST).or(authority) else {
        return Err(ApiError::forbidden(format!("{why}: send a `Host` header naming localhost, 127.0.0.1 or [::1]")));
    };
    if let Some(target) = authority.filter(|a| *a != host) {
        local_only(&hyper::HeaderMap::new(), Some(target), https)?;
    }
    let scheme = if https { "https" } else { "http" };
    let own =
        reqwest::Url::parse(&format!("{scheme}://{host}")).ok().filter(|u| u.path() == "/" && u.query().is_none());
    // The URL parser lowercases names and writes addresses in their one canonical form.
    let loopback = own.as_ref().is_some_and(|u| matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")));
    let Some(own) = own.filter(|_| loopback) else {
        return Err(ApiError::forbidden(format!(
            "{why}: Host `{}` is not localhost, 127.0.0.1 or [::1] (with any port); use one of those, or turn auth on to serve other names",
            host.escape_debug()
        )));
    };
    if let Some(origin) = header(hyper::header::ORIGIN) {
        let same = reqwest::Url::parse(origin).is_ok_and(|o| {
            o.scheme() == own.scheme()
                && o.host_str() == own.host_str()
                && o.port_or_known_default() == own.port_or_known_default()
        });
        if !same {
            return Err(ApiError::forbidden(format!(
                "{why}: a page of another origin (`{}`) may not call it; open the dashboard at {}",
                origin.escape_debug(),
                own.origin().ascii_serialization()
            )));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(ApiError::forbidden(format!(
            "{why}: the browser says this request was sent by a {site} page; open the dashboard at {}",
            own.origin().ascii_serialization()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_off_serves_only_loopback_hosts_and_its_own_origin() {
        let check = |pairs: &[(&str, &str)]| {
            let mut h = hyper::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
            }
            local_only(&h, None, false).map_err(|e| e.message)
        };
        for host in ["localhost", "LOCALHOST:8888", "127.0.0.1:1", "[::1]:8888", "[::1]"] {
            assert_eq!(check(&[("host", host)]), Ok(()), "{host}");
        }
        for host in
            ["rebind.evil.example", "127.0.0.2:8888", "localhost.evil:80", "192.168.1.5:8888", "[::2]", "", "a/b"]
        {
            let e = check(&[("host", host)]).unwrap_err();
            assert!(
                e.contains("not localhost, 127.0.0.1 or [::1]") && e.contains("auth.enabled: false"),
                "{host}: {e}"
            );
        }
        assert!(check(&[]).unwrap_err().contains("send a `Host` header"));
        assert_eq!(check(&[("host", "localhost:8888"), ("origin", "http://localhost:8888")]), Ok(()));
        assert_eq!(check(&[("host", "localhost"), ("origin", "http://localhost:80")]), Ok(()));
        for origin in
            ["http://localhost:9999", "http://127.0.0.1:8888", "https://localhost:8888", "null", "http://evil.example"]
        {
            let e = check(&[("host", "localhost:8888"), ("origin", origin)]).unwrap_err();
            assert!(e.contains("another origin") && e.contains("http://localhost:8888"), "{origin}: {e}");
        }
        assert_eq!(check(&[("host", "localhost:8888"), ("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(check(&[("host", "localhost:8888"), ("sec-fetch-site", "none")]), Ok(()));
        for site in ["cross-site", "same-site"] {
            let e = check(&[("host", "localhost:8888"), ("sec-fetch-site", site)]).unwrap_err();
            assert!(e.contains(site), "{e}");
        }
        let mut h = hyper::HeaderMap::new();
        h.insert("host", "localhost:1".parse().unwrap());
        assert!(local_only(&h, Some("evil.example"), false).is_err(), "an absolute target must be loopback too");
        assert!(local_only(&h, Some("127.0.0.1:1"), false).is_ok());
        assert_eq!(local_only(&h, None, true).map_err(|e| e.message), Ok(()));
        h.insert("origin", "http://localhost:1".parse().unwrap());
        assert!(local_only(&h, None, true).is_err(), "an https coordinator's origin is https");
    }

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
