//! Unit tests of discovery and gating. The comparison with the real OpenClaw, over its
//! bundled skills and `tests/fixtures/skills`, is the integration test `openclaw_skills`.

use super::*;

/// OpenClaw's bundled 1password skill as it was shipped before 2026.9 (reference/openclaw.md).
const ONEPASSWORD: &str = r#"---
name: 1password
description: Set up and use 1Password CLI (op). Use when installing the CLI, enabling desktop app integration, signing in (single or multi-account), or reading/injecting/running secrets via op.
homepage: https://developer.1password.com/docs/cli/get-started/
metadata:
  {
    "openclaw":
      {
        "emoji": "🔐",
        "requires": { "bins": ["op"] },
        "install":
          [
            {
              "id": "brew",
              "kind": "brew",
              "formula": "1password-cli",
              "bins": ["op"],
              "label": "Install 1Password CLI (brew)",
            },
          ],
      },
  }
---

# 1Password
"#;

fn host(path: Option<&Path>, env: &[(&str, &str)]) -> Host {
    Host {
        os: openclaw_os(),
        path: path.map(|p| p.as_os_str().to_owned()),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        cwd: PathBuf::from("/"),
        openclaw: OpenClawConfig { value: serde_json::json!({}), ..Default::default() },
    }
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[cfg(unix)]
fn fake_bin(dir: &Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn the_1password_frontmatter_parses() {
    let fm = frontmatter::parse(ONEPASSWORD).unwrap();
    assert_eq!(fm["name"], "1password");
    assert!(fm["description"].starts_with("Set up and use 1Password CLI"));
    let metadata = frontmatter::metadata(&fm).unwrap().unwrap();
    let manifest = frontmatter::manifest(&metadata).unwrap();
    assert_eq!(manifest["requires"]["bins"], serde_json::json!(["op"]));
    assert_eq!(manifest["emoji"], "🔐");
}

#[test]
fn one_line_json_metadata_parses_with_its_command() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a/SKILL.md",
        "---\nname: a\ndescription: d\nmetadata: '{\"openclaw\": {\"os\": [\"darwin\"]}, \"cluster\": {\"run\": \"python3 main.py --x ''a b''\"}}'\n---\n",
    );
    let scan = scan(&[dir.path().into()], &host(None, &[]));
    let a = scan.get("a").unwrap();
    assert_eq!(a.kind, Kind::Exec { argv: vec!["python3".into(), "main.py".into(), "--x".into(), "a b".into()] });
    if openclaw_os() != "darwin" {
        assert_eq!(a.missing.os, vec!["darwin"]);
    }
}

#[test]
fn legacy_clawdbot_and_config_entries_count() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "fleet/SKILL.md",
        "---\nname: fleet\ndescription: d\nmetadata:\n  openclaw: null\n  clawdbot:\n    primaryEnv: MOLTBOOK_API_KEY\n    requires:\n      env: [MOLTBOOK_API_KEY, OTHER]\n---\n",
    );
    let s = scan(&[dir.path().into()], &host(None, &[("OTHER", "   ")]));
    let fleet = s.get("fleet").unwrap();
    assert!(!fleet.eligible);
    assert_eq!(fleet.missing.env, vec!["MOLTBOOK_API_KEY", "OTHER"], "a blank value is not set");
    // OpenClaw's config can provide both: the primary env through an API key.
    let mut h = host(None, &[]);
    h.openclaw.value = serde_json::json!({"skills": {"entries": {"fleet": {"apiKey": "k", "env": {"OTHER": "x"}}}}});
    assert!(scan(&[dir.path().into()], &h).get("fleet").unwrap().eligible);
    h.openclaw.value["skills"]["entries"]["fleet"]["enabled"] = false.into();
    let fleet = scan(&[dir.path().into()], &h).get("fleet").cloned().unwrap();
    assert!(fleet.disabled && !fleet.eligible);
}

#[test]
fn skill_json_is_read_with_its_run() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "legacy/skill.json",
        r#"{"name": "weather", "description": "w", "category": "network", "run": ["sh", "-c", "echo"]}"#,
    );
    write(dir.path(), "agentish/skill.json", r#"{"name": "notes", "dependencies": [{"name": "x"}]}"#);
    let scan = scan(&[dir.path().into()], &Host::current());
    assert_eq!(scan.get("weather").unwrap().kind, Kind::Exec { argv: vec!["sh".into(), "-c".into(), "echo".into()] });
    assert_eq!(scan.get("notes").unwrap().kind, Kind::Agent);
}

