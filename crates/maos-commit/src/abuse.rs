//! Lock anti-DoS (spec §13, CT-CL-06): an agent that keeps taking a resource's
//! lock and then rolling back is flagged (lower lock priority: it no longer
//! waits for a busy lock) after more than 3 cycles in 10 minutes, and paused
//! on that resource after 5.

use maos_model::{AgentId, UnixMillis};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// The window cycles are counted in (spec: 10 min).
pub const LOCK_ABUSE_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Cycles above which an agent is flagged (spec: more than 3).
pub const LOCK_ABUSE_FLAG_CYCLES: usize = 3;
/// Cycles at which an agent is paused on the resource (spec: 5).
pub const LOCK_ABUSE_PAUSE_CYCLES: usize = 5;
/// (agent, resource) pairs tracked: an agent cycling over many resources cannot
/// grow the table without bound; the oldest pair is forgotten first.
pub const LOCK_ABUSE_ENTRIES_MAX: usize = 65_536;

const _: () = assert!(LOCK_ABUSE_FLAG_CYCLES < LOCK_ABUSE_PAUSE_CYCLES);

/// How the lock table treats an agent on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockStanding {
    /// Normal priority.
    Normal,
    /// Flagged for review; does not wait for busy locks.
    Flagged,
    /// Refused the lock until cycles leave the window.
    Paused,
}

/// Acquire→rollback cycles per (agent, resource key).
#[derive(Debug, Default)]
pub(crate) struct LockAbuse {
    cycles: Mutex<BTreeMap<(AgentId, String), VecDeque<UnixMillis>>>,
}

impl LockAbuse {
    /// Records one cycle on each key.
    pub(crate) fn record(&self, agent: &AgentId, keys: &[String], now: UnixMillis) {
        let mut cycles = self.cycles.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            let entry = (agent.clone(), key.clone());
            if !cycles.contains_key(&entry) && cycles.len() >= LOCK_ABUSE_ENTRIES_MAX {
                let oldest = cycles.iter().min_by_key(|(_, times)| times.back().copied()).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    cycles.remove(&oldest);
                }
            }
            let times = cycles.entry(entry).or_default();
            times.push_back(now);
            while times.len() > LOCK_ABUSE_PAUSE_CYCLES {
                times.pop_front();
            }
        }
    }

    /// The agent's standing on the worst of `keys` at `now`.
    pub(crate) fn standing(&self, agent: &AgentId, keys: &[String], now: UnixMillis) -> LockStanding {
        let cycles = self.cycles.lock().unwrap_or_else(PoisonError::into_inner);
        let mut worst = LockStanding::Normal;
        for key in keys {
            let Some(times) = cycles.get(&(agent.clone(), key.clone())) else { continue };
            let recent = times.iter().filter(|t| now.saturating_since(**t) < LOCK_ABUSE_WINDOW_MS).count();
            let standing = if recent >= LOCK_ABUSE_PAUSE_CYCLES {
                LockStanding::Paused
            } else if recent > LOCK_ABUSE_FLAG_CYCLES {
                LockStanding::Flagged
            } else {
                LockStanding::Normal
            };
            worst = worst.max(standing);
        }
        worst
    }

    /// The agent's worst standing on any resource.
    pub(crate) fn agent_standing(&self, agent: &AgentId, now: UnixMillis) -> LockStanding {
        let keys: Vec<String> = {
            let cycles = self.cycles.lock().unwrap_or_else(PoisonError::into_inner);
            cycles.keys().filter(|(a, _)| a == agent).map(|(_, k)| k.clone()).collect()
        };
        self.standing(agent, &keys, now)
    }
}
