//! What a request may carry: the limits the coordinator checks on a value — lengths,
//! ranges, characters, formats — each defined once, as a rule that both checks a value (the
//! coordinator's validators call it) and describes itself as JSON Schema (the OpenAPI
//! document shows that). Check and schema are built from the same constants and the same
//! character predicates (`char::is_whitespace`, `char::is_control`), and a property test
//! holds every schema to its check, so the document can neither allow what the server
//! refuses nor forbid what it takes.
//!
//! A wire type names a field's rule with a schema type (`#[schema(value_type = TaskName)]`):
//! a type that is never built, whose only job is to be the field's schema in the document.
//!
//! Invariants: every text the server trims is described with the white space it ignores
//! around it (so a schema pattern reads the same in ECMA-262, Python and Rust, where `$` may
//! match before a final newline); a length is counted in characters (Unicode scalar values),
//! as JSON Schema counts it.

use std::ops::RangeInclusive;
use std::sync::OnceLock;

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, Object, ObjectBuilder, Type};
use utoipa::openapi::{Ref, Schema};

/// Declares a schema type: a type that is never built, whose schema is the given one.
macro_rules! schema_type {
    ($($(#[$m:meta])* $name:ident => $schema:expr;)+) => {$(
        $(#[$m])*
        pub enum $name {}

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::Schema> {
                ::utoipa::openapi::Schema::from($schema).into()
            }
        }
        impl ::utoipa::ToSchema for $name {}
    )+};
}
pub(crate) use schema_type;

/// The most skills (or tags) a node may advertise, and a task may name in each list.
pub const MAX_SKILLS: usize = 1000;

/// Skill and tag names.
pub const SKILL_NAME: Name = Name::new(128);

/// The characters `str::trim` removes, as the body of a regex class.
fn white_space() -> &'static str {
    static CLASS: OnceLock<String> = OnceLock::new();
    CLASS.get_or_init(|| class_body(char::is_whitespace))
}

/// The control characters (`char::is_control`), as the body of a regex class.
fn control() -> &'static str {
    static CLASS: OnceLock<String> = OnceLock::new();
    CLASS.get_or_init(|| class_body(char::is_control))
}

/// The characters a predicate holds for, as `\uXXXX` ranges for a regex class: a form that
/// ECMA-262, Python and Rust read alike. Every such character is in the Basic Multilingual
/// Plane (a test checks it), where `\uXXXX` reaches.
fn class_body(holds: fn(char) -> bool) -> String {
    let mut out = String::new();
    let mut run: Option<(u32, u32)> = None;
    let flush = |run: (u32, u32), out: &mut String| {
        out.push_str(&format!("\\u{:04x}", run.0));
        if run.1 > run.0 {
            out.push_str(&format!("-\\u{:04x}", run.1));
        }
    };
    for c in (0..=0xFFFFu32).filter_map(char::from_u32) {
        let n = c as u32;
        match (holds(c), run) {
            (true, Some((start, end))) if end + 1 == n => run = Some((start, n)),
            (true, previous) => {
                if let Some(r) = previous {
                    flush(r, &mut out);
                }
                run = Some((n, n));
            }
            (false, _) => {}
        }
    }
    if let Some(r) = run {
        flush(r, &mut out);
    }
    out
}

/// `^` + white space + `core` + white space + `$`: a value the server trims before it reads
/// it.
pub fn trimmed_pattern(core: &str) -> String {
    let ws = white_space();
    format!("^[{ws}]*(?:{core})[{ws}]*$")
}

/// A `string` schema with a pattern and a description.
pub fn string(pattern: String, description: String) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some(pattern)).description(Some(description))
}

/// Adds `not: {pattern}` to a schema (utoipa has no builder for `not`; an extension map
/// filled directly is written as its keys are).
pub fn excluding(object: ObjectBuilder, pattern: String) -> Object {
    let mut object = object.build();
    let not = serde_json::json!({ "pattern": pattern });
    object.extensions = Some(Extensions::from_iter([("not", not)]));
    object
}

