//! The primary ("alpha") implementation of the seven checks (spec §15.3).
//! Each check is a pure function of a [`CheckInput`]; none reads a clock, an
//! RNG, or any state but what the input borrows.

use crate::config::{DscConfig, WORKSPACE_ROOT};
use crate::decision::Outcome;
use crate::fingerprint::Sample;
use crate::mac::{MacOutcome, MacRequest};
use crate::rules::{self, RuleInput};
use crate::state::{DscState, Session};
use maos_model::{
    ArgValue, DenyCode, EffectClass, HacfLevel, IfcLevel, Intent, Profile, ResourceKind, Ring, UnixMillis, Verdict,
};
use maos_token::{ArgSource, ResourceRef, ScopeKind, TokenClaims, TokenError, VerifiedToken};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One hour in microseconds: the rate window.
pub const HOUR_US: u64 = 3_600_000_000;
/// Shortest value provenance looks at: shorter strings (`a`, `id`, `42`) occur
/// in any text and would flag everything.
pub const PROVENANCE_MIN_BYTES: usize = 4;
/// Argument names treated as provenance-sensitive in every intent (recipients,
/// accounts, URLs, paths), in addition to an intent's own `sensitive_args`.
pub const DEFAULT_SENSITIVE_ARGS: [&str; 18] = [
    "to",
    "cc",
    "bcc",
    "recipient",
    "recipients",
    "account",
    "iban",
    "url",
    "uri",
    "endpoint",
    "path",
    "destination",
    "dest",
    "address",
    "email",
    "domain",
    "host",
    "webhook",
];

/// Everything a check may look at.
#[derive(Clone, Copy)]
pub struct CheckInput<'a> {
    /// The configuration (from the state).
    pub config: &'a DscConfig,
    /// The state snapshot.
    pub state: &'a DscState,
    /// The intent.
    pub intent: &'a Intent,
    /// The verified token, or why there is none.
    pub token: Result<&'a VerifiedToken, &'a TokenError>,
    /// Injected time.
    pub now: UnixMillis,
}

impl<'a> CheckInput<'a> {
    /// Bundles the inputs of one decision.
    #[must_use]
    pub fn new(
        state: &'a DscState,
        intent: &'a Intent,
        token: Result<&'a VerifiedToken, &'a TokenError>,
        now: UnixMillis,
    ) -> Self {
        Self { config: state.config(), state, intent, token, now }
    }

    /// The verified claims, if a token was verified.
    #[must_use]
    pub fn claims(&self) -> Option<&'a TokenClaims> {
        self.token.ok().map(VerifiedToken::claims)
    }

    /// The session of the intent's agent.
    #[must_use]
    pub fn session(&self) -> Option<&'a Session> {
        self.state.session(&self.intent.agent)
    }
}

/// The intent's arguments as token constraints read them.
pub struct Args<'a>(pub &'a BTreeMap<String, ArgValue>);

impl ArgSource for Args<'_> {
    fn arg_text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name).map(|v| match v {
            ArgValue::Str(s) => Cow::Borrowed(s.as_str()),
            ArgValue::Int(_) | ArgValue::Bool(_) => Cow::Owned(v.to_text()),
        })
    }
}

/// The token scope kind for a resource kind.
#[must_use]
pub const fn scope_kind(kind: ResourceKind) -> ScopeKind {
    match kind {
        ResourceKind::Path => ScopeKind::Path,
        ResourceKind::Domain => ScopeKind::Domain,
        ResourceKind::Recipient => ScopeKind::Recipient,
        ResourceKind::Resource => ScopeKind::Resource,
    }
}

