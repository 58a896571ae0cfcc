//! `http`: allow-list, redirects, bounds, labels, POST classification,
//! against a loopback server started by the test (no outside network).

use crate::common::*;
use maos_commit::effectors::http::{
    AllowList, HTTP_RESPONSE_BYTES_MAX, HttpConfig, HttpEffector, PlainHttp, PrivateAddresses,
};
use maos_commit::{CommitLayer, EffectError, Effector, ExecContext, FailReason, OutputLabel, UndoError};
use maos_model::{EffectClass, Intent, ResourceKind};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tiny HTTP/1.1 server on 127.0.0.1, one connection at a time.
pub struct Server {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
    pub posts: Arc<Mutex<Vec<(String, String)>>>,
}

impl Server {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let (r, p) = (requests.clone(), posts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                r.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let path = parts.next().unwrap_or("").to_owned();
                let (mut length, mut key) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("idempotency-key:") {
                        key = h["idempotency-key:".len()..].trim().to_owned();
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let reply = |status: &str, headers: &str, body: &[u8]| {
                    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n{headers}").into_bytes();
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(body);
                    out
                };
                let response = match (method.as_str(), path.as_str()) {
                    ("GET", "/ok") => reply("200 OK", "Content-Length: 15\r\n", b"hello from test"),
                    ("GET", "/fail") => reply("503 Service Unavailable", "Content-Length: 0\r\n", b""),
                    ("GET", "/redirect-out") => reply(
                        "302 Found",
                        &format!("Location: http://evil.test:{port}/ok\r\nContent-Length: 0\r\n"),
                        b"",
                    ),
                    ("GET", "/redirect-in") => reply("302 Found", "Location: /ok\r\nContent-Length: 0\r\n", b""),
                    ("GET", "/big") => {
                        let body = vec![b'x'; HTTP_RESPONSE_BYTES_MAX + 10];
                        reply("200 OK", &format!("Content-Length: {}\r\n", body.len()), &body)
                    }
                    ("GET", "/stream-big") => reply("200 OK", "", &vec![b'y'; HTTP_RESPONSE_BYTES_MAX + 10]),
                    ("POST", "/post") => {
                        p.lock().unwrap().push((key.clone(), String::from_utf8_lossy(&body).into_owned()));
                        reply("200 OK", "Content-Length: 2\r\n", b"ok")
                    }
                    _ => reply("404 Not Found", "Content-Length: 0\r\n", b""),
                };
                let _ = stream.write_all(&response);
                let _ = stream.flush();
            }
        });
        Self { port, requests, posts }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

pub fn http_effector() -> Arc<HttpEffector> {
    let mut config = HttpConfig::new(AllowList::new(&["127.0.0.1", "*.example.com"]).unwrap());
    config.plain_http = PlainHttp::Allow;
    config.timeout = Duration::from_secs(5);
    Arc::new(HttpEffector::new(config).unwrap())
}

fn localhost_effector(private: PrivateAddresses) -> HttpEffector {
    let mut config = HttpConfig::new(AllowList::new(&["localhost"]).unwrap());
    config.plain_http = PlainHttp::Allow;
    config.private_addresses = private;
    HttpEffector::new(config).unwrap()
}

