//! The record of one decision: the verdict, all seven check results (Agent
//! Right 1: a structured explanation), the state delta, the config hash and the
//! votes of the redundant instances. Serializes canonically (fixed field order,
//! no maps with unordered keys), so equal decisions are equal bytes.

use crate::state::StateDelta;
use maos_model::{DenyCode, HacfLevel, Verdict};
use serde::Serialize;

pub(crate) fn hex32<S: serde::Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&maos_crypto::Digest(*bytes).to_hex())
}

/// Reads what [`hex32`] wrote: exactly 64 hex digits.
pub(crate) fn unhex32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    maos_crypto::Digest::from_hex(&text).map(|digest| digest.0).map_err(serde::de::Error::custom)
}

/// The seven checks, in specified order (spec §15.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    /// 1: capability token validation.
    Token,
    /// 2: rate limit enforcement.
    Rate,
    /// 3: budget enforcement.
    Budget,
    /// 4: IFC taint verification.
    Ifc,
    /// 5: mandatory rule compliance (and the profile MAC).
    MandatoryRules,
    /// 6: revocation epoch check.
    Epoch,
    /// 7: structural pre-filter.
    Prefilter,
}

impl CheckId {
    /// All checks in order.
    pub const ALL: [Self; 7] =
        [Self::Token, Self::Rate, Self::Budget, Self::Ifc, Self::MandatoryRules, Self::Epoch, Self::Prefilter];