/// The deny code for a token error (check 1).
#[must_use]
pub const fn token_error_code(e: &TokenError) -> DenyCode {
    match e {
        TokenError::UnknownToken(_) => DenyCode::NoToken,
        TokenError::Expired { .. } | TokenError::NotYetValid { .. } => DenyCode::Expired,
        TokenError::Revoked(_) | TokenError::EpochStale { .. } => DenyCode::Revoked,
        TokenError::Encoding(_)
        | TokenError::UnsupportedVersion(_)
        | TokenError::TooLarge { .. }
        | TokenError::LimitExceeded { .. }
        | TokenError::InvalidClaims(_)
        | TokenError::Signature(_)
        | TokenError::UnknownIssuer(_)
        | TokenError::KeyRetired { .. }
        | TokenError::Unlogged(_)
        | TokenError::Widened { .. }
        | TokenError::DepthExceeded { .. }
        | TokenError::TooManyChildren { .. }
        | TokenError::TtlNeedsAck { .. }
        | TokenError::TtlOutOfRange { .. }
        | TokenError::Crypto(_) => DenyCode::Signature,
    }
}

/// Check 1: the token is valid, held by this agent, live now, and covers this
/// exact action, every resource and the arguments.
#[must_use]
pub fn check_1_token(input: &CheckInput<'_>) -> Outcome {
    let token = match input.token {
        Ok(t) => t,
        Err(e) => return Outcome::deny(token_error_code(e), e.code()),
    };
    let claims = token.claims();
    if claims.agent != input.intent.agent {
        return Outcome::deny(DenyCode::AgentMismatch, "token holder differs from the intent's agent");
    }
    if let Err(e) = token.recheck(input.now, input.state.revocation()) {
        return Outcome::deny(token_error_code(&e), e.code());
    }
    let mut refs: Vec<ResourceRef<'_>> = input
        .intent
        .resources
        .iter()
        .map(|r| ResourceRef { kind: scope_kind(r.kind), value: r.value.as_str() })
        .collect();
    if refs.is_empty() {
        // No named resource: only a permission scoped to any resource covers it.
        refs.push(ResourceRef { kind: ScopeKind::Any, value: "" });
    }
    match claims.permission_for(&input.intent.action, &refs, &Args(&input.intent.args)) {
        Some(_) => Outcome::Pass,
        None => Outcome::deny(
            DenyCode::Scope,
            format!("no permission covers `{}` on {} resource(s)", input.intent.action, input.intent.resources.len()),
        ),
    }
}

/// GCRA step: the new theoretical arrival time, or `None` if over the rate.
/// Burst = the hourly rate (a full hour's allowance), refilled continuously.
#[must_use]
pub fn gcra(tat_us: u64, now_us: u64, rate_per_hour: u32) -> Option<u64> {
    if rate_per_hour == 0 {
        return None;
    }
    let interval = HOUR_US / u64::from(rate_per_hour);
    let tau = interval.saturating_mul(u64::from(rate_per_hour).saturating_sub(1));
    let tat = tat_us.max(now_us);
    if tat > now_us.saturating_add(tau) {
        return None;
    }
    Some(tat.saturating_add(interval))
}

/// Microseconds for a millisecond time.
#[must_use]
pub const fn now_us(now: UnixMillis) -> u64 {
    now.0.saturating_mul(1000)
}

/// Check 2: lifetime operations, per-capability rate and per-agent rate.
#[must_use]
pub fn check_2_rate(input: &CheckInput<'_>) -> Outcome {
    let Some(claims) = input.claims() else {
        return Outcome::not_applicable("no verified token");
    };
    let usage = input.state.token_usage(&claims.id);
    if usage.ops >= claims.max_ops {
        return Outcome::deny(DenyCode::Ops, format!("{} of {} operations used", usage.ops, claims.max_ops));
    }
    let now = now_us(input.now);
    let (token_rate, agent_rate) = rates_now(input.state, claims, input.now);
    let fever = if input.state.fever_at(input.now).is_some() { " (halved: security fever)" } else { "" };
    if gcra(usage.tat_us, now, token_rate).is_none() {
        return Outcome::deny(DenyCode::Rate, format!("capability rate {token_rate}/h{fever} exceeded"));
    }
    if gcra(input.state.agent_usage(&input.intent.agent).tat_us, now, agent_rate).is_none() {
        return Outcome::deny(DenyCode::Rate, format!("agent rate {agent_rate}/h{fever} exceeded"));
    }
    Outcome::Pass
}

