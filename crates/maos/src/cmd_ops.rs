//! Operator commands against a running `maos up`: `status`, `undo`,
//! `approve list | show | grant | deny`.
//!
//! `approve grant` never signs what the daemon hands it: it rebuilds the grant
//! message from the packet it displays (the trusted display), signs it with
//! the commander key from this data directory, and sends only the signature.

use crate::cli::{ApproveCommand, UndoArgs};
use crate::client::Daemon;
use crate::datadir::DataDir;
use crate::output::{Output, at, coded};
use maos_kernel::{ApprovalPacket, KernelHandle};
use std::path::Path;
use std::process::ExitCode;

pub fn status(out: &Output, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    let Some(daemon) = Daemon::find_live(&dir)? else {
        out.json(&serde_json::json!({ "ok": false, "running": false }));
        out.line(format!("{} no `maos up` runs for {}", out.red("down"), dir.root().display()));
        return Ok(ExitCode::from(1));
    };
    let s = daemon.get("/v1/status")?;
    out.json(&serde_json::json!({ "ok": true, "running": true, "listen": daemon.base(), "status": s }));
    let state = s.get("state").and_then(|m| m.as_str()).unwrap_or("unknown");
    let painted = match state {
        "GREEN" => out.green(state),
        "YELLOW" => out.yellow(state),
        _ => out.red(state),
    };
    out.line(format!("{painted} MAOS kernel at {}/v1", daemon.base()));
    let modes: Vec<String> = s
        .get("degraded_modes")
        .and_then(|m| m.as_array())
        .map(|m| m.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    if !modes.is_empty() {
        out.field("degraded modes", modes.join(", "));
    }
    for why in s.get("state_why").and_then(|w| w.as_array()).into_iter().flatten() {
        out.field("why", why.as_str().unwrap_or("?"));
    }
    if s.get("human_ack").and_then(serde_json::Value::as_bool) == Some(true) {
        out.field("human", out.red("required: leaving this state needs an operator"));
    }
    let ecs = at(&s, &["ecs"]);
    if let Some(id) = at(ecs, &["active", "id"]).as_str() {
        let report = at(ecs, &["active", "forensics"]).as_str().unwrap_or("no forensic directory");
        out.field("emergency", out.red(&format!("{id} ({}), report in {report}", at(ecs, &["active", "class"]))));
    }
    if let (Some(id), Some(until)) = (at(ecs, &["observing"]).as_str(), at(ecs, &["observation_until_ms"]).as_u64()) {
        out.field("observation", format!("safe restart after {id}, until {until} ms, admission queue reduced"));
    }
    for b in at(&s, &["breakers"]).as_array().into_iter().flatten() {
        let state = at(b, &["state"]).as_str().unwrap_or("?");
        if state == "closed" {
            continue;
        }
        let open_s = at(b, &["open_for_ms"]).as_u64().unwrap_or(0) / 1000;
        let line = format!("{} {state} for {open_s} s", at(b, &["interface"]).as_str().unwrap_or("?"));
        let alert = at(b, &["alert"]).as_bool() == Some(true);
        out.field("breaker", if alert { out.red(&format!("{line}: ALERT, open over 5 minutes")) } else { line });
    }
    if at(ecs, &["flagged"]).as_bool() == Some(true) {
        out.field("emergency shutdowns", out.red("more than 4 in 7 days: possibly deliberate"));
    }
    let mode = s.get("mode").and_then(|m| m.as_str()).unwrap_or("unknown");
    out.field("mode", mode);
    match s.get("evaluator").filter(|e| !e.is_null()) {
        Some(e) if e["answering"] == true => {
            out.field("evaluator", format!("{} (answering)", e["url"].as_str().unwrap_or("?")))
        }
        Some(e) => out
            .field("evaluator", out.red(&format!("{} (not answering: rule-based)", e["url"].as_str().unwrap_or("?")))),
        None => out.field("evaluator", "none configured (rule-based)"),
    }
    if let Some(pct) = s.get("disk_used_pct").and_then(serde_json::Value::as_u64) {
        let line = format!("{pct} % used (80 warn, 90 clean up, 95 effects refused, 99 everything refused)");
        out.field("disk", if pct >= 95 { out.red(&line) } else { line });
    }
    if let Some(pct) = s.get("memory_used_pct").and_then(serde_json::Value::as_u64) {
        let line = format!("{pct} % used (over 85 ring-3 agents paused until under 75, over 95 every agent)");
        out.field("memory", if pct > 85 { out.red(&line) } else { line });
    }
    if let Some(code) = s.get("effects_refused_with").and_then(|c| c.as_str()) {
        out.field("effects", format!("refused with {code}; observations continue"));
    }
    let n = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    out.field("queue", format!("{} / {}", n("queue_depth"), n("queue_capacity")));
    out.field("log", format!("{} (last lsn {})", s.get("wal").and_then(|w| w.as_str()).unwrap_or("?"), n("last_lsn")));
    out.field("approvals", n("pending_approvals"));
    match s.get("fever") {
        Some(f) if f.get("since_ms").is_some() => out.field(
            "fever",
            out.red(&format!("on since {} ms (rates halved, ring-3 effects need a human)", f["since_ms"])),
        ),
        Some(f) if f.is_null() => out.field("fever", "none"),
        _ => out.field("fever", "unknown (the kernel did not answer)"),
    }
    let offset = s.get("wall_clock_offset_ms").and_then(serde_json::Value::as_i64).unwrap_or(0);
    let clock = format!("the wall clock stepped {offset:+} ms since the kernel started");
    let alert = offset.unsigned_abs() > maos_kernel::TIME_STEP_ALERT_MS;
    out.field("time", if alert { out.red(&format!("{clock} (time integrity alert)")) } else { clock });
    out.field("sessions", n("sessions"));
    out.field("uptime", format!("{} s", n("uptime_s")));
    Ok(ExitCode::SUCCESS)
}

pub fn undo(out: &Output, data_dir: &Path, args: &UndoArgs) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(&DataDir::new(data_dir))?;
    let done = daemon.post(&format!("/v1/intents/{}/undo", args.intent), &serde_json::json!({}))?;
    out.json(&serde_json::json!({ "ok": true, "undo": done }));
    out.line(format!(
        "{} intent {} (undo record at lsn {})",
        out.green("undone"),
        args.intent,
        crate::cmd_agents::lsn_of(&done)
    ));
    Ok(ExitCode::SUCCESS)
}

