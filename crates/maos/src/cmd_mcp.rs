//! `maos mcp --agent ID` (MCP on stdio, bridged to the running kernel's `/mcp`)
//! and `maos tools list | approve` (upstream tools and their pins).
//!
//! `maos mcp` holds no key and decides nothing: it forwards the agent's MCP
//! traffic, with the agent's own capability token as the bearer, to `maos up`,
//! which mediates every call. Its stdout is the MCP channel, so everything it
//! says to a human goes to stderr.

use crate::cli::{McpArgs, ToolsCommand};
use crate::client::Daemon;
use crate::datadir::DataDir;
use crate::output::{Output, coded};
use anyhow::Context as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Largest token file read.
const TOKEN_FILE_BYTES_MAX: u64 = 64 * 1024;

fn token(args: &McpArgs) -> anyhow::Result<String> {
    let text = match &args.token_file {
        Some(path) => {
            let len = std::fs::metadata(path).with_context(|| format!("reading `{}`", path.display()))?.len();
            if len > TOKEN_FILE_BYTES_MAX {
                return Err(coded(
                    "MAOS-USAGE",
                    format!("`{}` is over {TOKEN_FILE_BYTES_MAX} bytes", path.display()),
                    2,
                ));
            }
            std::fs::read_to_string(path).with_context(|| format!("reading `{}`", path.display()))?
        }
        None => std::env::var("MAOS_TOKEN").map_err(|_| {
            coded(
                "MAOS-USAGE",
                "no capability token: set MAOS_TOKEN or pass --token-file (never on the command line)",
                2,
            )
        })?,
    };
    Ok(text.trim().to_owned())
}

