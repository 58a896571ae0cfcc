//! `maos bench --mode mcp`: MCP tool-call round trips through MAOS against the
//! same calls made directly to the same upstream, in one run.
//!
//! Both sides use the same MCP client (rmcp over streamable HTTP, one session
//! per synthetic agent): "direct" connects to `--upstream-url`, "maos" connects
//! to the daemon's `/mcp` with a capability token for `mcp.<server>.*`, and the
//! daemon forwards to that same upstream (configured in its `maos.toml`). The
//! two phases run one after the other with the same agents, rate and duration,
//! each after a short warm-up; the overhead reported is the difference of the
//! percentiles. `--sessions N` then opens N more MAOS sessions, each with its
//! own token, and reports the daemon's resident memory per open session.

use crate::bench::{Tally, percentile, run_load};
use crate::cli::BenchArgs;
use crate::client::Daemon;
use crate::datadir::DataDir;
use crate::output::{Output, coded};
use maos_mcp::{JsonObject, Upstream, UpstreamConfig};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Warm-up before each measured phase (connections, caches, JIT of a Node upstream).
const WARMUP: Duration = Duration::from_secs(1);
/// Sessions the daemon keeps open at once (its agents' and the extra ones):
/// past it `/mcp` refuses with `MCP-SESSIONS-FULL`.
const SESSIONS_MAX: usize = maos_mcp::MCP_SESSIONS_MAX;
/// How long one call may take before it counts as a timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One measured phase.
struct Phase {
    name: &'static str,
    tally: Tally,
    elapsed: Duration,
}

impl Phase {
    fn sorted(&self) -> Vec<u64> {
        let mut lat = self.tally.latencies_us.clone();
        lat.sort_unstable();
        lat
    }

    fn ok(&self) -> u64 {
        self.tally.by_code.get("ok").copied().unwrap_or(0)
    }

    fn json(&self) -> serde_json::Value {
        let lat = self.sorted();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        serde_json::json!({
            "calls": self.tally.by_code.values().sum::<u64>(), "ok": self.ok(),
            "throughput_per_s": self.ok() as f64 / secs,
            "latency_us": { "p50": percentile(&lat, 50.0), "p99": percentile(&lat, 99.0),
                "p999": percentile(&lat, 99.9), "max": lat.last().copied().unwrap_or(0) },
            "outcomes": self.tally.by_code,
        })
    }
}

pub fn run(out: &Output, data_dir: &Path, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let usage = |why: &str| coded("MAOS-USAGE", why.to_owned(), 2);
    let upstream_url = args.upstream_url.clone().ok_or_else(|| usage("--mode mcp needs --upstream-url URL"))?;
    let server = args.server.clone().ok_or_else(|| usage("--mode mcp needs --server NAME (as in maos.toml)"))?;
    let tool_args: JsonObject =
        serde_json::from_str(&args.tool_args).map_err(|e| usage(&format!("--tool-args must be a JSON object: {e}")))?;
    if args.sessions.saturating_add(args.agents) > SESSIONS_MAX {
        return Err(usage(&format!(
            "--sessions plus --agents at most {SESSIONS_MAX} (the daemon's MCP session bound, MCP_SESSIONS_MAX)"
        )));
    }
    let dir = DataDir::new(data_dir);
    let base = match &args.target {
        Some(t) => t.trim_end_matches('/').to_owned(),
        None => Daemon::require(&dir)?.base().to_owned(),
    };
    let issue = |agent: &str| {
        crate::cmd_token::issue_for(
            &dir,
            agent,
            &[format!("mcp.{server}.*")],
            maos_token::limits::RATE_PER_HOUR_MAX,
            u64::MAX / 2,
        )
    };
    let tokens = (0..args.agents).map(|i| issue(&format!("mcp-bench-{i}"))).collect::<anyhow::Result<Vec<_>>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mcp_url = format!("{base}/mcp");
    let mut phases = Vec::new();
    for side in ["direct", "maos"] {
        let mut clients = Vec::new();
        for token in &tokens {
            let client = rt.block_on(async {
                if side == "direct" {
                    Upstream::connect(&UpstreamConfig::http("direct", &upstream_url)).await
                } else {
                    Upstream::connect_with_bearer(&UpstreamConfig::http("maos", &mcp_url), token).await
                }
            });
            let client = client.map_err(|e| coded(e.code(), format!("{side}: connecting: {e}"), 1))?;
            clients.push(Arc::new(client));
        }
        rt.block_on(drive(&clients, &args.tool, &tool_args, args, WARMUP))?;
        let (tally, elapsed) =
            rt.block_on(drive(&clients, &args.tool, &tool_args, args, Duration::from_secs(args.duration)))?;
        phases.push(Phase { name: side, tally, elapsed });
        for client in clients {
            if let Ok(client) = Arc::try_unwrap(client) {
                rt.block_on(client.close());
            }
        }
    }
    let memory =
        if args.sessions > 0 { Some(session_memory(&rt, &dir, &mcp_url, args.sessions, &issue)?) } else { None };
    report(out, args, &phases, memory)
}

