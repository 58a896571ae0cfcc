//! Crash recovery (spec §14.2, §38.11; CT-WAL-03, CT-WAL-04): finishes every
//! intent the WAL shows as logged but not terminal, without repeating an effect.

use crate::effector::Probe;
use crate::error::{FailReason, RecoveryError, Rollback, Stage};
use crate::pipeline::{CommitLayer, Origin};
use crate::records::{self, CommitRecord, FailedRecord, KIND_FAILED, KIND_RESULT, RECORD_VERSION, ResultRecord};
use maos_model::{EffectClass, Intent, IntentId, UnixMillis};
use std::collections::BTreeMap;

/// Unfinished intents recovery will hold in memory: a log damaged into
/// millions of open intents cannot exhaust memory at boot.
pub const RECOVERY_PENDING_MAX: usize = 1_000_000;

/// What recovery did for one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryAction {
    /// `written`: never started; ran through stages 2–7 now.
    Executed,
    /// `executing`: the probe found the effect in place; the result is recorded.
    ProbedDone,
    /// `executing`: the probe found nothing; executed now (idempotently).
    ProbedNotDoneExecuted,
    /// `executing`: the probe could not tell; rolled back to the snapshot and failed.
    RolledBack(Rollback),
    /// An observation interrupted by the crash: recorded as failed, not repeated
    /// (the agent that asked is gone).
    ObservationAbandoned,
    /// Recovery tried and the commit failed (the failure is recorded).
    Failed {
        /// Stable code.
        code: &'static str,
    },
}

/// The outcome of [`CommitLayer::recover`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Commit records read.
    pub records_read: u64,
    /// Intents that were already terminal (committed or failed).
    pub already_terminal: u64,
    /// Each unfinished intent and what recovery did, in log order.
    pub recovered: Vec<(IntentId, RecoveryAction)>,
    /// Commit records whose payload did not parse (Lsn and why); the kernel
    /// should stay in RECOVERY-HOLD and alert when this is not empty.
    pub damaged: Vec<(u64, String)>,
}

/// An intent the log shows as logged but not terminal.
pub struct Pending {
    /// The intent as logged at stage 1.
    pub intent: Intent,
    /// Its effect class.
    pub class: EffectClass,
    /// Whether stage 4 (`executing`) was logged: the effect may have happened.
    pub executing: bool,
}

/// The commit records of a log, folded: what [`CommitLayer::recover`]
/// finishes, and what retention must not cut while it is open.
#[derive(Default)]
pub struct Unfinished {
    /// Unfinished intents, in log order.
    pub pending: Vec<Pending>,
    /// Commit records read.
    pub records_read: u64,
    /// Intents that were already terminal (committed or failed).
    pub already_terminal: u64,
    /// Commit records whose payload did not parse (Lsn and why).
    pub damaged: Vec<(u64, String)>,
}

/// Folds the commit records of `reader`'s log into the unfinished intents.
///
/// # Errors
/// [`RecoveryError::Wal`] if the log cannot be read,
/// [`RecoveryError::TooManyPending`] past [`RECOVERY_PENDING_MAX`].
pub fn unfinished(reader: &maos_wal::LogReader) -> Result<Unfinished, RecoveryError> {
    let mut fold = Unfinished::default();
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut lsn_of: BTreeMap<IntentId, u64> = BTreeMap::new();
    for record in reader.records().map_err(|e| RecoveryError::Wal(e.to_string()))? {
        let record = record.map_err(|e| RecoveryError::Wal(e.to_string()))?;
        let Some(decoded) = CommitRecord::decode(record.kind, &record.payload) else { continue };
        fold.records_read = fold.records_read.saturating_add(1);
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                fold.damaged.push((record.lsn.0, e));
                continue;
            }
        };
        match decoded {
            CommitRecord::Intent(r) => {
                if pending.len() >= RECOVERY_PENDING_MAX {
                    return Err(RecoveryError::TooManyPending { max: RECOVERY_PENDING_MAX });
                }
                lsn_of.insert(r.intent.id, record.lsn.0);
                pending.insert(record.lsn.0, Pending { intent: r.intent, class: r.class, executing: false });
            }
            CommitRecord::Executing(r) => {
                if let Some(p) = lsn_of.get(&r.intent).and_then(|l| pending.get_mut(l)) {
                    p.executing = true;
                }
            }
            CommitRecord::Result(ResultRecord { intent, .. }) | CommitRecord::Failed(FailedRecord { intent, .. }) => {
                if let Some(l) = lsn_of.remove(&intent) {
                    pending.remove(&l);
                    fold.already_terminal = fold.already_terminal.saturating_add(1);
                }
            }
            CommitRecord::Undone(_) | CommitRecord::Released(_) | CommitRecord::Releasing(_) => {}
        }
    }
    fold.pending = pending.into_values().collect();
    Ok(fold)
}

