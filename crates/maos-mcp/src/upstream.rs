//! A connection to one upstream MCP server, as an MCP client.
//!
//! stdio upstreams are spawned here (not with rmcp's `TokioChildProcess`) so that the
//! child gets a cleared environment, its stderr goes to `tracing` instead of ours, and
//! the line length is bounded by [`MESSAGE_BYTES_MAX`]. Every request has a timeout;
//! a request that times out is cancelled upstream (`notifications/cancelled`). rmcp's
//! client-side response cache is turned off: every list and read goes to the upstream,
//! so pins are always computed over what the upstream says now.

use std::{
    io,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use rmcp::{
    ClientHandler, ServiceError, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, JsonObject, PaginatedRequestParams,
        Prompt, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource, Tool,
    },
    service::{ClientInitializeError, NotificationContext, RoleClient, RunningService},
    transport::{
        StreamableHttpClientTransport, async_rw::AsyncRwTransport,
        streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde::Serialize;
use tokio::{
    io::AsyncReadExt as _,
    process::{Child, ChildStderr, Command},
};

use crate::{
    McpError,
    config::{INHERITED_ENV, UpstreamConfig, UpstreamTransport},
};

/// Largest JSON-RPC message accepted from an upstream, in bytes: one stdio line, one
/// SSE event, and the re-serialized size of every result. 4 MiB holds any sane tool
/// result; rmcp's own default is 16 MiB. (A plain `application/json` HTTP response is
/// also capped by rmcp at 16 MiB before this check.) An oversized stdio line is
/// dropped by rmcp, so the request then ends in `MCP-UPSTREAM-TIMEOUT`.
pub const MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Time allowed for spawning (or reaching) an upstream and completing `initialize`.
/// Generous because `npx` may start slowly on a cold cache.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Time allowed for each page of `tools/list`, `resources/list` and `prompts/list`,
/// and for each `resources/read` and `prompts/get`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest timeout [`Upstream::call_tool`] accepts; longer requests are clamped to it.
pub const CALL_TIMEOUT_MAX: Duration = Duration::from_secs(600);

/// Most items one list operation returns across all pages; more is `MCP-UPSTREAM-LIMIT`.
pub const LIST_ITEMS_MAX: usize = 1024;

/// Most pages one list operation follows; guards against a cursor that never ends.
pub const LIST_PAGES_MAX: usize = 64;

/// Time a stdio upstream gets to exit after its stdin is closed before it is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Longest upstream error message kept in an [`McpError`], in characters.
pub const ERROR_MESSAGE_CHARS_MAX: usize = 512;

/// Most bytes of upstream stderr logged as one `tracing` event.
const STDERR_CHUNK_BYTES: usize = 4096;

/// MAOS's client side of one upstream connection: no sampling, roots or elicitation
/// offered; it only notes `tools/list_changed`.
#[derive(Clone)]
struct UpstreamClient {
    info: ClientConfig,
    tools_changed: Arc<AtomicBool>,
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.store(true, Ordering::Release);
    }
}

/// A live connection to one upstream MCP server. Methods take `&self` and may run
/// concurrently (share it in an `Arc`).
pub struct Upstream {
    name: String,
    service: RunningService<RoleClient, UpstreamClient>,
    child: Option<Child>,
    tools_changed: Arc<AtomicBool>,
    /// The configured longest wait for one tool call.
    call_timeout: Option<Duration>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("pid", &self.child.as_ref().and_then(Child::id))
            .finish()
    }
}

impl Upstream {
    /// Starts (stdio) or reaches (streamable HTTP) the upstream and completes the MCP
    /// handshake within [`CONNECT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// `MCP-CONFIG` for an invalid config or a missing bearer-token variable,
    /// `MCP-UPSTREAM-SPAWN` when the command cannot start, `MCP-UPSTREAM-INIT` when the
    /// handshake fails, `MCP-UPSTREAM-TIMEOUT` when it takes too long.
    pub async fn connect(config: &UpstreamConfig) -> Result<Self, McpError> {
        Self::connect_inner(config, None).await
    }

