//! The official MCP Python SDK (`mcp` 2.3.0 in `.tools/venv`, from
//! `scripts/setup-mcp.sh`) as an agent over streamable HTTP. Skipped with a note when
//! the venv is missing, unless `MAOS_REQUIRE_MCP_TOOLS=1`. `MAOS_MCP_PYTHON` overrides
//! the interpreter.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use maos_mcp::REFUSAL_RPC_CODE;
use serde_json::Value;

use crate::{
    fake::{DENY_TEXT, Fake, NOTE_URI},
    mcp_url, serve_http,
};

fn python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("MAOS_MCP_PYTHON").map_or_else(|| root.join(".tools/venv/bin/python"), PathBuf::from);
    if python.is_file() {
        return Some(python);
    }
    if std::env::var("MAOS_REQUIRE_MCP_TOOLS").is_ok_and(|v| v == "1") {
        panic!("Python with the MCP SDK missing at {}: run scripts/setup-mcp.sh", python.display());
    }
    eprintln!("note: skipping: Python MCP SDK not installed at {} (run scripts/setup-mcp.sh)", python.display());
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_over_streamable_http() {
    let Some(python) = python() else { return };
    let addr = serve_http(Arc::new(Fake::default())).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/client_http.py");
    let run =
        tokio::process::Command::new(python).arg(script).arg(mcp_url(addr)).arg("alice").kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(120), run).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python client failed: {stderr}");
    let out: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("bad output ({e}): {}\n{stderr}", String::from_utf8_lossy(&output.stdout)));

    assert_eq!(out["server_name"], "maos", "{out}");
    assert!(out["instructions"].as_str().unwrap().contains("mediated by MAOS"), "{out}");
    assert_eq!(out["tools"], serde_json::json!(["echo", "danger"]), "{out}");
    assert_eq!(out["echo"]["is_error"], false, "{out}");
    assert_eq!(out["echo"]["text"], "hi from python", "{out}");
    assert_eq!(out["danger"]["is_error"], true, "{out}");
    assert_eq!(out["danger"]["text"], DENY_TEXT, "{out}");
    assert_eq!(out["resources"], serde_json::json!([NOTE_URI]), "{out}");
    assert_eq!(out["prompts"], serde_json::json!(["greet"]), "{out}");

    // A refused bearer: the SDK raises the JSON-RPC error, with the code, at initialize.
    let bad = &out["bad_bearer"];
    assert!(bad.get("listed").is_none(), "a refused bearer listed tools: {out}");
    assert_eq!(bad["mcp_error"], true, "{out}");
    assert_eq!(bad["code"], REFUSAL_RPC_CODE, "{out}");
    assert!(bad["message"].as_str().unwrap().starts_with("API-TOKEN-INVALID: "), "{out}");
    assert_eq!(bad["data"]["code"], "API-TOKEN-INVALID", "{out}");

    // No bearer: HTTP 401 before MCP; the SDK reads the JSON-RPC error in its body.
    let none = &out["no_bearer"];
    assert!(none.get("listed").is_none(), "listed without a bearer: {out}");
    assert_eq!(none["mcp_error"], true, "{out}");
    assert_eq!(none["code"], REFUSAL_RPC_CODE, "{out}");
    assert!(none["message"].as_str().unwrap().starts_with("API-UNAUTHORIZED: "), "{out}");
}
