//! `maos ecs trigger | list | acknowledge`: the emergency controlled shutdown
//! (spec §38.6); and `maos tsca [approve]`, the recovery agent (§38.7). `trigger` asks the running daemon; `list` and `acknowledge`
//! read the forensic directory and work with the daemon stopped, which is
//! when they are needed: a boot after a shutdown that needs a human is
//! refused (`KERNEL-ECS-ACK-REQUIRED`) until the commander signs that they
//! read its report. The signature covers the report's SHA3-256, so an
//! acknowledgement does not carry over to a report edited afterwards.

use crate::cli::{EcsCommand, TscaCommand};
use crate::client::Daemon;
use crate::datadir::DataDir;
use crate::output::{Output, at, coded};
use maos_kernel::ecs::{EcsAck, ack_message};
use std::path::Path;
use std::process::ExitCode;

pub fn run(out: &Output, data_dir: &Path, cmd: EcsCommand) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    match cmd {
        EcsCommand::Trigger { reason } => trigger(out, &dir, &reason),
        EcsCommand::List => list(out, &dir),
        EcsCommand::Acknowledge { id, missing_report } => acknowledge(out, &dir, &id, missing_report),
    }
}

fn trigger(out: &Output, dir: &DataDir, reason: &str) -> anyhow::Result<ExitCode> {
    let daemon = Daemon::require(dir)?;
    let report = daemon.post("/v1/ecs", &serde_json::json!({ "reason": reason }))?;
    out.json(&report);
    let id = at(&report, &["id"]).as_str().unwrap_or("?");
    out.line(out.red(&format!("SAFE-HOLD: emergency controlled shutdown {id}")));
    out.field("class", at(&report, &["class"]).as_str().unwrap_or("?"));
    out.field("forensic report", at(&report, &["forensics"]).as_str().unwrap_or("none (no forensic directory)"));
    out.field("repair", at(&report, &["repair"]).as_str().unwrap_or("?"));
    out.line("every request is refused (KERNEL-ECS) until the daemon is restarted");
    if at(&report, &["human_review"]).as_bool().unwrap_or(true) {
        out.line(format!("the next boot needs the commander: maos ecs acknowledge {id}"));
    }
    Ok(ExitCode::SUCCESS)
}

/// One forensic directory as `list` shows it.
fn entry(dir: &DataDir, at_ms: u64, path: &Path) -> serde_json::Value {
    let id = maos_kernel::ecs::ecs_id(at_ms);
    let report = maos_kernel::read_bounded(&path.join("report.json"));
    let parsed: Option<serde_json::Value> = report.as_deref().and_then(|b| serde_json::from_slice(b).ok());
    let acknowledged =
        match (std::fs::read(path.join("ack.json")), maos_crypto::read_public_key_file(&dir.commander_pub())) {
            (Ok(ack), Ok(commander)) => {
                match maos_kernel::verify_ack(&id, report.as_deref().unwrap_or_default(), &ack, &commander) {
                    Ok(_) => serde_json::json!(true),
                    Err(why) => serde_json::json!({ "invalid": why }),
                }
            }
            _ => serde_json::json!(false),
        };
    let field = |k: &str| parsed.as_ref().map_or(serde_json::Value::Null, |p| p[k].clone());
    serde_json::json!({
        "id": id,
        "at_ms": at_ms,
        "cause": field("cause"),
        "class": field("class"),
        "human_review": field("human_review"),
        "counters": field("counters"),
        "report": path.join("report.json").display().to_string(),
        "report_readable": parsed.is_some(),
        "acknowledged": acknowledged,
    })
}

