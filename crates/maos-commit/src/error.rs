//! Typed errors with stable codes (`COMMIT-…`, `EFFECT-…`, `AUTHZ-…`,
//! `UNDO-…`), documented in `docs/commit-layer.md`.

use maos_model::{IntentId, UnixMillis};
use std::fmt;

/// Why an effector refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectError {
    /// `EFFECT-INVALID`: the intent does not carry what the action needs.
    #[error("invalid intent for this effect: {0}")]
    Invalid(String),
    /// `EFFECT-UNKNOWN-ACTION`: the effector has no such action.
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    /// `EFFECT-PATH-ESCAPE`: a path leaves the configured root.
    #[error("path `{0}` escapes the effector root")]
    PathEscape(String),
    /// `EFFECT-SYMLINK`: a write or delete would go through a final symlink.
    #[error("refusing to write through the symlink `{0}`")]
    Symlink(String),
    /// `EFFECT-NOT-FOUND`: the target does not exist.
    #[error("`{0}` does not exist")]
    NotFound(String),
    /// `EFFECT-NOT-REGULAR`: the target is a fifo, device or socket; reading
    /// one could block an effect thread forever, so it is refused before any read.
    #[error("`{0}` is not a regular file (fifo, device or socket)")]
    NotRegular(String),
    /// `EFFECT-DOMAIN`: the host is not allow-listed (or a redirect left the list).
    #[error("host `{0}` is not allow-listed")]
    Domain(String),
    /// `EFFECT-TOO-LARGE`: a file, response or snapshot exceeds its bound.
    #[error("{what} exceeds its limit of {max} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// `EFFECT-BUSY`: a bounded resource of the Commit Layer is full (see the limit named).
    #[error("{what} are at their limit of {max}; try again later")]
    Busy {
        /// What is full.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// `EFFECT-IO`: a local I/O error.
    #[error("i/o error: {0}")]
    Io(String),
    /// `EFFECT-REMOTE`: the remote side failed or answered with an error status.
    #[error("remote error: {0}")]
    Remote(String),
    /// `EFFECT-CANCELLED`: the execution passed its deadline or was cancelled.
    #[error("execution cancelled (deadline passed)")]
    Cancelled,
    /// `EFFECT-NOT-COMPENSABLE`: the effect cannot be recalled.
    #[error("the effect cannot be compensated: {0}")]
    NotCompensable(String),
    /// `EFFECT-ALREADY-RELEASED`: a held message already left the outbox.
    #[error("message `{0}` was already released from the outbox")]
    AlreadyReleased(String),
    /// `EFFECT-RECALLED`: the message for this intent was recalled; it is never sent.
    #[error("message `{0}` was recalled")]
    Recalled(String),
    /// `EFFECT-INJECTED`: a fault injected by a test or the simulator.
    #[error("injected fault: {0}")]
    Injected(String),
    /// `CIRCUIT-OPEN`: the remote failed repeatedly and its circuit breaker
    /// is open; the call was not made.
    #[error("{0}")]
    CircuitOpen(String),
}

impl EffectError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "EFFECT-INVALID",
            Self::UnknownAction(_) => "EFFECT-UNKNOWN-ACTION",
            Self::PathEscape(_) => "EFFECT-PATH-ESCAPE",
            Self::Symlink(_) => "EFFECT-SYMLINK",
            Self::NotFound(_) => "EFFECT-NOT-FOUND",
            Self::NotRegular(_) => "EFFECT-NOT-REGULAR",
            Self::Domain(_) => "EFFECT-DOMAIN",
            Self::TooLarge { .. } => "EFFECT-TOO-LARGE",
            Self::Busy { .. } => "EFFECT-BUSY",
            Self::Io(_) => "EFFECT-IO",
            Self::Remote(_) => "EFFECT-REMOTE",
            Self::Cancelled => "EFFECT-CANCELLED",
            Self::NotCompensable(_) => "EFFECT-NOT-COMPENSABLE",
            Self::AlreadyReleased(_) => "EFFECT-ALREADY-RELEASED",
            Self::Recalled(_) => "EFFECT-RECALLED",
            Self::Injected(_) => "EFFECT-INJECTED",
            Self::CircuitOpen(_) => crate::breaker::CODE_CIRCUIT_OPEN,
        }
    }

    /// Whether this error says the remote is unavailable (it counts against
    /// its circuit breaker): no answer in time, no connection, a server
    /// error. An error answer about the request (a 4xx) is an answer.
    #[must_use]
    pub fn unavailable(&self) -> bool {
        match self {
            Self::Remote(why) => !why.starts_with("status 4"),
            Self::Cancelled => true,
            _ => false,
        }
    }

    /// An I/O error with its kind only (no path: paths may be agent-chosen).
    pub(crate) fn io(context: &str, e: &std::io::Error) -> Self {
        Self::Io(format!("{context}: {}", e.kind()))
    }
}

