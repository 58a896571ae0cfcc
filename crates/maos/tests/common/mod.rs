//! What the daemon tests share: the CLI run as a process, a real `maos up`
//! on a temporary data directory, and an agent talking HTTP to it.
#![cfg(test)]
#![allow(dead_code)] // each test binary uses a different part

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const MAOS: &str = env!("CARGO_BIN_EXE_maos");
/// Longest a daemon may take to come up (recovery included) or to stop.
pub const DAEMON_WAIT: Duration = Duration::from_secs(20);

// Record kinds (docs/kernel.md, docs/commit-layer.md).
pub const KIND_COMMIT_INTENT: u64 = 0x0200;
pub const KIND_COMMIT_EXECUTING: u64 = 0x0201;
pub const KIND_COMMIT_RESULT: u64 = 0x0202;
pub const KIND_COMMIT_FAILED: u64 = 0x0203;
pub const KIND_COMMIT_UNDONE: u64 = 0x0204;
pub const KIND_DECISION: u64 = 0x0300;
pub const KIND_APPROVAL_DECIDED: u64 = 0x0311;

// ---- the CLI as a process ------------------------------------------------

pub fn maos(dir: &Path, args: &[&str]) -> Output {
    Command::new(MAOS).args(args).env("MAOS_DATA_DIR", dir).env("NO_COLOR", "1").output().expect("run maos")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn ok(dir: &Path, args: &[&str]) -> Output {
    let o = maos(dir, args);
    assert!(o.status.success(), "maos {args:?} failed ({}): {}{}", o.status, text(&o.stdout), text(&o.stderr));
    o
}

pub fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = ok(dir, &all);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("maos {args:?}: not JSON ({e}): {}", text(&o.stdout)))
}

pub fn init(dir: &Path) {
    ok(dir, &["init"]);
}

/// `maos token issue …` for `agent`: the token text alone on stdout.
pub fn issue(dir: &Path, agent: &str, allow: &[&str]) -> String {
    // Every effect costs one budget unit (its descriptor): enough for the load tests.
    let mut args = vec!["token", "issue", "--agent", agent, "--rate", "1000/s", "--budget", "1000000"];
    for a in allow {
        args.extend_from_slice(&["--allow", a]);
    }
    let token = text(&ok(dir, &args).stdout).trim().to_owned();
    assert!(token.starts_with("maos1."), "{token}");
    token
}

/// Every record of the log, through `maos audit export --format jsonl`.
pub fn export(dir: &Path) -> Vec<Value> {
    let o = ok(dir, &["audit", "export", "--format", "jsonl"]);
    text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("an export line is JSON")).collect()
}

/// The intent id a record is about: the Intent JSON's id, or the bare id.
pub fn record_intent(record: &Value) -> Option<String> {
    let intent = record.pointer("/payload/intent")?;
    intent.get("id").unwrap_or(intent).as_str().map(str::to_owned)
}

