//! What the remote clients share: finding the coordinator and the admin token, and turning
//! API errors into messages that name the URL, where the token came from, and what to do.
//!
//! The admin token is looked for, first found wins: `--token`, `OPENCLAW_TOKEN`,
//! `auth.admin_token` in the config, `admin.token` beside `--db-path`, beside
//! `storage.path` (default `./data/`), then in the packaged data folder
//! `/var/lib/openclaw-cluster/` (Unix). `openclaw mcp` looks for the tasks token the same
//! way (`auth.tasks_token`, `tasks.token`), and for the admin token's only after that.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::output::outln;
use crate::api::Route;
use crate::cli::ClientArgs;
use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::tokens::{ADMIN_TOKEN_FILE, TASKS_TOKEN_FILE, read_address_file, read_token_file, token_path};

/// The data folder the Debian package and the systemd units use.
pub const PACKAGED_DATA_DIR: &str = "/var/lib/openclaw-cluster";

/// A client for the coordinator, and where its token came from (for messages).
pub struct Remote {
    client: Client,
    /// Where the token came from, or why there is none.
    pub token_from: String,
}

/// Which token a client looks for when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Everything (`nodes`, `tasks`, `health`, `backup`).
    Admin,
    /// Read, submit, cancel (`mcp`): the tasks token's sources, then the admin token's.
    Tasks,
}

impl TokenKind {
    /// The config key and the file of one kind.
    fn sources(self, config: &Config) -> (Option<&String>, &'static str, &'static str) {
        match self {
            TokenKind::Admin => (config.auth.admin_token.as_ref(), "auth.admin_token", ADMIN_TOKEN_FILE),
            TokenKind::Tasks => (config.auth.tasks_token.as_ref(), "auth.tasks_token", TASKS_TOKEN_FILE),
        }
    }

    /// The kinds looked for, in order.
    fn order(self) -> &'static [TokenKind] {
        match self {
            TokenKind::Admin => &[TokenKind::Admin],
            TokenKind::Tasks => &[TokenKind::Tasks, TokenKind::Admin],
        }
    }
}

impl std::ops::Deref for Remote {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A token, where it came from, and the file when it was found in one.
struct Found {
    token: Option<String>,
    from: String,
    file: Option<PathBuf>,
}

/// The token and where it came from.
fn find_token(config: &Config, args: &ClientArgs, kind: TokenKind) -> Found {
    let given = |token: String, from: String| Found { token: Some(token), from, file: None };
    if let Some(t) = &args.token {
        let from_env = std::env::var("OPENCLAW_TOKEN").is_ok_and(|e| e == *t);
        return given(t.clone(), if from_env { "OPENCLAW_TOKEN" } else { "--token" }.into());
    }
    let (mut looked, mut unreadable, mut files) = (Vec::new(), Vec::new(), Vec::new());
    for k in kind.order() {
        let (configured, key, file) = k.sources(config);
        let fallback = if *k != kind { " (no tasks token found; the admin token works too)" } else { "" };
        if let Some(t) = configured {
            return given(t.clone(), format!("{key} in the config{fallback}"));
        }
        let mut places: Vec<PathBuf> = Vec::new();
        if let Some(db) = &args.db_path {
            places.push(db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).join(file));
        }
        places.push(token_path(config, file));
        if cfg!(unix) {
            places.push(Path::new(PACKAGED_DATA_DIR).join(file));
        }
        for p in &places {
            match read_token_file(p) {
                Ok(Some(t)) => {
                    let from = format!("{}{fallback}", absolute(p).display());
                    return Found { token: Some(t), from, file: Some(p.clone()) };
                }
                Ok(None) => {}
                Err(e) => unreadable.push(format!("{} ({e})", absolute(p).display())),
            }
        }
        looked.extend(places.iter().map(|p| absolute(p).display().to_string()));
        files.push(file);
    }
    let mut why = format!(
        "no token: --token and OPENCLAW_TOKEN are not set, and no {} in {}",
        files.join(" or "),
        looked.join(", ")
    );
    if !unreadable.is_empty() {
        why.push_str(&format!(
            "; cannot read {} — it belongs to the coordinator's user: run as that user (e.g. sudo -u openclaw-cluster …) or pass --token",
            unreadable.join(", ")
        ));
    }
    Found { token: None, from: why, file: None }
}

/// Whether a token found in `file` may go to `target`: only to the coordinator whose
/// address is recorded beside it. `Err` says why not and what to do instead.
fn stays_home(file: &Path, target: &reqwest::Url) -> Result<(), String> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let shown = absolute(file);
    let recorded = read_address_file(dir).ok().flatten();
    let Some(recorded) = recorded else {
        return Err(format!(
            "the token in {} was not sent to {target}: no {} beside it says which coordinator wrote it (a coordinator records it at every start); start the coordinator, or pass the token with --token or OPENCLAW_TOKEN",
            shown.display(),
            crate::tokens::ADDRESS_FILE
        ));
    };
    match reqwest::Url::parse(&recorded) {
        Ok(home) if crate::tokens::reaches(&home, target) => Ok(()),
        _ => Err(format!(
            "the token in {} was not sent to {target}: it belongs to the coordinator listening on {recorded} ({} beside it), and {target} is not known to be that one. For that coordinator pass its token with --token or OPENCLAW_TOKEN; for this one use --url {}",
            shown.display(),
            crate::tokens::ADDRESS_FILE,
            local_url(&recorded)
        )),
    }
}