/// Calls `tool` through `clients` (`--concurrency` calls in flight each) for
/// `run_for`, closed loop or at `--rate`.
async fn drive(
    clients: &[Arc<Upstream>],
    tool: &str,
    tool_args: &JsonObject,
    args: &BenchArgs,
    run_for: Duration,
) -> anyhow::Result<(Tally, Duration)> {
    let clients: Arc<[Arc<Upstream>]> = clients.into();
    let workers = clients.len().saturating_mul(args.concurrency);
    let (tool, tool_args) = (Arc::<str>::from(tool), Arc::new(tool_args.clone()));
    let request = move |w: usize, _n: u64| {
        let client = clients.get(w % clients.len().max(1)).cloned();
        let (tool, tool_args) = (tool.clone(), tool_args.clone());
        async move {
            let Some(client) = client else { return "NO-CLIENT".to_owned() };
            match client.call_tool(&tool, (*tool_args).clone(), CALL_TIMEOUT).await {
                Ok(r) if r.is_error != Some(true) => "ok".to_owned(),
                Ok(r) => tool_error_code(&r),
                Err(e) => e.code().to_owned(),
            }
        }
    };
    run_load(workers, args.rate, run_for, request).await
}

/// The stable code at the start of a tool error's text (`DSC-2-RATE: …`), else `TOOL-ERROR`.
fn tool_error_code(result: &maos_mcp::CallToolResult) -> String {
    let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.as_str()).unwrap_or_default();
    match text.split_once(": ") {
        Some((code, _)) if !code.is_empty() && code.len() <= 64 && !code.contains(' ') => code.to_owned(),
        _ => "TOOL-ERROR".to_owned(),
    }
}

/// Resident memory of the daemon, from `/proc/<pid>/status` (Linux).
fn daemon_rss_kib(dir: &DataDir) -> anyhow::Result<u64> {
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.run().join("daemon.json"))?)?;
    let pid = info.get("pid").and_then(serde_json::Value::as_u64).ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| coded("MAOS-BENCH", format!("reading the daemon's memory (Linux only): {e}"), 1))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| coded("MAOS-BENCH", "no VmRSS in the daemon's status", 1))
}

