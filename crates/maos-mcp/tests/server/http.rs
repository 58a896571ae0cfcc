//! Streamable HTTP: rmcp's client with a bearer, and raw HTTP for what a client
//! library hides (401 without a bearer, refusals mid-session, the Host check).

use std::{sync::Arc, time::Duration};

use maos_mcp::{JsonObject, McpError, REFUSAL_RPC_CODE};
use serde_json::{Value, json};

use crate::{
    connect,
    fake::{DENY_TEXT, Fake, NOTE_URI},
    mcp_url, object, serve_http, text,
};

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_lists_calls_and_is_denied_per_bearer() {
    let addr = serve_http(Arc::new(Fake::default())).await;

    let alice = connect(addr, "alice").await.unwrap();
    let info = alice.server_info().unwrap();
    assert_eq!(info.name, "maos");
    let names: Vec<String> = alice.list_tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["echo", "danger"]);

    let echoed = alice.call_tool("echo", object(json!({"message": "hi from alice"})), CALL_TIMEOUT).await.unwrap();
    assert_ne!(echoed.is_error, Some(true));
    assert_eq!(text(&echoed), "hi from alice");

    // A deny is a tool result the agent can read, not a protocol error.
    let denied = alice.call_tool("danger", JsonObject::new(), CALL_TIMEOUT).await.unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert_eq!(text(&denied), DENY_TEXT);
    assert!(text(&denied).starts_with("DSC-2-SCOPE: "));

    // A refusal from the mediator for one call is a JSON-RPC error with the code.
    let McpError::Rpc { code, message, .. } =
        alice.call_tool("nope", JsonObject::new(), CALL_TIMEOUT).await.unwrap_err()
    else {
        panic!("expected a JSON-RPC error")
    };
    assert_eq!(code, REFUSAL_RPC_CODE);
    assert!(message.starts_with("DSC-1-UNKNOWN-TOOL: "), "{message}");

    let resources = alice.list_resources().await.unwrap();
    assert_eq!(resources.len(), 1);
    let read = alice.read_resource(NOTE_URI).await.unwrap();
    assert_eq!(read.contents.len(), 1);
    let prompts = alice.list_prompts().await.unwrap();
    assert_eq!(prompts.first().map(|p| p.name.as_str()), Some("greet"));
    let prompt = alice.get_prompt("greet", None).await.unwrap();
    assert_eq!(prompt.messages.len(), 1);

    // Another bearer, another view.
    let bob = connect(addr, "bob").await.unwrap();
    let names: Vec<String> = bob.list_tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["echo"]);

    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_bearer_fails_initialize_with_the_code() {
    let addr = serve_http(Arc::new(Fake::default())).await;
    let error = connect(addr, "bad").await.unwrap_err();
    let McpError::Rpc { code, ref message, operation, .. } = error else { panic!("{error}") };
    assert_eq!(operation, "initialize");
    assert_eq!(code, REFUSAL_RPC_CODE);
    assert!(message.starts_with("API-TOKEN-INVALID: TOKEN-SIGNATURE"), "{message}");
}

fn post(client: &reqwest::Client, addr: std::net::SocketAddr, body: &Value) -> reqwest::RequestBuilder {
    client
        .post(mcp_url(addr))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
}

