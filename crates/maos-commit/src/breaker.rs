//! A circuit breaker (spec §38.4) for one interface the Commit Layer calls out
//! through (an upstream MCP server, an effector's remote end): a failing
//! remote is answered at once with `CIRCUIT-OPEN` instead of being waited on.
//!
//! Guarantees (a pure state machine: the caller supplies monotonic time, so
//! every transition is reproducible in a test):
//! - **Closed → Open** after [`CONSECUTIVE_FAILURES`] failures in a row, or
//!   more than half the calls of the last [`WINDOW_MS`] failing once at least
//!   [`WINDOW_MIN_CALLS`] were made (the spec gives no minimum; without one a
//!   single failed call would be 100 %).
//! - **Open** refuses every call until its cooldown ([`COOLDOWN_MS`] first)
//!   has passed; then **Half-Open** lets exactly one probe through.
//! - The probe's success closes the breaker (and resets the cooldown); its
//!   failure opens it again with the cooldown doubled, at most [`COOLDOWN_MAX_MS`].
//! - Every transition is returned to the caller, which logs it.
//! - Bounded: the window keeps at most [`WINDOW_CALLS_MAX`] outcomes.

use std::collections::VecDeque;

/// A circuit breaker changed state ([`BreakerRecord`]): an upstream MCP
/// server's, or a remote an effector reaches (`http:<host>`).
pub const KIND_BREAKER: maos_wal::RecordKind = maos_wal::RecordKind(0x0410);

/// Kind `0x0410`: a circuit breaker transition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakerRecord {
    /// 1.
    pub v: u16,
    /// The interface: an upstream's name, or `http:<host>` for the http effector.
    pub upstream: String,
    /// `closed`, `open` or `half_open`.
    pub from: String,
    /// Same names.
    pub to: String,
    /// Why.
    pub reason: String,
    /// The cooldown in force after it, ms.
    pub cooldown_ms: u64,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// Failures in a row that open the breaker.
pub const CONSECUTIVE_FAILURES: u32 = 5;
/// The failure-rate window.
pub const WINDOW_MS: u64 = 30_000;
/// Calls in the window before the failure rate counts.
pub const WINDOW_MIN_CALLS: usize = 10;
/// Outcomes kept in the window (older ones are dropped first).
pub const WINDOW_CALLS_MAX: usize = 1024;
/// The first cooldown of an open breaker.
pub const COOLDOWN_MS: u64 = 10_000;
/// The longest cooldown (the doubling stops here).
pub const COOLDOWN_MAX_MS: u64 = 300_000;
/// A probe not reported within this long (longer than any call may wait) is
/// counted as failed: a caller that died between asking and reporting cannot
/// leave the breaker half-open for good.
pub const PROBE_STALE_MS: u64 = 11 * 60 * 1000;
/// The code a call refused by an open breaker is answered with.
pub const CODE_CIRCUIT_OPEN: &str = "CIRCUIT-OPEN";

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until `until_ms`.
    Open {
        /// When it opened.
        since_ms: u64,
        /// When a probe may go through.
        until_ms: u64,
    },
    /// The one probe is in flight.
    HalfOpen {
        /// When it was handed out.
        since_ms: u64,
    },
}

impl BreakerState {
    /// Stable name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen { .. } => "half_open",
        }
    }
}

/// What a call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// An ordinary call (closed breaker).
    Call,
    /// The half-open breaker's one probe: its outcome decides.
    Probe,
}

/// A refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// How long until a probe may go through (0 while a probe is out).
    pub retry_in_ms: u64,
}

/// A transition, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transition {
    /// State before.
    pub from: &'static str,
    /// State after.
    pub to: &'static str,
    /// Why, one line.
    pub reason: String,
    /// The cooldown now in force, ms.
    pub cooldown_ms: u64,
}

