//! The audit chain re-verified while the kernel runs (Mandatory Rule 3,
//! spec §38.6's "broken audit chain" trigger). The fold verifies the whole
//! log at boot; after that, bytes on disk can still be changed behind the
//! kernel's back. A thread of its own re-reads the primary copy in steps,
//! at full depth, and matches the writer's head hash when it reaches it.
//!
//! Guarantees:
//! - **Bounded cost.** One segment (16 MiB by default) every
//!   [`AUDIT_SWEEP_EVERY`]: a pass over a log of `n` segments takes `n`
//!   steps, then starts again.
//! - **Damage is an emergency, never a shrug.** A broken link, a record
//!   whose SHA3-256 does not match, a CRC fault in a finished segment, or a
//!   head hash that is not the writer's: `audit_chain_intact` turns false
//!   (Rule 3 denies everything), the state is RED with the reason, and the
//!   node goes to an emergency controlled shutdown (class `data_corruption`:
//!   the commander must acknowledge the next boot). A segment that cannot be
//!   read (retention removed it) is not damage: the pass starts over.
//! - Not covered: the secondary copy (recovery compares the two at boot).

use super::Shared;
use crate::ecs::EcsTrigger;
use maos_wal::{SweepCursor, WalError};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often one segment of the log is re-verified.
pub const AUDIT_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Segments verified per step.
const SEGMENTS_PER_STEP: usize = 1;

/// The sweep's thread body: steps until the kernel stops or the chain is
/// found broken. `sleep` waits between steps and says whether to stop.
pub(super) fn run(shared: &Weak<Shared>, every: Duration, sleep: impl Fn(Duration) -> bool) {
    let Some(reader) = shared.upgrade().map(|s| s.wal.reader()) else { return };
    let mut cursor = SweepCursor::default();
    let mut passes = 0u64;
    loop {
        if sleep(every) {
            return;
        }
        let Some(shared) = shared.upgrade() else { return };
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let head = shared.wal.head().ok();
        match reader.sweep(&mut cursor, SEGMENTS_PER_STEP, head) {
            Ok(step) if step.wrapped => {
                passes = passes.saturating_add(1);
                tracing::debug!(passes, "audit chain: a full pass verified");
            }
            Ok(_) => {}
            Err(e @ WalError::Corrupt { .. }) => {
                broken(&shared, &e);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit chain sweep: a segment could not be read; the pass starts over");
                cursor = SweepCursor::default();
            }
        }
    }
}

fn broken(shared: &Arc<Shared>, e: &WalError) {
    let why = format!("the audit chain is broken on disk: {e}");
    tracing::error!(%why, "RULE 3: audit chain broken while running");
    shared.watch.set_audit_broken(why.clone());
    shared.update_posture(&format!("audit sweep: {why}"));
    shared.emergency_from_watchdog(EcsTrigger::AuditChainBroken { why });
}
