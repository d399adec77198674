//! Workflows on the wire: a small DAG of steps, each one task (or a fan-out to every node),
//! with `needs:` between them and `${{ steps.NAME.result }}` references to earlier results.
//!
//! A workflow is checked as a whole before anything is stored ([`Workflow::check`]): step
//! names, `needs` that name steps, no cycle, references only to steps it needs (directly or
//! through others). Each problem names where it is as a path (`steps.summarize.needs[0]`);
//! `openclaw run` turns that path into `FILE:LINE`. The coordinator then submits it as linked
//! tasks: one workflow task whose children are the steps, each step depending on the steps
//! it needs — so fencing, retries and events are those of any task.
//!
//! A reference is replaced when the step is handed to a worker: a string that is exactly
//! one reference becomes the referenced value (any JSON), a reference inside a longer string
//! becomes its text.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::limits::SKILL_NAME;
use super::schedule::{ScheduleName, check_name};
use super::{OnParentFailure, Priority, TASK_NAME, Target};

/// The most steps of a workflow.
pub const MAX_STEPS: usize = 100;

/// A workflow: its name and its steps by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// The workflow task's name.
    #[schema(value_type = crate::model::TaskName)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(value_type = crate::model::TaskDescription)]
    pub description: String,
    /// The steps, by name (1 to 100).
    #[schema(value_type = BTreeMap<ScheduleName, Step>)]
    pub steps: BTreeMap<String, Step>,
}

/// One step: a task of one skill, or one per matching online node (`each_node`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The skill that runs.
    #[schema(value_type = String)]
    pub skill: String,
    /// The task's parameters (a JSON object); strings may hold `${{ steps.NAME.result }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<Value>,
    /// The prompt of an agent skill (sets `params.prompt`); may hold references too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Steps that must end first (their results reach this one as `inputs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<ScheduleName>)]
    pub needs: Vec<String>,
    /// Run once on every matching online node (when the step starts; later nodes are not
    /// added).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub each_node: bool,
    /// Where it may run (node, platform, tags).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "super::limits::optional_object")]
    pub target: Option<Target>,
    /// Per-attempt time limit, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::model::TaskTimeout>)]
    pub timeout: Option<f64>,
    /// How many failed attempts are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::model::MaxRetries>)]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// When a step it needs fails: cancel (default) or run anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_parent_failure: Option<OnParentFailure>,
}

/// Where a workflow is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `steps.summarize.needs[0]`, `name`, `steps`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A reference to an earlier result: `${{ steps.NAME.result }}` or
/// `${{ steps.NAME.result.a.b }}` (a path into a JSON result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub step: String,
    pub path: Vec<String>,
}

/// The references in a string, or what is wrong with one of them.
pub fn references(text: &str) -> Result<Vec<Reference>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let end = after.find("}}").ok_or_else(|| "`${{` without a closing `}}`".to_string())?;
        out.push(parse_reference(after[..end].trim())?);
        rest = &after[end + 2..];
    }
    Ok(out)
}

fn parse_reference(inner: &str) -> Result<Reference, String> {
    let parts: Vec<&str> = inner.split('.').map(str::trim).collect();
    match parts.as_slice() {
        ["steps", step, "result", path @ ..] if !step.is_empty() && path.iter().all(|p| !p.is_empty()) => {
            Ok(Reference { step: step.to_string(), path: path.iter().map(|p| p.to_string()).collect() })
        }
        _ => Err(format!(
            "`${{{{ {inner} }}}}` is not a reference: write ${{{{ steps.NAME.result }}}} (or steps.NAME.result.FIELD)"
        )),
    }
}

