//! `decide`: runs all seven checks (always all, spec §15.11), combines them,
//! runs the redundant instances the profile requires and votes (spec
//! §15.7–15.8), and computes the state delta. Fail-closed: an internal error in
//! any check denies that check with `DSC-INTERNAL`, and a panic anywhere in
//! the evaluation becomes a `DSC-INTERNAL` deny of the whole decision.

use crate::DscError;
use crate::checks::{
    CheckInput, HOUR_US, check_1_token, check_2_rate, check_3_budget, check_4_ifc, check_5_rules, check_6_epoch,
    check_7_prefilter, now_us,
};
use crate::decision::{CheckId, CheckResult, Decision, Outcome, Vote, combine};
use crate::reference::{reference_check_1, reference_check_3, reference_check_4, reference_check_6};
use crate::state::{DeltaOp, DscState, StateDelta};
use maos_model::{DenyCode, EffectClass, HacfLevel, Intent, Profile, UnixMillis, Verdict};
use maos_token::{TokenError, VerifiedToken};
use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Test hook: faults to inject into one decision. Public on purpose: a fault
/// can only turn a check into a deny, so exposing it cannot weaken anything,
/// and the fail-closed property tests need it from outside the crate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Make this check return an internal error.
    pub fail_check: Option<CheckId>,
    /// Panic inside this check.
    pub panic_in_check: Option<CheckId>,
    /// Make the reference model (instances beta/gamma) return an internal error in check 1.
    pub fail_reference: bool,
}

impl Faults {
    /// No faults.
    pub const NONE: Self = Self { fail_check: None, panic_in_check: None, fail_reference: false };
}

/// Decides one intent. Never panics; never allows on an internal error.
///
/// `token` is the result of verifying the presented token (pass
/// `Err(&TokenError::UnknownToken(..))` when none was presented); `now` is the
/// kernel's monotonic time in Unix milliseconds.
#[must_use]
pub fn decide(
    state: &DscState,
    intent: &Intent,
    token: Result<&VerifiedToken, &TokenError>,
    now: UnixMillis,
) -> Decision {
    decide_injecting_faults(state, intent, token, now, Faults::NONE)
}

/// [`decide`] with injected faults (the fail-closed tests' hook).
#[must_use]
pub fn decide_injecting_faults(
    state: &DscState,
    intent: &Intent,
    token: Result<&VerifiedToken, &TokenError>,
    now: UnixMillis,
    faults: Faults,
) -> Decision {
    let config_hash = state.config().hash();
    match catch_unwind(AssertUnwindSafe(|| evaluate(state, intent, token, now, faults))) {
        Ok(Ok(decision)) => decision,
        Ok(Err(e)) => internal_decision(config_hash, &e.to_string()),
        Err(_) => internal_decision(config_hash, "panic during evaluation"),
    }
}

/// A decision that denies with `DSC-INTERNAL` in every check.
fn internal_decision(config_hash: [u8; 32], why: &str) -> Decision {
    let checks = CheckId::ALL.map(|check| CheckResult { check, outcome: Outcome::deny(DenyCode::Internal, why) });
    let verdict = Verdict::deny(DenyCode::Internal);
    Decision {
        verdict: verdict.clone(),
        checks,
        delta: StateDelta::empty(),
        config_hash,
        votes: vec![Vote { instance: "alpha", verdict }],
        divergence: false,
    }
}

fn inject(id: CheckId, faults: Faults) -> Result<(), DscError> {
    if faults.panic_in_check == Some(id) {
        panic_now(id);
    }
    if faults.fail_check == Some(id) {
        return Err(DscError::Internal(format!("injected fault in check {}", id.number())));
    }
    Ok(())
}

#[expect(clippy::panic, reason = "fault injection: proves a panic inside a check fails closed")]
fn panic_now(id: CheckId) {
    panic!("injected panic in check {}", id.number());
}