fn list(out: &Output, dir: &DataDir) -> anyhow::Result<ExitCode> {
    let root = dir.forensics();
    let rows: Vec<serde_json::Value> =
        maos_kernel::forensic_dirs(Some(&root)).iter().map(|(at, path)| entry(dir, *at, path)).collect();
    out.json(&serde_json::json!({ "forensics": root.display().to_string(), "shutdowns": rows }));
    if rows.is_empty() {
        out.line("no emergency shutdown on record");
    }
    for r in &rows {
        let ack = match at(r, &["acknowledged"]) {
            serde_json::Value::Bool(true) => out.green("acknowledged"),
            serde_json::Value::Bool(false) if at(r, &["human_review"]).as_bool() == Some(false) => {
                "no ack needed".to_owned()
            }
            serde_json::Value::Bool(false) => out.yellow("needs the commander"),
            other => out.red(&format!("ack invalid: {}", other["invalid"].as_str().unwrap_or("?"))),
        };
        let cause = at(r, &["cause", "trigger"]).as_str().unwrap_or("unreadable report");
        out.line(format!(
            "{}  {}  {cause}  {ack}",
            at(r, &["id"]).as_str().unwrap_or("?"),
            at(r, &["class"]).as_str().unwrap_or("?")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn acknowledge(out: &Output, dir: &DataDir, id: &str, missing_report: bool) -> anyhow::Result<ExitCode> {
    let at_ms = id.strip_prefix("ecs-").and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| {
        coded("MAOS-USAGE", format!("`{id}` is not a shutdown id (ecs-<ms>); see `maos ecs list`"), 2)
    })?;
    // The canonical id (`ecs-0123` is `ecs-123`): the boot checks that one.
    let id = maos_kernel::ecs::ecs_id(at_ms);
    let id = id.as_str();
    let path = dir.forensics().join(id);
    if !dir.commander_key().exists() {
        return Err(coded("MAOS-USAGE", "the commander key of this data directory is needed to sign", 2));
    }
    if !path.is_dir() {
        // A shutdown the log recorded whose directory could not be written
        // (the boot's refusal names it): acknowledged over an empty report,
        // as the boot reads it. Only on request: a mistyped id would
        // otherwise become a shutdown of its own.
        if !missing_report {
            return Err(coded(
                "MAOS-USAGE",
                format!(
                    "no forensic directory {}; for a shutdown only the log recorded, add --missing-report",
                    path.display()
                ),
                2,
            ));
        }
        out.line(out.yellow(&format!("no forensic directory {}: acknowledging what the log recorded", path.display())));
        std::fs::create_dir_all(&path)?;
    }
    // A missing report is acknowledged as empty: the boot checks the same bytes.
    let report = maos_kernel::read_bounded(&path.join("report.json")).unwrap_or_default();
    let sha3 = maos_crypto::sha3_256(&report).0;
    let shown = entry(dir, at_ms, &path);
    out.line(out.bold(&format!("acknowledge emergency shutdown {id}: the next boot may go ahead")));
    out.field("cause", at(&shown, &["cause"]).to_string());
    out.field("class", at(&shown, &["class"]).as_str().unwrap_or("unreadable report"));
    out.field("report sha3-256", maos_kernel::records::hex32(&sha3));
    let signature =
        dir.commander_signature(maos_crypto::SignatureDomain::EmergencyAcknowledgement, &ack_message(id, &sha3))?;
    let commander = maos_crypto::read_public_key_file(&dir.commander_pub())?;
    let ack = EcsAck {
        id: id.to_owned(),
        report_sha3: maos_kernel::records::hex32(&sha3),
        key_id: commander.key_id().to_hex(),
        signature,
        at_ms: crate::datadir::now().0,
    };
    let bytes = serde_json::to_vec_pretty(&ack)?;
    write_private(&path.join("ack.json"), &bytes)?;
    out.json(&serde_json::json!({ "ok": true, "ack": ack }));
    out.line(format!("{} {id}: `maos up` logs the acknowledgement at its next boot", out.green("acknowledged")));
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` (owner read/write only), synced, replacing it atomically.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

pub fn tsca(out: &Output, data_dir: &Path, cmd: Option<TscaCommand>) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    let daemon = Daemon::require(&dir)?;
    let view = daemon.get("/v1/tsca")?;
    let Some(TscaCommand::Approve { id }) = cmd else {
        out.json(&view);
        let level = at(&view, &["authorization"]).as_str().unwrap_or("?");
        out.line(format!("TSCA level {level}, {}", at(&view, &["mode"]).as_str().unwrap_or("?")));
        match at(&view, &["incident"]) {
            serde_json::Value::Null => out.field("incident", "none open"),
            i => out.field(
                "incident",
                format!(
                    "{}: {} of 10 terminations, {} of 5 component restarts, {} of 1 system restart; escalated: {}",
                    at(i, &["id"]).as_str().unwrap_or("?"),
                    at(i, &["terminations"]),
                    at(i, &["component_restarts"]),
                    at(i, &["system_restarts"]),
                    at(i, &["escalated"])
                ),
            ),
        }
        if let chain @ serde_json::Value::Object(_) = at(&view, &["chain"]) {
            let level = at(chain, &["level"]).as_str().unwrap_or("done").to_owned();
            let failed = at(chain, &["failed"]);
            out.field(
                "recovery chain",
                format!("{} at {level}; failed so far: {failed}", at(chain, &["id"]).as_str().unwrap_or("?")),
            );
        }
        for p in at(&view, &["proposals"]).as_array().into_iter().flatten() {
            let action = at(p, &["action"]);
            out.field(
                "proposal",
                format!("{}  {action}  until {} ms", at(p, &["id"]).as_str().unwrap_or("?"), at(p, &["expires_ms"])),
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let proposal = at(&view, &["proposals"])
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| at(p, &["id"]).as_str() == Some(id.as_str()))
        .ok_or_else(|| coded("MAOS-USAGE", format!("no open TSCA proposal {id}; see `maos tsca`"), 2))?;
    let action: maos_kernel::tsca::TscaAction = serde_json::from_value(at(proposal, &["action"]).clone())
        .map_err(|e| coded("MAOS-DAEMON-IO", format!("malformed proposal: {e}"), 1))?;
    if !dir.commander_key().exists() {
        return Err(coded("MAOS-USAGE", "the commander key of this data directory is needed to sign", 2));
    }
    out.line(out.bold(&format!("approve TSCA proposal {id}: it is executed at once")));
    out.field("action", serde_json::to_string(&action)?);
    out.field("why", at(proposal, &["why"]).as_str().unwrap_or("?"));
    let message = maos_kernel::tsca::approval_message(&id, &action);
    let signature = dir.commander_signature(maos_crypto::SignatureDomain::TscaPlan, &message)?;
    let done =
        daemon.post(&format!("/v1/tsca/proposals/{id}/approve"), &serde_json::json!({ "signature": signature }))?;
    out.json(&serde_json::json!({ "ok": true, "approved": done }));
    out.line(format!("{} {id}", out.green("approved and executed")));
    Ok(ExitCode::SUCCESS)
}