/// One interface's breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: BreakerState,
    consecutive: u32,
    window: VecDeque<(u64, bool)>,
    cooldown_ms: u64,
    /// The first cooldown: [`COOLDOWN_MS`], doubled in conservative mode.
    base_cooldown_ms: u64,
    /// When it left closed, kept through its probes until it closes again.
    tripped_ms: Option<u64>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: BreakerState::Closed,
            consecutive: 0,
            window: VecDeque::new(),
            cooldown_ms: COOLDOWN_MS,
            base_cooldown_ms: COOLDOWN_MS,
            tripped_ms: None,
        }
    }
}

/// Logs a transition of the breaker on `interface`: a tracing event (a
/// warning when it opens) and a `circuit.breaker` record in `wal` (best
/// effort: a log that refuses it is itself reported).
pub fn log_transition(wal: &maos_wal::Wal, interface: &str, t: &Transition) {
    if t.to == "open" {
        tracing::warn!(interface, from = t.from, reason = %t.reason, cooldown_ms = t.cooldown_ms, "circuit breaker opened");
    } else {
        tracing::info!(interface, from = t.from, to = t.to, reason = %t.reason, "circuit breaker");
    }
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let record = BreakerRecord {
        v: 1,
        upstream: interface.to_owned(),
        from: t.from.to_owned(),
        to: t.to.to_owned(),
        reason: t.reason.clone(),
        cooldown_ms: t.cooldown_ms,
        at_ms,
    };
    let appended = serde_json::to_vec(&record)
        .map_err(|e| e.to_string())
        .and_then(|payload| wal.append(KIND_BREAKER, &payload).map_err(|e| e.to_string()));
    if let Err(e) = appended {
        tracing::error!(interface, error = %e, "circuit breaker transition not logged");
    }
}

/// A breaker not closed for this long alerts the admin (spec §38.4: 5 min).
pub const ALERT_OPEN_MS: u64 = 5 * 60_000;

/// One breaker for `maos status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BreakerView {
    /// The interface: an upstream's name, or `http:<host>`.
    pub interface: String,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// How long it has not been closed (open and probing), ms.
    pub open_for_ms: Option<u64>,
    /// Open longer than [`ALERT_OPEN_MS`]: the admin must look.
    pub alert: bool,
}

impl Breaker {
    /// The current state.
    #[must_use]
    pub const fn state(&self) -> BreakerState {
        self.state
    }

    /// Its view at `now_ms` for `interface`.
    #[must_use]
    pub fn view(&self, interface: &str, now_ms: u64) -> BreakerView {
        let open_for_ms = self.tripped_ms.map(|at| now_ms.saturating_sub(at));
        BreakerView {
            interface: interface.to_owned(),
            state: self.state.name(),
            open_for_ms,
            alert: open_for_ms.is_some_and(|ms| ms > ALERT_OPEN_MS),
        }
    }

    /// Conservative mode (spec §38.6, the safe restart after an emergency
    /// shutdown): every cooldown starts at twice [`COOLDOWN_MS`]. A cooldown
    /// already running keeps its length; the next one follows the mode.
    pub fn set_conservative(&mut self, on: bool) {
        self.base_cooldown_ms = if on { COOLDOWN_MS.saturating_mul(2) } else { COOLDOWN_MS };
        if self.state == BreakerState::Closed {
            self.cooldown_ms = self.base_cooldown_ms;
        }
    }

