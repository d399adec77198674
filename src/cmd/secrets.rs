//! `openclaw secrets`: set (the value from stdin or a file, never from the arguments),
//! list (never values), rm, rotate-key.

use std::io::Read;

use crate::api::Route;
use crate::cli::{SecretsAction, SetSecretArgs};
use crate::config::Config;
use crate::model::{SecretInfo, SecretList, SetSecret, Target};
use crate::util::{ago, now_ms};
use crate::{Exit, usage_error};

use super::output::{clean, out, outln, table};
use super::remote::connect;

pub async fn run(config: &Config, action: SecretsAction) -> anyhow::Result<Exit> {
    match action {
        SecretsAction::Set(args) => set(config, args).await,
        SecretsAction::List(args) => {
            let client = connect(config, &args.client)?;
            let list: SecretList = client.fetch(&Route::ListSecrets, args.json).await?;
            if !args.json {
                if list.secrets.is_empty() {
                    outln!("no secrets: set one with `openclaw secrets set NAME` (the value on stdin)");
                } else {
                    out!("{}", list_table(&list.secrets));
                }
            }
            Ok(Exit::Ok)
        }
        SecretsAction::Rm(args) => {
            let client = connect(config, &args.client)?;
            let info = client.delete_secret(&args.name).await.map_err(|e| client.fail(e))?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                outln!("secret {} removed", clean(&info.name));
            }
            Ok(Exit::Ok)
        }
        SecretsAction::RotateKey(args) => {
            let client = connect(config, &args.client)?;
            let answer = client.rotate_secret_key().await.map_err(|e| client.fail(e))?;
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                outln!("new secrets key {}: {} secret(s) sealed again", answer.key_id, answer.resealed);
                if !answer.unreadable.is_empty() {
                    eprintln!("cannot read (set them again): {}", clean(&answer.unreadable.join(", ")));
                }
            }
            Ok(Exit::Ok)
        }
    }
}

async fn set(config: &Config, args: SetSecretArgs) -> anyhow::Result<Exit> {
    crate::model::check_secret_name(&args.name).map_err(usage_error)?;
    let value = match &args.file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| usage_error(format!("--file {}: cannot read it as text: {e}", path.display())))?,
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("value of {} (then Enter and Ctrl+D):", args.name);
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| usage_error(format!("cannot read the value from stdin as text: {e}")))?;
            text
        }
    };
    let value = value.strip_suffix('\n').map(|v| v.strip_suffix('\r').unwrap_or(v)).unwrap_or(&value).to_string();
    if value.is_empty() {
        return Err(usage_error(format!(
            "the value of {} is empty: pipe it on stdin (`printf %s \"$KEY\" | openclaw secrets set {}`) or use --file PATH",
            args.name, args.name
        )));
    }
    let scope = Target {
        node: args.node.clone(),
        platform: args.platform.clone(),
        tags: args.tags.clone(),
        ..Default::default()
    };
    let request = SetSecret { value, scope: Some(scope).filter(|t| !t.is_any()) };
    let client = connect(config, &args.client)?;
    let info = client.set_secret(&args.name, &request).await.map_err(|e| client.fail(e))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        outln!("secret {} set", clean(&info.name));
    }
    Ok(Exit::Ok)
}

fn list_table(secrets: &[SecretInfo]) -> String {
    let now = now_ms();
    let rows = secrets
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.scope.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "every node".into()),
                s.set_by.clone(),
                ago(s.set_at.0, now),
                if s.readable { "yes".into() } else { "NO: set it again".into() },
            ]
        })
        .collect();
    table(&["NAME", "SCOPE", "SET BY", "SET", "READABLE"], rows)
}
