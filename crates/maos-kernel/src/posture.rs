//! The canonical operating states (spec §38.11) and degraded modes (§38.8),
//! derived by one pure function from what the kernel and its watchdog
//! observed. The state is what `maos status` reports and what every logged
//! `kernel.state` transition names; it never allows anything by itself: the
//! refusals come from the kernel's mode, the boot lockdown and the health
//! report the Mandatory Rules read, all fed by the same observations.
//!
//! Precedence, most severe first: RED (an integrity violation) > ORANGE (a
//! commit freeze, for whatever reason) > PRE-OP (boot lockdown) >
//! RECOVERY-HOLD > YELLOW (rule-based: no semantic evaluator) > GREEN.
//! SAFE-HOLD (an emergency controlled shutdown, spec §38.6) comes first of
//! all. AMBER (bounded degradation, tighter admission) is memory pressure
//! (degraded mode 1) when nothing worse holds; the spec's other AMBER, a lost
//! DSC instance among several, needs several instances, which one node lacks.

use crate::mode::Mode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A canonical state (§38.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CanonicalState {
    /// Boot verification: nothing runs until the DSC has sent three valid heartbeats.
    #[serde(rename = "PRE-OP")]
    PreOp,
    /// Full operation: DSC and semantic evaluator.
    #[serde(rename = "GREEN")]
    Green,
    /// Rule-based: the deterministic checks and the Mandatory Rules, no evaluator.
    #[serde(rename = "YELLOW")]
    Yellow,
    /// Reduced redundancy (a lost DSC instance among several).
    #[serde(rename = "AMBER")]
    Amber,
    /// Commit freeze: no state-changing effect.
    #[serde(rename = "ORANGE")]
    Orange,
    /// Emergency: only safety-preserving behaviour; a human is required.
    #[serde(rename = "RED")]
    Red,
    /// Recovery validation: crash recovery finishes logged intents first.
    #[serde(rename = "RECOVERY-HOLD")]
    RecoveryHold,
    /// Minimal safe state: agents stopped, state preserved.
    #[serde(rename = "SAFE-HOLD")]
    SafeHold,
}

impl CanonicalState {
    /// The spec's name (`GREEN`, `RECOVERY-HOLD`, …).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::PreOp => "PRE-OP",
            Self::Green => "GREEN",
            Self::Yellow => "YELLOW",
            Self::Amber => "AMBER",
            Self::Orange => "ORANGE",
            Self::Red => "RED",
            Self::RecoveryHold => "RECOVERY-HOLD",
            Self::SafeHold => "SAFE-HOLD",
        }
    }

    /// Whether an effect may run in this state at all (the seeded simulation's
    /// invariant: none runs in ORANGE, RED, RECOVERY-HOLD, SAFE-HOLD or PRE-OP).
    #[must_use]
    pub const fn effects_allowed(self) -> bool {
        matches!(self, Self::Green | Self::Yellow | Self::Amber)
    }
}

impl fmt::Display for CanonicalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A degraded mode (§38.8). Several may be active at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DegradedMode {
    /// 1: memory or CPU pressure pauses background agents.
    ReducedAgentCapacity,
    /// 2: every model provider unreachable.
    LocalOnly,
    /// 3: no semantic evaluator: rule-based enforcement.
    SecurityReduced,
    /// 4: commit freeze: think and communicate only.
    CommitFreeze,
    /// 5: minimal safe state.
    MinimalSafeState,
}

impl DegradedMode {
    /// The spec's number, 1..=5.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::ReducedAgentCapacity => 1,
            Self::LocalOnly => 2,
            Self::SecurityReduced => 3,
            Self::CommitFreeze => 4,
            Self::MinimalSafeState => 5,
        }
    }
}

/// A component the watchdog watches (spec §16.3), each petting it at its interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// The sequencer (the spec's Dispatcher): pets on every loop turn.
    Sequencer,
    /// The DSC instance: a known-answer heartbeat with a counter and its configuration hash.
    Dsc,
    /// The Commit Layer's executors: the watchdog's probe job must run on one.
    CommitExecutors,
    /// The log's writer: a commit group (write and sync) must not stay in flight.
    WalWriter,
    /// The supervisor of the upstream MCP servers (ring 1: restarted alone).
    McpUpstreams,
}

