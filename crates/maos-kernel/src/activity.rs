//! The node's recent activity: which agent's allowed request, or denied
//! request that was a danger signal, touched which resource in the last 30
//! minutes. The immune system reads it three times (spec §37.8.2, §37.8.3):
//! stage 3 marks an agent's outputs of that window unverified, stage 5 puts
//! the agents that read what an eliminated agent wrote in observation (the
//! lateral-movement check), and stage 4's threat pattern takes its
//! indicators from the agent's signals.
//!
//! Guarantees: bounded ([`ACTIVITY_MAX`] entries, [`ACTIVITY_WINDOW_MS`] of
//! logged time, [`RESOURCES_PER_ENTRY_MAX`] resources each), folded from
//! decision records so a restart keeps it, and honest about what it lost: an
//! answer says whether the window was complete.

use maos_model::{AgentId, Intent, Resource};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How far back stage 3's marking and stage 5's contact check look (spec
/// §37.8.2: the previous 30 minutes).
pub const ACTIVITY_WINDOW_MS: u64 = 30 * 60_000;
/// Entries kept for the whole node; the oldest falls out first.
pub const ACTIVITY_MAX: usize = 16_384;
/// Resources kept per entry (an intent names few; the rest are not compared).
pub const RESOURCES_PER_ENTRY_MAX: usize = 8;
/// Decisions listed in one stage-3 marking.
pub const UNVERIFIED_LISTED_MAX: usize = 1_024;
/// Contacts one elimination puts in observation.
pub const CONTACTS_MAX: usize = 64;
/// Indicators one threat pattern keeps.
pub const INDICATORS_MAX: usize = 16;
/// The least weight of a signal whose targets become indicators, and of a
/// later signal that matches one: the codes that show an attack (a value
/// from an injection, an injection in the arguments, keys, a more trusted
/// ring), never a scope miss or a flow mistake (write-down, taint, read-up,
/// MAC), which honest agents make.
pub const INDICATOR_WEIGHT_MIN: u32 = 10;

#[derive(Debug, Clone)]
struct Entry {
    at_ms: u64,
    agent: AgentId,
    lsn: u64,
    effect: bool,
    /// A write of the `fs` effector (not a delete): its paths are files the
    /// agent wrote, which stage 4's forensic cleanup marks.
    fs_write: bool,
    /// For a denied request that was a danger signal: its code and weight.
    signal: Option<(maos_model::DenyCode, u32)>,
    resources: Vec<Resource>,
}

/// The last [`ACTIVITY_WINDOW_MS`] of allowed requests, oldest first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity {
    entries: VecDeque<Entry>,
    /// The time of the newest entry dropped for room (or of a restore from a
    /// snapshot, which carries no activity): an answer about a window that
    /// starts before it is incomplete.
    lost_ms: u64,
}

/// An agent's outputs in the window (stage 3's marking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outputs {
    pub since_ms: u64,
    pub decisions: Vec<u64>,
    pub complete: bool,
}

impl Activity {
    /// Folds one allowed decision, logged at `lsn` at `at_ms`.
    pub(crate) fn record(&mut self, intent: &Intent, lsn: u64, at_ms: u64) {
        self.push(intent, lsn, at_ms, None);
    }

    /// Folds one denied decision that was a danger signal with `code`.
    pub(crate) fn signal(&mut self, intent: &Intent, signal: (maos_model::DenyCode, u32), lsn: u64, at_ms: u64) {
        self.push(intent, lsn, at_ms, Some(signal));
    }

    fn push(&mut self, intent: &Intent, lsn: u64, at_ms: u64, signal: Option<(maos_model::DenyCode, u32)>) {
        let horizon = at_ms.saturating_sub(ACTIVITY_WINDOW_MS);
        while self.entries.front().is_some_and(|e| e.at_ms < horizon) {
            self.entries.pop_front();
        }
        if self.entries.len() >= ACTIVITY_MAX
            && let Some(dropped) = self.entries.pop_front()
        {
            self.lost_ms = self.lost_ms.max(dropped.at_ms);
        }
        self.entries.push_back(Entry {
            at_ms,
            agent: intent.agent.clone(),
            lsn,
            effect: intent.effect.is_effect(),
            fs_write: intent.effect.is_effect()
                && maos_commit::namespace_of(&intent.action) == "fs"
                && intent.action != "fs.delete",
            signal,
            resources: intent.resources.iter().take(RESOURCES_PER_ENTRY_MAX).cloned().collect(),
        });
    }

