//! The WAL records of the Commit Layer: kinds `0x0200..=0x02FF`, JSON payloads
//! with a version field (`docs/commit-layer.md` lists them).

use crate::effector::OutputLabel;
use crate::error::{Rollback, Stage};
use maos_model::{EffectClass, Intent, IntentId};
use maos_wal::RecordKind;
use serde::{Deserialize, Serialize};

/// Payload format version of every commit record.
pub const RECORD_VERSION: u16 = 1;

/// Stage 1: the authorized intent, durable before anything executes (Rule 8).
pub const KIND_INTENT: RecordKind = RecordKind(0x0200);
/// Stage 4 is about to start: the entry state becomes `executing` (spec §14.2).
pub const KIND_EXECUTING: RecordKind = RecordKind(0x0201);
/// Stage 5: the effect ran; its result (the entry is `committed`).
pub const KIND_RESULT: RecordKind = RecordKind(0x0202);
/// The intent failed at a stage; what happened to the state.
pub const KIND_FAILED: RecordKind = RecordKind(0x0203);
/// An undo inside the hold period compensated a committed intent.
pub const KIND_UNDONE: RecordKind = RecordKind(0x0204);
/// A held message left the outbox (or was found interrupted mid-relay).
pub const KIND_RELEASED: RecordKind = RecordKind(0x0205);
/// A held message is about to leave the outbox: durable before it leaves, so
/// no message is ever released that the log does not show.
pub const KIND_RELEASING: RecordKind = RecordKind(0x0206);

const _: () = assert!(KIND_INTENT.0 >= RecordKind::CALLER_MIN && KIND_RELEASING.0 <= 0x02FF);

/// Lowercase hex of 32 bytes.
pub(crate) fn hex32(bytes: &[u8; 32]) -> String {
    maos_crypto::Digest(*bytes).to_hex()
}

/// Kind `0x0200`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The whole intent (recovery re-executes from it).
    pub intent: Intent,
    /// The effect class the pipeline runs it under (the stronger of declared and classified).
    pub class: EffectClass,
    /// SHA3-256 of the DSC decision, hex.
    pub decision_hash: String,
    /// The DSC configuration hash, hex.
    pub config_hash: String,
}

/// Kind `0x0201`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutingRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent.
    pub intent: IntentId,
    /// Whether a Rollback Zone snapshot exists for it.
    pub snapshot: bool,
}

/// Kind `0x0202`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent.
    pub intent: IntentId,
    /// SHA3-256 of the output body, hex (the body itself is not logged).
    pub output_hash: String,
    /// Output length in bytes.
    pub output_len: u64,
    /// The output's integrity label.
    pub label: OutputLabel,
    /// The effector's one-line summary.
    pub summary: String,
    /// Whether crash recovery wrote this record.
    pub recovered: bool,
}

/// Kind `0x0203`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent.
    pub intent: IntentId,
    /// The stage that failed.
    pub stage: Stage,
    /// Stable code of the reason.
    pub code: String,
    /// The reason, one line.
    pub reason: String,
    /// What happened to the state.
    pub rollback: Rollback,
    /// Whether crash recovery wrote this record.
    pub recovered: bool,
}

/// Kind `0x0204`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoneRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent whose effect was compensated.
    pub intent: IntentId,
    /// Wall time of the undo, Unix ms.
    pub at_ms: u64,
}

/// Kind `0x0205`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent whose message left the outbox.
    pub intent: IntentId,
    /// `delivered` (to `sent/`), `relayed` (SMTP) or `uncertain` (interrupted mid-relay).
    pub outcome: String,
    /// Wall time of the release, Unix ms.
    pub at_ms: u64,
}

/// Kind `0x0206`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasingRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent whose message is about to leave the outbox.
    pub intent: IntentId,
    /// The kernel mode that permitted it (always `normal` today).
    pub mode: String,
    /// Wall time, Unix ms.
    pub at_ms: u64,
}

/// A decoded commit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitRecord {
    /// `0x0200`.
    Intent(Box<IntentRecord>),
    /// `0x0201`.
    Executing(ExecutingRecord),
    /// `0x0202`.
    Result(ResultRecord),
    /// `0x0203`.
    Failed(FailedRecord),
    /// `0x0204`.
    Undone(UndoneRecord),
    /// `0x0205`.
    Released(ReleasedRecord),
    /// `0x0206`.
    Releasing(ReleasingRecord),
}

impl CommitRecord {
    /// Decodes a WAL record: `None` for kinds outside the commit range,
    /// `Some(Err)` for a commit kind whose payload does not parse.
    #[must_use]
    pub fn decode(kind: RecordKind, payload: &[u8]) -> Option<Result<Self, String>> {
        let parsed = match kind {
            KIND_INTENT => serde_json::from_slice(payload).map(|r| Self::Intent(Box::new(r))),
            KIND_EXECUTING => serde_json::from_slice(payload).map(Self::Executing),
            KIND_RESULT => serde_json::from_slice(payload).map(Self::Result),
            KIND_FAILED => serde_json::from_slice(payload).map(Self::Failed),
            KIND_UNDONE => serde_json::from_slice(payload).map(Self::Undone),
            KIND_RELEASED => serde_json::from_slice(payload).map(Self::Released),
            KIND_RELEASING => serde_json::from_slice(payload).map(Self::Releasing),
            _ => return None,
        };
        Some(parsed.map_err(|e| format!("commit record {kind}: {e}")))
    }

    /// The intent the record is about.
    #[must_use]
    pub fn intent_id(&self) -> IntentId {
        match self {
            Self::Intent(r) => r.intent.id,
            Self::Executing(r) => r.intent,
            Self::Result(r) => r.intent,
            Self::Failed(r) => r.intent,
            Self::Undone(r) => r.intent,
            Self::Released(r) => r.intent,
            Self::Releasing(r) => r.intent,
        }
    }
}

/// Serializes a record payload. These types contain only strings, integers and
/// enums, so serialization cannot fail; an error is still reported, not hidden.
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(record).map_err(|e| format!("encoding a commit record: {e}"))
}