/// The capability's and the agent's rate per hour at `now`: the token's and
/// the ring's, both halved during a security fever (spec §37.11.1).
#[must_use]
pub fn rates_now(state: &DscState, claims: &TokenClaims, now: UnixMillis) -> (u32, u32) {
    let agent_rate = state.config().rates().for_ring(claims.ring);
    if state.fever_at(now).is_some() {
        // Never to zero: a zero rate is "no operations at all", not "slower".
        ((claims.rate_per_hour / 2).max(1), (agent_rate / 2).max(1))
    } else {
        (claims.rate_per_hour, agent_rate)
    }
}

/// Check 3: exact, absolute budget (Rule 7): spent + carved for children +
/// cost ≤ budget, so a delegation tree never spends more than its root.
#[must_use]
pub fn check_3_budget(input: &CheckInput<'_>) -> Outcome {
    let Some(claims) = input.claims() else {
        return Outcome::not_applicable("no verified token");
    };
    let usage = input.state.token_usage(&claims.id);
    match usage.spent.checked_add(usage.carved).and_then(|used| used.checked_add(input.intent.cost)) {
        Some(total) if total <= claims.budget => Outcome::Pass,
        Some(_) | None => Outcome::deny(
            DenyCode::Budget,
            format!(
                "cost {} with {} spent and {} carved for children, of {}",
                input.intent.cost, usage.spent, usage.carved, claims.budget
            ),
        ),
    }
}

/// The session's context level and taint after joining this intent's labels.
#[must_use]
pub fn context_label(intent: &Intent, session: Option<&Session>) -> (IfcLevel, bool) {
    let mut level = session.map_or(IfcLevel::Public, |s| s.level);
    let mut untrusted = session.is_some_and(|s| s.untrusted);
    for r in &intent.reads {
        level = level.join(r.level);
        untrusted |= r.untrusted;
    }
    (level, untrusted)
}

/// The values provenance looks at: every resource value and every string
/// argument whose name is sensitive.
pub fn sensitive_values(intent: &Intent) -> impl Iterator<Item = (&str, &str)> {
    let resources = intent.resources.iter().map(|r| (r.kind.name(), r.value.as_str()));
    let args = intent.args.iter().filter_map(|(name, v)| {
        let sensitive = DEFAULT_SENSITIVE_ARGS.contains(&name.as_str()) || intent.sensitive_args.contains(name);
        match (sensitive, v) {
            (true, ArgValue::Str(s)) => Some((name.as_str(), s.as_str())),
            (true | false, _) => None,
        }
    });
    resources.chain(args)
}

/// What provenance found: the argument (named for the agent) and whether its
/// value came from untrusted text the pre-filter flagged as an injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceHit {
    /// "`to` = `attacker@evil.example`".
    pub argument: String,
    /// The value occurs in an output the pre-filter flagged (or the session
    /// overflowed after reading one): an attack, never a judgement call.
    pub injected: bool,
}