pub fn approve(out: &Output, data_dir: &Path, cmd: ApproveCommand) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    let daemon = Daemon::require(&dir)?;
    match cmd {
        ApproveCommand::List => {
            let list = daemon.get("/v1/approvals")?;
            out.json(&list);
            let packets = packets(&list)?;
            if packets.is_empty() {
                out.line("no approvals waiting");
            }
            for p in &packets {
                out.line(format!(
                    "{}  {:<12} {:<14} {:?}  expires in {} s  {}",
                    p.id,
                    p.agent,
                    p.action,
                    p.level,
                    p.expires_ms.saturating_sub(crate::datadir::now().0) / 1000,
                    p.why
                ));
            }
        }
        ApproveCommand::Show { id } => {
            let doc = daemon.get(&format!("/v1/approvals/{id}"))?;
            out.json(&doc);
            show_packet(out, &packet_of(&doc)?);
        }
        ApproveCommand::Grant { id } => {
            let doc = daemon.get(&format!("/v1/approvals/{id}"))?;
            let packet = packet_of(&doc)?;
            show_packet(out, &packet);
            let grant = KernelHandle::grant_for(&packet)
                .ok_or_else(|| coded("MAOS-APPROVAL", "the packet's decision hash is malformed", 1))?;
            let encoded = dir.commander_signature(maos_crypto::SignatureDomain::ApprovalDecision, &grant.message())?;
            let view =
                daemon.post(&format!("/v1/approvals/{id}/grant"), &serde_json::json!({ "signature": encoded }))?;
            out.json(&serde_json::json!({ "ok": true, "intent": view }));
            outcome_line(out, "granted", &view);
        }
        ApproveCommand::Deny { id, reason } => {
            let view = daemon.post(&format!("/v1/approvals/{id}/deny"), &serde_json::json!({ "reason": reason }))?;
            out.json(&serde_json::json!({ "ok": true, "intent": view }));
            out.line(format!("{} approval {id}", out.red("denied")));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn packets(list: &serde_json::Value) -> anyhow::Result<Vec<ApprovalPacket>> {
    let value = list.get("approvals").cloned().unwrap_or_default();
    serde_json::from_value(value).map_err(|e| coded("MAOS-DAEMON-IO", format!("malformed approval list: {e}"), 1))
}

fn packet_of(doc: &serde_json::Value) -> anyhow::Result<ApprovalPacket> {
    let value = doc.get("approval").cloned().unwrap_or_default();
    serde_json::from_value(value).map_err(|e| coded("MAOS-DAEMON-IO", format!("malformed approval packet: {e}"), 1))
}

fn show_packet(out: &Output, p: &ApprovalPacket) {
    out.line(out.bold(&format!("approval {} ({:?})", p.id, p.level)));
    out.field("agent", &p.agent);
    out.field("action", &p.action);
    out.field("risk", format!("{:?}", p.risk));
    out.field("why", &p.why);
    out.field("changed", &p.changed);
    out.field("intent", serde_json::to_string(&p.intent).unwrap_or_default());
    out.field("expires in", format!("{} s", p.expires_ms.saturating_sub(crate::datadir::now().0) / 1000));
}

fn outcome_line(out: &Output, verb: &str, view: &serde_json::Value) {
    let status = view.get("status").and_then(|s| s.as_str()).unwrap_or("?");
    let code = view.get("code").and_then(|c| c.as_str()).unwrap_or("");
    out.line(format!(
        "{} intent {}: {status} {code}",
        out.green(verb),
        view.get("intent").and_then(|i| i.as_str()).unwrap_or("?")
    ));
}
