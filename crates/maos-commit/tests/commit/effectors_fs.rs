//! `fs`: path escapes, symlinks, idempotency, and a property test that the
//! root is never escaped.

use crate::common::*;
use maos_commit::effectors::fs::{Access, FsEffector};
use maos_commit::{EffectError, Effector, ExecContext, Probe};
use maos_model::{EffectClass, ResourceKind, UnixMillis};
use proptest::prelude::*;
use std::path::Path;
use std::time::{Duration, Instant};

fn ctx() -> ExecContext {
    ExecContext::new(T0, Instant::now() + Duration::from_secs(30))
}

/// A root with an outside directory next to it and symlinks pointing out.
fn escape_world() -> (tempfile::TempDir, FsEffector) {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    let fs = FsEffector::new(dir.path().join("root"), dir.path().join("state")).unwrap();
    let root = fs.root().to_path_buf();
    std::fs::create_dir_all(root.join("inner")).unwrap();
    std::fs::write(root.join("inner/ok.txt"), "ok").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link_file_out")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link_dir_out")).unwrap();
    std::os::unix::fs::symlink(root.join("inner"), root.join("link_dir_in")).unwrap();
    std::os::unix::fs::symlink(root.join("inner/ok.txt"), root.join("link_file_in")).unwrap();
    (dir, fs)
}

fn outside_snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("outside"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn parent_dir_absolute_and_nul_paths_are_refused() {
    let (_dir, fs) = escape_world();
    for bad in [
        "../outside/secret.txt",
        "inner/../../outside",
        "/etc/passwd",
        "/workspace/../etc",
        "a\0b",
        "/",
        "//workspace/x",
    ] {
        for access in [Access::Read, Access::Write] {
            let r = fs.resolve(bad, access);
            assert!(matches!(r, Err(EffectError::PathEscape(_))), "{bad:?} {access:?}: {r:?}");
        }
    }
    // The virtual root and relative paths resolve inside.
    assert_eq!(fs.resolve("/workspace/inner/ok.txt", Access::Read).unwrap(), fs.root().join("inner/ok.txt"));
    assert_eq!(fs.resolve("./inner//ok.txt", Access::Write).unwrap(), fs.root().join("inner/ok.txt"));
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let (dir, fs) = escape_world();
    // Final symlink to outside: refused for reads (escape) and writes (symlink).
    assert!(matches!(fs.resolve("link_file_out", Access::Read), Err(EffectError::PathEscape(_))));
    assert!(matches!(fs.resolve("link_file_out", Access::Write), Err(EffectError::Symlink(_))));
    // Symlinked parent directory pointing outside.
    assert!(matches!(fs.resolve("link_dir_out/secret.txt", Access::Read), Err(EffectError::PathEscape(_))));
    assert!(matches!(fs.resolve("link_dir_out/new.txt", Access::Write), Err(EffectError::PathEscape(_))));
    // Symlinks that stay inside are followed for reads and parents only.
    assert_eq!(fs.resolve("link_file_in", Access::Read).unwrap(), fs.root().join("inner/ok.txt"));
    assert!(matches!(fs.resolve("link_file_in", Access::Write), Err(EffectError::Symlink(_))));
    assert_eq!(fs.resolve("link_dir_in/ok.txt", Access::Write).unwrap(), fs.root().join("inner/ok.txt"));

    // Through the effector: nothing outside changes.
    let before = outside_snapshot(dir.path());
    for (action, path) in
        [("fs.write", "link_file_out"), ("fs.write", "link_dir_out/x"), ("fs.delete", "link_file_out")]
    {
        let i = intent(action, EffectClass::Write, &[(ResourceKind::Path, path)], &[("content", "pwned")]);
        assert!(fs.execute(&i, i.id, &ctx()).is_err(), "{action} {path}");
        assert!(fs.snapshot(&i).is_err() || action == "fs.write");
    }
    assert_eq!(outside_snapshot(dir.path()), before);
    assert!(std::fs::symlink_metadata(fs.root().join("link_file_out")).unwrap().file_type().is_symlink());
}

#[test]
fn the_state_directory_must_be_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let r = FsEffector::new(dir.path().join("root"), dir.path().join("root/.state"));
    assert!(matches!(r, Err(EffectError::Invalid(_))));
}

#[test]
fn re_execution_with_the_same_key_is_a_no_op() {
    let world = World::new();
    let w = fs_write("once.txt", "first");
    world.fs.execute(&w, w.id, &ctx()).unwrap();
    // Someone changes the file; a replay of the same intent must not overwrite it.
    world.put("once.txt", "changed later");
    world.fs.execute(&w, w.id, &ctx()).unwrap();
    assert_eq!(world.file("once.txt").as_deref(), Some("changed later"));
    assert!(matches!(world.fs.probe(&w).unwrap(), Probe::Done(_)));
    let other = fs_write("once.txt", "first");
    assert!(matches!(world.fs.probe(&other).unwrap(), Probe::NotDone));
}

