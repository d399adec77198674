//! The API docs follow the code: the endpoint table of docs/api.md is rendered from the
//! OpenAPI document (itself built from the route table), the error-code table from the
//! codes. `OPENCLAW_UPDATE_DOCS=1 cargo test --test it docs` rewrites them.

use std::path::Path;

use openclaw::model::ErrorCode;

/// Replaces what lies between `<!-- {name}:begin -->` and `<!-- {name}:end -->`.
fn splice(doc: &str, name: &str, body: &str) -> String {
    let (begin, end) = (format!("<!-- {name}:begin -->\n"), format!("<!-- {name}:end -->"));
    let start = doc.find(&begin).unwrap_or_else(|| panic!("docs/api.md lacks {begin:?}")) + begin.len();
    let stop = doc.find(&end).unwrap_or_else(|| panic!("docs/api.md lacks {end:?}"));
    format!("{}{body}{}", &doc[..start], &doc[stop..])
}

fn errors_table() -> String {
    let mut out = String::from("| status | `code` | when |\n|---|---|---|\n");
    let mut codes: Vec<ErrorCode> = ErrorCode::ALL.to_vec();
    codes.sort_by_key(|c| c.status());
    for c in codes {
        let status = c.status();
        out.push_str(&format!("| {status} | `{c}` | {} |\n", c.meaning()));
    }
    out
}

#[test]
fn api_md_lists_every_route_and_error_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let want = splice(&splice(&doc, "routes", &openclaw::openapi::markdown_table()), "errors", &errors_table());
    if std::env::var_os("OPENCLAW_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    assert!(
        doc == want,
        "docs/api.md is out of date with the route table or the error codes: run OPENCLAW_UPDATE_DOCS=1 cargo test --test it docs"
    );
    // Each route has a section of its own further down.
    for e in openclaw::api::TABLE {
        let heading = format!("`{} {}", e.method, e.path);
        let grouped = doc.lines().any(|l| l.starts_with("### ") && l.contains(e.path.rsplit('/').next().unwrap()));
        assert!(doc.contains(&heading) || grouped, "docs/api.md has no section for {} {}", e.method, e.path);
    }
}