/// Why a DSC decision does not authorize a commit (Rule 6, CT-CL-02). Every
/// variant means deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// `AUTHZ-NOT-ALLOW`: the verdict is Deny or Escalate.
    #[error("the DSC verdict is `{0}`, not allow")]
    NotAllow(&'static str),
    /// `AUTHZ-INCONSISTENT`: the verdict does not follow from the check results,
    /// the instances diverged, or a vote was not allow (a forged or damaged decision).
    #[error("the decision is inconsistent: {0}")]
    Inconsistent(&'static str),
    /// `AUTHZ-MISMATCH`: the decision was made for a different agent or cost.
    #[error("the decision does not belong to this intent: {0}")]
    Mismatch(&'static str),
    /// `AUTHZ-STALE`: the decision was made under another DSC configuration.
    #[error("the decision was made under another DSC configuration")]
    StaleConfig,
    /// `AUTHZ-NOT-ESCALATED`: an approval was offered for a decision that is not Escalate.
    #[error("the decision is not an escalation; an approval cannot apply")]
    NotEscalated,
    /// `AUTHZ-APPROVAL-EXPIRED`: the human approval expired.
    #[error("the approval has expired")]
    ApprovalExpired,
    /// `AUTHZ-APPROVAL-SIGNATURE`: the approval is not signed by the commander key.
    #[error("the approval signature does not verify under the commander key")]
    ApprovalSignature,
    /// `AUTHZ-INVALID-INTENT`: the intent fails the sanitizer's bounds.
    #[error("the intent is invalid: {0}")]
    InvalidIntent(String),
}

impl AuthorizeError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NotAllow(_) => "AUTHZ-NOT-ALLOW",
            Self::Inconsistent(_) => "AUTHZ-INCONSISTENT",
            Self::Mismatch(_) => "AUTHZ-MISMATCH",
            Self::StaleConfig => "AUTHZ-STALE",
            Self::NotEscalated => "AUTHZ-NOT-ESCALATED",
            Self::ApprovalExpired => "AUTHZ-APPROVAL-EXPIRED",
            Self::ApprovalSignature => "AUTHZ-APPROVAL-SIGNATURE",
            Self::InvalidIntent(_) => "AUTHZ-INVALID-INTENT",
        }
    }
}

/// The seven stages of the commit pipeline (spec §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// 1: durable WAL record of the intent (Rule 8).
    WalRecord,
    /// 2: per-resource locks and the OCC check.
    Occ,
    /// 3: Rollback Zone snapshot (Rule 5).
    Snapshot,
    /// 4: the external effect.
    Execute,
    /// 5: durable result record; locks released.
    Record,
    /// 6: the commit event to subscribers.
    Publish,
    /// 7: done.
    Complete,
}

impl Stage {
    /// All stages in order.
    pub const ALL: [Self; 7] =
        [Self::WalRecord, Self::Occ, Self::Snapshot, Self::Execute, Self::Record, Self::Publish, Self::Complete];

    /// The stage number 1..=7.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::WalRecord => 1,
            Self::Occ => 2,
            Self::Snapshot => 3,
            Self::Execute => 4,
            Self::Record => 5,
            Self::Publish => 6,
            Self::Complete => 7,
        }
    }

    /// Short name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::WalRecord => "wal_record",
            Self::Occ => "occ",
            Self::Snapshot => "snapshot",
            Self::Execute => "execute",
            Self::Record => "record",
            Self::Publish => "publish",
            Self::Complete => "complete",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.number(), self.name())
    }
}