/// A name: the server keeps it with the white space around it trimmed (`str::trim`), and
/// that must be 1 to `max` characters without control characters (NUL, newlines, tabs and
/// the like; spaces inside are fine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    max: usize,
}

impl Name {
    pub const fn new(max: usize) -> Name {
        assert!(max > 0, "a name has at least one character");
        Name { max }
    }

    /// The most characters, once trimmed.
    pub const fn max(self) -> usize {
        self.max
    }

    /// The name as kept (trimmed), or why it is refused.
    pub fn check(self, value: &str) -> Result<String, String> {
        let v = value.trim();
        if v.is_empty() {
            return Err("must not be empty".into());
        }
        if v.chars().count() > self.max {
            return Err(format!("longer than {} characters", self.max));
        }
        if v.chars().any(char::is_control) {
            return Err("contains control characters".into());
        }
        Ok(v.to_string())
    }

    /// Blank (empty, or only white space) means absent (`None`); anything else is
    /// [`Name::check`]ed.
    pub fn check_or_blank(self, value: &str) -> Result<Option<String>, String> {
        if value.trim().is_empty() { Ok(None) } else { self.check(value).map(Some) }
    }

    /// What [`Name::check`] accepts, as a regex core: a first and a last character that are
    /// neither white space nor control, and between them at most `max - 2` characters that
    /// are not control characters.
    fn core(self) -> String {
        let (ws, ctl) = (white_space(), control());
        let edge = format!("[^{ctl}{ws}]");
        match self.max {
            1 => edge,
            max => format!("{edge}(?:[^{ctl}]{{0,{}}}{edge})?", max - 2),
        }
    }

    /// The schema of the values [`Name::check`] accepts.
    pub fn schema(self) -> Object {
        string(
            trimmed_pattern(&self.core()),
            format!("1 to {} characters without control characters; white space around it is ignored", self.max),
        )
        .build()
    }

    /// The schema of the values [`Name::check_or_blank`] accepts.
    pub fn schema_or_blank(self) -> Object {
        string(
            trimmed_pattern(&format!("(?:{})?", self.core())),
            format!(
                "Blank (absent), or 1 to {} characters without control characters; white space around it is ignored",
                self.max
            ),
        )
        .build()
    }
}

/// Free text kept as sent: at most `max` characters, and without NUL unless allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    max: usize,
    nul: bool,
}

impl Text {
    /// Text without NUL.
    pub const fn new(max: usize) -> Text {
        Text { max, nul: false }
    }

    /// Text of any characters, NUL included (what a process printed).
    pub const fn any(max: usize) -> Text {
        Text { max, nul: true }
    }

    pub const fn max(self) -> usize {
        self.max
    }

    /// Why the text is refused, if it is.
    pub fn check(self, value: &str) -> Result<(), String> {
        let chars = value.chars().count();
        if chars > self.max {
            return Err(format!("is {chars} characters, more than {}", self.max));
        }
        if !self.nul && value.contains('\0') {
            return Err("contains a NUL character".into());
        }
        Ok(())
    }

    /// The schema of the values [`Text::check`] accepts.
    pub fn schema(self) -> Object {
        let object = ObjectBuilder::new().schema_type(Type::String).max_length(Some(self.max));
        if self.nul {
            object.description(Some(format!("At most {} characters", self.max))).build()
        } else {
            object
                .pattern(Some("^[^\\u0000]*$"))
                .description(Some(format!("At most {} characters, without NUL", self.max)))
                .build()
        }
    }
}

/// A number's range, as a schema of that `kind` (`Type::Integer` or `Type::Number`).
pub fn bounded<N: Copy + Into<utoipa::Number>>(kind: Type, range: RangeInclusive<N>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(kind)
        .minimum(Some(*range.start()))
        .maximum(Some(*range.end()))
        .description(Some(description))
        .build()
}

