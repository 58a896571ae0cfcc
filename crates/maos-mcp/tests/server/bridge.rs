//! The bridge: rmcp client → `serve_io` (stdio stand-in) → `Bridge` → MAOS's HTTP
//! endpoint (here with the fake mediator). Results and refusals pass through unchanged.

use std::sync::Arc;

use maos_mcp::{Bridge, JsonObject, McpError, Mediator as _, REFUSAL_RPC_CODE, model::ReadResourceRequestParams};
use serde_json::json;

use crate::{
    fake::{DENY_TEXT, Fake, NOTE_URI},
    mcp_url, object, serve_http,
    stdio::{call, client, start},
    text,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_passes_results_and_denies_through() {
    let fake = Arc::new(Fake::default());
    let addr = serve_http(Arc::clone(&fake)).await;
    let bridge = Arc::new(Bridge::connect(&mcp_url(addr), "alice").await.unwrap());
    let (pipe, server) = start(Arc::clone(&bridge), "alice");
    let client = client(pipe).await.unwrap();

    let tools = client.list_tools(None).await.unwrap().tools;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["echo", "danger"]);

    let echoed = call(&client, "echo", object(json!({"message": "via the bridge"}))).await;
    assert_ne!(echoed.is_error, Some(true));
    assert_eq!(text(&echoed), "via the bridge");

    // The daemon's deny arrives as the same tool result.
    let denied = call(&client, "danger", JsonObject::new()).await;
    let direct = fake.call_tool(&"alice".to_owned(), "danger", JsonObject::new()).await.unwrap();
    // (`resultType` aside, which rmcp fills in on decoding.)
    assert_eq!(
        (&denied.content, denied.is_error, &denied.structured_content),
        (&direct.content, direct.is_error, &direct.structured_content)
    );
    assert_eq!(denied.is_error, Some(true));
    assert_eq!(text(&denied), DENY_TEXT);

    let resources = client.list_resources(None).await.unwrap().resources;
    assert_eq!(resources.len(), 1);
    let read = client.read_resource_once(ReadResourceRequestParams::new(NOTE_URI)).await.unwrap();
    assert!(matches!(read, maos_mcp::model::ReadResourceResponse::Complete(_)), "{read:?}");
    let prompts = client.list_prompts(None).await.unwrap().prompts;
    assert_eq!(prompts.len(), 1);

    // A refusal from the daemon keeps its code through the bridge.
    fake.revoke("alice");
    let error = client.list_tools(None).await.unwrap_err();
    let rmcp::ServiceError::McpError(data) = error else { panic!("{error}") };
    assert_eq!(data.code.0, REFUSAL_RPC_CODE);
    assert!(data.message.starts_with("API-TOKEN-INVALID: TOKEN-REVOKED"), "{}", data.message);
    assert_eq!(data.data, Some(json!({"code": "API-TOKEN-INVALID"})));

    client.cancel().await.unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_refuses_a_token_the_daemon_refuses_and_any_other_bearer() {
    let addr = serve_http(Arc::new(Fake::default())).await;
    let error = Bridge::connect(&mcp_url(addr), "bad").await.unwrap_err();
    let McpError::Rpc { code, ref message, .. } = error else { panic!("{error}") };
    assert_eq!(code, REFUSAL_RPC_CODE);
    assert!(message.starts_with("API-TOKEN-INVALID: "), "{message}");

    // Served with another bearer than its own, the bridge forwards nothing.
    let bridge = Arc::new(Bridge::connect(&mcp_url(addr), "alice").await.unwrap());
    assert!(format!("{bridge:?}").contains("redacted") && !format!("{bridge:?}").contains("alice"));
    let (pipe, server) = start(bridge, "mallory");
    let error = client(pipe).await.unwrap_err();
    let rmcp::service::ClientInitializeError::JsonRpcError(data) = error else { panic!("{error}") };
    assert!(data.message.starts_with("API-TOKEN-INVALID: "), "{}", data.message);
    assert_eq!(server.await.unwrap().unwrap_err().code(), "MCP-SERVE");
}

#[tokio::test]
async fn bridge_without_a_daemon_says_how_to_start_one() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    drop(listener); // Nothing listens there now.
    let error = Bridge::connect(&url, "alice").await.unwrap_err();
    assert_eq!(error.code(), "MCP-NO-DAEMON");
    assert!(
        error.to_string().starts_with(&format!("no running `maos up` at {url}; start it with `maos up`")),
        "{error}"
    );
}
