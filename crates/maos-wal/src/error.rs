//! The one error type of this crate. Stable codes are documented in `docs/wal-format.md`.

use crate::types::{CopyId, Lsn};
use std::fmt;

/// What is wrong with a log found to be damaged or tampered with. Each fault has
/// its own stable code (see [`WalError::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `WAL-CRC`: the CRC32C of a frame does not match its bytes.
    Crc,
    /// `WAL-FRAME`: bad magic, unknown version, impossible length or reserved bits set.
    Frame,
    /// `WAL-SEQUENCE`: a record or segment carries the wrong Lsn (a deleted,
    /// reordered or duplicated record).
    Sequence {
        /// The Lsn found where the expected one should be.
        found: u64,
    },
    /// `WAL-CHAIN`: a record's `prev_hash` is not the hash of the record before it, or
    /// its stored hash is not the SHA3-256 of its bytes.
    Chain,
    /// `WAL-TORN-TAIL`: the last record of the log is incomplete (a write cut by a crash).
    TornTail,
    /// `WAL-TRUNCATED`: a segment that is not the last one ends inside a record.
    Truncated,
    /// `WAL-SEGMENT`: a segment header is malformed, disagrees with its file name,
    /// or the file is larger than any segment the log writes.
    Segment,
    /// `WAL-GENESIS`: Lsn 1 is not a well-formed genesis record.
    Genesis,
    /// `WAL-CHECKPOINT-SIGNATURE`: a checkpoint signature does not verify.
    CheckpointSignature,
    /// `WAL-CHECKPOINT-KEY`: a checkpoint is signed by a key that is not trusted.
    CheckpointKey,
    /// `WAL-CHECKPOINT-MISMATCH`: a checkpoint names a head, log id or time that
    /// is not the record before it, or its payload is malformed.
    CheckpointMismatch,
    /// `WAL-RETENTION`: the log starts after Lsn 1 but no retention-deletion record
    /// anchors the cut, or a retention record is malformed.
    RetentionAnchor,
}

impl Fault {
    /// The stable code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Crc => "WAL-CRC",
            Self::Frame => "WAL-FRAME",
            Self::Sequence { .. } => "WAL-SEQUENCE",
            Self::Chain => "WAL-CHAIN",
            Self::TornTail => "WAL-TORN-TAIL",
            Self::Truncated => "WAL-TRUNCATED",
            Self::Segment => "WAL-SEGMENT",
            Self::Genesis => "WAL-GENESIS",
            Self::CheckpointSignature => "WAL-CHECKPOINT-SIGNATURE",
            Self::CheckpointKey => "WAL-CHECKPOINT-KEY",
            Self::CheckpointMismatch => "WAL-CHECKPOINT-MISMATCH",
            Self::RetentionAnchor => "WAL-RETENTION",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Crc => f.write_str("crc mismatch"),
            Self::Frame => f.write_str("malformed record frame"),
            Self::Sequence { found } => write!(f, "out of sequence: found lsn {found}"),
            Self::Chain => f.write_str("hash chain broken"),
            Self::TornTail => f.write_str("incomplete record at the tail"),
            Self::Truncated => f.write_str("segment truncated inside a record"),
            Self::Segment => f.write_str("malformed segment"),
            Self::Genesis => f.write_str("malformed genesis record"),
            Self::CheckpointSignature => f.write_str("checkpoint signature invalid"),
            Self::CheckpointKey => f.write_str("checkpoint signed by an untrusted key"),
            Self::CheckpointMismatch => f.write_str("checkpoint does not match the chain"),
            Self::RetentionAnchor => f.write_str("retention cut not anchored by a retention record"),
        }
    }
}