#[test]
fn malformed_files_are_problems_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/SKILL.md", "no frontmatter");
    write(dir.path(), "b/SKILL.md", "---\nname: [unclosed\n---\n");
    write(dir.path(), "c/SKILL.md", "---\nname: c\n---\n");
    write(dir.path(), "d/skill.json", "{not json");
    write(
        dir.path(),
        "e/SKILL.md",
        "---\nname: e\ndescription: d\nmetadata:\n  cluster:\n    run: \"unbalanced 'quote\"\n---\n",
    );
    write(dir.path(), "f/SKILL.md", "---\nname: ok\ndescription: fine\n---\n");
    write(dir.path(), "g/SKILL.md", &format!("---\nname: {}\ndescription: d\n---\n", "n".repeat(129)));
    write(dir.path(), "h/SKILL.md", "---\ndescription: the folder names it\n---\n");
    let scan = scan(&[dir.path().into()], &host(None, &[]));
    assert_eq!(scan.problems.len(), 5, "{:?}", scan.problems);
    assert!(scan.problems.iter().any(|p| p.error.contains("description is required")));
    assert_eq!(scan.eligible_names(), vec!["h".to_string(), "n".repeat(129), "ok".into()]);
    let long = scan.get(&"n".repeat(129)).unwrap();
    assert!(long.unadvertisable().is_some() && !long.warnings.is_empty());
}

#[cfg(unix)]
#[test]
fn gating_lists_every_missing_requirement() {
    let dir = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    write(dir.path(), "needs-op/SKILL.md", ONEPASSWORD);
    write(
        dir.path(),
        "any/SKILL.md",
        "---\nname: any\ndescription: d\nmetadata: {\"openclaw\": {\"requires\": {\"anyBins\": \"zzz-none, op\"}}}\n---\n",
    );
    write(
        dir.path(),
        "wrong-os/SKILL.md",
        "---\nname: wrong-os\ndescription: d\nmetadata:\n  openclaw: {os: [plan9], always: true, requires: {bins: [zzz-none]}}\n---\n",
    );
    write(
        dir.path(),
        "always/SKILL.md",
        "---\nname: always\ndescription: d\nmetadata:\n  openclaw: {always: true, requires: {bins: [zzz-none], config: [x.y]}}\n---\n",
    );
    write(
        dir.path(),
        "all/SKILL.md",
        "---\nname: all\ndescription: d\nmetadata:\n  openclaw: {requires: {bins: [zzz-a, op], env: [ZZZ_E], config: [browser.enabled, x.y]}}\n---\n",
    );
    let without = scan(&[dir.path().into()], &host(Some(bin.path()), &[]));
    assert_eq!(without.get("1password").unwrap().missing.bins, vec!["op"]);
    assert_eq!(without.get("any").unwrap().missing.any_bins, vec!["zzz-none", "op"]);
    assert_eq!(without.get("wrong-os").unwrap().missing, Missing { os: vec!["plan9".into()], ..Missing::default() });
    let always = without.get("always").unwrap();
    assert!(always.eligible && always.missing.is_empty());
    let all = without.get("all").unwrap();
    assert_eq!(
        all.missing,
        Missing {
            bins: vec!["zzz-a".into(), "op".into()],
            env: vec!["ZZZ_E".into()],
            config: vec!["x.y".into()],
            ..Missing::default()
        }
    );
    fake_bin(bin.path(), "op");
    let with = scan(&[dir.path().into()], &host(Some(bin.path()), &[]));
    assert_eq!(with.eligible_names(), vec!["1password", "always", "any"]);
}

#[test]
fn os_names_are_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let os = match openclaw_os() {
        "darwin" => "MacOS",
        "win32" => " Win32",
        _ => "Linux ",
    };
    write(
        dir.path(),
        "x/SKILL.md",
        &format!("---\nname: x\ndescription: d\nmetadata:\n  openclaw:\n    os: \"{os},plan9\"\n---\n"),
    );
    assert!(scan(&[dir.path().into()], &host(None, &[])).get("x").unwrap().eligible);
}

