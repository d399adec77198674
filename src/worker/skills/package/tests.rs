//! The package format and its checker: a packed folder digests as the folder does, and
//! hostile archives built here are each refused with a clear error and nothing written.

use super::*;

fn skill(dir: &Path) {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("SKILL.md"), "---\nname: summarize\ndescription: d\n---\nbody\n").unwrap();
    std::fs::write(dir.join("scripts/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("scripts/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A raw ustar entry as a hostile packer would write it.
fn entry(path: &str, kind: u8, link: &str, body: &[u8]) -> Vec<u8> {
    let mut h = [0u8; BLOCK];
    let n = path.len().min(100);
    h[..n].copy_from_slice(&path.as_bytes()[..n]);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[124..136], body.len() as u64);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    octal(&mut h[148..155], sum as u64);
    let mut out = h.to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    out
}

fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.concat();
    out.resize(out.len() + 2 * BLOCK, 0);
    out
}

fn skill_md() -> Vec<u8> {
    entry("SKILL.md", b'0', "", b"---\nname: x\ndescription: d\n---\n")
}

#[test]
fn a_packed_folder_digests_as_the_folder_and_installs_with_its_exec_bits() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("summarize");
    skill(&dir);
    let packed = pack(&dir).unwrap();
    assert_eq!(packed.name, "summarize");
    assert_eq!(packed.files, 2);
    assert_eq!(packed.digest, digest::digest(&dir, CAPS).unwrap());
    // Deterministic: the same folder packs to the same bytes.
    assert_eq!(pack(&dir).unwrap().tar, packed.tar);
    let files = verify(&packed.tar, &packed.digest).unwrap();
    assert_eq!(files.len(), 2);

    let managed = t.path().join("managed");
    let installed = install(&managed, &packed.name, &files, &packed.digest).unwrap();
    assert_eq!(installed, managed.join("summarize"));
    assert_eq!(digest::digest(&installed, CAPS).unwrap(), packed.digest);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(installed.join("scripts/run.sh")).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "the exec bit survives");
    }
    // A second version replaces the first; nothing else is left in the managed folder.
    std::fs::write(dir.join("SKILL.md"), "---\nname: summarize\ndescription: newer\n---\n").unwrap();
    let newer = pack(&dir).unwrap();
    assert_ne!(newer.digest, packed.digest);
    install(&managed, "summarize", &verify(&newer.tar, &newer.digest).unwrap(), &newer.digest).unwrap();
    assert_eq!(digest::digest(&installed, CAPS).unwrap(), newer.digest);
    let names: Vec<_> = std::fs::read_dir(&managed).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("summarize")]);
    uninstall(&managed, "summarize").unwrap();
    assert_eq!(std::fs::read_dir(&managed).unwrap().count(), 0);
}

#[test]
fn long_paths_use_the_ustar_prefix() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("deep");
    skill(&dir);
    let long = format!("{}/{}", "a".repeat(90), "b".repeat(90));
    std::fs::create_dir_all(dir.join("a".repeat(90))).unwrap();
    std::fs::write(dir.join(&long), "x").unwrap();
    let packed = pack(&dir).unwrap();
    let files = verify(&packed.tar, &packed.digest).unwrap();
    assert!(files.iter().any(|f| f.path == long));
}

#[cfg(unix)]
#[test]
fn a_folder_with_a_link_out_or_a_fifo_is_not_packed() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    skill(&dir);
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
    let e = pack(&dir).unwrap_err();
    assert!(e.contains("`passwd` is a link that leaves the skill folder"), "{e}");
}

