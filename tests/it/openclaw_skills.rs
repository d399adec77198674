//! Skills exactly as OpenClaw sees them: the real `openclaw skills list --json` compared
//! with the worker's own scan over OpenClaw's bundled skills and over
//! `tests/fixtures/skills` (plus the cases git cannot hold), with the same PATH,
//! environment and OpenClaw config on both sides; and OpenClaw's config file location
//! (`openclaw config file`) compared with the worker's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use openclaw::worker::openclaw as oc;
use openclaw::worker::skills::{self, Host, Missing, Rules, Skill, native};

use crate::require_openclaw;

/// Where the worker deliberately differs from OpenClaw on these inputs: (comparison, skill
/// name, why). docs/skills.md "Running with OpenClaw" lists the same. The test fails when a
/// difference appears that is not here, or one listed here disappears.
const DIFFERENCES: &[(&str, &str, &str)] = &[];

/// One side's verdict on a skill, in comparable form.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    description: String,
    eligible: bool,
    disabled: bool,
    missing: Missing,
}

fn ours(s: &Skill) -> Verdict {
    Verdict {
        description: s.description.clone(),
        eligible: s.eligible,
        disabled: s.disabled,
        missing: s.missing.clone(),
    }
}

fn theirs(s: &native::ListedSkill) -> Verdict {
    Verdict {
        description: s.description.clone(),
        eligible: s.eligible,
        disabled: s.disabled,
        missing: Missing::from(&s.missing),
    }
}

/// Compares two sides by name; prints the agreement table; returns the differing names.
fn compare(label: &str, ours: BTreeMap<String, Verdict>, theirs: BTreeMap<String, Verdict>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let mut same = 0;
    let mut differing = Vec::new();
    for name in &names {
        match (ours.get(*name), theirs.get(*name)) {
            (Some(a), Some(b)) if a == b => same += 1,
            (a, b) => {
                eprintln!("  {label}: `{name}` differs\n    ours:     {a:?}\n    OpenClaw: {b:?}");
                differing.push(name.to_string());
            }
        }
    }
    let eligible = theirs.values().filter(|v| v.eligible).count();
    eprintln!(
        "agreement on {label}: {} skills compared ({} listed by OpenClaw, {} eligible), {same} the same, {} different",
        names.len(),
        theirs.len(),
        eligible,
        differing.len()
    );
    differing
}

