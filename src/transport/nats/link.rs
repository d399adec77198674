//! The connection to NATS, for either role: the connect options from `communication.*`
//! (credentials, TLS), the first connection with a precise diagnosis when it fails, and
//! the connection's state afterwards.
//!
//! The first connection is made by [`Link::connect`], retried here (1 s → 30 s with
//! jitter) while NATS cannot be reached: the first failure, and every change of cause, is
//! one ERROR naming the servers, the cause and what to check; the process carries on over
//! HTTP meanwhile. Once connected, the client reconnects by itself, forever; its events
//! move [`Status`] (a `watch`, so loops can wait for a change) and the ones that matter
//! are logged once each. Credentials never reach a log line: the URLs shown are
//! [`Servers::shown`].
//!
//! Locking: a std mutex over the client, held only to clone it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::{NatsConfig, Servers};
use crate::model::{NatsState, Timestamp};
use crate::util::lock;

/// The connection's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub state: NatsState,
    /// Since when `state` holds (ms since the epoch).
    pub since: i64,
    /// The last connection error, kept after a success for the health view.
    pub last_error: Option<String>,
    /// Connections made so far (the first and every reconnection): whoever sets things up
    /// on the server does it again when this changes.
    pub connections: u64,
}

/// What the server said about itself when we connected.
#[derive(Debug, Clone, Default)]
pub struct ServerFacts {
    pub version: String,
    pub jetstream: bool,
    pub max_payload: usize,
}

/// One process's connection to NATS.
pub struct Link {
    servers: Servers,
    config: NatsConfig,
    /// Shown in the server's `/connz` (e.g. `openclaw-worker w1`).
    name: String,
    /// This process's inbox prefix (its replies and pulled messages arrive below it).
    inbox: String,
    status: watch::Sender<Status>,
    /// A std mutex: set once at the first connection, then only cloned.
    client: Mutex<Option<Client>>,
    /// Closing on purpose: the end of the connection is not news.
    closing: AtomicBool,
}

impl Link {
    /// A link for `config` (already checked at load). `name` identifies the process to the
    /// server; `inbox` is its inbox prefix.
    pub fn new(config: &NatsConfig, name: String, inbox: String) -> Result<Arc<Link>, String> {
        let servers = super::config::servers(config.nats_url.as_deref().unwrap_or_default())?;
        let status =
            Status { state: NatsState::Connecting, since: crate::util::now_ms(), last_error: None, connections: 0 };
        Ok(Arc::new(Link {
            servers,
            config: config.clone(),
            name,
            inbox,
            status: watch::channel(status).0,
            client: Mutex::new(None),
            closing: AtomicBool::new(false),
        }))
    }

    /// The servers, without credentials (for messages).
    pub fn shown(&self) -> &str {
        &self.servers.shown
    }

    /// The client, once the first connection was made (it may be reconnecting now).
    pub fn client(&self) -> Option<Client> {
        lock(&self.client).clone()
    }

    /// Connected right now.
    pub fn connected(&self) -> bool {
        self.status.borrow().state == NatsState::Connected
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Changes of the status.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// The server's facts while connected.
    pub fn facts(&self) -> Option<ServerFacts> {
        let client = self.client()?;
        let info = client.server_info();
        Some(ServerFacts { version: info.version, jetstream: info.jetstream, max_payload: info.max_payload })
    }

    /// The status as the health view shows it.
    pub fn health(&self) -> (Status, Option<ServerFacts>) {
        let status = self.status();
        let facts = if status.state == NatsState::Connected { self.facts() } else { None };
        (status, facts)
    }

    /// Waits until connected (or `until` fires: `None`).
    pub async fn wait_connected(&self, until: &CancellationToken) -> Option<Client> {
        let mut rx = self.watch();
        loop {
            if rx.borrow_and_update().state == NatsState::Connected
                && let Some(client) = self.client()
            {
                return Some(client);
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return None },
                _ = until.cancelled() => return None,
            }
        }
    }