impl Component {
    /// Stable name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sequencer => "sequencer",
            Self::Dsc => "dsc",
            Self::CommitExecutors => "commit_executors",
            Self::WalWriter => "wal_writer",
            Self::McpUpstreams => "mcp_upstreams",
        }
    }

    /// Whether the TSCA can restart it alone: a DSC instance or a ring-1
    /// service. The sequencer and the executors are the kernel's core: only
    /// a system restart renews them.
    #[must_use]
    pub const fn restartable(self) -> bool {
        matches!(self, Self::Dsc | Self::McpUpstreams)
    }

    /// Its ring (spec §16.3): a ring-0 component that stops answering
    /// freezes commits; a ring-1 one is restarted and the node goes on.
    #[must_use]
    pub const fn ring(self) -> u8 {
        match self {
            Self::Sequencer | Self::Dsc | Self::CommitExecutors | Self::WalWriter => 0,
            Self::McpUpstreams => 1,
        }
    }
}

/// Memory pressure (§38.8 mode 1, §12 admission), with the spec's hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    /// Under pressure never, or back under [`MEMORY_RESUME_PCT`].
    #[default]
    Normal,
    /// Over [`MEMORY_REDUCED_PCT`]: ring-3 agents are paused (mode 1).
    Reduced,
    /// Over [`MEMORY_CRITICAL_PCT`]: every agent request is refused.
    Critical,
}

/// Memory use over which degraded mode 1 begins (spec §38.8: > 85 %).
pub const MEMORY_REDUCED_PCT: u8 = 85;
/// Memory use over which every agent request is refused (spec §12: > 95 %
/// rejects everything but realtime work, which this node does not have).
pub const MEMORY_CRITICAL_PCT: u8 = 95;
/// Memory use under which mode 1 ends (spec §38.8: < 75 %, hysteresis).
pub const MEMORY_RESUME_PCT: u8 = 75;

impl Capacity {
    /// The capacity after reading `pct` (`None`: not measured, no change).
    #[must_use]
    pub const fn next(self, pct: Option<u8>) -> Self {
        let Some(p) = pct else { return self };
        if p > MEMORY_CRITICAL_PCT {
            Self::Critical
        } else if p > MEMORY_REDUCED_PCT {
            Self::Reduced
        } else if p < MEMORY_RESUME_PCT {
            Self::Normal
        } else {
            // Between the two: stays as it was, but never critical at or under 95 %.
            match self {
                Self::Critical => Self::Reduced,
                other => other,
            }
        }
    }
}

/// What the state is derived from.
#[derive(Debug, Clone, Copy)]
pub struct Conditions<'a> {
    /// The kernel's refusal mode (recovery hold, commit freeze, think-only).
    pub mode: &'a Mode,
    /// Boot lockdown: the DSC has not yet sent three valid heartbeats.
    pub lockdown: bool,
    /// Components past twice their interval without a valid pet.
    pub unresponsive: &'a [Component],
    /// Whether the DSC's last heartbeats are valid, enough of them in a row
    /// (after a miss, effects wait for as many as at boot: Rule 10).
    pub heartbeats_valid: bool,
    /// The DSC's known answer was right (else Rule 6 denies everything).
    pub voter_ok: bool,
    /// The Rollback Zone can take a snapshot (else Rule 5 denies effects).
    pub rollback_ok: bool,
    /// Disk use of the data directory's filesystem, percent (spec §25.2:
    /// 80 warn, 90 clean up, 95 essential writes only, 99 emergency; RED at
    /// 99 needs a human to free space, and ends by itself once there is).
    pub disk_used_pct: Option<u8>,
    /// An integrity violation (a DSC heartbeat under another configuration hash).
    pub integrity: Option<&'a str>,
    /// Whether a semantic evaluator is configured and answering.
    pub evaluator: bool,
    /// Memory pressure, and the reading behind it.
    pub capacity: Capacity,
    /// Memory use, percent (`None`: not measured).
    pub memory_used_pct: Option<u8>,
}

