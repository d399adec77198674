//! What the remote clients share: finding the coordinator and the token, and turning API
//! errors into exit codes.

use super::output::outln;
use std::time::Duration;

use crate::api::Route;
use crate::cli::ClientArgs;
use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::tokens::{ADMIN_TOKEN_FILE, read_token_file, token_path};

/// A client for the coordinator: `--url` / OPENCLAW_URL or the config's address; the token
/// from `--token` / OPENCLAW_TOKEN, `auth.admin_token`, or the admin.token file.
pub fn connect(config: &Config, args: &ClientArgs) -> anyhow::Result<Client> {
    let url = match &args.url {
        Some(u) if u.contains("://") => u.clone(),
        Some(u) => format!("http://{u}"),
        None => {
            config.check_client_port("this command")?;
            config.coordinator_url_for_clients()
        }
    };
    reqwest::Url::parse(&url).map_err(|e| crate::usage_error(format!("--url `{url}` is not a URL: {e}")))?;
    let token = args
        .token
        .clone()
        .or_else(|| config.auth.admin_token.clone())
        .or_else(|| read_token_file(&token_path(config, ADMIN_TOKEN_FILE)).ok().flatten());
    Client::new(&url, token, config.worker.ca_file.as_deref())
}

/// Fetches a route and decodes it; with `json`, also prints the API's JSON unchanged.
pub async fn fetch<T: serde::de::DeserializeOwned>(
    config: &Config,
    client: &Client,
    route: &Route,
    json: bool,
) -> anyhow::Result<T> {
    let raw = client.raw(route, None, Duration::from_secs(15)).await.map_err(|e| fail(config, e))?;
    if json {
        outln!("{}", String::from_utf8_lossy(&raw));
    }
    let (method, path) = route.request();
    Ok(crate::client::decode(&method, &path, &raw)?)
}

/// An API error as the CLI reports it: a 400 is the user's input (exit 2), a 401 gets a
/// hint about tokens, everything else is a negative answer (exit 1).
pub fn fail(config: &Config, err: ClientError) -> anyhow::Error {
    match err.status() {
        Some(400) => crate::usage_error(err.to_string()),
        Some(401) => anyhow::anyhow!(
            "{err}\nhint: pass the admin token with --token or OPENCLAW_TOKEN; on the coordinator's machine it is in {}",
            token_path(config, ADMIN_TOKEN_FILE).display()
        ),
        _ => anyhow::Error::new(err),
    }
}
