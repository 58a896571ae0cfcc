//! The daemon's listener under its limits (`maos_gateway::listener`), with the
//! limits lowered so each bound is reached in well under a second: the
//! connection cap holds a further client back until a slot frees, and a client
//! sending half a header or half a body is cut off.

#[cfg(test)]
mod listener {
    use axum::body::Bytes;
    use axum::extract::rejection::BytesRejection;
    use axum::routing::{get, post};
    use maos_gateway::listener::body_timed_out;
    use maos_gateway::{ListenerLimits, serve_with_limits};
    use std::io::{Read as _, Write as _};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    async fn echo(body: Result<Bytes, BytesRejection>) -> String {
        match body {
            Ok(b) => format!("got {}", b.len()),
            Err(e) if body_timed_out(&e) => "body timed out".to_owned(),
            Err(e) => format!("other error: {e}"),
        }
    }

    struct Served {
        addr: SocketAddr,
        _stop: tokio::sync::oneshot::Sender<()>,
        _rt: tokio::runtime::Runtime,
    }

    fn serve(limits: ListenerLimits) -> Served {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = axum::Router::new().route("/ping", get(|| async { "pong" })).route("/echo", post(echo));
            tokio::spawn(serve_with_limits(listener, app, limits, async move {
                let _ = rx.await;
            }));
            addr
        });
        Served { addr, _stop: tx, _rt: rt }
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends a whole `GET /ping` and returns what came back before the read timeout `wait`.
    fn ping(s: &mut TcpStream, wait: Duration) -> String {
        s.set_read_timeout(Some(wait)).unwrap();
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn the_connection_cap_holds_a_further_client_until_a_slot_frees() {
        let limits = ListenerLimits {
            connections_max: 4,
            header_read_timeout: Duration::from_secs(30),
            ..ListenerLimits::DEFAULT
        };
        let served = serve(limits);
        let mut idle: Vec<TcpStream> = (0..4).map(|_| connect(served.addr)).collect();
        // Let the listener accept all four before the fifth arrives.
        std::thread::sleep(Duration::from_millis(200));
        let mut fifth = connect(served.addr);
        let held = ping(&mut fifth, Duration::from_millis(700));
        assert!(held.is_empty(), "served past the cap: {held}");
        // One slot frees: the fifth (already sent, waiting in the backlog) is served.
        drop(idle.pop());
        fifth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = fifth.read_to_end(&mut out);
        let answer = String::from_utf8_lossy(&out);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("pong"), "{answer}");
    }

    #[test]
    fn half_a_header_is_cut_off_after_the_header_timeout() {
        let limits = ListenerLimits { header_read_timeout: Duration::from_millis(300), ..ListenerLimits::DEFAULT };
        let served = serve(limits);
        // The server's timer may start before the client writes: time from the connect.
        let started = Instant::now();
        let mut s = connect(served.addr);
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(5), "closed after {waited:?}");
        assert!(!String::from_utf8_lossy(&out).contains("pong"));
        // A whole request on a new connection is served as before.
        assert!(ping(&mut connect(served.addr), Duration::from_secs(5)).ends_with("pong"));
    }

    #[test]
    fn half_a_body_fails_the_read_after_the_body_timeout() {
        let limits = ListenerLimits { body_read_timeout: Duration::from_millis(300), ..ListenerLimits::DEFAULT };
        let served = serve(limits);
        let mut s = connect(served.addr);
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nhalf").unwrap();
        let started = Instant::now();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let answer = String::from_utf8_lossy(&out);
        assert!(answer.ends_with("body timed out"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A whole body is read as before.
        let mut s = connect(served.addr);
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 4\r\n\r\nfull")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(String::from_utf8_lossy(&out).ends_with("got 4"));
    }
}
