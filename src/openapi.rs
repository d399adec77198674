//! The OpenAPI 3.1 document of the HTTP API, built from the route table
//! ([`crate::api::TABLE`]) and the wire types ([`crate::model`]) and from nothing else:
//! component schemas are derived by utoipa from the serde types (hand-written beside a
//! hand-written serde impl), each row of the table says what its endpoint takes and
//! answers, and each error code says its status ([`ErrorCode::status`]). Served at
//! `GET /openapi.json`, kept in `docs/openapi.json`, and the endpoint table of `docs/api.md`
//! is rendered from it (tests keep both files current and check real answers against the
//! document).
//!
//! Invariants: one operation per row of the table, none elsewhere; each operation lists
//! every status it answers — its success answers, then the error statuses of the codes
//! that every endpoint of its access and body can answer ([`Endpoint::error_codes`]) plus
//! its row's own — and each error answer's schema narrows `code` to the codes of that
//! status. This module imports no server code: the server serves what it builds.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AllOfBuilder, ComponentsBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr,
    Required, ResponseBuilder, Schema,
};

use crate::api::{Access, Answer, Body, Components, Endpoint, LINKS, Link, TABLE, json};
use crate::model::{ErrorBody, ErrorCode};

/// The short name of an access level, as the `x-access` extension of each operation says it.
fn access_name(a: Access) -> &'static str {
    match a {
        Access::Open => "open",
        Access::Join => "join",
        Access::Node => "node",
        Access::Read => "read",
        Access::Submit => "submit",
        Access::Admin => "admin",
    }
}

/// The group an endpoint is listed under.
fn tag(e: &Endpoint) -> &'static str {
    if e.access == Access::Node {
        return "worker";
    }
    match e.path.strip_prefix("/api/v1/").map(|p| p.split('/').next().unwrap_or("")) {
        Some("nodes") => "nodes",
        Some("tasks") => "tasks",
        Some("cluster") | Some("whoami") => "cluster",
        _ if e.access == Access::Open && e.name != "health" && e.name != "openapi" => "dashboard",
        _ => "service",
    }
}

const TAGS: &[(&str, &str)] = &[
    ("service", "The coordinator itself"),
    ("cluster", "The cluster as a whole"),
    ("nodes", "Cluster nodes: list, inspect, drain, forget"),
    ("tasks", "Submit, list, inspect, wait for and cancel tasks"),
    ("worker", "The worker protocol: what `openclaw worker` sends, with its node secret"),
    ("dashboard", "The web dashboard's page and assets"),
];

fn method(m: &reqwest::Method) -> HttpMethod {
    match *m {
        reqwest::Method::POST => HttpMethod::Post,
        reqwest::Method::PUT => HttpMethod::Put,
        reqwest::Method::DELETE => HttpMethod::Delete,
        reqwest::Method::PATCH => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

fn text_schema() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// A path parameter's schema: a secret's name has its rule (the server refuses others);
/// ids and names that may be anything are text (an unknown one is a 404).
fn path_schema(name: &str) -> RefOr<Schema> {
    use utoipa::PartialSchema;
    match name {
        "name" => crate::model::SecretName::schema(),
        _ => text_schema(),
    }
}

/// One event of a Server-Sent Events answer, as OpenAPI 3.1 describes a stream (the schema
/// of each event): its name, its `id`, and its `data`, one line of JSON of the schema that
/// event's name says.
fn stream_event(events: &[(&str, crate::api::SchemaFn)], c: &mut Components) -> RefOr<Schema> {
    let mut one_of = utoipa::openapi::schema::OneOfBuilder::new();
    for (name, data) in events {
        one_of = one_of.item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([*name])))
                .required("event")
                .property("id", ObjectBuilder::new().schema_type(Type::String))
                .property(
                    "data",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/json")
                        .content_schema(Some(data(c))),
                )
                .required("data"),
        );
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
    let one_of = one_of
        .description(Some(format!(
            "Server-Sent Events `{}`; each event's `data:` is one line of JSON of the schema its name says",
            names.join("`, `")
        )))
        .build();
    RefOr::T(Schema::OneOf(one_of))
}

/// The error answer of one status: the `ErrorBody` with `code` narrowed to these codes.
fn error_response(codes: &[ErrorCode], c: &mut Components) -> utoipa::openapi::Response {
    let body = json::<ErrorBody>(c);
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    // A refinement of ErrorBody, not a shape of its own: no `type`, so it closes nothing.
    let refine = || ObjectBuilder::new().schema_type(SchemaType::AnyValue);
    let narrowed = refine().property(
        "error",
        refine().property("code", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names))),
    );
    let schema = AllOfBuilder::new().item(body).item(narrowed);
    let description: Vec<String> = codes.iter().map(|c| format!("`{c}`: {}", c.meaning())).collect();
    ResponseBuilder::new()
        .description(description.join("; "))
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