/// The derived state, its active modes and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posture {
    /// The canonical state.
    pub state: CanonicalState,
    /// Active degraded modes, in number order.
    pub modes: Vec<DegradedMode>,
    /// One line per cause, in a fixed order.
    pub why: Vec<String>,
    /// Whether leaving this state needs a human (a restart or an acknowledgement).
    pub human_ack: bool,
}

impl Posture {
    /// The posture these conditions give.
    #[must_use]
    pub fn derive(c: &Conditions<'_>) -> Self {
        let mut why = Vec::new();
        let mut modes = Vec::new();
        if !c.evaluator {
            modes.push(DegradedMode::SecurityReduced);
            why.push("no semantic evaluator: rule-based enforcement (DSC-only clearance)".to_owned());
        }
        let emergency = matches!(c.mode, Mode::Emergency { .. });
        let sticky_freeze =
            matches!(c.mode, Mode::CommitFreeze { .. } | Mode::ThinkDontCommit { .. } | Mode::Emergency { .. });
        if let Some(w) = c.mode.why().filter(|_| sticky_freeze) {
            why.push(format!("{}: {w}", c.mode.name()));
        }
        for component in c.unresponsive {
            if component.ring() == 0 {
                why.push(format!("{} unresponsive", component.name()));
            } else {
                why.push(format!(
                    "{} unresponsive (ring 1: the TSCA restarts it; the kernel goes on)",
                    component.name()
                ));
            }
        }
        let ring0_down = c.unresponsive.iter().any(|c| c.ring() == 0);
        if let Some(what) = c.integrity {
            why.push(format!("integrity: {what}"));
        }
        let waiting = !c.lockdown && !ring0_down && !c.heartbeats_valid;
        if waiting {
            why.push("waiting for valid DSC heartbeats in a row".to_owned());
        }
        if !c.voter_ok {
            why.push("voter down: the DSC's known-answer heartbeat came out wrong".to_owned());
        }
        if !c.rollback_ok {
            why.push("rollback zone not writable".to_owned());
        }
        let disk = c.disk_used_pct.unwrap_or(0);
        let disk_line = match disk {
            99.. => Some("emergency: only the kernel's shutdown may write"),
            95..=98 => Some("only essential writes (the log): effects refused"),
            90..=94 => Some("expired rollback snapshots are being cleaned up"),
            80..=89 => Some("warning"),
            _ => None,
        };
        if let Some(line) = disk_line {
            why.push(format!("disk {disk} % used: {line}"));
        }
        let disk_full = disk >= 95;
        let disk_emergency = disk >= 99;
        let freeze = sticky_freeze
            || ring0_down
            || c.integrity.is_some()
            || waiting
            || !c.voter_ok
            || !c.rollback_ok
            || disk_full;
        if freeze {
            modes.push(DegradedMode::CommitFreeze);
        }
        let memory = c.memory_used_pct.unwrap_or(0);
        match c.capacity {
            Capacity::Normal => {}
            Capacity::Reduced => why.push(format!("memory {memory} % used: ring-3 agents paused (mode 1)")),
            Capacity::Critical => why.push(format!("memory {memory} % used: every agent request refused")),
        }
        let reduced = c.capacity != Capacity::Normal;
        if reduced {
            modes.push(DegradedMode::ReducedAgentCapacity);
        }
        if emergency {
            modes.push(DegradedMode::MinimalSafeState);
        }
        if c.lockdown {
            why.push("boot lockdown: waiting for three valid DSC heartbeats".to_owned());
        }
        if matches!(c.mode, Mode::RecoveryHold) {
            why.push("crash recovery is finishing logged intents".to_owned());
        }
        let (state, human_ack) = if emergency {
            (CanonicalState::SafeHold, true)
        } else if c.integrity.is_some() || disk_emergency {
            (CanonicalState::Red, true)
        } else if freeze {
            // The sticky modes end only with a restart; an unresponsive
            // component recovers on its own.
            (CanonicalState::Orange, sticky_freeze)
        } else if c.lockdown {
            (CanonicalState::PreOp, false)
        } else if matches!(c.mode, Mode::RecoveryHold) {
            (CanonicalState::RecoveryHold, false)
        } else if reduced {
            // Bounded degradation with tighter admission (§38.11).
            (CanonicalState::Amber, false)
        } else if c.evaluator {
            (CanonicalState::Green, false)
        } else {
            (CanonicalState::Yellow, false)
        };
        modes.sort_unstable();
        Self { state, modes, why, human_ack }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(mode: &Mode) -> Conditions<'_> {
        Conditions {
            mode,
            lockdown: false,
            unresponsive: &[],
            heartbeats_valid: true,
            voter_ok: true,
            rollback_ok: true,
            disk_used_pct: None,
            integrity: None,
            evaluator: false,
            capacity: Capacity::Normal,
            memory_used_pct: None,
        }
    }

