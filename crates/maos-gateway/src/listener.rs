//! The daemon's HTTP listener: hyper's HTTP/1 server under limits a client
//! cannot lift (axum's own `serve` has no read timeouts and no connection cap).
//!
//! Guarantees:
//! - At most [`CONNECTIONS_MAX`] connections are open at once. Past it the
//!   listener stops accepting until one closes; new connections wait in the
//!   kernel's backlog, so a flood costs the daemon no descriptors.
//! - A client sends a whole request head within [`HEADER_READ_TIMEOUT`] of the
//!   connection becoming ready for one (this also closes a keep-alive
//!   connection left idle that long), and a whole body within
//!   [`BODY_READ_TIMEOUT`] of its head; otherwise the connection is closed (a
//!   slow body gets `API-BODY-TIMEOUT`, 408, where the route reads it itself).
//!   A response in flight (an MCP event stream) is never cut by these.
//! - Shutdown stops accepting, asks each connection to finish the request in
//!   flight, and returns once every connection has closed.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Frame;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Connections open at once on one listener: a client opening connections in
/// a loop (20,000 descriptors in one run) stops at this many, and the daemon
/// keeps descriptors for its log, upstreams and effects.
pub const CONNECTIONS_MAX: usize = 1024;
/// Time to send a complete request head: a client sending half a header
/// (slowloris) holds its connection this long at most.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to send a complete request body after its head: a client sending half
/// a body holds its connection this long at most.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (descriptors exhausted): the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The limits of one listener ([`ListenerLimits::DEFAULT`] in the daemon;
/// tests lower them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections open at once.
    pub connections_max: usize,
    /// Time to send a request head.
    pub header_read_timeout: Duration,
    /// Time to send a request body after its head.
    pub body_read_timeout: Duration,
}

impl ListenerLimits {
    /// [`CONNECTIONS_MAX`], [`HEADER_READ_TIMEOUT`], [`BODY_READ_TIMEOUT`].
    pub const DEFAULT: Self = Self {
        connections_max: CONNECTIONS_MAX,
        header_read_timeout: HEADER_READ_TIMEOUT,
        body_read_timeout: BODY_READ_TIMEOUT,
    };
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves.
///
/// # Errors
/// None today (accept errors are logged and retried); the signature leaves
/// room for listener failures.
pub async fn serve_with_limits(
    listener: TcpListener,
    app: axum::Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(limits.body_read_timeout, body_deadline));
    let permits = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // Finished connections leave the set: it never holds more than the cap.
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // Answers (an MCP answer is an SSE stream: several small writes) go out at once:
        // with Nagle's algorithm a reused connection waits for the client's delayed ACK,
        // about 40 ms per request on Linux.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
            let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service).with_upgrades());
            let stopping = async move {
                // Ends on the stop signal, or when the listener is gone.
                while !*stop.borrow_and_update() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            };
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = stopping => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Ignored: no connection task left means nobody is listening, which is fine.
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A request body that fails once its deadline passes.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

/// The error a body read past its deadline yields; [`body_timed_out`] finds it.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {} s", .0.as_secs())]
pub struct BodyTimeout(Duration);

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Middleware: every request body must arrive within the limit.
async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = if body.is_end_stream() {
        body
    } else {
        Body::new(DeadlineBody { inner: body, deadline: Box::pin(tokio::time::sleep(limit)), limit })
    };
    next.run(Request::from_parts(parts, body)).await
}

/// Whether `error` (or what caused it) is a [`BodyTimeout`].
pub fn body_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}