fn operation(e: &Endpoint, c: &mut Components) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(e.name))
        .summary(Some(e.summary))
        .description(Some(format!("Who may call: {}.", e.access)))
        .tag(tag(e))
        .extensions(Some(ExtensionsBuilder::new().add("x-access", access_name(e.access)).build()));
    for name in e.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(path_schema(name))),
        );
    }
    if let Some(query) = e.query {
        for mut p in query() {
            if let Some(schema) = p.schema.as_mut() {
                bound_integers(schema);
            }
            op = op.parameter(p);
        }
    }
    let (schema, required) = match e.body {
        Body::None => (None, Required::False),
        Body::Json(f) => (Some(f(c)), Required::True),
        Body::Optional(f) => (Some(f(c)), Required::False),
    };
    if let Some(schema) = schema {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
                .required(Some(required))
                .build(),
        ));
    }
    // Answers of one status (JSON, or a stream when asked to follow) share one response.
    let mut statuses: Vec<u16> = e.ok.iter().map(|(s, _)| *s).collect();
    statuses.dedup();
    for status in statuses {
        let description = match status {
            201 => "Created",
            202 => "Accepted",
            _ => "OK",
        };
        let mut response = ResponseBuilder::new().description(description);
        for (_, answer) in e.ok.iter().filter(|(s, _)| *s == status) {
            response = match answer {
                Answer::Json(f) => {
                    response.content("application/json", ContentBuilder::new().schema(Some(f(c))).build())
                }
                Answer::Media(types) => types
                    .iter()
                    .fold(response, |r, t| r.content(*t, ContentBuilder::new().schema(Some(text_schema())).build())),
                Answer::Redirect(to) => response.description(format!("Redirects to `{to}`")).header(
                    "Location",
                    HeaderBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build(),
                ),
                Answer::Stream(events) => response
                    .content("text/event-stream", ContentBuilder::new().schema(Some(stream_event(events, c))).build()),
            };
        }
        for link in LINKS.iter().filter(|l| l.from == e.name && l.status == status) {
            response = response.link(link.to, document_link(link));
        }
        op = op.response(status.to_string(), response.build());
    }
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in e.error_codes() {
        let codes = by_status.entry(code.status()).or_default();
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    for (status, codes) in by_status {
        op = op.response(status.to_string(), error_response(&codes, c));
    }
    for scheme in security(e.access) {
        op = op.security(SecurityRequirement::new(*scheme, Vec::<String>::new()));
    }
    op.build()
}

/// The security schemes that may call an endpoint (any one of them).
fn security(access: Access) -> &'static [&'static str] {
    match access {
        Access::Open => &[],
        Access::Node => &["nodeSecret"],
        Access::Join => &["bearer", "nodeSecret"],
        Access::Read | Access::Submit | Access::Admin => &["bearer"],
    }
}

/// A link of the table as the document writes it.
fn document_link(link: &Link) -> utoipa::openapi::link::Link {
    let mut builder = utoipa::openapi::link::LinkBuilder::new().operation_id(link.to);
    for (name, expression) in link.parameters {
        builder = builder.parameter(*name, *expression);
    }
    if let Some(body) = link.body {
        builder = builder.request_body(Some(body()));
    }
    builder.build()
}

/// The document, built from the table.
pub fn document() -> OpenApi {
    let mut components = Components::new();
    let mut paths = PathsBuilder::new().build();
    for e in TABLE {
        let op = operation(e, &mut components);
        paths.add_path_operation(e.path, vec![method(&e.method)], op);
    }
    for (_, schema) in components.iter_mut() {
        bound_integers(schema);
    }
    let mut schemas = ComponentsBuilder::new().schemas_from_iter(components);
    schemas = schemas
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin, tasks or join token: see docs/api.md"))
                    .build(),
            ),
        )
        .security_scheme(
            "nodeSecret",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A node's secret, from its registration's answer (`node_secret`): for that node's own endpoints",
                    ))
                    .build(),
            ),
        );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("openclaw coordinator API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The HTTP API of the openclaw coordinator. Every GET also answers HEAD; a known path \
                     with another method is a 405 `method_not_allowed` with `Allow`; an unknown path a 404 \
                     `not_found`. Semantics (placement, retries, idempotency, the worker protocol) are in \
                     docs/api.md.",
                ))
                .license(Some(LicenseBuilder::new().name("MIT").identifier(Some("MIT")).build()))
                .build(),
        )
        .paths(paths)
        .components(Some(schemas.build()))
        .tags(Some(TAGS.iter().map(|(name, what)| TagBuilder::new().name(*name).description(Some(*what)).build())))
        .build()
}

/// The document as served: pretty JSON with a final newline, built once.
pub fn text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text = document().to_pretty_json().expect("the document is plain data");
        text.push('\n');
        text
    })
}