/// Opens `n` MAOS MCP sessions, each with its own token (`initialize` and
/// `tools/list`, so the kernel holds the agent's state), and measures the
/// daemon's resident memory before and while they are open.
fn session_memory(
    rt: &tokio::runtime::Runtime,
    dir: &DataDir,
    mcp_url: &str,
    n: usize,
    issue: &dyn Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<serde_json::Value> {
    let tokens = (0..n).map(|i| issue(&format!("mcp-bench-session-{i}"))).collect::<anyhow::Result<Vec<_>>>()?;
    std::thread::sleep(Duration::from_millis(500));
    let before = daemon_rss_kib(dir)?;
    let mut open = Vec::new();
    for token in &tokens {
        let client = rt
            .block_on(Upstream::connect_with_bearer(&UpstreamConfig::http("maos", mcp_url), token))
            .map_err(|e| coded(e.code(), format!("opening session {}: {e}", open.len()), 1))?;
        rt.block_on(client.list_tools()).map_err(|e| coded(e.code(), e.to_string(), 1))?;
        open.push(client);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = daemon_rss_kib(dir)?;
    for client in open {
        rt.block_on(client.close());
    }
    let per_session = after.saturating_sub(before) as f64 * 1024.0 / n as f64;
    Ok(serde_json::json!({ "sessions": n, "rss_before_kib": before, "rss_after_kib": after,
        "bytes_per_session": per_session.round() }))
}

fn report(
    out: &Output,
    args: &BenchArgs,
    phases: &[Phase],
    memory: Option<serde_json::Value>,
) -> anyhow::Result<ExitCode> {
    let (Some(direct), Some(maos)) = (phases.first(), phases.get(1)) else {
        return Err(coded("MAOS-BENCH", "a phase did not run", 1));
    };
    let (d, m) = (direct.sorted(), maos.sorted());
    let over = |p: f64| percentile(&m, p) as i64 - percentile(&d, p) as i64;
    let per_s = |ph: &Phase| ph.ok() as f64 / ph.elapsed.as_secs_f64().max(1e-9);
    out.json(&serde_json::json!({
        "mode": "mcp", "server": args.server, "tool": args.tool, "agents": args.agents, "concurrency": args.concurrency,
        "rate": args.rate, "duration_s": args.duration,
        "direct": direct.json(), "maos": maos.json(),
        "overhead_us": { "p50": over(50.0), "p99": over(99.0) },
        "throughput_ratio": per_s(maos) / per_s(direct).max(1e-9),
        "memory": memory,
    }));
    out.line(format!(
        "{} `{}` ({} agents x {} in flight{}, {} s per side)",
        out.bold("mcp"),
        args.tool,
        args.agents,
        args.concurrency,
        args.rate.map_or(String::new(), |r| format!(", offered {r}/s")),
        args.duration
    ));
    for ph in phases {
        let lat = ph.sorted();
        let refused: Vec<String> =
            ph.tally.by_code.iter().filter(|(c, _)| c.as_str() != "ok").map(|(c, n)| format!("{n} x {c}")).collect();
        out.field(
            ph.name,
            format!(
                "{:.0} ok/s  p50 {} µs  p99 {} µs  p999 {} µs{}",
                per_s(ph),
                percentile(&lat, 50.0),
                percentile(&lat, 99.0),
                percentile(&lat, 99.9),
                if refused.is_empty() { String::new() } else { format!("  ({})", refused.join(", ")) }
            ),
        );
    }
    out.field("overhead", format!("p50 {} µs  p99 {} µs", over(50.0), over(99.0)));
    if let Some(mem) = memory {
        out.field(
            "memory",
            format!(
                "{} bytes per open session ({} sessions)",
                mem.get("bytes_per_session").unwrap_or(&serde_json::Value::Null),
                mem.get("sessions").unwrap_or(&serde_json::Value::Null)
            ),
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use maos_mcp::{CallToolResult, ContentBlock};

    #[test]
    fn tool_error_codes_are_read_from_the_text() {
        let denied = CallToolResult::error(vec![ContentBlock::text("DSC-2-RATE: too fast")]);
        assert_eq!(super::tool_error_code(&denied), "DSC-2-RATE");
        let plain = CallToolResult::error(vec![ContentBlock::text("the tool broke, sorry")]);
        assert_eq!(super::tool_error_code(&plain), "TOOL-ERROR");
    }
}
