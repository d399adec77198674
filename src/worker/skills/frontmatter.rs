//! A SKILL.md's frontmatter, read the way OpenClaw 2026.9 reads it (its
//! `packages/markdown-core/src/frontmatter.ts` and `src/shared/frontmatter.ts`).
//!
//! The rules, point by point:
//! - A BOM is dropped and line ends become `\n`. The block opens with `---` on the first
//!   line and closes at the next line that is `---` (trailing blanks allowed). No opening
//!   line: no frontmatter at all (the skill then lacks a description). An opening line
//!   without a closing one is an error.
//! - The block is YAML (1.2 core schema). Every top-level value becomes a string: text is
//!   trimmed, numbers and booleans are written out, lists and maps become JSON, `null`s are
//!   dropped. A parse error on a top-level `description:` line (for example an unquoted
//!   `: ` in it) is repaired by quoting that line's value, up to three times; any other
//!   error makes the file invalid.
//! - A line-based reading (`key: value` at the start of a line, quotes stripped, an
//!   indented block below an empty value) fills in keys YAML left out (`name: ~` gives
//!   `~`), and replaces a list or map written inline after a key on a line that holds a
//!   second colon: `metadata: {"openclaw": …}` is taken as the raw text after `metadata:`.
//! - `metadata` is then parsed as JSON, else JSON5; its first object among `openclaw` and
//!   the legacy `clawdbot` is the manifest. Lists in the manifest are arrays (each entry
//!   written out as JavaScript would, trimmed, blanks dropped) or comma-separated strings.

use std::collections::BTreeMap;

use serde_json::Value;

/// The frontmatter: every key's value as text.
pub type Frontmatter = BTreeMap<String, String>;

/// What OpenClaw's `normalizeFrontmatterContent` does: no BOM, `\n` line ends.
fn normalize(content: &str) -> String {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    content.replace("\r\n", "\n").replace('\r', "\n")
}

/// JavaScript's whitespace, for `trim()`.
fn js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

pub fn js_trim(s: &str) -> &str {
    s.trim_matches(js_space)
}

/// `---` then blanks (not newlines) then a newline or the end.
fn is_delimiter_rest(rest: &str) -> bool {
    rest.chars().all(|c| c != '\n' && js_space(c))
}

/// The frontmatter block and the body, or `None` when the file has no frontmatter.
fn split(normalized: &str) -> Result<Option<(&str, &str)>, String> {
    let Some(first_end) = normalized.find('\n') else {
        return Ok(None);
    };
    let first = &normalized[..first_end];
    if !(first.starts_with("---") && is_delimiter_rest(&first[3..])) {
        return Ok(None);
    }
    let tail = &normalized[first_end + 1..];
    let mut offset = 0;
    for line in tail.split_inclusive('\n') {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        if bare.starts_with("---") && is_delimiter_rest(&bare[3..]) {
            return Ok(Some((&tail[..offset.max(1) - 1], &tail[offset + line.len()..])));
        }
        offset += line.len();
    }
    Err("invalid frontmatter: UNTERMINATED_FRONTMATTER: missing closing --- delimiter".into())
}

/// The markdown after the frontmatter (what the agent reads), trimmed.
pub fn body(content: &str) -> String {
    let normalized = normalize(content);
    match split(&normalized) {
        Ok(Some((_, body))) => js_trim(body).to_string(),
        _ => js_trim(&normalized).to_string(),
    }
}

/// `key: value` at the start of a line: `[A-Za-z0-9_-]+` then `:`.
fn line_key(line: &str) -> Option<(&str, &str)> {
    let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))?;
    if end == 0 || !line[end..].starts_with(':') {
        return None;
    }
    Some((&line[..end], &line[end + 1..]))
}

fn strip_quotes(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// OpenClaw's line-based reading (`parseLineFrontmatter`).
fn line_frontmatter(block: &str) -> Frontmatter {
    let lines: Vec<&str> = block.split('\n').collect();
    let mut out = Frontmatter::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some((key, raw)) = line_key(lines[i]) {
            let mut value = js_trim(raw).to_string();
            let next_indented = lines.get(i + 1).is_some_and(|l| l.starts_with([' ', '\t']));
            if value.is_empty() && next_indented {
                let mut block_lines = Vec::new();
                while let Some(l) = lines.get(i + 1) {
                    if !l.is_empty() && !l.starts_with([' ', '\t']) {
                        break;
                    }
                    block_lines.push(*l);
                    i += 1;
                }
                value = js_trim(&block_lines.join("\n")).to_string();
            } else {
                value = strip_quotes(&value).to_string();
            }
            if !value.is_empty() {
                out.insert(key.to_string(), value);
            }
        }
        i += 1;
    }
    out
}

