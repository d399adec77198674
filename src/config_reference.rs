//! The configuration reference (the key tables of docs/configuration.md), rendered from
//! [`crate::config::SECTIONS`] and the plug-ins' sections (`crate::transport::CONFIG`, given
//! by the caller): each key's type and default from its section's schema and `Default`, its
//! description from its doc comment. A test keeps the committed page equal
//! to this rendering, so a key cannot be added, renamed or given a new default without
//! the reference following.
//!
//! Invariant: every key has a description (the test refuses an undocumented field).

use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayItems, Schema, SchemaFormat, SchemaType, Type};

use crate::config::{Plugin, SECTIONS, SectionInfo};

/// One key of a section, as the reference shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDoc {
    /// `coordinator.port`.
    pub key: String,
    /// `integer`, `duration`, `path`, `` one of `json`, `text` ``…
    pub kind: String,
    /// The built-in default, for people (`unset` when there is none).
    pub default: String,
    /// `OPENCLAW_COORDINATOR__PORT`.
    pub env: String,
    /// The field's doc comment, on one line.
    pub description: String,
}

/// One section: its key, its doc comment and its keys (alphabetical).
#[derive(Debug, Clone)]
pub struct SectionDoc {
    pub key: &'static str,
    pub description: String,
    pub keys: Vec<KeyDoc>,
}

/// Every section of the configuration, in the file's order, with the keys `plugins` add
/// to theirs.
pub fn sections(plugins: &[Plugin]) -> Vec<SectionDoc> {
    SECTIONS
        .iter()
        .map(|info| {
            let mut doc = section(info);
            for p in plugins.iter().filter(|p| p.section.key == info.key) {
                doc.keys.extend(section(&p.section).keys);
            }
            doc.keys.sort_by(|a, b| a.key.cmp(&b.key));
            doc
        })
        .collect()
}

fn section(info: &SectionInfo) -> SectionDoc {
    let (schema, refs) = (info.schema)();
    let defaults = (info.defaults)();
    let resolve = |r: &RefOr<Schema>| -> Option<Schema> {
        match r {
            RefOr::T(s) => Some(s.clone()),
            RefOr::Ref(r) => {
                let name = r.ref_location.rsplit('/').next().unwrap_or_default();
                refs.iter().find(|(n, _)| n == name).and_then(|(_, s)| match s {
                    RefOr::T(s) => Some(s.clone()),
                    RefOr::Ref(_) => None,
                })
            }
        }
    };
    let Some(Schema::Object(object)) = resolve(&schema) else {
        return SectionDoc { key: info.key, description: String::new(), keys: Vec::new() };
    };
    let keys = object
        .properties
        .iter()
        .map(|(name, property)| {
            let description = match property {
                RefOr::Ref(r) => r.description.clone(),
                RefOr::T(Schema::Object(o)) => o.description.clone().unwrap_or_default(),
                RefOr::T(Schema::Array(a)) => a.description.clone().unwrap_or_default(),
                RefOr::T(_) => String::new(),
            };
            let kind = resolve(property).map(|s| kind_of(&s, &resolve)).unwrap_or_default();
            let default = show_default(defaults.get(name).unwrap_or(&Value::Null), &kind);
            KeyDoc {
                key: format!("{}.{name}", info.key),
                kind,
                default,
                env: format!("OPENCLAW_{}__{}", info.key.to_ascii_uppercase(), name.to_ascii_uppercase()),
                description: one_line(&description),
            }
        })
        .collect();
    SectionDoc { key: info.key, description: one_line(&object.description.clone().unwrap_or_default()), keys }
}

/// The type of a key in words.
fn kind_of(schema: &Schema, resolve: &dyn Fn(&RefOr<Schema>) -> Option<Schema>) -> String {
    let o = match schema {
        Schema::Object(o) => o,
        Schema::Array(a) => {
            return match &a.items {
                ArrayItems::RefOrSchema(item) => match resolve(item) {
                    Some(s) => format!("list of {}s", kind_of(&s, resolve)),
                    None => "list".into(),
                },
                ArrayItems::False => "list".into(),
            };
        }
        _ => return String::new(),
    };
    if let Some(title) = &o.title {
        return title.clone();
    }
    if let Some(values) = &o.enum_values {
        let names: Vec<String> = values.iter().map(|v| format!("`{}`", v.as_str().unwrap_or_default())).collect();
        return format!("one of {}", names.join(", "));
    }
    if matches!(&o.format, Some(SchemaFormat::Custom(f)) if f == "path") {
        return "path".into();
    }
    let types: Vec<&Type> = match &o.schema_type {
        SchemaType::Type(t) => vec![t],
        SchemaType::Array(ts) => ts.iter().collect(),
        SchemaType::AnyValue => Vec::new(),
    };
    match types.into_iter().find(|t| **t != Type::Null) {
        Some(Type::String) => "string",
        Some(Type::Integer) => "integer",
        Some(Type::Number) => "number",
        Some(Type::Boolean) => "boolean",
        Some(Type::Array) => "list",
        Some(Type::Object) => "map",
        _ => "",
    }
    .into()
}