    #[test]
    fn without_an_evaluator_normal_operation_is_yellow_with_mode_3() {
        let p = Posture::derive(&conditions(&Mode::Normal));
        assert_eq!(p.state, CanonicalState::Yellow);
        assert_eq!(p.modes, vec![DegradedMode::SecurityReduced]);
        assert!(!p.human_ack);
        let green = Posture::derive(&Conditions { evaluator: true, ..conditions(&Mode::Normal) });
        assert_eq!(green.state, CanonicalState::Green);
        assert!(green.modes.is_empty() && green.why.is_empty());
    }

    #[test]
    fn precedence_puts_integrity_over_freeze_over_lockdown_over_recovery() {
        let hold = Mode::RecoveryHold;
        let c = Conditions { lockdown: true, ..conditions(&hold) };
        assert_eq!(Posture::derive(&c).state, CanonicalState::PreOp);
        assert_eq!(Posture::derive(&conditions(&hold)).state, CanonicalState::RecoveryHold);
        let stalled = [Component::Sequencer];
        let c = Conditions { unresponsive: &stalled, lockdown: true, ..conditions(&hold) };
        let p = Posture::derive(&c);
        assert_eq!(p.state, CanonicalState::Orange);
        assert_eq!(p.modes, vec![DegradedMode::SecurityReduced, DegradedMode::CommitFreeze]);
        assert!(!p.human_ack, "a stalled component recovers on its own");
        let c = Conditions { integrity: Some("config hash"), ..c };
        let p = Posture::derive(&c);
        assert_eq!(p.state, CanonicalState::Red);
        assert!(p.human_ack);
    }

    #[test]
    fn heartbeats_not_yet_valid_after_a_miss_keep_commits_frozen() {
        let c = Conditions { heartbeats_valid: false, ..conditions(&Mode::Normal) };
        assert_eq!(Posture::derive(&c).state, CanonicalState::Orange);
        let booting = Conditions { lockdown: true, ..c };
        assert_eq!(Posture::derive(&booting).state, CanonicalState::PreOp);
    }

    #[test]
    fn a_wrong_known_answer_or_an_unwritable_rollback_zone_is_orange() {
        for c in [
            Conditions { voter_ok: false, ..conditions(&Mode::Normal) },
            Conditions { rollback_ok: false, ..conditions(&Mode::Normal) },
        ] {
            let p = Posture::derive(&c);
            assert_eq!(p.state, CanonicalState::Orange, "{p:?}");
            assert!(p.modes.contains(&DegradedMode::CommitFreeze));
        }
    }

    #[test]
    fn ct_deg_24_disk_thresholds_warn_clean_freeze_and_stop() {
        let at = |pct| Posture::derive(&Conditions { disk_used_pct: Some(pct), ..conditions(&Mode::Normal) });
        assert_eq!(at(79).state, CanonicalState::Yellow);
        assert!(at(79).why.iter().all(|w| !w.contains("disk")));
        assert_eq!(at(80).state, CanonicalState::Yellow);
        assert!(at(80).why.iter().any(|w| w.contains("disk 80 % used: warning")));
        assert_eq!(at(90).state, CanonicalState::Yellow);
        assert_eq!(at(95).state, CanonicalState::Orange);
        assert!(at(95).modes.contains(&DegradedMode::CommitFreeze));
        let full = at(99);
        assert_eq!((full.state, full.human_ack), (CanonicalState::Red, true));
    }

