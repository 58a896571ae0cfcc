//! The Recovery Priority Chain (spec §38.2; CT-DEG-15): the pure half.
//! When several parts of the node fail at once, they are restored in a fixed
//! order, one level at a time, so that what the others stand on comes first.
//!
//! Guarantees:
//! - **In order, one at a time.** Levels run L0 → L7; a level is begun only
//!   once the one before it has passed, failed or been found absent.
//! - **Bounded.** A level that is still failing [`LEVEL_TIMEOUT_MS_DEFAULT`]
//!   after it began is declared failed and the chain goes on degraded; a
//!   chain ends after at most eight such waits.
//! - **Three failed levels are an emergency** ([`FAILED_LEVELS_FOR_ECS`]):
//!   the kernel then runs the emergency controlled shutdown (§38.6).
//! - **Honest about what this node has.** The spec's Message Router (L5) and
//!   Memory Manager (L6) do not exist on one node: those levels are recorded
//!   `absent`, never `passed`.
//! - Pure: the caller supplies the time and each level's health; the kernel
//!   logs every step in the TSCA's section before it acts on it.

use crate::posture::Component;
use serde::{Deserialize, Serialize};

/// How long a level has to pass its health check (spec §38.2: 10 s).
pub const LEVEL_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Failed levels that send the node to an emergency shutdown (spec §38.2: 3).
pub const FAILED_LEVELS_FOR_ECS: usize = 3;
/// Levels failing at once that start a chain: one failure is the watchdog's
/// and the TSCA's business alone (spec §16.3: "multiple failures").
pub const FAILING_LEVELS_TO_START: usize = 2;

/// A level of the chain (§38.2), in the order they are restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// The DSC voter and its heartbeat (a failure freezes commits at once).
    L0,
    /// The write-ahead log (primary, then secondary; both bad is an emergency).
    L1,
    /// The DSC's decisions (no internal-error streak); an evaluator down is
    /// rule-based mode, not a failure.
    L2,
    /// The dispatcher: the sequencer.
    L3,
    /// The Commit Layer: its executors.
    L4,
    /// The Message Router: not on one node.
    L5,
    /// The Memory Manager: not on one node.
    L6,
    /// The remaining ring-1 services (the MCP upstream supervisor).
    L7,
}

impl Level {
    /// Every level, in order.
    pub const ALL: [Self; 8] = [Self::L0, Self::L1, Self::L2, Self::L3, Self::L4, Self::L5, Self::L6, Self::L7];

    /// What it is on this node.
    #[must_use]
    pub const fn what(self) -> &'static str {
        match self {
            Self::L0 => "DSC voter and heartbeat",
            Self::L1 => "write-ahead log",
            Self::L2 => "DSC decisions",
            Self::L3 => "sequencer (dispatcher)",
            Self::L4 => "Commit Layer executors",
            Self::L5 => "message router (not on one node)",
            Self::L6 => "memory manager (not on one node)",
            Self::L7 => "ring-1 services (MCP upstream supervisor)",
        }
    }

    /// The component the TSCA restarts when this level begins failing, if
    /// it can restart one alone (the others recover on their own, or by a
    /// system restart, or not at all).
    #[must_use]
    pub const fn restore(self) -> Option<Component> {
        match self {
            Self::L0 => Some(Component::Dsc),
            Self::L7 => Some(Component::McpUpstreams),
            Self::L1 | Self::L2 | Self::L3 | Self::L4 | Self::L5 | Self::L6 => None,
        }
    }
}

/// A level's health check, as the kernel reads it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelHealth {
    /// It passes.
    Healthy,
    /// It fails.
    Failing,
    /// Nothing on this node is that level.
    Absent,
}

/// How a level ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelOutcome {
    /// Its health check passed.
    Passed,
    /// Still failing at its deadline.
    Failed,
    /// Not on this node.
    Absent,
}

/// One step, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A failing level begins; `restore` is restarted if the TSCA allows.
    Begin {
        /// The level.
        level: Level,
        /// What the TSCA is asked to restart.
        restore: Option<Component>,
    },
    /// A level ended.
    Done {
        /// The level.
        level: Level,
        /// How.
        outcome: LevelOutcome,
        /// Time from its beginning, ms.
        after_ms: u64,
    },
    /// Every level ended.
    Finished {
        /// The levels that failed.
        failed: Vec<Level>,
    },
}

/// One run of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// `chain-<started ms>`.
    pub id: String,
    timeout_ms: u64,
    next: usize,
    level_since_ms: Option<u64>,
    outcomes: Vec<(Level, LevelOutcome)>,
    finished: bool,
}

impl Chain {
    /// Whether these failing levels start a chain.
    #[must_use]
    pub const fn starts(failing: &[Level]) -> bool {
        failing.len() >= FAILING_LEVELS_TO_START
    }

    /// A chain named `chain-<at_ms>` (wall time, for people); each level has
    /// `timeout_ms` to pass, on the monotonic time [`Self::step`] is given.
    #[must_use]
    pub fn new(at_ms: u64, timeout_ms: u64) -> Self {
        Self {
            id: format!("chain-{at_ms}"),
            timeout_ms,
            next: 0,
            level_since_ms: None,
            outcomes: Vec::with_capacity(Level::ALL.len()),
            finished: false,
        }
    }

