//! Proof values (style rule 4): [`Authorized`] only from an Allow decision of
//! the DSC (Rule 6), [`LoggedIntent`] only from a durable WAL append of the
//! intent record (Rule 8). The pipeline entry takes a `LoggedIntent`, which
//! holds both, so no path executes an effect without them.

use crate::error::AuthorizeError;
use maos_crypto::{Signature, SignatureDomain, VerifyingKey};
use maos_dsc::{Decision, DeltaOp, Outcome, combine};
use maos_model::{EffectClass, HacfLevel, Intent, IntentId, UnixMillis, Verdict};
use maos_wal::Logged;

/// An intent the DSC allowed. Constructible only by [`Authorized::new`] (or,
/// inside this crate, by crash recovery from an intent record it logged itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    intent: Intent,
    decision_hash: [u8; 32],
    config_hash: [u8; 32],
}

impl Authorized {
    /// Checks that `decision` allows `intent`.
    ///
    /// `maos_dsc::Decision` carries no intent id, so the binding is checked on
    /// what it does carry: the verdict must be Allow *and* follow from the
    /// seven check results (a forged Allow over a failing check is refused),
    /// every redundant vote must be Allow with no divergence, and the `Charge`
    /// delta must name the intent's agent and cost.
    ///
    /// # Errors
    /// An [`AuthorizeError`], which callers treat as deny (CT-CL-02).
    pub fn new(intent: Intent, decision: &Decision) -> Result<Self, AuthorizeError> {
        intent.validate().map_err(|e| AuthorizeError::InvalidIntent(e.to_string()))?;
        match &decision.verdict() {
            Verdict::Allow => {}
            Verdict::Deny { .. } | Verdict::Escalate { .. } => {
                return Err(AuthorizeError::NotAllow(decision.verdict().kind()));
            }
        }
        if combine(decision.checks()) != Verdict::Allow {
            return Err(AuthorizeError::Inconsistent("a check result is not a pass"));
        }
        if decision.checks().iter().any(|c| matches!(c.outcome, Outcome::Deny { .. } | Outcome::Escalate { .. })) {
            return Err(AuthorizeError::Inconsistent("a check result is not a pass"));
        }
        if decision.divergence() || decision.votes().iter().any(|v| v.verdict != Verdict::Allow) {
            return Err(AuthorizeError::Inconsistent("redundant instances did not all allow"));
        }
        Self::check_charge(&intent, decision)?;
        Ok(Self {
            intent,
            decision_hash: maos_crypto::sha3_256(&decision.canonical_bytes()).0,
            config_hash: decision.config_hash(),
        })
    }

    /// Checks that a human with the commander key granted an escalated
    /// `decision` for `intent` (HACF, spec §50): the decision must be Escalate
    /// (no check denied, no divergence), the grant must name this intent and
    /// this exact decision, be at least the requested level, be unexpired at
    /// `now`, and carry a valid hybrid signature by `commander` in the
    /// [`SignatureDomain::ApprovalDecision`] domain over
    /// [`ApprovalGrant::message`].
    ///
    /// # Errors
    /// An [`AuthorizeError`], which callers treat as deny.
    pub fn approved(
        intent: Intent,
        decision: &Decision,
        grant: &SignedApproval,
        commander: &VerifyingKey,
        now: UnixMillis,
    ) -> Result<Self, AuthorizeError> {
        intent.validate().map_err(|e| AuthorizeError::InvalidIntent(e.to_string()))?;
        let requested = match &decision.verdict() {
            Verdict::Escalate { level, .. } => *level,
            Verdict::Allow | Verdict::Deny { .. } => return Err(AuthorizeError::NotEscalated),
        };
        if !matches!(combine(decision.checks()), Verdict::Escalate { .. })
            || decision.checks().iter().any(|c| c.outcome.is_deny())
            || decision.divergence()
            || decision.votes().iter().any(|v| matches!(v.verdict, Verdict::Deny { .. }))
        {
            return Err(AuthorizeError::Inconsistent("an escalated decision may not carry a deny"));
        }
        Self::check_charge(&intent, decision)?;
        let decision_hash = maos_crypto::sha3_256(&decision.canonical_bytes()).0;
        verify_grant(intent.id, decision_hash, requested, grant, commander, now)?;
        Ok(Self { intent, decision_hash, config_hash: decision.config_hash() })
    }

    /// Checks that the commander granted an effect the DSC allowed but the
    /// semantic evaluator sent to a human (spec §15.5: it may add an
    /// escalation, never an allow): the decision must authorize on its own
    /// ([`Self::new`]), and the grant must name this intent and decision, be
    /// at least `requested`, unexpired, and signed as [`Self::approved`] requires.
    ///
    /// # Errors
    /// An [`AuthorizeError`], which callers treat as deny.
    pub fn allowed_and_granted(
        intent: Intent,
        decision: &Decision,
        requested: HacfLevel,
        grant: &SignedApproval,
        commander: &VerifyingKey,
        now: UnixMillis,
    ) -> Result<Self, AuthorizeError> {
        let authorized = Self::new(intent, decision)?;
        verify_grant(authorized.intent.id, authorized.decision_hash, requested, grant, commander, now)?;
        Ok(authorized)
    }

