//! CLI integration tests: run the built `maos` binary against a temporary data
//! directory, as a user would.

#[cfg(test)]
mod cli {
    use std::path::Path;
    use std::process::{Command, Output, Stdio};

    fn maos(dir: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_maos"))
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run maos")
    }

    fn maos_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_maos"))
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn maos");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    fn stdout(o: &Output) -> String {
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn json(o: &Output) -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
    }

    fn init() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let o = maos(tmp.path(), &["init"]);
        assert!(o.status.success(), "init failed: {}", String::from_utf8_lossy(&o.stderr));
        tmp
    }

    fn issue(dir: &Path, extra: &[&str]) -> String {
        let mut args = vec!["token", "issue", "--agent", "assistant", "--allow", "fs.write=/workspace/**"];
        args.extend_from_slice(extra);
        let o = maos(dir, &args);
        assert!(o.status.success(), "issue failed: {}", String::from_utf8_lossy(&o.stderr));
        stdout(&o).trim().to_owned()
    }

    #[test]
    fn init_writes_keys_0600_and_refuses_to_overwrite() {
        let tmp = init();
        #[cfg(unix)]
        for key in ["kernel.key", "commander.key"] {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(tmp.path().join("keys").join(key)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        assert!(std::fs::read_to_string(tmp.path().join("maos.toml")).unwrap().contains("profile = \"standard\""));
        let o = maos(tmp.path(), &["init"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("MAOS-ALREADY-INITIALIZED"));
    }

    #[test]
    fn issue_then_inspect_shows_claims() {
        let tmp = init();
        let token = issue(tmp.path(), &["--ring", "2", "--ttl", "30m", "--budget", "50", "--rate", "10/m"]);
        assert!(token.starts_with("maos1."));
        let o = maos(tmp.path(), &["--json", "token", "inspect", &token]);
        assert!(o.status.success());
        let doc = json(&o);
        assert_eq!(doc["valid"], true);
        assert_eq!(doc["claims"]["agent"], "assistant");
        assert_eq!(doc["claims"]["budget"], 50);
        assert_eq!(doc["claims"]["rate_per_hour"], 600);
        // From stdin too, in text mode.
        let o = maos_stdin(tmp.path(), &["token", "inspect", "-"], &token);
        assert!(o.status.success());
        assert!(stdout(&o).contains("fs.write=/workspace/**"));
    }

    #[test]
    fn tampered_token_exits_3_with_stable_code() {
        let tmp = init();
        let token = issue(tmp.path(), &[]);
        let mut bent = token.into_bytes();
        let i = bent.len() - 10;
        bent[i] = if bent[i] == b'A' { b'B' } else { b'A' };
        let bent = String::from_utf8(bent).unwrap();
        let o = maos(tmp.path(), &["--json", "token", "inspect", &bent]);
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(json(&o)["code"], "TOKEN-SIGNATURE");
        let o = maos(tmp.path(), &["token", "inspect", "maos1.!!!"]);
        assert_eq!(o.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&o.stderr).contains("TOKEN-ENCODING"));
    }

    #[test]
    fn derive_revoke_list_and_restart() {
        let tmp = init();
        let parent = issue(tmp.path(), &["--budget", "100"]);
        let o = maos_stdin(
            tmp.path(),
            &[
                "--json",
                "token",
                "derive",
                "-",
                "--agent",
                "helper",
                "--allow",
                "fs.write=/workspace/out/*",
                "--budget",
                "40",
            ],
            &parent,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let child = json(&o)["token"].as_str().unwrap().to_owned();
        // Widening names the field.
        let o = maos(tmp.path(), &["--json", "token", "derive", &parent, "--agent", "x", "--allow", "fs.write=/etc/*"]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(json(&o)["code"], "TOKEN-WIDENED");
        assert!(json(&o)["error"].as_str().unwrap().contains("permissions"));
        let o = maos(
            tmp.path(),
            &[
                "--json",
                "token",
                "derive",
                &parent,
                "--agent",
                "x",
                "--allow",
                "fs.write=/workspace/*",
                "--budget",
                "61",
            ],
        );
        assert_eq!(json(&o)["code"], "TOKEN-WIDENED");

        let parent_id = json(&maos(tmp.path(), &["--json", "token", "inspect", &parent]))["claims"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let o = maos(tmp.path(), &["--json", "token", "revoke", &parent_id, "--reason", "test"]);
        assert!(o.status.success());
        assert_eq!(json(&o)["revoked"].as_array().unwrap().len(), 2);
        assert_eq!(json(&o)["epoch"], 1);
        // A new process (a restart) still refuses both.
        for t in [&parent, &child] {
            let o = maos(tmp.path(), &["--json", "token", "inspect", t]);
            assert_eq!(o.status.code(), Some(3));
            assert_eq!(json(&o)["code"], "TOKEN-REVOKED");
        }
        let list = json(&maos(tmp.path(), &["--json", "token", "list", "--all"]));
        assert_eq!(list["epoch"], 1);
        assert_eq!(list["tokens"].as_array().unwrap().len(), 2);
        assert!(list["tokens"].as_array().unwrap().iter().all(|t| t["status"] == "revoked"));
        let live = json(&maos(tmp.path(), &["--json", "token", "list"]));
        assert_eq!(live["tokens"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn long_ttl_needs_commander_ack_and_is_recorded() {
        let tmp = init();
        let o = maos(
            tmp.path(),
            &["--json", "token", "issue", "--agent", "a", "--allow", "mail.send=*@example.com", "--ttl", "2h"],
        );
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(json(&o)["code"], "TOKEN-TTL-ACK");
        let o = maos(
            tmp.path(),
            &[
                "--json",
                "token",
                "issue",
                "--agent",
                "a",
                "--allow",
                "mail.send=*@example.com",
                "--ttl",
                "2h",
                "--commander-ack",
            ],
        );
        assert!(o.status.success());
        assert_eq!(json(&o)["claims"]["commander_ack"], true);
        let export = stdout(&maos(tmp.path(), &["audit", "export", "--format", "jsonl"]));
        assert!(export.contains("\"commander_ack\":true"), "{export}");
        // The log holds the token's hash, never the token itself.
        let token = json(&o)["token"].as_str().unwrap().to_owned();
        assert!(!export.contains(&token[6..60]));
    }

    #[test]
    fn inspect_offline_with_a_public_key_file() {
        let tmp = init();
        let token = issue(tmp.path(), &[]);
        let elsewhere = tempfile::tempdir().unwrap();
        let pubkey = tmp.path().join("keys").join("kernel.pub");
        let o = maos(elsewhere.path(), &["token", "inspect", &token, "--public-key", pubkey.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let wrong = tmp.path().join("keys").join("commander.pub");
        let o =
            maos(elsewhere.path(), &["--json", "token", "inspect", &token, "--public-key", wrong.to_str().unwrap()]);
        assert_eq!(json(&o)["code"], "TOKEN-UNKNOWN-ISSUER");
    }

    #[test]
    fn uninitialised_dir_and_bad_input_give_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let o = maos(tmp.path(), &["token", "list"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains("run `maos init` first"));
        let tmp = init();
        let o = maos(tmp.path(), &["--json", "token", "issue", "--agent", "Bad Agent", "--allow", "fs.read=/w/*"]);
        assert_eq!(o.status.code(), Some(1));
        let o = maos(tmp.path(), &["--json", "token", "issue", "--agent", "a", "--allow", "fs.write"]);
        assert_eq!(json(&o)["code"], "TOKEN-INVALID");
        let o =
            maos(tmp.path(), &["--json", "token", "issue", "--agent", "a", "--allow", "fs.read=/w/*", "--ring", "1"]);
        assert_eq!(o.status.code(), Some(2));
    }

    #[test]
    fn demo_runs_the_scenario_on_a_real_kernel() {
        let tmp = tempfile::tempdir().unwrap();
        let o = maos(tmp.path(), &["demo"]);
        let text = stdout(&o);
        assert!(o.status.success(), "{text}\n{}", String::from_utf8_lossy(&o.stderr));
        let line =
            |needle: &str| text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {text}"));
        assert!(line("allow    fs.write /workspace/notes/plan.md").contains("(lsn "));
        assert!(line("session is tainted").contains("(lsn "));
        let exfil = line("mail.send attacker@evil.example");
        assert!(exfil.trim_start().starts_with("deny") && exfil.contains("DSC-4-"), "{exfil}");
        assert!(line("fs.write /workspace/scratch/runaway.txt  DSC-2-RATE ×5").trim_start().starts_with("deny"));
        assert!(line("DSC-3-BUDGET ×4").contains("spender"));
        assert!(line("undo     fs.delete /workspace/notes/plan.md").contains("(lsn "));
        assert!(line("back from the Rollback Zone").contains("as the assistant wrote it"));
        assert!(line("audit verify, primary copy").trim_start().starts_with("ok"));
        assert!(line("audit verify, secondary copy").trim_start().starts_with("ok"));
        assert!(line("clean    audit replay").contains(" 0 diverged"));
        assert!(text.contains("every outcome as expected"));
    }

    #[test]
    fn demo_json_is_one_summary_of_every_step() {
        let tmp = tempfile::tempdir().unwrap();
        let o = maos(tmp.path(), &["--json", "demo"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let doc = json(&o);
        assert_eq!(doc["ok"], true);
        let steps = doc["steps"].as_array().unwrap();
        let step = |what: &str, verdict: &str| {
            steps
                .iter()
                .find(|s| s["what"].as_str().is_some_and(|w| w.starts_with(what)) && s["verdict"] == verdict)
                .unwrap_or_else(|| panic!("no `{verdict}` step for `{what}`: {doc:#}"))
        };
        assert!(step("fs.write /workspace/notes/plan.md", "allow")["lsn"].as_u64().is_some());
        assert!(step("mail.send bob@example.com", "allow")["lsn"].as_u64().is_some());
        let exfil = step("mail.send attacker@evil.example", "deny");
        assert!(exfil["code"].as_str().unwrap().starts_with("DSC-4-"), "{exfil}");
        assert!(!exfil["explanation"].as_str().unwrap().is_empty());
        assert!(steps.iter().all(|s| s["what"] != "mail.send attacker@evil.example" || s["verdict"] != "allow"));
        let rate = step("fs.write /workspace/scratch/runaway.txt", "deny");
        assert_eq!((rate["code"].as_str(), rate["count"].as_u64()), (Some("DSC-2-RATE"), Some(5)));
        assert_eq!(step("fs.write /workspace/scratch/runaway.txt", "allow")["count"], 10);
        let budget = step("fs.write /workspace/scratch/spender.txt", "deny");
        assert_eq!((budget["code"].as_str(), budget["count"].as_u64()), (Some("DSC-3-BUDGET"), Some(4)));
        assert_eq!(step("fs.delete /workspace/notes/plan.md", "undo")["restored"], true);
        assert_eq!(step("audit verify, primary copy", "ok")["checkpoints"].as_u64().map(|n| n > 0), Some(true));
        assert!(step("audit verify, secondary copy", "ok")["records"].as_u64().is_some());
        let replay = step("audit replay", "clean");
        assert_eq!(replay["divergences"], 0);
        assert!(replay["decisions"].as_u64().unwrap() > 0);
    }

    /// Byte offset of the record with `lsn` in the first segment of `wal`.
    fn record_offset(wal: &Path, lsn: u64) -> (std::path::PathBuf, usize, usize) {
        let seg = wal.join("00000000000000000001.seg");
        let bytes = std::fs::read(&seg).unwrap();
        let scan = maos_wal::scan_segment(&bytes);
        let (offset, raw) = scan.records.iter().find(|(_, r)| r.lsn.0 == lsn).expect("record present");
        (seg, *offset, raw.hashed.len())
    }

    fn audited(dir: &Path) -> (Option<i32>, serde_json::Value) {
        let o = maos(dir, &["--json", "audit", "verify"]);
        (o.status.code(), json(&o))
    }

    #[test]
    fn ct_wal_12_audit_verify_names_the_first_bad_record() {
        let tmp = init();
        let parent = issue(tmp.path(), &[]);
        let o = maos(tmp.path(), &["token", "derive", &parent, "--agent", "h", "--allow", "fs.write=/workspace/a"]);
        assert!(o.status.success());
        let (code, doc) = audited(tmp.path());
        assert_eq!(code, Some(0), "{doc}");
        assert_eq!(doc["copies"].as_array().unwrap().len(), 2, "both copies are verified");
        let records: Vec<serde_json::Value> =
            stdout(&maos(tmp.path(), &["audit", "export"])).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let issued = records.iter().find(|r| r["kind_name"] == "token.issued").unwrap()["lsn"].as_u64().unwrap();

        // Flip one bit inside the first token.issued record of the primary copy.
        let (seg, offset, len) = record_offset(&tmp.path().join("wal"), issued);
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[offset + len / 2] ^= 0x10;
        std::fs::write(&seg, &bytes).unwrap();
        let (code, doc) = audited(tmp.path());
        assert_eq!(code, Some(3), "{doc}");
        assert_eq!(doc["first_bad_lsn"], issued, "{doc}");
        assert_eq!(doc["code"], "WAL-CRC");
        assert_eq!(doc["copies"][1]["valid"], true, "the secondary copy is intact");
        // An auditor on another machine with only the public key sees the same.
        let elsewhere = tempfile::tempdir().unwrap();
        let pubkey = tmp.path().join("keys/kernel.pub");
        let o = maos(
            elsewhere.path(),
            &[
                "--json",
                "audit",
                "verify",
                "--wal-dir",
                tmp.path().join("wal").to_str().unwrap(),
                "--public-key",
                pubkey.to_str().unwrap(),
            ],
        );
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(json(&o)["first_bad_lsn"], issued);
    }

    #[test]
    fn audit_tail_show_export_have_stable_fields() {
        let tmp = init();
        issue(tmp.path(), &[]);
        let lines: Vec<serde_json::Value> = stdout(&maos(tmp.path(), &["audit", "export", "--format", "jsonl"]))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["kind_name"], "genesis");
        for (i, r) in lines.iter().enumerate() {
            assert_eq!(r["lsn"], i as u64 + 1);
            for field in ["ts_ms", "time", "kind", "kind_name", "prev_hash", "hash", "payload"] {
                assert!(r.get(field).is_some(), "missing {field} in {r}");
            }
            if i > 0 {
                assert_eq!(r["prev_hash"], lines[i - 1]["hash"], "chain in the export");
            }
        }
        let names: Vec<&str> = lines.iter().map(|r| r["kind_name"].as_str().unwrap()).collect();
        assert!(names.contains(&"key.created") && names.contains(&"token.issued") && names.contains(&"checkpoint"));
        let o = maos(tmp.path(), &["audit", "tail", "-n", "2"]);
        assert_eq!(stdout(&o).lines().count(), 2);
        let o = maos(tmp.path(), &["--json", "audit", "show", "2"]);
        assert_eq!(json(&o)["payload"]["type"], "key_created");
        let o = maos(tmp.path(), &["--json", "audit", "show", "999"]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(json(&o)["code"], "WAL-NOT-FOUND");
    }

    #[test]
    fn hardened_profile_encrypts_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let o = maos(tmp.path(), &["--json", "init", "--profile", "hardened"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(json(&o)["wal_encrypted"], true);
        issue(tmp.path(), &[]);
        let (code, doc) = audited(tmp.path());
        assert_eq!(code, Some(0), "{doc}");
        assert!(doc["copies"][0]["sealed_records"].as_u64().unwrap() > 0);
        // The agent id is not readable in the segment files, but is through the CLI with the key.
        let raw = std::fs::read(tmp.path().join("wal/00000000000000000001.seg")).unwrap();
        assert!(!raw.windows(9).any(|w| w == b"assistant"));
        assert!(stdout(&maos(tmp.path(), &["audit", "export"])).contains("assistant"));
        // Without the key, reading refuses rather than guessing.
        std::fs::remove_file(tmp.path().join("keys/wal.key")).unwrap();
        let o = maos(tmp.path(), &["--json", "token", "list"]);
        assert_eq!(o.status.code(), Some(1));
    }

    #[test]
    fn a_running_writer_locks_out_a_second_one() {
        let tmp = init();
        let (_wal, _) =
            maos_wal::Wal::open(maos_wal::WalConfig::new(maos_model_profile(), tmp.path().join("wal"))).unwrap();
        let o = maos(tmp.path(), &["--json", "token", "issue", "--agent", "a", "--allow", "fs.read=/w/*"]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(json(&o)["code"], "WAL-LOCKED");
    }

    fn maos_model_profile() -> maos_model::Profile {
        maos_model::Profile::Standard
    }

    #[test]
    fn key_rotation_is_logged_and_old_tokens_keep_verifying() {
        let tmp = init();
        let old_token = issue(tmp.path(), &[]);
        let o = maos(tmp.path(), &["--json", "key", "rotate", "kernel"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rotated = json(&o);
        assert_ne!(rotated["old_key_id"], rotated["new_key_id"]);
        // Tokens signed by the retired key still verify; new ones use the new key.
        let o = maos(tmp.path(), &["--json", "token", "inspect", &old_token]);
        assert_eq!(json(&o)["valid"], true);
        let new_token = issue(tmp.path(), &[]);
        let o = maos(tmp.path(), &["--json", "token", "inspect", &new_token]);
        assert_eq!(json(&o)["claims"]["issuer"], rotated["new_key_id"]);
        // The handover is in the log, and the whole log verifies with the current and retired keys.
        let export = stdout(&maos(tmp.path(), &["audit", "export"]));
        assert!(export.contains("\"kind_name\":\"key.rotated\""), "{export}");
        let (code, doc) = audited(tmp.path());
        assert_eq!(code, Some(0), "{doc}");
        // With only the new public key, the checkpoints the old key signed do not verify.
        let new_pub = tmp.path().join("keys/kernel.pub");
        let o = maos(tmp.path(), &["--json", "audit", "verify", "--public-key", new_pub.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(json(&o)["code"], "WAL-CHECKPOINT-KEY", "signed by a key the auditor was not given");
        // The retired secret is gone; only its public half remains.
        let retired: Vec<_> = std::fs::read_dir(tmp.path().join("keys/retired")).unwrap().collect();
        assert_eq!(retired.len(), 1);
        let o = maos(tmp.path(), &["--json", "key", "rotate", "commander"]);
        assert!(o.status.success());
        let o = maos(tmp.path(), &["--json", "key", "rotate", "nobody"]);
        assert_eq!(o.status.code(), Some(2));
    }

    #[test]
    fn a_rotation_that_never_reached_the_log_is_discarded() {
        let tmp = init();
        let keys = tmp.path().join("keys");
        // A crash after staging the new key but before logging it.
        let staged = maos_crypto::SigningKey::generate().unwrap();
        maos_crypto::write_secret_key_file(&keys.join("kernel.key.new"), &staged).unwrap();
        maos_crypto::write_public_key_file(&keys.join("kernel.pub.new"), staged.verifying_key()).unwrap();
        let before = std::fs::read(keys.join("kernel.pub")).unwrap();
        let token = issue(tmp.path(), &[]);
        assert!(!keys.join("kernel.key.new").exists(), "the unlogged staged key is removed");
        assert_eq!(std::fs::read(keys.join("kernel.pub")).unwrap(), before, "the old key stays in force");
        let o = maos(tmp.path(), &["--json", "token", "inspect", &token]);
        assert_eq!(json(&o)["valid"], true);
    }

    /// Copies a data directory (so each tampering starts from the same intact log).
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// (offset, length, lsn, kind) of every frame in the first segment.
    fn frames(seg: &[u8]) -> Vec<(usize, usize, u64, u16)> {
        maos_wal::scan_segment(seg)
            .records
            .iter()
            .map(|(off, r)| (*off, r.hashed.len() + 36, r.lsn.0, r.kind.0))
            .collect()
    }

    /// Tampers with the primary copy, then returns what `maos audit verify --wal-dir` says.
    fn tampered(base: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> (Option<i32>, serde_json::Value) {
        let dir = base.parent().unwrap().join(name);
        copy_dir(base, &dir);
        let seg = dir.join("wal/00000000000000000001.seg");
        let mut bytes = std::fs::read(&seg).unwrap();
        edit(&mut bytes);
        std::fs::write(&seg, &bytes).unwrap();
        let o = maos(&dir, &["--json", "audit", "verify", "--wal-dir", dir.join("wal").to_str().unwrap()]);
        (o.status.code(), json(&o))
    }

    #[test]
    fn ct_wal_12_every_tampering_is_named_by_audit_verify() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("base");
        assert!(maos(&base, &["init"]).status.success());
        for i in 0..3 {
            let o = maos(&base, &["token", "issue", "--agent", &format!("a{i}"), "--allow", "fs.read=/w/*"]);
            assert!(o.status.success());
        }
        let other = root.path().join("other");
        assert!(maos(&other, &["init"]).status.success());
        for i in 0..2 {
            let o = maos(&other, &["token", "issue", "--agent", &format!("x{i}"), "--allow", "fs.read=/w/*"]);
            assert!(o.status.success());
        }
        let seg = std::fs::read(base.join("wal/00000000000000000001.seg")).unwrap();
        let fr = frames(&seg);
        let issued: Vec<_> = fr.iter().filter(|f| f.3 == 0x0110).copied().collect();
        let (a, b) = (issued[0], issued[1]);

        // Delete a record: the sequence has a gap where it was.
        let (code, doc) = tampered(&base, "delete", |bytes| {
            bytes.drain(a.0..a.0 + a.1);
        });
        assert_eq!(
            (code, doc["code"].as_str(), doc["first_bad_lsn"].as_u64()),
            (Some(3), Some("WAL-SEQUENCE"), Some(a.2)),
            "{doc}"
        );

        // Swap two neighbouring records.
        let next = fr.iter().find(|f| f.2 == a.2 + 1).copied().unwrap();
        let (code, doc) = tampered(&base, "swap", |bytes| {
            let first = bytes[a.0..a.0 + a.1].to_vec();
            let second = bytes[next.0..next.0 + next.1].to_vec();
            bytes.splice(a.0..next.0 + next.1, second.into_iter().chain(first));
        });
        assert_eq!(
            (code, doc["code"].as_str(), doc["first_bad_lsn"].as_u64()),
            (Some(3), Some("WAL-SEQUENCE"), Some(a.2)),
            "{doc}"
        );

        // Splice in the record with the same Lsn from another, valid log.
        let foreign_seg = std::fs::read(other.join("wal/00000000000000000001.seg")).unwrap();
        let foreign = frames(&foreign_seg).into_iter().find(|f| f.2 == b.2).unwrap();
        let (code, doc) = tampered(&base, "splice", |bytes| {
            bytes.splice(b.0..b.0 + b.1, foreign_seg[foreign.0..foreign.0 + foreign.1].iter().copied());
        });
        assert_eq!(
            (code, doc["code"].as_str(), doc["first_bad_lsn"].as_u64()),
            (Some(3), Some("WAL-CHAIN"), Some(b.2)),
            "{doc}"
        );

        // Truncate inside a record.
        let (code, doc) = tampered(&base, "truncate", |bytes| bytes.truncate(b.0 + b.1 / 2));
        assert_eq!(code, Some(3), "{doc}");
        assert_eq!(doc["first_bad_lsn"].as_u64(), Some(b.2), "{doc}");

        // Replace the last checkpoint's signature, recomputing its hash and CRC as an
        // attacker without the key can: only the signature check catches it.
        let cp = *fr.iter().rev().find(|f| f.3 == 0x0002).unwrap();
        assert_eq!(cp, *fr.last().unwrap(), "each CLI command ends with a checkpoint");
        let (code, doc) = tampered(&base, "signature", |bytes| {
            let frame = &mut bytes[cp.0..cp.0 + cp.1];
            let p = frame.len() - 100;
            frame[32 + p - 10] ^= 0x01; // inside the signature, at the end of the payload
            let hash = maos_crypto::sha3_256(&frame[..64 + p]).0;
            frame[64 + p..96 + p].copy_from_slice(&hash);
            let crc = crc32c::crc32c(&frame[..96 + p]);
            frame[96 + p..].copy_from_slice(&crc.to_le_bytes());
        });
        assert_eq!(
            (code, doc["code"].as_str(), doc["first_bad_lsn"].as_u64()),
            (Some(3), Some("WAL-CHECKPOINT-SIGNATURE"), Some(cp.2)),
            "{doc}"
        );
    }

    /// A real kernel writes decisions and commits into the data directory's log;
    /// the CLI must read them (not mistake them for corrupt journal records),
    /// replay every decision clean, and never export the presented token.
    #[test]
    fn kernel_records_are_replayed_and_redacted_by_the_cli() {
        use std::sync::Arc;
        let tmp = init();
        let dir = tmp.path();
        let o = maos(dir, &["token", "issue", "--agent", "writer", "--allow", "fs.write=/workspace/**", "--ring", "3"]);
        assert!(o.status.success());
        let token = stdout(&o).trim().to_owned();

        let kernel_key = Arc::new(maos_crypto::read_secret_key_file(&dir.join("keys/kernel.key")).unwrap());
        let keys = maos_token::KeyRing::with(kernel_key.verifying_key().clone());
        let commander = maos_crypto::read_public_key_file(&dir.join("keys/commander.pub")).unwrap();
        let wal_config = maos_wal::WalConfig::new(maos_model::Profile::Standard, dir.join("wal"))
            .secondary_dir(dir.join("wal-secondary"))
            .signer(kernel_key, Arc::new(|| maos_wal::StateDigest([0; 32])));
        let (wal, _) = maos_wal::Wal::open(wal_config).unwrap();
        let fs = maos_commit::effectors::fs::FsEffector::new(dir.join("workspace"), dir.join("state/fs")).unwrap();
        let effectors = maos_commit::Effectors::new().with(Arc::new(fs)).unwrap();
        let layer = maos_commit::CommitLayer::open(
            Arc::new(wal),
            effectors,
            maos_commit::CommitConfig::new(dir.join("rollback")),
        )
        .unwrap();
        let dsc = maos_dsc::DscConfig::default_for(maos_model::Profile::Standard).unwrap();
        let config = maos_kernel::KernelConfig::new(Arc::new(layer), dsc, keys, commander);
        let intent = |path: &str| {
            let mut args = std::collections::BTreeMap::new();
            args.insert("content".to_owned(), maos_model::ArgValue::Str("hello".into()));
            args.insert("path".to_owned(), maos_model::ArgValue::Str(path.into()));
            maos_model::Intent {
                id: maos_model::IntentId::new_v7(1, [7; 10]),
                agent: maos_model::AgentId::new("writer").unwrap(),
                action: "fs.write".into(),
                resources: vec![maos_model::Resource { kind: maos_model::ResourceKind::Path, value: path.into() }],
                args,
                effect: maos_model::EffectClass::Write,
                cost: 1,
                sink_level: maos_model::IfcLevel::Internal,
                requires_integrity: false,
                reads: vec![],
                sensitive_args: vec![],
                provenance_deny: false,
                world_state_hash: None,
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (kernel, _) = maos_kernel::Kernel::start(config).await.unwrap();
            let allowed = kernel.submit_and_wait(intent("/workspace/a.txt"), &token).await.unwrap();
            assert!(matches!(allowed, maos_kernel::Reply::Done { .. }), "{allowed:?}");
            // An action the token does not grant: a DSC deny (a path outside the
            // workspace would be refused before the DSC, with no decision to replay).
            let mut delete = intent("/workspace/a.txt");
            delete.action = "fs.delete".into();
            let denied = kernel.submit_and_wait(delete, &token).await.unwrap();
            assert!(matches!(denied, maos_kernel::Reply::Denied { .. }), "{denied:?}");
        });
        rt.shutdown_timeout(std::time::Duration::from_secs(10));

        let replay = json(&maos(dir, &["--json", "audit", "replay"]));
        assert_eq!(replay["ok"], true, "{replay}");
        assert_eq!(replay["decisions"], 2, "{replay}");
        let export = stdout(&maos(dir, &["audit", "export"]));
        assert!(export.contains("\"kind_name\":\"kernel.decision\""), "{export}");
        assert!(export.contains("\"kind_name\":\"commit.result\""), "{export}");
        assert!(!export.contains(&token[6..60]), "the presented token must never be exported");
        // The journal still reads its own events from a log the kernel shared.
        let list = json(&maos(dir, &["--json", "token", "list"]));
        assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
        let (code, doc) = audited(dir);
        assert_eq!(code, Some(0), "{doc}");
    }

    /// Actions are lowercase (`mcp.<server>.<tool>`): two upstreams whose names
    /// differ only in case would share every action, so the config is refused.
    #[test]
    fn attack_upstream_names_differing_only_in_case_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(maos(tmp.path(), &["init"]).status.success());
        let config = "[[upstream]]\nname = \"Files\"\ncommand = \"true\"\n\n[[upstream]]\nname = \"files\"\ncommand = \"true\"\n";
        std::fs::write(tmp.path().join("maos.toml"), config).unwrap();
        let o = maos(tmp.path(), &["up", "--listen", "127.0.0.1:0"]);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("MAOS-CONFIG") && err.contains("ignoring case"), "{err}");
    }
}
