//! `maos bench`: a load generator against a running kernel, like
//! `redis-benchmark`. Each synthetic agent gets its own token (issued through
//! the daemon, so it is logged like any other) and session, then keeps
//! `--concurrency` intents in flight (closed loop) or sends at a fixed
//! `--rate` (open loop: latency is measured from the scheduled send time when
//! the worker was still busy with its previous request then, so a stall is not
//! hidden, and from the actual send otherwise, so the timer's millisecond
//! granularity is not counted; see [`since`]). `--mode echo` measures the floor: the bare HTTP
//! round trip of `GET /v1/health`, which touches no kernel state. `--mode mcp`
//! compares MCP tool calls through MAOS with the same calls made directly
//! ([`crate::bench_mcp`]).

use crate::cli::BenchArgs;
use crate::client::Daemon;
use crate::datadir::DataDir;
use crate::output::{Output, coded};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Synthetic agents at most.
const AGENTS_MAX: usize = 256;
/// In-flight requests per agent at most.
const CONCURRENCY_MAX: usize = 256;
/// Longest run.
const DURATION_MAX_S: u64 = 3600;
/// Latency samples kept (beyond it, later ones are dropped, counted as done).
const SAMPLES_MAX: usize = 20_000_000;

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) by_code: BTreeMap<String, u64>,
}