#[test]
fn depth_follows_the_dirs_name_and_the_later_one_wins() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // Not called `skills`: two levels deep at most.
    write(a.path(), "1/two/SKILL.md", "---\nname: two\ndescription: d\n---\n");
    write(a.path(), "1/2/three/SKILL.md", "---\nname: three\ndescription: d\n---\n");
    write(a.path(), "x/SKILL.md", "---\nname: shared\ndescription: from a/x\n---\n");
    write(a.path(), "y/SKILL.md", "---\nname: shared\ndescription: from a/y\n---\n");
    write(a.path(), ".git/hidden/SKILL.md", "---\nname: hidden\ndescription: d\n---\n");
    let found = scan(&[a.path().into()], &host(None, &[]));
    assert_eq!(found.eligible_names(), vec!["shared", "two"]);
    assert_eq!(found.get("shared").unwrap().description, "from a/y");
    // A dir called `skills`: six levels.
    let skills = b.path().join("skills");
    write(&skills, "1/2/3/4/5/deep/SKILL.md", "---\nname: deep\ndescription: d\n---\n");
    write(&skills, "1/2/3/4/5/6/too-deep/SKILL.md", "---\nname: too-deep\ndescription: d\n---\n");
    write(&skills, "z/SKILL.md", "---\nname: shared\ndescription: from b\n---\n");
    let both = scan(&[a.path().into(), skills.clone()], &host(None, &[]));
    assert_eq!(both.eligible_names(), vec!["deep", "shared", "two"]);
    assert_eq!(both.get("shared").unwrap().description, "from b");
    // The parent of `skills/` is read through it.
    assert_eq!(scan(&[b.path().into()], &host(None, &[])).eligible_names(), vec!["deep", "shared"]);
}

#[cfg(unix)]
#[test]
fn links_leaving_the_dir_and_oversized_files_are_skipped() {
    let a = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    write(elsewhere.path(), "linked/SKILL.md", "---\nname: linked\ndescription: d\n---\n");
    std::os::unix::fs::symlink(elsewhere.path().join("linked"), a.path().join("linked")).unwrap();
    write(a.path(), "inside/real/SKILL.md", "---\nname: inside\ndescription: d\n---\n");
    std::os::unix::fs::symlink(a.path().join("inside/real"), a.path().join("alias")).unwrap();
    write(a.path(), "big/SKILL.md", &format!("---\nname: big\ndescription: d\n---\n{}", "x".repeat(256_000)));
    let found = scan(&[a.path().into()], &host(None, &[]));
    assert_eq!(found.eligible_names(), vec!["inside"]);
    assert!(found.problems.iter().any(|p| p.error.contains("outside its skills dir")), "{:?}", found.problems);
    assert!(found.problems.iter().any(|p| p.error.contains("exceeds 256000")), "{:?}", found.problems);
    // OpenClaw's allowSymlinkTargets lets the link in.
    let mut h = host(None, &[]);
    h.openclaw.value = serde_json::json!({"skills": {"load": {"allowSymlinkTargets": [elsewhere.path()]}}});
    assert_eq!(scan(&[a.path().into()], &h).eligible_names(), vec!["inside", "linked"]);
}

#[test]
fn an_exec_skill_needs_its_program() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s/SKILL.md",
        "---\nname: s\ndescription: d\nmetadata:\n  cluster:\n    run: [zzz-no-such-program, x]\n---\n",
    );
    write(dir.path(), "t/SKILL.md", "---\nname: t\ndescription: d\nmetadata:\n  cluster:\n    run: [./run.sh]\n---\n");
    write(dir.path(), "t/run.sh", "#!/bin/sh\n");
    let scan = scan(&[dir.path().into()], &host(None, &[]));
    assert_eq!(scan.get("s").unwrap().missing.bins, vec!["zzz-no-such-program"]);
    assert!(scan.get("t").unwrap().eligible);
}

#[test]
fn instructions_are_the_body_with_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "i/SKILL.md", "---\nname: i\ndescription: d\n---\n\nRun {baseDir}/tool.sh first.\n");
    let scan = scan(&[dir.path().into()], &host(None, &[]));
    let text = scan.get("i").unwrap().instructions().unwrap();
    assert_eq!(text, format!("Run {}/tool.sh first.", dir.path().join("i").display()));
}

#[test]
fn permanent_exit_codes_are_read_and_bad_ones_named() {
    let dir = tempfile::tempdir().unwrap();
    let skill = |codes: &str| {
        format!(
            "---\nname: x\ndescription: d\nmetadata:\n  cluster:\n    run: [sh, run.sh]\n    permanent_exit_codes: {codes}\n---\n"
        )
    };
    write(dir.path(), "good/SKILL.md", &skill("[2, 64]").replace("name: x", "name: good"));
    write(dir.path(), "zero/SKILL.md", &skill("[0]").replace("name: x", "name: zero"));
    write(dir.path(), "word/SKILL.md", &skill("often").replace("name: x", "name: word"));
    let s = scan(&[dir.path().into()], &Host::current());
    assert_eq!(s.get("good").unwrap().permanent_exit_codes, vec![2, 64]);
    assert!(s.get("zero").is_none() && s.get("word").is_none());
    let said: Vec<String> = s.problems.iter().map(|p| format!("{p:?}")).collect();
    assert_eq!(said.iter().filter(|p| p.contains("permanent_exit_codes")).count(), 2, "{said:?}");
}
