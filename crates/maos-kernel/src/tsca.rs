//! The Trusted System Control Agent, rule-based (spec §38.7; CT-DEG-19,
//! CT-DEG-20, CT-DEG-21): the pure half. Which recovery action may run, as a
//! state machine over its own log section; the kernel asks it before every
//! automated recovery action and executes only what it answers `execute`.
//!
//! Guarantees:
//! - **Three actions, nothing else.** [`TscaAction`] can terminate an agent,
//!   restart a component, or restart the whole system. No variant touches
//!   the security configuration (rules, tokens, labels, the profile), installs
//!   or promotes anything: the TSCA has no path to them (CT-DEG-21).
//! - **A budget per incident** (§38.7.4): at most [`TERMINATIONS_MAX`] agent
//!   terminations, [`COMPONENT_RESTARTS_MAX`] component restarts and
//!   [`SYSTEM_RESTARTS_MAX`] system restart; anything more escalates to a
//!   human. An incident lasts until the node has been healthy, with nothing
//!   pending, for [`INCIDENT_QUIET_MS`]; its counters survive a restart (they
//!   are a fold over the log).
//! - **Confirmed first.** Every action carries the watchdog's confirmation,
//!   from the kernel's own observations, that its target is unhealthy; an
//!   unconfirmed one (a healthy agent, a responsive component) is blocked.
//! - **Authorization by profile** (§38.7, CT-DEG-20): A (Standard) executes
//!   and reports; B (Hardened) proposes and the commander approves, and a
//!   proposal unanswered for [`PROPOSAL_TTL_MS`] sends the node to the
//!   minimal safe state; C (Isolated) only advises.
//! - **Logged before acted**: [`Tsca::decide`] only returns events; the
//!   kernel logs them (a hash-chained `kernel.tsca` section) and then
//!   [`Tsca::apply`]s them, the same function the fold uses.

use crate::posture::Component;
use maos_model::{AgentId, Profile};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Agent terminations per incident.
pub const TERMINATIONS_MAX: u32 = 10;
/// Component restarts per incident.
pub const COMPONENT_RESTARTS_MAX: u32 = 5;
/// Full system restarts per incident.
pub const SYSTEM_RESTARTS_MAX: u32 = 1;
/// How long a Hardened proposal waits for the commander (then: minimal safe state).
pub const PROPOSAL_TTL_MS: u64 = 15 * 60_000;
/// Healthy, with nothing pending, this long closes an incident.
pub const INCIDENT_QUIET_MS: u64 = 60_000;
/// A component unresponsive this long (past its limit) is restarted.
pub const COMPONENT_RESTART_AFTER_MS: u64 = 2_000;
/// A restarted component is given this long before it is restarted again.
pub const RESTART_SETTLE_MS: u64 = 3_000;
/// The sequencer unresponsive this long restarts the system by default (it
/// cannot be restarted alone: it is the kernel's core). The spec's watchdog
/// gives the dispatcher 2 × 5 s; ours pets every second, so 10 s past its
/// limit is as patient.
pub const SYSTEM_RESTART_AFTER_MS: u64 = 10_000;
/// Open proposals, at most (a new one beyond escalates).
pub const PROPOSALS_MAX: usize = 64;
/// Targets remembered as escalated in one incident, at most.
pub const ESCALATIONS_MAX: usize = 1024;

/// Refusal code of an approval the TSCA does not take.
pub const CODE_TSCA_APPROVAL: &str = "TSCA-APPROVAL";

/// A recovery action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TscaAction {
    /// Terminate an agent (quarantine stage 4, with the state-save window honoured).
    TerminateAgent {
        /// The agent.
        agent: AgentId,
    },
    /// Restart one component.
    RestartComponent {
        /// The component.
        component: Component,
    },
    /// Restart the whole process (crash recovery runs at its boot).
    RestartSystem,
}