/// The URL a client on this machine uses for a coordinator listening on `recorded`.
fn local_url(recorded: &str) -> String {
    recorded.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
}

/// Whether a URL's host is a loopback name or address.
fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") | Some("[::1]") => true,
        Some(h) => h.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A client for the coordinator: `--url` / OPENCLAW_URL or the config's address, and the
/// admin token (see the module's order).
pub fn connect(config: &Config, args: &ClientArgs) -> anyhow::Result<Remote> {
    connect_as(config, args, TokenKind::Admin)
}

/// A client with the token of a kind (see the module's order).
pub fn connect_as(config: &Config, args: &ClientArgs, kind: TokenKind) -> anyhow::Result<Remote> {
    let urls = match &args.url {
        Some(list) => list
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .map(|u| crate::client::parse_base(u).map_err(|e| crate::usage_error(format!("--url: {e}"))))
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            config.check_client_port("this command")?;
            config.coordinator_urls_for_clients()
        }
    };
    let targets = urls
        .iter()
        .map(|url| reqwest::Url::parse(url).map_err(|e| crate::usage_error(format!("--url `{url}` is not a URL: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(crate::usage_error("--url is empty: give a coordinator's URL, or a comma list of them"));
    }
    let Found { mut token, from: mut token_from, file } = find_token(config, args, kind);
    match &file {
        Some(file) => {
            if let Some(why) = targets.iter().find_map(|target| stays_home(file, target).err()) {
                eprintln!("note: {why}");
                token = None;
                token_from = format!("nowhere: {why}");
            }
        }
        None if token.is_some() => {
            if let Some(target) = targets.iter().find(|t| t.scheme() == "http" && !is_loopback(t)) {
                eprintln!(
                    "warning: the token ({token_from}) goes to {target} over plain http: anyone on the network path can read it and use it. Serve the coordinator over https (coordinator.tls_cert and tls_key), or reach it through an SSH tunnel or a VPN"
                )
            }
        }
        None => {}
    }
    Ok(Remote { client: Client::for_coordinators(&urls, token, config.worker.ca_file.as_deref())?, token_from })
}

impl Remote {
    /// Fetches a route and decodes it; with `json`, also prints the API's JSON unchanged.
    pub async fn fetch<T: serde::de::DeserializeOwned>(&self, route: &Route, json: bool) -> anyhow::Result<T> {
        let raw = self.client.raw(route, None, Duration::from_secs(15)).await.map_err(|e| self.fail(e))?;
        if json {
            outln!("{}", String::from_utf8_lossy(&raw));
        }
        let (method, path) = route.request();
        Ok(crate::client::decode(&method, &path, &raw)?)
    }

    /// Sends `body` as JSON to a route that changes something and decodes the answer; with
    /// `json`, also prints the API's JSON unchanged.
    pub async fn send<T: serde::de::DeserializeOwned, B: serde::Serialize>(
        &self,
        route: &Route,
        body: &B,
        json: bool,
    ) -> anyhow::Result<T> {
        let body = route.takes_body().then(|| serde_json::to_vec(body)).transpose()?;
        let raw = self.client.raw(route, body, Duration::from_secs(15)).await.map_err(|e| self.fail(e))?;
        if json {
            outln!("{}", String::from_utf8_lossy(&raw));
        }
        let (method, path) = route.request();
        Ok(crate::client::decode(&method, &path, &raw)?)
    }

    /// An API error as the CLI reports it: a 400 is the user's input (exit 2); a refused
    /// token says where it came from; an unreachable coordinator says what to check.
    pub fn fail(&self, err: ClientError) -> anyhow::Error {
        match &err {
            ClientError::Status { status: 400, .. } => crate::usage_error(err.to_string()),
            ClientError::Status { status: 401 | 403, .. } => anyhow::anyhow!(
                "{err}\nthe token came from {}; pass the admin token with --token or OPENCLAW_TOKEN (on the coordinator's machine it is admin.token beside the database)",
                self.token_from
            ),
            ClientError::Unreachable { .. } => anyhow::anyhow!(
                "{err}\ncheck that the coordinator is running (openclaw coordinator), that the address is right (--url, OPENCLAW_URL, worker.coordinator_urls, or coordinator.host/port in the config), and that no firewall blocks the port"
            ),
            _ => anyhow::Error::new(err),
        }
    }
}
