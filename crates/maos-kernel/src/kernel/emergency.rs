//! Emergency Controlled Shutdown, the kernel's half (spec §38.6; CT-DEG-17,
//! CT-DEG-18, CT-WAL-07). The pure rules are in [`crate::ecs`].
//!
//! Guarantees:
//! - **Phase 1, halt, is synchronous in the sequencer**: the mode becomes
//!   `emergency` (SAFE-HOLD, degraded modes 4 and 5) before the next request
//!   is read, so from then on every request is refused `KERNEL-ECS`,
//!   observations included; waiting approvals are closed denied, and an
//!   effect already past its decision is refused at its re-check after the
//!   evaluator. Nothing ends it but a restart.
//! - **Phase 2, preserve**: a `kernel.ecs` record when the log can still take
//!   one, and always a forensic report written and synced in
//!   `forensics/ecs-<at_ms>/report.json`, a directory nothing in MAOS deletes.
//! - **Phases 3 and 4**: the rule-based class and its repair
//!   ([`crate::ecs::repair`]), bounded by the phase-4 limit.
//! - **Phase 5, safe restart, is the boot's** ([`boot_history`]): it counts
//!   every shutdown the log or the forensic directory knows, refuses to boot
//!   while one needs the commander's acknowledgement, and observes the first
//!   boot after one.

use super::{Command, KernelHandle, Sequencer, Shared, append};
use crate::ecs::{
    self, CODE_ECS, CODE_ECS_ACK, Counters, ECS_REASON_BYTES_MAX, ECS_REPORT_BYTES_MAX, EcsAck, EcsEntry, EcsTrigger,
    Evidence, FailureClass,
};
use crate::error::KernelError;
use crate::mode::Mode;
use crate::posture::Posture;
use crate::records::{ApprovalOutcome, EcsEvent, EcsRecord, KIND_ECS, RECORD_VERSION};
use maos_crypto::VerifyingKey;
use maos_dsc::KernelHealth;
use maos_wal::Wal;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::oneshot;

/// The forensic report of one shutdown (`report.json`; the commander's
/// acknowledgement signs its SHA3-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsReport {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// `ecs-<at_ms>`.
    pub id: String,
    /// When it began, Unix ms.
    pub at_ms: u64,
    /// What started it.
    pub cause: EcsTrigger,
    /// Phase 3's class.
    pub class: FailureClass,
    /// Phase 4's plan for the class.
    pub repair: String,
    /// What phase 4 did (`None`: nothing automatic).
    pub repaired: Option<String>,
    /// Whether the next boot waits for the commander's acknowledgement (the
    /// class has no automated repair; the abuse limits may add to this at boot).
    pub human_review: bool,
    /// Shutdowns in 24 hours and 7 days, this one included.
    pub counters: Counters,
    /// Phase 4's time limit, ms (60 s; 15 s once flagged).
    pub phase4_timeout_ms: u64,
    /// Approvals that were waiting and were closed denied.
    pub aborted_approvals: u64,
    /// The `kernel.ecs` record (`None`: the log could not take it).
    pub logged_lsn: Option<u64>,
    /// The log's last Lsn and chain hash at the halt.
    pub wal_head: Option<(u64, String)>,
    /// The log's health at the halt.
    pub wal: String,
    /// The canonical state at the halt.
    pub posture: Posture,
    /// The health report the rules read at the halt.
    pub health: KernelHealth,
    /// The directory this report is in (`None`: no forensic directory is configured).
    pub forensics: Option<String>,
}

/// Emergency shutdowns, for `maos status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EcsStatus {
    /// The shutdown under way in this process.
    pub active: Option<EcsReport>,
    /// The shutdown this boot is the safe restart of.
    pub observing: Option<String>,
    /// The end of that observation, Unix ms.
    pub observation_until_ms: Option<u64>,
    /// Shutdowns in 24 hours and 7 days (at boot, or at the last shutdown).
    pub counters: Option<Counters>,
    /// More than four in 7 days: possibly deliberate.
    pub flagged: bool,
}

