//! The reference docs follow the code: the endpoint table of docs/api.md is rendered from
//! the OpenAPI document (itself built from the route table), the error-code table from the
//! codes, and the key tables of docs/configuration.md from the config types.
//! `OPENCLAW_UPDATE_DOCS=1 cargo test --test it docs` rewrites them.

use std::path::Path;

use openclaw::model::ErrorCode;

/// Replaces what lies between `<!-- {name}:begin -->` and `<!-- {name}:end -->`.
fn splice(doc: &str, name: &str, body: &str) -> String {
    let (begin, end) = (format!("<!-- {name}:begin -->\n"), format!("<!-- {name}:end -->"));
    let start = doc.find(&begin).unwrap_or_else(|| panic!("the page lacks {begin:?}")) + begin.len();
    let stop = doc.find(&end).unwrap_or_else(|| panic!("the page lacks {end:?}"));
    format!("{}{body}{}", &doc[..start], &doc[stop..])
}

/// Checks (or, with OPENCLAW_UPDATE_DOCS, rewrites) a generated page of docs/.
fn check_page(page: &str, want: impl FnOnce(&str) -> String) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(page);
    let doc = std::fs::read_to_string(&path).unwrap();
    let want = want(&doc);
    if std::env::var_os("OPENCLAW_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    assert!(
        doc == want,
        "docs/{page} is out of date with the code: run OPENCLAW_UPDATE_DOCS=1 cargo test --test it docs"
    );
    doc
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
    let doc = check_page("api.md", |doc| {
        splice(&splice(doc, "routes", &openclaw::openapi::markdown_table()), "errors", &errors_table())
    });
    // Each route has a section of its own further down.
    for e in openclaw::api::TABLE {
        let heading = format!("`{} {}", e.method, e.path);
        let grouped = doc.lines().any(|l| l.starts_with("### ") && l.contains(e.path.rsplit('/').next().unwrap()));
        assert!(doc.contains(&heading) || grouped, "docs/api.md has no section for {} {}", e.method, e.path);
    }
}

#[test]
fn configuration_md_lists_every_key_with_its_default() {
    let doc = check_page("configuration.md", |doc| {
        splice(doc, "keys", &openclaw::config_reference::markdown(openclaw::transport::CONFIG))
    });
    // Spot checks of the rendering, against values a reader relies on.
    assert!(
        doc.contains("| `coordinator.port` | integer | `8888` | `OPENCLAW_COORDINATOR__PORT` |"),
        "coordinator.port is not listed as expected"
    );
    assert!(doc.contains("| `worker.heartbeat_interval` | duration | `5s` |"), "durations read as 5s");
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The commands of the first ```sh block after a heading, without comments.
fn commands_under(doc: &str, heading: &str) -> Vec<String> {
    let start = doc.find(heading).unwrap_or_else(|| panic!("README.md has no {heading:?}"));
    let block = doc[start..].split("```sh\n").nth(1).expect("a ```sh block").split("```").next().unwrap();
    block
        .lines()
        .map(|l| l.split(" # ").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The arguments after `cargo run --release --`, parsed by the program's own CLI.
fn parse_cargo_run(line: &str) -> openclaw::cli::Cli {
    let args = line
        .strip_prefix("cargo run --release -- ")
        .unwrap_or_else(|| panic!("`{line}` does not run the program with cargo (only Rust is installed)"));
    let argv: Vec<std::ffi::OsString> =
        std::iter::once("openclaw-cluster").chain(args.split_whitespace()).map(Into::into).collect();
    openclaw::cli::parse(argv).unwrap_or_else(|e| panic!("`{line}` does not parse: {e}"))
}

/// Whether a path is in the repository as a fresh clone has it (tracked by git; without
/// git, on disk).
fn in_fresh_clone(path: &Path) -> bool {
    match std::process::Command::new("git").arg("-C").arg(repo()).args(["ls-files", "--"]).arg(path).output() {
        Ok(o) if o.status.success() && repo().join(".git").exists() => !o.stdout.is_empty(),
        _ => repo().join(path).exists(),
    }
}

/// Issue 17: the quick start's first command failed as written (`openclaw: command not
/// found` on a fresh clone). Its two commands must be: the product, run with cargo (the
/// only tool a fresh clone with Rust has) on files the clone has, and the test command
/// that CI (`.ci/run`) runs.
#[test]
fn readme_quick_start_runs_on_a_fresh_clone() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let commands = commands_under(&readme, "## Quick start");
    assert_eq!(commands.len(), 2, "the quick start is two commands: {commands:?}");
    let cli = parse_cargo_run(&commands[0]);
    let openclaw::cli::Command::Dev(dev) = cli.command else { panic!("`{}` is not `dev`", commands[0]) };
    assert!(!dev.skills_dir.is_empty(), "the quick start names the example skills");
    for dir in &dev.skills_dir {
        assert!(in_fresh_clone(dir), "{} is not in a fresh clone", dir.display());
    }
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        "`{}` (the README's test command) is not what .ci/run runs",
        commands[1]
    );
    // The commands for the second terminal parse too.
    for line in commands_under(&readme[readme.find("## Quick start").unwrap() + 10..], "From a second terminal") {
        parse_cargo_run(&line);
    }
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// After the split of the README into docs/, every relative link of README.md and docs/
/// reaches a file of the repository, and an `#anchor` a heading of that page.
#[test]
fn links_between_the_docs_resolve() {
    let mut pages: Vec<std::path::PathBuf> = vec![repo().join("README.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, frag) = target.split_once('#').unwrap_or((&target, ""));
            let path = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            if !path.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
                continue;
            }
            if !frag.is_empty() && path.extension().is_some_and(|x| x == "md") {
                let body = std::fs::read_to_string(&path).unwrap();
                let found =
                    body.lines().filter(|l| l.starts_with('#')).any(|l| anchor(l.trim_start_matches('#')) == frag);
                if !found {
                    broken.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The targets of `[text](target)` links, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
        // <img src="..."> pictures.
        let mut rest = line;
        while let Some(i) = rest.find("src=\"") {
            let after = &rest[i + 5..];
            let Some(end) = after.find('"') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}
