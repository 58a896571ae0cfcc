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

    /// `maos token revoke` on the token issued to `agent`.
    fn revoke_token_of(dir: &Path, agent: &str) {
        let list = ok_json(dir, &["token", "list"]);
        let tokens = list["tokens"].as_array().unwrap();
        let id = tokens.iter().find(|t| t["agent"] == agent).unwrap()["id"].as_str().unwrap().to_owned();
        ok(dir, &["token", "revoke", &id]);
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

    /// Item 1: after `maos key rotate kernel`, a copy of the old data
    /// directory minted a token with the retired key; it verified, was absent
    /// from `maos token list`, and could not be revoked. A retired key now
    /// verifies only tokens issued before its logged retirement, and the kernel
    /// accepts only tokens in its own ledger.
    #[test]
    fn ct_cap_05_attack_a_copy_of_a_retired_key_mints_nothing_the_kernel_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let copy = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        let before = issue(dir.path(), "writer", &["fs.write=path:/workspace/**"]);
        let status = Command::new("cp").arg("-a").arg(format!("{}/.", dir.path().display())).arg(copy.path()).status();
        assert!(status.unwrap().success(), "cp -a failed");
        ok(dir.path(), &["key", "rotate", "kernel"]);
        std::thread::sleep(Duration::from_millis(5));
        // The copy still holds the old secret: it mints (and logs in its own log only).
        let forged = issue(copy.path(), "writer", &["fs.write=path:/workspace/**"]);
        let inspect = maos(dir.path(), &["--json", "token", "inspect", &forged]);
        assert!(!inspect.status.success(), "{}", text(&inspect.stdout));
        let out = format!("{}{}", text(&inspect.stdout), text(&inspect.stderr));
        assert!(out.contains("TOKEN-KEY-RETIRED"), "{out}");
        let daemon = Daemon::start(dir.path(), logs.path(), "rotated", &[]);
        // Issued before the rotation, logged: still good.
        let agent = Agent::open(&daemon.base, &before);
        done_id(&agent.submit(&fs_write("/workspace/a.txt", "x")));
        let (status, body) = open_session(&client(), &daemon.base, &forged);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        // Minted by the current key but never logged (a token the kernel never
        // issued): refused as unlogged. Minted here into a copy made after the rotation.
        let copy2 = tempfile::tempdir().unwrap();
        drop(daemon);
        let status = Command::new("cp").arg("-a").arg(format!("{}/.", dir.path().display())).arg(copy2.path()).status();
        assert!(status.unwrap().success(), "cp -a failed");
        let unlogged = issue(copy2.path(), "writer", &["fs.write=path:/workspace/**"]);
        let inspect = maos(dir.path(), &["--json", "token", "inspect", &unlogged]);
        let out = format!("{}{}", text(&inspect.stdout), text(&inspect.stderr));
        assert!(!inspect.status.success() && out.contains("TOKEN-UNLOGGED"), "{out}");
        let daemon = Daemon::start(dir.path(), logs.path(), "rotated-again", &[]);
        let (status, body) = open_session(&client(), &daemon.base, &unlogged);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        drop(daemon);
        audit_clean(dir.path());
    }

    /// Rewrites, in every copy of the log, the first record whose payload
    /// holds `needle`: one payload byte changed and the CRC recomputed, the
    /// stored hash kept (what an editor without the key can do). Its Lsn.
    fn forge_record(dir: &Path, needle: &[u8]) -> u64 {
        let mut forged = None;
        for copy in ["wal", "wal-secondary"] {
            let mut paths: Vec<_> = std::fs::read_dir(dir.join(copy)).unwrap().map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")) {
                let mut bytes = std::fs::read(&path).unwrap();
                let scan = maos_wal::scan_segment(&bytes);
                let found = scan.records.iter().find(|(_, r)| r.payload.windows(needle.len()).any(|w| w == needle));
                let Some((off, rec)) = found else { continue };
                let (off, len, lsn) = (*off, rec.hashed.len() + 36, rec.lsn.0);
                let at = off
                    + maos_wal::RECORD_HEADER_LEN
                    + rec.payload.windows(needle.len()).position(|w| w == needle).unwrap();
                bytes[at] ^= 0x20;
                let crc = crc32c::crc32c(&bytes[off..off + len - 4]);
                bytes[off + len - 4..off + len].copy_from_slice(&crc.to_le_bytes());
                std::fs::write(&path, bytes).unwrap();
                forged = Some(lsn);
                break;
            }
        }
        forged.expect("no record holds the needle")
    }

    /// Item 2: a record before the last checkpoint rewritten with a fixed CRC
    /// was folded by `maos up` (which started `normal`) although `maos audit
    /// verify` named `WAL-CHAIN` at its Lsn; a revoked token came back. Boot
    /// now re-hashes every record it folds and refuses, naming the Lsn.
    #[test]
    fn ct_wal_12_attack_a_forged_revocation_before_the_checkpoint_stops_the_boot() {
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        let token = issue(dir.path(), "writer", &["fs.write=path:/workspace/**"]);
        let id = ok_json(dir.path(), &["token", "list"])["tokens"][0]["id"].as_str().unwrap().to_owned();
        ok(dir.path(), &["token", "revoke", &id, "--reason", "compromised"]);
        // A daemon run signs a checkpoint after the revocation at shutdown.
        let mut daemon = Daemon::start(dir.path(), logs.path(), "before", &[]);
        let (status, _) = open_session(&client(), &daemon.base, &token);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(daemon.sigterm().success());
        let lsn = forge_record(dir.path(), b"compromised");
        let verify = maos(dir.path(), &["--json", "audit", "verify"]);
        let verify_out = format!("{}{}", text(&verify.stdout), text(&verify.stderr));
        assert!(verify_out.contains("WAL-CHAIN"), "{verify_out}");
        let out = up_refused(dir.path());
        assert!(out.contains("WAL-CHAIN"), "{out}");
        assert!(
            out.contains(&format!("lsn {lsn}")) || out.contains(&format!("Lsn {lsn}")),
            "lsn {lsn} not named: {out}"
        );
        assert!(!dir.path().join("run/daemon.json").exists());
    }

    /// Item 4 (sessions): one agent opened 4,093 HTTP sessions in 0.8 s and
    /// every other agent got `API-BUSY`. One token now holds at most
    /// `SESSIONS_PER_TOKEN_MAX` (16) sessions; a second agent is still served.
    #[test]
    fn attack_one_token_opening_sessions_in_a_loop_cannot_starve_another_agent() {
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        let greedy = issue(dir.path(), "greedy", &["fs.write=path:/workspace/**"]);
        let polite = issue(dir.path(), "polite", &["fs.write=path:/workspace/**"]);
        let daemon = Daemon::start(dir.path(), logs.path(), "sessions", &[]);
        let http = client();
        let mut opened = 0;
        let mut first = None;
        let refused = loop {
            let (status, body) = open_session(&http, &daemon.base, &greedy);
            if status != StatusCode::CREATED {
                break (status, body);
            }
            first.get_or_insert_with(|| body["session"].as_str().unwrap().to_owned());
            opened += 1;
            assert!(opened <= 64, "no bound on sessions per token");
        };
        assert_eq!(opened, 16, "the bound is SESSIONS_PER_TOKEN_MAX");
        assert_eq!(refused.0, StatusCode::TOO_MANY_REQUESTS, "{}", refused.1);
        assert_eq!(refused.1["error"]["code"], "API-SESSIONS-PER-TOKEN", "{}", refused.1);
        let agent = Agent::open(&daemon.base, &polite);
        done_id(&agent.submit(&fs_write("/workspace/polite.txt", "served")));
        // Revoking the greedy token closes its sessions at once (no slot held until expiry).
        revoke_token_of(dir.path(), "greedy");
        let greedy_session = Agent { http: client(), base: daemon.base.clone(), session: first.unwrap() };
        let (status, body) = greedy_session.submit(&fs_write("/workspace/greedy.txt", "x"));
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("unknown session"), "{body}");
        drop(daemon);
    }

    /// Item 4 (listeners): connections that sent half a header or half a body
    /// stayed open (one run reached 20,000 descriptors and `/v1/health` went
    /// unanswered for 20 s). Now each is cut after `HEADER_READ_TIMEOUT` or
    /// `BODY_READ_TIMEOUT` (10 s), and the daemon answers others meanwhile.
    #[test]
    fn attack_slow_clients_sending_half_a_request_are_cut_off() {
        use std::io::{Read as _, Write as _};
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        let token = issue(dir.path(), "writer", &["fs.write=path:/workspace/**"]);
        let daemon = Daemon::start(dir.path(), logs.path(), "slow", &[]);
        let agent = Agent::open(&daemon.base, &token);
        let addr = daemon.base.trim_start_matches("http://").to_owned();
        let connect = || {
            let s = std::net::TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(25))).unwrap();
            s
        };
        let mut half_headers = Vec::new();
        for _ in 0..100 {
            let mut s = connect();
            s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
            half_headers.push(s);
        }
        let mut half_bodies = Vec::new();
        for _ in 0..20 {
            let mut s = connect();
            let head = format!(
                "POST /v1/intents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"action\":",
                agent.session
            );
            s.write_all(head.as_bytes()).unwrap();
            half_bodies.push(s);
        }
        let started = Instant::now();
        // Meanwhile a well-behaved client is served at once.
        let health = client().get(format!("{}/v1/health", daemon.base)).timeout(Duration::from_secs(3)).send();
        assert!(health.is_ok_and(|r| r.status() == StatusCode::OK), "health unanswered while slow clients wait");
        done_id(&agent.submit(&fs_write("/workspace/served.txt", "served")));
        for mut s in half_bodies {
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            assert!(answer.starts_with("HTTP/1.1 408"), "half a body: {answer}");
            assert!(answer.contains("API-BODY-TIMEOUT"), "{answer}");
        }
        for mut s in half_headers {
            let mut rest = Vec::new();
            // Closed by the server: EOF (or a reset), not our 25 s read timeout.
            let _ = s.read_to_end(&mut rest);
        }
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(20), "slow connections held for {waited:?}");
        assert!(waited >= Duration::from_secs(9), "cut before the timeout: {waited:?}");
        drop(daemon);
    }

    /// Item 4 (MCP sessions): one agent opened 30,000 MCP sessions in 13 s
    /// (+1.1 GB). One token now holds at most `MCP_SESSIONS_PER_OWNER_MAX` (16):
    /// a new one past that closes the token's least recently used session, so
    /// the loop churns its own share while a second agent is served, and
    /// revoking the token closes its sessions.
    #[test]
    fn attack_one_token_opening_mcp_sessions_in_a_loop_cannot_starve_another_agent() {
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        let greedy = issue(dir.path(), "greedy", &["fs.write=path:/workspace/**"]);
        let polite = issue(dir.path(), "polite", &["fs.write=path:/workspace/**"]);
        let daemon = Daemon::start(dir.path(), logs.path(), "mcp-sessions", &[]);
        let http = client();
        let post = |token: &str, session: Option<&str>, body: serde_json::Value| {
            let mut r = http
                .post(format!("{}/mcp", daemon.base))
                .bearer_auth(token)
                .header("Accept", "application/json, text/event-stream")
                .json(&body);
            if let Some(id) = session {
                r = r.header("Mcp-Session-Id", id);
            }
            let r = r.send().unwrap();
            let id = r.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
            (r.status(), id, r.text().unwrap())
        };
        let initialize = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "loop", "version": "1" } }
        });
        let ping = json!({ "jsonrpc": "2.0", "id": 2, "method": "ping" });
        let mut sessions = Vec::new();
        for _ in 0..200 {
            let (status, id, text) = post(&greedy, None, initialize.clone());
            assert_eq!(status, StatusCode::OK, "{text}");
            sessions.push(id.expect("a session id"));
        }
        // The oldest were closed to make room; the newest 16 are live.
        let live = |id: &String| post(&greedy, Some(id), ping.clone()).0 == StatusCode::OK;
        assert!(!live(&sessions[0]), "the first session outlived the bound");
        assert!(!live(&sessions[183]));
        assert!(sessions[184..].iter().all(live), "the newest 16 sessions are served");
        let (status, polite_session, text) = post(&polite, None, initialize.clone());
        assert_eq!(status, StatusCode::OK, "{text}");
        assert_eq!(post(&polite, polite_session.as_deref(), ping.clone()).0, StatusCode::OK);
        // Revoking the greedy token closes its sessions at once.
        revoke_token_of(dir.path(), "greedy");
        let (status, _, text) = post(&greedy, Some(&sessions[199]), ping.clone());
        assert_eq!(status, StatusCode::NOT_FOUND, "the revoked token's session is gone: {text}");
        assert_eq!(
            post(&polite, polite_session.as_deref(), ping).0,
            StatusCode::OK,
            "the other agent keeps its session"
        );
        drop(daemon);
    }

    /// Item 4 (outcome bytes): the outcome table kept every output body (100
    /// reads of 4 MB held 309 MB). A body now leaves the table once its agent
    /// has it, and bodies never fetched hold at most `RESULT_BODY_BYTES_MAX`
    /// (64 MiB), the oldest dropped first.
    #[test]
    fn attack_reads_never_collected_cannot_grow_the_outcome_table() {
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        let token = issue(dir.path(), "reader", &["fs.read=path:/workspace/**"]);
        std::fs::create_dir_all(dir.path().join("workspace")).unwrap();
        std::fs::write(dir.path().join("workspace/big.txt"), "x".repeat(4 << 20)).unwrap();
        let daemon = Daemon::start(dir.path(), logs.path(), "outcomes", &[]);
        let agent = Agent::open(&daemon.base, &token);
        let read = json!({ "action": "fs.read", "args": { "path": "/workspace/big.txt" } });
        // Fetched: the body is handed over once.
        let (status, view) = agent.submit(&read);
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["output"]["text"].as_str().map(str::len), Some(4 << 20), "{}", view["output"]["summary"]);
        let id = view["intent"].as_str().unwrap();
        let (_, again) = agent.get(&format!("/v1/intents/{id}"));
        assert_eq!(again["output"]["body_dropped"], "delivered", "{}", again["output"]["summary"]);
        assert!(again["output"]["text"].is_null());
        // Never fetched: 20 reads of 4 MiB, and the table holds at most 64 MiB of them.
        let mut no_wait = read.clone();
        no_wait["wait_ms"] = json!(0);
        // A read that finished before the submit answered is handed over in
        // that answer (its body leaves the table: `delivered`); the others
        // were never fetched.
        let (ids, handed): (Vec<String>, Vec<bool>) = (0..20)
            .map(|_| {
                let view = agent.submit(&no_wait).1;
                (view["intent"].as_str().unwrap().to_owned(), view["output"]["text"].is_string())
            })
            .unzip();
        let handed_over = handed.iter().filter(|h| **h).count();
        // The operator's look waits for each outcome without taking its body;
        // once all are done, a second look finds which bodies are still held.
        let operator = daemon.operator();
        let look = |id: &str, wait_ms: u64| -> serde_json::Value {
            let url = format!("{}/v1/intents/{id}?wait_ms={wait_ms}", daemon.base);
            client().get(url).bearer_auth(&operator).send().unwrap().json().unwrap()
        };
        for id in &ids {
            assert_eq!(look(id, 30_000)["status"], "done");
        }
        let held: Vec<bool> = ids
            .iter()
            .zip(&handed)
            .map(|(id, handed)| {
                let view = look(id, 0);
                match (view["output"]["text"].as_str().map(str::len), view["output"]["body_dropped"].as_str()) {
                    (None, Some("delivered")) if *handed => false,
                    (Some(n), None) if !handed => {
                        assert_eq!(n, 4 << 20);
                        true
                    }
                    (None, Some("evicted")) if !handed => false,
                    other => panic!("unexpected output state {other:?} (handed over at submit: {handed})"),
                }
            })
            .collect();
        let expected = (20 - handed_over).min(16);
        assert_eq!(held.iter().filter(|h| **h).count(), expected, "64 MiB of 4 MiB bodies: {held:?}");
        drop(daemon);
    }

    /// Item 5: 28,635 denies in 20 s grew the log by 293 MB. A deny now costs
    /// the agent rate, and repeats of one (action, code) within a minute are
    /// counted into one `kernel.denies` record, logged when the window closes
    /// or the daemon stops (CT-WAL-14: nothing counted is lost on SIGTERM);
    /// the log stays verifiable and replays clean, and another agent is served.
    #[test]
    fn ct_wal_14_attack_denied_intents_in_a_loop_grow_the_log_by_a_bounded_amount() {
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        let flooder = issue(dir.path(), "flooder", &["fs.write=path:/workspace/**"]);
        let polite = issue(dir.path(), "polite", &["fs.write=path:/workspace/**"]);
        let mut daemon = Daemon::start(dir.path(), logs.path(), "denies", &[]);
        let wal_bytes = || -> u64 {
            std::fs::read_dir(dir.path().join("wal"))
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.metadata().unwrap().len())
                .sum()
        };
        let agent = Agent::open(&daemon.base, &flooder);
        // Warm up: the token text is logged with the first decision.
        assert_eq!(agent.submit(&fs_write("/etc/passwd", "x")).1["status"], "denied");
        let before = wal_bytes();
        for _ in 0..500 {
            let (_, view) = agent.submit(&fs_write("/etc/passwd", "x"));
            assert_eq!(view["status"], "denied", "{view}");
            assert!(view["code"].as_str().is_some_and(|c| c.starts_with("DSC-") || c.starts_with("INTENT-")), "{view}");
        }
        let grown = wal_bytes().saturating_sub(before);
        eprintln!("500 repeated denies grew the log by {grown} bytes");
        assert!(grown < 64 * 1024, "500 repeated denies grew the log by {grown} bytes");
        done_id(&Agent::open(&daemon.base, &polite).submit(&fs_write("/workspace/polite.txt", "served")));
        assert!(daemon.sigterm().success(), "{}", daemon.output());
        let records = export(dir.path());
        let counted: u64 = records
            .iter()
            .filter(|r| r["kind_name"] == "kernel.denies" && r["payload"]["agent"] == "flooder")
            .map(|r| r["payload"]["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, 500, "every repeat is counted in the log");
        audit_clean(dir.path());
    }
}