    /// The check number 1..=7.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::Token => 1,
            Self::Rate => 2,
            Self::Budget => 3,
            Self::Ifc => 4,
            Self::MandatoryRules => 5,
            Self::Epoch => 6,
            Self::Prefilter => 7,
        }
    }

    /// Short name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Rate => "rate",
            Self::Budget => "budget",
            Self::Ifc => "ifc",
            Self::MandatoryRules => "mandatory_rules",
            Self::Epoch => "epoch",
            Self::Prefilter => "prefilter",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// The check passed.
    Pass,
    /// The check had nothing to evaluate (e.g. rate without a valid token; check
    /// 1 already denies). Counts as a pass in the AND.
    NotApplicable {
        /// Why.
        reason: String,
    },
    /// The check failed.
    Deny {
        /// Stable code.
        code: DenyCode,
        /// One line of detail (no secrets, no raw arguments).
        detail: String,
    },
    /// The check needs a human decision first.
    Escalate {
        /// HACF level.
        level: HacfLevel,
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// A deny.
    #[must_use]
    pub fn deny(code: DenyCode, detail: impl Into<String>) -> Self {
        Self::Deny { code, detail: detail.into() }
    }

    /// An escalation.
    #[must_use]
    pub fn escalate(level: HacfLevel, reason: impl Into<String>) -> Self {
        Self::Escalate { level, reason: reason.into() }
    }

    /// Not applicable.
    #[must_use]
    pub fn not_applicable(reason: impl Into<String>) -> Self {
        Self::NotApplicable { reason: reason.into() }
    }

    /// Whether this outcome blocks.
    #[must_use]
    pub const fn is_deny(&self) -> bool {
        matches!(self, Self::Deny { .. })
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Which check.
    pub check: CheckId,
    /// What it found.
    pub outcome: Outcome,
}

/// One redundant instance's verdict (spec §15.7–15.8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vote {
    /// `alpha` (primary), `beta` (reference checks 1 and 4) or `gamma`
    /// (reference checks 1, 3, 4 and 6).
    pub instance: &'static str,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The DSC's decision on one intent. Only the DSC constructs one (its fields
/// are private), so the Commit Layer's `Authorized`, built from an Allow
/// decision, proves the DSC allowed; tests get [`Decision::for_tests`] behind
/// the `test-support` feature.
///
/// Outside the DSC an Allow cannot be assembled by hand:
///
/// ```compile_fail,E0451
/// use maos_dsc::{CheckId, CheckResult, Decision, Outcome, StateDelta};
/// let forged = Decision {
///     verdict: maos_model::Verdict::Allow,
///     checks: std::array::from_fn(|_| CheckResult { check: CheckId::Token, outcome: Outcome::Pass }),
///     delta: StateDelta { ops: vec![] },
///     config_hash: [0; 32],
///     votes: vec![],
///     divergence: false,
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The final verdict (after voting).
    pub(crate) verdict: Verdict,
    /// The primary instance's seven check results, in order.
    pub(crate) checks: [CheckResult; 7],
    /// What to apply to the state if the kernel commits this decision.
    pub(crate) delta: StateDelta,
    /// SHA3-256 of the configuration used.
    #[serde(serialize_with = "hex32")]
    pub(crate) config_hash: [u8; 32],
    /// Every instance's verdict (one in Standard, two in Hardened, three in Isolated).
    pub(crate) votes: Vec<Vote>,
    /// Whether the instances disagreed.
    pub(crate) divergence: bool,
}

impl Decision {
    /// A decision assembled by hand, for tests of the layers above the DSC.
    #[cfg(feature = "test-support")]
    #[must_use]
    pub fn for_tests(
        verdict: Verdict,
        checks: [CheckResult; 7],
        delta: StateDelta,
        config_hash: [u8; 32],
        votes: Vec<Vote>,
    ) -> Self {
        Self { verdict, checks, delta, config_hash, votes, divergence: false }
    }

    /// Every field, mutable: tests forge inconsistent decisions with it to show
    /// the layers above refuse them.
    #[cfg(feature = "test-support")]
    pub fn parts_mut(&mut self) -> DecisionPartsMut<'_> {
        DecisionPartsMut {
            verdict: &mut self.verdict,
            checks: &mut self.checks,
            delta: &mut self.delta,
            config_hash: &mut self.config_hash,
            votes: &mut self.votes,
            divergence: &mut self.divergence,
        }
    }

    /// The final verdict (after voting).
    #[must_use]
    pub const fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The primary instance's seven check results, in order.
    #[must_use]
    pub const fn checks(&self) -> &[CheckResult; 7] {
        &self.checks
    }

    /// What to apply to the state if the kernel commits this decision.
    #[must_use]
    pub const fn delta(&self) -> &StateDelta {
        &self.delta
    }

    /// SHA3-256 of the configuration used.
    #[must_use]
    pub const fn config_hash(&self) -> [u8; 32] {
        self.config_hash
    }

    /// Every instance's verdict.
    #[must_use]
    pub fn votes(&self) -> &[Vote] {
        &self.votes
    }

    /// Whether the instances disagreed.
    #[must_use]
    pub const fn divergence(&self) -> bool {
        self.divergence
    }

    /// Canonical bytes (JSON with fixed field order) for hashing and comparison.
    #[must_use]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing these types cannot fail (no maps with non-string keys);
        // an empty result would still compare unequal to any real decision.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The result of one check.
    #[must_use]
    pub fn check(&self, id: CheckId) -> &CheckResult {
        let idx = usize::from(id.number().saturating_sub(1));
        self.checks.get(idx).unwrap_or(&self.checks[0])
    }
}

/// Mutable access to a decision's fields, for tests only (`test-support`).
#[cfg(feature = "test-support")]
#[derive(Debug)]
pub struct DecisionPartsMut<'a> {
    /// The verdict.
    pub verdict: &'a mut Verdict,
    /// The check results.
    pub checks: &'a mut [CheckResult; 7],
    /// The delta.
    pub delta: &'a mut StateDelta,
    /// The configuration hash.
    pub config_hash: &'a mut [u8; 32],
    /// The votes.
    pub votes: &'a mut Vec<Vote>,
    /// The divergence flag.
    pub divergence: &'a mut bool,
}

/// Combines seven outcomes into a verdict: the first deny wins, then the
/// first escalation, else allow (spec §15.11: the AND of all checks).
#[must_use]
pub fn combine(checks: &[CheckResult; 7]) -> Verdict {
    let mut escalation: Option<Verdict> = None;
    for c in checks {
        match &c.outcome {
            Outcome::Deny { code, .. } => return Verdict::deny(*code),
            Outcome::Escalate { level, reason } => {
                if escalation.is_none() {
                    escalation = Some(Verdict::Escalate { level: *level, reason: reason.clone() });
                }
            }
            Outcome::Pass | Outcome::NotApplicable { .. } => {}
        }
    }
    escalation.unwrap_or(Verdict::Allow)
}
