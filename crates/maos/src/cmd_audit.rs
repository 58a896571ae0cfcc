//! `maos audit …`: read and verify the write-ahead log as an auditor would.
//! Nothing here writes to the log; `verify` needs only the kernel's public key
//! and works on a copy of the log on another machine.

use crate::cli::{AuditCommand, AuditExportArgs, AuditShowArgs, AuditTailArgs, AuditVerifyArgs};
use crate::datadir::DataDir;
use crate::journal::{decode_event, kind_name, reader};
use crate::output::{EXIT_INVALID, Output, coded};
use base64::Engine as _;
use maos_wal::{Lsn, PayloadState, Record, verify_storage};
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Records `tail` prints at most, whatever `-n` says.
const TAIL_MAX: usize = maos_wal::TAIL_RECORDS_MAX;
/// How often `tail --follow` polls for new records.
const FOLLOW_POLL_MS: u64 = 250;

pub fn run(out: &Output, data_dir: &Path, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(data_dir);
    match cmd {
        AuditCommand::Verify(args) => verify(out, &dir, &args),
        AuditCommand::Tail(args) => tail(out, &dir, &args),
        AuditCommand::Show(args) => show(out, &dir, &args),
        AuditCommand::Export(args) => export(&dir, &args),
        AuditCommand::Replay => replay(out, &dir),
    }
}

fn verify(out: &Output, dir: &DataDir, args: &AuditVerifyArgs) -> anyhow::Result<ExitCode> {
    let keys = match &args.public_key {
        Some(path) => vec![maos_crypto::read_public_key_file(path)?],
        None => dir.kernel_trusted_keys()?,
    };
    let mut copies = vec![("primary", args.wal_dir.clone().unwrap_or_else(|| dir.wal()))];
    if args.wal_dir.is_none()
        && let Some(secondary) = dir.load_config()?.wal_secondary
        && secondary.exists()
    {
        copies.push(("secondary", secondary));
    }
    let mut results = Vec::new();
    let mut failed = None;
    for (name, path) in &copies {
        let verified = maos_wal::FsStorage::open_existing(path)
            .map_err(|e| maos_wal::WalError::Io {
                copy: if *name == "primary" { maos_wal::CopyId::Primary } else { maos_wal::CopyId::Secondary },
                op: "open",
                detail: e.to_string(),
            })
            .and_then(|storage| verify_storage(&storage, &keys));
        match verified {
            Ok(r) => {
                out.line(format!(
                    "{} {name} copy {}: {} records (lsn {}..={}), {} signed checkpoints, last at lsn {}, {} records after it",
                    out.green("ok"),
                    path.display(),
                    r.records,
                    r.first_lsn,
                    r.last_lsn,
                    r.checkpoints,
                    r.last_checkpoint.map_or_else(|| "-".to_owned(), |l| l.to_string()),
                    r.unsigned_tail_records
                ));
                results.push(serde_json::json!({
                    "copy": name, "dir": path.display().to_string(), "valid": true, "records": r.records,
                    "first_lsn": r.first_lsn.0, "last_lsn": r.last_lsn.0, "head_hash": r.head_hash.to_hex(),
                    "checkpoints": r.checkpoints, "last_checkpoint": r.last_checkpoint.map(|l| l.0),
                    "unsigned_tail_records": r.unsigned_tail_records,
                    "max_records_between_checkpoints": r.max_records_between_checkpoints,
                    "retention_cut": r.retention_cut.map(|l| l.0), "sealed_records": r.sealed_records,
                }));
            }
            Err(e) => {
                let lsn = e.lsn().map(|l| l.0);
                if !out.json {
                    eprintln!(
                        "{} {name} copy {}: {e}{}",
                        out.red(&format!("invalid[{}]:", e.code())),
                        path.display(),
                        lsn.map_or_else(String::new, |l| format!(" (first bad record: lsn {l})"))
                    );
                }
                results.push(serde_json::json!({
                    "copy": name, "dir": path.display().to_string(), "valid": false,
                    "code": e.code(), "error": e.to_string(), "first_bad_lsn": lsn,
                }));
                failed.get_or_insert((e.code(), lsn));
            }
        }
    }
    out.json(&serde_json::json!({
        "ok": failed.is_none(), "valid": failed.is_none(),
        "key_ids": keys.iter().map(|k| k.key_id().to_hex()).collect::<Vec<_>>(),
        "code": failed.map(|(c, _)| c), "first_bad_lsn": failed.and_then(|(_, l)| l), "copies": results,
    }));
    Ok(if failed.is_some() { ExitCode::from(EXIT_INVALID) } else { ExitCode::SUCCESS })
}