fn write_exe(path: &Path) {
    std::fs::write(path, "#!/bin/sh\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The cases git cannot hold, added to the copy of the fixtures.
#[cfg(unix)]
fn generated_cases(root: &Path, fixtures: &Path) {
    use std::os::unix::fs::symlink;
    let skill = |name: &str, description: &str| format!("---\nname: {name}\ndescription: {description}\n---\n");
    let outside = root.join("outside");
    std::fs::create_dir_all(outside.join("linked-from-fixtures")).unwrap();
    std::fs::write(
        outside.join("linked-from-fixtures/SKILL.md"),
        skill("link-outside", "a folder linked from outside"),
    )
    .unwrap();
    symlink(outside.join("linked-from-fixtures"), fixtures.join("link-outside")).unwrap();
    std::fs::write(outside.join("loose.md"), skill("file-link-outside", "a SKILL.md linked from outside")).unwrap();
    std::fs::create_dir(fixtures.join("file-link-outside")).unwrap();
    symlink(outside.join("loose.md"), fixtures.join("file-link-outside/SKILL.md")).unwrap();
    symlink("grouped/inner-one", fixtures.join("link-inside")).unwrap();
    std::fs::create_dir(fixtures.join("broken-link")).unwrap();
    symlink(root.join("nowhere.md"), fixtures.join("broken-link/SKILL.md")).unwrap();
    std::fs::write(outside.join("hard.md"), skill("hardlinked", "a hard-linked SKILL.md")).unwrap();
    std::fs::create_dir(fixtures.join("hardlinked")).unwrap();
    std::fs::hard_link(outside.join("hard.md"), fixtures.join("hardlinked/SKILL.md")).unwrap();
    std::fs::create_dir(fixtures.join("oversized")).unwrap();
    let big = format!("{}{}", skill("oversized", "a SKILL.md over 256,000 bytes"), "x".repeat(256_000));
    std::fs::write(fixtures.join("oversized/SKILL.md"), big).unwrap();
    std::fs::create_dir(fixtures.join("just-under")).unwrap();
    let head = skill("just-under", "a SKILL.md of exactly 256,000 bytes");
    std::fs::write(fixtures.join("just-under/SKILL.md"), format!("{head}{}", "y".repeat(256_000 - head.len())))
        .unwrap();
}

/// A temp dir with the fixtures, a bin dir and an OpenClaw home whose config points at them.
struct Setup {
    dir: tempfile::TempDir,
    fixtures: PathBuf,
    env: BTreeMap<String, String>,
}

fn setup(install: &crate::real_openclaw::Install) -> Setup {
    let dir = tempfile::Builder::new().prefix("openclaw-skills-").tempdir().unwrap();
    let fixtures = dir.path().join("fixtures");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/skills"), &fixtures);
    #[cfg(unix)]
    generated_cases(dir.path(), &fixtures);
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    write_exe(&bin.join("fixture-tool-a"));
    write_exe(&bin.join("fixture-tool-b"));
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".openclaw")).unwrap();
    let config = serde_json::json!({
        "skills": {
            "load": {"extraDirs": [fixtures]},
            "entries": {
                "disabled-in-config": {"enabled": false},
                "fixture-key": {"env": {"ZZZ_FROM_CONFIG": "v"}},
                "primary-env": {"apiKey": "k"},
            },
        },
        "browser": {"evaluateEnabled": false},
        "gateway": {"port": 19999, "customBindHost": "  "},
        "hooks": {"enabled": false},
        // Plugins add skills of their own under the same source label; keep them out.
        "plugins": {"enabled": false},
    });
    std::fs::write(home.join(".openclaw/openclaw.json"), config.to_string()).unwrap();
    let path =
        std::env::join_paths([install.node_bin.as_path(), bin.as_path(), Path::new("/usr/bin"), Path::new("/bin")])
            .unwrap()
            .into_string()
            .unwrap();
    let env: BTreeMap<String, String> = [
        ("HOME", home.display().to_string()),
        ("PATH", path),
        ("OC_FIXTURE_SET", "yes".into()),
        ("OC_FIXTURE_SPACES", "   ".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Setup { dir, fixtures, env }
}

impl Setup {
    fn host(&self) -> Host {
        Host {
            os: skills::openclaw_os(),
            path: self.env.get("PATH").map(Into::into),
            openclaw: oc::load_config(&self.env),
            env: self.env.clone(),
            cwd: self.dir.path().to_path_buf(),
        }
    }

    /// OpenClaw's listing, run with exactly this environment.
    fn listing(&self, install: &crate::real_openclaw::Install) -> native::Listing {
        let mut cmd = std::process::Command::new(&install.cli);
        cmd.env_clear().args(["skills", "list", "--json"]).current_dir(self.dir.path());
        cmd.envs(&self.env).env("TMPDIR", self.dir.path()).env("NO_COLOR", "1");
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "openclaw skills list: {}", crate::support::show(&out));
        native::Listing::parse(&out.stdout).unwrap()
    }
}

fn listed(listing: &native::Listing, sources: &[&str]) -> BTreeMap<String, Verdict> {
    listing
        .skills
        .iter()
        .filter(|s| sources.contains(&s.source.as_str()))
        .map(|s| (s.name.clone(), theirs(s)))
        .collect()
}

fn check(label: &str, differing: Vec<String>) {
    let mut expected: Vec<String> =
        DIFFERENCES.iter().filter(|(l, _, _)| *l == label).map(|(_, n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(differing, expected, "{label}: the differences are not the deliberate ones (see the lines above)");
}

/// The real OpenClaw and the worker agree on every fixture: the same skills found, the same
/// verdict, the same missing requirements (every one of them), the same description.
#[tokio::test]
async fn our_verdicts_match_openclaws_on_the_fixtures() {
    let install = require_openclaw!();
    let s = setup(install);
    let listing = s.listing(install);
    let scan = skills::scan(std::slice::from_ref(&s.fixtures), &s.host());
    let ours_by_name: BTreeMap<String, Verdict> = scan.skills.iter().map(|k| (k.name.clone(), ours(k))).collect();
    let theirs = listed(&listing, &["openclaw-extra"]);
    eprintln!("OpenClaw lists: {:?}", theirs.keys().collect::<Vec<_>>());
    let differing = compare("fixtures", ours_by_name, theirs);
    check("fixtures", differing);
    // Files OpenClaw skips are problems for us too, never skills.
    for name in ["no-description", "unterminated", "yaml-error", "duplicate-keys", "colon-in-name", "oversized"] {
        assert!(scan.problems.iter().any(|p| p.path.to_string_lossy().contains(name)), "{name}: {:?}", scan.problems);
    }
}

/// The same over OpenClaw's own bundled (and custodian) skills.
#[tokio::test]
async fn our_verdicts_match_openclaws_on_its_bundled_skills() {
    let install = require_openclaw!();
    let s = setup(install);
    let listing = s.listing(install);
    let host = s.host();
    let mut problems = Vec::new();
    let mut ours_by_name = BTreeMap::new();
    for (folder, source) in [("skills", "bundled"), ("custodian-skills", "custodian")] {
        for skill in
            skills::load_root(&install.package.join(folder), Rules::Contained, &[], &host, source, &mut problems)
        {
            ours_by_name.insert(skill.name.clone(), ours(&skill));
        }
    }
    assert!(problems.is_empty(), "OpenClaw's own skills must all read: {problems:?}");
    let theirs = listed(&listing, &["openclaw-bundled", "openclaw-custodian"]);
    assert!(theirs.len() >= 50, "OpenClaw lists its bundled skills: {}", theirs.len());
    let differing = compare("bundled", ours_by_name, theirs);
    check("bundled", differing);
}

/// OpenClaw's config file is where the worker looks for it, under each of OpenClaw's
/// environment overrides.
#[tokio::test]
async fn we_find_openclaws_config_where_openclaw_does() {
    let install = require_openclaw!();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let h = home.display().to_string();
    let state = dir.path().join("state").display().to_string();
    let file = dir.path().join("elsewhere/oc.json5").display().to_string();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("OPENCLAW_STATE_DIR", state.as_str())],
        vec![("OPENCLAW_CONFIG_PATH", file.as_str())],
        vec![("OPENCLAW_HOME", h.as_str())],
    ];
    for case in cases {
        let out = install.run(&home, &["config", "file"], &case);
        let theirs = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or("").to_string();
        let mut env: BTreeMap<String, String> = case.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.insert("HOME".into(), h.clone());
        let ours = oc::locations(&env).config_path;
        assert_eq!(ours, PathBuf::from(theirs.replace('~', &h)), "with {case:?}");
    }
}
