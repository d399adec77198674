//! The NATS transport's settings: the `communication.nats_*` keys (the seed's user
//! contract: names and meanings stay), their defaults, and the checks the config loader
//! runs on them through [`PLUGIN`].
//!
//! Invariants: a config that passed [`NatsConfig::check`] connects with exactly one way to
//! authenticate, names readable credential and TLS files, and has a subject prefix that
//! cannot share streams with another prefix. Credentials never reach a message: URLs are
//! shown through [`Servers::shown`] and [`redact`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{KeyError, Plugin, PluginSection, Secs, Section, SectionInfo, lenient, lenient_opt};

/// The transport's entry for the config loader and the reference (`crate::transport::CONFIG`).
pub const PLUGIN: Plugin = Plugin { section: SectionInfo::of::<NatsConfig>(), check: check_section };

fn check_section(section: &PluginSection) -> Result<(), KeyError> {
    section.get::<NatsConfig>()?.check()
}

/// The optional NATS transport (see nats.md): `communication.nats_*`. One way to
/// authenticate at most; the files named must be readable at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct NatsConfig {
    /// The NATS server(s), comma-separated (`nats://host:4222`, `tls://…`). Unset: HTTP
    /// only. Set: assignments, results and the event feed go over NATS JetStream, with HTTP
    /// as the fallback while NATS is away.
    #[serde(deserialize_with = "lenient_opt")]
    pub nats_url: Option<String>,
    /// The first subject tokens of every subject (`cluster.nodes.<id>.tasks`, …) and the
    /// stream names' prefix (`CLUSTER_TASKS`): `a-z 0-9 -` tokens joined by `.`. Two
    /// clusters on one NATS need two prefixes.
    #[serde(deserialize_with = "lenient")]
    pub nats_subject_prefix: String,
    /// Token authentication.
    #[serde(deserialize_with = "lenient_opt")]
    pub nats_token: Option<String>,
    /// User/password authentication: the user (set `nats_password` too).
    #[serde(deserialize_with = "lenient_opt")]
    pub nats_user: Option<String>,
    /// User/password authentication: the password (set `nats_user` too).
    #[serde(deserialize_with = "lenient_opt")]
    pub nats_password: Option<String>,
    /// A `.creds` file (user JWT and nkey seed; decentralized auth).
    #[schema(value_type = Option<String>, format = "path")]
    pub nats_creds_file: Option<PathBuf>,
    /// A file holding a user nkey seed (`SU…`).
    #[schema(value_type = Option<String>, format = "path")]
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// Require TLS (also implied by a `tls://` URL or a server that demands it).
    pub nats_tls: bool,
    /// PEM CA certificate(s) of the server's certificate (then only they are trusted, not
    /// the system's roots).
    #[schema(value_type = Option<String>, format = "path")]
    pub nats_ca_file: Option<PathBuf>,
    /// A PEM client certificate, for servers that verify clients (set `nats_key_file` too).
    #[schema(value_type = Option<String>, format = "path")]
    pub nats_cert_file: Option<PathBuf>,
    /// The PEM private key of `nats_cert_file`.
    #[schema(value_type = Option<String>, format = "path")]
    pub nats_key_file: Option<PathBuf>,
    /// Also keep the event feed in a bounded JetStream stream (`<PREFIX>_EVENTS`), so
    /// subscribers can replay it and the feed resumes exactly across restarts.
    pub nats_events_stream: bool,
    /// How long the events stream keeps an event.
    pub nats_events_max_age: Secs,
    /// The most events the events stream keeps (the oldest go first).
    pub nats_events_max_msgs: u64,
    /// Replicas of every stream (1 to 5: 1 for a single server, 3 in a NATS cluster).
    pub nats_replicas: usize,
}

/// The reference shows these keys in the `communication` section.
impl Section for NatsConfig {
    const KEY: &'static str = "communication";
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            nats_subject_prefix: "cluster".into(),
            nats_token: None,
            nats_user: None,
            nats_password: None,
            nats_creds_file: None,
            nats_nkey_seed_file: None,
            nats_tls: false,
            nats_ca_file: None,
            nats_cert_file: None,
            nats_key_file: None,
            nats_events_stream: true,
            nats_events_max_age: Secs::from_secs(24 * 3600),
            nats_events_max_msgs: 1_000_000,
            nats_replicas: 1,
        }
    }
}

impl NatsConfig {
    /// The settings in a loaded config's `communication` section; `None` when `nats_url` is
    /// not set (HTTP only). A config built in code with a bad value is logged and read as
    /// "off".
    pub fn of(config: &crate::config::Config) -> Option<NatsConfig> {
        match config.communication.get::<NatsConfig>() {
            Ok(c) => c.nats_url.is_some().then_some(c),
            Err(e) => {
                tracing::error!(target: "openclaw::nats", key = %e.key, error = %e.message, "communication.{}: {}; NATS is off", e.key, e.message);
                None
            }
        }
    }