    /// Makes the first connection, retrying until it succeeds or `until` fires. Returns
    /// at once when already connected once.
    pub async fn connect(self: &Arc<Self>, until: &CancellationToken) -> Option<Client> {
        if let Some(client) = self.client() {
            return Some(client);
        }
        let mut failures = 0u32;
        let mut logged: Option<String> = None;
        loop {
            let attempt = match self.options().await {
                Ok(options) => options.connect(self.servers.addrs.clone()).await.map_err(|e| explain(&e)),
                Err(e) => Err(e),
            };
            match attempt {
                Ok(client) => {
                    let info = client.server_info();
                    *lock(&self.client) = Some(client.clone());
                    // The client's own `Connected` event may come before or after this.
                    self.mark_connected();
                    tracing::info!(
                        target: "openclaw::nats",
                        url = %self.servers.shown, server_version = %info.version, jetstream = info.jetstream,
                        max_payload = info.max_payload,
                        "connected to NATS at {}", self.servers.shown
                    );
                    return Some(client);
                }
                Err(cause) => {
                    self.status.send_modify(|s| s.last_error = Some(cause.clone()));
                    if logged.as_deref() != Some(cause.as_str()) {
                        tracing::error!(
                            target: "openclaw::nats",
                            url = %self.servers.shown, error = %cause,
                            "cannot connect to NATS at {}: {cause}; carrying on over HTTP and retrying in the background",
                            self.servers.shown
                        );
                        logged = Some(cause);
                    }
                    failures += 1;
                    let delay = crate::util::backoff(Duration::from_secs(1), Duration::from_secs(30), failures);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = until.cancelled() => return None,
                    }
                }
            }
        }
    }

    /// Notes a connection (once per connection: both `connect` and the client's event
    /// report the first one).
    fn mark_connected(&self) {
        self.status.send_if_modified(|s| {
            if s.state == NatsState::Connected {
                return false;
            }
            s.state = NatsState::Connected;
            s.since = crate::util::now_ms();
            s.connections += 1;
            true
        });
    }

    /// Flushes and closes the connection (bounded).
    pub async fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let client = lock(&self.client).take();
        if let Some(client) = client {
            let _ = tokio::time::timeout(Duration::from_secs(3), client.drain()).await;
        }
    }

    /// The connect options from `communication.*`.
    async fn options(self: &Arc<Self>) -> Result<ConnectOptions, String> {
        let c = &self.config;
        let mut options = match &c.nats_creds_file {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| format!("communication.nats_creds_file {}: {e}", path.display()))?,
            None => ConnectOptions::new(),
        };
        if let Some(path) = &c.nats_nkey_seed_file {
            let seed = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read communication.nats_nkey_seed_file {}: {e}", path.display()))?;
            options = options.nkey(seed.trim().to_string());
        }
        if let Some(token) = &c.nats_token {
            options = options.token(token.clone());
        }
        if let (Some(user), Some(password)) = (&c.nats_user, &c.nats_password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        // Credentials in the URL are not used by the client: apply them here.
        match (&self.servers.url_user, &self.servers.url_password) {
            (Some(user), Some(password)) => options = options.user_and_password(user.clone(), password.clone()),
            (Some(token), None) => options = options.token(token.clone()),
            _ => {}
        }
        if c.nats_tls {
            options = options.require_tls(true);
        }
        if let Some(ca) = &c.nats_ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&c.nats_cert_file, &c.nats_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let link = Arc::downgrade(self);
        Ok(options
            .name(&self.name)
            .custom_inbox_prefix(&self.inbox)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)))
            // A half-open connection is noticed after two missed pings, not minutes later.
            .ping_interval(Duration::from_secs(10))
            .max_reconnects(None)
            .event_callback(move |event| {
                let link = link.clone();
                async move { on_event(&link, event) }
            }))
    }
}