impl KernelHandle {
    /// A manual emergency controlled shutdown (the operator's): every request
    /// is refused from the moment it returns (phase 1 runs here, before
    /// anything is queued), and the next boot needs the commander's
    /// acknowledgement (the class of a manual shutdown is unknown).
    ///
    /// # Errors
    /// [`KernelError::Refused`] `KERNEL-ECS` when one is already under way,
    /// or when the report is not written within [`ECS_REPORT_WAIT`] (the
    /// halt holds; `maos status` shows the report once it is).
    pub async fn emergency_shutdown(&self, reason: &str) -> Result<EcsReport, KernelError> {
        let reason = maos_model::prefix_within(reason, ECS_REASON_BYTES_MAX).to_owned();
        let trigger = EcsTrigger::Manual { reason };
        let Some((id, at_ms)) = self.shared.halt(&trigger) else {
            let why = self.shared.mode().why().unwrap_or_default().to_owned();
            return Err(KernelError::Refused { code: CODE_ECS, why: format!("already under way: {why}") });
        };
        let (reply, rx) = oneshot::channel();
        let halted = |why: &str| KernelError::Refused { code: CODE_ECS, why: format!("{id} halted; {why}") };
        let command = Command::Emergency { trigger, id: id.clone(), at_ms, reply: Some(reply) };
        self.urgent.send(command).await.map_err(|_| halted("the sequencer is gone: no report"))?;
        match tokio::time::timeout(ECS_REPORT_WAIT, rx).await {
            Ok(Ok(report)) => report,
            Ok(Err(_)) => Err(halted("the report task died")),
            Err(_) => Err(halted("the report is still being written: see maos status")),
        }
    }

    /// What the kernel knows of emergency shutdowns.
    #[must_use]
    pub fn ecs(&self) -> EcsStatus {
        self.shared.ecs.lock().map_or_else(|_| EcsStatus::default(), |s| s.clone())
    }
}

/// How long the operator's call waits for the forensic report.
pub const ECS_REPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Shared {
    /// Phase 1, EMERGENCY_HALT, from any thread: the mode becomes
    /// `emergency` now. Returns the shutdown's id and time, or `None` when
    /// one is already under way. Ids never repeat: the time is after every
    /// earlier shutdown's and names no forensic directory already there.
    pub(super) fn halt(&self, trigger: &EcsTrigger) -> Option<(String, u64)> {
        if matches!(self.mode(), Mode::Emergency { .. }) {
            return None;
        }
        let mut at = self.clock.now().0.max(self.last_ecs_ms.load(Ordering::SeqCst).saturating_add(1));
        for _ in 0..1_000 {
            let taken = self.forensics.as_ref().is_some_and(|root| root.join(ecs::ecs_id(at)).exists());
            if !taken {
                break;
            }
            at = at.saturating_add(1);
        }
        let id = ecs::ecs_id(at);
        tracing::error!(%id, cause = %trigger.describe(), "EMERGENCY_HALT: emergency controlled shutdown");
        if !self.transition(Mode::Emergency { why: format!("{id}: {}", trigger.describe()) }, "ecs") {
            return None;
        }
        self.last_ecs_ms.fetch_max(at, Ordering::SeqCst);
        Some((id, at))
    }
}

impl Sequencer {
    /// Phases 2 to 4 of a shutdown whose halt is done: the waiting approvals
    /// closed, the record, then the report and the repair on a blocking
    /// thread, which answers `reply`.
    pub(super) fn on_emergency(
        &mut self,
        trigger: EcsTrigger,
        id: String,
        at_ms: u64,
        reply: Option<oneshot::Sender<Result<EcsReport, KernelError>>>,
    ) {
        let started = Instant::now();
        let open: Vec<_> = self.pending.keys().copied().collect();
        let aborted = u64::try_from(open.len()).unwrap_or(u64::MAX);
        for approval in open {
            let why = format!("{CODE_ECS}: emergency controlled shutdown {id}");
            if let Err(e) = self.close(approval, ApprovalOutcome::Denied, None, &why) {
                tracing::warn!(%approval, error = %e, "an approval closed by the shutdown could not be logged");
            }
        }
        let inputs = self.shared.watch.health_inputs();
        let class = ecs::classify(&trigger, Evidence { disk_used_pct: inputs.disk_used_pct });
        let mut history: Vec<EcsEntry> = self.state.ecs.iter().cloned().collect();
        history.push(EcsEntry { id: id.clone(), at_ms, class, acknowledged: false, restarted: false });
        let counters = Counters::of(&history, at_ms);
        let event = EcsEvent::Halted {
            id: id.clone(),
            cause: trigger.clone(),
            class,
            aborted_approvals: aborted,
            counters,
            at_ms,
        };
        let logged = match self.log(KIND_ECS, &EcsRecord { v: RECORD_VERSION, event: event.clone() }) {
            Ok(lsn) => {
                self.state.fold_ecs(&event);
                Some(lsn.0)
            }
            Err(e) => {
                tracing::error!(error = %e, "the shutdown could not be logged: its forensic report is the record");
                None
            }
        };
        let plan = ecs::repair(class);
        let report = EcsReport {
            v: RECORD_VERSION,
            id,
            at_ms,
            cause: trigger,
            class,
            repair: plan.plan.to_owned(),
            repaired: None,
            human_review: !plan.automated,
            counters,
            phase4_timeout_ms: counters.phase4_timeout_ms(),
            aborted_approvals: aborted,
            logged_lsn: logged,
            wal_head: self.shared.wal.head().ok().map(|(lsn, hash)| (lsn.0, hash.to_hex())),
            wal: format!("{:?}", self.shared.wal.health()),
            posture: self.shared.posture.lock().map_or_else(
                |_| Posture {
                    state: crate::posture::CanonicalState::SafeHold,
                    modes: vec![],
                    why: vec!["state lock poisoned".into()],
                    human_ack: true,
                },
                |p| p.clone(),
            ),
            health: self.shared.health(),
            forensics: None,
        };
        let (shared, commit) = (self.shared.clone(), self.commit.clone());
        tokio::task::spawn_blocking(move || {
            let report = preserve_and_repair(&shared, &commit, report, started);
            if let Some(tx) = reply {
                let _ = tx.send(Ok(report));
            }
        });
    }
}

