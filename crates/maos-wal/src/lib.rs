//! The MAOS write-ahead log and tamper-evident audit chain (spec §6, §14, §38.3).
//!
//! Guarantees:
//! - **Durable before acknowledged** (Rule 8): [`Wal::append`] returns a [`Logged`] proof
//!   only after the record is `fdatasync`ed on every healthy copy (and the directory
//!   synced when a segment is created). Concurrent appenders share one sync (group
//!   commit); a lone appender pays one sync and never waits for a timer.
//! - **Dual copies**: with a secondary directory, an append is acknowledged when both
//!   copies are durable; one failing raises a critical event ([`Wal::health`]) and the
//!   log continues on the other; both failing is *commit freeze*: every append returns
//!   [`WalError::CommitFreeze`], which callers treat as deny.
//! - **Tamper evidence**: every record carries the SHA3-256 of the previous one and its
//!   own, plus a CRC32C; signed checkpoints (hybrid ML-DSA-65 + Ed25519) over the chain
//!   head every 100 records or 5 minutes. [`verify_log`] checks a copied log offline
//!   with only the public key and names the first bad Lsn.
//! - **Recovery**: [`Wal::open`] cuts a torn tail (reported), repairs a diverged copy
//!   from the longer valid chain, and refuses to open a log damaged before its tail
//!   (Emergency Mode, Rule 3).
//! - **Retention** by whole segments per profile, leaving a record that anchors the
//!   chain at the cut; optional AES-256-GCM payload encryption, required for the
//!   Hardened and Isolated profiles.
//!
//! The byte format and error codes are in `docs/wal-format.md`.
//!
//! ```
//! use maos_wal::{verify_log, RecordKind, StateDigest, Wal, WalConfig};
//! use maos_model::Profile;
//! use std::sync::Arc;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let key = Arc::new(maos_crypto::SigningKey::generate()?);
//! let state = Arc::new(|| StateDigest([0; 32]));
//! let (wal, report) = Wal::open(WalConfig::new(Profile::Standard, dir.path()).signer(key.clone(), state))?;
//! assert!(report.created);
//! let kind = RecordKind::caller(0x0100)?;
//! let logged = wal.append(kind, br#"{"intent":"send-mail"}"#)?; // durable now
//! wal.checkpoint(StateDigest([7; 32]))?;
//! let audit = verify_log(dir.path(), key.verifying_key())?;
//! assert_eq!(audit.last_checkpoint.map(|l| l.0), Some(logged.lsn().0 + 1));
//! for record in wal.reader().records()? {
//!     let record = record?;
//!     println!("{} {} {}", record.lsn, record.kind.name(), record.payload.len());
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod chain;
mod error;
mod frame;
mod payload;
mod reader;
mod recovery;
pub mod sim;
mod snapshot;
mod storage;
mod types;
mod verify;
mod wal;

pub use error::{Fault, WalError};
pub use frame::{
    FLAG_GROUP_END, FLAG_SEALED, FORMAT_VERSION, FrameError, PAYLOAD_BYTES_MAX, RECORD_BYTES_MAX, RECORD_HEADER_LEN,
    RECORD_MAGIC, RECORD_OVERHEAD, RECORD_TRAILER_LEN, RawRecord, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
    STORED_PAYLOAD_BYTES_MAX, ScanEnd, ScannedFrames, SegmentHeader, SegmentScan, decode_frame, decode_segment_header,
    encode_segment_header, parse_segment_name, scan_frames, scan_segment, segment_name,
};
pub use payload::{CHECKPOINT_SIGNED_LEN, Checkpoint, GENESIS_LEN, Genesis, RETENTION_LEN, RetentionDeletion};
pub use reader::{FOLLOW_BATCH_RECORDS_MAX, Follower, LogReader, PayloadState, Record, Records, TAIL_RECORDS_MAX};
pub use snapshot::{FoldRecords, SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNKS_MAX};
pub use storage::{DIRECTORY_ENTRIES_MAX, DrillStorage, FsStorage, NoSyncStorage, SegmentFile, Storage};
pub use types::{
    CheckpointCadence, Clock, CopyId, LegalHold, LogId, Lsn, ManualClock, MonotonicClock, RecordHash, RecordKind,
    StateDigest, StateDigestSource, SystemClock, WallClock, encryption_required, retention_days,
};
pub use verify::{SEGMENT_FILE_BYTES_MAX, SweepCursor, SweepStep, VerifyReport, sweep, verify_log, verify_storage};
pub use wal::{
    APPEND_QUEUE_BYTES_MAX, APPEND_QUEUE_RECORDS_MAX, CHECKPOINT_RECORDS_MAX, CopyHealth, CopyRepair, CriticalEvent,
    CriticalEventKind, GROUP_GATHER_MAX_US, HEALTH_EVENTS_MAX, HealthReport, HealthState, Logged, OpenReport,
    RetentionReport, SEGMENT_BYTES_TARGET_DEFAULT, SEGMENT_BYTES_TARGET_MAX, SEGMENT_BYTES_TARGET_MIN, SignatureCheck,
    TornTail, WRITE_CALLS_MAX, Wal, WalConfig,
};
