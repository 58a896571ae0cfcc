//! The semantic evaluator's seat (spec §15.5, issue #15 item 7): an evaluator
//! the kernel consults after the DSC allowed an effect. It can only take away:
//! its `deny` (or `escalate`) stops the effect; its `allow` adds nothing the
//! DSC had not already granted.
//!
//! Guarantees:
//! - **Never an allow.** The evaluator is asked only about effects the DSC
//!   allowed, and only before the Commit Layer's first stage.
//! - **Bounded wait.** Each question has a timeout; a failing evaluator is
//!   behind a circuit breaker (`maos_commit::breaker`), so while it is open
//!   nobody waits on it; its transitions are logged (`circuit.breaker`,
//!   interface [`BREAKER_INTERFACE`]).
//! - **Logged.** Every answer, error or skip is a `kernel.evaluation` record
//!   (`0x0309`) before the effect runs or is refused; the DSC's decision record
//!   stays what replay re-checks.
//! - **Rule-based when absent or unreachable** (YELLOW, degraded mode 3): in
//!   Standard the effect goes on under the DSC's clearance (logged as such);
//!   in Hardened and Isolated it is refused `SSE-UNAVAILABLE` (fail closed).
//!   An evaluator that answers something other than a valid verdict is not
//!   "unavailable": the effect is refused `SSE-INVALID` in every profile (a
//!   malformed deny must never read as an allow).
//! - **Checked again after the wait**: the kernel's mode and health are read
//!   once more before the effect goes on (a freeze or a heartbeat loss during
//!   the evaluator's answer still stops it).
//! - Bounded: at most [`EVALUATIONS_IN_FLIGHT_MAX`] questions at once; past it
//!   a question is not asked (unavailable).
//! - An `escalate` answer sends the effect to the commander: the sequencer
//!   opens an approval packet (HACF L2) for the allowed decision, and only a
//!   commander-signed grant of that decision runs it
//!   (`Authorized::allowed_and_granted`).

use super::Shared;
use crate::records::{self, EvaluationRecord, KIND_EVALUATION, RECORD_VERSION};
use maos_commit::breaker::Breaker;
use maos_model::{Intent, Profile};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Refusal code when the evaluator denies an effect.
pub const CODE_SSE_DENY: &str = "SSE-DENY";
/// Code in the evaluation record when the evaluator asks for a human: the
/// effect then waits for the commander as an approval packet.
pub const CODE_SSE_ESCALATE: &str = "SSE-ESCALATE";
/// Refusal code in Hardened and Isolated when the evaluator did not answer,
/// and in every profile when its answer could not be logged.
pub const CODE_SSE_UNAVAILABLE: &str = "SSE-UNAVAILABLE";
/// Refusal code when the evaluator answered something that is not a verdict.
pub const CODE_SSE_INVALID: &str = "SSE-INVALID";
/// Questions in flight at once.
pub const EVALUATIONS_IN_FLIGHT_MAX: usize = 64;
/// Default wait for one answer.
pub const EVALUATOR_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);
/// Longest reason kept from an answer, bytes.
pub const EVALUATOR_REASON_BYTES_MAX: usize = 512;

/// What the kernel asks (the documented request schema, `docs/resilience.md`).
#[derive(Debug, Clone, Serialize)]
pub struct EvalRequest {
    /// 1.
    pub v: u16,
    /// The intent as the kernel derived it (stage 1), which the DSC allowed.
    pub intent: Intent,
    /// The profile in force.
    pub profile: Profile,
    /// Lsn of the DSC's decision record.
    pub decision_lsn: u64,
}

/// The evaluator's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalVerdict {
    /// Nothing to add.
    Allow,
    /// Refuse the effect.
    Deny,
    /// Ask a human: the effect waits for the commander as an approval.
    Escalate,
}

/// The answer (the documented response schema; other fields are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EvalAnswer {
    /// The verdict.
    pub verdict: EvalVerdict,
    /// Why, for the agent and the log (cut at [`EVALUATOR_REASON_BYTES_MAX`]).
    #[serde(default)]
    pub reason: String,
}

/// Why an evaluator gave no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// Not reached, or it failed on its side (a 5xx): rule-based mode, and a
    /// failure for its breaker.
    Unreachable(String),
    /// It answered, but not with a valid verdict: the effect is refused.
    Invalid(String),
}