/// Phases 2 (the forensic report) and 4 (the class's repair), then the
/// status; the report is written again once phase 4 is done.
fn preserve_and_repair(
    shared: &Shared,
    commit: &maos_commit::CommitLayer,
    mut report: EcsReport,
    started: Instant,
) -> EcsReport {
    let dir = shared.forensics.as_ref().map(|root| root.join(&report.id));
    report.forensics = dir.as_ref().map(|d| d.display().to_string());
    match &dir {
        Some(dir) => {
            if let Err(e) = write_report(dir, &report) {
                tracing::error!(dir = %dir.display(), error = %e, "the forensic report could not be written");
            }
        }
        None => tracing::error!(id = %report.id, "no forensic directory is configured: the report is only in the log"),
    }
    if report.class == FailureClass::ResourceExhaustion {
        let deadline = std::time::Duration::from_millis(report.phase4_timeout_ms);
        report.repaired = Some(match commit.rollback_zone().purge_expired(shared.clock.now()) {
            Ok(n) if started.elapsed() <= deadline => format!("{n} expired rollback snapshots purged"),
            Ok(n) => format!("{n} expired rollback snapshots purged, past the phase-4 limit"),
            Err(e) => format!("the purge failed: {e}"),
        });
        if let Some(dir) = &dir
            && let Err(e) = write_report(dir, &report)
        {
            tracing::error!(dir = %dir.display(), error = %e, "the forensic report could not be rewritten");
        }
    }
    tracing::error!(
        id = %report.id,
        class = ?report.class,
        human_review = report.human_review,
        forensics = report.forensics.as_deref().unwrap_or("none"),
        "emergency controlled shutdown complete: SAFE-HOLD until a restart"
    );
    if let Ok(mut s) = shared.ecs.lock() {
        s.counters = Some(report.counters);
        s.flagged = report.counters.flagged();
        s.active = Some(report.clone());
    }
    report
}