/// Why a stage failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailReason {
    /// `COMMIT-UNAUTHORIZED`: no valid DSC authorization (Rule 6).
    #[error("not authorized: {0}")]
    Unauthorized(#[from] AuthorizeError),
    /// `COMMIT-WAL`: the WAL refused or failed an append (incl. commit freeze).
    #[error("write-ahead log: {0}")]
    Wal(String),
    /// `COMMIT-NO-EFFECTOR`: no effector serves the action.
    #[error("no effector serves `{0}`")]
    NoEffector(String),
    /// `COMMIT-CLASS-MISMATCH`: the intent declared a weaker effect class than
    /// the effector's; the DSC decided on the wrong class, so it must decide again.
    #[error("declared effect class `{declared}` is weaker than the action's `{actual}`")]
    ClassMismatch {
        /// What the intent said.
        declared: &'static str,
        /// What the effector says.
        actual: &'static str,
    },
    /// `COMMIT-LOCK-BUSY`: another commit held a resource for the whole wait.
    #[error("resource `{0}` is locked by another commit")]
    LockBusy(String),
    /// `COMMIT-LOCK-PAUSED`: the agent rolled back on this resource too often
    /// (5 acquire→rollback cycles in 10 minutes, CT-CL-06).
    #[error("the agent is paused on this resource after repeated lock-and-rollback cycles")]
    LockPaused,
    /// `COMMIT-LOCK-TABLE-FULL`: the lock table is at its bound.
    #[error("the lock table is full")]
    LockTableFull,
    /// `COMMIT-OCC-CONFLICT`: the world state changed since the agent planned (CT-CL-03).
    #[error("concurrency conflict: the target changed since the intent was created; re-read and resubmit")]
    OccConflict,
    /// `COMMIT-ROLLBACK-ZONE`: the snapshot could not be stored (Rule 5).
    #[error("rollback zone: {0}")]
    RollbackZone(String),
    /// `COMMIT-LOCK-TIMEOUT`: execution outlived the lock timeout (CT-CL-05).
    #[error("execution exceeded the lock timeout of {timeout_ms} ms")]
    LockTimeout {
        /// The timeout.
        timeout_ms: u64,
    },
    /// `COMMIT-EFFECT`: the effector failed; its own code is inside.
    #[error("effect failed ({code}): {0}", code = .0.code())]
    Effect(EffectError),
    /// `COMMIT-INJECTED`: a fault injected by a test or the simulator.
    #[error("injected fault at this stage")]
    Injected,
}

impl FailReason {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "COMMIT-UNAUTHORIZED",
            Self::Wal(_) => "COMMIT-WAL",
            Self::NoEffector(_) => "COMMIT-NO-EFFECTOR",
            Self::ClassMismatch { .. } => "COMMIT-CLASS-MISMATCH",
            Self::LockBusy(_) => "COMMIT-LOCK-BUSY",
            Self::LockPaused => "COMMIT-LOCK-PAUSED",
            Self::LockTableFull => "COMMIT-LOCK-TABLE-FULL",
            Self::OccConflict => "COMMIT-OCC-CONFLICT",
            Self::RollbackZone(_) => "COMMIT-ROLLBACK-ZONE",
            Self::LockTimeout { .. } => "COMMIT-LOCK-TIMEOUT",
            Self::Effect(_) => "COMMIT-EFFECT",
            Self::Injected => "COMMIT-INJECTED",
        }
    }
}

/// What happened to the state after a failure.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "rollback")]
pub enum Rollback {
    /// Nothing had changed (the failure came before execution).
    NotNeeded,
    /// The snapshot was restored.
    Restored,
    /// The effect cannot be recalled (irreversible); the operator is told.
    NotPossible {
        /// Why.
        why: String,
    },
    /// Restoring failed; the operator must look (the record says so).
    Failed {
        /// Why.
        why: String,
    },
    /// Left as it is: the log failed while recording the result, so whether the
    /// result record is durable is unknown. Rolling back could contradict a
    /// record that did land; crash recovery probes the effect on restart and
    /// records what it finds (the kernel is in commit freeze meanwhile).
    Deferred {
        /// Why.
        why: String,
    },
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotNeeded => f.write_str("not needed"),
            Self::Restored => f.write_str("restored to the snapshot"),
            Self::NotPossible { why } => write!(f, "not possible ({why})"),
            Self::Failed { why } => write!(f, "FAILED ({why})"),
            Self::Deferred { why } => write!(f, "deferred to crash recovery ({why})"),
        }
    }
}

