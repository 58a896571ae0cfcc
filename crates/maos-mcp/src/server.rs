//! The agent-facing MCP server: MAOS as an MCP *server* to agents, generic over a
//! [`Mediator`] that decides what each agent sees and may do.
//!
//! - [`McpServer`]: an rmcp `ServerHandler`. Every request (including `initialize`)
//!   takes the agent's bearer token — over streamable HTTP from the request's
//!   `Authorization: Bearer …` header, over stdio from a token fixed at construction —
//!   asks [`Mediator::authenticate`] for a session, and only then delegates to the
//!   mediator. There is no state kept between requests but what the mediator keeps.
//! - [`router`]: the streamable HTTP endpoint (rmcp's `StreamableHttpService`,
//!   session mode, loopback `Host` check on) with [`require_bearer`] in front, which
//!   answers HTTP 401 before rmcp sees a request without a bearer, on a bounded
//!   session table ([`McpSessions`]).
//! - [`serve_io`] / [`serve_stdio`]: MCP over a byte stream pair with a fixed bearer.
//! - [`Bridge`]: a [`Mediator`] that forwards everything to a running MAOS over
//!   streamable HTTP, for `maos mcp --agent ID`.
//!
//! Guarantees:
//!
//! - Nothing is listed, called, read or got without a bearer that
//!   [`Mediator::authenticate`] accepted for that very request.
//! - A [`Refusal`] (authentication, protocol) is a JSON-RPC error with code
//!   [`REFUSAL_RPC_CODE`], a message `CODE: reason` on one line, and
//!   `data: {"code": CODE}`. A policy deny is not a refusal: the mediator returns it as a
//!   tool result with `isError: true` whose text starts with the code
//!   (`DSC-2-SCOPE: …`), which agents can read.
//! - Bounded: requests over [`REQUEST_BYTES_MAX`] are refused (HTTP 413; an oversized
//!   stdio line is dropped), bearers over [`BEARER_BYTES_MAX`] are not accepted, answers
//!   over [`RESPONSE_BYTES_MAX`] and lists over [`LIST_ITEMS_MAX`] items become
//!   refusals (`MCP-SERVER-TOO-LARGE`, `MCP-SERVER-LIMIT`) instead of being sent.
//! - Mediator futures run to completion once started: a client's
//!   `notifications/cancelled` does not drop them (the kernel decides what an
//!   interrupted effect means), though the answer is then not sent.

mod bridge;
mod http;
mod sessions;
mod stdio;

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ErrorCode, GetPromptRequestParams, GetPromptResponse,
        GetPromptResult, Implementation, InitializeRequestParams, InitializeResult, JsonObject, ListPromptsResult,
        ListResourcesResult, ListToolsResult, PaginatedRequestParams, Prompt, ReadResourceRequestParams,
        ReadResourceResponse, ReadResourceResult, Resource, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
};
use serde::Serialize;

pub use bridge::Bridge;
pub use http::{HttpService, require_bearer, router, router_with_config, router_with_sessions};
pub use sessions::{MCP_SESSION_IDLE, MCP_SESSIONS_MAX, MCP_SESSIONS_PER_OWNER_MAX, McpSessions, SessionRefusal};
pub use stdio::{serve_io, serve_stdio};

use crate::{
    LIST_ITEMS_MAX, MESSAGE_BYTES_MAX,
    upstream::{json_bytes, truncate},
};

/// The JSON-RPC error code of every [`Refusal`] (in the JSON-RPC "server error" range);
/// the stable MAOS code is in the message prefix and in `data.code`.
pub const REFUSAL_RPC_CODE: i32 = -32001;

/// Largest request accepted from an agent, in bytes: one HTTP POST body or one stdio line.
pub const REQUEST_BYTES_MAX: usize = MESSAGE_BYTES_MAX;

/// Largest answer sent to an agent (one result, as JSON), in bytes; a larger one is
/// refused with `MCP-SERVER-TOO-LARGE`.
pub const RESPONSE_BYTES_MAX: usize = MESSAGE_BYTES_MAX;

/// Longest bearer token accepted, in bytes (as the HTTP API's bearer limit).
pub const BEARER_BYTES_MAX: usize = 16 * 1024;

/// Longest stable code recognized at the start of a JSON-RPC error message.
const CODE_CHARS_MAX: usize = 64;