/// utoipa writes an unsigned field's Rust type as its `format` (`u-int32`); each becomes the
/// format registry's name (`uint32`) with the range that type holds, so that what the
/// document allows is what serde takes.
fn bound_integers(schema: &mut RefOr<Schema>) {
    use utoipa::openapi::schema::{AdditionalProperties, ArrayItems, KnownFormat, SchemaFormat};
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(o) => {
            let bits = match &o.format {
                Some(SchemaFormat::KnownFormat(KnownFormat::UInt8)) => Some(8),
                Some(SchemaFormat::KnownFormat(KnownFormat::UInt16)) => Some(16),
                Some(SchemaFormat::KnownFormat(KnownFormat::UInt32)) => Some(32),
                Some(SchemaFormat::KnownFormat(KnownFormat::UInt64)) => Some(64),
                _ => None,
            };
            if let Some(bits) = bits {
                o.format = Some(SchemaFormat::Custom(format!("uint{bits}")));
                o.minimum = Some(0usize.into());
                o.maximum = usize::try_from(u64::MAX >> (64 - bits)).ok().map(Into::into);
            }
            o.properties.values_mut().for_each(bound_integers);
            if let Some(extra) = o.additional_properties.as_deref_mut()
                && let AdditionalProperties::RefOr(extra) = extra
            {
                bound_integers(extra);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                bound_integers(items);
            }
        }
        Schema::OneOf(x) => x.items.iter_mut().for_each(bound_integers),
        Schema::AllOf(x) => x.items.iter_mut().for_each(bound_integers),
        Schema::AnyOf(x) => x.items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// The endpoint table of docs/api.md, rendered from the document (in table order).
pub fn markdown_table() -> String {
    let doc = document();
    let mut out =
        String::from("| method | path | who | what | answers | its own errors |\n|---|---|---|---|---|---|\n");
    for e in TABLE {
        let item = &doc.paths.paths[e.path];
        let op = match method(&e.method) {
            HttpMethod::Post => &item.post,
            HttpMethod::Put => &item.put,
            HttpMethod::Delete => &item.delete,
            HttpMethod::Patch => &item.patch,
            _ => &item.get,
        }
        .as_ref()
        .expect("every row is an operation");
        let mut answers = Vec::new();
        for (status, response) in &op.responses.responses {
            let RefOr::T(response) = response else { continue };
            if !status.starts_with('2') && !status.starts_with('3') {
                continue;
            }
            let what: Vec<String> = response
                .content
                .iter()
                .map(|(media, c)| match c {
                    RefOr::T(c) => describe(media, c.schema.as_ref()),
                    RefOr::Ref(_) => media.clone(),
                })
                .collect();
            answers.push(format!("{status} {}", what.join(" or ")).trim_end().to_string());
        }
        let own: Vec<String> = e.errors.iter().map(|c| format!("`{c}`")).collect();
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} |\n",
            e.method,
            e.path,
            e.access,
            e.summary,
            answers.join(", "),
            own.join(", ")
        ));
    }
    out
}

/// `Task`, `[Node]`, or the media type.
fn describe(media: &str, schema: Option<&RefOr<Schema>>) -> String {
    let name = |r: &Ref| r.ref_location.rsplit('/').next().unwrap_or("").to_string();
    match schema {
        Some(RefOr::Ref(r)) if media == "application/json" => format!("`{}`", name(r)),
        Some(RefOr::T(Schema::Array(a))) if media == "application/json" => match &a.items {
            utoipa::openapi::schema::ArrayItems::RefOrSchema(item) => match item.as_ref() {
                RefOr::Ref(r) => format!("`[{}]`", name(r)),
                _ => "JSON".into(),
            },
            _ => "JSON".into(),
        },
        _ => media.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row is one operation and every operation a row; every path parameter is
    /// declared; every schema a `$ref` names is in the components.
    #[test]
    fn the_document_is_the_table() {
        let doc: serde_json::Value = serde_json::from_str(text()).unwrap();
        let mut ops = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (m, op) in item.as_object().unwrap() {
                ops += 1;
                let row = TABLE.iter().find(|e| e.path == path && e.method.as_str().eq_ignore_ascii_case(m));
                let row = row.unwrap_or_else(|| panic!("{m} {path} is not in the table"));
                assert_eq!(op["operationId"], row.name);
                for name in path.split('/').filter_map(|s| s.strip_prefix('{')) {
                    let name = name.trim_end_matches('}');
                    let declared = op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == name && p["in"] == "path");
                    assert!(declared, "{m} {path}: path parameter {name} is not declared");
                }
                for code in row.error_codes() {
                    let status = code.status().to_string();
                    let listed = &op["responses"][&status]["content"]["application/json"]["schema"]["allOf"][1]["properties"]
                        ["error"]["properties"]["code"]["enum"];
                    assert!(
                        listed.as_array().is_some_and(|l| l.contains(&code.as_str().into())),
                        "{m} {path}: {code} not under {status}"
                    );
                }
            }
        }
        assert_eq!(ops, TABLE.len());
        let text = text();
        for r in text.match_indices("\"$ref\": \"#/components/schemas/") {
            let name: String = text[r.0 + r.1.len()..].chars().take_while(|c| *c != '"').collect();
            assert!(doc["components"]["schemas"][&name].is_object(), "dangling $ref {name}");
        }
    }
}