impl CommitLayer {
    /// Reads the whole WAL and finishes every unfinished intent: `written` →
    /// executed; `executing` → probed, then finished or rolled back. Run once at
    /// boot, before new intents (the kernel stays in RECOVERY-HOLD meanwhile).
    ///
    /// # Errors
    /// [`RecoveryError::Wal`] if the WAL cannot be read,
    /// [`RecoveryError::TooManyPending`] past [`RECOVERY_PENDING_MAX`].
    pub fn recover(&self, now: UnixMillis) -> Result<RecoveryReport, RecoveryError> {
        let fold = unfinished(&self.wal().reader())?;
        let mut report = RecoveryReport {
            records_read: fold.records_read,
            already_terminal: fold.already_terminal,
            recovered: Vec::new(),
            damaged: fold.damaged,
        };
        for p in fold.pending {
            let action = self.recover_one(&p, now);
            report.recovered.push((p.intent.id, action));
        }
        Ok(report)
    }

    fn recover_one(&self, p: &Pending, now: UnixMillis) -> RecoveryAction {
        let intent = &p.intent;
        if p.class == EffectClass::Observe {
            let reason = "the kernel stopped before the observation finished";
            let record = FailedRecord {
                v: RECORD_VERSION,
                intent: intent.id,
                stage: Stage::Execute,
                code: "COMMIT-INTERRUPTED".into(),
                reason: reason.into(),
                rollback: Rollback::NotNeeded,
                recovered: true,
            };
            if let Err(e) = records::encode(&record).and_then(|b| self.append(KIND_FAILED, &b)) {
                return RecoveryAction::Failed { code: leak_code(&e) };
            }
            return RecoveryAction::ObservationAbandoned;
        }
        if !p.executing {
            return match self.run(intent, p.class, now, Origin::Recovery) {
                Ok(_) => RecoveryAction::Executed,
                Err(e) => RecoveryAction::Failed { code: e.code() },
            };
        }
        let Some(effector) = self.effectors().route(&intent.action).cloned() else {
            return RecoveryAction::Failed { code: FailReason::NoEffector(String::new()).code() };
        };
        match effector.probe(intent) {
            Ok(Probe::Done(output)) => {
                let record = ResultRecord {
                    v: RECORD_VERSION,
                    intent: intent.id,
                    output_hash: records::hex32(&maos_crypto::sha3_256(&output.body).0),
                    output_len: u64::try_from(output.body.len()).unwrap_or(u64::MAX),
                    label: output.label,
                    summary: output.summary,
                    recovered: true,
                };
                match records::encode(&record).and_then(|b| self.append(KIND_RESULT, &b)) {
                    Ok(_) => RecoveryAction::ProbedDone,
                    Err(e) => RecoveryAction::Failed { code: leak_code(&e) },
                }
            }
            Ok(Probe::NotDone) => match self.run(intent, p.class, now, Origin::Recovery) {
                Ok(_) => RecoveryAction::ProbedNotDoneExecuted,
                Err(e) => RecoveryAction::Failed { code: e.code() },
            },
            Ok(Probe::Unknown) | Err(_) => {
                let rollback = match self.rollback_zone().load(intent.id) {
                    Ok(Some((_, snapshot, _))) => match snapshot.compensable {
                        crate::effector::Compensable::No => {
                            Rollback::NotPossible { why: "irreversible effect with unknown outcome".into() }
                        }
                        crate::effector::Compensable::Yes => match effector.compensate(intent, &snapshot) {
                            Ok(()) => Rollback::Restored,
                            Err(e) => Rollback::Failed { why: e.to_string() },
                        },
                    },
                    Ok(None) => Rollback::Failed { why: "no snapshot in the rollback zone".into() },
                    Err(e) => Rollback::Failed { why: e },
                };
                let record = FailedRecord {
                    v: RECORD_VERSION,
                    intent: intent.id,
                    stage: Stage::Execute,
                    code: "COMMIT-INTERRUPTED".into(),
                    reason: "crashed during execution and the outcome could not be probed".into(),
                    rollback: rollback.clone(),
                    recovered: true,
                };
                match records::encode(&record).and_then(|b| self.append(KIND_FAILED, &b)) {
                    Ok(_) => RecoveryAction::RolledBack(rollback),
                    Err(e) => RecoveryAction::Failed { code: leak_code(&e) },
                }
            }
        }
    }
}

/// Recovery failures to log are WAL failures; the message is in the tracing log.
fn leak_code(message: &str) -> &'static str {
    tracing::error!(error = %message, "recovery could not write a commit record");
    "COMMIT-WAL"
}