/// What an agent is told when MAOS connects it; sent in `initialize`.
pub const INSTRUCTIONS: &str = "Every tool call, resource read and prompt here is mediated by MAOS, a security \
kernel: it is checked against your capability token and the operator's policy before it runs. A denied call \
returns a tool result with isError true whose text starts with a stable code and a one-line reason (for example \
`DSC-2-SCOPE: ...`); read it and adapt instead of repeating the same call. Authentication and protocol refusals \
are JSON-RPC errors whose message starts with the stable code.";

/// A refusal before any tool runs (authentication, protocol): becomes a JSON-RPC error
/// with code [`REFUSAL_RPC_CODE`], message `"{code}: {message}"` and
/// `data: {"code": code}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The stable code, e.g. `API-TOKEN-INVALID`.
    pub code: String,
    /// A one-line reason, without the code.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and a one-line `message`.
    #[must_use]
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }

    /// The JSON-RPC error this refusal is sent as. Line breaks and other control
    /// characters in the message become spaces; it is cut to
    /// [`crate::ERROR_MESSAGE_CHARS_MAX`] characters.
    #[must_use]
    pub fn to_error_data(&self) -> ErrorData {
        let message: String =
            self.message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned();
        ErrorData::new(
            ErrorCode(REFUSAL_RPC_CODE),
            format!("{}: {}", self.code, truncate(&message)),
            Some(serde_json::json!({ "code": self.code })),
        )
    }

    /// Reads a refusal back from a JSON-RPC error: `data.code` when it is a string,
    /// else the `CODE: ` prefix of the message. `None` when the error is not a
    /// [`REFUSAL_RPC_CODE`] error or carries no code.
    #[must_use]
    pub fn from_error_data(error: &ErrorData) -> Option<Self> {
        if error.code.0 != REFUSAL_RPC_CODE {
            return None;
        }
        Self::from_message(error.code.0, &error.message).or_else(|| {
            let code = error.data.as_ref()?.get("code")?.as_str()?;
            is_code(code).then(|| Self::new(code, error.message.as_ref()))
        })
    }

    /// As [`Self::from_error_data`], from a JSON-RPC code and message only.
    #[must_use]
    pub fn from_message(rpc_code: i32, message: &str) -> Option<Self> {
        if rpc_code != REFUSAL_RPC_CODE {
            return None;
        }
        let (code, reason) = message.split_once(": ")?;
        is_code(code).then(|| Self::new(code, reason))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for ErrorData {
    fn from(refusal: Refusal) -> Self {
        refusal.to_error_data()
    }
}

/// Whether `text` looks like a stable code: `A-Z` first, then `A-Z`, `0-9`, `-`, with
/// at least one `-` (`API-TOKEN-INVALID`, `DSC-2-SCOPE`).
fn is_code(text: &str) -> bool {
    text.len() <= CODE_CHARS_MAX
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text.contains('-')
        && !text.ends_with('-')
        && text.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
}

/// What the gateway decides for an agent; implemented by the kernel side.
///
/// Every method may run concurrently with others for the same or other sessions.
pub trait Mediator: Send + Sync + 'static {
    /// Per-agent session state (cheap to clone).
    type Session: Clone + Send + Sync + 'static;

    /// Verifies the bearer (a capability token text) and returns the session; called
    /// for every request, `initialize` included (the implementation caches); `Err` → a
    /// JSON-RPC error, nothing listed.
    fn authenticate(&self, bearer: &str) -> impl Future<Output = Result<Self::Session, Refusal>> + Send;

    /// The credential a session belongs to (in MAOS the token id): streamable
    /// HTTP sessions are counted, and closed on revocation, per owner. `None`
    /// counts them under the SHA3-256 of the bearer.
    fn owner(&self, _session: &Self::Session) -> Option<String> {
        None
    }

    /// The tools this session may see (at most [`LIST_ITEMS_MAX`]).
    fn list_tools(&self, session: &Self::Session) -> impl Future<Output = Result<Vec<Tool>, Refusal>> + Send;

    /// Calls a tool (`arguments` is empty when the client sent none). A deny is returned
    /// as `Ok(CallToolResult::error(..))` with text `CODE: reason`; `Err` only for
    /// refusals that are not about this call's policy (e.g. a revoked token).
    fn call_tool(
        &self,
        session: &Self::Session,
        name: &str,
        arguments: JsonObject,
    ) -> impl Future<Output = Result<CallToolResult, Refusal>> + Send;

    /// The resources this session may see (at most [`LIST_ITEMS_MAX`]).
    fn list_resources(&self, session: &Self::Session) -> impl Future<Output = Result<Vec<Resource>, Refusal>> + Send;

    /// Reads one resource.
    fn read_resource(
        &self,
        session: &Self::Session,
        uri: &str,
    ) -> impl Future<Output = Result<ReadResourceResult, Refusal>> + Send;

    /// The prompts this session may see (at most [`LIST_ITEMS_MAX`]).
    fn list_prompts(&self, session: &Self::Session) -> impl Future<Output = Result<Vec<Prompt>, Refusal>> + Send;

    /// Gets one prompt.
    fn get_prompt(
        &self,
        session: &Self::Session,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> impl Future<Output = Result<GetPromptResult, Refusal>> + Send;
}

/// Where [`McpServer`] takes the bearer from.
#[derive(Clone)]
enum BearerSource {
    /// The `Authorization` header of each HTTP request.
    Header,
    /// A token fixed for the connection (stdio).
    Fixed(Arc<str>),
}

/// The rmcp `ServerHandler` in front of a [`Mediator`]. Cheap to clone (an `Arc`).
pub struct McpServer<M: Mediator> {
    mediator: Arc<M>,
    bearer: BearerSource,
}

impl<M: Mediator> Clone for McpServer<M> {
    fn clone(&self) -> Self {
        Self { mediator: Arc::clone(&self.mediator), bearer: self.bearer.clone() }
    }
}

impl<M: Mediator> std::fmt::Debug for McpServer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bearer = match self.bearer {
            BearerSource::Header => "from the Authorization header",
            BearerSource::Fixed(_) => "fixed (redacted)",
        };
        f.debug_struct("McpServer").field("bearer", &bearer).finish_non_exhaustive()
    }
}