/// Argument provenance (design.md "Information flow"): the first sensitive
/// value that appears in untrusted text the session read and in no trusted
/// source (the token's mission statement, trusted reads). If the session's
/// fragment store overflowed, any sensitive value not found in a trusted source
/// is flagged (fail-closed). The hit names the argument the agent must fix and
/// the value (a resource is named by the argument it was derived from). An
/// injected hit is reported before a plain one.
#[must_use]
pub fn provenance_flag(intent: &Intent, session: Option<&Session>, mission: Option<&str>) -> Option<ProvenanceHit> {
    let session = session?;
    if session.untrusted_text.is_empty()
        && session.catalogue_text.is_empty()
        && !session.overflow
        && !session.catalogue_overflow
    {
        return None;
    }
    // An upstream's catalogue vouches for a read of what it lists, never for
    // an effect's target.
    let catalogue_trusted = intent.effect == EffectClass::Observe;
    let mission = mission.map(str::to_lowercase);
    let mut plain: Option<ProvenanceHit> = None;
    for (name, value) in sensitive_values(intent) {
        let needle = value.trim().to_lowercase();
        if needle.len() < PROVENANCE_MIN_BYTES {
            continue;
        }
        // The value as given and percent-decoded: the index holds both forms of the text.
        let decoded = crate::prefilter::percent_decode(&needle);
        let found = |t: &str| t.contains(&needle) || t.contains(&decoded);
        let flagged = session.injected_text.iter().any(|t| found(t));
        // A catalogue never vouches for a value that also came from text the
        // pre-filter flagged.
        let catalogued = catalogue_trusted && !flagged && session.catalogue_text.iter().any(|t| found(t));
        let trusted =
            mission.as_deref().is_some_and(found) || session.trusted_text.iter().any(|t| found(t)) || catalogued;
        if trusted {
            continue;
        }
        let injected = flagged || (session.overflow && session.injected);
        if injected {
            return Some(ProvenanceHit { argument: name_argument(intent, name, &needle, value), injected });
        }
        let untrusted = session.untrusted_text.iter().chain(&session.catalogue_text).any(|t| found(t));
        // Catalogue text that did not fit fails closed for effects only.
        let lost = session.overflow || (session.catalogue_overflow && !catalogue_trusted);
        if plain.is_none() && (lost || untrusted) {
            plain = Some(ProvenanceHit { argument: name_argument(intent, name, &needle, value), injected });
        }
    }
    plain
}

/// "`to` = `attacker@evil.example`": the argument a flagged value came from.
fn name_argument(intent: &Intent, name: &str, needle: &str, value: &str) -> String {
    let arg = intent
        .args
        .iter()
        .find(|(_, v)| v.as_str().is_some_and(|s| s.to_lowercase().contains(needle)))
        .map_or(name, |(arg, _)| arg.as_str());
    format!("`{arg}` = `{}`", maos_model::prefix_within(value, 80))
}

/// Check 4: IFC. No read-up; no write-down (Standard escalates an
/// Internal→Public write to a declassification approval, every other
/// write-down denies); untrusted data with Confidential-or-higher data may not
/// leave in an irreversible effect; argument provenance; integrity-requiring
/// effects from a tainted session, and every irreversible effect, escalate to
/// HACF L2 (spec §50.4).
#[must_use]
pub fn check_4_ifc(input: &CheckInput<'_>) -> Outcome {
    let intent = input.intent;
    let claims = input.claims();
    // Without a verified token the clearance is the lowest: fail-closed.
    let clearance = claims.map_or(IfcLevel::Public, |c| c.clearance);
    if let Some(level) = intent.read_level()
        && level > clearance
    {
        return Outcome::deny(DenyCode::ReadUp, format!("reading {level} with clearance {clearance}"));
    }
    let session = input.session();
    let (context, untrusted) = context_label(intent, session);
    let mut escalation: Option<Outcome> = None;
    match intent.effect {
        EffectClass::Observe => {
            if let Some(hit) = provenance_flag(intent, session, claims.and_then(|c| c.mission.as_deref())) {
                if intent.provenance_deny {
                    return Outcome::deny(
                        DenyCode::Provenance,
                        format!("argument {} of this read came only from untrusted content", hit.argument),
                    );
                }
                escalation = Some(Outcome::escalate(
                    HacfLevel::L2,
                    format!("argument {} of this read came only from untrusted content", hit.argument),
                ));
            }
        }
        EffectClass::Write | EffectClass::Irreversible => {
            if context > intent.sink_level {
                let declassify = input.config.profile() == Profile::Standard
                    && context == IfcLevel::Internal
                    && intent.sink_level == IfcLevel::Public;
                if declassify {
                    escalation = Some(Outcome::escalate(
                        HacfLevel::L2,
                        "write-down internal→public needs a declassification approval",
                    ));
                } else {
                    return Outcome::deny(
                        DenyCode::WriteDown,
                        format!("context {context} may not flow to a {} sink", intent.sink_level),
                    );
                }
            }
            if untrusted && context >= IfcLevel::Confidential && intent.effect == EffectClass::Irreversible {
                return Outcome::deny(DenyCode::Taint, format!("untrusted data mixed with {context} data"));
            }
            if let Some(hit) = provenance_flag(intent, session, claims.and_then(|c| c.mission.as_deref())) {
                // Graded by evidence: a value from an output the pre-filter
                // flagged is an attack (deny); any other untrusted value (a bill
                // the user asked to pay) is a human's call in Standard (L2), a
                // deny in Hardened and Isolated and for a tool whose descriptor
                // says `provenance = "deny"`.
                if hit.injected || input.config.profile() != Profile::Standard || intent.provenance_deny {
                    let source = if hit.injected {
                        "an output the pre-filter flagged as an injection"
                    } else {
                        "untrusted content"
                    };
                    return Outcome::deny(
                        DenyCode::Provenance,
                        format!("argument {} appears only in {source} this session read", hit.argument),
                    );
                }
                let why = format!(
                    "argument {} came only from untrusted content this session read (no sign of injection): a human must confirm it",
                    hit.argument
                );
                // The packet names every reason a human is asked.
                escalation = Some(match escalation {
                    Some(Outcome::Escalate { level, reason }) => Outcome::escalate(level, format!("{reason}; {why}")),
                    _ => Outcome::escalate(HacfLevel::L2, why),
                });
            }
            if escalation.is_none() && intent.requires_integrity && untrusted {
                escalation = Some(Outcome::escalate(
                    HacfLevel::L2,
                    "integrity-requiring effect from a session tainted untrusted",
                ));
            }
            if escalation.is_none() && intent.effect == EffectClass::Irreversible {
                escalation = Some(Outcome::escalate(
                    HacfLevel::L2,
                    "an irreversible effect needs a human approval (HACF level 2, spec §50.4)",
                ));
            }
        }
    }
    escalation.unwrap_or(Outcome::Pass)
}

