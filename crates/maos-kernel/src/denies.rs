//! Repeated denies, logged once per window (issue #12: denies cost the agent,
//! not the disk).
//!
//! Guarantees:
//! - The first deny of an agent for one action and code in a window of
//!   [`DENY_WINDOW_MS`] is logged in full (a decision or refusal record); the
//!   others in that window are counted and logged as one `kernel.denies`
//!   record ([`crate::records::KIND_DENIES`]) when the window closes or the
//!   kernel stops. Per agent the log grows by at most two records per (action,
//!   code) pair and window, whatever the request rate (plus the identical
//!   denies decided in the same batch as the first, before its window opens:
//!   at most `DECISION_BATCH_MAX`); refusals before the DSC
//!   count under their code alone, so an agent inventing action names cannot
//!   open new windows.
//! - A counted deny changes no state: its decision (and the rate charge it
//!   carries) is dropped, not applied, so the fold and `maos audit replay` see
//!   exactly what the live kernel applied. The first deny of the window is
//!   replayed like any decision.
//! - At most [`DENY_WINDOWS_MAX`] windows are open; past it denies are logged in
//!   full (visible, never dropped).
//! - A crash loses the counts of the open windows (at most [`DENY_WINDOW_MS`]
//!   of repeats); the first deny of each is already in the log.

use crate::records::{DeniesRecord, RECORD_VERSION};
use maos_model::{AgentId, UnixMillis};
use maos_wal::Lsn;
use std::collections::BTreeMap;

/// Length of one aggregation window.
pub const DENY_WINDOW_MS: u64 = 60_000;
/// Windows open at once: bounds the sequencer's memory under a flood of
/// distinct agents (each window is one small entry).
pub const DENY_WINDOWS_MAX: usize = 4096;
/// The action key of refusals before the DSC: their action may be any string.
const ANY_ACTION: &str = "*";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    agent: AgentId,
    action: String,
    code: String,
}

#[derive(Debug, Clone)]
struct Window {
    first_lsn: Option<Lsn>,
    first_ms: u64,
    last_ms: u64,
    count: u64,
    ends_ms: u64,
}

/// The open windows.
#[derive(Debug, Default)]
pub(crate) struct DenyWindows {
    open: BTreeMap<Key, Window>,
}

/// Which kind of refusal a deny is, for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source<'a> {
    /// A DSC decision on a described (configured) action.
    Decision(&'a str),
    /// A kernel refusal before the DSC (any action string).
    Refusal,
}

impl Source<'_> {
    fn action(self) -> String {
        match self {
            Self::Decision(action) => action.to_owned(),
            Self::Refusal => ANY_ACTION.to_owned(),
        }
    }
}

impl DenyWindows {
    /// Counts this deny in its open window and returns the Lsn of the window's
    /// first record; `None` when it must be logged in full.
    pub(crate) fn absorb(&mut self, agent: &AgentId, source: Source<'_>, code: &str, now: UnixMillis) -> Option<Lsn> {
        let key = Key { agent: agent.clone(), action: source.action(), code: code.to_owned() };
        let window = self.open.get_mut(&key)?;
        if now.0 >= window.ends_ms {
            return None;
        }
        let first = window.first_lsn?;
        window.count = window.count.saturating_add(1);
        window.last_ms = window.last_ms.max(now.0);
        Some(first)
    }

    /// A deny was logged in full at `lsn`: later identical ones until the window
    /// ends are counted. Returns the record of a window it replaces, if any.
    pub(crate) fn opened(
        &mut self,
        agent: &AgentId,
        source: Source<'_>,
        code: &str,
        lsn: Option<Lsn>,
        now: UnixMillis,
    ) -> Option<DeniesRecord> {
        let key = Key { agent: agent.clone(), action: source.action(), code: code.to_owned() };
        if let Some(w) = self.open.get(&key)
            && now.0 < w.ends_ms
        {
            return None;
        }
        let closed = self.open.remove(&key).and_then(|w| record(&key, &w));
        if self.open.len() < DENY_WINDOWS_MAX {
            let window = Window {
                first_lsn: lsn,
                first_ms: now.0,
                last_ms: now.0,
                count: 0,
                ends_ms: now.0.saturating_add(DENY_WINDOW_MS),
            };
            self.open.insert(key, window);
        }
        closed
    }