fn run(id: CheckId, faults: Faults, f: impl FnOnce() -> Outcome) -> CheckResult {
    let outcome = match inject(id, faults) {
        Ok(()) => f(),
        Err(e) => Outcome::deny(DenyCode::Internal, e.to_string()),
    };
    CheckResult { check: id, outcome }
}

/// The primary (alpha) instance: all seven checks, always all.
fn primary(input: &CheckInput<'_>, faults: Faults) -> [CheckResult; 7] {
    [
        run(CheckId::Token, faults, || check_1_token(input)),
        run(CheckId::Rate, faults, || check_2_rate(input)),
        run(CheckId::Budget, faults, || check_3_budget(input)),
        run(CheckId::Ifc, faults, || check_4_ifc(input)),
        run(CheckId::MandatoryRules, faults, || check_5_rules(input)),
        run(CheckId::Epoch, faults, || check_6_epoch(input)),
        run(CheckId::Prefilter, faults, || check_7_prefilter(input)),
    ]
}

fn replace(checks: &[CheckResult; 7], id: CheckId, outcome: Outcome) -> [CheckResult; 7] {
    let mut out = checks.clone();
    for c in &mut out {
        if c.check == id {
            c.outcome = outcome.clone();
        }
    }
    out
}

/// What two verdicts must share to count as the same vote: kind, deny code and
/// escalation level (reasons are free text and differ between implementations).
fn vote_key(v: &Verdict) -> (u8, Option<DenyCode>, Option<HacfLevel>) {
    match v {
        Verdict::Allow => (0, None, None),
        Verdict::Deny { code } => (1, Some(*code), None),
        Verdict::Escalate { level, .. } => (2, None, Some(*level)),
    }
}

/// The voter (spec §15.7 layer 6): 1-of-1, 2-of-2 or 2-of-3 on the vote key.
/// Without the required agreement the verdict is `DSC-DIVERGENCE` (deny).
#[must_use]
pub fn vote(votes: &[Vote], required: usize) -> (Verdict, bool) {
    let divergence = votes.windows(2).any(|w| matches!(w, [a, b] if vote_key(&a.verdict) != vote_key(&b.verdict)));
    for candidate in votes {
        let agreeing = votes.iter().filter(|v| vote_key(&v.verdict) == vote_key(&candidate.verdict)).count();
        if agreeing >= required {
            return (candidate.verdict.clone(), divergence);
        }
    }
    (Verdict::deny(DenyCode::Divergence), divergence)
}

fn evaluate(
    state: &DscState,
    intent: &Intent,
    token: Result<&VerifiedToken, &TokenError>,
    now: UnixMillis,
    faults: Faults,
) -> Result<Decision, DscError> {
    let input = CheckInput::new(state, intent, token, now);
    let alpha_checks = primary(&input, faults);
    let alpha = Vote { instance: "alpha", verdict: combine(&alpha_checks) };
    let profile = state.config().profile();
    let reference_1 = || {
        if faults.fail_reference {
            Outcome::deny(DenyCode::Internal, "injected fault in reference check 1")
        } else {
            reference_check_1(state, intent, token, now)
        }
    };
    let (verdict, votes, divergence) = match profile {
        Profile::Standard => (alpha.verdict.clone(), vec![alpha], false),
        Profile::Hardened | Profile::Isolated => {
            let beta_checks = replace(
                &replace(&alpha_checks, CheckId::Token, reference_1()),
                CheckId::Ifc,
                reference_check_4(state, intent, token),
            );
            let beta = Vote { instance: "beta", verdict: combine(&beta_checks) };
            if profile == Profile::Hardened {
                let votes = vec![alpha, beta];
                let (verdict, divergence) = vote(&votes, 2);
                (verdict, votes, divergence)
            } else {
                let gamma_checks = replace(
                    &replace(&beta_checks, CheckId::Budget, reference_check_3(state, intent, token)),
                    CheckId::Epoch,
                    reference_check_6(state, token),
                );
                let gamma = Vote { instance: "gamma", verdict: combine(&gamma_checks) };
                let votes = vec![alpha, beta, gamma];
                let (verdict, divergence) = vote(&votes, 2);
                (verdict, votes, divergence)
            }
        }
    };
    // Fail closed: an instance that errored (or panicked) is never outvoted
    // into an allow; the other instances may only make the answer stricter.
    let internal = Verdict::deny(DenyCode::Internal);
    let verdict =
        if verdict.deny_code().is_none() && votes.iter().any(|v| v.verdict == internal) { internal } else { verdict };
    let delta = if verdict.is_allow() { allow_delta(&input)? } else { refusal_delta(&input, &verdict, &alpha_checks) };
    Ok(Decision { verdict, checks: alpha_checks, delta, config_hash: state.config().hash(), votes, divergence })
}