/// A list of up to [`MAX_SKILLS`] names, at least `min`.
fn names(rule: Name, min: usize, description: &str) -> Schema {
    ArrayBuilder::new()
        .items(rule.schema())
        .min_items((min > 0).then_some(min))
        .max_items(Some(MAX_SKILLS))
        .description(Some(description))
        .build()
        .into()
}

/// A string enum's names as a request may send them: `FromStr` of the `string_enum!` types
/// ignores case and the white space around the name.
pub trait WireNames: utoipa::ToSchema + Copy + 'static {
    /// Every value, in declaration order.
    fn all() -> &'static [Self];
    /// The canonical wire name.
    fn wire(self) -> &'static str;
}

/// The pattern of a `string_enum!` type's names in any case, with white space around.
pub fn lenient_pattern<T: WireNames>() -> String {
    let alternatives: Vec<String> = T::all()
        .iter()
        .map(|v| {
            v.wire()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                    } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c.to_string()
                    } else {
                        format!("\\u{:04x}", c as u32)
                    }
                })
                .collect()
        })
        .collect();
    trimmed_pattern(&alternatives.join("|"))
}

/// The schema of a `string_enum!` type in a request: one of its names (the component that
/// answers use), or the same in any case with white space around it.
pub fn lenient<T: WireNames>() -> Schema {
    let names: Vec<&str> = T::all().iter().map(|v| v.wire()).collect();
    AnyOfBuilder::new()
        .item(Ref::from_schema_name(T::name()))
        .item(string(
            lenient_pattern::<T>(),
            format!("{} in any case; white space around it is ignored", names.join(", ")),
        ))
        .build()
        .into()
}

schema_type! {
    /// Skill or tag names, at most [`MAX_SKILLS`].
    SkillNames => names(SKILL_NAME, 0, "Skill or tag names (duplicates are dropped)");
    /// One skill name or more, at most [`MAX_SKILLS`].
    RequiredSkills => names(SKILL_NAME, 1, "One skill or more (duplicates are dropped); the first one runs");
}

/// Reads a struct only from a JSON object: serde's derive also reads one from an array of
/// its fields in order, which the document (and so the API) does not allow.
pub struct MapOnly<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData)).map(MapOnly)
    }
}

/// `deserialize_with` for a struct: a JSON object only.
pub fn object<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(<MapOnly<T> as serde::Deserialize>::deserialize(d)?.0)
}

/// `deserialize_with` for an `Option` of a struct: null, absent or a JSON object.
pub fn optional_object<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(<Option<MapOnly<T>> as serde::Deserialize>::deserialize(d)?.map(|m| m.0))
}

/// `deserialize_with` for a list of structs: an array of JSON objects.
pub fn objects<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(<Vec<MapOnly<T>> as serde::Deserialize>::deserialize(d)?.into_iter().map(|m| m.0).collect())
}

/// `deserialize_with` for an optional list of structs: null, absent or an array of JSON
/// objects.
pub fn optional_objects<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Ok(<Option<Vec<MapOnly<T>>> as serde::Deserialize>::deserialize(d)?.map(|v| v.into_iter().map(|m| m.0).collect()))
}