/// Moves the status on the client's events and logs the ones that matter, once each.
fn on_event(link: &Weak<Link>, event: async_nats::Event) {
    let Some(link) = link.upgrade() else { return };
    if link.closing.load(Ordering::SeqCst) {
        return;
    }
    let shown = &link.servers.shown;
    match event {
        async_nats::Event::Connected => {
            let was = link.status.borrow().state;
            link.mark_connected();
            if was == NatsState::Disconnected {
                tracing::info!(target: "openclaw::nats", url = %shown, "connected to NATS again at {shown}");
            }
        }
        async_nats::Event::Disconnected | async_nats::Event::Closed => {
            let was = link.status.borrow().state;
            if was == NatsState::Connected {
                link.status.send_modify(|s| {
                    s.state = NatsState::Disconnected;
                    s.since = crate::util::now_ms();
                });
                tracing::warn!(target: "openclaw::nats", url = %shown, "lost the connection to NATS at {shown}; reconnecting in the background (work goes over HTTP meanwhile)");
            }
        }
        async_nats::Event::ServerError(e) => {
            // Permission violations arrive here; the publisher only sees a timeout.
            tracing::warn!(target: "openclaw::nats", url = %shown, error = %e, "the NATS server reported an error: {e} (a permission violation means this user may not use a subject: docs/nats.md lists the subjects)");
            link.status.send_modify(|s| s.last_error = Some(format!("server error: {e}")));
        }
        async_nats::Event::ClientError(e) => {
            // Every failed reconnection attempt comes here: keep it, do not log each one.
            link.status.send_modify(|s| s.last_error = Some(format!("cannot reach the server ({e})")));
        }
        async_nats::Event::SlowConsumer(sid) => {
            tracing::warn!(target: "openclaw::nats", subscription = sid, "a NATS subscription fell behind and lost messages");
        }
        async_nats::Event::LameDuckMode => {
            tracing::info!(target: "openclaw::nats", url = %shown, "the NATS server is shutting down (lame duck mode); the client will move to another server");
        }
        async_nats::Event::Draining => {}
    }
}

/// A connection error as one line: the cause and what to check.
fn explain(e: &async_nats::ConnectError) -> String {
    let detail = std::error::Error::source(e).map(crate::client::root_cause).unwrap_or_else(|| e.to_string());
    let check = match e.kind() {
        ConnectErrorKind::Io if detail.contains("refused") => {
            "is nats-server running there, listening on that port and started with -js? (systemctl status nats-server; ss -ltn)"
        }
        ConnectErrorKind::Io if detail.contains("certificate") || detail.contains("alert") => {
            "check the TLS files: communication.nats_ca_file must hold the CA that signed the server's certificate, and a server that verifies clients needs nats_cert_file and nats_key_file"
        }
        ConnectErrorKind::Io => "check the address, the port (4222 by default) and any firewall in between",
        ConnectErrorKind::Dns => "the host name does not resolve: check communication.nats_url",
        ConnectErrorKind::AuthorizationViolation => {
            "the server refused our credentials: check communication.nats_token, nats_user/nats_password, nats_creds_file or nats_nkey_seed_file against the server's authorization block"
        }
        ConnectErrorKind::Authentication => {
            "the nkey or creds could not sign the server's challenge: check communication.nats_nkey_seed_file or nats_creds_file"
        }
        ConnectErrorKind::TimedOut => {
            "nothing answered in time: a firewall dropping packets, or a TLS server reached with nats:// (try tls:// or nats_tls)"
        }
        ConnectErrorKind::Tls => {
            "the TLS setup failed: check communication.nats_ca_file, nats_cert_file and nats_key_file"
        }
        ConnectErrorKind::ServerParse => "communication.nats_url is not a NATS URL",
        ConnectErrorKind::MaxReconnects => "the client gave up reconnecting",
    };
    let kind = e.kind().to_string();
    if detail.is_empty() || detail == kind { format!("{kind}; {check}") } else { format!("{kind}: {detail}; {check}") }
}

/// The moment of a status, for the health view.
pub fn since(status: &Status) -> Timestamp {
    Timestamp(status.since)
}
