//! Cluster secrets on the wire: setting one (its value goes in a request body, never in a
//! path, a query or the CLI's arguments), the list (names, scope, who set them and when;
//! never a value), and the values a worker receives in the answer to the start report of
//! the attempt that uses them ([`SecretValues`], whose `Debug` shows names only).
//!
//! A secret's name is the environment variable the skill reads it from: a letter or `_`,
//! then letters, digits and `_`, at most [`MAX_SECRET_NAME`] characters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};

use super::Timestamp;
use super::limits::{Text, schema_type};
use super::task::Target;

/// The longest secret name.
pub const MAX_SECRET_NAME: usize = 128;
/// The most secrets one task may use.
pub const MAX_TASK_SECRETS: usize = 32;
/// The longest secret value, in characters.
pub const SECRET_VALUE: Text = Text::new(64 * 1024);
/// A secret name as a regex (the check is [`check_secret_name`]).
pub const SECRET_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]{0,127}$";

/// A secret name, or why it is refused.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > MAX_SECRET_NAME {
        return Err(format!(
            "`{}` is not a secret name: it is the environment variable the skill reads, so a letter or `_`, then letters, digits and `_`, at most {MAX_SECRET_NAME} characters (e.g. OPENAI_API_KEY)",
            name.escape_debug()
        ));
    }
    Ok(())
}

schema_type! {
    /// A secret name: the environment variable a skill reads it from.
    SecretName => ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(SECRET_NAME_PATTERN))
        .description(Some("An environment variable name: a letter or `_`, then letters, digits and `_` (at most 128)"));
    /// The secrets a task uses, by name.
    SecretNames => ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String).pattern(Some(SECRET_NAME_PATTERN)))
        .max_items(Some(MAX_TASK_SECRETS))
        .description(Some("Names of cluster secrets (`openclaw secrets list`); each reaches the skill's process as that environment variable"));
    /// A secret's value: 1 to 65,536 characters, without NUL.
    SecretValueText => ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(SECRET_VALUE.max()))
        .pattern(Some("^[^\\u0000]*$"))
        .description(Some("1 to 65536 characters, without NUL; kept encrypted, never shown again"));
}

/// `PUT /api/v1/secrets/{name}`: sets (or replaces) a secret.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// The value. Kept encrypted; never shown again by any endpoint.
    #[schema(value_type = SecretValueText)]
    pub value: String,
    /// Which nodes may receive it (placement only uses those): a node, a platform, tags
    /// (every one). Absent: every node.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::limits::optional_object")]
    pub scope: Option<Target>,
}

impl std::fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSecret").field("scope", &self.scope).finish_non_exhaustive()
    }
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretInfo {
    #[schema(value_type = SecretName)]
    pub name: String,
    /// Which nodes may receive it; null: every node.
    pub scope: Option<Target>,
    /// Who set it: the token's role and the client's address.
    pub set_by: String,
    pub set_at: Timestamp,
    /// False when the coordinator's key cannot decrypt it (a backup restored without its
    /// `storage.secrets_key_file`): set it again.
    pub readable: bool,
}

/// `GET /api/v1/secrets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretList {
    pub secrets: Vec<SecretInfo>,
}

/// `POST /api/v1/secrets/rotate-key`: every readable secret sealed again under a new key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyRotated {
    /// The new key's id (not the key).
    pub key_id: String,
    /// Secrets sealed again under it.
    pub resealed: u32,
    /// Secrets the old key could not read either (left as they were): set them again.
    pub unreadable: Vec<String>,
}

/// The values of the secrets an attempt uses, by name: only in the answer to that
/// attempt's start report. `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl SecretValues {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_environment_variables_and_values_never_debug_print() {
        for ok in ["OPENAI_API_KEY", "_x", "a1", &"A".repeat(128)] {
            assert!(check_secret_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", &"A".repeat(129), "A=B"] {
            assert!(check_secret_name(bad).unwrap_err().contains("not a secret name"), "{bad}");
        }
        let re = regex::Regex::new(SECRET_NAME_PATTERN).unwrap();
        for name in ["OPENAI_API_KEY", "_x", "1A", "A-B", "", &"A".repeat(128), &"A".repeat(129)] {
            assert_eq!(
                re.is_match(name),
                check_secret_name(name).is_ok(),
                "the schema says what the check does: {name}"
            );
        }
        let v = SecretValues([("K".to_string(), "hunter2-value".to_string())].into());
        assert!(!format!("{v:?}").contains("hunter2"));
        let s = SetSecret { value: "hunter2-value".into(), scope: None };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
