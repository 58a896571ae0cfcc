//! `maos agent register | demote`, `maos agents` and `maos fever end`, against
//! a running `maos up`: the agent registry (rings and classes) and the
//! immune system's node-wide view (issue #14).

use crate::cli::{AgentCommand, FeverCommand};
use crate::client::Daemon;
use crate::datadir::DataDir;
use crate::output::{Output, coded};
use maos_dsc::aggregate::AggregateLimits;
use maos_kernel::AgentsView;
use std::path::Path;
use std::process::ExitCode;

/// The log position a daemon answer names (0 if it names none).
pub fn lsn_of(done: &serde_json::Value) -> u64 {
    done.get("lsn").and_then(serde_json::Value::as_u64).unwrap_or(0)
}

pub fn agent(out: &Output, data_dir: &Path, cmd: AgentCommand) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(&DataDir::new(data_dir))?;
    match cmd {
        AgentCommand::Register { agent, ring, class, reason } => {
            let body = serde_json::json!({ "agent": agent, "ring": ring, "class": class, "reason": reason });
            let done = daemon.post("/v1/agents", &body)?;
            out.json(&serde_json::json!({ "ok": true, "registered": done }));
            out.line(format!(
                "{} {agent} in ring {ring}, class {class} (kernel.agent at lsn {})",
                out.green("registered"),
                lsn_of(&done)
            ));
        }
        AgentCommand::Demote { agent, reason } => {
            let done = daemon.post(&format!("/v1/agents/{agent}/demote"), &serde_json::json!({ "reason": reason }))?;
            out.json(&serde_json::json!({ "ok": true, "demoted": done }));
            let revoked = done.get("revoked").and_then(serde_json::Value::as_array).map_or(0, Vec::len);
            out.line(format!(
                "{} {agent} to ring 3; {revoked} token(s) revoked (kernel.agent at lsn {})",
                out.red("demoted"),
                lsn_of(&done)
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn agents(out: &Output, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(&DataDir::new(data_dir))?;
    let doc = daemon.get("/v1/agents")?;
    out.json(&doc);
    let view: AgentsView =
        serde_json::from_value(doc).map_err(|e| coded("MAOS-DAEMON-IO", format!("malformed agent list: {e}"), 1))?;
    if let Some(f) = view.fever {
        out.line(
            out.red(&format!("security fever since {} ms, ends at {} ms without a new signal", f.since_ms, f.ends_ms)),
        );
    }
    if view.agents.is_empty() {
        out.line("no agent known yet");
    }
    for a in &view.agents {
        let class = a.class.map_or("-", |c| c.name());
        let registered = if a.registered { "" } else { " (unregistered)" };
        let stage = format!("stage {}", a.stage);
        let painted = if a.stage >= 2 { out.red(&stage) } else { stage };
        let g = a.aggregate;
        out.line(format!(
            "{:<16} ring {}{registered}  class {class:<11} {painted}  score {:>3}  out {} B/24h  {} calls/24h  {} recipients/7d",
            a.agent, a.ring, a.score, g.outbound_bytes, g.external_calls, g.recipients
        ));
        if let Some(f) = &a.fingerprint {
            out.line(format!("{:<16} {}", "", fingerprint_line(f, a.paused)));
        }
    }
    if view.truncated {
        out.line(format!("(the first {} agents)", maos_kernel::AGENTS_LISTED_MAX));
    }
    Ok(ExitCode::SUCCESS)
}

/// One agent's fingerprint in a line: its baselines, the drifting metrics,
/// the last alert, and a pause.
fn fingerprint_line(f: &maos_dsc::fingerprint::Summary, paused: bool) -> String {
    let fixed = if f.fixed_windows >= maos_dsc::fingerprint::FIXED_WINDOWS {
        "fixed baseline complete".to_owned()
    } else {
        format!("fixed baseline {}/{} windows", f.fixed_windows, maos_dsc::fingerprint::FIXED_WINDOWS)
    };
    let mut line = format!(
        "fingerprint: {fixed}, adaptive {} windows, {}.{:03} calls/5 min",
        f.adaptive_windows,
        f.calls_mean_milli / 1000,
        f.calls_mean_milli % 1000
    );
    if !f.drifting.is_empty() {
        line.push_str(&format!("; drifting: {}", f.drifting.join(", ")));
    }
    if let Some(alert) = f.alerts.last() {
        let what = match &alert.finding {
            maos_dsc::fingerprint::Finding::Deviation { metric, sigma, value, .. } => {
                format!("{} {sigma} sigma ({value})", metric.name())
            }
            maos_dsc::fingerprint::Finding::Drift { metric, .. } => format!("{} drift", metric.name()),
        };
        line.push_str(&format!("; last alert {what} at {} ms", alert.at_ms));
    }
    if paused {
        line.push_str("; PAUSED pending review (maos quarantine release|advance)");
    }
    line
}

/// The nearest-rank 95th percentile of `values` (none for no values).
fn p95(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    let rank = values.len().saturating_mul(95).div_ceil(100);
    values.get(rank.checked_sub(1)?).copied()
}

/// `maos agents baseline` (spec §49.11's calibration): for each monitor, the
/// p95 over the agents with external activity and 3× it as the suggested
/// threshold (the unique-recipient count stops at what the monitor keeps).
pub fn baseline(out: &Output, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(&DataDir::new(data_dir))?;
    let doc = daemon.get("/v1/agents")?;
    let view: AgentsView =
        serde_json::from_value(doc).map_err(|e| coded("MAOS-DAEMON-IO", format!("malformed agent list: {e}"), 1))?;
    let active: Vec<_> = view.agents.iter().map(|a| a.aggregate).filter(|g| g.external_calls > 0).collect();
    let kept = u64::try_from(maos_dsc::aggregate::RECIPIENTS_KEPT).unwrap_or(u64::MAX);
    let limits = view.aggregate_limits;
    let monitors = [
        (
            "outbound_bytes_per_day",
            active.iter().map(|g| g.outbound_bytes).collect::<Vec<_>>(),
            limits.outbound_bytes,
            AggregateLimits::OUTBOUND_BYTES_MAX,
        ),
        (
            "external_calls_per_day",
            active.iter().map(|g| u64::from(g.external_calls)).collect(),
            u64::from(limits.external_calls),
            u64::from(AggregateLimits::EXTERNAL_CALLS_MAX),
        ),
        (
            "recipients_per_week",
            active.iter().map(|g| u64::from(g.recipients)).collect(),
            u64::from(limits.recipients),
            kept,
        ),
    ];
    let rows: Vec<serde_json::Value> = monitors
        .into_iter()
        .map(|(name, values, current, cap)| {
            let p = p95(values);
            let suggested = p.map(|p| p.saturating_mul(3).clamp(1, cap));
            serde_json::json!({ "monitor": name, "p95": p, "suggested": suggested, "current": current })
        })
        .collect();
    out.json(&serde_json::json!({
        "ok": true, "agents": active.len(), "mode": view.aggregate_mode, "monitors": rows,
    }));
    out.line(format!(
        "{} agent(s) with external activity; the monitor {}",
        active.len(),
        match view.aggregate_mode {
            maos_dsc::aggregate::AggregateMode::Enforce => "escalates (mode enforce)",
            maos_dsc::aggregate::AggregateMode::Calibrate => "only counts (mode calibrate)",
        }
    ));
    if active.is_empty() {
        out.line("nothing to suggest yet: no agent has sent anything out");
        return Ok(ExitCode::SUCCESS);
    }
    out.line("[aggregate]   # 3 x the p95 of the last 24 h (recipients: 7 days)");
    for row in &rows {
        let (name, p, suggested, current) = (&row["monitor"], &row["p95"], &row["suggested"], &row["current"]);
        out.line(format!("{} = {suggested}   # p95 {p}, now {current}", name.as_str().unwrap_or("?")));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn fever(out: &Output, data_dir: &Path, cmd: FeverCommand) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(&DataDir::new(data_dir))?;
    match cmd {
        FeverCommand::End { reason } => {
            let done = daemon.post("/v1/fever/end", &serde_json::json!({ "reason": reason }))?;
            out.json(&serde_json::json!({ "ok": true, "fever": done }));
            out.line(format!("{} the security fever (kernel.immune at lsn {})", out.green("ended"), lsn_of(&done)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod percentile {
    use super::p95;

    #[test]
    fn nearest_rank_p95() {
        assert_eq!(p95(Vec::new()), None);
        assert_eq!(p95(vec![7]), Some(7));
        assert_eq!(p95((1..=20).collect()), Some(19));
        assert_eq!(p95((1..=100).rev().collect()), Some(95));
    }
}