/// The state change a denied or escalated intent causes: the agent's rate
/// clock advances as for an allow, so an agent that keeps asking for what it
/// may not do runs into its rate (issue #12: denies cost the agent, not the
/// disk), and a deny whose code shows intent is a danger signal (issue #14).
/// Nothing changes when the refusal is the DSC's own fault (an internal
/// error) or when no verified token of that agent names it (its id is then
/// only a claim); the rate clock does not move when the agent is already
/// over a rate (its clock is past `now` already; the kernel then logs such
/// denies aggregated).
fn refusal_delta(input: &CheckInput<'_>, verdict: &Verdict, checks: &[CheckResult; 7]) -> StateDelta {
    let internal = checks.iter().any(|c| matches!(&c.outcome, Outcome::Deny { code: DenyCode::Internal, .. }));
    let over_rate = checks.iter().any(|c| c.check == CheckId::Rate && c.outcome.is_deny());
    let Ok(token) = input.token else { return StateDelta::empty() };
    // A token of another agent charges nobody: the intent's agent did not present it.
    let foreign = token.claims().agent != input.intent.agent;
    if internal || foreign || verdict.deny_code() == Some(DenyCode::Internal) {
        return StateDelta::empty();
    }
    let agent = &input.intent.agent;
    let mut ops = Vec::new();
    let (_, agent_rate) = crate::checks::rates_now(input.state, token.claims(), input.now);
    let agent_tat = input.state.agent_usage(agent).tat_us;
    if !over_rate && let Some(agent_tat_us) = advance(agent_tat, now_us(input.now), agent_rate) {
        ops.push(DeltaOp::ChargeRate { agent: agent.clone(), agent_tat_us });
    }
    // In stage 3 there is nothing left to escalate, and a signal-free deny
    // can be logged aggregated: a flood of probes stays bounded.
    let isolated = input.state.stage_of(agent, input.now) == crate::immune::Stage::HardIsolation;
    // The heaviest deny of all seven checks is the signal: an earlier check's
    // deny (a scope miss) does not hide a later, heavier one (an injection).
    let heaviest = checks
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Deny { code, detail } => Some((signal_weight(input, *code, detail), *code)),
            Outcome::Pass | Outcome::NotApplicable { .. } | Outcome::Escalate { .. } => None,
        })
        .max_by_key(|(weight, _)| *weight);
    let mut signalled = false;
    if verdict.deny_code().is_some()
        && !isolated
        && let Some((weight, code)) = heaviest
        && weight > 0
    {
        ops.push(DeltaOp::Danger { agent: agent.clone(), code, weight, at_ms: input.now.0 });
        signalled = true;
    }
    if !isolated {
        ops.extend(fingerprint_op(input, verdict, signalled));
    }
    StateDelta { ops }
}