/// Whether every path resource lies inside the workspace root (no `..`).
#[must_use]
pub fn in_workspace(intent: &Intent) -> bool {
    intent
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Path)
        .all(|r| r.value.starts_with(WORKSPACE_ROOT) && !r.value.split('/').any(|seg| seg == ".."))
}

/// Check 5: the eleven Mandatory Rules (hard-coded Rust, first failure wins),
/// then the profile MAC in Cedar, which can only add denies.
#[must_use]
pub fn check_5_rules(input: &CheckInput<'_>) -> Outcome {
    let rule_input = RuleInput::from_check_input(input);
    for rule in rules::ALL_RULES {
        let outcome = (rule.check)(&rule_input);
        if outcome.is_deny() {
            return outcome;
        }
    }
    if let MacOutcome::Deny { reason } = mac_outcome(input) {
        return Outcome::deny(DenyCode::Mac, reason);
    }
    // Last, so a rule or MAC deny (a danger signal of its own) is not hidden
    // behind the quarantine refusal, which weighs nothing.
    quarantine(input.state, input.intent, input.now)
        .or_else(|| fever_escalation(input))
        .or_else(|| aggregate_escalation(input))
        .unwrap_or(Outcome::Pass)
}

/// During a security fever every ring-3 effect needs a human (HACF level 2,
/// `IMM-FEVER`): the spec's "ring 3 becomes SSE-required", with a human in
/// the evaluator's seat until the evaluator exists.
fn fever_escalation(input: &CheckInput<'_>) -> Option<Outcome> {
    let fever = input.state.fever_at(input.now)?;
    let ring3 = input.claims().is_none_or(|c| c.ring == Ring::Untrusted);
    if !ring3 || !input.intent.effect.is_effect() {
        return None;
    }
    Some(Outcome::escalate(
        HacfLevel::L2,
        format!(
            "IMM-FEVER: security fever since {} ms (two or more agents in quarantine stage 2 or above, or one agent's burst of danger signals): a human approves every ring-3 effect until {} ms or until the commander ends it",
            fever.since_ms,
            fever.ends_ms()
        ),
    ))
}

