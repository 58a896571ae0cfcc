//! HTTP API tests: a real kernel in-process (WAL on disk in a temp dir, the fs,
//! mail and http effectors, the Standard DSC), the `/v1` router served by
//! [`maos_gateway::serve`] on a loopback port, and a blocking HTTP client, so
//! every request crosses real sockets, axum's extractors and the handlers.
//!
//! No test reaches the network: the http effector's allow-list names only
//! `api.example.com`, and no test asks for it.

#[cfg(test)]
mod api {
    use base64::Engine as _;
    use maos_commit::effectors::fs::FsEffector;
    use maos_commit::effectors::http::{AllowList, HttpConfig, HttpEffector};
    use maos_commit::effectors::mail::MailEffector;
    use maos_commit::{CommitConfig, CommitLayer, Effectors};
    use maos_crypto::{SignatureDomain, SigningKey};
    use maos_gateway::{Api, AuditSource, BODY_BYTES_MAX, SessionLimits, WAIT_MS_MAX};
    use maos_kernel::{Kernel, KernelConfig, KernelHandle};
    use maos_model::{AgentId, IfcLevel, Profile, Ring, TrustClass, UnixMillis};
    use maos_token::{KeyRing, MintRequest, parse_permission};
    use maos_wal::{Wal, WalConfig};
    use reqwest::blocking::{Client, RequestBuilder};
    use reqwest::{Method, StatusCode};
    use serde_json::{Value, json};
    use std::collections::BTreeSet;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::{Arc, OnceLock};
    use std::time::Duration;

    const OPERATOR: &str = "op_test_0123456789abcdef0123456789abcdef";
    const RANDOM_ID: &str = "01a20000-0000-7000-8000-000000000000";