    #[test]
    fn ct_deg_23_memory_pressure_is_mode_1_with_hysteresis() {
        let mut c = Capacity::Normal;
        for (pct, want) in [
            (80, Capacity::Normal),
            (86, Capacity::Reduced),
            (80, Capacity::Reduced),
            (75, Capacity::Reduced),
            (96, Capacity::Critical),
            (90, Capacity::Reduced),
            (74, Capacity::Normal),
        ] {
            c = c.next(Some(pct));
            assert_eq!(c, want, "at {pct} %");
        }
        assert_eq!(Capacity::Reduced.next(None), Capacity::Reduced, "an unmeasured reading changes nothing");
        let amber = Posture::derive(&Conditions {
            capacity: Capacity::Reduced,
            memory_used_pct: Some(86),
            ..conditions(&Mode::Normal)
        });
        assert_eq!(amber.state, CanonicalState::Amber);
        assert!(amber.modes.contains(&DegradedMode::ReducedAgentCapacity));
        assert!(amber.why.iter().any(|w| w == "memory 86 % used: ring-3 agents paused (mode 1)"), "{:?}", amber.why);
        assert!(amber.state.effects_allowed(), "ring 2 goes on");
        let frozen = Mode::CommitFreeze { why: "x".into() };
        let c = Conditions { capacity: Capacity::Critical, ..conditions(&frozen) };
        assert_eq!(Posture::derive(&c).state, CanonicalState::Orange, "worse states come first");
    }

    #[test]
    fn a_ring_1_component_down_is_named_but_freezes_nothing() {
        let down = [Component::McpUpstreams];
        let p = Posture::derive(&Conditions { unresponsive: &down, ..conditions(&Mode::Normal) });
        assert_eq!(p.state, CanonicalState::Yellow);
        assert!(!p.modes.contains(&DegradedMode::CommitFreeze));
        assert!(p.why.iter().any(|w| w.starts_with("mcp_upstreams unresponsive (ring 1")), "{:?}", p.why);
        let down = [Component::CommitExecutors];
        let p = Posture::derive(&Conditions { unresponsive: &down, ..conditions(&Mode::Normal) });
        assert_eq!(p.state, CanonicalState::Orange, "the executors are ring 0");
    }

    #[test]
    fn the_sticky_modes_are_orange_and_need_a_human() {
        let frozen = Mode::CommitFreeze { why: "disk".into() };
        let p = Posture::derive(&conditions(&frozen));
        assert_eq!((p.state, p.human_ack), (CanonicalState::Orange, true));
        assert!(p.why.iter().any(|w| w == "commit_freeze: disk"), "{:?}", p.why);
        assert!(!p.state.effects_allowed());
    }

    #[test]
    fn an_emergency_shutdown_is_safe_hold_over_everything_with_modes_4_and_5() {
        let ecs = Mode::Emergency { why: "ecs-1: manual".into() };
        let c = Conditions { integrity: Some("config hash"), lockdown: true, ..conditions(&ecs) };
        let p = Posture::derive(&c);
        assert_eq!((p.state, p.human_ack), (CanonicalState::SafeHold, true));
        assert!(p.modes.contains(&DegradedMode::CommitFreeze) && p.modes.contains(&DegradedMode::MinimalSafeState));
        assert!(p.why.iter().any(|w| w == "emergency: ecs-1: manual"), "{:?}", p.why);
    }

    #[test]
    fn only_green_yellow_and_amber_let_effects_run() {
        use CanonicalState::*;
        for s in [PreOp, Green, Yellow, Amber, Orange, Red, RecoveryHold, SafeHold] {
            assert_eq!(s.effects_allowed(), matches!(s, Green | Yellow | Amber), "{s}");
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
        }
    }
}