/// A default as people write it: `90s`, `./data/cluster.db`, `[]`, `unset`.
fn show_default(value: &Value, kind: &str) -> String {
    match value {
        Value::Null => "unset".into(),
        Value::Number(n) if kind == "duration" => format!("`{}`", exact_duration(n.as_f64().unwrap_or_default())),
        Value::String(s) => format!("`{s}`"),
        Value::Array(items) => {
            let items: Vec<String> =
                items.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect();
            format!("`[{}]`", items.join(", "))
        }
        other => format!("`{other}`"),
    }
}

/// Seconds as the config accepts them back, exactly: `2h`, `5m`, `90s`, `0.5s`.
fn exact_duration(secs: f64) -> String {
    match secs as u64 {
        s if s as f64 == secs && s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s as f64 == secs && s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{secs}s"),
    }
}

/// A doc comment on one line, safe in a table cell.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// The reference as markdown: a chapter per section with a table of its keys.
pub fn markdown(plugins: &[Plugin]) -> String {
    let mut out = String::new();
    for s in sections(plugins) {
        out.push_str(&format!("## {}\n\n{}\n\n", s.key, s.description));
        out.push_str("| key | type | default | environment variable | what it is |\n|---|---|---|---|---|\n");
        for k in &s.keys {
            out.push_str(&format!("| `{}` | {} | {} | `{}` | {} |\n", k.key, k.kind, k.default, k.env, k.description));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_config_is_in_the_reference_and_documented() {
        let defaults = serde_json::to_value(crate::config::Config::default()).unwrap();
        let plugins = crate::transport::CONFIG;
        let sections = sections(plugins);
        let keys: Vec<&str> = sections.iter().map(|s| s.key).collect();
        let want: Vec<&str> = defaults.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, want, "config::SECTIONS must list every section of Config");
        for s in &sections {
            assert!(!s.description.is_empty(), "section {} has no doc comment", s.key);
            let own = defaults[s.key].as_object().unwrap().len();
            let added: usize = plugins.iter().filter(|p| p.section.key == s.key).map(|p| p.keys().len()).sum();
            assert_eq!(s.keys.len(), own + added, "{}: the schema and the defaults disagree", s.key);
            for k in &s.keys {
                assert!(!k.description.is_empty(), "{} has no doc comment: write one (it is the reference)", k.key);
                assert!(!k.kind.is_empty(), "{} has no type the reference can name", k.key);
            }
        }
    }

    #[test]
    fn keys_read_as_people_write_them() {
        let all: Vec<KeyDoc> = sections(crate::transport::CONFIG).into_iter().flat_map(|s| s.keys).collect();
        let key = |k: &str| all.iter().find(|d| d.key == k).unwrap().clone();
        let port = key("coordinator.port");
        assert_eq!((port.kind.as_str(), port.default.as_str()), ("integer", "`8888`"));
        assert_eq!(port.env, "OPENCLAW_COORDINATOR__PORT");
        let timeout = key("coordinator.heartbeat_timeout");
        assert_eq!((timeout.kind.as_str(), timeout.default.as_str()), ("duration", "`90s`"));
        let strategy = key("coordinator.scheduling_strategy");
        assert!(strategy.kind.starts_with("one of `least_loaded`, `round_robin`"), "{}", strategy.kind);
        assert_eq!(key("storage.path").kind, "path");
        assert_eq!(key("worker.node_id").default, "unset");
        assert_eq!(key("log.level").default, "`INFO`");
        assert_eq!(key("coordinator.trusted_proxies").kind, "list of strings");
        assert_eq!(key("coordinator.default_task_timeout").default, "`1h`");
        assert_eq!(key("worker.openclaw_refresh_interval").default, "`5m`");
        // A plug-in's keys, in its section.
        let prefix = key("communication.nats_subject_prefix");
        assert_eq!((prefix.kind.as_str(), prefix.default.as_str()), ("string", "`cluster`"));
        assert_eq!(key("communication.nats_events_max_age").default, "`24h`");
        assert_eq!(key("communication.nats_creds_file").kind, "path");
        assert_eq!(exact_duration(0.5), "0.5s");
    }
}