    fn check_charge(intent: &Intent, decision: &Decision) -> Result<(), AuthorizeError> {
        for op in &decision.delta().ops {
            if let DeltaOp::Charge { agent, cost, .. } = op {
                if *agent != intent.agent {
                    return Err(AuthorizeError::Mismatch("the decision charged another agent"));
                }
                if *cost != intent.cost {
                    return Err(AuthorizeError::Mismatch("the decision charged another cost"));
                }
            }
        }
        Ok(())
    }

    /// The intent.
    #[must_use]
    pub const fn intent(&self) -> &Intent {
        &self.intent
    }

    /// The intent id.
    #[must_use]
    pub const fn id(&self) -> IntentId {
        self.intent.id
    }

    /// SHA3-256 of the decision's canonical bytes.
    #[must_use]
    pub const fn decision_hash(&self) -> [u8; 32] {
        self.decision_hash
    }

    /// The DSC configuration hash the decision was made under.
    #[must_use]
    pub const fn config_hash(&self) -> [u8; 32] {
        self.config_hash
    }
}

/// An authorized intent whose stage-1 record is durable in the WAL.
/// Constructible only by [`crate::CommitLayer::log_intent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIntent {
    authorized: Authorized,
    logged: Logged,
    class: EffectClass,
}

impl LoggedIntent {
    pub(crate) const fn new(authorized: Authorized, logged: Logged, class: EffectClass) -> Self {
        Self { authorized, logged, class }
    }

    /// The class the pipeline runs it under (the stronger of declared and classified).
    #[must_use]
    pub const fn class(&self) -> EffectClass {
        self.class
    }

    /// The authorization.
    #[must_use]
    pub const fn authorized(&self) -> &Authorized {
        &self.authorized
    }

    /// The intent.
    #[must_use]
    pub const fn intent(&self) -> &Intent {
        &self.authorized.intent
    }

    /// The WAL proof of the intent record.
    #[must_use]
    pub const fn logged(&self) -> Logged {
        self.logged
    }
}

/// What a human approved: one escalated decision on one intent, up to a level,
/// until an expiry (HACF level 2+, spec §50.4). The commander signs
/// [`ApprovalGrant::message`]; the kernel builds the packet and asks for the
/// signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalGrant {
    /// The intent.
    pub intent: IntentId,
    /// SHA3-256 of the escalated decision's canonical bytes.
    pub decision_hash: [u8; 32],
    /// The level the approver holds (must be at least the requested one).
    pub level: HacfLevel,
    /// The grant is void from this time on (expired packets deny).
    pub expires: UnixMillis,
}

impl ApprovalGrant {
    /// A grant for `decision` on `intent`.
    #[must_use]
    pub fn new(intent: &Intent, decision: &Decision, level: HacfLevel, expires: UnixMillis) -> Self {
        Self { intent: intent.id, decision_hash: maos_crypto::sha3_256(&decision.canonical_bytes()).0, level, expires }
    }

    /// The canonical bytes signed (format `maos-approval-grant/v1`): the label,
    /// the 16 id bytes, the 32-byte decision hash, the level number and the
    /// expiry as 8 little-endian bytes.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        out.extend_from_slice(b"maos-approval-grant/v1\0");
        out.extend_from_slice(self.intent.as_bytes());
        out.extend_from_slice(&self.decision_hash);
        out.push(self.level.number());
        out.extend_from_slice(&self.expires.0.to_le_bytes());
        out
    }
}

/// The grant names `intent` and `decision_hash`, is at least `requested`,
/// unexpired at `now`, and carries the commander's signature.
fn verify_grant(
    intent: IntentId,
    decision_hash: [u8; 32],
    requested: HacfLevel,
    grant: &SignedApproval,
    commander: &VerifyingKey,
    now: UnixMillis,
) -> Result<(), AuthorizeError> {
    let g = &grant.grant;
    if g.intent != intent || g.decision_hash != decision_hash {
        return Err(AuthorizeError::Mismatch("the approval is for another intent or decision"));
    }
    if g.level < requested {
        return Err(AuthorizeError::Mismatch("the approval is below the requested HACF level"));
    }
    if now >= g.expires {
        return Err(AuthorizeError::ApprovalExpired);
    }
    commander
        .verify(SignatureDomain::ApprovalDecision, &g.message(), &grant.signature)
        .map_err(|_| AuthorizeError::ApprovalSignature)
}

/// A grant with the commander's hybrid signature.
#[derive(Debug, Clone)]
pub struct SignedApproval {
    /// What was approved.
    pub grant: ApprovalGrant,
    /// ML-DSA-65 + Ed25519 over [`ApprovalGrant::message`] in the
    /// [`SignatureDomain::ApprovalDecision`] domain.
    pub signature: Signature,
}