impl<M: Mediator> McpServer<M> {
    /// A server for streamable HTTP: the bearer of each request is read from its
    /// `Authorization: Bearer …` header. Served over another transport it refuses
    /// everything with `API-UNAUTHORIZED`.
    #[must_use]
    pub fn over_http(mediator: Arc<M>) -> Self {
        Self { mediator, bearer: BearerSource::Header }
    }

    /// A server whose every request carries `bearer` (stdio: the agent's token, given
    /// once when the process starts).
    #[must_use]
    pub fn with_bearer(mediator: Arc<M>, bearer: impl Into<Arc<str>>) -> Self {
        Self { mediator, bearer: BearerSource::Fixed(bearer.into()) }
    }

    /// The mediator.
    #[must_use]
    pub fn mediator(&self) -> &Arc<M> {
        &self.mediator
    }

    async fn session(&self, context: &RequestContext<RoleServer>) -> Result<M::Session, ErrorData> {
        let bearer = match &self.bearer {
            BearerSource::Fixed(bearer) => Some(bearer.as_ref()),
            BearerSource::Header => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| http::bearer_from_headers(&parts.headers)),
        };
        let Some(bearer) = bearer.filter(|b| !b.is_empty() && b.len() <= BEARER_BYTES_MAX) else {
            return Err(unauthorized().into());
        };
        Ok(self.mediator.authenticate(bearer).await?)
    }
}

/// The refusal for a request without a usable bearer token.
fn unauthorized() -> Refusal {
    Refusal::new("API-UNAUTHORIZED", "an MCP request needs `Authorization: Bearer <capability token>` (at most 16 KiB)")
}

/// Refuses an answer whose JSON form is over [`RESPONSE_BYTES_MAX`].
fn bounded<T: Serialize>(what: &str, value: T) -> Result<T, ErrorData> {
    let bytes = json_bytes(&value);
    if bytes > RESPONSE_BYTES_MAX {
        return Err(Refusal::new(
            "MCP-SERVER-TOO-LARGE",
            format!("the {what} answer is {bytes} bytes, over the {RESPONSE_BYTES_MAX} byte limit"),
        )
        .into());
    }
    Ok(value)
}

/// Refuses a list over [`LIST_ITEMS_MAX`] items, then bounds its size.
fn bounded_list<T: Serialize>(what: &str, items: Vec<T>) -> Result<Vec<T>, ErrorData> {
    if items.len() > LIST_ITEMS_MAX {
        return Err(Refusal::new(
            "MCP-SERVER-LIMIT",
            format!("{what} has {} items, over the {LIST_ITEMS_MAX} item limit", items.len()),
        )
        .into());
    }
    bounded(what, items)
}