/// Errors of the write-ahead log. Every variant has a stable code ([`Self::code`]).
/// Any error from an append means the record is **not** acknowledged: callers treat it
/// as deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// `WAL-TOO-LARGE`: the payload exceeds [`crate::PAYLOAD_BYTES_MAX`].
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `WAL-KIND`: callers may not write kinds reserved for the WAL.
    #[error("record kind {kind:#06x} is reserved for the wal itself")]
    ReservedKind {
        /// The rejected kind.
        kind: u16,
    },
    /// `WAL-COMMIT-FREEZE`: no copy of the log can accept writes (spec §38.3, Rule 8).
    /// The record was not acknowledged; nothing may execute.
    #[error("commit freeze: no wal copy can accept writes ({cause})")]
    CommitFreeze {
        /// What failed first.
        cause: String,
    },
    /// `WAL-IO`: an I/O error outside the append path (open, read, repair, retention).
    #[error("i/o error on the {copy} copy during {op}: {detail}")]
    Io {
        /// Which copy.
        copy: CopyId,
        /// What the log was doing.
        op: &'static str,
        /// The operating system's message.
        detail: String,
    },
    /// A fault in the log's bytes (the code depends on the [`Fault`]). On open this is
    /// Emergency Mode (Rule 3): the log refuses to run until an administrator investigates.
    #[error("wal damaged at lsn {lsn}: {fault} (segment `{segment}`, byte {offset})")]
    Corrupt {
        /// The first Lsn that could not be trusted.
        lsn: Lsn,
        /// What is wrong.
        fault: Fault,
        /// The segment file.
        segment: String,
        /// The byte offset in that segment.
        offset: u64,
    },
    /// `WAL-FORK`: both copies hold a valid chain but they differ (tampering or a bug).
    #[error("wal copies hold different valid chains from lsn {lsn}")]
    CopiesForked {
        /// The first Lsn at which they differ (or the lower head).
        lsn: Lsn,
    },
    /// `WAL-ENCRYPTION-REQUIRED`: the profile or the log demands a sealing key.
    #[error("encryption at rest required: {reason}")]
    EncryptionRequired {
        /// Why.
        reason: &'static str,
    },
    /// `WAL-DECRYPT`: a sealed payload did not authenticate (wrong key or tampered).
    #[error("payload of lsn {lsn} failed to decrypt (wrong key or tampered)")]
    Decrypt {
        /// The record.
        lsn: Lsn,
    },
    /// `WAL-LOCKED`: another writer holds the directory's lock; two writers would fork the chain.
    #[error("the {copy} wal copy is locked by another writer (is another maos process running?)")]
    Locked {
        /// Which copy.
        copy: String,
    },
    /// `WAL-NO-SIGNER`: a checkpoint was requested but no signing key is configured.
    #[error("no checkpoint signing key configured")]
    NoSigner,
    /// `WAL-CRYPTO`: the crypto layer failed (signing, sealing, randomness).
    #[error("crypto failure: {code}")]
    Crypto {
        /// The crypto error's stable code.
        code: &'static str,
    },
    /// `WAL-EMPTY`: there is no log to read.
    #[error("no wal segments found")]
    Empty,
    /// `WAL-NOT-FOUND`: no record with that Lsn is in the log.
    #[error("no record with lsn {lsn}")]
    NotFound {
        /// The Lsn asked for.
        lsn: Lsn,
    },
    /// `WAL-LIMIT`: a request exceeds a named limit.
    #[error("{what} above the limit of {max}")]
    Limit {
        /// What was limited.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// `WAL-CONFIG`: the configuration is unusable.
    #[error("invalid wal configuration: {0}")]
    Config(&'static str),
    /// `WAL-SNAPSHOT`: a state snapshot could not be built or read: retention
    /// cuts nothing without one, and a cut log without one does not fold.
    #[error("state snapshot: {0}")]
    Snapshot(String),
    /// `WAL-INTERNAL`: an internal invariant failed (a poisoned lock); the log stops.
    #[error("internal wal error: {0}")]
    Internal(&'static str),
}

impl WalError {
    /// The stable code for logs, `--json` output and deny reasons.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "WAL-TOO-LARGE",
            Self::ReservedKind { .. } => "WAL-KIND",
            Self::CommitFreeze { .. } => "WAL-COMMIT-FREEZE",
            Self::Io { .. } => "WAL-IO",
            Self::Corrupt { fault, .. } => fault.code(),
            Self::CopiesForked { .. } => "WAL-FORK",
            Self::EncryptionRequired { .. } => "WAL-ENCRYPTION-REQUIRED",
            Self::Decrypt { .. } => "WAL-DECRYPT",
            Self::NoSigner => "WAL-NO-SIGNER",
            Self::Locked { .. } => "WAL-LOCKED",
            Self::Crypto { .. } => "WAL-CRYPTO",
            Self::Empty => "WAL-EMPTY",
            Self::NotFound { .. } => "WAL-NOT-FOUND",
            Self::Limit { .. } => "WAL-LIMIT",
            Self::Config(_) => "WAL-CONFIG",
            Self::Snapshot(_) => "WAL-SNAPSHOT",
            Self::Internal(_) => "WAL-INTERNAL",
        }
    }

    /// The Lsn the error names, if any (the first bad record for corruption).
    #[must_use]
    pub const fn lsn(&self) -> Option<Lsn> {
        match self {
            Self::Corrupt { lsn, .. } | Self::CopiesForked { lsn } | Self::Decrypt { lsn } | Self::NotFound { lsn } => {
                Some(*lsn)
            }
            _ => None,
        }
    }

    /// The fault, for corruption errors.
    #[must_use]
    pub const fn fault(&self) -> Option<Fault> {
        match self {
            Self::Corrupt { fault, .. } => Some(*fault),
            _ => None,
        }
    }

    pub(crate) fn io(copy: CopyId, op: &'static str, err: &std::io::Error) -> Self {
        Self::Io { copy, op, detail: err.to_string() }
    }

    pub(crate) fn crypto(err: &maos_crypto::CryptoError) -> Self {
        Self::Crypto { code: err.code() }
    }
}
