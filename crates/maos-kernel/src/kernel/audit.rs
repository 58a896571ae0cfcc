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
//!   whose SHA3-256 does not match, a CRC fault in a finished segment, an
//!   oversized segment, a log that starts where no retention record says it
//!   may, a head hash that is not the writer's or a head missing from disk:
//!   `audit_chain_intact` turns false (Rule 3 denies everything), the state
//!   is RED with the reason, and the node goes to an emergency controlled
//!   shutdown (class `data_corruption`: the commander must acknowledge the
//!   next boot). A failed read moves the sweep to the next healthy copy;
//!   [`AUDIT_READ_FAILURES_MAX`] in a row are a log that cannot be verified:
//!   the same refusal, and an emergency shutdown of class unknown.
//! - **A healthy copy, one per pass** (`Wal::sweep_step`): a copy that fails
//!   during a step is left for a healthy one, never taken for a cut log.

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

/// Steps in a row whose reading failed, across copies (each failure moves
/// the sweep to the next healthy copy), before the log counts as one that
/// cannot be verified: a minute at the default pace. Short trouble (no file
/// descriptor free for a moment) passes; a log nobody can read for a minute
/// is one Rule 3 cannot vouch for.
pub const AUDIT_READ_FAILURES_MAX: u32 = 12;

/// The sweep's thread body: steps until the kernel stops or the chain is
/// found broken. `sleep` waits between steps and says whether to stop.
pub(super) fn run(shared: &Weak<Shared>, every: Duration, sleep: impl Fn(Duration) -> bool) {
    let mut cursor = SweepCursor::default();
    let (mut passes, mut failed_reads) = (0u64, 0u32);
    loop {
        if sleep(every) {
            return;
        }
        let Some(shared) = shared.upgrade() else { return };
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        match shared.wal.sweep_step(&mut cursor, SEGMENTS_PER_STEP) {
            Ok(step) => {
                failed_reads = 0;
                if step.wrapped {
                    passes = passes.saturating_add(1);
                    tracing::debug!(passes, "audit chain: a full pass verified");
                }
            }
            Err(e @ WalError::Corrupt { .. }) => {
                let why = format!("the audit chain is broken on disk: {e}");
                broken(&shared, &why, EcsTrigger::AuditChainBroken { why: why.clone() });
                return;
            }
            Err(e) => {
                failed_reads = failed_reads.saturating_add(1);
                if failed_reads >= AUDIT_READ_FAILURES_MAX {
                    let why = format!("the log cannot be read to verify its chain ({failed_reads} tries): {e}");
                    broken(&shared, &why, EcsTrigger::AuditUnverifiable { why: why.clone() });
                    return;
                }
                tracing::warn!(error = %e, "audit chain sweep: a segment could not be read; the pass starts over");
            }
        }
    }
}

fn broken(shared: &Arc<Shared>, why: &str, trigger: EcsTrigger) {
    tracing::error!(%why, "RULE 3: the audit chain cannot be vouched for while running");
    shared.watch.set_audit_broken(why.to_owned());
    shared.update_posture(&format!("audit sweep: {why}"));
    shared.emergency_from_watchdog(trigger);
}