/// The decision's sample for its agent's behavioural fingerprint, with what
/// it finds (issue #14 item 7). Not taken in stage 3 (the agent is frozen:
/// nothing more to learn or find).
fn fingerprint_op(input: &CheckInput<'_>, verdict: &Verdict, signal_deny: bool) -> Option<DeltaOp> {
    let agent = &input.intent.agent;
    let fingerprint = match input.state.fingerprint(agent) {
        Some(f) => Cow::Borrowed(f),
        None => Cow::Owned(crate::fingerprint::Fingerprint::default()),
    };
    let sample = crate::checks::fingerprint_sample(input.state, input.intent, input.now, verdict, signal_deny);
    let (findings, response) = fingerprint.judge(&sample, input.now.0);
    Some(DeltaOp::Fingerprint { agent: agent.clone(), at_ms: input.now.0, sample, findings, response })
}

/// A deny code's weight as a danger signal for this agent. A provenance deny
/// counts only when the session read an output the pre-filter flagged: a
/// plain untrusted value (denied in Hardened and Isolated, or by a tool's
/// `provenance = "deny"`) and a fragment store that overflowed are the node's
/// caution, not evidence against the agent.
///
/// A Rule 4 deny counts only when the agent asked for a more trusted ring
/// itself: a token issued for a ring the agent is not registered in (or was
/// demoted from) is the operator's doing.
///
/// A commander-approved blocked indicator weighs as a scope miss: the agent
/// named a known-bad target, which honest agents steered by text do too; it
/// is refused, and it is no attack of the agent's own (no immune-memory
/// match, no Fast Apoptosis).
fn signal_weight(input: &CheckInput<'_>, code: DenyCode, detail: &str) -> u32 {
    match code {
        DenyCode::Prefilter if detail.starts_with(crate::checks::BLOCKED_PREFIX) => {
            crate::immune::weight(DenyCode::Scope)
        }
        DenyCode::Provenance if !input.session().is_some_and(|s| s.injected) => 0,
        DenyCode::Mr04 if !crate::rules::asks_for_ring(input.intent, input.claims()) => 0,
        _ => crate::immune::weight(code),
    }
}

/// A rate clock after one more operation at `now_us` (GCRA: the theoretical
/// arrival time moves one interval past the later of itself and now); `None`
/// for a zero rate.
fn advance(tat_us: u64, now_us: u64, rate_per_hour: u32) -> Option<u64> {
    let interval = HOUR_US.checked_div(u64::from(rate_per_hour))?;
    Some(tat_us.max(now_us).saturating_add(interval))
}

/// The state change an allowed intent causes: one operation counted, budget
/// spent, rate clocks advanced, and for a read the session label raised.
fn allow_delta(input: &CheckInput<'_>) -> Result<StateDelta, DscError> {
    let token = input.token.map_err(|_| DscError::Internal("allow without a verified token".into()))?;
    let claims = token.claims();
    let now = now_us(input.now);
    let zero_rate = || DscError::Internal("zero rate on an allowed intent".into());
    let (token_rate, agent_rate) = crate::checks::rates_now(input.state, claims, input.now);
    let token_tat_us = advance(input.state.token_usage(&claims.id).tat_us, now, token_rate).ok_or_else(zero_rate)?;
    let agent_tat_us =
        advance(input.state.agent_usage(&input.intent.agent).tat_us, now, agent_rate).ok_or_else(zero_rate)?;
    let mut ops = vec![DeltaOp::Charge {
        agent: input.intent.agent.clone(),
        token: claims.id,
        token_tat_us,
        agent_tat_us,
        cost: input.intent.cost,
        egress: crate::checks::egress(input.intent, input.now),
    }];
    // An allowed request is never of an agent in stage 3.
    ops.extend(fingerprint_op(input, &Verdict::Allow, false));
    if input.intent.effect == EffectClass::Observe {
        for r in &input.intent.reads {
            ops.push(DeltaOp::Read {
                agent: input.intent.agent.clone(),
                level: r.level,
                untrusted: r.untrusted,
                text: None,
                injection: None,
                catalogue: false,
            });
        }
    }
    Ok(StateDelta { ops })
}