    /// Advances as far as the levels' health allows at `now_ms`.
    pub fn step(&mut self, now_ms: u64, health: impl Fn(Level) -> LevelHealth) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(&level) = Level::ALL.get(self.next) {
            let now_health = health(level);
            let since = *self.level_since_ms.get_or_insert_with(|| {
                if now_health == LevelHealth::Failing {
                    steps.push(Step::Begin { level, restore: level.restore() });
                }
                now_ms
            });
            let after_ms = now_ms.saturating_sub(since);
            let outcome = match now_health {
                LevelHealth::Absent => LevelOutcome::Absent,
                LevelHealth::Healthy => LevelOutcome::Passed,
                LevelHealth::Failing if after_ms >= self.timeout_ms => LevelOutcome::Failed,
                LevelHealth::Failing => return steps,
            };
            steps.push(Step::Done { level, outcome, after_ms });
            self.outcomes.push((level, outcome));
            self.next = self.next.saturating_add(1);
            self.level_since_ms = None;
        }
        if !self.finished {
            self.finished = true;
            steps.push(Step::Finished { failed: self.failed() });
        }
        steps
    }

    /// Whether every level has ended.
    #[must_use]
    pub const fn finished(&self) -> bool {
        self.finished
    }

    /// The level running now, if any.
    #[must_use]
    pub fn current(&self) -> Option<Level> {
        Level::ALL.get(self.next).copied()
    }

    /// The levels that failed so far, in order.
    #[must_use]
    pub fn failed(&self) -> Vec<Level> {
        self.outcomes.iter().filter(|(_, o)| *o == LevelOutcome::Failed).map(|(l, _)| *l).collect()
    }

    /// How each level ended so far.
    #[must_use]
    pub fn outcomes(&self) -> &[(Level, LevelOutcome)] {
        &self.outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn health(failing: &BTreeSet<Level>) -> impl Fn(Level) -> LevelHealth + '_ {
        |l| match l {
            Level::L5 | Level::L6 => LevelHealth::Absent,
            l if failing.contains(&l) => LevelHealth::Failing,
            _ => LevelHealth::Healthy,
        }
    }

    #[test]
    fn ct_deg_15_levels_are_restored_in_order_and_each_waits_its_turn() {
        let mut failing: BTreeSet<Level> = [Level::L0, Level::L7].into();
        assert!(Chain::starts(&failing.iter().copied().collect::<Vec<_>>()));
        assert!(!Chain::starts(&[Level::L3]), "one failure is not a chain");
        let mut chain = Chain::new(1_000, 10_000);
        let steps = chain.step(1_000, health(&failing));
        assert_eq!(steps, vec![Step::Begin { level: Level::L0, restore: Some(Component::Dsc) }]);
        assert_eq!(chain.current(), Some(Level::L0), "L7 is not begun while L0 fails");
        assert!(chain.step(5_000, health(&failing)).is_empty());
        failing.remove(&Level::L0);
        let steps = chain.step(6_000, health(&failing));
        assert_eq!(steps[0], Step::Done { level: Level::L0, outcome: LevelOutcome::Passed, after_ms: 5_000 });
        assert!(steps.contains(&Step::Done { level: Level::L5, outcome: LevelOutcome::Absent, after_ms: 0 }));
        assert_eq!(
            steps.last(),
            Some(&Step::Begin { level: Level::L7, restore: Some(Component::McpUpstreams) }),
            "{steps:?}"
        );
        failing.clear();
        let steps = chain.step(7_000, health(&failing));
        assert_eq!(
            steps,
            vec![
                Step::Done { level: Level::L7, outcome: LevelOutcome::Passed, after_ms: 1_000 },
                Step::Finished { failed: vec![] },
            ]
        );
        assert!(chain.finished());
        assert!(chain.step(8_000, health(&failing)).is_empty(), "finished once");
    }

    #[test]
    fn ct_deg_15_a_level_failing_past_its_deadline_fails_and_three_make_an_emergency() {
        let failing: BTreeSet<Level> = [Level::L0, Level::L3, Level::L4].into();
        let mut chain = Chain::new(0, 10_000);
        let mut now = 0;
        let mut all = Vec::new();
        while !chain.finished() {
            all.extend(chain.step(now, health(&failing)));
            now += 1_000;
            assert!(now <= 40_000, "bounded: three waits of 10 s");
        }
        assert_eq!(chain.failed(), vec![Level::L0, Level::L3, Level::L4]);
        assert!(chain.failed().len() >= FAILED_LEVELS_FOR_ECS);
        assert!(all.contains(&Step::Done { level: Level::L3, outcome: LevelOutcome::Failed, after_ms: 10_000 }));
        let begun: Vec<Level> =
            all.iter().filter_map(|s| if let Step::Begin { level, .. } = s { Some(*level) } else { None }).collect();
        assert_eq!(begun, vec![Level::L0, Level::L3, Level::L4], "in order");
    }

    #[test]
    fn the_same_inputs_give_the_same_steps() {
        let failing: BTreeSet<Level> = [Level::L1, Level::L2].into();
        let run = || {
            let mut chain = Chain::new(0, 3);
            (0..10).flat_map(|t| chain.step(t, health(&failing))).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