/// Creates `dir` (and its parents) with owner-only access.
pub(super) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `report.json` (and syncs it and the directory) with owner-only access.
fn write_report(dir: &Path, report: &EcsReport) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let bytes = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    let tmp = dir.join("report.json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join("report.json"))?;
    std::fs::File::open(dir)?.sync_all()?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The fields of a report the boot reads (a report from another version
/// still counts).
#[derive(Deserialize)]
struct ReportHead {
    id: String,
    cause: EcsTrigger,
    class: FailureClass,
    counters: Counters,
}

/// What the boot found: every shutdown, and the records the log lacks.
pub(super) struct BootHistory {
    pub entries: Vec<EcsEntry>,
    /// Shutdowns only the forensic directory knew, and acknowledgements found
    /// beside their reports: logged once the boot goes ahead.
    pub to_log: Vec<EcsEvent>,
}

/// Merges the shutdowns the log recorded with the forensic directory's, and
/// verifies each acknowledgement there under the commander's key (one that
/// does not verify counts as none, and says why).
pub(super) fn boot_history(
    logged: &std::collections::VecDeque<EcsEntry>,
    forensics: Option<&Path>,
    commander: &VerifyingKey,
    now_ms: u64,
) -> BootHistory {
    let mut entries: Vec<EcsEntry> = logged.iter().cloned().collect();
    let mut to_log = Vec::new();
    for (at_ms, dir) in forensic_dirs(forensics) {
        let id = ecs::ecs_id(at_ms);
        let raw = read_bounded(&dir.join("report.json"));
        let head = raw.as_ref().and_then(|b| serde_json::from_slice::<ReportHead>(b).ok()).filter(|h| h.id == id);
        if !entries.iter().any(|e| e.id == id) {
            let (cause, class, counters) = head.as_ref().map_or_else(
                || {
                    let why = "the forensic report is missing or unreadable".to_owned();
                    (EcsTrigger::Unrecorded { why }, FailureClass::Unknown, Counters { in_24h: 0, in_7d: 0 })
                },
                |h| (h.cause.clone(), h.class, h.counters),
            );
            // Only the directory knows of it: its report is not signed, so
            // whatever class it states, the gate treats it as unknown (a
            // human looks), and logs the report's own word once acknowledged.
            entries.push(EcsEntry {
                id: id.clone(),
                at_ms,
                class: FailureClass::Unknown,
                acknowledged: false,
                restarted: false,
            });
            to_log.push(EcsEvent::Halted { id: id.clone(), cause, class, aborted_approvals: 0, counters, at_ms });
        }
        let Some(entry) = entries.iter_mut().find(|e| e.id == id) else { continue };
        if entry.acknowledged {
            continue;
        }
        // A report that cannot be read is acknowledged as empty bytes: the
        // commander can still let the node boot after reading what is left.
        if let Some(ack) = read_bounded(&dir.join("ack.json")) {
            match verify_ack(&id, raw.as_deref().unwrap_or_default(), &ack, commander) {
                Ok(ack) => {
                    entry.acknowledged = true;
                    to_log.push(EcsEvent::Acknowledged {
                        id: id.clone(),
                        key_id: commander.key_id().to_hex(),
                        report_sha3: ack.report_sha3,
                        at_ms: now_ms,
                    });
                }
                Err(why) => tracing::error!(%id, %why, "{CODE_ECS_ACK}: the acknowledgement does not count"),
            }
        }
    }
    // No truncation: the gate sees every shutdown (the directory listing is
    // bounded by `FORENSIC_DIRS_MAX`), so forged newer entries cannot push
    // an unacknowledged one out.
    entries.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    BootHistory { entries, to_log }
}

/// Checks an `ack.json` against the report it names and the commander's key.
///
/// # Errors
/// Why it does not count.
pub fn verify_ack(id: &str, report: &[u8], ack: &[u8], commander: &VerifyingKey) -> Result<EcsAck, String> {
    use base64::Engine as _;
    let ack: EcsAck = serde_json::from_slice(ack).map_err(|e| format!("ack.json does not decode: {e}"))?;
    let sha3 = maos_crypto::sha3_256(report).0;
    if ack.id != id || ack.report_sha3 != crate::records::hex32(&sha3) {
        return Err(format!("it acknowledges {} with another report than this one", ack.id));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(ack.signature.as_bytes())
        .map_err(|e| format!("signature is not base64: {e}"))?;
    let signature = maos_crypto::Signature::from_bytes(&bytes).map_err(|e| e.to_string())?;
    commander
        .verify(maos_crypto::SignatureDomain::EmergencyAcknowledgement, &ecs::ack_message(id, &sha3), &signature)
        .map_err(|e| format!("the commander's signature does not verify: {e}"))?;
    Ok(ack)
}

/// Forensic directories read, at most (the newest by their time).
pub const FORENSIC_DIRS_MAX: usize = 4096;

/// The `ecs-<at_ms>` directories under `root`, oldest first, at most
/// [`FORENSIC_DIRS_MAX`] (the newest). Entries that are not plain
/// directories (a symlink) are skipped.
#[must_use]
pub fn forensic_dirs(root: Option<&Path>) -> Vec<(u64, PathBuf)> {
    let Some(Ok(read)) = root.map(std::fs::read_dir) else { return Vec::new() };
    let mut found: Vec<(u64, PathBuf)> = read
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let at = name.to_str()?.strip_prefix("ecs-")?.parse::<u64>().ok()?;
            e.file_type().ok()?.is_dir().then(|| (at, e.path()))
        })
        .collect();
    found.sort_unstable();
    let extra = found.len().saturating_sub(FORENSIC_DIRS_MAX);
    if extra > 0 {
        tracing::error!(extra, "more than {FORENSIC_DIRS_MAX} forensic directories: only the newest are read");
    }
    found.drain(..extra);
    found
}

/// Reads a regular file of at most [`ECS_REPORT_BYTES_MAX`] bytes; a
/// symlink, a device, a FIFO or a larger file reads as none.
#[must_use]
pub fn read_bounded(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(ECS_REPORT_BYTES_MAX.saturating_add(1)).read_to_end(&mut bytes).ok()?;
    (u64::try_from(bytes.len()).unwrap_or(u64::MAX) <= ECS_REPORT_BYTES_MAX).then_some(bytes)
}

/// Logs what the boot found (best effort would hide a shutdown: an error stops the boot).
pub(super) fn log_boot_events(wal: &Wal, events: Vec<EcsEvent>) -> Result<(), KernelError> {
    for event in events {
        append(wal, KIND_ECS, &EcsRecord { v: RECORD_VERSION, event }).map_err(KernelError::Freeze)?;
    }
    Ok(())
}