/// A JavaScript number written out by `String(n)`.
fn js_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e21 { format!("{}", f as i128) } else { format!("{f}") }
}

/// JavaScript's `String(value)`.
pub fn js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => js_number(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            items.iter().map(|i| if i.is_null() { String::new() } else { js_string(i) }).collect::<Vec<_>>().join(",")
        }
        Value::Object(_) => "[object Object]".into(),
    }
}

/// YAML's result, or the 1-based line of its first error with the message.
fn yaml(block: &str) -> Result<Value, (Option<usize>, String)> {
    serde_saphyr::from_str_with_options::<Value>(block, serde_saphyr::options! { with_snippet: false })
        .map_err(|e| (e.location().map(|l| l.line() as usize), e.to_string()))
}

/// Keys OpenClaw's repair may quote, and whether the error had to be a `: ` in the value.
const FREEFORM: [&str; 3] = ["description", "read_when", "summary"];

/// Quotes the value on the error's line when it is a top-level free-text key
/// (`normalizeFreeformFieldAtError`); `None` when the line cannot be repaired.
fn repair(block: &str, line: usize) -> Option<String> {
    let mut lines: Vec<String> = block.split('\n').map(str::to_string).collect();
    let text = lines.get(line.checked_sub(1)?)?.clone();
    let (key, raw) = match line_key(&text) {
        Some((k, r)) => (k.to_string(), r.to_string()),
        None => {
            let quote = text.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let close = text[1..].find(quote)? + 1;
            let k = &text[1..close];
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return None;
            }
            (k.to_string(), text[close + 1..].strip_prefix(':')?.to_string())
        }
    };
    let value = js_trim(&raw);
    let block_scalar = {
        let mut c = value.chars();
        matches!(c.next(), Some('|' | '>'))
            && c.as_str().len() <= 2
            && c.all(|c| c.is_ascii_digit() || c == '+' || c == '-')
    };
    if value.is_empty() || !FREEFORM.contains(&key.as_str()) || block_scalar {
        return None;
    }
    if key != "description" && !value.contains(": ") {
        return None;
    }
    let quoted = serde_json::to_string(strip_quotes(value)).ok()?;
    lines[line - 1] = format!("{key}: {quoted}");
    Some(lines.join("\n"))
}

/// Keys whose line holds a second colon after `key:` (an inline list or map there is read
/// as the line's raw text).
fn inline_colon_keys(block: &str) -> Vec<&str> {
    block.split('\n').filter_map(line_key).filter(|(_, rest)| js_trim(rest).contains(':')).map(|(k, _)| k).collect()
}

/// Parses the frontmatter of a SKILL.md. `Ok(empty)` when there is none.
pub fn parse(content: &str) -> Result<Frontmatter, String> {
    let normalized = normalize(content);
    let Some((block, _)) = split(&normalized)? else {
        return Ok(Frontmatter::new());
    };
    if block.is_empty() {
        return Ok(Frontmatter::new());
    }
    let fallback = line_frontmatter(block);
    let mut text = block.to_string();
    let mut parsed = yaml(&text);
    for _ in 0..FREEFORM.len() {
        let Err((Some(line), _)) = &parsed else { break };
        let Some(next) = repair(&text, *line) else { break };
        text = next;
        parsed = yaml(&text);
    }
    let doc = match parsed {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("invalid frontmatter: INVALID_ROOT: frontmatter must be a YAML mapping".into()),
        Err((_, message)) => return Err(format!("invalid frontmatter: {message}")),
    };
    let inline = inline_colon_keys(&text);
    let mut out = Frontmatter::new();
    for (raw_key, value) in doc {
        let key = js_trim(&raw_key).to_string();
        if key.is_empty() {
            continue;
        }
        let text_value = match &value {
            Value::Null => continue,
            Value::String(s) => js_trim(s).to_string(),
            Value::Bool(_) | Value::Number(_) => js_string(&value),
            Value::Array(_) | Value::Object(_) => match fallback.get(&key) {
                Some(raw) if inline.contains(&key.as_str()) => raw.clone(),
                _ => value.to_string(),
            },
        };
        out.insert(key, text_value);
    }
    for (k, v) in fallback {
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

/// `metadata` parsed as OpenClaw parses it: JSON, else JSON5. `Err` says why OpenClaw
/// ignores it (then the skill has no manifest at all).
pub fn metadata(fm: &Frontmatter) -> Result<Option<Value>, String> {
    let Some(raw) = fm.get("metadata") else { return Ok(None) };
    if raw.is_empty() {
        return Ok(None);
    }
    let parsed = serde_json::from_str::<Value>(raw).or_else(|_| json5::from_str::<Value>(raw));
    match parsed {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => Ok(Some(v)),
        Ok(_) => Err("`metadata` is not an object".into()),
        Err(e) => Err(format!(
            "`metadata` is not JSON or JSON5 ({e}); OpenClaw ignores it. A map written after `metadata:` on the same line is read as JSON5: quote its strings, or write it as nested YAML below `metadata:`"
        )),
    }
}

/// The manifest: the first of `openclaw`, `clawdbot` that is an object (or list).
pub fn manifest(metadata: &Value) -> Option<&Value> {
    ["openclaw", "clawdbot"].iter().filter_map(|k| metadata.get(k)).find(|v| v.is_object() || v.is_array())
}

/// A manifest list: an array (entries written out, trimmed, blanks dropped) or a
/// comma-separated string.
pub fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => {
            items.iter().map(|i| js_trim(&js_string(i)).to_string()).filter(|s| !s.is_empty()).collect()
        }
        Some(Value::String(s)) => s.split(',').map(|p| js_trim(p).to_string()).filter(|p| !p.is_empty()).collect(),
        _ => Vec::new(),
    }
}