/// A record as stable JSON: the SIEM export format (documented in docs/audit.md).
fn record_json(record: &Record) -> serde_json::Value {
    let payload = if let Some(c) = record.checkpoint() {
        serde_json::json!({
            "head_lsn": c.head_lsn.0, "head_hash": c.head_hash.to_hex(), "state_digest": hex(&c.state.0),
            "log_id": c.log_id.to_string(), "key_id": c.key_id.to_hex(),
        })
    } else if let Some(g) = record.genesis() {
        serde_json::json!({ "log_id": g.log_id.to_string(), "profile": g.profile.name() })
    } else if let Some(r) = record.retention() {
        serde_json::json!({
            "first_lsn": r.first_lsn.0, "last_lsn": r.last_lsn.0, "last_hash": r.last_hash.to_hex(),
            "segments": r.segments, "retention_days": r.retention_days, "cutoff_ms": r.cutoff.0,
        })
    } else if record.payload_state == PayloadState::Sealed {
        serde_json::json!({ "sealed": base64::engine::general_purpose::STANDARD.encode(&record.payload) })
    } else {
        match decode_event(record) {
            Ok(Some(event)) => serde_json::to_value(event).unwrap_or(serde_json::Value::Null),
            // Commit Layer and kernel records are JSON too; decision records carry
            // the presented token, which is a credential: never export it.
            _ => {
                let redacted = maos_kernel::redact_payload(record.kind, &record.payload);
                serde_json::from_slice(&redacted).unwrap_or_else(
                    |_| serde_json::json!({ "raw": base64::engine::general_purpose::STANDARD.encode(&redacted) }),
                )
            }
        }
    };
    serde_json::json!({
        "lsn": record.lsn.0,
        "ts_ms": record.timestamp.0,
        "time": record.timestamp.to_rfc3339(),
        "kind": record.kind.0,
        "kind_name": kind_name(record.kind),
        "prev_hash": record.prev_hash.to_hex(),
        "hash": record.hash.to_hex(),
        "payload": payload,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line for humans: lsn, time, kind, a short summary.
fn record_line(out: &Output, record: &Record) -> String {
    let summary = match decode_event(record) {
        Ok(Some(crate::journal::SecurityEvent::KeyCreated { role, key_id, .. })) => {
            format!("{role} key {}", key_id.get(..16).unwrap_or(&key_id))
        }
        Ok(Some(crate::journal::SecurityEvent::KeyRotated { role, old_key_id, new_key_id, .. })) => format!(
            "{role} key {} replaced by {}",
            old_key_id.get(..16).unwrap_or(&old_key_id),
            new_key_id.get(..16).unwrap_or(&new_key_id)
        ),
        Ok(Some(crate::journal::SecurityEvent::Token(maos_token::TokenEvent::Issued(i)))) => {
            format!("{} for {}{}", i.id, i.agent, i.parent.map_or_else(String::new, |p| format!(" (child of {p})")))
        }
        Ok(Some(crate::journal::SecurityEvent::Token(maos_token::TokenEvent::Revoked(r)))) => {
            format!("{} and {} descendant(s); epoch {} ({})", r.root, r.ids.len().saturating_sub(1), r.epoch, r.reason)
        }
        Ok(None) => record
            .checkpoint()
            .map(|c| format!("signed head lsn {} by key {}", c.head_lsn, c.key_id.short()))
            .or_else(|| record.genesis().map(|g| format!("log {} ({})", g.log_id, g.profile.name())))
            .unwrap_or_default(),
        Err(e) => format!("<{e}>"),
    };
    format!(
        "{:>8}  {}  {:<16} {}",
        record.lsn.0,
        out.dim(&record.timestamp.to_rfc3339()),
        kind_name(record.kind),
        summary
    )
}

fn tail(out: &Output, dir: &DataDir, args: &AuditTailArgs) -> anyhow::Result<ExitCode> {
    let reader = reader(dir)?;
    let records = reader.tail(args.n.clamp(1, TAIL_MAX))?;
    for record in &records {
        emit(out, record);
    }
    if args.follow {
        let next = records.last().map_or(Lsn(1), |r| Lsn(r.lsn.0.saturating_add(1)));
        let mut follower = reader.follow(next);
        // Runs until interrupted, like `tail -f`.
        loop {
            for record in follower.poll()? {
                emit(out, &record);
            }
            std::io::stdout().flush()?;
            std::thread::sleep(std::time::Duration::from_millis(FOLLOW_POLL_MS));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn emit(out: &Output, record: &Record) {
    if out.json {
        println!("{}", record_json(record));
    } else {
        println!("{}", record_line(out, record));
    }
}

fn show(out: &Output, dir: &DataDir, args: &AuditShowArgs) -> anyhow::Result<ExitCode> {
    let record = reader(dir)?.get(Lsn(args.lsn))?;
    let doc = record_json(&record);
    out.json(&doc);
    if !out.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn export(dir: &DataDir, args: &AuditExportArgs) -> anyhow::Result<ExitCode> {
    if args.format != "jsonl" {
        return Err(coded("MAOS-USAGE", format!("--format `{}`: only `jsonl` is supported", args.format), 2));
    }
    let reader = reader(dir)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    for record in reader.records_from(Lsn(args.from.max(1)))? {
        writeln!(lock, "{}", record_json(&record?))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-runs the DSC over every logged decision, with the state as it was then,
/// and reports any record whose verdict differs (there must be none).
fn replay(out: &Output, dir: &DataDir) -> anyhow::Result<ExitCode> {
    let log = reader(dir)?;
    // The policy the log records (the one `maos up` ran), else the deployed one.
    // The policies the log records (the ones `maos up` ran), else the deployed one.
    let configs = crate::policy_log::logged_policies(&log)?;
    // Before the first policy record (or with none): the last logged one,
    // else the deployed one.
    let fallback = match configs.last() {
        Some((_, last)) => last.clone(),
        None => dir.dsc_config(&dir.load_config()?)?,
    };
    let report = maos_kernel::replay_under(&log, &configs, fallback, &crate::cmd_token::key_ring(dir)?)?;
    out.json(&serde_json::json!({
        "ok": report.is_clean(), "records": report.records, "decisions": report.decisions,
        "divergence_count": report.divergence_count,
        "divergences": report.divergences.iter().map(|d| serde_json::json!({
            "lsn": d.lsn.0, "intent": d.intent.to_string(), "recorded": format!("{:?}", d.recorded),
            "replayed": format!("{:?}", d.replayed), "what": d.what,
        })).collect::<Vec<_>>(),
    }));
    if report.is_clean() {
        out.line(format!(
            "{} {} records read, {} decisions re-run, every verdict reproduced",
            out.green("clean"),
            report.records,
            report.decisions
        ));
        Ok(ExitCode::SUCCESS)
    } else {
        for d in &report.divergences {
            out.line(format!(
                "{} lsn {} intent {}: recorded {:?}, replayed {:?} ({})",
                out.red("diverged"),
                d.lsn,
                d.intent,
                d.recorded,
                d.replayed,
                d.what
            ));
        }
        Ok(ExitCode::from(EXIT_INVALID))
    }
}

/// The daemon's `GET /v1/audit`: the same records and format as `audit export`.
pub struct LogAudit {
    dir: DataDir,
}

impl LogAudit {
    pub fn new(dir: &DataDir) -> anyhow::Result<Self> {
        reader(dir)?;
        Ok(Self { dir: DataDir::new(dir.root()) })
    }
}

impl maos_gateway::AuditSource for LogAudit {
    fn read(&self, from: u64, limit: usize) -> Result<Vec<serde_json::Value>, String> {
        let reader = reader(&self.dir).map_err(|e| format!("{e:#}"))?;
        let mut out = Vec::with_capacity(limit.min(maos_gateway::AUDIT_PAGE_MAX));
        for record in reader.records_from(Lsn(from.max(1))).map_err(|e| e.to_string())?.take(limit) {
            out.push(record_json(&record.map_err(|e| e.to_string())?));
        }
        Ok(out)
    }
}