/// HACF aggregate monitoring (spec §49.11): past a threshold, the agent's
/// later external effects of that kind need a human (HACF level 2).
fn aggregate_escalation(input: &CheckInput<'_>) -> Option<Outcome> {
    let intent = input.intent;
    let (limits, mode) = input.config.aggregate();
    // Calibration counts only (the charge records the egress either way).
    if mode == crate::aggregate::AggregateMode::Calibrate || !counts_as_egress(intent) {
        return None;
    }
    let bytes = egress_bytes(intent);
    let now = input.now.0;
    let aggregate = input.state.aggregate(&intent.agent);
    let totals = aggregate.map(|a| a.totals_at(now)).unwrap_or_default();
    let new_recipients = u32::try_from(new_recipients(input.state, intent, input.now)).unwrap_or(u32::MAX);
    let crossed = crate::aggregate::crossed(totals, limits, bytes, new_recipients)?;
    let what = match crossed {
        crate::aggregate::Crossed::OutboundVolume => format!(
            "{} bytes sent out in 24 h and {} here (limit {})",
            totals.outbound_bytes, bytes, limits.outbound_bytes
        ),
        crate::aggregate::Crossed::ExternalCalls => {
            format!("{} external calls in 24 h (limit {})", totals.external_calls, limits.external_calls)
        }
        crate::aggregate::Crossed::Recipients => format!(
            "{} unique recipients in 7 days and {new_recipients} new here (limit {})",
            totals.recipients, limits.recipients
        ),
    };
    Some(Outcome::escalate(
        HacfLevel::L2,
        format!("{}: {what}: a human approves each such action (HACF level 2)", crossed.code()),
    ))
}

/// The recipients of `intent` its agent has not mailed in the last 7 days,
/// each once (compared as the charge stores them: lowercased), without
/// allocating their text on the decision path.
#[must_use]
pub fn new_recipients(state: &DscState, intent: &Intent, now: UnixMillis) -> usize {
    let aggregate = state.aggregate(&intent.agent);
    let mut new: Vec<&str> = Vec::new();
    for r in recipients(intent) {
        if aggregate.is_none_or(|a| !a.knows(r, now.0)) && !new.iter().any(|n| n.eq_ignore_ascii_case(r)) {
            new.push(r);
        }
    }
    new.len()
}

/// The fingerprint sample of a decision of the agent's own verified request
/// (issue #14 item 7): its tool, whether it was a deny that is a danger
/// signal (`signal_deny`: denies that can mean a node fault or bookkeeping,
/// such as a rate, a budget or an unhealthy log, say nothing about the agent's
/// behaviour), the bytes of its argument text, and for an allowed external
/// effect what left and to how many new recipients.
#[must_use]
pub fn fingerprint_sample(
    state: &DscState,
    intent: &Intent,
    now: UnixMillis,
    verdict: &Verdict,
    signal_deny: bool,
) -> Sample {
    let output_bytes = egress_bytes(intent);
    let (egress, new) = if verdict.is_allow() && counts_as_egress(intent) {
        (output_bytes, u64::try_from(new_recipients(state, intent, now)).unwrap_or(u64::MAX))
    } else {
        (0, 0)
    };
    Sample {
        tool: maos_model::prefix_within(&intent.action, crate::fingerprint::TOOL_BYTES_MAX).to_owned(),
        denied: signal_deny,
        output_bytes,
        egress_bytes: egress,
        new_recipients: new,
    }
}

/// An intent whose data leaves the node to a party outside it: it names a
/// domain or a mail recipient (what aggregate monitoring counts).
fn external(intent: &Intent) -> bool {
    intent.resources.iter().any(|r| matches!(r.kind, ResourceKind::Domain | ResourceKind::Recipient))
}