    /// As [`Self::connect`], for a streamable HTTP upstream, sending `bearer` as the
    /// `Authorization: Bearer` token instead of reading `bearer_token_env`. This is how
    /// [`crate::Bridge`] presents an agent's capability token to a running MAOS.
    ///
    /// # Errors
    ///
    /// As [`Self::connect`]; `MCP-CONFIG` for a stdio config. A JSON-RPC error answering
    /// `initialize` (e.g. a refused token) is `MCP-UPSTREAM-ERROR` with the server's
    /// code and message.
    pub async fn connect_with_bearer(config: &UpstreamConfig, bearer: &str) -> Result<Self, McpError> {
        Self::connect_inner(config, Some(bearer)).await
    }

    async fn connect_inner(config: &UpstreamConfig, bearer: Option<&str>) -> Result<Self, McpError> {
        let transport = config.transport()?;
        let name = config.name.clone();
        let tools_changed = Arc::new(AtomicBool::new(false));
        let client = UpstreamClient {
            info: ClientConfig::new(
                ClientCapabilities::default(),
                Implementation::new("maos", env!("CARGO_PKG_VERSION")),
            ),
            tools_changed: Arc::clone(&tools_changed),
        };
        let (service, child) = match transport {
            UpstreamTransport::Stdio { .. } if bearer.is_some() => {
                return Err(McpError::Config {
                    upstream: Some(name),
                    why: "a bearer token can only be sent to a streamable HTTP upstream (`url`)".to_owned(),
                });
            }
            UpstreamTransport::Stdio { command, args, env } => {
                let mut cmd = Command::new(command);
                cmd.args(args)
                    .env_clear()
                    .envs(INHERITED_ENV.iter().filter_map(|key| std::env::var_os(key).map(|value| (key, value))))
                    .envs(env)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true);
                let spawn_error =
                    |why: String| McpError::Spawn { upstream: name.clone(), command: command.to_owned(), why };
                let mut child = cmd.spawn().map_err(|e| spawn_error(e.to_string()))?;
                let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
                    return Err(spawn_error("stdio pipes missing".to_owned()));
                };
                if let Some(stderr) = child.stderr.take() {
                    tokio::spawn(log_stderr(name.clone(), stderr));
                }
                let transport = AsyncRwTransport::new_client(stdout, stdin).with_max_line_length(MESSAGE_BYTES_MAX);
                let service = handshake(&name, client.serve(transport)).await?;
                (service, Some(child))
            }
            UpstreamTransport::Http { url, bearer_token_env } => {
                let mut http = StreamableHttpClientTransportConfig::with_uri(url).max_sse_event_size(MESSAGE_BYTES_MAX);
                let token = match (bearer, bearer_token_env) {
                    (Some(bearer), _) => Some(bearer.to_owned()),
                    (None, Some(var)) => Some(std::env::var(var).map_err(|_| McpError::Config {
                        upstream: Some(name.clone()),
                        why: format!("environment variable `{var}` (bearer_token_env) is not set or not UTF-8"),
                    })?),
                    (None, None) => None,
                };
                if let Some(token) = token {
                    // rmcp adds the `Bearer ` prefix.
                    http = http.auth_header(token);
                }
                let transport = StreamableHttpClientTransport::with_client(http_client(&name)?, http);
                (handshake(&name, client.serve(transport)).await?, None)
            }
        };
        service.set_response_cache_config(rmcp::ClientCacheConfig::disabled()).await;
        Ok(Self { name, service, child, tools_changed, call_timeout: config.call_timeout() })
    }

    /// The configured upstream name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the upstream said about itself in the handshake, if it said anything.
    #[must_use]
    pub fn server_info(&self) -> Option<Implementation> {
        self.service.peer_info().and_then(|info| info.server_info.clone())
    }

    /// The negotiated MCP protocol version (e.g. `2025-11-25`).
    #[must_use]
    pub fn protocol_version(&self) -> Option<String> {
        self.service.peer_info().map(|info| info.protocol_version.to_string())
    }

    /// Whether the upstream sent `notifications/tools/list_changed` since the last call
    /// (the flag is cleared by reading it). The gateway should then list and re-pin.
    #[must_use]
    pub fn take_tools_changed(&self) -> bool {
        self.tools_changed.swap(false, Ordering::AcqRel)
    }

    /// Whether the connection has ended: the upstream exited or closed it (a stdio
    /// child's output reached its end), or it was closed here. Cheap: no I/O. A
    /// request on a closed connection fails with `MCP-UPSTREAM-TRANSPORT`.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.service.is_closed() || self.service.is_transport_closed()
    }

    /// All tools, following pagination.
    ///
    /// # Errors
    ///
    /// Any `MCP-UPSTREAM-*` error; `MCP-UPSTREAM-LIMIT` past [`LIST_ITEMS_MAX`] tools or
    /// [`LIST_PAGES_MAX`] pages.
    pub async fn list_tools(&self) -> Result<Vec<Tool>, McpError> {
        self.list_all("tools/list", |cursor| async move {
            let page = self.service.list_tools(Some(PaginatedRequestParams::default().with_cursor(cursor))).await?;
            Ok((page.tools, page.next_cursor))
        })
        .await
    }

    /// Calls a tool. `timeout` is clamped to [`CALL_TIMEOUT_MAX`]; when it passes, the
    /// call is cancelled upstream. A tool-level failure is `Ok` with `is_error: Some(true)`.
    ///
    /// # Errors
    ///
    /// `MCP-UPSTREAM-TIMEOUT`, `MCP-UPSTREAM-ERROR` (JSON-RPC error, e.g. unknown tool),
    /// `MCP-UPSTREAM-TRANSPORT`, `MCP-UPSTREAM-TOO-LARGE`, or `MCP-UPSTREAM-UNSUPPORTED`
    /// when the upstream asks for input or returns a task instead of a result.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: JsonObject,
        timeout: Duration,
    ) -> Result<CallToolResult, McpError> {
        const OP: &str = "tools/call";
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
        let timeout = self.call_timeout.map_or(timeout, |c| c.min(timeout)).min(CALL_TIMEOUT_MAX);
        let response = self.request(OP, timeout, self.service.call_tool_once(params)).await?;
        match response {
            CallToolResponse::Complete(result) => self.bounded(OP, result),
            CallToolResponse::InputRequired(_) => Err(self.unsupported(OP, "input_required result")),
            CallToolResponse::Task(_) => Err(self.unsupported(OP, "task handle")),
            _ => Err(self.unsupported(OP, "unknown response kind")),
        }
    }

    /// All resources, following pagination.
    ///
    /// # Errors
    ///
    /// As [`Self::list_tools`].
    pub async fn list_resources(&self) -> Result<Vec<Resource>, McpError> {
        self.list_all("resources/list", |cursor| async move {
            let page = self.service.list_resources(Some(PaginatedRequestParams::default().with_cursor(cursor))).await?;
            Ok((page.resources, page.next_cursor))
        })
        .await
    }

    /// Reads one resource.
    ///
    /// # Errors
    ///
    /// As [`Self::call_tool`] (a resource that does not exist is `MCP-UPSTREAM-ERROR`).
    pub async fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, McpError> {
        const OP: &str = "resources/read";
        let params = ReadResourceRequestParams::new(uri);
        match self.request(OP, REQUEST_TIMEOUT, self.service.read_resource_once(params)).await? {
            ReadResourceResponse::Complete(result) => self.bounded(OP, result),
            ReadResourceResponse::InputRequired(_) => Err(self.unsupported(OP, "input_required result")),
            _ => Err(self.unsupported(OP, "unknown response kind")),
        }
    }

    /// All prompts, following pagination.
    ///
    /// # Errors
    ///
    /// As [`Self::list_tools`].
    pub async fn list_prompts(&self) -> Result<Vec<Prompt>, McpError> {
        self.list_all("prompts/list", |cursor| async move {
            let page = self.service.list_prompts(Some(PaginatedRequestParams::default().with_cursor(cursor))).await?;
            Ok((page.prompts, page.next_cursor))
        })
        .await
    }

    /// Gets one prompt, with its arguments.
    ///
    /// # Errors
    ///
    /// As [`Self::call_tool`].
    pub async fn get_prompt(&self, name: &str, arguments: Option<JsonObject>) -> Result<GetPromptResult, McpError> {
        const OP: &str = "prompts/get";
        let mut params = GetPromptRequestParams::new(name);
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        match self.request(OP, REQUEST_TIMEOUT, self.service.get_prompt_once(params)).await? {
            GetPromptResponse::Complete(result) => self.bounded(OP, result),
            GetPromptResponse::InputRequired(_) => Err(self.unsupported(OP, "input_required result")),
            _ => Err(self.unsupported(OP, "unknown response kind")),
        }
    }

    /// Ends the session: closes the transport (a stdio upstream sees end of input), waits
    /// up to [`SHUTDOWN_GRACE`] for a child process to exit, then kills it. Dropping an
    /// `Upstream` instead kills a child at once.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.service.close()).await;
        if let Some(mut child) = self.child.take() {
            match tokio::time::timeout(SHUTDOWN_GRACE, child.wait()).await {
                Ok(Ok(status)) => tracing::debug!(upstream = %self.name, %status, "upstream exited"),
                _ => {
                    tracing::warn!(upstream = %self.name, "upstream did not exit after its input closed; killing it");
                    let _ = child.kill().await;
                }
            }
        }
    }

    async fn request<T>(
        &self,
        operation: &'static str,
        timeout: Duration,
        future: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, McpError> {
        // Dropping rmcp's request future on timeout sends `notifications/cancelled`.
        match tokio::time::timeout(timeout, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.service_error(operation, error)),
            Err(_) => Err(self.timeout(operation, timeout)),
        }
    }

    async fn list_all<T, F, Fut>(&self, operation: &'static str, mut page: F) -> Result<Vec<T>, McpError>
    where
        T: Serialize,
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<(Vec<T>, Option<String>), ServiceError>>,
    {
        let mut items = Vec::new();
        let mut cursor = None;
        for _ in 0..LIST_PAGES_MAX {
            let (batch, next) = self.request(operation, REQUEST_TIMEOUT, page(cursor)).await?;
            let batch = self.bounded(operation, batch)?;
            if items.len().saturating_add(batch.len()) > LIST_ITEMS_MAX {
                return Err(McpError::Limit {
                    upstream: self.name.clone(),
                    operation,
                    what: "items",
                    max: LIST_ITEMS_MAX,
                });
            }
            items.extend(batch);
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
        Err(McpError::Limit { upstream: self.name.clone(), operation, what: "pages", max: LIST_PAGES_MAX })
    }

    /// Rejects a decoded answer whose JSON form is over [`MESSAGE_BYTES_MAX`].
    fn bounded<T: Serialize>(&self, operation: &'static str, value: T) -> Result<T, McpError> {
        let bytes = json_bytes(&value);
        if bytes > MESSAGE_BYTES_MAX {
            return Err(McpError::TooLarge { upstream: self.name.clone(), operation, bytes, max: MESSAGE_BYTES_MAX });
        }
        Ok(value)
    }

    fn timeout(&self, operation: &'static str, after: Duration) -> McpError {
        McpError::Timeout {
            upstream: self.name.clone(),
            operation,
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn unsupported(&self, operation: &'static str, what: &'static str) -> McpError {
        McpError::Unsupported { upstream: self.name.clone(), operation, what }
    }

    fn service_error(&self, operation: &'static str, error: ServiceError) -> McpError {
        let upstream = self.name.clone();
        match error {
            ServiceError::McpError(data) => {
                McpError::Rpc { upstream, operation, code: data.code.0, message: truncate(&data.message) }
            }
            ServiceError::Timeout { timeout } => self.timeout(operation, timeout),
            ServiceError::UnexpectedResponse => {
                McpError::Unsupported { upstream, operation, what: "unexpected response type" }
            }
            ServiceError::InputRequiredRoundsExceeded { .. } => {
                McpError::Unsupported { upstream, operation, what: "input_required result" }
            }
            ServiceError::TransportClosed => {
                McpError::Transport { upstream, operation, why: "connection closed".to_owned() }
            }
            other => McpError::Transport { upstream, operation, why: truncate(&other.to_string()) },
        }
    }
}

async fn handshake<F>(upstream: &str, serve: F) -> Result<RunningService<RoleClient, UpstreamClient>, McpError>
where
    F: Future<Output = Result<RunningService<RoleClient, UpstreamClient>, ClientInitializeError>>,
{
    match tokio::time::timeout(CONNECT_TIMEOUT, serve).await {
        Ok(Ok(service)) => Ok(service),
        // The server answered `initialize` with a JSON-RPC error (e.g. a refused token):
        // keep its code and message.
        Ok(Err(ClientInitializeError::JsonRpcError(data))) => Err(McpError::Rpc {
            upstream: upstream.to_owned(),
            operation: "initialize",
            code: data.code.0,
            message: truncate(&data.message),
        }),
        Ok(Err(error)) => Err(McpError::Handshake { upstream: upstream.to_owned(), why: truncate(&error.to_string()) }),
        Err(_) => Err(McpError::Timeout {
            upstream: upstream.to_owned(),
            operation: "initialize",
            after_ms: u64::try_from(CONNECT_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
        }),
    }
}

/// Forwards a stdio upstream's stderr to `tracing` (debug level), in bounded chunks.
/// Idle connections kept per upstream host.
const POOL_IDLE_PER_HOST: usize = 64;

/// The HTTP client of one streamable HTTP upstream: connections are kept and reused
/// (rmcp's default client opens a new TCP connection for every request, which costs a
/// connect, an accept and a TIME-WAIT socket per tool call; rmcp drains each response
/// stream before the connection goes back to the pool, and a stream it cannot drain
/// is dropped with its connection), `TCP_NODELAY` so a small request is not held
/// back, and no redirects: an upstream is reached only at its configured URL.
fn http_client(name: &str) -> Result<reqwest::Client, McpError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| McpError::Config { upstream: Some(name.to_owned()), why: format!("HTTP client: {e}") })
}

async fn log_stderr(upstream: String, mut stderr: ChildStderr) {
    let mut buf = vec![0u8; STDERR_CHUNK_BYTES];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                tracing::debug!(%upstream, stderr = %text.trim_end(), "upstream stderr");
            }
        }
    }
}