/// A commit that did not complete: where, why, and what the state is now
/// (CT-CL-08: the agent is told why; the failure is in the WAL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commit of {intent} failed at stage {stage}: {reason}; rollback: {rollback}")]
pub struct CommitError {
    /// The intent.
    pub intent: IntentId,
    /// The stage that failed.
    pub stage: Stage,
    /// Why.
    pub reason: FailReason,
    /// What happened to the state.
    pub rollback: Rollback,
    /// Whether the failure record reached the WAL (false when the WAL itself failed).
    pub failure_logged: bool,
}

impl CommitError {
    /// The stable code of the reason.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.reason.code()
    }
}

/// Why an undo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    /// `UNDO-NOT-FOUND`: no snapshot for this intent (never committed, an
    /// observation, or archived after its hold period).
    #[error("no rollback snapshot for intent {0}")]
    NotFound(IntentId),
    /// `UNDO-HOLD-EXPIRED`: the hold period is over (spec §35).
    #[error("the hold period of intent {intent} ended at {hold_until}")]
    HoldExpired {
        /// The intent.
        intent: IntentId,
        /// When the hold ended.
        hold_until: UnixMillis,
    },
    /// `UNDO-ALREADY`: the intent was already undone.
    #[error("intent {0} was already undone")]
    AlreadyUndone(IntentId),
    /// `UNDO-NOT-COMMITTED`: the intent has no successful commit to undo.
    #[error("intent {0} did not commit")]
    NotCommitted(IntentId),
    /// `UNDO-NOT-COMPENSABLE`: the effect cannot be recalled.
    #[error("intent {0} cannot be undone: the effect is irreversible")]
    NotCompensable(IntentId),
    /// `UNDO-EFFECT`: the effector could not restore the snapshot.
    #[error("undo failed ({code}): {0}", code = .0.code())]
    Effect(EffectError),
    /// `UNDO-LOCK`: the resource stayed locked by another commit.
    #[error("undo could not lock the resource: {0}")]
    Lock(String),
    /// `UNDO-WAL`: the undo record could not be logged (the undo was not done).
    #[error("write-ahead log: {0}")]
    Wal(String),
    /// `UNDO-ZONE`: the Rollback Zone could not be read or updated.
    #[error("rollback zone: {0}")]
    Zone(String),
}

impl UndoError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "UNDO-NOT-FOUND",
            Self::HoldExpired { .. } => "UNDO-HOLD-EXPIRED",
            Self::AlreadyUndone(_) => "UNDO-ALREADY",
            Self::NotCommitted(_) => "UNDO-NOT-COMMITTED",
            Self::NotCompensable(_) => "UNDO-NOT-COMPENSABLE",
            Self::Effect(_) => "UNDO-EFFECT",
            Self::Lock(_) => "UNDO-LOCK",
            Self::Wal(_) => "UNDO-WAL",
            Self::Zone(_) => "UNDO-ZONE",
        }
    }
}

/// Why a mail release step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// `RELEASE-EFFECT`: the Maildir could not be read or written.
    #[error("release failed ({code}): {0}", code = .0.code())]
    Effect(EffectError),
    /// `RELEASE-WAL`: a release record could not be logged; a message whose
    /// record before release failed stays held.
    #[error("a release record could not be logged (unlogged messages stay held): {0}")]
    Wal(String),
}

impl ReleaseError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Effect(_) => "RELEASE-EFFECT",
            Self::Wal(_) => "RELEASE-WAL",
        }
    }
}

/// Why a Commit Layer could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// `OPEN-ROLLBACK-ZONE`: the Rollback Zone directory cannot be created or read.
    #[error("rollback zone: {0}")]
    RollbackZone(String),
}

impl OpenError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::RollbackZone(_) => "OPEN-ROLLBACK-ZONE",
        }
    }
}

/// Why crash recovery could not run (the kernel stays in RECOVERY-HOLD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    /// `RECOVERY-WAL`: the WAL could not be read.
    #[error("reading the write-ahead log: {0}")]
    Wal(String),
    /// `RECOVERY-LIMIT`: more unfinished intents than recovery will hold.
    #[error("more than {max} unfinished intents in the log")]
    TooManyPending {
        /// The limit.
        max: usize,
    },
}

impl RecoveryError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Wal(_) => "RECOVERY-WAL",
            Self::TooManyPending { .. } => "RECOVERY-LIMIT",
        }
    }
}