impl<M: Mediator> ServerHandler for McpServer<M> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().enable_prompts().build())
            .with_server_info(Implementation::new("maos", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        // A refused token fails the handshake: the agent learns at once, not at its first call.
        self.session(&context).await?;
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let session = self.session(&context).await?;
        let tools = self.mediator.list_tools(&session).await?;
        Ok(ListToolsResult::with_all_items(bounded_list("tools/list", tools)?))
    }

    fn get_tool(&self, _name: &str) -> Option<Tool> {
        // Synchronous and without a request: no session to ask the mediator with.
        // `None` skips rmcp's SEP-2243 `Mcp-Param-*` header validation.
        None
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let session = self.session(&context).await?;
        let arguments = request.arguments.unwrap_or_default();
        let result = self.mediator.call_tool(&session, &request.name, arguments).await?;
        Ok(bounded("tools/call", result)?.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let session = self.session(&context).await?;
        let resources = self.mediator.list_resources(&session).await?;
        Ok(ListResourcesResult::with_all_items(bounded_list("resources/list", resources)?))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let session = self.session(&context).await?;
        let result = self.mediator.read_resource(&session, &request.uri).await?;
        Ok(bounded("resources/read", result)?.into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let session = self.session(&context).await?;
        let prompts = self.mediator.list_prompts(&session).await?;
        Ok(ListPromptsResult::with_all_items(bounded_list("prompts/list", prompts)?))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let session = self.session(&context).await?;
        let result = self.mediator.get_prompt(&session, &request.name, request.arguments).await?;
        Ok(bounded("prompts/get", result)?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_round_trips_through_a_json_rpc_error() {
        let refusal = Refusal::new("API-TOKEN-INVALID", "TOKEN-EXPIRED: the token expired\nat noon");
        let error = refusal.to_error_data();
        assert_eq!(error.code.0, REFUSAL_RPC_CODE);
        assert_eq!(error.message, "API-TOKEN-INVALID: TOKEN-EXPIRED: the token expired at noon");
        assert_eq!(error.data, Some(serde_json::json!({"code": "API-TOKEN-INVALID"})));
        let back = Refusal::from_error_data(&error).unwrap();
        assert_eq!(back.code, "API-TOKEN-INVALID");
        assert_eq!(back.message, "TOKEN-EXPIRED: the token expired at noon");
    }

    #[test]
    fn only_refusal_errors_with_a_code_are_read_back() {
        assert_eq!(Refusal::from_message(-32601, "API-X: no"), None);
        assert_eq!(Refusal::from_message(REFUSAL_RPC_CODE, "no code here"), None);
        assert_eq!(Refusal::from_message(REFUSAL_RPC_CODE, "lower-case: no"), None);
        assert_eq!(Refusal::from_message(REFUSAL_RPC_CODE, "NODASH: no"), None);
        assert_eq!(
            Refusal::from_message(REFUSAL_RPC_CODE, "DSC-2-SCOPE: out of scope"),
            Some(Refusal::new("DSC-2-SCOPE", "out of scope"))
        );
        // A code only in `data` is still found.
        let error = ErrorData::new(
            ErrorCode(REFUSAL_RPC_CODE),
            "refused",
            Some(serde_json::json!({"code": "API-UNAUTHORIZED"})),
        );
        assert_eq!(Refusal::from_error_data(&error), Some(Refusal::new("API-UNAUTHORIZED", "refused")));
    }

    #[test]
    fn long_refusal_messages_are_cut() {
        let error = Refusal::new("API-X-Y", "x".repeat(10_000)).to_error_data();
        assert!(error.message.len() < 600, "{}", error.message.len());
    }

    #[test]
    fn oversized_lists_are_refused() {
        let items = vec![0u8; LIST_ITEMS_MAX + 1];
        let error = bounded_list("tools/list", items).unwrap_err();
        assert!(error.message.starts_with("MCP-SERVER-LIMIT: "), "{}", error.message);
        let big = "x".repeat(RESPONSE_BYTES_MAX);
        let error = bounded("tools/call", big).unwrap_err();
        assert!(error.message.starts_with("MCP-SERVER-TOO-LARGE: "), "{}", error.message);
        assert_eq!(bounded_list("tools/list", vec![1, 2]).unwrap(), vec![1, 2]);
    }
}