/// The size of `value` as compact JSON, in bytes. Serializing rmcp's own model types
/// into a counter cannot fail but for its size; an error counts as `usize::MAX`.
pub(crate) fn json_bytes<T: Serialize>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// `text` cut to [`ERROR_MESSAGE_CHARS_MAX`] characters (with `…` when cut).
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(ERROR_MESSAGE_CHARS_MAX) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// An `io::Write` that only counts bytes.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_text_and_cuts_on_a_char_boundary() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(ERROR_MESSAGE_CHARS_MAX + 10);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), ERROR_MESSAGE_CHARS_MAX + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn upstream_and_its_futures_are_send() {
        // The gateway shares upstreams between tasks and awaits them in axum handlers.
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<Upstream>();
        let _compile_only = |up: &Upstream| {
            send(&up.list_tools());
            send(&up.call_tool("t", JsonObject::new(), Duration::ZERO));
            send(&up.list_resources());
            send(&up.read_resource("u"));
            send(&up.list_prompts());
            send(&up.get_prompt("p", None));
        };
    }

    #[tokio::test]
    async fn spawn_failure_is_a_spawn_error() {
        let config: UpstreamConfig =
            serde_json::from_str(r#"{"name": "ghost", "command": "/nonexistent/maos-mcp-test-binary"}"#).unwrap();
        let err = Upstream::connect(&config).await.unwrap_err();
        assert_eq!(err.code(), "MCP-UPSTREAM-SPAWN", "{err}");
    }

    #[tokio::test]
    async fn a_process_that_is_not_mcp_fails_the_handshake() {
        // `true` exits at once: the handshake sees the connection close.
        let config: UpstreamConfig = serde_json::from_str(r#"{"name": "mute", "command": "true"}"#).unwrap();
        let err = Upstream::connect(&config).await.unwrap_err();
        assert_eq!(err.code(), "MCP-UPSTREAM-INIT", "{err}");
    }

    #[tokio::test]
    async fn missing_bearer_variable_is_a_config_error() {
        let config: UpstreamConfig = serde_json::from_str(
            r#"{"name": "h", "url": "http://127.0.0.1:9/mcp", "bearer_token_env": "MAOS_MCP_TEST_UNSET_TOKEN_VAR"}"#,
        )
        .unwrap();
        let err = Upstream::connect(&config).await.unwrap_err();
        assert_eq!(err.code(), "MCP-CONFIG", "{err}");
    }

    #[tokio::test]
    async fn unreachable_http_upstream_fails_the_handshake() {
        // Port 9 (discard) on loopback: nothing listens; the connection is refused.
        let config: UpstreamConfig = serde_json::from_str(r#"{"name": "h", "url": "http://127.0.0.1:9/mcp"}"#).unwrap();
        let err = Upstream::connect(&config).await.unwrap_err();
        assert!(matches!(err.code(), "MCP-UPSTREAM-INIT" | "MCP-UPSTREAM-TIMEOUT"), "{err}");
    }
}
