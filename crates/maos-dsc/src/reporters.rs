//! How far a reporting agent's word goes (spec §49.12 seam S5, §33.7.2;
//! CT-IMM-06..08): colluding reports are held, reporters whose reports keep
//! proving false are suspended, and reports can put only so many agents in
//! observation in an hour.
//!
//! Guarantees: a pure fold over logged reports and signals (logged times
//! only, integers only), bounded per reporter ([`HISTORY_MAX`]) and per node
//! ([`RAISES_PER_HOUR_MAX`]). A report is **confirmed** when its suspect gives
//! a danger signal of its own (a deny, a fingerprint signal or pause,
//! apoptosis, a raise by an advance, or an elimination) within [`CONFIRM_MS`]
//! after it, or is isolated already when it is made: the direct check that
//! stands in for the Security Agent's.

use maos_model::AgentId;
use serde::{Deserialize, Serialize};

/// Reports about the same suspect by different reporters this close together
/// are held as possible collusion (CT-IMM-06).
pub const COLLUSION_WINDOW_MS: u64 = 60_000;
/// A reporter flagged for collusion weighs half for this long.
pub const FLAG_MS: u64 = 24 * 60 * 60_000;
/// A report is confirmed by a signal of its suspect within this time.
pub const CONFIRM_MS: u64 = 60 * 60_000;
/// The false-alarm rate is measured over this window (CT-IMM-07: 30 days).
pub const HISTORY_MS: u64 = 30 * 24 * 60 * 60_000;
/// Reports remembered per reporter (the oldest fall out first).
pub const HISTORY_MAX: usize = 64;
/// Resolved reports needed before a reporter can be suspended.
pub const FALSE_ALARM_MIN_RESOLVED: usize = 5;
/// A reporter whose resolved reports are false more often than this (in
/// percent) is suspended (CT-IMM-07: more than 80 %).
pub const FALSE_ALARM_PERCENT_MAX: usize = 80;
/// Agents reports may put in observation per hour on this node: the
/// quarantine budget (CT-IMM-08); past it a report is logged and weighs
/// nothing.
pub const RAISES_PER_HOUR_MAX: usize = 5;
const HOUR_MS: u64 = 60 * 60_000;

/// One report as its reporter's history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// When it was logged.
    pub at_ms: u64,
    /// About whom.
    pub suspect: AgentId,
    /// Its suspect gave a signal of its own within [`CONFIRM_MS`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub confirmed: bool,
    /// It was part of a possible collusion (held, or the report others joined).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flagged: bool,
}

/// One reporter's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporter {
    /// Its reports, oldest first.
    pub history: Vec<Outcome>,
}

impl Reporter {
    /// Resolved reports (older than [`CONFIRM_MS`], within [`HISTORY_MS`]) at
    /// `now_ms`, and how many of them were never confirmed.
    #[must_use]
    pub fn false_alarms_at(&self, now_ms: u64) -> (usize, usize) {
        let resolved = self
            .history
            .iter()
            .filter(|o| o.at_ms <= now_ms && now_ms - o.at_ms >= CONFIRM_MS && now_ms - o.at_ms < HISTORY_MS);
        resolved.fold((0, 0), |(all, false_), o| (all + 1, false_ + usize::from(!o.confirmed)))
    }

    /// Whether its reports are suspended at `now_ms` (CT-IMM-07).
    #[must_use]
    pub fn suspended_at(&self, now_ms: u64) -> bool {
        let (resolved, false_) = self.false_alarms_at(now_ms);
        resolved >= FALSE_ALARM_MIN_RESOLVED && false_ * 100 > FALSE_ALARM_PERCENT_MAX * resolved
    }

    /// Whether it was flagged for collusion in the [`FLAG_MS`] up to `now_ms`.
    #[must_use]
    pub fn flagged_at(&self, now_ms: u64) -> bool {
        self.history.iter().any(|o| o.flagged && o.at_ms <= now_ms && now_ms - o.at_ms < FLAG_MS)
    }

