//! `maos quarantine list | show | advance | release` (issue #14, spec
//! §37.8.2): the operator's view of the quarantine cascade and its decisions.
//!
//! `show` reads the agent's history from the log itself (every signal,
//! report, transition and elimination with its evidence), so it works with
//! the daemon stopped. `advance` from stage 3 shows what it signs (the agent
//! and its stage-3 entry time, as the daemon reports it) before it signs the
//! commander's approval; the kernel checks that time against its own state,
//! so a wrong one only makes the approval useless.

use crate::cli::QuarantineCommand;
use crate::client::Daemon;
use crate::datadir::DataDir;
use crate::output::{Output, coded};
use maos_kernel::QuarantineView;
use maos_kernel::records::{ImmuneRecord, KIND_DECISION, KIND_IMMUNE, KernelRecord};
use maos_model::AgentId;
use std::path::Path;
use std::process::ExitCode;

/// History entries `show` prints (the newest).
const HISTORY_SHOWN_MAX: usize = 200;
/// How long the commander's elimination approval `advance` signs is valid.
const APPROVAL_TTL_MS: u64 = 5 * 60_000;

pub fn run(out: &Output, data_dir: &Path, cmd: QuarantineCommand) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    match cmd {
        QuarantineCommand::List => list(out, &dir),
        QuarantineCommand::Show { agent } => show(out, &dir, &agent),
        QuarantineCommand::Release { agent, reason } => {
            let daemon = Daemon::require(&dir)?;
            let done =
                daemon.post(&format!("/v1/quarantine/{agent}/release"), &serde_json::json!({ "reason": reason }))?;
            out.json(&serde_json::json!({ "ok": true, "release": done }));
            let lsn = crate::cmd_agents::lsn_of(&done);
            out.line(format!("{} {agent} (kernel.immune at lsn {lsn})", out.green("released")));
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Advance { agent, reason } => advance(out, &dir, &agent, &reason),
        QuarantineCommand::Patterns => crate::cmd_patterns::list(out, &dir),
        QuarantineCommand::Block { pattern } => crate::cmd_patterns::block(out, &dir, &pattern),
    }
}

fn views(daemon: &Daemon) -> anyhow::Result<(serde_json::Value, Vec<QuarantineView>)> {
    let list = daemon.get("/v1/quarantine")?;
    let value = list.get("agents").cloned().unwrap_or_default();
    let agents = serde_json::from_value(value)
        .map_err(|e| coded("MAOS-DAEMON-IO", format!("malformed quarantine list: {e}"), 1))?;
    Ok((list, agents))
}

fn list(out: &Output, dir: &DataDir) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(dir)?;
    let (list, agents) = views(&daemon)?;
    out.json(&list);
    if agents.is_empty() {
        out.line("no agent has a danger signal");
    }
    for a in &agents {
        out.line(view_line(out, a));
    }
    Ok(ExitCode::SUCCESS)
}

fn view_line(out: &Output, a: &QuarantineView) -> String {
    let stage = format!("stage {} ({})", a.stage, a.stage_name);
    let painted = if a.stage >= 2 { out.red(&stage) } else { stage };
    let last = a.last_signal.as_ref().map_or_else(String::new, |(code, _)| format!("last {code}"));
    let paused = if a.paused { "  paused by its fingerprint: release or advance" } else { "" };
    format!("{:<16} {painted}  score {:>3}  {} signal(s)  {last}{paused}", a.agent, a.score, a.signals)
}