/// OpenClaw's `parseBooleanValue` for frontmatter flags.
pub fn flag(fm: &Frontmatter, key: &str, default: bool) -> bool {
    match fm.get(key).map(|v| js_trim(v).to_ascii_lowercase()).as_deref() {
        Some("true" | "yes" | "1" | "on" | "y") => true,
        Some("false" | "no" | "0" | "off" | "n") => false,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_text() {
        let fm = parse("---\nname: 007\ndescription: ' spaced '\nflag: true\nlist: [a, 1]\nempty:\n---\nbody").unwrap();
        assert_eq!(fm["name"], "7");
        assert_eq!(fm["description"], "spaced");
        assert_eq!(fm["flag"], "true");
        assert_eq!(fm["list"], r#"["a",1]"#);
        assert!(!fm.contains_key("empty"));
    }

    #[test]
    fn a_colon_in_the_description_is_repaired() {
        let fm = parse("---\nname: x\ndescription: Use it: now, or later\n---\n").unwrap();
        assert_eq!(fm["description"], "Use it: now, or later");
        assert!(parse("---\nname: x: y\ndescription: d\n---\n").is_err());
    }

    #[test]
    fn inline_maps_are_the_raw_text() {
        let fm = parse("---\nname: x\ndescription: d\nmetadata: {openclaw: {os: [linux]}}\n---\n").unwrap();
        assert_eq!(fm["metadata"], "{openclaw: {os: [linux]}}");
        assert!(metadata(&fm).is_err(), "JSON5 has no bare-word values");
        let fm = parse("---\nname: x\ndescription: d\nmetadata:\n  openclaw: {os: [linux]}\n---\n").unwrap();
        assert_eq!(manifest(&metadata(&fm).unwrap().unwrap()).unwrap()["os"], serde_json::json!(["linux"]));
    }

    #[test]
    fn the_line_reading_fills_in_nulls() {
        let fm = parse("---\nname: ~\ndescription: null\n---\n").unwrap();
        assert_eq!(fm["name"], "~");
        assert_eq!(fm["description"], "null");
    }

    #[test]
    fn delimiters_and_line_ends() {
        assert_eq!(parse("no frontmatter").unwrap().len(), 0);
        assert!(parse("---\nname: x\n").is_err());
        let fm = parse("\u{feff}---  \r\nname: x\r\ndescription: d\r\n---\t\r\nbody").unwrap();
        assert_eq!(fm["description"], "d");
        assert_eq!(body("---\nname: x\n---\n\n# Title\n"), "# Title");
        assert_eq!(parse("---\n---\n").unwrap().len(), 0);
    }

    #[test]
    fn lists_are_arrays_or_commas() {
        assert_eq!(list(Some(&serde_json::json!(" a , b,,"))), vec!["a", "b"]);
        assert_eq!(list(Some(&serde_json::json!([" x ", 1, null, true, ""]))), vec!["x", "1", "null", "true"]);
        assert_eq!(list(Some(&serde_json::json!({"a": 1}))), Vec::<String>::new());
    }

    #[test]
    fn the_manifest_skips_non_objects() {
        let m = serde_json::json!({"openclaw": null, "clawdbot": {"always": true}});
        assert_eq!(manifest(&m).unwrap()["always"], true);
    }
}
