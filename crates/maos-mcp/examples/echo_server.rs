//! A minimal MCP server over streamable HTTP with one tool, `echo(message)`, on rmcp's
//! own server stack (session mode, in-memory sessions): the upstream for
//! `scripts/bench-mcp.sh --upstream rust`, fast enough that what a benchmark measures
//! through MAOS is MAOS rather than a slow tool server.
//!
//! ```sh
//! cargo run --release -p maos-mcp --example echo_server -- 127.0.0.1:3101
//! ```

#![forbid(unsafe_code)]

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
    transport::{
        StreamableHttpServerConfig, StreamableHttpService, streamable_http_server::session::local::LocalSessionManager,
    },
};

#[derive(Clone)]
struct Echo;

fn echo_tool() -> Tool {
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "message": { "type": "string", "description": "Message to echo" } },
        "required": ["message"],
    });
    let schema = match schema {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    Tool::new("echo", "Echoes back the input", Arc::new(schema))
}

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("maos-bench-echo", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![echo_tool()]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != "echo" {
            return Err(ErrorData::invalid_params(format!("unknown tool {}", request.name), None));
        }
        let message = request.arguments.as_ref().and_then(|a| a.get("message")).and_then(|m| m.as_str());
        let Some(message) = message else {
            return Err(ErrorData::invalid_params("`message` (a string) is required", None));
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("Echo: {message}"))]).into())
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3101".to_owned());
    let service = StreamableHttpService::new(
        || Ok(Echo),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("echo MCP server on http://{}/mcp", listener.local_addr()?);
    // As MAOS: no Nagle delay on reused connections.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}