    fn issuer() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::from_seeds(&[0x5A; 64]).unwrap())
    }

    fn commander() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::from_seeds(&[0xC0; 64]).unwrap())
    }

    fn impostor() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::from_seeds(&[0x66; 64]).unwrap())
    }

    fn now() -> UnixMillis {
        let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
        UnixMillis(u64::try_from(ms).unwrap())
    }

    const PERMISSIONS: &[&str] = &[
        "fs.*=/workspace/**",
        "mail.send=*@example.com",
        // The token covers a host the effector's allow-list does not: the
        // Commit Layer must refuse it on its own.
        "http.get=api.example.com,evil.example.net",
    ];

    /// Ring 3 (unregistered agents are ring 3) with ring 2's default hour.
    const RING3_TEST_TTL_MS: u64 = 60 * 60 * 1000;

    /// A capability token for `agent`, signed by `key`, issued at `issued`.
    fn token_with(key: &SigningKey, agent: &str, issued: UnixMillis) -> String {
        static NONCE: AtomicU8 = AtomicU8::new(1);
        let req = MintRequest {
            agent: AgentId::new(agent).unwrap(),
            ring: Ring::Untrusted,
            trust_class: TrustClass::Transparent,
            clearance: IfcLevel::Internal,
            permissions: PERMISSIONS.iter().map(|p| parse_permission(p).unwrap()).collect(),
            ttl_ms: Some(RING3_TEST_TTL_MS),
            rate_per_hour: 360_000,
            max_ops: 100_000,
            budget: 1000,
            mission: Some("Maintain the workspace notes.".into()),
            commander_ack: false,
        };
        let nonce = NONCE.fetch_add(1, Ordering::SeqCst);
        maos_token::mint(key, req, issued, 0, [nonce; 10]).unwrap().text().to_owned()
    }

    fn token(agent: &str) -> String {
        token_with(issuer(), agent, now())
    }

    struct NoAudit;

    impl AuditSource for NoAudit {
        fn read(&self, _from: u64, _limit: usize) -> Result<Vec<Value>, String> {
            Ok(Vec::new())
        }
    }

    /// A kernel and the API on a loopback port, stopped on drop.
    struct Server {
        base: String,
        kernel: KernelHandle,
        dir: tempfile::TempDir,
        shutdown: Option<tokio::sync::oneshot::Sender<()>>,
        rt: Option<tokio::runtime::Runtime>,
        http: Client,
    }

    impl Server {
        fn start(limits: SessionLimits) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let root = dir.path().to_path_buf();
            // Built outside the runtime: the http effector holds a blocking
            // reqwest client, which cannot be created inside async code.
            let wal = Wal::open(WalConfig::new(Profile::Standard, root.join("wal"))).unwrap().0;
            let fs = FsEffector::new(root.join("root"), root.join("state/fs")).unwrap();
            let mail = MailEffector::new(root.join("mail"), "agent@example.com").unwrap();
            let http = HttpEffector::new(HttpConfig::new(AllowList::new(&["api.example.com"]).unwrap())).unwrap();
            let effectors = Effectors::new()
                .with(Arc::new(fs))
                .unwrap()
                .with(Arc::new(mail))
                .unwrap()
                .with(Arc::new(http))
                .unwrap();
            let commit = CommitLayer::open(Arc::new(wal), effectors, CommitConfig::new(root.join("rollback"))).unwrap();
            let (kernel, addr) = rt.block_on(async move {
                let config = KernelConfig::new(
                    Arc::new(commit),
                    maos_dsc::DscConfig::default_for(Profile::Standard).unwrap(),
                    KeyRing::with(issuer().verifying_key().clone()),
                    commander().verifying_key().clone(),
                );
                let (kernel, report) = Kernel::start(config).await.unwrap();
                assert!(report.hold.is_none());
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let api = Arc::new(Api::new(kernel.clone(), OPERATOR, Arc::new(NoAudit), limits));
                tokio::spawn(maos_gateway::serve(listener, api, async move {
                    let _ = rx.await;
                }));
                (kernel, addr)
            });
            let http = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            Self { base: format!("http://{addr}"), kernel, dir, shutdown: Some(tx), rt: Some(rt), http }
        }

        fn new() -> Self {
            Self::start(SessionLimits::default())
        }

        fn root(&self) -> PathBuf {
            self.dir.path().join("root")
        }

        /// Messages held or sent in the mail outbox.
        fn outbox(&self) -> usize {
            ["outbox/new", "outbox/sending", "sent/new"]
                .iter()
                .filter_map(|d| std::fs::read_dir(self.dir.path().join("mail").join(d)).ok())
                .map(|d| {
                    d.filter(|e| e.as_ref().is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))).count()
                })
                .sum()
        }

        fn req(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
            let r = self.http.request(method, format!("{}{path}", self.base));
            match bearer {
                Some(b) => r.bearer_auth(b),
                None => r,
            }
        }

        fn call(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<&Value>) -> Reply {
            let mut r = self.req(method, path, bearer);
            if let Some(b) = body {
                r = r.json(b);
            }
            Reply::of(r.send().unwrap())
        }

        /// Logs issuing `token` with the kernel, as `maos token issue` does:
        /// the kernel accepts only tokens in its ledger.
        fn log_issue(&self, token: &str) {
            let verified = maos_token::UnverifiedToken::parse(token)
                .unwrap()
                .verify(&KeyRing::with(issuer().verifying_key().clone()), now(), &Default::default())
                .unwrap();
            let event = maos_token::TokenEvent::Issued(maos_token::TokenIssued::from_verified(&verified));
            // Already logged (the same token opened two sessions): nothing to do.
            let _ = self.rt.as_ref().unwrap().block_on(self.kernel.token_event(event));
        }

        fn open_session(&self, token: &str) -> String {
            self.log_issue(token);
            let r = self.call(Method::POST, "/v1/sessions", Some(token), None);
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["session"].as_str().unwrap().to_owned()
        }

        fn submit(&self, session: &str, intent: &Value) -> Reply {
            self.call(Method::POST, "/v1/intents", Some(session), Some(intent))
        }

        fn last_lsn(&self) -> Option<u64> {
            self.kernel.status().last_lsn.map(|l| l.0)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            if let Some(tx) = self.shutdown.take() {
                let _ = tx.send(());
            }
            if let Some(rt) = self.rt.take() {
                rt.shutdown_timeout(Duration::from_secs(10));
            }
        }
    }

    /// A response: status, headers we look at, and the body (JSON, or the raw
    /// text as a JSON string when it is not JSON).
    struct Reply {
        status: StatusCode,
        www_authenticate: Option<String>,
        content_type: Option<String>,
        body: Value,
        json: bool,
    }

    impl Reply {
        fn of(r: reqwest::blocking::Response) -> Self {
            let status = r.status();
            let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let www_authenticate = header("www-authenticate");
            let content_type = header("content-type");
            let text = r.text().unwrap();
            let (body, json) = match serde_json::from_str(&text) {
                Ok(v) => (v, true),
                Err(_) => (Value::String(text), false),
            };
            Self { status, www_authenticate, content_type, body, json }
        }

        /// Asserts a coded JSON error.
        fn error(&self, status: StatusCode, code: &str) {
            assert_eq!(self.status, status, "{}", self.body);
            assert!(self.json, "error body is not JSON: {}", self.body);
            assert_eq!(self.body["error"]["code"], code, "{}", self.body);
            assert!(self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.body);
        }
    }

    fn fs_write(path: &str, content: &str) -> Value {
        json!({ "action": "fs.write", "args": { "path": path, "content": content } })
    }

    /// The host comes from the url (the kernel derives the `domain` resource);
    /// `_host` is what an agent might have claimed, which no longer counts.
    fn http_get(_host: &str, url: &str) -> Value {
        json!({ "action": "http.get", "args": { "url": url } })
    }

    fn done(r: &Reply) -> String {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["status"], "done", "{}", r.body);
        r.body["intent"].as_str().unwrap().to_owned()
    }

    /// Not done, with a code: denied by the DSC or failed (rolled back) in the
    /// Commit Layer. Returns the code and the explanation.
    fn refused(r: &Reply) -> (String, String) {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let status = r.body["status"].as_str().unwrap();
        assert!(status == "denied" || status == "failed", "not refused: {}", r.body);
        (r.body["code"].as_str().unwrap().to_owned(), r.body["explanation"].as_str().unwrap_or_default().to_owned())
    }

    // ---- authentication --------------------------------------------------------

    #[test]
    fn missing_or_garbage_bearers_are_401_with_www_authenticate() {
        let s = Server::new();
        let intent = fs_write("/workspace/a.txt", "x");
        for bearer in [None, Some("garbage"), Some("ses_0123456789abcdef0123456789abcdef"), Some("op_wrong")] {
            let r = s.call(Method::POST, "/v1/intents", bearer, Some(&intent));
            r.error(StatusCode::UNAUTHORIZED, "API-UNAUTHORIZED");
            assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"), "{bearer:?}");
            let r = s.call(Method::GET, "/v1/status", bearer, None);
            r.error(StatusCode::UNAUTHORIZED, "API-UNAUTHORIZED");
        }
        // Not the Bearer scheme.
        let r =
            Reply::of(s.req(Method::GET, "/v1/status", None).header("authorization", "Basic b3A6b3A=").send().unwrap());
        r.error(StatusCode::UNAUTHORIZED, "API-UNAUTHORIZED");
        // An oversized bearer is refused before anything looks at it.
        let long = format!("ses_{}", "a".repeat(maos_gateway::BEARER_BYTES_MAX));
        s.call(Method::GET, "/v1/status", Some(&long), None).error(StatusCode::UNAUTHORIZED, "API-UNAUTHORIZED");
        // Opening a session needs a bearer too.
        let r = s.call(Method::POST, "/v1/sessions", None, None);
        r.error(StatusCode::UNAUTHORIZED, "API-UNAUTHORIZED");
        assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    }

    #[test]
    fn ct_cap_01_bad_expired_or_foreign_capability_tokens_cannot_open_a_session() {
        let s = Server::new();
        let good = token("writer");
        let mut bent = good.clone().into_bytes();
        let i = bent.len() - 10;
        bent[i] = if bent[i] == b'A' { b'B' } else { b'A' };
        let bent = String::from_utf8(bent).unwrap();
        let expired = token_with(issuer(), "writer", UnixMillis(now().0 - 3 * 3_600_000));
        let foreign = token_with(impostor(), "writer", now());
        for (name, t) in [("garbage", "maos1.!!!"), ("tampered", &bent), ("expired", &expired), ("foreign", &foreign)] {
            let r = s.call(Method::POST, "/v1/sessions", Some(t), None);
            r.error(StatusCode::UNAUTHORIZED, "API-TOKEN-INVALID");
            assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"), "{name}");
        }
        // The operator secret is not a capability token either.
        s.call(Method::POST, "/v1/sessions", Some(OPERATOR), None).error(StatusCode::UNAUTHORIZED, "API-TOKEN-INVALID");
        // A well-signed token the kernel never logged issuing opens nothing.
        s.call(Method::POST, "/v1/sessions", Some(&good), None).error(StatusCode::UNAUTHORIZED, "API-TOKEN-INVALID");
        s.log_issue(&good);
        // A good one opens a session bound to the token's agent.
        let r = s.call(Method::POST, "/v1/sessions", Some(&good), Some(&json!({ "mission_statement": "notes" })));
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.body["agent"], "writer");
        assert!(r.body["expires_ms"].as_u64().unwrap() > now().0);
        // An unknown field in the session body is refused.
        s.call(Method::POST, "/v1/sessions", Some(&good), Some(&json!({ "agent": "root" })))
            .error(StatusCode::BAD_REQUEST, "API-BAD-REQUEST");
    }

    #[test]
    fn ct_cap_09_agents_cannot_use_operator_routes_and_the_operator_cannot_act_as_an_agent() {
        let s = Server::new();
        let session = s.open_session(&token("writer"));
        let id = done(&s.submit(&session, &fs_write("/workspace/a.txt", "x")));
        let operator_only = [
            (Method::GET, "/v1/status".to_owned(), None),
            (Method::GET, "/v1/audit".to_owned(), None),
            (Method::GET, "/v1/approvals".to_owned(), None),
            (Method::GET, format!("/v1/approvals/{id}"), None),
            (Method::POST, format!("/v1/approvals/{id}/grant"), Some(json!({ "signature": "AAAA" }))),
            (Method::POST, format!("/v1/approvals/{id}/deny"), Some(json!({}))),
            (Method::POST, format!("/v1/intents/{id}/undo"), None),
            (Method::POST, "/v1/token-events".to_owned(), Some(json!({}))),
            // An agent cannot shut the node down, nor read or steer its recovery agent.
            (Method::POST, "/v1/ecs".to_owned(), Some(json!({}))),
            (Method::GET, "/v1/tsca".to_owned(), None),
            (Method::POST, "/v1/tsca/proposals/p1/approve".to_owned(), Some(json!({ "signature": "AAAA" }))),
        ];
        let before = s.last_lsn();
        for (method, path, body) in &operator_only {
            s.call(method.clone(), path, Some(&session), body.as_ref()).error(StatusCode::FORBIDDEN, "API-FORBIDDEN");
        }
        assert_eq!(s.last_lsn(), before, "a refused operator call reached the kernel");
        assert!(s.root().join("a.txt").exists(), "an agent undid its own write");
        // The operator has no agent identity: it cannot submit or close a session.
        s.call(Method::POST, "/v1/intents", Some(OPERATOR), Some(&fs_write("/workspace/b.txt", "x")))
            .error(StatusCode::FORBIDDEN, "API-FORBIDDEN");
        s.call(Method::DELETE, "/v1/sessions/current", Some(OPERATOR), None)
            .error(StatusCode::FORBIDDEN, "API-FORBIDDEN");
        assert!(!s.root().join("b.txt").exists());
        // What the operator may do.
        let r = s.call(Method::GET, "/v1/status", Some(OPERATOR), None);
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["mode"], "normal");
        assert_eq!(r.body["sessions"], 1);
        let r = s.call(Method::GET, "/v1/audit?from=1&limit=5", Some(OPERATOR), None);
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["records"], json!([]));
        assert_eq!(s.call(Method::GET, &format!("/v1/intents/{id}"), Some(OPERATOR), None).body["status"], "done");
        // A closed session is gone.
        assert_eq!(s.call(Method::DELETE, "/v1/sessions/current", Some(&session), None).status, StatusCode::NO_CONTENT);
        s.call(Method::GET, &format!("/v1/intents/{id}"), Some(&session), None)
            .error(StatusCode::UNAUTHORIZED, "API-UNAUTHORIZED");
    }

    // ---- bounds ------------------------------------------------------------------

    #[test]
    fn oversized_bodies_unknown_fields_and_long_waits_are_refused_before_the_kernel() {
        let s = Server::new();
        let session = s.open_session(&token("writer"));
        let before = s.last_lsn();

        // Over BODY_BYTES_MAX, with a Content-Length and chunked: 413, never an
        // allow. (The body is axum's plain-text rejection, not the coded JSON
        // error: only the status is asserted here.)
        let big = fs_write("/workspace/big.txt", &"x".repeat(BODY_BYTES_MAX));
        let r = s.submit(&session, &big);
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
        let bytes = serde_json::to_vec(&big).unwrap();
        let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(bytes));
        let r = Reply::of(
            s.req(Method::POST, "/v1/intents", Some(&session))
                .header("content-type", "application/json")
                .body(chunked)
                .send()
                .unwrap(),
        );
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
        assert!(!s.root().join("big.txt").exists());

        // Unknown fields: the agent names neither itself nor the intent id.
        for extra in [json!({ "agent": "root" }), json!({ "id": RANDOM_ID }), json!({ "tokne": "x" })] {
            let mut intent = fs_write("/workspace/c.txt", "x");
            intent.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            s.submit(&session, &intent).error(StatusCode::BAD_REQUEST, "API-BAD-REQUEST");
        }
        // wait_ms over the maximum.
        let mut intent = fs_write("/workspace/c.txt", "x");
        intent["wait_ms"] = json!(WAIT_MS_MAX + 1);
        s.submit(&session, &intent).error(StatusCode::BAD_REQUEST, "API-BAD-REQUEST");
        // Malformed JSON, a bad action, a bad world-state hash, a non-id path.
        let malformed = |content_type: &str| {
            let req = s.req(Method::POST, "/v1/intents", Some(&session)).header("content-type", content_type);
            Reply::of(req.body("{\"action\":").send().unwrap())
        };
        malformed("application/json").error(StatusCode::BAD_REQUEST, "API-BAD-REQUEST");
        // A body that does not say it is JSON (a form a web page can post without CORS).
        malformed("text/plain").error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "API-CONTENT-TYPE");
        let mut intent = fs_write("/workspace/c.txt", "x");
        intent["world_state_hash"] = json!("xyz");
        s.submit(&session, &intent).error(StatusCode::BAD_REQUEST, "API-BAD-REQUEST");
        s.call(Method::GET, "/v1/intents/not-an-id", Some(&session), None)
            .error(StatusCode::BAD_REQUEST, "API-BAD-REQUEST");

        assert_eq!(s.last_lsn(), before, "a request refused at the door reached the log");
        // A bad action passes the door and is refused by the kernel's sanitizer,
        // with its code, in the log.
        let (code, _) = refused(&s.submit(&session, &json!({ "action": "FS WRITE!" })));
        assert_eq!(code, "INTENT-INVALID");
        assert!(s.last_lsn() > before, "the kernel's refusal is logged");
        assert!(!s.root().join("c.txt").exists());
        // And the session still works.
        done(&s.submit(&session, &fs_write("/workspace/c.txt", "x")));
    }

    #[test]
    fn ct_cap_14_a_session_over_its_rate_is_429_and_others_are_not() {
        let s = Server::start(SessionLimits { per_second: 5, burst: 5 });
        let a = s.open_session(&token("writer"));
        let b = s.open_session(&token("writer"));
        let path = format!("/v1/intents/{RANDOM_ID}");
        // A burst of quick requests: the first five pass (404: no such intent),
        // the sixth is refused. The bucket refills at 5/s, so a slow machine may
        // let one more through per 200 ms elapsed; the bound accounts for it.
        let started = std::time::Instant::now();
        let mut admitted = 0u32;
        let refused = loop {
            let r = s.call(Method::GET, &path, Some(&a), None);
            if r.status != StatusCode::NOT_FOUND || admitted >= 20 {
                break r;
            }
            admitted += 1;
        };
        refused.error(StatusCode::TOO_MANY_REQUESTS, "API-RATE-LIMITED");
        let refill = (started.elapsed().as_secs_f64() * 5.0).ceil();
        assert!(admitted >= 5 && f64::from(admitted) <= 5.0 + refill, "{admitted} admitted in {:?}", started.elapsed());
        assert!(
            refused.body["error"]["message"].as_str().unwrap().contains("5 requests per second"),
            "{}",
            refused.body
        );
        // Intents too: refused at the door, never logged (unless a refill came
        // first on a very slow machine, in which case it is simply done).
        let before = s.last_lsn();
        let refused_at = std::time::Instant::now();
        let r = s.submit(&a, &fs_write("/workspace/flood.txt", "x"));
        if r.status == StatusCode::TOO_MANY_REQUESTS || refused_at.elapsed() < Duration::from_millis(150) {
            r.error(StatusCode::TOO_MANY_REQUESTS, "API-RATE-LIMITED");
            assert_eq!(s.last_lsn(), before);
            assert!(!s.root().join("flood.txt").exists());
        }
        // Another session and the operator are not throttled by it.
        s.call(Method::GET, &path, Some(&b), None).error(StatusCode::NOT_FOUND, "API-NOT-FOUND");
        assert_eq!(s.call(Method::GET, "/v1/status", Some(OPERATOR), None).status, StatusCode::OK);
        // The bucket refills at 5 per second.
        std::thread::sleep(Duration::from_millis(450));
        s.call(Method::GET, &path, Some(&a), None).error(StatusCode::NOT_FOUND, "API-NOT-FOUND");
    }

    // ---- isolation between sessions ------------------------------------------------

    #[test]
    fn one_session_cannot_read_or_cancel_another_sessions_intent() {
        let s = Server::new();
        let writer = token("writer");
        let a = s.open_session(&writer);
        let same_token = s.open_session(&writer);
        let other = s.open_session(&token("reader"));
        let id = done(&s.submit(&a, &fs_write("/workspace/mine.txt", "secret")));
        assert_eq!(s.call(Method::GET, &format!("/v1/intents/{id}"), Some(&a), None).body["status"], "done");
        for intruder in [&same_token, &other] {
            s.call(Method::GET, &format!("/v1/intents/{id}"), Some(intruder), None)
                .error(StatusCode::NOT_FOUND, "API-NOT-FOUND");
            s.call(Method::GET, &format!("/v1/intents/{id}?wait_ms=10"), Some(intruder), None)
                .error(StatusCode::NOT_FOUND, "API-NOT-FOUND");
            s.call(Method::POST, &format!("/v1/intents/{id}/cancel"), Some(intruder), None)
                .error(StatusCode::NOT_FOUND, "API-NOT-FOUND");
        }
        // The owner cannot cancel a finished intent either: a conflict, not a no-op.
        s.call(Method::POST, &format!("/v1/intents/{id}/cancel"), Some(&a), None)
            .error(StatusCode::CONFLICT, "API-CONFLICT");
        // wait_ms 0 answers at once; the outcome is then polled.
        let mut intent = fs_write("/workspace/later.txt", "x");
        intent["wait_ms"] = json!(0);
        let r = s.submit(&a, &intent);
        assert!(r.status == StatusCode::ACCEPTED || r.status == StatusCode::OK, "{}", r.body);
        let later = r.body["intent"].as_str().unwrap().to_owned();
        let r = s.call(Method::GET, &format!("/v1/intents/{later}?wait_ms=10000"), Some(&a), None);
        assert_eq!(r.body["status"], "done", "{}", r.body);
    }

    // ---- the OpenAPI document --------------------------------------------------------

    /// The routes `routes.rs` serves (method, path).
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/v1/health"),
        ("get", "/v1/openapi.json"),
        ("post", "/v1/sessions"),
        ("delete", "/v1/sessions/current"),
        ("post", "/v1/intents"),
        ("get", "/v1/intents/{id}"),
        ("post", "/v1/intents/{id}/cancel"),
        ("post", "/v1/intents/{id}/undo"),
        ("get", "/v1/approvals"),
        ("get", "/v1/approvals/{id}"),
        ("post", "/v1/approvals/{id}/grant"),
        ("post", "/v1/approvals/{id}/deny"),
        ("get", "/v1/status"),
        ("post", "/v1/apoptosis"),
        ("get", "/v1/quarantine"),
        ("post", "/v1/quarantine/{agent}/release"),
        ("post", "/v1/quarantine/{agent}/advance"),
        ("get", "/v1/prefilter/proposals"),
        ("post", "/v1/prefilter/proposals/{id}/approve"),
        ("get", "/v1/agents"),
        ("post", "/v1/agents"),
        ("post", "/v1/agents/{agent}/demote"),
        ("post", "/v1/fever/end"),
        ("post", "/v1/ecs"),
        ("get", "/v1/tsca"),
        ("post", "/v1/tsca/proposals/{id}/approve"),
        ("get", "/v1/audit"),
        ("post", "/v1/token-events"),
        ("get", "/v1/tools"),
        ("get", "/v1/tools/{server}/{tool}"),
        ("post", "/v1/tools/{server}/{tool}/approve"),
    ];

    #[test]
    fn every_path_in_the_openapi_document_is_routed_and_every_route_is_documented() {
        let s = Server::new();
        let r = s.call(Method::GET, "/v1/openapi.json", None, None);
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.json, "the document is not JSON");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert!(r.body["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = r.body["paths"].as_object().expect("a `paths` object");
        let mut documented = BTreeSet::new();
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                documented.insert((method.clone(), path.clone()));
                let concrete = path
                    .replace("{id}", RANDOM_ID)
                    .replace("{server}", "s")
                    .replace("{tool}", "t")
                    .replace("{agent}", "a");
                let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
                let reply = s.call(method.clone(), &concrete, None, None);
                let fallback = reply.status == StatusCode::NOT_FOUND
                    && reply.body["error"]["message"].as_str().is_some_and(|m| m.contains("no such endpoint"));
                assert!(!fallback, "{method} {path} is documented but not routed");
                assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                // Without a bearer, only the two public documents answer.
                if path == "/v1/health" || path == "/v1/openapi.json" {
                    assert_eq!(reply.status, StatusCode::OK, "{method} {path}");
                } else {
                    reply.error(StatusCode::UNAUTHORIZED, "API-UNAUTHORIZED");
                }
            }
        }
        let routed: BTreeSet<(String, String)> =
            ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        assert_eq!(documented, routed, "the document and the router differ");
        // Anything else is the coded fallback.
        s.call(Method::GET, "/v1/nope", None, None).error(StatusCode::NOT_FOUND, "API-NOT-FOUND");
        s.call(Method::GET, "/", None, None).error(StatusCode::NOT_FOUND, "API-NOT-FOUND");
    }

    // ---- effects the Commit Layer must refuse -------------------------------------------

    #[test]
    fn ct_cl_01_path_escapes_and_symlinks_out_of_the_root_are_refused_with_codes() {
        let s = Server::new();
        let session = s.open_session(&token("writer"));
        let outside = s.dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(s.root()).unwrap();
        std::fs::write(outside.join("target.txt"), "untouched").unwrap();

        // Dot-dot and paths outside the virtual root: the DSC's scope check.
        for path in
            ["/workspace/../etc/passwd", "/workspace/notes/../../outside/x.txt", "../outside/x.txt", "/etc/passwd"]
        {
            let (code, why) = refused(&s.submit(&session, &fs_write(path, "pwned")));
            // `..` never reaches the scope check: the descriptor refuses it, naming the argument.
            assert!(code == "INTENT-PATH" || code.starts_with("DSC-"), "{path}: {code} {why}");
            assert!(code != "INTENT-PATH" || why.contains("`path`"), "{why}");
        }
        assert!(!outside.join("x.txt").exists());

        #[cfg(unix)]
        {
            // A directory symlink leaving the root: inside the token's scope, so the
            // effector's own resolution must refuse it.
            std::os::unix::fs::symlink(&outside, s.root().join("link")).unwrap();
            let (code, why) = refused(&s.submit(&session, &fs_write("/workspace/link/pwned.txt", "pwned")));
            assert_eq!(code, "COMMIT-EFFECT", "{why}");
            assert!(why.contains("EFFECT-PATH-ESCAPE"), "{why}");
            assert!(!outside.join("pwned.txt").exists());
            // A final symlink is never written through.
            std::os::unix::fs::symlink(outside.join("target.txt"), s.root().join("evil.txt")).unwrap();
            let (code, why) = refused(&s.submit(&session, &fs_write("/workspace/evil.txt", "pwned")));
            assert_eq!(code, "COMMIT-EFFECT", "{why}");
            assert!(why.contains("EFFECT-SYMLINK"), "{why}");
            assert_eq!(std::fs::read_to_string(outside.join("target.txt")).unwrap(), "untouched");
            // Nor read through when it leaves the root.
            let read = json!({ "action": "fs.read", "args": { "path": "/workspace/evil.txt" } });
            let r = s.submit(&session, &read);
            assert_ne!(r.body["status"], "done", "{}", r.body);
            assert!(!r.body.to_string().contains("untouched"), "content leaked: {}", r.body);
        }
        // A control character in a path never reaches a file.
        let r = s.submit(&session, &fs_write("/workspace/a\u{0}b.txt", "x"));
        assert_ne!(r.body["status"], "done", "{}", r.body);
        // A legitimate write still goes through.
        done(&s.submit(&session, &fs_write("/workspace/ok.txt", "fine")));
        assert_eq!(std::fs::read_to_string(s.root().join("ok.txt")).unwrap(), "fine");
    }

    #[test]
    fn ct_cap_02_http_to_a_domain_outside_the_allow_list_is_refused_with_a_code() {
        let s = Server::new();
        let session = s.open_session(&token("writer"));
        // Covered by the token but not by the effector's allow-list.
        let (code, why) = refused(&s.submit(&session, &http_get("evil.example.net", "https://evil.example.net/x")));
        assert_eq!(code, "COMMIT-EFFECT", "{why}");
        assert!(why.contains("EFFECT-DOMAIN"), "{why}");
        // An allowed resource whose url points elsewhere.
        let (code, why) = refused(&s.submit(&session, &http_get("api.example.com", "https://evil.example.net/")));
        assert!(code == "COMMIT-EFFECT" || code.starts_with("DSC-"), "{code}: {why}");
        // Plain http and credentials in the url.
        let (_, why) = refused(&s.submit(&session, &http_get("api.example.com", "http://api.example.com/")));
        assert!(why.contains("EFFECT-INVALID") || why.contains("scheme"), "{why}");
        let (_, why) = refused(&s.submit(&session, &http_get("api.example.com", "https://u:p@api.example.com/")));
        assert!(why.contains("EFFECT-INVALID") || why.contains("credentials"), "{why}");
        // Not covered by the token: the DSC denies it, and in Standard a
        // domain off the token's list is a hard violation (Fast Apoptosis,
        // CT-IMM-03): the agent is eliminated, its session closed.
        let (code, why) = refused(&s.submit(&session, &http_get("other.org", "https://other.org/")));
        assert_eq!(code, "DSC-1-SCOPE", "{why}");
        let r = s.submit(&session, &http_get("api.example.com", "https://api.example.com/"));
        assert_ne!(r.body["status"], "done", "{}", r.body);
    }

    // ---- approvals over HTTP ---------------------------------------------------------------

    #[test]
    fn an_escalation_waits_for_a_commander_signature_that_the_operator_secret_cannot_forge() {
        let s = Server::new();
        let session = s.open_session(&token("writer"));
        // An internal file read, then mailed out (a public sink): Standard asks
        // for a declassification approval.
        std::fs::create_dir_all(s.root()).unwrap();
        std::fs::write(s.root().join("q3.txt"), "quarterly figures").unwrap();
        done(&s.submit(&session, &json!({ "action": "fs.read", "args": { "path": "/workspace/q3.txt" } })));
        let intent = json!({
            "action": "mail.send", "wait_ms": 200,
            "args": { "to": "bob@example.com", "subject": "Q3", "body": "quarterly figures" },
        });
        let r = s.submit(&session, &intent);
        assert_eq!(r.body["status"], "pending_approval", "{}", r.body);
        let id = r.body["intent"].as_str().unwrap().to_owned();

        let list = s.call(Method::GET, "/v1/approvals", Some(OPERATOR), None);
        assert_eq!(list.body["approvals"][0]["id"], id.as_str(), "{}", list.body);
        let packet = s.call(Method::GET, &format!("/v1/approvals/{id}"), Some(OPERATOR), None);
        assert_eq!(packet.status, StatusCode::OK, "{}", packet.body);
        let message = base64::engine::general_purpose::STANDARD.decode(packet.body["sign"].as_str().unwrap()).unwrap();
        let sign = |key: &SigningKey| {
            let sig = key.sign(SignatureDomain::ApprovalDecision, &message).unwrap();
            json!({ "signature": base64::engine::general_purpose::STANDARD.encode(sig.as_bytes()) })
        };
        let grant = format!("/v1/approvals/{id}/grant");

        // Not base64, not a signature, another key's signature: all refused; the packet stays open.
        s.call(Method::POST, &grant, Some(OPERATOR), Some(&json!({ "signature": "%%%" })))
            .error(StatusCode::BAD_REQUEST, "API-BAD-REQUEST");
        s.call(Method::POST, &grant, Some(OPERATOR), Some(&json!({ "signature": "AAAA" })))
            .error(StatusCode::BAD_REQUEST, "API-BAD-REQUEST");
        let forged = s.call(Method::POST, &grant, Some(OPERATOR), Some(&sign(impostor())));
        assert_eq!(forged.body["error"]["code"], "KERNEL-APPROVAL-REJECTED", "{}", forged.body);
        assert!(!forged.status.is_success());
        assert_eq!(s.outbox(), 0, "nothing is sent before approval");
        assert_eq!(
            s.call(Method::GET, &format!("/v1/intents/{id}"), Some(&session), None).body["status"],
            "pending_approval"
        );

        // The commander's signature runs it; the agent sees the outcome.
        let r = s.call(Method::POST, &grant, Some(OPERATOR), Some(&sign(commander())));
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["status"], "done", "{}", r.body);
        assert_eq!(s.call(Method::GET, &format!("/v1/intents/{id}"), Some(&session), None).body["status"], "done");
        assert_eq!(s.outbox(), 1);
        // Decided: no longer an open approval.
        s.call(Method::GET, &format!("/v1/approvals/{id}"), Some(OPERATOR), None)
            .error(StatusCode::NOT_FOUND, "API-NOT-FOUND");
        s.call(Method::POST, &grant, Some(OPERATOR), Some(&sign(commander())))
            .error(StatusCode::NOT_FOUND, "API-NOT-FOUND");

        // Undo through the API (operator), then a second undo is refused with its code.
        let undo = format!("/v1/intents/{id}/undo");
        let r = s.call(Method::POST, &undo, Some(OPERATOR), None);
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(s.outbox(), 0, "the held message is recalled");
        assert_eq!(s.call(Method::GET, &format!("/v1/intents/{id}"), Some(&session), None).body["status"], "undone");
        let again = s.call(Method::POST, &undo, Some(OPERATOR), None);
        assert_eq!(again.body["error"]["code"], "UNDO-ALREADY", "{}", again.body);
        assert!(!again.status.is_success());
    }
}
