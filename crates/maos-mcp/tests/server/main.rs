//! The agent-facing MCP server with a fake mediator: over streamable HTTP (rmcp's
//! client, raw HTTP, and the official Python SDK), over an in-memory stdio pair, and
//! through the [`maos_mcp::Bridge`].

#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers: a panic is a failed test")]

mod bridge;
mod fake;
mod http;
mod python;
mod stdio;

use std::{net::SocketAddr, sync::Arc};

use maos_mcp::{CallToolResult, ContentBlock, JsonObject, McpError, Upstream, UpstreamConfig};
use serde_json::Value;

use fake::Fake;

/// Serves `maos_mcp::router` for `mediator` on an ephemeral loopback port.
async fn serve_http(mediator: Arc<Fake>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = maos_mcp::router(mediator);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn mcp_url(addr: SocketAddr) -> String {
    format!("http://{addr}/mcp")
}

/// rmcp's client (through `Upstream`) on MAOS's endpoint with `bearer`.
async fn connect(addr: SocketAddr, bearer: &str) -> Result<Upstream, McpError> {
    let config = UpstreamConfig::http("maos", &mcp_url(addr));
    Upstream::connect_with_bearer(&config, bearer).await
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}