#[test]
fn names_resolving_to_internal_addresses_are_refused_at_connect() {
    // `localhost` is allow-listed but resolves to loopback: an SSRF / rebinding shape.
    let server = Server::start();
    let url = format!("http://localhost:{}/ok", server.port);
    let g = get(&url, "localhost");
    let guarded = localhost_effector(PrivateAddresses::Refuse);
    match guarded.execute(&g, g.id, &ctx()) {
        Err(EffectError::Domain(why)) => assert!(why.contains("non-public"), "{why}"),
        other => unreachable!("expected a refusal, got {other:?}"),
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    let open = localhost_effector(PrivateAddresses::Allow);
    assert_eq!(open.execute(&g, g.id, &ctx()).unwrap().body, b"hello from test");
}

pub fn get(url: &str, host: &str) -> Intent {
    intent("http.get", EffectClass::Observe, &[(ResourceKind::Domain, host)], &[("url", url)])
}

pub fn post(url: &str) -> Intent {
    intent(
        "http.post",
        EffectClass::Irreversible,
        &[(ResourceKind::Domain, "127.0.0.1")],
        &[("url", url), ("body", "payload")],
    )
}

fn ctx() -> ExecContext {
    ExecContext::new(T0, Instant::now() + Duration::from_secs(10))
}

fn http_layer(world: &World) -> CommitLayer {
    CommitLayer::open(world.wal(), world.effectors(&[http_effector()]), world.config()).unwrap()
}

/// CT-DEG-16 on the Commit→I/O interface (spec §38.4): five server errors
/// in a row from one host open its breaker; the next call is answered at once
/// with `CIRCUIT-OPEN` and never reaches the host; the transition is a
/// `circuit.breaker` record. A 404 is an answer, not a failure.
#[test]
fn ct_deg_16_a_failing_host_opens_its_breaker_and_is_not_called() {
    let effect_code = |e: &maos_commit::CommitError| match &e.reason {
        FailReason::Effect(effect) => effect.code(),
        other => other.code(),
    };
    let server = Server::start();
    let world = World::new();
    let layer = http_layer(&world);
    for _ in 0..10 {
        let err = run(&layer, get(&server.url("/missing"), "127.0.0.1"), T0).unwrap_err();
        assert_eq!(effect_code(&err), "EFFECT-REMOTE", "{err}");
    }
    assert_eq!(layer.remote_breakers()[0].state, "closed", "404s are answers");
    for _ in 0..5 {
        let err = run(&layer, get(&server.url("/fail"), "127.0.0.1"), T0).unwrap_err();
        assert_eq!(effect_code(&err), "EFFECT-REMOTE", "{err}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 15);
    let err = run(&layer, get(&server.url("/ok"), "127.0.0.1"), T0).unwrap_err();
    assert_eq!(effect_code(&err), "CIRCUIT-OPEN", "{err}");
    assert!(err.to_string().contains("retry in"), "{err}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 15, "an open breaker does not call the host");
    let view = layer.remote_breakers().remove(0);
    assert_eq!((view.interface.as_str(), view.state), ("http:127.0.0.1", "open"));
    let opened = layer
        .wal()
        .reader()
        .records()
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.kind == maos_commit::breaker::KIND_BREAKER)
        .map(|r| serde_json::from_slice::<maos_commit::breaker::BreakerRecord>(&r.payload).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!((opened[0].upstream.as_str(), opened[0].to.as_str()), ("http:127.0.0.1", "open"));
}

#[test]
fn http_get_is_an_untrusted_observation() {
    let server = Server::start();
    let world = World::new();
    let layer = http_layer(&world);
    let g = get(&server.url("/ok"), "127.0.0.1");
    assert_eq!(layer.classify(&g), EffectClass::Observe);
    let id = g.id;
    let done = run(&layer, g, T0).unwrap();
    assert_eq!(done.output.body, b"hello from test");
    assert_eq!(done.output.label, OutputLabel::Untrusted);
    assert_eq!(trail(layer.wal(), id), ["intent", "result"]);
}

#[test]
fn non_allow_listed_domains_are_refused_before_connecting() {
    let server = Server::start();
    let http = http_effector();
    for (url, host) in [
        (format!("http://localhost:{}/ok", server.port), "localhost"),
        (format!("http://example.com:{}/ok", server.port), "example.com"),
        (format!("http://evil-example.com:{}/ok", server.port), "evil-example.com"),
    ] {
        let g = get(&url, host);
        assert!(matches!(http.execute(&g, g.id, &ctx()), Err(EffectError::Domain(_))), "{url}");
    }
    // Allow-listed host, but not the domain the DSC checked.
    let g = get(&server.url("/ok"), "api.example.com");
    assert!(matches!(http.execute(&g, g.id, &ctx()), Err(EffectError::Invalid(_))));
    // Credentials in the URL and other schemes.
    let g = get(&format!("http://user:pw@127.0.0.1:{}/ok", server.port), "127.0.0.1");
    assert!(matches!(http.execute(&g, g.id, &ctx()), Err(EffectError::Invalid(_))));
    let g = get("file:///etc/passwd", "127.0.0.1");
    assert!(http.execute(&g, g.id, &ctx()).is_err());
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn https_only_unless_plain_http_is_allowed() {
    let server = Server::start();
    let strict = HttpEffector::new(HttpConfig::new(AllowList::new(&["127.0.0.1"]).unwrap())).unwrap();
    let g = get(&server.url("/ok"), "127.0.0.1");
    assert!(matches!(strict.execute(&g, g.id, &ctx()), Err(EffectError::Invalid(_))));
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn redirects_only_to_allow_listed_hosts() {
    let server = Server::start();
    let http = http_effector();
    let out = get(&server.url("/redirect-out"), "127.0.0.1");
    match http.execute(&out, out.id, &ctx()) {
        Err(EffectError::Domain(why)) => assert!(why.contains("evil.test"), "{why}"),
        other => unreachable!("expected a domain refusal, got {other:?}"),
    }
    let inside = get(&server.url("/redirect-in"), "127.0.0.1");
    assert_eq!(http.execute(&inside, inside.id, &ctx()).unwrap().body, b"hello from test");
}

#[test]
fn responses_are_bounded() {
    let server = Server::start();
    let http = http_effector();
    for path in ["/big", "/stream-big"] {
        let g = get(&server.url(path), "127.0.0.1");
        assert!(matches!(http.execute(&g, g.id, &ctx()), Err(EffectError::TooLarge { .. })), "{path}");
    }
    let missing = get(&server.url("/missing"), "127.0.0.1");
    assert!(matches!(http.execute(&missing, missing.id, &ctx()), Err(EffectError::Remote(_))));
}

#[test]
fn http_post_is_irreversible_with_the_intent_id_as_idempotency_key() {
    let server = Server::start();
    let world = World::new();
    let layer = http_layer(&world);
    let mut as_write = post(&server.url("/post"));
    as_write.effect = EffectClass::Write;
    assert_eq!(layer.classify(&as_write), EffectClass::Irreversible);
    let err = layer.log_intent(maos_commit::Authorized::new(as_write.clone(), &allow(&as_write)).unwrap()).unwrap_err();
    assert!(matches!(err.reason, FailReason::ClassMismatch { .. }));

    let p = post(&server.url("/post"));
    let id = p.id;
    let done = run(&layer, p, T0).unwrap();
    assert_eq!(done.class, EffectClass::Irreversible);
    assert_eq!(done.undo_until, None);
    assert_eq!(*server.posts.lock().unwrap(), vec![(id.to_string(), "payload".to_owned())]);
    assert!(matches!(layer.undo(id, T0), Err(UndoError::NotCompensable(_))));
}