    /// Checks what types alone cannot: the URL, one way to authenticate, TLS files in pairs,
    /// readable files. Names the key at fault and what is wrong.
    pub fn check(&self) -> Result<(), KeyError> {
        check_prefix(&self.nats_subject_prefix).map_err(|e| KeyError::new("nats_subject_prefix", e))?;
        if self.nats_events_max_msgs == 0 {
            return Err(KeyError::new("nats_events_max_msgs", "must be at least 1"));
        }
        if self.nats_events_max_age.get() < std::time::Duration::from_secs(1) {
            return Err(KeyError::new("nats_events_max_age", "must be at least 1s"));
        }
        if !(1..=5).contains(&self.nats_replicas) {
            return Err(KeyError::new("nats_replicas", format!("must be from 1 to 5, not {}", self.nats_replicas)));
        }
        let Some(url) = &self.nats_url else { return Ok(()) };
        let servers = servers(url).map_err(|e| KeyError::new("nats_url", e))?;
        if self.nats_user.is_some() != self.nats_password.is_some() {
            let key = if self.nats_user.is_some() { "nats_password" } else { "nats_user" };
            return Err(KeyError::new(key, "nats_user and nats_password must be set together"));
        }
        let ways = self.ways_to_authenticate(&servers);
        if ways.len() > 1 {
            return Err(KeyError::new(
                "nats_url",
                format!("choose one way to authenticate to NATS, not {}", ways.join(" and ")),
            ));
        }
        if self.nats_cert_file.is_some() != self.nats_key_file.is_some() {
            return Err(KeyError::new("nats_cert_file", "nats_cert_file and nats_key_file must be set together"));
        }
        for (key, file) in [
            ("nats_creds_file", &self.nats_creds_file),
            ("nats_nkey_seed_file", &self.nats_nkey_seed_file),
            ("nats_ca_file", &self.nats_ca_file),
            ("nats_cert_file", &self.nats_cert_file),
            ("nats_key_file", &self.nats_key_file),
        ] {
            if let Some(path) = file
                && let Err(e) = std::fs::File::open(path)
            {
                return Err(KeyError::new(key, format!("cannot read {}: {e}", path.display())));
            }
        }
        Ok(())
    }

    /// The ways to authenticate that are configured (one at most passes the check).
    fn ways_to_authenticate(&self, servers: &Servers) -> Vec<&'static str> {
        [
            (servers.url_user.is_some(), "credentials in nats_url"),
            (self.nats_token.is_some(), "nats_token"),
            (self.nats_user.is_some(), "nats_user/nats_password"),
            (self.nats_creds_file.is_some(), "nats_creds_file"),
            (self.nats_nkey_seed_file.is_some(), "nats_nkey_seed_file"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }

    /// Whether the connection presents credentials (a client certificate counts: a server
    /// that verifies it can map it to a user).
    pub fn has_credentials(&self) -> bool {
        let servers = self.nats_url.as_deref().and_then(|u| servers(u).ok());
        servers.is_some_and(|s| !self.ways_to_authenticate(&s).is_empty()) || self.nats_cert_file.is_some()
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let c = NatsConfig {
            nats_url: Some("nats://u:p@localhost".into()),
            nats_token: Some("t".into()),
            ..Default::default()
        };
        let e = c.check().unwrap_err();
        assert_eq!(e.key, "nats_url");
        assert!(e.message.contains("credentials in nats_url and nats_token"), "{}", e.message);
        let c =
            NatsConfig { nats_url: Some("nats://localhost".into()), nats_user: Some("u".into()), ..Default::default() };
        assert_eq!(c.check().unwrap_err().key, "nats_password");
        let c = NatsConfig {
            nats_url: Some("nats://localhost".into()),
            nats_creds_file: Some("/nonexistent/x.creds".into()),
            ..Default::default()
        };
        let e = c.check().unwrap_err();
        assert_eq!(e.key, "nats_creds_file");
        assert!(e.message.contains("/nonexistent/x.creds"), "{}", e.message);
        assert!(NatsConfig::default().check().is_ok());
    }

    #[test]
    fn credentials_are_noticed() {
        let url = |u: &str| NatsConfig { nats_url: Some(u.into()), ..Default::default() };
        assert!(!url("nats://127.0.0.1").has_credentials());
        assert!(url("nats://oc:pw@127.0.0.1").has_credentials());
        assert!(NatsConfig { nats_token: Some("t".into()), ..url("nats://h") }.has_credentials());
        assert!(NatsConfig { nats_cert_file: Some("c.pem".into()), ..url("tls://h") }.has_credentials());
    }

    #[test]
    fn the_keys_are_the_seeds() {
        let keys = PLUGIN.keys();
        assert_eq!(keys.len(), 15, "{keys:?}");
        assert!(keys.iter().all(|k| k.starts_with("nats_")), "{keys:?}");
        for k in ["nats_url", "nats_subject_prefix", "nats_creds_file", "nats_events_max_age", "nats_replicas"] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
    }

    #[test]
    fn a_section_reads_into_the_settings_and_names_a_bad_key() {
        let mut section = PluginSection::default();
        section.set("nats_url", "nats://h:1").unwrap();
        section.set("nats_replicas", 3).unwrap();
        let c: NatsConfig = section.get().unwrap();
        assert_eq!(c.nats_url.as_deref(), Some("nats://h:1"));
        assert_eq!(c.nats_replicas, 3);
        assert_eq!(c.nats_subject_prefix, "cluster");
        section.set("nats_replicas", "many").unwrap();
        let e = section.get::<NatsConfig>().unwrap_err();
        assert_eq!(e.key, "nats_replicas", "{e:?}");
    }
}