    pub(crate) fn push(&mut self, outcome: Outcome) {
        if self.history.len() >= HISTORY_MAX {
            self.history.remove(0);
        }
        self.history.push(outcome);
    }

    /// Flags its reports about `suspect` within the collusion window before
    /// `at_ms`: another reporter joined them.
    pub(crate) fn flag_near(&mut self, suspect: &AgentId, at_ms: u64) {
        for o in self.history.iter_mut() {
            if &o.suspect == suspect && o.at_ms <= at_ms && at_ms - o.at_ms < COLLUSION_WINDOW_MS {
                o.flagged = true;
            }
        }
    }

    pub(crate) fn mark(&mut self, suspect: &AgentId, at_ms: u64, confirmed: bool, flagged: bool) {
        for o in self.history.iter_mut().filter(|o| o.at_ms == at_ms && &o.suspect == suspect) {
            o.confirmed |= confirmed;
            o.flagged |= flagged;
        }
    }
}

/// What a report weighs and why, as the fold takes it (the kernel logs the
/// same assessment with the report).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// What it adds to the suspect's score (before the hourly cap below soft
    /// isolation).
    pub weight: u32,
    /// Held as possible collusion: another reporter reported the same suspect
    /// within a minute (CT-IMM-06). It weighs nothing; the suspect's own
    /// signals are the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_with: Vec<AgentId>,
    /// Halved: the reporter was flagged for collusion in the last 24 hours.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down_weighted: bool,
    /// The reporter's reports are suspended (CT-IMM-07): the kernel refuses
    /// the report, so a logged one never carries it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// The node's quarantine budget for reports is spent this hour (CT-IMM-08).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_budget: bool,
}

fn in_hour(at: u64, now_ms: u64) -> bool {
    at <= now_ms && now_ms - at < HOUR_MS
}

/// The report-driven raises to observation of the last hour.
pub(crate) fn raises_in_hour(raises: &[(u64, AgentId)], now_ms: u64) -> usize {
    raises.iter().filter(|(at, _)| in_hour(*at, now_ms)).count()
}

/// Records a report-driven raise of `suspect` at `at_ms`, keeping only the
/// last hour's (at most [`RAISES_PER_HOUR_MAX`]).
pub(crate) fn record_raise(raises: &mut Vec<(u64, AgentId)>, suspect: &AgentId, at_ms: u64) {
    raises.retain(|(at, _)| in_hour(*at, at_ms));
    if raises.len() >= RAISES_PER_HOUR_MAX {
        raises.remove(0);
    }
    raises.push((at_ms, suspect.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(at_ms: u64, confirmed: bool) -> Outcome {
        Outcome { at_ms, suspect: AgentId::new("s").unwrap(), confirmed, flagged: false }
    }

    /// Only resolved reports count, and only past five of them; more than
    /// 80 % false suspends.
    #[test]
    fn false_alarm_rate_suspends_past_80_percent_of_5_resolved() {
        let mut r = Reporter::default();
        for i in 0..5 {
            r.push(outcome(i * HOUR_MS, false));
        }
        assert_eq!(r.false_alarms_at(5 * HOUR_MS - 1), (4, 4), "the fifth is not resolved yet");
        assert!(!r.suspended_at(5 * HOUR_MS - 1));
        assert!(r.suspended_at(5 * HOUR_MS));
        // One confirmed in five is 80 %: not more than 80.
        r.mark(&AgentId::new("s").unwrap(), 0, true, false);
        assert!(!r.suspended_at(5 * HOUR_MS));
        // Thirty days on, they have left the window.
        assert_eq!(r.false_alarms_at(HISTORY_MS + 5 * HOUR_MS).0, 0);
        for i in 0..(HISTORY_MAX as u64 + 3) {
            r.push(outcome(i, true));
        }
        assert_eq!(r.history.len(), HISTORY_MAX);
    }
}
