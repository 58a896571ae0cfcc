//! Integrity and exhaustion (issue #12) through the real daemon: each test is
//! an attack that went through before, named after it, against `maos up` as
//! the built binary on a temporary data directory.

mod common;

#[cfg(test)]
mod hardening {
    use super::common::*;
    use reqwest::StatusCode;
    use serde_json::json;
    use std::path::Path;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// Rewrites one `key = value` line of the `[effectors]` table `maos init` wrote.
    fn set_effector(dir: &Path, key: &str, value: &str) {
        let path = dir.join("maos.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let prefix = format!("{key} = ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no `{key}` in maos.toml"));
        std::fs::write(&path, text.replace(line, &format!("{key} = {value}"))).unwrap();
    }

    /// `maos up` that must refuse to start: its exit status and output.
    fn up_refused(dir: &Path) -> String {
        let o = Command::new(MAOS)
            .args(["up", "--listen", "127.0.0.1:0"])
            .env("MAOS_DATA_DIR", dir)
            .env("NO_COLOR", "1")
            .output()
            .expect("run maos up");
        assert!(!o.status.success(), "maos up started: {}{}", text(&o.stdout), text(&o.stderr));
        format!("{}{}", text(&o.stdout), text(&o.stderr))
    }

    /// Item 7: an effector root over the kernel's own files let an agent read
    /// `kernel.key` and replace `commander.pub`. Every overlap is refused at
    /// start-up, naming the path, before the log is opened.
    #[test]
    fn attack_an_fs_root_or_outbox_over_the_kernels_files_is_refused_at_start_up() {
        let cases: &[(&str, &str, &str)] = &[
            ("fs_root", "\"keys\"", "keys"),
            ("fs_root", "\".\"", "keys"),
            ("fs_root", "\"keys/../state\"", "state"),
            ("fs_root", "\"wal\"", "wal"),
            ("fs_root", "\"run/x\"", "run"),
            ("mail_outbox", "\"keys\"", "keys"),
            ("mail_outbox", "\"workspace/mail\"", "fs_root"),
        ];
        for (key, value, named) in cases {
            let dir = tempfile::tempdir().unwrap();
            init(dir.path());
            set_effector(dir.path(), key, value);
            if *key == "fs_root" && *value == "\"keys\"" {
                // An absolute spelling of the same place is refused too.
                let absolute = format!("\"{}\"", dir.path().join("keys").display());
                set_effector(dir.path(), key, &absolute);
            }
            let out = up_refused(dir.path());
            assert!(out.contains("MAOS-CONFIG-EXPOSES"), "{key} = {value}: {out}");
            assert!(out.contains(named), "{key} = {value} does not name {named}: {out}");
            assert!(!dir.path().join("run/daemon.json").exists(), "{key} = {value}: the daemon wrote run files");
        }
    }

    /// Item 6: `fs.read` of a fifo never completed, and SIGTERM then printed
    /// "stopped cleanly" while the process kept the log's lock. A fifo, a
    /// device or a socket is refused before any read; the daemon stops on
    /// SIGTERM and a second one can start on the same directory.
    #[test]
    fn attack_a_fifo_read_neither_hangs_the_daemon_nor_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        let workspace = dir.path().join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        let made = Command::new("mkfifo").arg(workspace.join("pipe")).status().expect("run mkfifo");
        assert!(made.success(), "mkfifo failed");
        let token = issue(dir.path(), "reader", &["fs.read=path:/workspace/**"]);
        let mut daemon = Daemon::start(dir.path(), logs.path(), "fifo", &[]);
        let agent = Agent::open(&daemon.base, &token);
        let started = Instant::now();
        let (status, body) = agent.submit(&json!({ "action": "fs.read", "args": { "path": "/workspace/pipe" } }));
        assert!(started.elapsed() < Duration::from_secs(10), "the read took {:?}", started.elapsed());
        assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("failed")), "{body}");
        assert!(body["explanation"].as_str().unwrap().contains("EFFECT-NOT-REGULAR"), "{body}");
        // A device is refused the same way (through a symlink inside the root).
        std::os::unix::fs::symlink("/dev/zero", workspace.join("zero")).unwrap();
        let (_, body) = agent.submit(&json!({ "action": "fs.read", "args": { "path": "/workspace/zero" } }));
        assert!(
            body.to_string().contains("EFFECT-PATH-ESCAPE") || body.to_string().contains("EFFECT-NOT-REGULAR"),
            "{body}"
        );
        let stopped = Instant::now();
        assert!(daemon.sigterm().success(), "{}", daemon.output());
        assert!(stopped.elapsed() < Duration::from_secs(15), "SIGTERM took {:?}", stopped.elapsed());
        // The lock is free: the next daemon starts on the same data directory.
        let mut again = Daemon::start(dir.path(), logs.path(), "fifo-again", &[]);
        assert!(again.sigterm().success(), "{}", again.output());
        audit_clean(dir.path());
    }
}
