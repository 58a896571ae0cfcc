//! The MAOS Commit Layer (spec §13): the only path by which an agent's intent
//! changes the outside world.
//!
//! Guarantees:
//! - **No effect without proofs.** The pipeline entry ([`CommitLayer::commit`])
//!   takes a [`LoggedIntent`], reachable only through [`Authorized::new`] (a
//!   DSC Allow decision, Rule 6) or [`Authorized::approved`] (an Escalate
//!   decision plus a commander-signed [`ApprovalGrant`]), then
//!   [`CommitLayer::log_intent`] (a durable WAL intent record, Rule 8).
//! - **Seven stages** — WAL record → per-resource lock + OCC → Rollback Zone
//!   snapshot → execute → WAL result record + unlock → publish → complete. A
//!   failure at any stage restores the snapshot, logs a failure record with the
//!   stage and a stable code, and returns a [`CommitError`] saying why.
//! - **Observations** (read-only actions) skip the lock and snapshot, never the
//!   WAL records. An unknown action is a write ([`Effectors::classify`]).
//! - **Locks** are per resource with a 30 s timeout: a longer execution is
//!   cancelled and rolled back.
//! - **Undo** within the hold period (mail 60 min, files 24 h) from the
//!   on-disk Rollback Zone; refused after it with a typed error.
//! - **Idempotent recovery**: [`CommitLayer::recover`] finishes every logged,
//!   unfinished intent; effectors are idempotent by intent id, so a re-run
//!   never repeats an effect.
//!
//! Built-in effectors: [`effectors::fs::FsEffector`],
//! [`effectors::mail::MailEffector`], [`effectors::http::HttpEffector`].
//! Codes and record formats: `docs/commit-layer.md`.
//!
//! ```no_run
//! use maos_commit::{Authorized, CommitConfig, CommitLayer, Effectors};
//! use maos_commit::effectors::fs::FsEffector;
//! use maos_model::UnixMillis;
//! use std::sync::Arc;
//! # fn run(wal: Arc<maos_wal::Wal>, intent: maos_model::Intent, decision: maos_dsc::Decision)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let effectors = Effectors::new().with(Arc::new(FsEffector::new("/srv/workspace", ".maos/commit/fs")?))?;
//! let layer = CommitLayer::open(wal, effectors, CommitConfig::new(".maos/rollback"))?;
//! let now = UnixMillis(1_767_225_600_000);
//! let authorized = Authorized::new(intent, &decision)?;   // Allow only (Rule 6)
//! let logged = layer.log_intent(authorized)?;              // durable (Rule 8)
//! let committed = layer.commit(logged, now)?;              // stages 2–7
//! layer.undo(committed.intent, now.saturating_add_ms(60_000))?; // within 24 h
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod abuse;
pub mod breaker;
pub mod describe;
mod effector;
pub mod effectors;
mod error;
mod events;
mod fsutil;
mod lock;
mod pipeline;
mod proof;
pub mod records;
mod recovery;
mod remotes;
mod threads;
mod zone;

pub use abuse::{
    LOCK_ABUSE_ENTRIES_MAX, LOCK_ABUSE_FLAG_CYCLES, LOCK_ABUSE_PAUSE_CYCLES, LOCK_ABUSE_WINDOW_MS, LockStanding,
};
pub use describe::{DescribeError, Described, Role};
pub use effector::{
    Compensable, EFFECTORS_MAX, EffectOutput, Effector, Effectors, ExecContext, OUTPUT_BYTES_MAX, OutputLabel, Probe,
    QUARANTINE_FAILURES_LISTED_MAX, Quarantined, RESOURCE_KEYS_MAX, SNAPSHOT_BYTES_MAX, Snapshot, namespace_of,
};
pub use error::{
    AuthorizeError, CommitError, EffectError, FailReason, OpenError, RecoveryError, ReleaseError, Rollback, Stage,
    UndoError,
};
pub use events::{CommitEvent, EventBus, EventOutcome, SUBSCRIBER_QUEUE_MAX, SUBSCRIBERS_MAX};
pub use lock::{LOCK_KEY_BYTES_MAX, LOCK_TIMEOUT_DEFAULT, LOCKS_MAX, LockGuard, LockTable};
pub use pipeline::{CANCEL_GRACE_DEFAULT, CommitConfig, CommitLayer, Committed, Fault, FaultHook, Undone};
pub use proof::{ApprovalGrant, Authorized, LoggedIntent, SignedApproval};
pub use recovery::{Pending, RECOVERY_PENDING_MAX, RecoveryAction, RecoveryReport, Unfinished, unfinished};
pub use remotes::REMOTE_BREAKERS_MAX;
pub use threads::EFFECT_THREADS_IDLE_MAX;
pub use zone::{
    HOLD_FILE_MS, HOLD_MAIL_MS, ROLLBACK_ZONE_BYTES_DEFAULT, ROLLBACK_ZONE_ENTRIES_MAX, RollbackZone, ZoneEntry,
};