/// A pluggable evaluator: the daemon's is an HTTP endpoint.
pub trait SemanticEvaluator: Send + Sync + fmt::Debug {
    /// Asks about one allowed effect. The kernel bounds the wait.
    fn evaluate(&self, request: EvalRequest) -> Pin<Box<dyn Future<Output = Result<EvalAnswer, EvalError>> + Send>>;
    /// Where it is (for the log and `maos status`).
    fn describe(&self) -> String;
}

/// The interface name of the evaluator's breaker in `circuit.breaker` records.
pub(crate) const BREAKER_INTERFACE: &str = "evaluator";

/// The seat: the evaluator, its breaker and whether it answered last time.
pub(crate) struct Seat {
    evaluator: Arc<dyn SemanticEvaluator>,
    timeout: Duration,
    breaker: Mutex<Breaker>,
    epoch: Instant,
    up: AtomicBool,
    in_flight: tokio::sync::Semaphore,
}

impl Seat {
    pub(crate) fn new(evaluator: Arc<dyn SemanticEvaluator>, timeout: Duration) -> Self {
        Self {
            evaluator,
            timeout,
            breaker: Mutex::new(Breaker::default()),
            epoch: Instant::now(),
            // Not GREEN before it has answered once.
            up: AtomicBool::new(false),
            in_flight: tokio::sync::Semaphore::new(EVALUATIONS_IN_FLIGHT_MAX),
        }
    }

    /// Whether it answered last time and its breaker lets questions through.
    pub(crate) fn up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    pub(crate) fn describe(&self) -> String {
        self.evaluator.describe()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Conservative mode for its breaker (cooldowns doubled).
    pub(crate) fn set_conservative(&self, on: bool) {
        if let Ok(mut b) = self.breaker.lock() {
            b.set_conservative(on);
        }
    }

    /// Its breaker, for `maos status`.
    pub(crate) fn breaker_view(&self) -> Option<maos_commit::breaker::BreakerView> {
        self.breaker.lock().ok().map(|b| b.view(BREAKER_INTERFACE, self.now_ms()))
    }
}

/// Asks the seat about an allowed effect; `Err((code, why))` refuses it. The
/// answer is logged first; a record that cannot be logged refuses it too.
pub(super) async fn check(
    shared: &Arc<Shared>,
    intent: &Intent,
    decision_lsn: u64,
) -> Result<(), (&'static str, String)> {
    let Some(seat) = shared.evaluator.as_ref() else { return Ok(()) };
    let profile = shared.profile;
    let strict = profile != Profile::Standard;
    let started = Instant::now();
    let (outcome, reason, refusal, reached) = match seat.in_flight.try_acquire() {
        Err(_) => {
            let why = format!("{EVALUATIONS_IN_FLIGHT_MAX} questions already in flight: not asked");
            (Outcome::Unavailable, why, None, None)
        }
        Ok(_permit) => ask(seat, &shared.wal, intent, profile, decision_lsn).await,
    };
    // Not answering (unreachable, a timeout, an open breaker, too busy) is
    // rule-based mode; an invalid answer is an answer.
    let answered = reached == Some(true);
    let breaker_closed = seat.breaker.lock().is_ok_and(|b| b.state() == maos_commit::breaker::BreakerState::Closed);
    let up = answered && breaker_closed;
    if seat.up.swap(up, Ordering::SeqCst) != up {
        let trigger = format!("evaluator: {}", if up { "answering" } else { "evaluator not answering" });
        let posture = shared.clone();
        // Logging waits on a sync: off the async workers.
        let _ = tokio::task::spawn_blocking(move || posture.update_posture(&trigger)).await;
    }
    let refusal = refusal.or_else(|| (!answered && strict).then_some(CODE_SSE_UNAVAILABLE));
    // Outside text, shown to the commander's terminal and logged: no control characters.
    let mut reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if reason.len() > EVALUATOR_REASON_BYTES_MAX {
        let cut = (0..=EVALUATOR_REASON_BYTES_MAX).rev().find(|i| reason.is_char_boundary(*i)).unwrap_or(0);
        reason.truncate(cut);
    }
    let record = EvaluationRecord {
        v: RECORD_VERSION,
        intent: intent.id,
        agent: intent.agent.clone(),
        action: intent.action.clone(),
        outcome: outcome.name().to_owned(),
        code: refusal.map(str::to_owned),
        reason: reason.clone(),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        at_ms: shared.clock.now().0,
    };
    let wal = shared.wal.clone();
    let logged = tokio::task::spawn_blocking(move || {
        records::encode(&record)
            .and_then(|payload| wal.append(KIND_EVALUATION, &payload).map(drop).map_err(|e| e.to_string()))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    if let Err(e) = logged {
        return Err((CODE_SSE_UNAVAILABLE, format!("the evaluator's answer could not be logged: {e}")));
    }
    match (outcome, refusal) {
        (Outcome::Invalid, _) => {
            Err((CODE_SSE_INVALID, format!("the semantic evaluator's answer is not a verdict ({reason}): refused")))
        }
        (_, Some(code)) if code == CODE_SSE_UNAVAILABLE => Err((
            code,
            format!("the semantic evaluator did not answer ({reason}); {profile:?} refuses effects without it"),
        )),
        (_, Some(code)) => Err((code, format!("the semantic evaluator: {reason}"))),
        (_, None) => Ok(()),
    }
}

/// What came of one question (logged by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allow,
    Deny,
    Escalate,
    Invalid,
    Unavailable,
    CircuitOpen,
}

impl Outcome {
    const fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Escalate => "escalate",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
            Self::CircuitOpen => "circuit_open",
        }
    }
}