    /// Closes the windows that ended by `now`; returns the records to log
    /// (windows that counted nothing leave none).
    pub(crate) fn due(&mut self, now: UnixMillis) -> Vec<DeniesRecord> {
        let ended: Vec<Key> = self.open.iter().filter(|(_, w)| now.0 >= w.ends_ms).map(|(k, _)| k.clone()).collect();
        ended.iter().filter_map(|k| self.open.remove(k).and_then(|w| record(k, &w))).collect()
    }

    /// Closes every window (the kernel stops).
    pub(crate) fn drain(&mut self) -> Vec<DeniesRecord> {
        std::mem::take(&mut self.open).iter().filter_map(|(k, w)| record(k, w)).collect()
    }
}

fn record(key: &Key, window: &Window) -> Option<DeniesRecord> {
    (window.count > 0).then(|| DeniesRecord {
        v: RECORD_VERSION,
        agent: key.agent.clone(),
        action: key.action.clone(),
        code: key.code.clone(),
        count: window.count,
        first_lsn: window.first_lsn.map(|l| l.0),
        first_ms: window.first_ms,
        last_ms: window.last_ms,
        window_ms: DENY_WINDOW_MS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str) -> AgentId {
        AgentId::new(name).unwrap()
    }

    #[test]
    fn repeats_in_a_window_are_counted_and_logged_once() {
        let mut w = DenyWindows::default();
        let a = agent("a");
        let t0 = UnixMillis(1_000);
        assert_eq!(w.absorb(&a, Source::Decision("fs.write"), "DSC-1-SCOPE", t0), None);
        assert!(w.opened(&a, Source::Decision("fs.write"), "DSC-1-SCOPE", Some(Lsn(7)), t0).is_none());
        for i in 1..=5 {
            assert_eq!(w.absorb(&a, Source::Decision("fs.write"), "DSC-1-SCOPE", UnixMillis(1_000 + i)), Some(Lsn(7)));
        }
        // Another code, action or agent is its own window.
        assert_eq!(w.absorb(&a, Source::Decision("fs.write"), "DSC-4-READ-UP", t0), None);
        assert_eq!(w.absorb(&a, Source::Decision("fs.read"), "DSC-1-SCOPE", t0), None);
        assert_eq!(w.absorb(&agent("b"), Source::Decision("fs.write"), "DSC-1-SCOPE", t0), None);
        assert!(w.due(UnixMillis(1_000 + DENY_WINDOW_MS - 1)).is_empty());
        let due = w.due(UnixMillis(1_000 + DENY_WINDOW_MS));
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].count, due[0].first_lsn, due[0].last_ms), (5, Some(7), 1_005));
        // The window closed: the next deny is logged in full again.
        assert_eq!(w.absorb(&a, Source::Decision("fs.write"), "DSC-1-SCOPE", UnixMillis(1_000 + DENY_WINDOW_MS)), None);
    }

    #[test]
    fn refusals_share_one_window_whatever_the_action_string() {
        let mut w = DenyWindows::default();
        let a = agent("a");
        let t0 = UnixMillis(5);
        w.opened(&a, Source::Refusal, "INTENT-ACTION-UNKNOWN", Some(Lsn(3)), t0);
        assert_eq!(w.absorb(&a, Source::Refusal, "INTENT-ACTION-UNKNOWN", t0), Some(Lsn(3)));
        let drained = w.drain();
        assert_eq!((drained.len(), drained[0].action.as_str(), drained[0].count), (1, "*", 1));
        assert!(w.drain().is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_a_full_table_logs_in_full() {
        let mut w = DenyWindows::default();
        let t0 = UnixMillis(0);
        for i in 0..DENY_WINDOWS_MAX {
            w.opened(&agent(&format!("a{i}")), Source::Refusal, "X", Some(Lsn(1)), t0);
        }
        let extra = agent("extra");
        w.opened(&extra, Source::Refusal, "X", Some(Lsn(2)), t0);
        assert_eq!(w.absorb(&extra, Source::Refusal, "X", t0), None, "no window: logged in full");
        assert_eq!(w.open.len(), DENY_WINDOWS_MAX);
    }
}
