//! MCP plumbing for MAOS, on the official Rust SDK (`rmcp`, pinned `=3.9.0`).
//!
//! Two sides: MAOS as an MCP *client* of the tool servers it mediates (upstreams), and
//! MAOS as an MCP *server* to agents, generic over a [`Mediator`] (the kernel side).
//!
//! Upstream side:
//!
//! - [`UpstreamConfig`]: one upstream in the shape users know from MCP client configs
//!   (`command` + `args` + `env` for stdio, or `url` for streamable HTTP), plus a
//!   [`ToolPolicy`] per tool: effect class, output label, and which arguments are
//!   recipients, accounts, URLs or paths.
//! - [`Upstream`]: a live connection (child process or HTTP) with bounded message sizes
//!   and a timeout on every request; lists tools, resources and prompts, calls tools,
//!   reads resources, gets prompts.
//! - [`tool_pin`]: SHA3-256 over a canonical encoding of a tool's name, description and
//!   input schema, to notice a tool that changes after approval.
//!
//! Agent side (its guarantees are in [`server`]):
//!
//! - [`Mediator`]: what the gateway decides for an agent (authenticate a bearer, list,
//!   call, read, get); [`Refusal`] is its JSON-RPC-level "no".
//! - [`router`]: MCP over streamable HTTP at `/mcp` (bounded sessions, [`McpSessions`]), the capability
//!   token as bearer, HTTP 401 ([`require_bearer`]) without one.
//! - [`serve_stdio`] / [`serve_io`]: MCP over stdio with a fixed bearer.
//! - [`Bridge`]: a mediator forwarding to a running MAOS (`maos mcp --agent ID`).
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn daemon<M: maos_mcp::Mediator>(mediator: Arc<M>) -> std::io::Result<()> {
//! // In the daemon: MCP at `/mcp`, next to the HTTP API's routes.
//! let app = axum::Router::new().merge(maos_mcp::router(mediator));
//! axum::serve(tokio::net::TcpListener::bind("127.0.0.1:7777").await?, app).await
//! # }
//! # async fn cli(token: String) -> Result<(), maos_mcp::McpError> {
//! // `maos mcp --agent ID`: MCP on stdio, forwarded to the running daemon.
//! let bridge = maos_mcp::Bridge::connect("http://127.0.0.1:7777/mcp", &token).await?;
//! maos_mcp::serve_stdio(Arc::new(bridge), token).await
//! # }
//! ```
//!
//! Upstream guarantees: a stdio upstream starts with a cleared environment (only
//! [`INHERITED_ENV`] and its configured `env`) and is killed when its [`Upstream`] is
//! dropped; nothing an upstream sends is cached; no answer larger than
//! [`MESSAGE_BYTES_MAX`] is returned; MAOS offers upstreams no sampling, roots or
//! elicitation. Errors carry stable codes ([`McpError::code`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), maos_mcp::McpError> {
//! use std::time::Duration;
//! use maos_mcp::{Upstream, UpstreamConfig, tool_pin};
//!
//! let config: UpstreamConfig = toml::from_str(r#"
//!     name = "everything"
//!     command = "npx"
//!     args = ["-y", "@modelcontextprotocol/server-everything"]
//! "#).unwrap();
//! let upstream = Upstream::connect(&config).await?;
//! for tool in upstream.list_tools().await? {
//!     println!("{} {:02x?}", tool.name, tool_pin(&tool));
//! }
//! let mut args = serde_json::Map::new();
//! args.insert("message".into(), "hi".into());
//! let result = upstream.call_tool("echo", args, Duration::from_secs(10)).await?;
//! assert_ne!(result.is_error, Some(true));
//! upstream.close().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod config;
mod error;
mod pin;
pub mod server;
mod upstream;

pub use config::{
    CALL_TIMEOUT_MS_MIN, INHERITED_ENV, OutputLabel, Provenance, ToolPolicy, UPSTREAM_NAME_BYTES_MAX, UpstreamConfig,
    UpstreamTransport, check_url,
};
pub use error::McpError;
pub use pin::{TOOL_PIN_DOMAIN, canonical_json, pin_hex, tool_pin};
/// All of rmcp's MCP model types (`Role`, `PromptArgument`, `RawContent`, …), for
/// building what a [`Mediator`] returns without depending on `rmcp` directly.
pub use rmcp::model;
/// The MCP model types this crate's API uses, re-exported so callers name the same
/// `rmcp` version.
pub use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, Implementation, JsonObject, Prompt, PromptMessage,
    ReadResourceResult, Resource, ResourceContents, Tool,
};
/// The streamable HTTP server config taken by [`router_with_config`] and
/// [`router_with_sessions`].
pub use rmcp::transport::StreamableHttpServerConfig;
pub use server::{
    BEARER_BYTES_MAX, Bridge, HttpService, INSTRUCTIONS, MCP_SESSION_IDLE, MCP_SESSIONS_MAX,
    MCP_SESSIONS_PER_OWNER_MAX, McpServer, McpSessions, Mediator, REFUSAL_RPC_CODE, REQUEST_BYTES_MAX,
    RESPONSE_BYTES_MAX, Refusal, SessionRefusal, require_bearer, router, router_with_config, router_with_sessions,
    serve_io, serve_stdio,
};
pub use upstream::{
    CALL_TIMEOUT_MAX, CONNECT_TIMEOUT, ERROR_MESSAGE_CHARS_MAX, LIST_ITEMS_MAX, LIST_PAGES_MAX, MESSAGE_BYTES_MAX,
    REQUEST_TIMEOUT, SHUTDOWN_GRACE, Upstream,
};