/// Logs a breaker transition, off the async workers (the append waits on a sync).
async fn log_transition(wal: &Arc<maos_wal::Wal>, transition: Option<maos_commit::breaker::Transition>) {
    let Some(t) = transition else { return };
    let wal = wal.clone();
    let logged =
        tokio::task::spawn_blocking(move || maos_commit::breaker::log_transition(&wal, BREAKER_INTERFACE, &t)).await;
    if let Err(e) = logged {
        tracing::error!(error = %e, "the evaluator breaker's transition could not be logged");
    }
}

/// Asks through the breaker, within the timeout. Returns the outcome, the
/// reason, the refusal code, and whether it was reached (`None`: not asked).
async fn ask(
    seat: &Seat,
    wal: &Arc<maos_wal::Wal>,
    intent: &Intent,
    profile: Profile,
    decision_lsn: u64,
) -> (Outcome, String, Option<&'static str>, Option<bool>) {
    // The guard is gone before the await (it is not `Send`).
    let Some((admitted, transition)) = seat.breaker.lock().ok().map(|mut b| b.admit(seat.now_ms())) else {
        return (Outcome::Unavailable, "breaker lock poisoned".to_owned(), Some(CODE_SSE_UNAVAILABLE), None);
    };
    log_transition(wal, transition).await;
    let admission = match admitted {
        Ok(a) => a,
        Err(r) => {
            let why = format!("the evaluator's circuit breaker is open (next probe in {} ms)", r.retry_in_ms);
            return (Outcome::CircuitOpen, why, None, None);
        }
    };
    let request = EvalRequest { v: 1, intent: intent.clone(), profile, decision_lsn };
    let answer = match tokio::time::timeout(seat.timeout, seat.evaluator.evaluate(request)).await {
        Ok(answer) => answer,
        Err(_) => Err(EvalError::Unreachable(format!("no answer within {} ms", seat.timeout.as_millis()))),
    };
    let reached = !matches!(answer, Err(EvalError::Unreachable(_)));
    let transition = seat.breaker.lock().ok().and_then(|mut b| b.record(seat.now_ms(), admission, reached));
    log_transition(wal, transition).await;
    match answer {
        Ok(EvalAnswer { verdict: EvalVerdict::Allow, reason }) => (Outcome::Allow, reason, None, Some(true)),
        Ok(EvalAnswer { verdict: EvalVerdict::Deny, reason }) => {
            (Outcome::Deny, reason, Some(CODE_SSE_DENY), Some(true))
        }
        Ok(EvalAnswer { verdict: EvalVerdict::Escalate, reason }) => {
            (Outcome::Escalate, reason, Some(CODE_SSE_ESCALATE), Some(true))
        }
        Err(EvalError::Invalid(e)) => (Outcome::Invalid, e, Some(CODE_SSE_INVALID), Some(true)),
        Err(EvalError::Unreachable(e)) => (Outcome::Unavailable, e, None, Some(false)),
    }
}