/// What an allowed intent sends out, for aggregate monitoring: the bytes of
/// its argument text and the recipients it names; `None` unless it is an
/// external effect (reads are not counted: they never wait for a human).
#[must_use]
pub fn egress(intent: &Intent, now: UnixMillis) -> Option<crate::aggregate::Egress> {
    if !counts_as_egress(intent) {
        return None;
    }
    let recipients = recipients(intent).map(str::to_ascii_lowercase).collect();
    Some(crate::aggregate::Egress { at_ms: now.0, bytes: egress_bytes(intent), recipients })
}

/// Whether aggregate monitoring counts the intent: an external effect.
fn counts_as_egress(intent: &Intent) -> bool {
    intent.effect.is_effect() && external(intent)
}

/// The bytes of argument text an intent sends out (saturating: more than
/// fits is over every threshold).
fn egress_bytes(intent: &Intent) -> u64 {
    let bytes = intent.args.values().filter_map(ArgValue::as_str).map(str::len).sum::<usize>();
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// The mail recipients an intent names, as many as one egress takes.
fn recipients(intent: &Intent) -> impl Iterator<Item = &str> {
    intent
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Recipient)
        .take(crate::aggregate::RECIPIENTS_PER_EGRESS_MAX)
        .map(|r| r.value.as_str())
}

/// The agent's quarantine stage at `now` (issue #14, spec §37.8.2): stage 3
/// refuses everything, stage 2 what [`outbound`] names. The refusal tells the
/// agent why and what ends it. The kernel asks it too when a grant comes for
/// an intent decided before the agent entered quarantine.
#[must_use]
pub fn quarantine(state: &DscState, intent: &Intent, now: UnixMillis) -> Option<Outcome> {
    use crate::immune::Stage;
    let standing = state.standing(&intent.agent)?;
    let (stage, since) = standing.stage_at(now.0);
    let (code, ends) = match stage {
        Stage::HardIsolation if standing.paused => (
            DenyCode::ImmStage3,
            "its behaviour alone (its fingerprint's deviations) paused it: every request is refused until a human reviews it",
        ),
        Stage::HardIsolation => (DenyCode::ImmStage3, "every request is refused until the operator releases the agent"),
        Stage::SoftIsolation if outbound(intent) => (
            DenyCode::ImmStage2,
            "outbound effects are refused for 60 minutes after the last signal or until the operator releases the agent",
        ),
        Stage::SoftIsolation | Stage::Observation | Stage::Normal => return None,
    };
    let detail = format!(
        "stage {} ({}) since {since} ms: danger score {}, last signal {}; {ends}",
        stage.number(),
        stage.name(),
        standing.score_at(now.0),
        standing.last_code().map_or("none", crate::immune::SignalCode::as_str)
    );
    Some(Outcome::deny(code, detail))
}

/// What soft isolation blocks: every effect except a local file write (an
/// `fs.*` effect to a non-public sink, not irreversible) — an MCP tool's
/// effect reaches its upstream, mail and HTTP leave the node — and any
/// request that names a domain (a read's URL can carry data out too).
fn outbound(intent: &Intent) -> bool {
    let local_write = intent.action.starts_with("fs.")
        && intent.sink_level != IfcLevel::Public
        && intent.effect != EffectClass::Irreversible;
    (intent.effect.is_effect() && !local_write) || intent.resources.iter().any(|r| r.kind == ResourceKind::Domain)
}

/// Builds the MAC request for an intent and evaluates the sliced policy set.
#[must_use]
pub fn mac_outcome(input: &CheckInput<'_>) -> MacOutcome {
    input.config.mac().evaluate(&mac_request(input))
}