/// The JSON-RPC message answering request `id`, from a JSON or SSE response body.
async fn answer(response: reqwest::Response, id: u64) -> Value {
    let body = tokio::time::timeout(Duration::from_secs(10), response.text()).await.unwrap().unwrap();
    let candidates: Vec<Value> = if body.trim_start().starts_with('{') {
        vec![serde_json::from_str(&body).unwrap()]
    } else {
        body.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str(data.trim()).ok())
            .collect()
    };
    candidates.into_iter().find(|m: &Value| m["id"] == json!(id)).unwrap_or_else(|| panic!("no answer in {body}"))
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bearer_http_401_and_nothing_listed() {
    let addr = serve_http(Arc::new(Fake::default())).await;
    let client = reqwest::Client::new();

    for body in [initialize(1), json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})] {
        let response = post(&client, addr, &body).send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["id"], Value::Null);
        assert_eq!(body["error"]["code"], REFUSAL_RPC_CODE);
        assert_eq!(body["error"]["data"]["code"], "API-UNAUTHORIZED");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("API-UNAUTHORIZED: "), "{message}");
    }
    // A scheme other than Bearer is no bearer.
    let response = post(&client, addr, &initialize(3)).header("authorization", "Basic YWxpY2U6").send().await.unwrap();
    assert_eq!(response.status(), 401);
    // Other paths are not the MCP endpoint.
    let response = client.get(format!("http://{addr}/other")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_authenticated_by_its_own_bearer() {
    let fake = Arc::new(Fake::default());
    let addr = serve_http(Arc::clone(&fake)).await;
    let client = reqwest::Client::new();

    let response = post(&client, addr, &initialize(1)).bearer_auth("alice").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let init = answer(response, 1).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "maos");
    assert!(init["result"]["instructions"].as_str().unwrap().contains("mediated by MAOS"));
    let caps = &init["result"]["capabilities"];
    assert!(caps["tools"].is_object() && caps["resources"].is_object() && caps["prompts"].is_object(), "{caps}");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = post(&client, addr, &initialized)
        .bearer_auth("alice")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let list = |id: u64, bearer: &'static str| {
        post(&client, addr, &json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))
            .bearer_auth(bearer)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
    };
    let tools = answer(list(2, "alice").await.unwrap(), 2).await;
    assert_eq!(tools["result"]["tools"].as_array().unwrap().len(), 2, "{tools}");

    // Someone else's bearer on alice's session sees their own view, not alice's.
    let tools = answer(list(3, "bob").await.unwrap(), 3).await;
    assert_eq!(tools["result"]["tools"].as_array().unwrap().len(), 1, "{tools}");

    // A bad bearer on a live session: a JSON-RPC error with the code, nothing listed.
    let refused = answer(list(4, "bad").await.unwrap(), 4).await;
    assert!(refused.get("result").is_none(), "{refused}");
    assert_eq!(refused["error"]["code"], REFUSAL_RPC_CODE);
    assert_eq!(refused["error"]["data"]["code"], "API-TOKEN-INVALID");
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("API-TOKEN-INVALID: "), "{refused}");

    // Revoked mid-session: the next request is refused.
    fake.revoke("alice");
    let refused = answer(list(5, "alice").await.unwrap(), 5).await;
    assert!(refused["error"]["message"].as_str().unwrap().starts_with("API-TOKEN-INVALID: TOKEN-REVOKED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_headers_are_rejected() {
    // rmcp's DNS-rebinding guard stays on: only loopback names as Host.
    let addr = serve_http(Arc::new(Fake::default())).await;
    let client = reqwest::Client::new();
    let response =
        post(&client, addr, &initialize(1)).bearer_auth("alice").header("host", "evil.example").send().await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    let response = post(&client, addr, &initialize(1))
        .bearer_auth("alice")
        .header("host", format!("localhost:{}", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused() {
    let addr = serve_http(Arc::new(Fake::default())).await;
    let client = reqwest::Client::new();
    let huge = "x".repeat(maos_mcp::REQUEST_BYTES_MAX + 1);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"pad": huge}});
    let response = post(&client, addr, &body).bearer_auth("alice").send().await.unwrap();
    assert_eq!(response.status(), 413);
}

/// The upstream client keeps its connections: fifty calls in a row open a few
/// TCP connections, not one each as rmcp's default client does (51). A few: a
/// connection goes back to the pool only once rmcp has drained the answer's
/// stream, in a task of its own, so under load the next call may find none free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_client_reuses_its_connections() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::serve::ListenerExt as _;

    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = Arc::clone(&accepted);
    let listener = listener.tap_io(move |tcp| {
        counter.fetch_add(1, Ordering::SeqCst);
        tcp.set_nodelay(true).unwrap();
    });
    let app = maos_mcp::router(Arc::new(Fake::default()));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = connect(addr, "alice").await.unwrap();
    let after_connect = accepted.load(Ordering::SeqCst);
    for i in 0..50 {
        let echoed = client.call_tool("echo", object(json!({"message": format!("call {i}")})), CALL_TIMEOUT).await;
        assert_eq!(text(&echoed.unwrap()), format!("call {i}"));
    }
    let opened = accepted.load(Ordering::SeqCst) - after_connect;
    assert!(opened < 25, "50 calls opened {opened} new connections (after {after_connect} for the handshake)");
    client.close().await;
}