pub fn run(out: &Output, data_dir: &Path, args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if args.agents == 0 || args.agents > AGENTS_MAX || args.concurrency == 0 || args.concurrency > CONCURRENCY_MAX {
        return Err(coded("MAOS-USAGE", format!("--agents 1..={AGENTS_MAX}, --concurrency 1..={CONCURRENCY_MAX}"), 2));
    }
    if args.duration == 0 || args.duration > DURATION_MAX_S || !(0.0..=1.0).contains(&args.write_ratio) {
        return Err(coded("MAOS-USAGE", format!("--duration 1..={DURATION_MAX_S}, --write-ratio 0..=1"), 2));
    }
    let echo = match args.mode.as_str() {
        "noop" => false,
        "echo" => true,
        "mcp" => return crate::bench_mcp::run(out, data_dir, args),
        other => return Err(coded("MAOS-USAGE", format!("--mode `{other}`: use noop, echo or mcp"), 2)),
    };
    let dir = DataDir::new(data_dir);
    let base = match &args.target {
        Some(t) => t.trim_end_matches('/').to_owned(),
        None => Daemon::require(&dir)?.base().to_owned(),
    };
    let mut tokens = Vec::new();
    if !echo {
        for i in 0..args.agents {
            // Rate per token at its maximum: the bench measures the kernel, not the limiter.
            tokens.push(crate::cmd_token::issue_for(
                &dir,
                &format!("bench-{i}"),
                &["noop.*".to_owned()],
                maos_token::limits::RATE_PER_HOUR_MAX,
                u64::MAX / 2,
            )?);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (tally, elapsed) = rt.block_on(drive(&base, tokens, args, echo))?;
    report(out, args, &tally, elapsed)
}

async fn open_session(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    let response = http.post(format!("{base}/v1/sessions")).bearer_auth(token).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("session answer")?;
    body.get("session")
        .and_then(|s| s.as_str())
        .map(str::to_owned)
        .ok_or_else(|| coded("MAOS-BENCH", format!("opening a session: HTTP {status}: {body}"), 1))
}

async fn drive(base: &str, tokens: Vec<String>, args: &BenchArgs, echo: bool) -> anyhow::Result<(Tally, Duration)> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let mut sessions = Vec::new();
    for token in &tokens {
        sessions.push(open_session(&http, base, token).await?);
    }
    if echo {
        sessions = vec![String::new(); args.agents];
    }
    let workers = args.agents.saturating_mul(args.concurrency);
    let write_every = if args.write_ratio <= 0.0 { u64::MAX } else { (1.0 / args.write_ratio).round() as u64 };
    let (http, base) = (http.clone(), Arc::<str>::from(base));
    let sessions: Arc<[String]> = sessions.into();
    let request = move |w: usize, n: u64| {
        let (http, base) = (http.clone(), base.clone());
        let session = sessions.get(w % sessions.len().max(1)).cloned().unwrap_or_default();
        let write = write_every != u64::MAX && n.is_multiple_of(write_every.max(1));
        async move { if echo { health(&http, &base).await } else { intent(&http, &base, &session, w, write).await } }
    };
    run_load(workers, args.rate, Duration::from_secs(args.duration), request).await
}

/// Runs `workers` concurrent workers for `run_for`: closed loop (each sends its
/// next request when the last is answered), or open loop at `rate` requests per
/// second in all, spread evenly. `request(worker, n)` sends a worker's `n`-th
/// request and returns `"ok"` or the code it was refused with. At most
/// [`SAMPLES_MAX`] latencies are kept.
pub(crate) async fn run_load<R, F>(
    workers: usize,
    rate: Option<u64>,
    run_for: Duration,
    request: R,
) -> anyhow::Result<(Tally, Duration)>
where
    R: Fn(usize, u64) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = String> + Send,
{
    // Open loop: each worker sends every `workers / rate` seconds.
    let period = rate.filter(|r| *r > 0).map(|r| Duration::from_secs_f64(workers as f64 / r as f64));
    let start = Instant::now();
    let end = start + run_for;
    let samples_max = SAMPLES_MAX / workers.max(1);
    let mut handles = Vec::new();
    for w in 0..workers {
        let request = request.clone();
        handles.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut n: u64 = 0;
            // Stagger open-loop workers across one period.
            let mut next = period.map(|p| start + p.mul_f64(w as f64 / workers.max(1) as f64));
            let mut prev_done = start;
            loop {
                let scheduled = match next {
                    Some(at) => {
                        tokio::time::sleep_until(at.into()).await;
                        next = period.map(|p| at + p);
                        at
                    }
                    None => Instant::now(),
                };
                if scheduled >= end {
                    break;
                }
                let sent_from = since(scheduled, prev_done);
                n = n.wrapping_add(1);
                let code = request(w, n).await;
                prev_done = Instant::now();
                let latency = u64::try_from(prev_done.duration_since(sent_from).as_micros()).unwrap_or(u64::MAX);
                if code == "ok" && tally.latencies_us.len() < samples_max {
                    tally.latencies_us.push(latency);
                }
                *tally.by_code.entry(code).or_default() += 1;
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for h in handles {
        let t = h.await?;
        total.latencies_us.extend(t.latencies_us);
        for (code, n) in t.by_code {
            *total.by_code.entry(code).or_default() += n;
        }
    }
    Ok((total, start.elapsed()))
}

async fn health(http: &reqwest::Client, base: &str) -> String {
    match http.get(format!("{base}/v1/health")).send().await {
        Ok(r) if r.status().is_success() => match r.bytes().await {
            Ok(_) => "ok".into(),
            Err(_) => "IO".into(),
        },
        Ok(r) => format!("HTTP-{}", r.status().as_u16()),
        Err(_) => "IO".into(),
    }
}

async fn intent(http: &reqwest::Client, base: &str, session: &str, worker: usize, write: bool) -> String {
    let body = serde_json::json!({
        "action": if write { "noop.write" } else { "noop.read" },
        "args": { "key": format!("bench-{worker}") },
        "wait_ms": 30_000,
    });
    let response = http
        .post(format!("{base}/v1/intents"))
        .bearer_auth(session)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    let Ok(response) = response else { return "IO".into() };
    let Ok(value) = response.json::<serde_json::Value>().await else { return "IO".into() };
    match value.get("status").and_then(|s| s.as_str()) {
        Some("done") => "ok".into(),
        Some(other) => value.get("code").and_then(|c| c.as_str()).unwrap_or(other).to_owned(),
        None => value.pointer("/error/code").and_then(|c| c.as_str()).unwrap_or("IO").to_owned(),
    }
}

/// Where a request's latency is counted from: its scheduled time if the worker
/// was late because its previous request ended after it (the system's delay,
/// counted in full), else now (a sleep wakes up to a millisecond late, which is
/// the load generator's delay, not the system's).
fn since(scheduled: Instant, prev_done: Instant) -> Instant {
    if prev_done > scheduled { scheduled } else { Instant::now() }
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied().unwrap_or(0)
}

fn report(out: &Output, args: &BenchArgs, tally: &Tally, elapsed: Duration) -> anyhow::Result<ExitCode> {
    let mut lat = tally.latencies_us.clone();
    lat.sort_unstable();
    let ok = tally.by_code.get("ok").copied().unwrap_or(0);
    let total: u64 = tally.by_code.values().sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let (p50, p99, p999) = (percentile(&lat, 50.0), percentile(&lat, 99.0), percentile(&lat, 99.9));
    let max = lat.last().copied().unwrap_or(0);
    out.json(&serde_json::json!({
        "mode": args.mode, "agents": args.agents, "concurrency": args.concurrency, "rate": args.rate,
        "write_ratio": args.write_ratio, "duration_s": secs, "requests": total, "ok": ok,
        "throughput_per_s": ok as f64 / secs, "latency_us": { "p50": p50, "p99": p99, "p999": p999, "max": max },
        "outcomes": tally.by_code,
    }));
    out.line(format!(
        "{} {} requests in {:.1} s: {:.0} ok/s ({} agents x {} in flight{}, {:.0}% writes)",
        out.bold(&args.mode),
        total,
        secs,
        ok as f64 / secs,
        args.agents,
        args.concurrency,
        args.rate.map_or(String::new(), |r| format!(", offered {r}/s")),
        args.write_ratio * 100.0
    ));
    out.field("latency", format!("p50 {p50} µs  p99 {p99} µs  p999 {p999} µs  max {max} µs"));
    for (code, n) in &tally.by_code {
        if code != "ok" {
            out.field("refused", format!("{n} x {code}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_of_a_known_series() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(super::percentile(&v, 50.0), 501);
        assert_eq!(super::percentile(&v, 99.0), 990);
        assert_eq!(super::percentile(&[], 99.0), 0);
    }

    #[test]
    fn a_late_worker_counts_from_the_schedule() {
        let scheduled = std::time::Instant::now();
        let busy_until = scheduled + std::time::Duration::from_millis(5);
        assert_eq!(super::since(scheduled, busy_until), scheduled, "the backlog is the system's delay");
        let idle_since = scheduled - std::time::Duration::from_millis(5);
        assert!(super::since(scheduled, idle_since) >= scheduled, "timer lag is not");
    }
}
