//! [`Bridge`]: a [`Mediator`] that forwards to a running MAOS over streamable HTTP, so
//! a stdio MCP client can reach the daemon (`maos mcp --agent ID`).
//!
//! The bridge holds one connection to the daemon's `/mcp`, authenticated with the
//! agent's capability token; the daemon mediates every request. Answers come back as
//! the daemon sent them: a tool result with `isError: true` (a deny) stays a tool
//! result; a JSON-RPC refusal (`CODE: reason`) becomes a [`Refusal`] with that code;
//! any other failure becomes a refusal with this crate's `MCP-UPSTREAM-*` code.

use rmcp::model::{CallToolResult, GetPromptResult, JsonObject, Prompt, ReadResourceResult, Resource, Tool};

use super::{Mediator, Refusal};
use crate::{CALL_TIMEOUT_MAX, McpError, Upstream, UpstreamConfig};

/// Forwards every request to a running MAOS (see the module docs). Its session is `()`:
/// the daemon keeps the agent's state.
pub struct Bridge {
    url: String,
    token: String,
    upstream: Upstream,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("url", &self.url).field("token", &"(redacted)").finish_non_exhaustive()
    }
}

impl Bridge {
    /// Connects to the daemon's MCP endpoint `url` (e.g. `http://127.0.0.1:7777/mcp`)
    /// with `token` as the bearer, and completes `initialize`.
    ///
    /// # Errors
    ///
    /// `MCP-NO-DAEMON` ("no running `maos up` at URL; start it with `maos up`") when
    /// nothing answers MCP there; `MCP-UPSTREAM-ERROR` when the daemon refused the
    /// token (the message starts with the daemon's code, e.g. `API-TOKEN-INVALID: …`);
    /// `MCP-CONFIG` for a URL that is not `https://` or `http://` to a loopback host.
    pub async fn connect(url: &str, token: &str) -> Result<Self, McpError> {
        let config = UpstreamConfig::http("maos", url);
        match Upstream::connect_with_bearer(&config, token).await {
            Ok(upstream) => Ok(Self { url: url.to_owned(), token: token.to_owned(), upstream }),
            Err(error @ (McpError::Config { .. } | McpError::Rpc { .. })) => Err(error),
            Err(error) => Err(McpError::NoDaemon { url: url.to_owned(), why: error.to_string() }),
        }
    }

    /// The daemon's MCP endpoint.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the daemon said its tool list changed since the last call (cleared by
    /// reading it).
    #[must_use]
    pub fn take_tools_changed(&self) -> bool {
        self.upstream.take_tools_changed()
    }

    /// Ends the session with the daemon.
    pub async fn close(self) {
        self.upstream.close().await;
    }
}

/// The daemon's refusal as it sent it, or this crate's code for anything else.
fn refusal(error: McpError) -> Refusal {
    if let McpError::Rpc { code, message, .. } = &error
        && let Some(refusal) = Refusal::from_message(*code, message)
    {
        return refusal;
    }
    Refusal::new(error.code(), error.to_string())
}

/// Equality that does not stop at the first differing byte.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Mediator for Bridge {
    type Session = ();

    /// Accepts only the token the bridge connected with (the daemon checks it again on
    /// every forwarded request), so a bridge served to anyone else forwards nothing.
    async fn authenticate(&self, bearer: &str) -> Result<(), Refusal> {
        if same_token(bearer, &self.token) {
            Ok(())
        } else {
            Err(Refusal::new("API-TOKEN-INVALID", "this bridge forwards only the token it was started with"))
        }
    }

    async fn list_tools(&self, _session: &()) -> Result<Vec<Tool>, Refusal> {
        self.upstream.list_tools().await.map_err(refusal)
    }

    async fn call_tool(&self, _session: &(), name: &str, arguments: JsonObject) -> Result<CallToolResult, Refusal> {
        // The daemon bounds the call (escalations may wait for a human); allow the most.
        self.upstream.call_tool(name, arguments, CALL_TIMEOUT_MAX).await.map_err(refusal)
    }

    async fn list_resources(&self, _session: &()) -> Result<Vec<Resource>, Refusal> {
        self.upstream.list_resources().await.map_err(refusal)
    }

    async fn read_resource(&self, _session: &(), uri: &str) -> Result<ReadResourceResult, Refusal> {
        self.upstream.read_resource(uri).await.map_err(refusal)
    }

    async fn list_prompts(&self, _session: &()) -> Result<Vec<Prompt>, Refusal> {
        self.upstream.list_prompts().await.map_err(refusal)
    }

    async fn get_prompt(
        &self,
        _session: &(),
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<GetPromptResult, Refusal> {
        self.upstream.get_prompt(name, arguments).await.map_err(refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::REFUSAL_RPC_CODE;

    #[test]
    fn daemon_refusals_keep_their_code() {
        let from_daemon = McpError::Rpc {
            upstream: "maos".into(),
            operation: "tools/list",
            code: REFUSAL_RPC_CODE,
            message: "API-TOKEN-INVALID: TOKEN-REVOKED: revoked".into(),
        };
        assert_eq!(refusal(from_daemon), Refusal::new("API-TOKEN-INVALID", "TOKEN-REVOKED: revoked"));
        let other = McpError::Rpc {
            upstream: "maos".into(),
            operation: "tools/call",
            code: -32601,
            message: "method not found".into(),
        };
        let mapped = refusal(other);
        assert_eq!(mapped.code, "MCP-UPSTREAM-ERROR");
        assert!(mapped.message.contains("-32601"), "{}", mapped.message);
        let timeout = McpError::Timeout { upstream: "maos".into(), operation: "tools/call", after_ms: 5 };
        assert_eq!(refusal(timeout).code, "MCP-UPSTREAM-TIMEOUT");
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert!(same_token("", ""));
    }

    #[tokio::test]
    async fn no_daemon_is_named_with_the_fix() {
        // Port 9 (discard) on loopback: nothing listens.
        let error = Bridge::connect("http://127.0.0.1:9/mcp", "t").await.unwrap_err();
        assert_eq!(error.code(), "MCP-NO-DAEMON", "{error}");
        assert!(
            error.to_string().starts_with("no running `maos up` at http://127.0.0.1:9/mcp; start it with `maos up`"),
            "{error}"
        );
        let error = Bridge::connect("http://example.com/mcp", "t").await.unwrap_err();
        assert_eq!(error.code(), "MCP-CONFIG", "{error}");
    }
}
