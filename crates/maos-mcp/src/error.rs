//! The one error type of this crate. Messages name the upstream and the operation,
//! never tool arguments, results or credentials.

/// Errors talking to upstream MCP servers, reaching a running MAOS, or serving MCP.
/// Stable codes are listed in `docs/errors.md`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// `MCP-CONFIG`: an upstream configuration is invalid.
    #[error("upstream config{}: {why}", upstream_suffix(upstream))]
    Config {
        /// The upstream's name, when it was readable.
        upstream: Option<String>,
        /// What is wrong.
        why: String,
    },
    /// `MCP-UPSTREAM-SPAWN`: the upstream's command could not be started.
    #[error("upstream `{upstream}`: cannot start `{command}`: {why}")]
    Spawn {
        /// The upstream's name.
        upstream: String,
        /// The configured command.
        command: String,
        /// The operating system's reason.
        why: String,
    },
    /// `MCP-UPSTREAM-INIT`: the MCP handshake with the upstream failed.
    #[error("upstream `{upstream}`: handshake failed: {why}")]
    Handshake {
        /// The upstream's name.
        upstream: String,
        /// Why it failed.
        why: String,
    },
    /// `MCP-UPSTREAM-TIMEOUT`: the upstream did not answer in time (the request was cancelled).
    #[error("upstream `{upstream}`: {operation} timed out after {after_ms} ms")]
    Timeout {
        /// The upstream's name.
        upstream: String,
        /// The MCP method, e.g. `tools/call`.
        operation: &'static str,
        /// The limit that passed.
        after_ms: u64,
    },
    /// `MCP-UPSTREAM-ERROR`: the upstream answered with a JSON-RPC error.
    #[error("upstream `{upstream}`: {operation} failed with JSON-RPC error {code}: {message}")]
    Rpc {
        /// The upstream's name.
        upstream: String,
        /// The MCP method.
        operation: &'static str,
        /// The JSON-RPC error code.
        code: i32,
        /// The upstream's message (truncated to [`crate::ERROR_MESSAGE_CHARS_MAX`]).
        message: String,
    },
    /// `MCP-UPSTREAM-TRANSPORT`: the connection to the upstream failed or closed.
    #[error("upstream `{upstream}`: {operation}: transport failed: {why}")]
    Transport {
        /// The upstream's name.
        upstream: String,
        /// The MCP method.
        operation: &'static str,
        /// Why.
        why: String,
    },
    /// `MCP-UPSTREAM-TOO-LARGE`: an answer exceeded a size limit.
    #[error("upstream `{upstream}`: {operation} answer is {bytes} bytes, over the {max} byte limit")]
    TooLarge {
        /// The upstream's name.
        upstream: String,
        /// The MCP method.
        operation: &'static str,
        /// The size seen.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// `MCP-UPSTREAM-LIMIT`: an upstream listed more items or pages than we accept.
    #[error("upstream `{upstream}`: {operation} returned more than {max} {what}")]
    Limit {
        /// The upstream's name.
        upstream: String,
        /// The MCP method.
        operation: &'static str,
        /// What was counted (`items`, `pages`).
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// `MCP-UPSTREAM-UNSUPPORTED`: the upstream answered in a form the gateway does not
    /// drive (an `input_required` round or a task handle) or sent an unexpected response.
    #[error("upstream `{upstream}`: {operation}: unsupported answer: {what}")]
    Unsupported {
        /// The upstream's name.
        upstream: String,
        /// The MCP method.
        operation: &'static str,
        /// What arrived.
        what: &'static str,
    },
    /// `MCP-NO-DAEMON`: [`crate::Bridge::connect`] found no MAOS daemon answering MCP at the URL.
    #[error("no running `maos up` at {url}; start it with `maos up` ({why})")]
    NoDaemon {
        /// The MCP endpoint tried.
        url: String,
        /// What the connection attempt said.
        why: String,
    },
    /// `MCP-SERVE`: serving MCP to an agent failed (the client did not complete
    /// `initialize`, or the transport failed).
    #[error("serving MCP failed: {why}")]
    Serve {
        /// Why.
        why: String,
    },
}

fn upstream_suffix(upstream: &Option<String>) -> String {
    upstream.as_ref().map(|name| format!(" `{name}`")).unwrap_or_default()
}

impl McpError {
    /// The stable code for this error, for logs and `--json` output.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } => "MCP-CONFIG",
            Self::Spawn { .. } => "MCP-UPSTREAM-SPAWN",
            Self::Handshake { .. } => "MCP-UPSTREAM-INIT",
            Self::Timeout { .. } => "MCP-UPSTREAM-TIMEOUT",
            Self::Rpc { .. } => "MCP-UPSTREAM-ERROR",
            Self::Transport { .. } => "MCP-UPSTREAM-TRANSPORT",
            Self::TooLarge { .. } => "MCP-UPSTREAM-TOO-LARGE",
            Self::Limit { .. } => "MCP-UPSTREAM-LIMIT",
            Self::Unsupported { .. } => "MCP-UPSTREAM-UNSUPPORTED",
            Self::NoDaemon { .. } => "MCP-NO-DAEMON",
            Self::Serve { .. } => "MCP-SERVE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_prefixed() {
        let errors = [
            McpError::Config { upstream: None, why: String::new() },
            McpError::Spawn { upstream: "u".into(), command: "c".into(), why: String::new() },
            McpError::Handshake { upstream: "u".into(), why: String::new() },
            McpError::Timeout { upstream: "u".into(), operation: "tools/call", after_ms: 1 },
            McpError::Rpc { upstream: "u".into(), operation: "tools/call", code: -32601, message: String::new() },
            McpError::Transport { upstream: "u".into(), operation: "tools/call", why: String::new() },
            McpError::TooLarge { upstream: "u".into(), operation: "tools/call", bytes: 2, max: 1 },
            McpError::Limit { upstream: "u".into(), operation: "tools/list", what: "items", max: 1 },
            McpError::Unsupported { upstream: "u".into(), operation: "tools/call", what: "task" },
            McpError::NoDaemon { url: "http://127.0.0.1:1/mcp".into(), why: String::new() },
            McpError::Serve { why: String::new() },
        ];
        let codes: Vec<&str> = errors.iter().map(McpError::code).collect();
        assert_eq!(
            codes,
            [
                "MCP-CONFIG",
                "MCP-UPSTREAM-SPAWN",
                "MCP-UPSTREAM-INIT",
                "MCP-UPSTREAM-TIMEOUT",
                "MCP-UPSTREAM-ERROR",
                "MCP-UPSTREAM-TRANSPORT",
                "MCP-UPSTREAM-TOO-LARGE",
                "MCP-UPSTREAM-LIMIT",
                "MCP-UPSTREAM-UNSUPPORTED",
                "MCP-NO-DAEMON",
                "MCP-SERVE",
            ]
        );
        assert_eq!(
            McpError::Config { upstream: Some("files".into()), why: "no command".into() }.to_string(),
            "upstream config `files`: no command"
        );
        assert_eq!(
            McpError::NoDaemon { url: "http://127.0.0.1:7777/mcp".into(), why: "connection refused".into() }
                .to_string(),
            "no running `maos up` at http://127.0.0.1:7777/mcp; start it with `maos up` (connection refused)"
        );
    }
}
