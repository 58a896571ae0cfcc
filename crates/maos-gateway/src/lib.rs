//! The Sentry's HTTP gateway (spec §9; design.md "Interfaces"): the `/v1/` API
//! in front of the kernel, served by axum on loopback by default.
//!
//! Guarantees:
//! - **Every effect goes through the kernel.** The gateway only turns HTTP into
//!   [`maos_kernel::KernelHandle::submit`] calls and replies into JSON; it holds
//!   no key and decides nothing. A kernel error is an error, never an allow.
//! - **Two kinds of caller.** Agents open a session with their capability token
//!   as the bearer and then use the session id; the operator uses the secret
//!   that `maos up` writes to `<data-dir>/run/operator.token` (mode 0600).
//!   Approval grants must in addition carry a commander signature, which the
//!   kernel verifies: the operator secret alone cannot approve anything.
//! - **Bounded.** Request bodies ([`BODY_BYTES_MAX`]), sessions, per-session
//!   rate, outcome table and bodies held, wait times and audit pages all have
//!   stated maxima, refused with a stable `API-…` code (`docs/http-api.md`);
//!   the listener caps connections and the time to send a request
//!   ([`listener`]).
//! - **JSON errors** `{"error": {"code", "message"}}` everywhere; the OpenAPI
//!   document is served at `/v1/openapi.json`.

#![forbid(unsafe_code)]

mod error;
pub mod intents;
pub mod listener;
pub mod mcp;
mod openapi;
mod routes;
pub mod sessions;

pub use error::ApiError;
pub use intents::{
    BodyDropped, IntentRequest, IntentView, OutputView, RESULT_BODY_BYTES_MAX, RESULTS_MAX, Status, WAIT_MS_DEFAULT,
    WAIT_MS_MAX,
};
pub use listener::{BODY_READ_TIMEOUT, CONNECTIONS_MAX, HEADER_READ_TIMEOUT, ListenerLimits, serve_with_limits};
pub use routes::follow_kernel_revocations;
pub use sessions::{RATE_PER_SECOND_DEFAULT, SESSIONS_MAX, SESSIONS_PER_TOKEN_MAX, SessionLimits};

use maos_kernel::KernelHandle;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body: an intent (64 KiB) plus its envelope.
pub const BODY_BYTES_MAX: usize = 96 * 1024;
/// Largest capability token text accepted in an `Authorization` header.
pub const BEARER_BYTES_MAX: usize = 16 * 1024;
/// Audit records one `GET /v1/audit` returns at most.
pub const AUDIT_PAGE_MAX: usize = 1000;
/// The default listen address: loopback only.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7700";

/// Reads the audit log for `GET /v1/audit`, in the export format of
/// `maos audit export` (with presented tokens redacted).
pub trait AuditSource: Send + Sync {
    /// Up to `limit` records from Lsn `from`.
    ///
    /// # Errors
    /// A message when the log cannot be read.
    fn read(&self, from: u64, limit: usize) -> Result<Vec<serde_json::Value>, String>;
}

/// Everything the API serves from.
pub struct Api {
    kernel: KernelHandle,
    operator_sha3: [u8; 32],
    audit: Arc<dyn AuditSource>,
    limits: SessionLimits,
    sessions: sessions::Sessions,
    results: intents::Results,
    started: std::time::Instant,
    tools: Option<(Arc<mcp::ToolRegistry>, Arc<maos_wal::Wal>)>,
    /// The upstream MCP servers, for their breakers in `/v1/status`.
    upstreams: Option<mcp::Upstreams>,
    /// The MCP endpoint's sessions, when `/mcp` is served ([`router_with_mcp`]).
    mcp_sessions: std::sync::OnceLock<Arc<maos_mcp::McpSessions>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

impl Api {
    /// An API over `kernel`; `operator_secret` is the operator's bearer.
    #[must_use]
    pub fn new(
        kernel: KernelHandle,
        operator_secret: &str,
        audit: Arc<dyn AuditSource>,
        limits: SessionLimits,
    ) -> Self {
        Self {
            kernel,
            operator_sha3: maos_crypto::sha3_256(operator_secret.as_bytes()).0,
            audit,
            limits,
            sessions: sessions::Sessions::default(),
            results: intents::Results::default(),
            started: std::time::Instant::now(),
            tools: None,
            upstreams: None,
            mcp_sessions: std::sync::OnceLock::new(),
        }
    }

    /// Serves `GET /v1/tools` and the operator's tool approvals from `registry`,
    /// logging approvals in `wal`.
    #[must_use]
    pub fn with_tools(mut self, registry: Arc<mcp::ToolRegistry>, wal: Arc<maos_wal::Wal>) -> Self {
        self.tools = Some((registry, wal));
        self
    }

    /// The upstream MCP servers whose breakers `/v1/status` shows.
    #[must_use]
    pub fn with_upstreams(mut self, upstreams: mcp::Upstreams) -> Self {
        self.upstreams = Some(upstreams);
        self
    }

    /// Conservative mode for the upstreams' breakers (the kernel's own follow
    /// it by themselves): cooldowns doubled during the observation window
    /// after an emergency shutdown.
    pub fn set_conservative(&self, on: bool) {
        if let Some(up) = &self.upstreams {
            up.set_conservative(on);
        }
    }

    /// Every circuit breaker (upstream MCP servers, then the remotes
    /// effectors reach) with how long it has been open.
    #[must_use]
    pub fn breakers(&self) -> Vec<maos_commit::breaker::BreakerView> {
        let mut all = self.upstreams.as_ref().map(mcp::Upstreams::breaker_views).unwrap_or_default();
        all.extend(self.kernel.remote_breakers());
        all
    }

    /// Open sessions.
    #[must_use]
    pub fn sessions_open(&self) -> usize {
        self.sessions.len()
    }
}

/// The `/v1` router.
pub fn router(api: Arc<Api>) -> axum::Router {
    routes::router(api)
}

/// Serves the API on `listener` until `shutdown` resolves, then stops taking
/// connections and lets requests in flight finish.
///
/// # Errors
/// The server's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<Api>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(api), shutdown).await
}

/// [`serve`] for a router built by the caller (the API merged with `/mcp`),
/// under [`ListenerLimits::DEFAULT`] (see [`listener`]).
///
/// # Errors
/// The server's I/O error.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener::serve_with_limits(listener, app, ListenerLimits::DEFAULT, shutdown).await
}

/// The `/v1` API and the MCP endpoint `/mcp` (capability token as bearer),
/// both in front of the same kernel, and a function that ends every open MCP
/// stream (call it at shutdown, or graceful shutdown waits for them).
pub fn router_with_mcp(
    api: Arc<Api>,
    mediator: Arc<mcp::KernelMediator>,
) -> (axum::Router, impl FnOnce() + Send + 'static) {
    let config = maos_mcp::StreamableHttpServerConfig::default();
    let streams = config.cancellation_token.clone();
    let sessions = Arc::clone(api.mcp_sessions.get_or_init(|| Arc::new(maos_mcp::McpSessions::default())));
    (router(api).merge(maos_mcp::router_with_sessions(mediator, config, sessions)), move || streams.cancel())
}

/// Whether `addr` is loopback (the daemon warns when it is not).
#[must_use]
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