fn advance(out: &Output, dir: &DataDir, agent: &str, reason: &str) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(dir)?;
    let (_, agents) = views(&daemon)?;
    let current = agents.iter().find(|a| a.agent.as_str() == agent);
    let mut body = serde_json::Map::new();
    body.insert("reason".into(), reason.into());
    // From stage 3 the next step is elimination: under Hardened and Isolated
    // it needs the commander's signature over this agent's stage-3 entry,
    // shown here before it is signed.
    if let Some(view) = current.filter(|v| v.stage == 3)
        && dir.commander_key().exists()
    {
        out.line(out.bold(&format!("eliminate {agent} (quarantine stages 4 and 5)")));
        out.field("stage 3 since", format!("{} ms", view.since_ms));
        out.field("danger score", view.score);
        out.field("last signal", view.last_signal.as_ref().map_or("none", |(code, _)| code.as_str()));
        let grant = maos_kernel::EliminationGrant {
            agent: AgentId::new(agent).map_err(|e| coded("MAOS-USAGE", e.to_string(), 2))?,
            stage_since_ms: view.since_ms,
            expires_ms: crate::datadir::now().0.saturating_add(APPROVAL_TTL_MS),
        };
        let signature = dir.commander_signature(maos_crypto::SignatureDomain::QuarantineDecision, &grant.message())?;
        let approval = serde_json::json!({
            "stage_since_ms": grant.stage_since_ms,
            "expires_ms": grant.expires_ms,
            "signature": signature,
        });
        body.insert("approval".into(), approval);
    }
    let done = daemon.post(&format!("/v1/quarantine/{agent}/advance"), &serde_json::Value::Object(body))?;
    out.json(&serde_json::json!({ "ok": true, "advanced": done }));
    let lsn = crate::cmd_agents::lsn_of(&done);
    if done.get("eliminated").and_then(serde_json::Value::as_bool) == Some(true) {
        let count = |field: &str| done.get(field).and_then(serde_json::Value::as_array).map_or(0, Vec::len);
        out.line(format!(
            "{} {agent}: {} token(s) revoked, {} contact(s) in observation; healed, it needs a fresh token (kernel.immune at lsn {lsn})",
            out.red("eliminated"),
            count("revoked"),
            count("contacts")
        ));
    } else {
        let stage = done.get("stage").and_then(serde_json::Value::as_u64).unwrap_or(0);
        out.line(format!("{} {agent} to stage {stage} (kernel.immune at lsn {lsn})", out.red("advanced")));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of an agent's history, as JSON and as text.
struct Entry {
    json: serde_json::Value,
    text: String,
}

fn show(out: &Output, dir: &DataDir, agent: &str) -> anyhow::Result<ExitCode> {
    let id = AgentId::new(agent).map_err(|e| coded("MAOS-USAGE", e.to_string(), 2))?;
    let now = match Daemon::find_live(dir)? {
        Some(daemon) => views(&daemon)?.1.into_iter().find(|a| a.agent == id),
        None => None,
    };
    let reader = crate::journal::reader(dir)?;
    let mut history: std::collections::VecDeque<Entry> = std::collections::VecDeque::new();
    for record in reader.records()? {
        let record = record?;
        if record.kind != KIND_IMMUNE && record.kind != KIND_DECISION {
            continue;
        }
        let Some(Ok(decoded)) = KernelRecord::decode(record.kind, &record.payload) else { continue };
        let entry = match decoded {
            KernelRecord::Immune(r) => immune_entry(&r, &id),
            KernelRecord::Decision(d) => signal_entry(&d, &id),
            _ => None,
        };
        if let Some(mut entry) = entry {
            if let Some(map) = entry.json.as_object_mut() {
                map.insert("lsn".into(), record.lsn.0.into());
            }
            entry.text = format!("lsn {:<8} {}", record.lsn.0, entry.text);
            if history.len() >= HISTORY_SHOWN_MAX {
                history.pop_front();
            }
            history.push_back(entry);
        }
    }
    out.json(&serde_json::json!({
        "ok": true, "agent": id, "now": now,
        "history": history.iter().map(|e| e.json.clone()).collect::<Vec<_>>(),
    }));
    match &now {
        Some(view) => out.line(view_line(out, view)),
        None => out.line(format!("{agent}: no standing now (normal, or the daemon is not running)")),
    }
    if history.is_empty() {
        out.line("no signal, report or quarantine decision in the log");
    }
    for e in &history {
        out.line(&e.text);
    }
    Ok(ExitCode::SUCCESS)
}

fn signal_entry(d: &maos_kernel::records::DecisionRecord, id: &AgentId) -> Option<Entry> {
    d.delta.iter().find_map(|op| match op {
        maos_dsc::DeltaOp::Danger { agent, code, weight, at_ms } if agent == id => Some(Entry {
            json: serde_json::json!({ "at_ms": at_ms, "what": "signal", "code": code.as_str(), "weight": weight }),
            text: format!("{at_ms}  signal {} (weight {weight})", code.as_str()),
        }),
        _ => None,
    })
}

fn immune_entry(r: &ImmuneRecord, id: &AgentId) -> Option<Entry> {
    let about = r.agent.as_ref() == Some(id);
    let contact = r.elimination.as_ref().is_some_and(|e| e.contacts.contains(id));
    if !about && !contact {
        return None;
    }
    let (what, detail) = if let Some(e) = r.elimination.as_ref().filter(|_| about) {
        let steps: Vec<String> = e.reclamation.iter().map(|s| format!("{}. {}: {}", s.step, s.name, s.done)).collect();
        let pattern = e.pattern.as_ref().map_or_else(String::new, |p| {
            let targets: Vec<&str> = p.indicators.iter().map(|i| i.value.as_str()).collect();
            format!("; threat pattern: {} at {}", p.vector.join("+"), targets.join(", "))
        });
        ("eliminated (stages 4 and 5)", format!("by {:?}; {}{pattern}", e.authority, steps.join("; ")))
    } else if contact {
        ("observation (contact of an eliminated agent)", r.agent.as_ref().map_or_else(String::new, ToString::to_string))
    } else if let Some(u) = &r.unverified {
        let complete = if u.complete { "" } else { " (window incomplete: every effect since is unverified)" };
        ("outputs unverified", format!("{} effect(s) since {} ms{complete}", u.decisions.len(), u.since_ms))
    } else {
        let op = r.delta.first().map_or("", |op| match op {
            maos_dsc::DeltaOp::Apoptosis { .. } => "apoptosis (stage 3)",
            maos_dsc::DeltaOp::Release { .. } => "released",
            maos_dsc::DeltaOp::Report { .. } => "reported by a peer",
            maos_dsc::DeltaOp::Advance { .. } if r.by == maos_kernel::records::ImmuneActor::Kernel => {
                "immune memory match"
            }
            maos_dsc::DeltaOp::Advance { .. } => "advanced by the operator",
            _ => "immune record",
        });
        (op, r.reporter.as_ref().map_or_else(String::new, |p| format!("by {p}")))
    };
    Some(Entry {
        json: serde_json::json!({
            "at_ms": r.at_ms, "what": what, "by": r.by, "stage_before": r.stage_before,
            "score_before": r.score_before, "reason": r.reason, "detail": detail,
        }),
        text: format!("{}  {what} {detail} (stage {} before; {})", r.at_ms, r.stage_before, r.reason),
    })
}