/// Records of `kind` counted per intent id.
pub fn count_by_intent(records: &[Value], kind: u64) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in records.iter().filter(|r| r["kind"] == kind) {
        let id = record_intent(r).unwrap_or_else(|| panic!("record without an intent: {r}"));
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

pub fn audit_clean(dir: &Path) {
    let verify = ok_json(dir, &["audit", "verify"]);
    assert_eq!(verify["valid"], true, "{verify}");
    let replay = ok_json(dir, &["audit", "replay"]);
    assert_eq!(replay["divergence_count"], 0, "{replay}");
}

// ---- the daemon ----------------------------------------------------------

/// A running `maos up`; killed (SIGKILL) if a test fails before stopping it.
pub struct Daemon {
    pub child: Child,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub base: String,
}

impl Daemon {
    /// Starts `maos [global] up` on `dir` with its output in
    /// `<log_dir>/<name>.log` and waits until it serves `/v1/health`.
    pub fn start(dir: &Path, log_dir: &Path, name: &str, global: &[&str]) -> Self {
        Self::start_env(dir, log_dir, name, global, &[])
    }

    /// [`Self::start`] with more environment.
    pub fn start_env(dir: &Path, log_dir: &Path, name: &str, global: &[&str], env: &[(&str, &Path)]) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(MAOS)
            .args(global)
            .args(["up", "--listen", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .env("MAOS_DATA_DIR", dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn maos up");
        let mut daemon = Self { child, dir: dir.to_path_buf(), log, base: String::new() };
        let started = Instant::now();
        // run/daemon.json is written once recovery finished and the port is
        // bound; a stale one from a killed run names another pid.
        loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("maos up exited early ({status}): {}", daemon.output());
            }
            assert!(started.elapsed() < DAEMON_WAIT, "maos up never wrote run/daemon.json: {}", daemon.output());
            if let Ok(info) = std::fs::read_to_string(dir.join("run/daemon.json"))
                && let Ok(info) = serde_json::from_str::<Value>(&info)
                && info["pid"] == daemon.child.id()
            {
                daemon.base = format!("http://{}", info["listen"].as_str().unwrap());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let http = client();
        loop {
            if let Ok(r) = http.get(format!("{}/v1/health", daemon.base)).send()
                && r.status() == StatusCode::OK
            {
                let health: Value = r.json().unwrap();
                assert_eq!(health["status"], "ok", "{health}");
                assert_eq!(health["mode"], "normal", "{health}");
                break;
            }
            assert!(started.elapsed() < DAEMON_WAIT, "/v1/health never answered: {}", daemon.output());
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The start report `maos --json up` prints (`recovered`, `mode`, ...).
    pub fn report(&self) -> Value {
        let out = self.output();
        let start = out.find("{\n").unwrap_or_else(|| panic!("no JSON report: {out}"));
        let mut values = serde_json::Deserializer::from_str(out.get(start..).unwrap()).into_iter::<Value>();
        values.next().and_then(Result::ok).unwrap_or_else(|| panic!("no JSON report: {out}"))
    }

    pub fn operator(&self) -> String {
        std::fs::read_to_string(self.dir.join("run/operator.token")).unwrap().trim().to_owned()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn sigterm(&mut self) -> ExitStatus {
        let o = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).output().expect("run kill");
        assert!(o.status.success(), "kill -TERM: {}", text(&o.stderr));
        wait_bounded(&mut self.child, DAEMON_WAIT).unwrap_or_else(|| panic!("no exit after SIGTERM: {}", self.output()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

pub fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

// ---- an agent over HTTP --------------------------------------------------

pub struct Agent {
    pub http: Client,
    pub base: String,
    pub session: String,
}

impl Agent {
    pub fn open(base: &str, token: &str) -> Self {
        let http = client();
        let (status, body) = open_session(&http, base, token);
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let session = body["session"].as_str().unwrap().to_owned();
        assert!(session.starts_with("ses_"), "{session}");
        Self { http, base: base.to_owned(), session }
    }

    pub fn submit(&self, intent: &Value) -> (StatusCode, Value) {
        let r = self.http.post(format!("{}/v1/intents", self.base)).bearer_auth(&self.session).json(intent).send();
        let r = r.unwrap();
        (r.status(), r.json().unwrap())
    }

    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.session).send().unwrap();
        (r.status(), r.json().unwrap())
    }

    pub fn post(&self, path: &str) -> (StatusCode, Value) {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.session).send().unwrap();
        (r.status(), r.json().unwrap())
    }
}

pub fn open_session(http: &Client, base: &str, token: &str) -> (StatusCode, Value) {
    let r = http.post(format!("{base}/v1/sessions")).bearer_auth(token).send().unwrap();
    (r.status(), r.json().unwrap())
}

pub fn fs_write(path: &str, content: &str) -> Value {
    json!({ "action": "fs.write", "args": { "path": path, "content": content } })
}

pub fn mail_send(to: &str, body: &str) -> Value {
    json!({ "action": "mail.send", "args": { "to": to, "subject": "load", "body": body } })
}

/// Mail (a public sink) from a session that read an internal workspace
/// file: Standard escalates it (a declassification needs a human, HACF L2).
pub fn declassify(tag: &str, wait_ms: u64) -> Value {
    let mut intent = mail_send("bob@example.com", &format!("quarterly figures {tag}"));
    intent["wait_ms"] = json!(wait_ms);
    intent
}

/// Whether a message whose body holds `tag` is in the outbox or sent.
pub fn mailed(dir: &Path, tag: &str) -> bool {
    ["mail/outbox/new", "mail/outbox/sending", "mail/sent/new"]
        .iter()
        .filter_map(|d| std::fs::read_dir(dir.join(d)).ok())
        .flatten()
        .filter_map(Result::ok)
        .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&format!("quarterly figures {tag}"))))
}

pub fn done_id(reply: &(StatusCode, Value)) -> String {
    assert_eq!(reply.0, StatusCode::OK, "{}", reply.1);
    assert_eq!(reply.1["status"], "done", "{}", reply.1);
    reply.1["intent"].as_str().unwrap().to_owned()
}