    /// Asks to make a call at `now_ms`; an open breaker whose cooldown passed
    /// turns half-open and hands out its probe.
    ///
    /// # Errors
    /// [`Refused`] while open, or while the half-open probe is out.
    pub fn admit(&mut self, now_ms: u64) -> (Result<Admission, Refused>, Option<Transition>) {
        match self.state {
            BreakerState::Closed => (Ok(Admission::Call), None),
            BreakerState::Open { until_ms, .. } if now_ms < until_ms => {
                (Err(Refused { retry_in_ms: until_ms - now_ms }), None)
            }
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen { since_ms: now_ms };
                let t = self.transition("open", "cooldown over: one probe goes through".into());
                (Ok(Admission::Probe), Some(t))
            }
            BreakerState::HalfOpen { since_ms } if now_ms.saturating_sub(since_ms) > PROBE_STALE_MS => {
                self.cooldown_ms = self.cooldown_ms.saturating_mul(2).min(COOLDOWN_MAX_MS);
                let t = self.open(now_ms, "the probe never reported: counted as failed".into());
                (Err(Refused { retry_in_ms: self.cooldown_ms }), Some(t))
            }
            BreakerState::HalfOpen { .. } => (Err(Refused { retry_in_ms: 0 }), None),
        }
    }

    /// Records the outcome of an admitted call.
    pub fn record(&mut self, now_ms: u64, admission: Admission, ok: bool) -> Option<Transition> {
        if admission == Admission::Probe {
            if !matches!(self.state, BreakerState::HalfOpen { .. }) {
                return None;
            }
            return Some(if ok {
                let from = self.state.name();
                self.state = BreakerState::Closed;
                self.consecutive = 0;
                self.window.clear();
                self.cooldown_ms = self.base_cooldown_ms;
                self.tripped_ms = None;
                self.transition(from, "the probe succeeded".into())
            } else {
                self.cooldown_ms = self.cooldown_ms.saturating_mul(2).min(COOLDOWN_MAX_MS);
                self.open(now_ms, "the probe failed".into())
            });
        }
        // A call admitted while closed may finish after the breaker opened:
        // it counts for nothing then.
        if self.state != BreakerState::Closed {
            return None;
        }
        self.consecutive = if ok { 0 } else { self.consecutive.saturating_add(1) };
        if self.window.len() >= WINDOW_CALLS_MAX {
            self.window.pop_front();
        }
        self.window.push_back((now_ms, ok));
        while self.window.front().is_some_and(|(at, _)| now_ms.saturating_sub(*at) > WINDOW_MS) {
            self.window.pop_front();
        }
        if self.consecutive >= CONSECUTIVE_FAILURES {
            return Some(self.open(now_ms, format!("{} failures in a row", self.consecutive)));
        }
        let failed = self.window.iter().filter(|(_, ok)| !ok).count();
        if self.window.len() >= WINDOW_MIN_CALLS && failed * 2 > self.window.len() {
            let reason = format!("{failed} of the last {} calls in {} s failed", self.window.len(), WINDOW_MS / 1000);
            return Some(self.open(now_ms, reason));
        }
        None
    }

    fn open(&mut self, now_ms: u64, reason: String) -> Transition {
        let from = self.state.name();
        self.tripped_ms = self.tripped_ms.or(Some(now_ms));
        self.state = BreakerState::Open { since_ms: now_ms, until_ms: now_ms.saturating_add(self.cooldown_ms) };
        self.consecutive = 0;
        self.window.clear();
        self.transition(from, reason)
    }

    fn transition(&self, from: &'static str, reason: String) -> Transition {
        Transition { from, to: self.state.name(), reason, cooldown_ms: self.cooldown_ms }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conservative_mode_doubles_the_first_cooldown() {
        let mut b = Breaker::default();
        b.set_conservative(true);
        for _ in 0..CONSECUTIVE_FAILURES {
            let (admitted, _) = b.admit(0);
            let _ = b.record(0, admitted.unwrap(), false);
        }
        let (refused, _) = b.admit(1);
        assert_eq!(refused.unwrap_err().retry_in_ms, 2 * COOLDOWN_MS - 1);
        b.set_conservative(false);
        assert_eq!(b.view("x", 1).state, "open");
    }

    use super::*;

    #[test]
    fn open_longer_than_five_minutes_through_its_probes_alerts_until_it_closes() {
        let mut b = Breaker::default();
        for at in 0..5 {
            fail(&mut b, at);
        }
        assert_eq!(b.view("x", 4).open_for_ms, Some(0));
        // Probes keep failing: the cooldown restarts, the time open does not.
        let mut at = 4;
        for _ in 0..6 {
            at += b.cooldown_ms;
            fail(&mut b, at);
        }
        let v = b.view("x", at);
        assert!(v.alert && v.open_for_ms.unwrap() > ALERT_OPEN_MS, "{v:?}");
        at += b.cooldown_ms;
        let (probe, _) = b.admit(at);
        b.record(at, probe.unwrap(), true);
        assert_eq!(
            b.view("x", at),
            BreakerView { interface: "x".into(), state: "closed", open_for_ms: None, alert: false }
        );
    }

    fn fail(b: &mut Breaker, at: u64) -> Option<Transition> {
        let (admitted, _) = b.admit(at);
        b.record(at, admitted.unwrap(), false)
    }

    #[test]
    fn five_failures_in_a_row_open_and_the_cooldown_doubles_to_five_minutes() {
        let mut b = Breaker::default();
        for at in 0..4 {
            assert_eq!(fail(&mut b, at), None);
        }
        let t = fail(&mut b, 4).unwrap();
        assert_eq!((t.from, t.to, t.cooldown_ms), ("closed", "open", COOLDOWN_MS));
        assert_eq!(b.admit(5).0, Err(Refused { retry_in_ms: COOLDOWN_MS - 1 }));
        let mut at = 4;
        let mut cooldown = COOLDOWN_MS;
        for _ in 0..8 {
            at += cooldown;
            let (admitted, t) = b.admit(at);
            assert_eq!(admitted, Ok(Admission::Probe));
            assert_eq!(t.unwrap().to, "half_open");
            assert_eq!(b.admit(at).0, Err(Refused { retry_in_ms: 0 }), "one probe at a time");
            let t = b.record(at, Admission::Probe, false).unwrap();
            cooldown = (cooldown * 2).min(COOLDOWN_MAX_MS);
            assert_eq!((t.to, t.cooldown_ms), ("open", cooldown));
        }
        assert_eq!(cooldown, COOLDOWN_MAX_MS);
        at += cooldown;
        assert_eq!(b.admit(at).0, Ok(Admission::Probe));
        let t = b.record(at, Admission::Probe, true).unwrap();
        assert_eq!((t.from, t.to, t.cooldown_ms), ("half_open", "closed", COOLDOWN_MS));
        assert_eq!(b.admit(at).0, Ok(Admission::Call));
    }

    #[test]
    fn a_success_breaks_the_run_but_a_failure_rate_over_half_opens() {
        let mut b = Breaker::default();
        let mut opened = None;
        for i in 0..20u64 {
            let (admitted, _) = b.admit(i);
            // Fail, fail, succeed: never 5 in a row, but 2/3 of the calls fail.
            if let Some(t) = b.record(i, admitted.unwrap(), i % 3 == 2) {
                opened = Some((i, t));
                break;
            }
        }
        let (at, t) = opened.expect("the rate opened it");
        assert_eq!(at, 9, "at the tenth call, the window minimum");
        assert!(t.reason.contains("of the last"), "{}", t.reason);
    }

    #[test]
    fn a_probe_that_never_reports_is_counted_as_failed() {
        let mut b = Breaker::default();
        for at in 0..5 {
            fail(&mut b, at);
        }
        let at = 4 + COOLDOWN_MS;
        assert_eq!(b.admit(at).0, Ok(Admission::Probe));
        // Its caller died; nobody records. Later askers are refused until it is stale.
        assert_eq!(b.admit(at + 1).0, Err(Refused { retry_in_ms: 0 }));
        let (refused, t) = b.admit(at + PROBE_STALE_MS + 1);
        assert_eq!(refused, Err(Refused { retry_in_ms: 2 * COOLDOWN_MS }));
        assert_eq!(t.unwrap().to, "open");
        assert_eq!(b.admit(at + PROBE_STALE_MS + 1 + 2 * COOLDOWN_MS).0, Ok(Admission::Probe));
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let mut b = Breaker::default();
        for i in 0..9u64 {
            let (a, _) = b.admit(i);
            assert_eq!(b.record(i, a.unwrap(), i % 2 == 0), None);
        }
        // 31 s later the old failures no longer count.
        let later = 31_000;
        for i in 0..4u64 {
            let (a, _) = b.admit(later + i);
            assert_eq!(b.record(later + i, a.unwrap(), true), None);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_late_result_of_a_call_admitted_before_opening_counts_for_nothing() {
        let mut b = Breaker::default();
        for at in 0..5 {
            fail(&mut b, at);
        }
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert_eq!(b.record(6, Admission::Call, true), None);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }
}
