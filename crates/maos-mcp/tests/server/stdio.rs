//! `serve_io` on an in-memory duplex pipe (what `serve_stdio` does on stdin/stdout),
//! with rmcp's client on the other end.

use std::sync::Arc;

use maos_mcp::{
    CallToolResult, JsonObject, Mediator, REFUSAL_RPC_CODE,
    model::{CallToolRequestParams, CallToolResponse},
    serve_io,
};
use rmcp::{RoleClient, ServiceExt as _, service::RunningService, transport::async_rw::AsyncRwTransport};
use serde_json::json;
use tokio::{
    io::{DuplexStream, ReadHalf, WriteHalf},
    task::JoinHandle,
};

use crate::{
    fake::{DENY_TEXT, Fake},
    object, text,
};

/// The client's end of an in-memory stdio pair.
pub type Pipe = (ReadHalf<DuplexStream>, WriteHalf<DuplexStream>);

/// Starts `serve_io(mediator, bearer)` on one end of a pipe; returns the other end and
/// the server task.
pub fn start<M: Mediator>(mediator: Arc<M>, bearer: &str) -> (Pipe, JoinHandle<Result<(), maos_mcp::McpError>>) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (read, write) = tokio::io::split(theirs);
    let server = tokio::spawn(serve_io(mediator, bearer.to_owned(), read, write));
    (tokio::io::split(ours), server)
}

/// rmcp's client on a pipe end.
pub async fn client(
    (read, write): Pipe,
) -> Result<RunningService<RoleClient, ()>, rmcp::service::ClientInitializeError> {
    ().serve(AsyncRwTransport::new_client(read, write)).await
}

pub async fn call(client: &RunningService<RoleClient, ()>, name: &str, args: JsonObject) -> CallToolResult {
    let params = CallToolRequestParams::new(name.to_owned()).with_arguments(args);
    match client.call_tool_once(params).await.unwrap() {
        CallToolResponse::Complete(result) => result,
        other => panic!("unexpected response {other:?}"),
    }
}

#[tokio::test]
async fn stdio_serves_with_the_fixed_bearer() {
    let (pipe, server) = start(Arc::new(Fake::default()), "alice");
    let client = client(pipe).await.unwrap();
    assert_eq!(client.peer_info().unwrap().server_info.as_ref().unwrap().name, "maos");

    let tools = client.list_tools(None).await.unwrap().tools;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["echo", "danger"]);

    let echoed = call(&client, "echo", object(json!({"message": "over stdio"}))).await;
    assert_ne!(echoed.is_error, Some(true));
    assert_eq!(text(&echoed), "over stdio");
    let denied = call(&client, "danger", JsonObject::new()).await;
    assert_eq!(denied.is_error, Some(true));
    assert_eq!(text(&denied), DENY_TEXT);

    // The client closing its end ends the server cleanly.
    client.cancel().await.unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn stdio_with_a_refused_bearer_fails_initialize() {
    let (pipe, server) = start(Arc::new(Fake::default()), "bad");
    let error = client(pipe).await.unwrap_err();
    let rmcp::service::ClientInitializeError::JsonRpcError(data) = error else { panic!("{error}") };
    assert_eq!(data.code.0, REFUSAL_RPC_CODE);
    assert!(data.message.starts_with("API-TOKEN-INVALID: "), "{}", data.message);
    let served = server.await.unwrap().unwrap_err();
    assert_eq!(served.code(), "MCP-SERVE", "{served}");
}