    /// Nothing before `at_ms` is known (a restore from a state snapshot).
    pub(crate) fn lost_before(&mut self, at_ms: u64) {
        self.entries.clear();
        self.lost_ms = self.lost_ms.max(at_ms);
    }

    fn window(&self, agent: &AgentId, now_ms: u64) -> impl Iterator<Item = &Entry> {
        let since = now_ms.saturating_sub(ACTIVITY_WINDOW_MS);
        self.entries.iter().filter(move |e| e.at_ms >= since && e.at_ms <= now_ms && &e.agent == agent)
    }

    fn allowed(&self, agent: &AgentId, now_ms: u64) -> impl Iterator<Item = &Entry> {
        self.window(agent, now_ms).filter(|e| e.signal.is_none())
    }

    /// What `agent`'s danger signals of the window aimed at: their codes and
    /// the recipients and domains the weighty ones ([`INDICATOR_WEIGHT_MIN`])
    /// named (a threat pattern's vector and indicators), in order, without
    /// repeats.
    pub(crate) fn signals(&self, agent: &AgentId, now_ms: u64) -> (Vec<maos_model::DenyCode>, Vec<Resource>) {
        let (mut codes, mut targets) = (Vec::new(), Vec::new());
        for e in self.window(agent, now_ms) {
            let Some((code, weight)) = e.signal else { continue };
            if !codes.contains(&code) {
                codes.push(code);
            }
            if weight < INDICATOR_WEIGHT_MIN {
                continue;
            }
            for r in e.resources.iter().filter(|r| is_target(r)) {
                if targets.len() < INDICATORS_MAX && !targets.contains(r) {
                    targets.push(r.clone());
                }
            }
        }
        (codes, targets)
    }

    /// `agent`'s allowed effects of the window ending at `now_ms`.
    pub(crate) fn outputs(&self, agent: &AgentId, now_ms: u64) -> Outputs {
        let since_ms = now_ms.saturating_sub(ACTIVITY_WINDOW_MS);
        let mut decisions: Vec<u64> = self.allowed(agent, now_ms).filter(|e| e.effect).map(|e| e.lsn).collect();
        let listed_all = decisions.len() <= UNVERIFIED_LISTED_MAX;
        decisions.truncate(UNVERIFIED_LISTED_MAX);
        Outputs { since_ms, decisions, complete: listed_all && self.lost_ms < since_ms }
    }

    /// The paths `agent` wrote through the `fs` effector in the window up to
    /// `now_ms`, each once, in order, and whether the window reached back
    /// that far (stage 4's forensic cleanup). Paths other tools name are not
    /// the `fs` effector's files, and a delete wrote nothing.
    pub(crate) fn written(&self, agent: &AgentId, now_ms: u64) -> (Vec<Resource>, bool) {
        let mut paths = BTreeSet::new();
        for e in self.allowed(agent, now_ms).filter(|e| e.fs_write) {
            paths.extend(e.resources.iter().filter(|r| r.kind == maos_model::ResourceKind::Path).cloned());
        }
        let complete = self.lost_ms < now_ms.saturating_sub(ACTIVITY_WINDOW_MS);
        (paths.into_iter().collect(), complete)
    }

