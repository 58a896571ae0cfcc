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
        ToolsCommand::Approve { tool } => {
            let (server, name) = tool
                .split_once('/')
                .ok_or_else(|| coded("MAOS-USAGE", format!("`{tool}`: expected SERVER/TOOL"), 2))?;
            let doc = daemon.post(&format!("/v1/tools/{server}/{name}/approve"), &serde_json::json!({}))?;
            out.json(&doc);
            out.line(format!(
                "{} {tool} (pin {}…); agents see it again",
                out.green("approved"),
                doc.get("pin").and_then(|p| p.as_str()).and_then(|p| p.get(..12)).unwrap_or_default()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