/// Rewrites every number with no fraction (`5.0`, `1e2`) as an integer, when it fits one;
/// returns whether any was. JSON Schema counts `5.0` as the integer 5, and so does the API:
/// a request whose integer fields serde refused is read again after this.
pub fn integral_numbers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else { return false };
            let whole = if f.fract() != 0.0 {
                None
            } else if f >= 0.0 && f <= u64::MAX as f64 && f < 18_446_744_073_709_551_616.0 {
                Some(serde_json::Number::from(f as u64))
            } else if f < 0.0 && f >= i64::MIN as f64 {
                Some(serde_json::Number::from(f as i64))
            } else {
                None
            };
            match whole {
                Some(w) => {
                    *n = w;
                    true
                }
                None => false,
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |any, v| integral_numbers(v) | any),
        serde_json::Value::Object(map) => map.values_mut().fold(false, |any, v| integral_numbers(v) | any),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Each schema against its check: strings drawn from the characters that matter (white
    //! space, controls, NUL, letters, digits, dots, far Unicode) are accepted by the check
    //! exactly when they match the schema, read by a small evaluator of the keywords these
    //! schemas use (`regex` reads the patterns as Rust does; Python's reading is the API
    //! fuzzer's, in tests/it/contract.rs).

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// Whether a JSON value is valid against a schema of the keywords emitted here.
    pub fn valid(schema: &Value, value: &Value) -> bool {
        let Some(s) = schema.as_object() else { return true };
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let kind = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            if !types.iter().any(|t| *t == kind || (*t == "number" && kind == "integer")) {
                return false;
            }
        }
        if let Value::String(text) = value {
            let chars = text.chars().count() as u64;
            if s.get("maxLength").and_then(Value::as_u64).is_some_and(|m| chars > m)
                || s.get("minLength").and_then(Value::as_u64).is_some_and(|m| chars < m)
            {
                return false;
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                let re = regex::Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}"));
                if !re.is_match(text) {
                    return false;
                }
            }
        }
        if let Some(n) = value.as_f64()
            && (s.get("minimum").and_then(Value::as_f64).is_some_and(|m| n < m)
                || s.get("maximum").and_then(Value::as_f64).is_some_and(|m| n > m))
        {
            return false;
        }
        if let Some(not) = s.get("not")
            && valid(not, value)
        {
            return false;
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(|b| valid(b, value))
        {
            return false;
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.contains(value)
        {
            return false;
        }
        true
    }

    /// Strings of the characters that decide these rules.
    pub fn text() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            4 => prop::sample::select(vec!['a', 'Z', '0', '9', '.', '_', '-', ' ', 'é', '😀', '\u{ffff}']),
            2 => prop::sample::select(vec!['\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{2028}', '\u{3000}', '\u{feff}']),
            1 => prop::sample::select(vec!['\0', '\u{1}', '\u{1f}', '\u{7f}', '\u{9f}']),
            1 => any::<char>(),
        ];
        prop::collection::vec(c, 0..12).prop_map(|v| v.into_iter().collect())
    }

    /// Strings near the given words: a word with its letters' case flipped at random, white
    /// space or junk around it; or anything from [`text`].
    pub fn near(words: Vec<String>) -> impl Strategy<Value = String> {
        let ws = prop::sample::select(vec!["", " ", "\t", "\n", "\u{a0}", "\u{3000}", "\0", "x", "."]);
        let word = (prop::sample::select(words), any::<u64>(), ws.clone(), ws).prop_map(|(w, flips, before, after)| {
            let w: String = w
                .chars()
                .enumerate()
                .map(|(i, c)| if flips >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
                .collect();
            format!("{before}{w}{after}")
        });
        prop_oneof![3 => word, 1 => text()]
    }

    pub fn schema_json(o: impl Into<Schema>) -> Value {
        serde_json::to_value(o.into()).unwrap()
    }

    /// The pattern of a type's names in any case, against its `FromStr`.
    fn lenient_matches_from_str<T: WireNames + std::str::FromStr>(s: &str) -> Result<(), TestCaseError> {
        let schema = serde_json::json!({ "type": "string", "pattern": lenient_pattern::<T>() });
        prop_assert_eq!(s.parse::<T>().is_ok(), valid(&schema, &Value::String(s.into())), "{} {:?}", T::name(), s);
        Ok(())
    }

    fn words<T: WireNames>() -> Vec<String> {
        T::all().iter().map(|v| v.wire().to_string()).collect()
    }

    #[test]
    fn structs_are_read_from_objects_only_and_integers_may_be_written_as_floats() {
        use crate::model::{PollRequest, SubmitTask};
        let body = r#"{"name": "t", "required_skills": ["s"], "target": [null, null]}"#;
        let e = serde_json::from_str::<SubmitTask>(body).unwrap_err().to_string();
        assert!(e.contains("expected a JSON object"), "{e}");
        let e = serde_json::from_str::<PollRequest>(r#"{"held": [["t1", 1]]}"#).unwrap_err().to_string();
        assert!(e.contains("expected a JSON object"), "{e}");
        assert!(serde_json::from_str::<MapOnly<PollRequest>>("[[], 5]").is_err());
        assert_eq!(serde_json::from_str::<MapOnly<PollRequest>>(r#"{"held": []}"#).unwrap().0.held, vec![]);

        let mut v: Value = serde_json::from_str(r#"{"a": 356.0, "b": [1e2, -3.0, 1.5, 7], "c": 1e300}"#).unwrap();
        assert!(integral_numbers(&mut v));
        assert_eq!(v, serde_json::json!({"a": 356, "b": [100, -3, 1.5, 7], "c": 1e300}));
        assert!(!integral_numbers(&mut v));
    }

    #[test]
    fn the_classes_are_in_the_basic_plane() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            if c.is_whitespace() || c.is_control() {
                assert!((c as u32) <= 0xFFFF, "{c:?}");
            }
        }
        assert!(white_space().starts_with("\\u0009-\\u000d\\u0020"), "{}", white_space());
        assert_eq!(control(), "\\u0000-\\u001f\\u007f-\\u009f");
    }

    #[test]
    fn edges_of_names() {
        let name = Name::new(3);
        let schema = schema_json(name.schema());
        for (text, ok) in [
            ("", false),
            ("  ", false),
            ("a", true),
            (" a\n", true),
            ("abc", true),
            ("\u{a0}abc\u{3000}", true),
            ("abcd", false),
            ("a b", true),
            ("a\tb", false),
            ("a\0", false),
            ("\u{85}x", true),
        ] {
            assert_eq!(name.check(text).is_ok(), ok, "check {text:?}");
            assert_eq!(valid(&schema, &Value::String(text.into())), ok, "schema {text:?}");
        }
    }

    proptest! {
        #[test]
        fn names_match_their_schema(s in text(), max in 1usize..6) {
            let name = Name::new(max);
            let v = Value::String(s.clone());
            prop_assert_eq!(name.check(&s).is_ok(), valid(&schema_json(name.schema()), &v), "{:?}", s);
            prop_assert_eq!(name.check_or_blank(&s).is_ok(), valid(&schema_json(name.schema_or_blank()), &v), "{:?}", s);
        }

        #[test]
        fn enum_names_in_requests_match_their_schema(
            a in near(words::<crate::model::TaskStatus>()),
            b in near(words::<crate::model::NodeStatus>()),
            c in near(words::<crate::model::Priority>()),
            d in near(words::<crate::model::TaskType>()),
            e in near(words::<crate::model::EventKind>()),
            f in near(words::<crate::model::OutputStream>()),
        ) {
            lenient_matches_from_str::<crate::model::TaskStatus>(&a)?;
            lenient_matches_from_str::<crate::model::NodeStatus>(&b)?;
            lenient_matches_from_str::<crate::model::Priority>(&c)?;
            lenient_matches_from_str::<crate::model::TaskType>(&d)?;
            lenient_matches_from_str::<crate::model::EventKind>(&e)?;
            lenient_matches_from_str::<crate::model::OutputStream>(&f)?;
        }

        #[test]
        fn texts_match_their_schema(s in text(), max in 0usize..8) {
            for t in [Text::new(max), Text::any(max)] {
                prop_assert_eq!(t.check(&s).is_ok(), valid(&schema_json(t.schema()), &Value::String(s.clone())), "{:?}", s);
            }
        }
    }
}