/// Each hostile archive: a clear error, and an install of it writes nothing.
#[test]
fn hostile_archives_are_refused_and_nothing_is_written() {
    let big = vec![b'x'; 3000];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dot-dot", archive(&[skill_md(), entry("../evil", b'0', "", b"x")]), "`..` would leave the skill folder"),
        ("dot-dot inside", archive(&[skill_md(), entry("a/../../evil", b'0', "", b"x")]), "`..`"),
        ("absolute", archive(&[skill_md(), entry("/etc/passwd", b'0', "", b"x")]), "an absolute path"),
        ("drive", archive(&[skill_md(), entry("C:/evil", b'0', "", b"x")]), "an absolute path"),
        ("backslash", archive(&[skill_md(), entry("a\\..\\..\\evil", b'0', "", b"x")]), "a backslash"),
        ("symlink out", archive(&[skill_md(), entry("out", b'2', "/etc/passwd", b"")]), "leaves the skill folder"),
        ("symlink up", archive(&[skill_md(), entry("a/out", b'2', "../../x", b"")]), "leaves the skill folder"),
        ("symlink in", archive(&[skill_md(), entry("alias", b'2', "SKILL.md", b"")]), "is a symbolic link"),
        ("hard link", archive(&[skill_md(), entry("h", b'1', "/etc/shadow", b"")]), "is a hard link"),
        ("char device", archive(&[skill_md(), entry("tty", b'3', "", b"")]), "is a device file"),
        ("block device", archive(&[skill_md(), entry("sda", b'4', "", b"")]), "is a device file"),
        ("fifo", archive(&[skill_md(), entry("pipe", b'6', "", b"")]), "is a FIFO"),
        (
            "pax",
            archive(&[entry("PaxHeaders/x", b'x', "", b"30 path=../../etc/passwd\n"), skill_md()]),
            "entry type `x`",
        ),
        ("duplicate", archive(&[skill_md(), entry("a", b'0', "", b"1"), entry("a", b'0', "", b"2")]), "appears twice"),
        (
            "case",
            archive(&[skill_md(), entry("Run.sh", b'0', "", b"1"), entry("run.sh", b'0', "", b"2")]),
            "differs only in case",
        ),
        (
            "file and folder",
            archive(&[skill_md(), entry("a", b'0', "", b"1"), entry("a/b", b'0', "", b"2")]),
            "a file and a folder at once",
        ),
        ("git", archive(&[skill_md(), entry(".git/hooks/post-checkout", b'0', "", b"x")]), "install bookkeeping"),
        ("no SKILL.md", archive(&[entry("run.sh", b'0', "", b"x")]), "no SKILL.md"),
        (
            "too many files",
            archive(&[skill_md(), entry("a", b'0', "", b""), entry("b", b'0', "", b""), entry("c", b'0', "", b"")]),
            "more than 3 entries",
        ),
        ("too many bytes", archive(&[skill_md(), entry("big", b'0', "", &big)]), "more than 2048 bytes"),
        (
            "truncated in a file",
            archive(&[skill_md(), entry("big", b'0', "", &big)])[..BLOCK * 3].to_vec(),
            "truncated",
        ),
        ("truncated at the end", archive(&[skill_md()])[..BLOCK * 2].to_vec(), "truncated"),
        (
            "damaged header",
            {
                let mut a = archive(&[skill_md()]);
                a[0] = b'X';
                a
            },
            "checksum mismatch",
        ),
    ];
    let limits = Limits { max_package: 1 << 20, max_files: 3, max_bytes: 2048 };
    let t = tempfile::tempdir().unwrap();
    let managed = t.path().join("managed");
    for (what, tar, expect) in cases {
        let limits = if what == "too many bytes" || what == "truncated in a file" {
            Limits { max_files: 100, ..limits }
        } else {
            limits
        };
        let limits = if what == "truncated in a file" { Limits { max_bytes: 1 << 20, ..limits } } else { limits };
        match unpack(&tar, limits) {
            Ok(files) => panic!("{what}: accepted {:?}", files.iter().map(|f| &f.path).collect::<Vec<_>>()),
            Err(Refused(e)) => assert!(e.contains(expect), "{what}: {e}"),
        }
        assert!(!managed.exists(), "{what}: nothing is written");
    }
    // Over the package size, before anything is read.
    let e = unpack(&vec![0u8; 4096], Limits { max_package: 1024, ..limits }).unwrap_err();
    assert!(e.0.contains("over the limit of 1024 bytes"), "{e}");
}

#[test]
fn a_digest_mismatch_is_refused_and_nothing_is_written() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("s");
    skill(&dir);
    let packed = pack(&dir).unwrap();
    let mut tampered = packed.tar.clone();
    // Change one byte of SKILL.md's content (after the header) and fix nothing else.
    let at = tampered.windows(4).position(|w| w == b"body").unwrap();
    tampered[at] = b'B';
    let e = verify(&tampered, &packed.digest).unwrap_err();
    assert!(e.0.contains("was announced"), "{e}");
    assert!(!t.path().join("managed").exists());
}

#[test]
fn folder_names_are_checked() {
    for bad in ["", ".hidden", "a/b", "a\\b", "con:", "trailing.", "x\u{7}"] {
        assert!(check_folder_name(bad).is_err(), "{bad:?}");
    }
    assert!(check_folder_name("summarize-2").is_ok());
}