/// The MAC request (Cedar principal, action, resource and context inputs) for an intent.
#[must_use]
pub fn mac_request<'a>(input: &CheckInput<'a>) -> MacRequest<'a> {
    let intent = input.intent;
    let claims = input.claims();
    let (context, untrusted) = context_label(intent, input.session());
    let first = intent.resources.first();
    let pf = input.config.prefilter();
    // The PII scan is a regex pass over every argument: only pay for it when
    // this action's policy slice reads `context.pii`.
    let wants_pii = input.config.mac().slice_fields(&intent.action).contains(&"pii");
    let pii = wants_pii && intent.args.values().any(|v| v.as_str().is_some_and(|s| pf.looks_like_pii(s)));
    MacRequest {
        agent: intent.agent.as_str(),
        ring: claims.map_or(Ring::Untrusted, |c| c.ring).code(),
        trust_class: claims.map_or("external", |c| c.trust_class.name()),
        clearance: claims.map_or(IfcLevel::Public, |c| c.clearance).code(),
        profile: input.config.profile().name(),
        action: &intent.action,
        effect: intent.effect.name(),
        resource_kind: first.map_or("", |r| r.kind.name()),
        resource: first.map_or("", |r| r.value.as_str()),
        resources: intent.resources.iter().map(|r| r.value.as_str()).collect(),
        in_workspace: in_workspace(intent),
        args: &intent.args,
        sink_level: intent.sink_level.code(),
        context_level: context.code(),
        untrusted,
        requires_integrity: intent.requires_integrity,
        pii,
        cost: intent.cost,
    }
}

/// Check 6: the node's revocation epoch lags the global epoch by at most one,
/// and the token was not issued in an epoch more than one ahead of the node.
#[must_use]
pub fn check_6_epoch(input: &CheckInput<'_>) -> Outcome {
    let node = input.state.revocation().epoch();
    let global = input.state.global_epoch();
    if global.saturating_sub(node) > 1 {
        return Outcome::deny(DenyCode::Epoch, format!("node epoch {node} lags global epoch {global} by more than 1"));
    }
    if let Some(c) = input.claims()
        && c.epoch > node.saturating_add(1)
    {
        return Outcome::deny(DenyCode::Epoch, format!("token epoch {} is ahead of node epoch {node}", c.epoch));
    }
    Outcome::Pass
}

/// How check 7's deny of a commander-approved blocked indicator begins (it is
/// not an injection in the agent's arguments: no Fast Apoptosis).
pub const BLOCKED_PREFIX: &str = "blocked indicator";

/// Check 7: structural bounds, then the pre-filter over every string argument
/// and resource; identifiers (domains, recipients, URL-like sensitive
/// arguments) also get the homoglyph check; then the recipients and domains
/// the commander blocked from threat patterns.
#[must_use]
pub fn check_7_prefilter(input: &CheckInput<'_>) -> Outcome {
    let intent = input.intent;
    if let Err(e) = intent.validate() {
        return Outcome::deny(DenyCode::Bounds, e.to_string());
    }
    let pf = input.config.prefilter();
    for r in &intent.resources {
        let hit = match r.kind {
            ResourceKind::Domain | ResourceKind::Recipient => pf.scan_identifier(&r.value),
            ResourceKind::Path | ResourceKind::Resource => pf.scan_text(&r.value),
        };
        if let Some(hit) = hit {
            return Outcome::deny(DenyCode::Prefilter, format!("{} in {} resource", hit.id, r.kind.name()));
        }
    }
    for (name, value) in &intent.args {
        let ArgValue::Str(text) = value else { continue };
        let identifier = (DEFAULT_SENSITIVE_ARGS.contains(&name.as_str()) || intent.sensitive_args.contains(name))
            && (text.contains('@') || text.contains("://") || matches!(name.as_str(), "domain" | "host"));
        let hit = if identifier { pf.scan_identifier(text) } else { pf.scan_text(text) };
        if let Some(hit) = hit {
            return Outcome::deny(DenyCode::Prefilter, format!("{} in argument `{name}`", hit.id));
        }
    }
    // After the patterns (an injection in the arguments is the heavier
    // finding): indicators of threat patterns the commander approved as blocks.
    for r in intent.resources.iter().filter(|r| matches!(r.kind, ResourceKind::Domain | ResourceKind::Recipient)) {
        if let Some(b) = input.state.blocked(&r.value) {
            return Outcome::deny(
                DenyCode::Prefilter,
                format!("{BLOCKED_PREFIX} {} (threat pattern {}, approved by the commander)", r.value, b.pattern),
            );
        }
    }
    Outcome::Pass
}