#[test]
fn a_cancelled_write_leaves_no_trace() {
    let world = World::new();
    world.put("c.txt", "before");
    let w = fs_write("c.txt", "after");
    let expired = ExecContext::new(UnixMillis(0), Instant::now());
    assert!(matches!(world.fs.execute(&w, w.id, &expired), Err(EffectError::Cancelled)));
    assert_eq!(world.file("c.txt").as_deref(), Some("before"));
    let names: Vec<_> = std::fs::read_dir(world.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temp file left: {names:?}");
}

#[test]
fn list_and_read_are_bounded_observations() {
    let world = World::new();
    world.put("d/b.txt", "b");
    world.put("d/a.txt", "a");
    std::fs::create_dir_all(world.root().join("d/sub")).unwrap();
    let list = intent("fs.list", EffectClass::Observe, &[(ResourceKind::Path, "d")], &[]);
    assert_eq!(world.fs.effect_class(&list), EffectClass::Observe);
    let out = world.fs.execute(&list, list.id, &ctx()).unwrap();
    assert_eq!(out.body, b"a.txt\nb.txt\nsub/");
    let missing = fs_read("d/nope.txt");
    assert!(matches!(world.fs.execute(&missing, missing.id, &ctx()), Err(EffectError::NotFound(_))));
}

fn component() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "..",
        ".",
        "a",
        "b",
        "inner",
        "ok.txt",
        "link_dir_out",
        "link_file_out",
        "link_dir_in",
        "link_file_in",
        "secret.txt",
        "outside",
        "",
        "/",
        "workspace",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever path and action an agent sends, nothing outside the root is
    /// read, written or deleted, and every resolved path lies inside the root.
    #[test]
    fn prop_the_root_is_never_escaped(
        parts in prop::collection::vec(component(), 1..6),
        absolute in any::<bool>(),
        action in prop::sample::select(vec!["fs.write", "fs.delete", "fs.read", "fs.list"]),
    ) {
        let (dir, fs) = escape_world();
        let before = outside_snapshot(dir.path());
        let joined = parts.join("/");
        let path = if absolute { format!("/workspace/{joined}") } else { joined };
        for access in [Access::Read, Access::Write] {
            if let Ok(resolved) = fs.resolve(&path, access) {
                prop_assert!(resolved.starts_with(fs.root()), "{path} -> {resolved:?}");
            }
        }
        if !path.is_empty() {
            let i = intent(action, EffectClass::Write, &[(ResourceKind::Path, &path)], &[("content", "pwned")]);
            if let Ok(out) = fs.execute(&i, i.id, &ctx()) {
                prop_assert!(!String::from_utf8_lossy(&out.body).contains("secret"), "{path}");
            }
            if let Ok(snapshot) = fs.snapshot(&i) {
                let _ = fs.compensate(&i, &snapshot);
            }
        }
        prop_assert_eq!(outside_snapshot(dir.path()), before);
    }
}

/// Forensic cleanup (spec §33.8.5): `quarantine` marks paths untrusted
/// whether a file is there or not (a write still in flight lands under the
/// mark), keeps a path's level, and lists what it could not mark (an escape,
/// a final symlink) instead of stopping at it.
#[test]
fn quarantine_marks_paths_untrusted_even_before_their_file_lands() {
    let (_dir, fs) = escape_world();
    let resource = |p: &str| maos_model::Resource { kind: ResourceKind::Path, value: p.into() };
    let done = fs.quarantine(&[
        resource("/workspace/inner/ok.txt"),
        resource("/workspace/later.md"),
        resource("/workspace/../outside/secret.txt"),
        resource("/workspace/link_file_out"),
        maos_model::Resource { kind: ResourceKind::Domain, value: "example.com".into() },
    ]);
    assert_eq!((done.marked, done.failed, done.failures.len()), (2, 2, 2), "{done:?}");
    assert!(fs.label_of("/workspace/inner/ok.txt").unwrap().untrusted);
    // The in-flight write lands afterwards: its file is read as untrusted.
    let w = fs_write("/workspace/later.md", "from the eliminated agent");
    fs.execute(&w, w.id, &ctx()).unwrap();
    let label = fs.label_of("/workspace/later.md").unwrap();
    assert!(label.untrusted, "{label:?}");
    assert_eq!(label.level, maos_model::IfcLevel::Internal, "the level is kept");
}
