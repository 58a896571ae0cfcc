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
//!   nobody waits on it.
//! - **Logged.** Every answer, error or skip is a `kernel.evaluation` record
//!   (`0x0309`) before the effect runs or is refused; the DSC's decision record
//!   stays what replay re-checks.
//! - **Rule-based when absent or failing** (YELLOW, degraded mode 3): in
//!   Standard the effect goes on under the DSC's clearance (logged as such);
//!   in Hardened and Isolated it is refused `SSE-UNAVAILABLE` (fail closed).
//! - An `escalate` answer is refused `SSE-ESCALATE`: a human approval of an
//!   effect the DSC allowed has no decision to sign yet (not built).

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
/// Refusal code when the evaluator asks for a human (escalation through the
/// seat is not built: fail closed).
pub const CODE_SSE_ESCALATE: &str = "SSE-ESCALATE";
/// Refusal code in Hardened and Isolated when the evaluator did not answer.
pub const CODE_SSE_UNAVAILABLE: &str = "SSE-UNAVAILABLE";
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
    /// Ask a human (refused `SSE-ESCALATE` for now).
    Escalate,
}

/// The answer (the documented response schema).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalAnswer {
    /// The verdict.
    pub verdict: EvalVerdict,
    /// Why, for the agent and the log (cut at [`EVALUATOR_REASON_BYTES_MAX`]).
    #[serde(default)]
    pub reason: String,
}

/// A pluggable evaluator: the daemon's is an HTTP endpoint.
pub trait SemanticEvaluator: Send + Sync + fmt::Debug {
    /// Asks about one allowed effect. The kernel bounds the wait.
    fn evaluate(&self, request: EvalRequest) -> Pin<Box<dyn Future<Output = Result<EvalAnswer, String>> + Send>>;
    /// Where it is (for the log and `maos status`).
    fn describe(&self) -> String;
}

/// The seat: the evaluator, its breaker and whether it answered last time.
pub(crate) struct Seat {
    evaluator: Arc<dyn SemanticEvaluator>,
    timeout: Duration,
    breaker: Mutex<Breaker>,
    epoch: Instant,
    up: AtomicBool,
}

impl Seat {
    pub(crate) fn new(evaluator: Arc<dyn SemanticEvaluator>, timeout: Duration) -> Self {
        Self {
            evaluator,
            timeout,
            breaker: Mutex::new(Breaker::default()),
            epoch: Instant::now(),
            up: AtomicBool::new(true),
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
    let admitted = {
        let mut breaker =
            seat.breaker.lock().map_err(|_| (CODE_SSE_UNAVAILABLE, "breaker lock poisoned".to_owned()))?;
        let (admitted, transition) = breaker.admit(seat.now_ms());
        if let Some(t) = transition {
            tracing::info!(from = t.from, to = t.to, reason = %t.reason, "evaluator circuit breaker");
        }
        admitted
    };
    let (outcome, reason, refusal, ok) = match admitted {
        Err(r) => {
            let why = format!("the evaluator's circuit breaker is open (next probe in {} ms)", r.retry_in_ms);
            ("circuit_open", why, None, None)
        }
        Ok(admission) => {
            let request = EvalRequest { v: 1, intent: intent.clone(), profile, decision_lsn };
            let answer = tokio::time::timeout(seat.timeout, seat.evaluator.evaluate(request)).await;
            let answer = match answer {
                Ok(Ok(a)) => Ok(a),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer within {} ms", seat.timeout.as_millis())),
            };
            let ok = answer.is_ok();
            if let Ok(mut breaker) = seat.breaker.lock()
                && let Some(t) = breaker.record(seat.now_ms(), admission, ok)
            {
                tracing::warn!(from = t.from, to = t.to, reason = %t.reason, "evaluator circuit breaker");
            }
            match answer {
                Ok(EvalAnswer { verdict: EvalVerdict::Allow, reason }) => ("allow", reason, None, Some(true)),
                Ok(EvalAnswer { verdict: EvalVerdict::Deny, reason }) => {
                    ("deny", reason, Some(CODE_SSE_DENY), Some(true))
                }
                Ok(EvalAnswer { verdict: EvalVerdict::Escalate, reason }) => {
                    ("escalate", reason, Some(CODE_SSE_ESCALATE), Some(true))
                }
                Err(e) => ("unavailable", e, None, Some(false)),
            }
        }
    };
    // Not answering (an error, a timeout, an open breaker) is rule-based mode.
    let answered = ok == Some(true);
    let breaker_closed = seat.breaker.lock().is_ok_and(|b| b.state() == maos_commit::breaker::BreakerState::Closed);
    let up = answered && breaker_closed;
    if seat.up.swap(up, Ordering::SeqCst) != up {
        let trigger = if up { "evaluator answering again" } else { "evaluator not answering" };
        shared.update_posture(&format!("evaluator: {trigger}"));
    }
    let refusal = refusal.or_else(|| (!answered && strict).then_some(CODE_SSE_UNAVAILABLE));
    let mut reason = reason;
    if reason.len() > EVALUATOR_REASON_BYTES_MAX {
        let cut = (0..=EVALUATOR_REASON_BYTES_MAX).rev().find(|i| reason.is_char_boundary(*i)).unwrap_or(0);
        reason.truncate(cut);
    }
    let record = EvaluationRecord {
        v: RECORD_VERSION,
        intent: intent.id,
        agent: intent.agent.clone(),
        action: intent.action.clone(),
        outcome: outcome.to_owned(),
        code: refusal.map(str::to_owned),
        reason: reason.clone(),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        at_ms: shared.clock.now().0,
    };
    let logged = records::encode(&record)
        .and_then(|payload| shared.wal.append(KIND_EVALUATION, &payload).map(drop).map_err(|e| e.to_string()));
    if let Err(e) = logged {
        return Err((CODE_SSE_UNAVAILABLE, format!("the evaluator's answer could not be logged: {e}")));
    }
    match refusal {
        Some(code) if code == CODE_SSE_UNAVAILABLE => Err((
            code,
            format!("the semantic evaluator did not answer ({reason}); {profile:?} refuses effects without it"),
        )),
        Some(code) => Err((code, format!("the semantic evaluator: {reason}"))),
        None => Ok(()),
    }
}
