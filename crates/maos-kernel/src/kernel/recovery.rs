//! The Recovery Priority Chain, the kernel's half (spec §38.2; the order and
//! the deadlines are in [`crate::recovery`]).
//!
//! Guarantees:
//! - **It runs on the TSCA's thread**, after each observation, so a
//!   stalled sequencer or runtime does not stop it.
//! - **Each level's health is read from the kernel's own observations**: the
//!   watchdog's components and DSC heartbeats, the log's freeze, the kernel's
//!   mode. Nothing an agent says reaches it.
//! - **Restorations go through the TSCA**: a level that can be restored asks
//!   for the restart (budget, confirmation and authorization apply); while a
//!   chain runs, the TSCA's single-component restarts wait for their level.
//! - **Every step is logged in the TSCA's section** (`ChainStarted`,
//!   `ChainLevel`, `ChainFinished`) before anything follows from it; three
//!   failed levels halt the node into an emergency controlled shutdown.
//! - **A chain per new failure, not per turn**: after a chain ends, another
//!   starts when two or more levels fail and one of them is not a level the
//!   last chain declared failed and that has failed ever since (a level it
//!   passed that fails again, or one that recovered and fails again); the
//!   same failures going on do not start chain after chain.
//! - **Monotonic deadlines**: a level's 10 s run on the watchdog's monotonic
//!   clock; the records carry wall time.

use super::{Shared, watch::Observed};
use crate::ecs::EcsTrigger;
use crate::mode::Mode;
use crate::posture::Component;
use crate::recovery::{Chain, FAILED_LEVELS_FOR_ECS, Level, LevelHealth, Step};
use crate::tsca::{TscaAction, TscaEvent};
use std::collections::BTreeSet;

/// The chain in progress, and what the last one already dealt with.
#[derive(Debug, Default)]
pub(super) struct ChainSlot {
    chain: Option<Chain>,
    /// The levels the last chain declared failed and that have failed ever
    /// since: while only these fail, no new chain starts.
    dealt_with: BTreeSet<Level>,
}

/// The running chain, for `maos tsca` and `maos status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainView {
    /// `chain-<started ms>`.
    pub id: String,
    /// The level running now (`None`: every level ended).
    pub level: Option<Level>,
    /// The levels that failed so far.
    pub failed: Vec<Level>,
}

/// The chain in progress, if one runs.
pub(super) fn view(shared: &Shared) -> Option<ChainView> {
    let slot = shared.chain.lock().ok()?;
    slot.chain.as_ref().map(|c| ChainView { id: c.id.clone(), level: c.current(), failed: c.failed() })
}

/// A level's health check, read from what the kernel observed.
fn level_health(shared: &Shared, seen: &Observed, level: Level) -> LevelHealth {
    let down = |c: Component| seen.unresponsive.contains(&c);
    let pass = |ok: bool| if ok { LevelHealth::Healthy } else { LevelHealth::Failing };
    match level {
        Level::L0 => pass(seen.voter_ok && seen.integrity.is_none() && seen.dsc_beats_valid && !down(Component::Dsc)),
        Level::L1 => pass(!shared.wal.frozen() && !down(Component::WalWriter) && shared.watch.audit_broken().is_none()),
        Level::L2 => pass(!matches!(shared.mode(), Mode::ThinkDontCommit { .. })),
        Level::L3 => pass(!down(Component::Sequencer)),
        Level::L4 => pass(!down(Component::CommitExecutors)),
        Level::L5 | Level::L6 => LevelHealth::Absent,
        Level::L7 if !seen.components.iter().any(|v| v.component == Component::McpUpstreams) => LevelHealth::Absent,
        Level::L7 => pass(!down(Component::McpUpstreams)),
    }
}

/// What one turn of the chain asks of the watchdog.
#[derive(Debug, Default)]
pub(super) struct ChainTurn {
    /// Restarts the TSCA executed for a level.
    pub restarts: Vec<Component>,
    /// A chain is running: the TSCA's single-component restarts wait.
    pub running: bool,
}

/// One turn: starts a chain when several levels fail at once, advances the
/// running one, logs its steps, asks the TSCA for restorations, and halts
/// the node when three levels failed.
pub(super) fn turn(shared: &Shared, seen: &Observed) -> ChainTurn {
    let mut out = ChainTurn::default();
    let Ok(mut slot) = shared.chain.lock() else { return out };
    let health = |level| level_health(shared, seen, level);
    let failing: Vec<Level> = Level::ALL.into_iter().filter(|l| health(*l) == LevelHealth::Failing).collect();
    // Deadlines run on monotonic time (a wall clock stepped back would hold
    // a level for as long); records carry wall time.
    let (now, mono) = (shared.clock.now().0, shared.watch.now_ms());
    if slot.chain.is_none() {
        // A level that recovered is not dealt with any more: failing again,
        // it starts a chain.
        slot.dealt_with.retain(|l| failing.contains(l));
        if !Chain::starts(&failing) || failing.iter().all(|l| slot.dealt_with.contains(l)) {
            return out;
        }
        let chain = Chain::new(now, shared.recovery_level_timeout_ms);
        let started = TscaEvent::ChainStarted { chain: chain.id.clone(), failing: failing.clone(), at_ms: now };
        // Started even if the log refuses the record (a log that cannot
        // write is one of the levels): recovery does not wait for it.
        log(shared, started);
        tracing::error!(chain = %chain.id, ?failing, "several levels failing at once: the Recovery Priority Chain begins");
        slot.chain = Some(chain);
    }
    let Some(chain) = slot.chain.as_mut() else { return out };
    let id = chain.id.clone();
    let steps = chain.step(mono, health);
    let finished = chain.finished();
    for step in steps {
        match step {
            Step::Begin { level, restore: Some(component) } => {
                let action = TscaAction::RestartComponent { component };
                let why = format!("recovery chain {id}: level {level:?} ({}) failing", level.what());
                let confirmed = crate::tsca::confirm(&action, &seen.unresponsive, |_| false, false);
                if shared.tsca_request(&action, &why, confirmed) {
                    out.restarts.push(component);
                }
            }
            Step::Begin { level, restore: None } => {
                tracing::warn!(chain = %id, ?level, what = level.what(), "recovery chain: level failing, nothing to restart alone");
            }
            Step::Done { level, outcome, after_ms } => {
                tracing::warn!(chain = %id, ?level, ?outcome, after_ms, "recovery chain: level ended");
                log(shared, TscaEvent::ChainLevel { chain: id.clone(), level, outcome, after_ms, at_ms: now });
            }
            Step::Finished { failed } => {
                let emergency = failed.len() >= FAILED_LEVELS_FOR_ECS;
                let levels: Vec<String> = failed.iter().map(|l| format!("{l:?} {}", l.what())).collect();
                let event = TscaEvent::ChainFinished { chain: id.clone(), failed, emergency, at_ms: now };
                // An emergency follows even if the log refused the record:
                // failing closed does not wait for a log that cannot write.
                log(shared, event);
                if emergency {
                    shared.emergency_from_watchdog(EcsTrigger::ChainFailed { chain: id.clone(), levels });
                }
            }
        }
    }
    if finished && let Some(chain) = slot.chain.take() {
        slot.dealt_with = chain.failed().into_iter().collect();
    }
    out.running = slot.chain.is_some();
    out
}

/// Logs one chain event in the TSCA's section; whether it was logged.
fn log(shared: &Shared, event: TscaEvent) -> bool {
    shared.tsca.lock().is_ok_and(|mut ledger| !shared.tsca_log(&mut ledger, vec![event]).is_empty())
}