pub fn mcp(data_dir: &Path, args: &McpArgs) -> anyhow::Result<ExitCode> {
    let token = token(args)?;
    let claims = maos_token::UnverifiedToken::parse(&token)?;
    if claims.unverified_claims().agent.as_str() != args.agent {
        return Err(coded(
            "MAOS-USAGE",
            format!(
                "--agent `{}` does not match the token's holder `{}`",
                args.agent,
                claims.unverified_claims().agent
            ),
            2,
        ));
    }
    let base = match &args.target {
        Some(t) => t.trim_end_matches('/').to_owned(),
        None => Daemon::find_live(&DataDir::new(data_dir))?
            .ok_or_else(|| {
                coded(
                    "MAOS-NO-DAEMON",
                    format!("no running `maos up` for {}; start it with `maos up`", data_dir.display()),
                    1,
                )
            })?
            .base()
            .to_owned(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let bridge = maos_mcp::Bridge::connect(&format!("{base}/mcp"), &token)
            .await
            .map_err(|e| coded("MAOS-NO-DAEMON", format!("{e} ({})", e.code()), 1))?;
        eprintln!("maos mcp: agent {} via {base}/mcp", args.agent);
        maos_mcp::serve_stdio(Arc::new(bridge), token).await.map_err(|e| coded("MAOS-MCP", e.to_string(), 1))
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn tools(out: &Output, data_dir: &Path, cmd: ToolsCommand) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(&DataDir::new(data_dir))?;
    match cmd {
        ToolsCommand::List => {
            let doc = daemon.get("/v1/tools")?;
            out.json(&doc);
            let empty = Vec::new();
            let list = doc.get("tools").and_then(|t| t.as_array()).unwrap_or(&empty);
            if list.is_empty() {
                out.line("no upstream tools (configure [[upstream]] in maos.toml)");
            }
            for t in list {
                let s = |k: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                let state = match t.pointer("/disabled/code").and_then(|c| c.as_str()) {
                    None => out.green("offered"),
                    Some(code) => out.red(&format!("withheld {code}")),
                };
                out.line(format!(
                    "{:<40} {:<12} pin {}…  {state}",
                    format!("{}/{}", s("server"), s("tool")),
                    s("effect"),
                    s("pin").get(..12).unwrap_or_default()
                ));
            }
        }
        ToolsCommand::Approve { tool, allow_poisoned } => {
            let (server, name) = split_tool(tool.as_str())?;
            let body = serde_json::json!({ "allow_poisoned": allow_poisoned });
            let doc = daemon.post(&format!("/v1/tools/{server}/{name}/approve"), &body)?;
            out.json(&doc);
            out.line(format!(
                "{} {tool} (pin {}…); agents see it again",
                out.green("approved"),
                doc.get("pin").and_then(|p| p.as_str()).and_then(|p| p.get(..12)).unwrap_or_default()
            ));
        }
        ToolsCommand::Show { tool } => {
            let (server, name) = split_tool(tool.as_str())?;
            let doc = daemon.get(&format!("/v1/tools/{server}/{name}"))?;
            out.json(&doc);
            let state = doc.pointer("/disabled/why").and_then(|w| w.as_str()).unwrap_or("offered");
            out.line(format!("{tool}  pin {}", doc.get("pin").and_then(|p| p.as_str()).unwrap_or_default()));
            out.line(format!("state: {state}"));
            if let Some(hit) = doc.get("poisoned").and_then(|p| p.as_str()) {
                out.line(format!("{} {hit}", out.red("pre-filter:")));
            }
            let definition = doc.get("definition").cloned().unwrap_or_default();
            out.line(serde_json::to_string_pretty(&definition)?);
        }
        ToolsCommand::Diff { tool } => {
            let (server, name) = split_tool(tool.as_str())?;
            let doc = daemon.get(&format!("/v1/tools/{server}/{name}"))?;
            let now = flatten(doc.get("definition").unwrap_or(&serde_json::Value::Null));
            let vouched = doc.get("vouched").filter(|v| !v.is_null());
            let Some(vouched) = vouched else {
                out.json(&serde_json::json!({ "tool": tool, "vouched": null, "changes": [] }));
                out.line(
                    "the log holds no definition for this tool's last pin (pinned before definitions were logged)",
                );
                return Ok(ExitCode::SUCCESS);
            };
            let before = flatten(vouched);
            let mut changes = Vec::new();
            for (key, old) in &before {
                match now.get(key) {
                    Some(new) if new == old => {}
                    Some(new) => changes.push(serde_json::json!({ "at": key, "was": old, "now": new })),
                    None => changes.push(serde_json::json!({ "at": key, "was": old, "now": null })),
                }
            }
            for (key, new) in &now {
                if !before.contains_key(key) {
                    changes.push(serde_json::json!({ "at": key, "was": null, "now": new }));
                }
            }
            out.json(&serde_json::json!({ "tool": tool, "changes": changes }));
            if changes.is_empty() {
                out.line("no change since the definition the log vouches for");
            }
            for c in &changes {
                out.line(c["at"].as_str().unwrap_or_default());
                if !c["was"].is_null() {
                    out.line(out.red(&format!("  - {}", c["was"])));
                }
                if !c["now"].is_null() {
                    out.line(out.green(&format!("  + {}", c["now"])));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn split_tool(tool: &str) -> anyhow::Result<(&str, &str)> {
    tool.split_once('/').ok_or_else(|| coded("MAOS-USAGE", format!("`{tool}`: expected SERVER/TOOL"), 2))
}

/// A JSON value as (JSON pointer, leaf) pairs, in order: what `tools diff` compares.
fn flatten(value: &serde_json::Value) -> std::collections::BTreeMap<String, serde_json::Value> {
    fn walk(v: &serde_json::Value, at: String, out: &mut std::collections::BTreeMap<String, serde_json::Value>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, x) in map {
                    walk(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    walk(x, format!("{at}/{i}"), out);
                }
            }
            leaf => {
                out.insert(if at.is_empty() { "/".into() } else { at }, leaf.clone());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(value, String::new(), &mut out);
    out
}