impl TscaAction {
    /// What it acts on, as a stable string.
    #[must_use]
    pub fn target(&self) -> String {
        match self {
            Self::TerminateAgent { agent } => format!("agent:{agent}"),
            Self::RestartComponent { component } => format!("component:{}", component.name()),
            Self::RestartSystem => "system".to_owned(),
        }
    }
}

/// Authorization level (§38.7, §43).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Authorization {
    /// Standard: autonomous within the budget; reports afterwards.
    A,
    /// Hardened: proposes; the commander approves.
    B,
    /// Isolated: advisory only; a human performs every action.
    C,
}

impl Authorization {
    /// The profile's level.
    #[must_use]
    pub const fn of(profile: Profile) -> Self {
        match profile {
            Profile::Standard => Self::A,
            Profile::Hardened => Self::B,
            Profile::Isolated => Self::C,
        }
    }
}

/// The TSCA's mode (§38.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TscaMode {
    /// Nothing wrong.
    Dormant,
    /// An incident is open, or the state is degraded.
    Observer,
    /// A heartbeat is lost (a component unresponsive): recovery actions run.
    AutonomousRecovery,
}

/// One step of the TSCA's log section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TscaEvent {
    /// The mode changed.
    Mode {
        /// The new mode.
        mode: TscaMode,
        /// Why.
        why: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// An incident opened: a fresh budget.
    IncidentOpened {
        /// `inc-<at_ms>`.
        incident: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// An action the kernel now performs (level A, or approved).
    Executed {
        /// The incident.
        incident: String,
        /// What.
        action: TscaAction,
        /// Why it was needed.
        why: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// Level B: a proposal for the commander.
    Proposed {
        /// The incident.
        incident: String,
        /// `<incident>-p<n>`.
        proposal: String,
        /// What.
        action: TscaAction,
        /// Why it is needed.
        why: String,
        /// Past this, Unix ms, the node goes to the minimal safe state.
        expires_ms: u64,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// Level C: advice for a human, nothing done.
    Advised {
        /// The incident.
        incident: String,
        /// What a human should do.
        action: TscaAction,
        /// Why.
        why: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// Over budget: a human decides.
    Escalated {
        /// The incident.
        incident: String,
        /// What would have been done.
        action: TscaAction,
        /// Why it was not.
        why: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The watchdog did not confirm it: the target is healthy.
    Blocked {
        /// The incident.
        incident: String,
        /// What was asked.
        action: TscaAction,
        /// What the watchdog saw.
        why: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// An executed action that did not succeed: its charge is returned and
    /// a human decides (it is not tried again in this incident).
    Failed {
        /// The incident.
        incident: String,
        /// What failed.
        action: TscaAction,
        /// How.
        why: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A proposal withdrawn before the commander answered: the watchdog no
    /// longer confirms what it was for.
    Withdrawn {
        /// The proposal.
        proposal: String,
        /// What the watchdog sees now.
        why: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The commander approved a proposal (it is executed next).
    Approved {
        /// The proposal.
        proposal: String,
        /// The commander's key id, hex.
        key_id: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A proposal nobody answered: the node goes to the minimal safe state.
    Expired {
        /// The proposal.
        proposal: String,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The Recovery Priority Chain (§38.2) began: several levels failing at once.
    ChainStarted {
        /// `chain-<at_ms>`.
        chain: String,
        /// The levels failing when it began.
        failing: Vec<crate::recovery::Level>,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// A level of the chain ended.
    ChainLevel {
        /// The chain.
        chain: String,
        /// The level.
        level: crate::recovery::Level,
        /// Passed, failed or absent.
        outcome: crate::recovery::LevelOutcome,
        /// Time from its beginning, ms.
        after_ms: u64,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The chain ended; `emergency` when enough levels failed for an
    /// emergency controlled shutdown, which follows.
    ChainFinished {
        /// The chain.
        chain: String,
        /// The levels that failed.
        failed: Vec<crate::recovery::Level>,
        /// Whether the node goes to an emergency shutdown.
        emergency: bool,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The incident ended.
    IncidentClosed {
        /// The incident.
        incident: String,
        /// Its counts.
        terminations: u32,
        /// Its counts.
        component_restarts: u32,
        /// Its counts.
        system_restarts: u32,
        /// When, Unix ms.
        at_ms: u64,
    },
}

/// An open incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// `inc-<opened_ms>`.
    pub id: String,
    /// When it opened, Unix ms.
    pub opened_ms: u64,
    /// Agent terminations so far.
    pub terminations: u32,
    /// Component restarts so far.
    pub component_restarts: u32,
    /// System restarts so far.
    pub system_restarts: u32,
    /// The last action, proposal or escalation, Unix ms.
    pub last_ms: u64,
    /// When each target was last restarted, Unix ms.
    pub restarted: BTreeMap<String, u64>,
    /// Targets escalated, advised on or blocked (not asked again in this incident).
    pub escalated: BTreeSet<String>,
    /// Proposals made so far (for their ids).
    pub proposals_made: u32,
}

/// An open Hardened proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Its id.
    pub id: String,
    /// What.
    pub action: TscaAction,
    /// Why.
    pub why: String,
    /// When it lapses into the minimal safe state, Unix ms.
    pub expires_ms: u64,
}

/// The TSCA's state: a fold over its log section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tsca {
    /// Its level.
    pub authorization: Authorization,
    /// Its mode, as last logged.
    pub mode: TscaMode,
    /// The open incident.
    pub incident: Option<Incident>,
    /// Open proposals (level B).
    pub proposals: Vec<Proposal>,
}

/// The watchdog's confirmation that an action's target is unhealthy, from
/// the kernel's own observations.
///
/// # Errors
/// Why the target is healthy (the action is blocked).
pub fn confirm(
    action: &TscaAction,
    unresponsive: &[Component],
    agent_isolated: impl Fn(&AgentId) -> bool,
    supervised: bool,
) -> Result<(), String> {
    match action {
        TscaAction::TerminateAgent { agent } if !agent_isolated(agent) => {
            Err(format!("agent {agent} is not in hard isolation: a healthy agent is not terminated"))
        }
        TscaAction::RestartComponent { component } if !component.restartable() => {
            Err(format!("the {} cannot be restarted alone", component.name()))
        }
        TscaAction::RestartComponent { component } if !unresponsive.contains(component) => {
            Err(format!("the {} is responsive", component.name()))
        }
        TscaAction::RestartSystem if !unresponsive.contains(&Component::Sequencer) => {
            Err("the sequencer is responsive: no system restart".to_owned())
        }
        TscaAction::RestartSystem if !supervised => {
            Err("nothing here can restart this process (no daemon supervises the kernel)".to_owned())
        }
        _ => Ok(()),
    }
}

impl Tsca {
    /// A dormant TSCA for `profile`.
    #[must_use]
    pub const fn new(profile: Profile) -> Self {
        Self {
            authorization: Authorization::of(profile),
            mode: TscaMode::Dormant,
            incident: None,
            proposals: Vec::new(),
        }
    }

    /// What asking for `action` (confirmed or not) logs now; empty when there
    /// is nothing new to say (already escalated, proposed, or settling).
    #[must_use]
    pub fn decide(&self, action: &TscaAction, why: &str, confirmed: Result<(), String>, now_ms: u64) -> Vec<TscaEvent> {
        let mut events = Vec::new();
        let (incident, fresh) = match &self.incident {
            Some(i) => (i.clone(), false),
            None => {
                let id = format!("inc-{now_ms}");
                events.push(TscaEvent::IncidentOpened { incident: id.clone(), at_ms: now_ms });
                (Incident::opened(id, now_ms), true)
            }
        };
        let target = action.target();
        let settling = incident.restarted.get(&target).is_some_and(|at| now_ms.saturating_sub(*at) < RESTART_SETTLE_MS);
        if incident.escalated.contains(&target) || self.proposals.iter().any(|p| &p.action == action) || settling {
            return if fresh { Vec::new() } else { events };
        }
        let id = incident.id.clone();
        let (action, why) = (action.clone(), why.to_owned());
        if let Err(seen) = confirmed {
            events.push(TscaEvent::Blocked { incident: id, action, why: seen, at_ms: now_ms });
            return events;
        }
        let over = match action {
            TscaAction::TerminateAgent { .. } => {
                (incident.terminations >= TERMINATIONS_MAX).then(|| format!("{TERMINATIONS_MAX} terminations"))
            }
            TscaAction::RestartComponent { .. } => (incident.component_restarts >= COMPONENT_RESTARTS_MAX)
                .then(|| format!("{COMPONENT_RESTARTS_MAX} component restarts")),
            TscaAction::RestartSystem => (incident.system_restarts >= SYSTEM_RESTARTS_MAX)
                .then(|| format!("{SYSTEM_RESTARTS_MAX} system restart")),
        };
        let event = if let Some(spent) = over {
            let why = format!("{why}; the budget of incident {id} ({spent}) is spent: a human decides");
            TscaEvent::Escalated { incident: id, action, why, at_ms: now_ms }
        } else {
            match self.authorization {
                Authorization::A => TscaEvent::Executed { incident: id, action, why, at_ms: now_ms },
                Authorization::B if self.proposals.len() >= PROPOSALS_MAX => {
                    let why = format!("{why}; {PROPOSALS_MAX} proposals are already open");
                    TscaEvent::Escalated { incident: id, action, why, at_ms: now_ms }
                }
                Authorization::B => TscaEvent::Proposed {
                    proposal: format!("{id}-p{}", incident.proposals_made.saturating_add(1)),
                    incident: id,
                    action,
                    why,
                    expires_ms: now_ms.saturating_add(PROPOSAL_TTL_MS),
                    at_ms: now_ms,
                },
                Authorization::C => TscaEvent::Advised { incident: id, action, why, at_ms: now_ms },
            }
        };
        events.push(event);
        events
    }

    /// The events of the commander's approval of `proposal`: approved, then executed.
    ///
    /// # Errors
    /// No such open proposal, or it lapsed.
    pub fn approve(&self, proposal: &str, key_id: &str, now_ms: u64) -> Result<Vec<TscaEvent>, String> {
        let p =
            self.proposals.iter().find(|p| p.id == proposal).ok_or_else(|| format!("no open proposal {proposal}"))?;
        if now_ms >= p.expires_ms {
            return Err(format!("proposal {proposal} lapsed at {} ms", p.expires_ms));
        }
        let incident = self.incident.as_ref().map_or_else(String::new, |i| i.id.clone());
        Ok(vec![
            TscaEvent::Approved { proposal: p.id.clone(), key_id: key_id.to_owned(), at_ms: now_ms },
            TscaEvent::Executed {
                incident,
                action: p.action.clone(),
                why: format!("{} (approved by the commander)", p.why),
                at_ms: now_ms,
            },
        ])
    }

    /// The failure of an executed action (its charge returned, a human decides).
    #[must_use]
    pub fn failed(&self, action: &TscaAction, why: &str, now_ms: u64) -> Option<TscaEvent> {
        let incident = self.incident.as_ref()?.id.clone();
        Some(TscaEvent::Failed { incident, action: action.clone(), why: why.to_owned(), at_ms: now_ms })
    }

    /// Open proposals the watchdog no longer confirms: each withdrawn.
    #[must_use]
    pub fn stale(&self, confirm: impl Fn(&TscaAction) -> Result<(), String>, now_ms: u64) -> Vec<TscaEvent> {
        self.proposals
            .iter()
            .filter_map(|p| {
                confirm(&p.action).err().map(|why| TscaEvent::Withdrawn { proposal: p.id.clone(), why, at_ms: now_ms })
            })
            .collect()
    }

    /// Proposals past their time: each an `Expired` event (then the minimal safe state).
    #[must_use]
    pub fn expired(&self, now_ms: u64) -> Vec<TscaEvent> {
        self.proposals
            .iter()
            .filter(|p| now_ms >= p.expires_ms)
            .map(|p| TscaEvent::Expired { proposal: p.id.clone(), at_ms: now_ms })
            .collect()
    }

    /// The close of the open incident, when the node has been healthy with
    /// nothing pending for [`INCIDENT_QUIET_MS`].
    #[must_use]
    pub fn close_if_quiet(&self, healthy: bool, now_ms: u64) -> Option<TscaEvent> {
        let i = self.incident.as_ref()?;
        let quiet = now_ms.saturating_sub(i.last_ms) >= INCIDENT_QUIET_MS;
        (healthy && quiet && self.proposals.is_empty()).then(|| TscaEvent::IncidentClosed {
            incident: i.id.clone(),
            terminations: i.terminations,
            component_restarts: i.component_restarts,
            system_restarts: i.system_restarts,
            at_ms: now_ms,
        })
    }

    /// The mode these observations call for, and the event when it changes.
    #[must_use]
    pub fn mode_change(&self, heartbeat_lost: bool, degraded: bool, now_ms: u64) -> Option<TscaEvent> {
        let (mode, why) = if heartbeat_lost {
            (TscaMode::AutonomousRecovery, "a heartbeat is lost: recovery actions run")
        } else if degraded || self.incident.is_some() {
            (TscaMode::Observer, "an incident is open or the state is degraded")
        } else {
            (TscaMode::Dormant, "nothing to recover")
        };
        (mode != self.mode).then(|| TscaEvent::Mode { mode, why: why.to_owned(), at_ms: now_ms })
    }

    /// Applies one logged event (live after logging it, and in the fold).
    pub fn apply(&mut self, event: &TscaEvent) {
        match event {
            TscaEvent::Mode { mode, .. } => self.mode = *mode,
            TscaEvent::IncidentOpened { incident, at_ms } => {
                self.incident = Some(Incident::opened(incident.clone(), *at_ms));
            }
            TscaEvent::Executed { action, at_ms, .. } => {
                if let Some(i) = &mut self.incident {
                    i.last_ms = *at_ms;
                    match action {
                        TscaAction::TerminateAgent { .. } => i.terminations = i.terminations.saturating_add(1),
                        TscaAction::RestartComponent { .. } => {
                            i.component_restarts = i.component_restarts.saturating_add(1);
                        }
                        TscaAction::RestartSystem => i.system_restarts = i.system_restarts.saturating_add(1),
                    }
                    i.restarted.insert(action.target(), *at_ms);
                }
            }
            TscaEvent::Proposed { proposal, action, why, expires_ms, at_ms, .. } => {
                if let Some(i) = &mut self.incident {
                    i.last_ms = *at_ms;
                    i.proposals_made = i.proposals_made.saturating_add(1);
                }
                if self.proposals.len() < PROPOSALS_MAX {
                    self.proposals.push(Proposal {
                        id: proposal.clone(),
                        action: action.clone(),
                        why: why.clone(),
                        expires_ms: *expires_ms,
                    });
                }
            }
            TscaEvent::Advised { action, at_ms, .. }
            | TscaEvent::Escalated { action, at_ms, .. }
            | TscaEvent::Blocked { action, at_ms, .. } => {
                if let Some(i) = &mut self.incident {
                    i.last_ms = *at_ms;
                    if i.escalated.len() < ESCALATIONS_MAX {
                        i.escalated.insert(action.target());
                    }
                }
            }
            TscaEvent::Failed { action, at_ms, .. } => {
                if let Some(i) = &mut self.incident {
                    i.last_ms = *at_ms;
                    let count = match action {
                        TscaAction::TerminateAgent { .. } => &mut i.terminations,
                        TscaAction::RestartComponent { .. } => &mut i.component_restarts,
                        TscaAction::RestartSystem => &mut i.system_restarts,
                    };
                    *count = count.saturating_sub(1);
                    if i.escalated.len() < ESCALATIONS_MAX {
                        i.escalated.insert(action.target());
                    }
                }
            }
            TscaEvent::Approved { proposal, .. }
            | TscaEvent::Expired { proposal, .. }
            | TscaEvent::Withdrawn { proposal, .. } => {
                self.proposals.retain(|p| &p.id != proposal);
            }
            TscaEvent::ChainStarted { at_ms, .. }
            | TscaEvent::ChainLevel { at_ms, .. }
            | TscaEvent::ChainFinished { at_ms, .. } => {
                if let Some(i) = &mut self.incident {
                    i.last_ms = *at_ms;
                }
            }
            TscaEvent::IncidentClosed { .. } => self.incident = None,
        }
    }
}

impl Incident {
    fn opened(id: String, at_ms: u64) -> Self {
        Self {
            id,
            opened_ms: at_ms,
            terminations: 0,
            component_restarts: 0,
            system_restarts: 0,
            last_ms: at_ms,
            restarted: BTreeMap::new(),
            escalated: BTreeSet::new(),
            proposals_made: 0,
        }
    }
}

/// The TSCA with its log section's chain: the next record's number and the
/// hash it links to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The state machine.
    pub tsca: Tsca,
    /// The last record's number (0: none yet).
    pub seq: u64,
    /// SHA3-256 of the last record's payload.
    pub head: [u8; 32],
}

impl Ledger {
    /// An empty section for `profile`.
    #[must_use]
    pub const fn new(profile: Profile) -> Self {
        Self { tsca: Tsca::new(profile), seq: 0, head: [0; 32] }
    }

    /// The record `event` is logged as, chained to the last one.
    #[must_use]
    pub fn record(&self, event: TscaEvent) -> crate::records::TscaRecord {
        crate::records::TscaRecord {
            v: crate::records::RECORD_VERSION,
            seq: self.seq.saturating_add(1),
            prev_sha3: crate::records::hex32(&self.head),
            event,
        }
    }

    /// Takes a record (just logged, or read by the fold) with its payload
    /// bytes as the log holds them: it must be the next in the chain.
    ///
    /// # Errors
    /// The chain is broken (a TSCA record missing, reordered or edited).
    pub fn fold(&mut self, record: &crate::records::TscaRecord, payload: &[u8]) -> Result<(), String> {
        if record.seq != self.seq.saturating_add(1) || record.prev_sha3 != crate::records::hex32(&self.head) {
            return Err(format!(
                "the TSCA chain is broken at its record {} (expected {} after {})",
                record.seq,
                self.seq.saturating_add(1),
                crate::records::hex32(&self.head)
            ));
        }
        self.head = maos_crypto::sha3_256(payload).0;
        self.seq = record.seq;
        self.tsca.apply(&record.event);
        Ok(())
    }
}

/// What the commander signs to approve a proposal (domain
/// [`maos_crypto::SignatureDomain::TscaPlan`]).
#[must_use]
pub fn approval_message(proposal: &str, action: &TscaAction) -> Vec<u8> {
    let action = serde_json::to_string(action).unwrap_or_default();
    format!("maos-tsca-approve\nproposal={proposal}\naction={action}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(n: u32) -> TscaAction {
        TscaAction::TerminateAgent { agent: AgentId::new(&format!("a{n}")).unwrap() }
    }

    fn run(t: &mut Tsca, action: &TscaAction, confirmed: Result<(), String>, now: u64) -> Vec<TscaEvent> {
        let events = t.decide(action, "test", confirmed, now);
        for e in &events {
            t.apply(e);
        }
        events
    }

    #[test]
    fn ct_deg_19_ten_terminations_then_the_eleventh_escalates() {
        let mut t = Tsca::new(Profile::Standard);
        let mut executed = 0;
        for n in 0..11 {
            let events = run(&mut t, &agent(n), Ok(()), 1_000 + u64::from(n));
            executed += events.iter().filter(|e| matches!(e, TscaEvent::Executed { .. })).count();
            if n == 10 {
                assert!(matches!(events.last(), Some(TscaEvent::Escalated { why, .. }) if why.contains("budget")));
            }
        }
        assert_eq!(executed, 10);
        assert!(run(&mut t, &agent(10), Ok(()), 2_000).is_empty(), "escalated once per incident");
        // Restarts have their own budget: five, settling between, then escalated.
        let dsc = TscaAction::RestartComponent { component: Component::Dsc };
        let mut now = 10_000;
        for _ in 0..5 {
            assert!(matches!(run(&mut t, &dsc, Ok(()), now).last(), Some(TscaEvent::Executed { .. })));
            assert!(run(&mut t, &dsc, Ok(()), now + 1).is_empty(), "settling");
            now += RESTART_SETTLE_MS;
        }
        assert!(matches!(run(&mut t, &dsc, Ok(()), now).last(), Some(TscaEvent::Escalated { .. })));
        let sys = TscaAction::RestartSystem;
        assert!(matches!(run(&mut t, &sys, Ok(()), now).last(), Some(TscaEvent::Executed { .. })));
        assert!(matches!(run(&mut t, &sys, Ok(()), now + RESTART_SETTLE_MS).last(), Some(TscaEvent::Escalated { .. })));
    }

    #[test]
    fn ct_deg_19_the_watchdog_blocks_terminating_a_healthy_agent() {
        let healthy = confirm(&agent(1), &[], |_| false, true);
        assert!(healthy.is_err());
        let mut t = Tsca::new(Profile::Standard);
        let events = run(&mut t, &agent(1), healthy, 5);
        assert!(matches!(events.last(), Some(TscaEvent::Blocked { .. })), "{events:?}");
        assert_eq!(t.incident.as_ref().map(|i| i.terminations), Some(0));
        let dsc = TscaAction::RestartComponent { component: Component::Dsc };
        assert!(confirm(&dsc, &[Component::Sequencer], |_| true, true).is_err());
        assert!(confirm(&dsc, &[Component::Dsc], |_| true, true).is_ok());
        assert!(confirm(&TscaAction::RestartSystem, &[Component::Sequencer], |_| true, false).is_err());
    }

    #[test]
    fn ct_deg_20_standard_executes_hardened_proposes_isolated_advises() {
        let dsc = TscaAction::RestartComponent { component: Component::Dsc };
        let first = |p| run(&mut Tsca::new(p), &dsc, Ok(()), 7).pop();
        assert!(matches!(first(Profile::Standard), Some(TscaEvent::Executed { .. })));
        assert!(matches!(first(Profile::Isolated), Some(TscaEvent::Advised { .. })));
        let mut t = Tsca::new(Profile::Hardened);
        let Some(TscaEvent::Proposed { proposal, expires_ms, .. }) = run(&mut t, &dsc, Ok(()), 7).pop() else {
            panic!("no proposal")
        };
        assert_eq!(expires_ms, 7 + PROPOSAL_TTL_MS);
        assert!(run(&mut t, &dsc, Ok(()), 8).is_empty(), "proposed once");
        let approved = t.approve(&proposal, "key", 9).unwrap();
        assert!(matches!(&approved[..], [TscaEvent::Approved { .. }, TscaEvent::Executed { .. }]));
        // Unanswered for 15 minutes: expired (the kernel then goes to the minimal safe state).
        let mut t = Tsca::new(Profile::Hardened);
        run(&mut t, &dsc, Ok(()), 7);
        assert!(t.expired(7 + PROPOSAL_TTL_MS - 1).is_empty());
        let lapsed = t.expired(7 + PROPOSAL_TTL_MS);
        assert!(matches!(&lapsed[..], [TscaEvent::Expired { .. }]));
        assert!(t.approve("inc-7-p1", "key", 7 + PROPOSAL_TTL_MS).is_err());
    }

    #[test]
    fn a_failed_action_returns_its_charge_and_a_withdrawn_proposal_never_expires() {
        let mut t = Tsca::new(Profile::Standard);
        run(&mut t, &agent(1), Ok(()), 5);
        let failed = t.failed(&agent(1), "state full", 6).unwrap();
        t.apply(&failed);
        let i = t.incident.as_ref().unwrap();
        assert_eq!(i.terminations, 0, "refunded");
        assert!(run(&mut t, &agent(1), Ok(()), 7).is_empty(), "a human decides now");
        let mut h = Tsca::new(Profile::Hardened);
        let dsc = TscaAction::RestartComponent { component: Component::Dsc };
        run(&mut h, &dsc, Ok(()), 5);
        assert!(h.stale(|_| Ok(()), 6).is_empty());
        let withdrawn = h.stale(|_| Err("responsive".into()), 6);
        assert!(matches!(&withdrawn[..], [TscaEvent::Withdrawn { .. }]));
        h.apply(&withdrawn[0]);
        assert!(h.expired(5 + PROPOSAL_TTL_MS).is_empty(), "nothing left to lapse");
    }

    #[test]
    fn an_incident_closes_after_a_quiet_healthy_minute_and_the_next_has_a_fresh_budget() {
        let mut t = Tsca::new(Profile::Standard);
        for n in 0..10 {
            run(&mut t, &agent(n), Ok(()), 100);
        }
        assert_eq!(t.close_if_quiet(true, 100 + INCIDENT_QUIET_MS - 1), None);
        assert_eq!(t.close_if_quiet(false, 100 + INCIDENT_QUIET_MS), None);
        let closed = t.close_if_quiet(true, 100 + INCIDENT_QUIET_MS).unwrap();
        t.apply(&closed);
        let events = run(&mut t, &agent(10), Ok(()), 100 + INCIDENT_QUIET_MS + 1);
        assert!(matches!(&events[..], [TscaEvent::IncidentOpened { .. }, TscaEvent::Executed { .. }]));
    }

    #[test]
    fn ct_deg_21_no_action_names_security_configuration() {
        // The action set is closed: a plan that names anything else does not parse.
        for forbidden in ["rule_change", "issue_token", "ifc_change", "profile_change", "install", "promote"] {
            let plan = serde_json::json!({ "action": forbidden });
            assert!(serde_json::from_value::<TscaAction>(plan).is_err(), "{forbidden}");
        }
        let ok = serde_json::json!({ "action": "restart_component", "component": "dsc" });
        assert!(serde_json::from_value::<TscaAction>(ok).is_ok());
    }

    #[test]
    fn the_section_is_a_chain_of_its_own() {
        let mut ledger = Ledger::new(Profile::Standard);
        let events = ledger.tsca.decide(&agent(1), "test", Ok(()), 5);
        let mut records = Vec::new();
        for e in events {
            let r = ledger.record(e);
            let payload = crate::records::encode(&r).unwrap();
            ledger.fold(&r, &payload).unwrap();
            records.push((r, payload));
        }
        assert_eq!(ledger.seq, 2);
        let mut again = Ledger::new(Profile::Standard);
        assert!(again.fold(&records[1].0, &records[1].1).is_err(), "a missing record breaks it");
        let mut edited = records[0].0.clone();
        edited.event = TscaEvent::IncidentOpened { incident: "inc-6".into(), at_ms: 6 };
        again.fold(&edited, &crate::records::encode(&edited).unwrap()).unwrap();
        assert!(again.fold(&records[1].0, &records[1].1).is_err(), "an edited record breaks it");
    }

    #[test]
    fn modes_follow_heartbeats_and_incidents() {
        let mut t = Tsca::new(Profile::Standard);
        assert_eq!(t.mode_change(false, false, 1), None);
        let Some(TscaEvent::Mode { mode, .. }) = t.mode_change(true, true, 1) else { panic!("no change") };
        assert_eq!(mode, TscaMode::AutonomousRecovery);
        t.apply(&TscaEvent::Mode { mode, why: String::new(), at_ms: 0 });
        assert!(matches!(t.mode_change(false, true, 2), Some(TscaEvent::Mode { mode: TscaMode::Observer, .. })));
    }
}
