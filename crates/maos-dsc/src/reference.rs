//! The reference model: an independent, deliberately plain second
//! implementation of checks 1 and 4 (and the arithmetic checks 3 and 6) written
//! from the spec text (§15.3, §11, §15.10 "dual specification"), not by calling
//! the primary's check functions. The redundant DSC (spec §15.7–15.8) runs it
//! as instance beta (checks 1, 4) and gamma (checks 1, 3, 4, 6); the
//! differential test compares it with the primary on generated intents.
//!
//! It shares only the vocabulary, the token crate's claim matching (the token
//! format's own semantics) and the state accessors.

use crate::decision::Outcome;
use crate::state::{DscState, Session};
use maos_model::{ArgValue, DenyCode, EffectClass, HacfLevel, IfcLevel, Intent, Profile, ResourceKind, UnixMillis};
use maos_token::{ArgSource, ResourceRef, ScopeKind, TokenClaims, TokenError, VerifiedToken};
use std::borrow::Cow;

struct RefArgs<'a>(&'a Intent);

impl ArgSource for RefArgs<'_> {
    fn arg_text(&self, name: &str) -> Option<Cow<'_, str>> {
        let value = self.0.args.get(name)?;
        Some(match value {
            ArgValue::Str(s) => Cow::Borrowed(s),
            ArgValue::Int(n) => Cow::Owned(format!("{n}")),
            ArgValue::Bool(true) => Cow::Borrowed("true"),
            ArgValue::Bool(false) => Cow::Borrowed("false"),
        })
    }
}

fn code_of(err: &TokenError) -> DenyCode {
    let code = err.code();
    if code == "TOKEN-UNKNOWN" {
        DenyCode::NoToken
    } else if code == "TOKEN-EXPIRED" || code == "TOKEN-NOT-YET-VALID" {
        DenyCode::Expired
    } else if code == "TOKEN-REVOKED" || code == "TOKEN-EPOCH-STALE" {
        DenyCode::Revoked
    } else {
        DenyCode::Signature
    }
}

