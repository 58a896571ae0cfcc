//! Kernel errors, each with a stable code (`docs/kernel.md`).

use maos_model::{AgentId, IntentId};

/// Why the kernel could not start, or could not take or finish a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// `KERNEL-BUSY`: the submission queue is full; retry later.
    #[error("the kernel queue is full ({capacity} waiting); retry later")]
    Busy {
        /// The queue bound.
        capacity: usize,
    },
    /// `KERNEL-STOPPED`: the sequencer is not running.
    #[error("the kernel is not running")]
    Stopped,
    /// `KERNEL-LOG-READ`: the WAL could not be read while rebuilding state.
    #[error("cannot read the log: {0}")]
    LogRead(String),
    /// `KERNEL-LOG-CORRUPT`: a kernel or token record does not decode or apply
    /// (fail closed: a log we cannot fold is one someone may have edited).
    #[error("log record at lsn {lsn} cannot be folded: {why}")]
    LogCorrupt {
        /// The record.
        lsn: u64,
        /// Why.
        why: String,
    },
    /// `KERNEL-FREEZE`: the WAL refused a durable write.
    #[error("the write-ahead log refused a durable write: {0}")]
    Freeze(String),
    /// `KERNEL-RECORD-TOO-LARGE`: the record is over the WAL's payload bound
    /// (refused on its own; the kernel does not freeze).
    #[error("record refused by the log's size bounds: {0}")]
    RecordTooLarge(String),
    /// `KERNEL-APPROVAL-UNKNOWN`: no open approval packet with this id.
    #[error("no open approval `{0}`")]
    UnknownApproval(IntentId),
    /// `KERNEL-NOT-QUARANTINED`: the agent has no danger signal to release.
    #[error("agent `{0}` is not in quarantine and has no danger signal")]
    NotQuarantined(AgentId),
    /// `KERNEL-APPROVAL-EXPIRED`: the packet expired (the intent is denied).
    #[error("approval `{0}` expired; the intent is denied")]
    ApprovalExpired(IntentId),
    /// `KERNEL-APPROVAL-REJECTED`: the signed decision does not verify or does
    /// not match the packet; the packet stays open.
    #[error("approval rejected ({code}): {why}")]
    ApprovalRejected {
        /// The Commit Layer's authorization code (e.g. `CL-APPROVAL-SIGNATURE`).
        code: &'static str,
        /// Why.
        why: String,
    },
    /// The kernel's mode refuses effects (code from [`crate::Mode::effect_refusal`]).
    #[error("refused ({code}): {why}")]
    Refused {
        /// Stable code.
        code: &'static str,
        /// Why.
        why: String,
    },
    /// `KERNEL-NO-RUNTIME`: started outside a tokio runtime.
    #[error("the kernel must be started inside a tokio runtime")]
    NoRuntime,
    /// The Commit Layer refused or failed an undo (its `CL-…` code: hold period
    /// over, already undone, irreversible, no such intent...).
    #[error("undo refused ({code}): {why}")]
    Undo {
        /// The Commit Layer's stable code.
        code: &'static str,
        /// Why.
        why: String,
    },
    /// `KERNEL-TOKEN-EVENT`: a token event does not apply to the registry.
    #[error("token event rejected: {0}")]
    TokenEvent(String),
    /// `KERNEL-NO-FEVER`: the commander asked to end a security fever, and none is on.
    #[error("no security fever is on")]
    NoFever,
}

impl KernelError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Busy { .. } => "KERNEL-BUSY",
            Self::Stopped => "KERNEL-STOPPED",
            Self::LogRead(_) => "KERNEL-LOG-READ",
            Self::LogCorrupt { .. } => "KERNEL-LOG-CORRUPT",
            Self::Freeze(_) => "KERNEL-FREEZE",
            Self::RecordTooLarge(_) => "KERNEL-RECORD-TOO-LARGE",
            Self::UnknownApproval(_) => "KERNEL-APPROVAL-UNKNOWN",
            Self::NotQuarantined(_) => "KERNEL-NOT-QUARANTINED",
            Self::ApprovalExpired(_) => "KERNEL-APPROVAL-EXPIRED",
            Self::ApprovalRejected { .. } => "KERNEL-APPROVAL-REJECTED",
            Self::Refused { code, .. } | Self::Undo { code, .. } => code,
            Self::NoRuntime => "KERNEL-NO-RUNTIME",
            Self::TokenEvent(_) => "KERNEL-TOKEN-EVENT",
            Self::NoFever => "KERNEL-NO-FEVER",
        }
    }
}