/// Every string inside a JSON value, with its path below `base` (`params.text`).
fn strings<'a>(value: &'a Value, base: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(s) => out.push((base, s)),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                strings(v, format!("{base}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                strings(v, format!("{base}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Replaces the references in a JSON value with the results they name (`results`: by step
/// name). A string that is exactly one reference becomes the value itself; a reference in a
/// longer string becomes its text (a string as it is, anything else as JSON). A reference
/// to a missing result or field becomes null (or `null` in text).
pub fn substitute(value: &Value, results: &BTreeMap<String, Value>) -> Value {
    let lookup = |r: &Reference| {
        let mut v = results.get(&r.step).unwrap_or(&Value::Null);
        for key in &r.path {
            v = match v {
                Value::Object(m) => m.get(key).unwrap_or(&Value::Null),
                Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)).unwrap_or(&Value::Null),
                _ => &Value::Null,
            };
        }
        v.clone()
    };
    match value {
        Value::String(s) if s.contains("${{") => {
            let trimmed = s.trim();
            if trimmed.starts_with("${{")
                && trimmed.ends_with("}}")
                && trimmed.matches("${{").count() == 1
                && let Ok(refs) = references(trimmed)
                && let [only] = refs.as_slice()
            {
                return lookup(only);
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${{") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 3..];
                let Some(end) = after.find("}}") else {
                    out.push_str(&rest[start..]);
                    rest = "";
                    break;
                };
                match parse_reference(after[..end].trim()) {
                    Ok(r) => match lookup(&r) {
                        Value::String(text) => out.push_str(&text),
                        other => out.push_str(&other.to_string()),
                    },
                    Err(_) => out.push_str(&rest[start..start + 3 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, results)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute(v, results))).collect()),
        other => other.clone(),
    }
}

impl Step {
    /// The step's parameters with its prompt in them (`params.prompt`), as its task gets
    /// them (references still in place).
    pub fn parameters(&self) -> Value {
        let mut params = match &self.params {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        if let Some(p) = &self.prompt {
            params.insert("prompt".into(), Value::String(p.clone()));
        }
        Value::Object(params)
    }
}

impl Workflow {
    /// Everything wrong with the workflow (empty: it can be submitted), in a stable order.
    pub fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: String| problems.push(Problem { path, message });
        if let Err(e) = TASK_NAME.check(&self.name) {
            problem("name".into(), e);
        }
        if self.steps.is_empty() {
            problem("steps".into(), "a workflow needs at least one step".into());
        }
        if self.steps.len() > MAX_STEPS {
            problem("steps".into(), format!("at most {MAX_STEPS} steps, got {}", self.steps.len()));
        }
        let names: Vec<&str> = self.steps.keys().map(String::as_str).collect();
        for (name, step) in &self.steps {
            let at = format!("steps.{name}");
            if let Err(e) = check_name(name) {
                problem(at.clone(), format!("step name {e}"));
            }
            if let Err(e) = SKILL_NAME.check(&step.skill) {
                problem(format!("{at}.skill"), e);
            }
            if step.params.as_ref().is_some_and(|p| !p.is_object() && !p.is_null()) {
                problem(format!("{at}.params"), "must be a mapping (an object) of parameters".into());
            }
            for (i, need) in step.needs.iter().enumerate() {
                if need == name {
                    problem(format!("{at}.needs[{i}]"), format!("step `{name}` cannot need itself"));
                } else if !self.steps.contains_key(need) {
                    let hint = crate::util::closest(need, names.iter().copied())
                        .map(|n| format!(" — did you mean `{n}`?"))
                        .unwrap_or_default();
                    problem(
                        format!("{at}.needs[{i}]"),
                        format!("no step `{need}`{hint} (the steps are {})", names.join(", ")),
                    );
                }
            }
        }
        if let Some(cycle) = self.cycle() {
            let first = cycle[0].clone();
            problem(format!("steps.{first}.needs"), format!("the steps' needs form a cycle: {}", cycle.join(" → ")));
        } else {
            for (name, step) in &self.steps {
                let ancestors = self.ancestors(name);
                let mut texts = Vec::new();
                if let Some(p) = &step.params {
                    strings(p, format!("steps.{name}.params"), &mut texts);
                }
                if let Some(p) = &step.prompt {
                    texts.push((format!("steps.{name}.prompt"), p));
                }
                for (path, text) in texts {
                    match references(text) {
                        Err(e) => problem(path, e),
                        Ok(refs) => {
                            for r in refs {
                                if !self.steps.contains_key(&r.step) {
                                    problem(
                                        path.clone(),
                                        format!("refers to steps.{}, and there is no such step", r.step),
                                    );
                                } else if !ancestors.contains(r.step.as_str()) {
                                    problem(
                                        path.clone(),
                                        format!(
                                            "refers to steps.{} but step `{name}` does not need it: add `{}` to its needs",
                                            r.step, r.step
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        problems
    }

    /// A cycle of needs, as the step names along it (the first repeated at the end).
    fn cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut marks: BTreeMap<&str, Mark> = self.steps.keys().map(|k| (k.as_str(), Mark::New)).collect();
        fn visit<'a>(
            w: &'a Workflow,
            name: &'a str,
            marks: &mut BTreeMap<&'a str, Mark>,
            trail: &mut Vec<&'a str>,
        ) -> Option<Vec<String>> {
            match marks.get(name) {
                Some(Mark::Done) | None => return None,
                Some(Mark::Open) => {
                    let from = trail.iter().position(|n| *n == name).unwrap_or(0);
                    let mut cycle: Vec<String> = trail[from..].iter().map(|s| s.to_string()).collect();
                    cycle.push(name.to_string());
                    return Some(cycle);
                }
                Some(Mark::New) => {}
            }
            marks.insert(name, Mark::Open);
            trail.push(name);
            for need in w.steps.get(name).map(|s| s.needs.as_slice()).unwrap_or_default() {
                if let Some(c) = visit(w, need, marks, trail) {
                    return Some(c);
                }
            }
            trail.pop();
            marks.insert(name, Mark::Done);
            None
        }
        for name in self.steps.keys() {
            if let Some(c) = visit(self, name, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
        None
    }

    /// Every step `name` needs, directly or through others.
    pub fn ancestors(&self, name: &str) -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> =
            self.steps.get(name).map(|s| s.needs.iter().map(String::as_str).collect()).unwrap_or_default();
        while let Some(n) = todo.pop() {
            if seen.insert(n)
                && let Some(s) = self.steps.get(n)
            {
                todo.extend(s.needs.iter().map(String::as_str));
            }
        }
        seen
    }

    /// The steps in an order where each comes after the steps it needs (ties by name). Only
    /// for a workflow without problems.
    pub fn order(&self) -> Vec<&str> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::with_capacity(self.steps.len());
        while out.len() < self.steps.len() {
            let before = out.len();
            for (name, step) in &self.steps {
                if !done.contains(name.as_str()) && step.needs.iter().all(|n| done.contains(n.as_str())) {
                    out.push(name.as_str());
                }
            }
            for n in &out[before..] {
                done.insert(n);
            }
            if out.len() == before {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn morning() -> Workflow {
        serde_json::from_value(json!({
            "name": "morning",
            "steps": {
                "fetch": {"skill": "fetch-mail", "params": {"folder": "inbox"}},
                "summarize": {"skill": "summarize", "needs": ["fetch"], "params": {"text": "${{ steps.fetch.result }}"}},
                "report": {"skill": "disk-report", "each_node": true}
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_morning_example_is_valid_and_ordered() {
        let w = morning();
        assert_eq!(w.check(), vec![]);
        assert_eq!(w.order(), vec!["fetch", "report", "summarize"]);
    }

    #[test]
    fn unknown_needs_cycles_and_stray_references_are_named() {
        let mut w = morning();
        w.steps.get_mut("summarize").unwrap().needs = vec!["fecth".into()];
        let p = w.check();
        assert_eq!(p[0].path, "steps.summarize.needs[0]");
        assert!(p[0].message.contains("no step `fecth`") && p[0].message.contains("did you mean `fetch`"), "{p:?}");
        assert!(
            p.iter().any(|p| p.path == "steps.summarize.params.text" && p.message.contains("add `fetch`")),
            "{p:?}"
        );

        let mut w = morning();
        w.steps.get_mut("fetch").unwrap().needs = vec!["summarize".into()];
        let p = w.check();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].message, "the steps' needs form a cycle: fetch → summarize → fetch");

        let mut w = morning();
        w.steps.get_mut("report").unwrap().prompt = Some("${{ steps.nope.result }} and ${{ env.HOME }}".into());
        let p = w.check();
        assert!(p[0].path == "steps.report.prompt" && p[0].message.contains("not a reference"), "{p:?}");
    }

    #[test]
    fn references_are_replaced_by_value_or_text() {
        let results: BTreeMap<String, Value> =
            [("fetch".to_string(), json!({"count": 3, "mails": ["a", "b"]}))].into_iter().collect();
        let params = json!({
            "whole": "${{ steps.fetch.result }}",
            "field": " ${{steps.fetch.result.count}} ",
            "text": "got ${{ steps.fetch.result.count }} mails: ${{ steps.fetch.result.mails.1 }}",
            "missing": "${{ steps.other.result }}",
            "plain": "no refs", "n": 5
        });
        assert_eq!(
            substitute(&params, &results),
            json!({
                "whole": {"count": 3, "mails": ["a", "b"]},
                "field": 3,
                "text": "got 3 mails: b",
                "missing": null,
                "plain": "no refs", "n": 5
            })
        );
    }
}