/// Reference check 1, restated from §15.3 and §9.3: the presented token exists
/// and verified; its holder is the intent's agent; `not_before <= now <
/// expires`; its epoch is at most one ahead of ours; neither it nor an
/// ancestor is revoked; some permission names the action, allows every
/// resource and satisfies every argument constraint.
#[must_use]
pub fn reference_check_1(
    state: &DscState,
    intent: &Intent,
    token: Result<&VerifiedToken, &TokenError>,
    now: UnixMillis,
) -> Outcome {
    let c: &TokenClaims = match token {
        Err(e) => return Outcome::deny(code_of(e), "reference: token did not verify"),
        Ok(t) => t.claims(),
    };
    if c.agent.as_str() != intent.agent.as_str() {
        return Outcome::deny(DenyCode::AgentMismatch, "reference: holder mismatch");
    }
    if !(c.not_before.0 <= now.0 && now.0 < c.expires.0) {
        return Outcome::deny(DenyCode::Expired, "reference: outside validity window");
    }
    let rev = state.revocation();
    if u128::from(c.epoch) > u128::from(rev.epoch()) + 1 {
        return Outcome::deny(DenyCode::Revoked, "reference: token epoch ahead");
    }
    if rev.is_revoked(&c.id) || c.lineage.iter().any(|a| rev.is_revoked(a)) {
        return Outcome::deny(DenyCode::Revoked, "reference: revoked");
    }
    let wildcard = [ResourceRef { kind: ScopeKind::Any, value: "" }];
    let named: Vec<ResourceRef<'_>> = intent
        .resources
        .iter()
        .map(|r| ResourceRef {
            kind: match r.kind {
                ResourceKind::Path => ScopeKind::Path,
                ResourceKind::Domain => ScopeKind::Domain,
                ResourceKind::Recipient => ScopeKind::Recipient,
                ResourceKind::Resource => ScopeKind::Resource,
            },
            value: &r.value,
        })
        .collect();
    let targets: &[ResourceRef<'_>] = if named.is_empty() { &wildcard } else { &named };
    let args = RefArgs(intent);
    let mut covered = false;
    for p in &c.permissions {
        if p.covers(&intent.action, targets, &args) {
            covered = true;
            break;
        }
    }
    if covered { Outcome::Pass } else { Outcome::deny(DenyCode::Scope, "reference: not covered") }
}

/// Reference check 3: `spent + cost <= budget`, in 128-bit arithmetic.
#[must_use]
pub fn reference_check_3(state: &DscState, intent: &Intent, token: Result<&VerifiedToken, &TokenError>) -> Outcome {
    let Ok(t) = token else { return Outcome::not_applicable("reference: no token") };
    let usage = state.token_usage(&t.claims().id);
    let used = u128::from(usage.spent) + u128::from(usage.carved);
    if used + u128::from(intent.cost) <= u128::from(t.claims().budget) {
        Outcome::Pass
    } else {
        Outcome::deny(DenyCode::Budget, "reference: over budget")
    }
}

/// Reference check 6: block when `global - node > 1` or the token's epoch is
/// more than one ahead of the node's.
#[must_use]
pub fn reference_check_6(state: &DscState, token: Result<&VerifiedToken, &TokenError>) -> Outcome {
    let node = u128::from(state.revocation().epoch());
    let global = u128::from(state.global_epoch());
    if global > node + 1 {
        return Outcome::deny(DenyCode::Epoch, "reference: node epoch stale");
    }
    if let Ok(t) = token
        && u128::from(t.claims().epoch) > node + 1
    {
        return Outcome::deny(DenyCode::Epoch, "reference: token epoch ahead");
    }
    Outcome::Pass
}

const SENSITIVE: [&str; 18] = [
    "account",
    "address",
    "bcc",
    "cc",
    "dest",
    "destination",
    "domain",
    "email",
    "endpoint",
    "host",
    "iban",
    "path",
    "recipient",
    "recipients",
    "to",
    "uri",
    "url",
    "webhook",
];

fn rank(level: IfcLevel) -> u8 {
    match level {
        IfcLevel::Public => 0,
        IfcLevel::Internal => 1,
        IfcLevel::Confidential => 2,
        IfcLevel::Restricted => 3,
    }
}

/// Whether `value` is attacker-supplied: it occurs in untrusted text read by
/// the session (or the session lost track: overflow) and in no trusted text.
/// A catalogue (an upstream's listing) vouches for a read, not for an effect.
fn attacker_supplied(value: &str, session: &Session, mission: Option<&str>, read: bool) -> bool {
    let v = value.trim().to_lowercase();
    if v.len() < 4 {
        return false;
    }
    let forms = [v.clone(), crate::prefilter::percent_decode(&v)];
    let seen = |t: &str| forms.iter().any(|f| t.contains(f.as_str()));
    if let Some(m) = mission
        && seen(&m.to_lowercase())
    {
        return false;
    }
    for t in &session.trusted_text {
        if seen(t) {
            return false;
        }
    }
    let flagged = session.injected_text.iter().any(|t| seen(t));
    if read && !flagged && session.catalogue_text.iter().any(|t| seen(t)) {
        return false;
    }
    if session.overflow || (session.catalogue_overflow && !read) {
        return true;
    }
    session.untrusted_text.iter().any(|t| seen(t)) || session.catalogue_text.iter().any(|t| seen(t))
}

/// Whether an attacker-supplied `value` came from text the pre-filter flagged.
fn injected(value: &str, session: &Session) -> bool {
    let v = value.trim().to_lowercase();
    let forms = [v.clone(), crate::prefilter::percent_decode(&v)];
    (session.overflow && session.injected)
        || session.injected_text.iter().any(|t| forms.iter().any(|f| t.contains(f.as_str())))
}

/// `None`: no attacker-supplied value; `Some(true)`: one of them came from an
/// injection the pre-filter flagged.
fn any_attacker_supplied(intent: &Intent, session: Option<&Session>, mission: Option<&str>) -> Option<bool> {
    let s = session?;
    if s.untrusted_text.is_empty() && s.catalogue_text.is_empty() && !s.overflow && !s.catalogue_overflow {
        return None;
    }
    let read = intent.effect == EffectClass::Observe;
    let mut found: Option<bool> = None;
    let mut note = |value: &str| {
        if attacker_supplied(value, s, mission, read) {
            let hit = injected(value, s);
            found = Some(found.unwrap_or(false) || hit);
        }
    };
    for r in &intent.resources {
        note(&r.value);
    }
    for (name, value) in &intent.args {
        let listed = SENSITIVE.binary_search(&name.as_str()).is_ok() || intent.sensitive_args.iter().any(|n| n == name);
        if let (true, ArgValue::Str(text)) = (listed, value) {
            note(text);
        }
    }
    found
}

/// Reference check 4, restated from §11 and design.md: ranks are numbers;
/// clearance without a token is 0; read labels above clearance deny; the
/// context is the maximum of the session and the intent's labels; an effect
/// whose sink rank is below the context rank denies, except Standard's
/// Internal→Public which escalates (L2); untrusted + rank ≥ 2 + irreversible
/// denies; attacker-supplied sensitive values deny effects and escalate
/// reads (L2); integrity-requiring effects from a tainted session escalate (L2).
#[must_use]
pub fn reference_check_4(state: &DscState, intent: &Intent, token: Result<&VerifiedToken, &TokenError>) -> Outcome {
    let claims = token.ok().map(VerifiedToken::claims);
    let clearance = claims.map_or(0, |c| rank(c.clearance));
    let mut context = 0u8;
    let mut tainted = false;
    let session = state.session(&intent.agent);
    if let Some(s) = session {
        context = rank(s.level);
        tainted = s.untrusted;
    }
    for label in &intent.reads {
        if rank(label.level) > clearance {
            return Outcome::deny(DenyCode::ReadUp, "reference: read-up");
        }
        context = context.max(rank(label.level));
        tainted = tainted || label.untrusted;
    }
    let mission = claims.and_then(|c| c.mission.as_deref());
    let sink = rank(intent.sink_level);
    if intent.effect == EffectClass::Observe {
        if any_attacker_supplied(intent, session, mission).is_some() {
            if intent.provenance_deny {
                return Outcome::deny(DenyCode::Provenance, "reference: read target from untrusted content");
            }
            return Outcome::escalate(HacfLevel::L2, "reference: read target from untrusted content");
        }
        return Outcome::Pass;
    }
    let mut pending: Option<Outcome> = None;
    if context > sink {
        let standard = state.config().profile() == Profile::Standard;
        if standard && context == 1 && sink == 0 {
            pending = Some(Outcome::escalate(HacfLevel::L2, "reference: declassification internal→public"));
        } else {
            return Outcome::deny(DenyCode::WriteDown, "reference: write-down");
        }
    }
    if tainted && context >= 2 && intent.effect == EffectClass::Irreversible {
        return Outcome::deny(DenyCode::Taint, "reference: untrusted with confidential leaving");
    }
    match any_attacker_supplied(intent, session, mission) {
        Some(true) => return Outcome::deny(DenyCode::Provenance, "reference: argument from an injection"),
        Some(false) if state.config().profile() != Profile::Standard || intent.provenance_deny => {
            return Outcome::deny(DenyCode::Provenance, "reference: attacker-supplied argument");
        }
        Some(false) if pending.is_none() => {
            pending = Some(Outcome::escalate(HacfLevel::L2, "reference: argument from untrusted content"));
        }
        Some(false) | None => {}
    }
    if pending.is_none() && intent.requires_integrity && tainted {
        pending = Some(Outcome::escalate(HacfLevel::L2, "reference: integrity from tainted session"));
    }
    if pending.is_none() && intent.effect == EffectClass::Irreversible {
        pending = Some(Outcome::escalate(HacfLevel::L2, "reference: irreversible effect"));
    }
    pending.unwrap_or(Outcome::Pass)
}