    /// The agents that, in the window ending at `now_ms`, read a resource
    /// after `agent` wrote it, by id (at most [`CONTACTS_MAX`]).
    pub(crate) fn contacts(&self, agent: &AgentId, now_ms: u64) -> Vec<AgentId> {
        let since = now_ms.saturating_sub(ACTIVITY_WINDOW_MS);
        // The first time in the window `agent` wrote each resource.
        let mut written: BTreeMap<&Resource, u64> = BTreeMap::new();
        for e in self.allowed(agent, now_ms).filter(|e| e.effect) {
            for r in &e.resources {
                written.entry(r).or_insert(e.at_ms);
            }
        }
        let mut contacts = BTreeSet::new();
        for e in self.entries.iter().filter(|e| e.at_ms >= since && e.at_ms <= now_ms) {
            if &e.agent == agent || e.effect || e.signal.is_some() || contacts.contains(&e.agent) {
                continue;
            }
            if e.resources.iter().any(|r| written.get(r).is_some_and(|w| *w <= e.at_ms)) {
                contacts.insert(e.agent.clone());
            }
        }
        contacts.into_iter().take(CONTACTS_MAX).collect()
    }
}

/// A resource that names where something goes: a recipient or a domain
/// (paths and tool resources are the node's own, not an attacker's).
pub(crate) fn is_target(r: &Resource) -> bool {
    matches!(r.kind, maos_model::ResourceKind::Recipient | maos_model::ResourceKind::Domain)
}

/// An intent for the kernel's unit tests.
#[cfg(test)]
pub(crate) fn test_intent(agent: &str, action: &str, effect: maos_model::EffectClass, resource: Resource) -> Intent {
    Intent {
        id: maos_model::IntentId::new_v7(0, [7; 10]),
        agent: AgentId::new(agent).unwrap(),
        action: action.into(),
        resources: vec![resource],
        args: std::collections::BTreeMap::new(),
        effect,
        cost: 0,
        sink_level: maos_model::IfcLevel::Internal,
        requires_integrity: false,
        reads: Vec::new(),
        sensitive_args: Vec::new(),
        provenance_deny: false,
        world_state_hash: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maos_model::{EffectClass, ResourceKind};

    const MIN: u64 = 60_000;

    fn intent(agent: &str, effect: bool, path: &str) -> Intent {
        let (action, class) = if effect { ("fs.write", EffectClass::Write) } else { ("fs.read", EffectClass::Observe) };
        test_intent(agent, action, class, Resource { kind: ResourceKind::Path, value: path.into() })
    }

    /// Stage 3 lists the agent's effects of the last 30 minutes; stage 5
    /// finds who read what it wrote afterwards, and only them.
    #[test]
    fn outputs_and_contacts_of_the_window() {
        let mut a = Activity::default();
        a.record(&intent("bad", true, "/shared/old"), 1, 0);
        a.record(&intent("bad", true, "/shared/x"), 2, 40 * MIN);
        a.record(&intent("early", false, "/shared/y"), 3, 41 * MIN);
        a.record(&intent("bad", true, "/shared/y"), 4, 42 * MIN);
        a.record(&intent("reader", false, "/shared/x"), 5, 43 * MIN);
        a.record(&intent("bad", false, "/shared/z"), 6, 44 * MIN);
        a.record(&intent("writer", true, "/shared/x"), 7, 45 * MIN);
        a.record(&intent("stale", false, "/shared/old"), 8, 46 * MIN);
        let bad = AgentId::new("bad").unwrap();
        let out = a.outputs(&bad, 50 * MIN);
        assert_eq!(out, Outputs { since_ms: 20 * MIN, decisions: vec![2, 4], complete: true });
        // `early` read /shared/y before it was written; `stale` read what
        // was written outside the window; `writer` only wrote.
        assert_eq!(a.contacts(&bad, 50 * MIN), vec![AgentId::new("reader").unwrap()]);
    }

    /// The bound drops the oldest entries and says the window is incomplete.
    #[test]
    fn a_full_window_says_it_is_incomplete() {
        let mut a = Activity::default();
        for i in 0..=ACTIVITY_MAX as u64 {
            a.record(&intent("busy", true, "/w"), i, 10 * MIN + i);
        }
        assert_eq!(a.entries.len(), ACTIVITY_MAX);
        let out = a.outputs(&AgentId::new("busy").unwrap(), 20 * MIN);
        assert!(!out.complete);
        assert_eq!(out.decisions.len(), UNVERIFIED_LISTED_MAX);
        let mut restored = Activity::default();
        restored.lost_before(30 * MIN);
        assert!(!restored.outputs(&AgentId::new("busy").unwrap(), 40 * MIN).complete);
    }
}
