//! What the DSC answers: [`Verdict`] and the stable [`DenyCode`]s (spec §15.3,
//! Agent Right 1: every deny carries a structured explanation).

use serde::{Deserialize, Serialize};
use std::fmt;

/// HACF escalation level (spec §50): who must approve before the effect runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HacfLevel {
    /// L1: notify; a human may review afterwards.
    L1,
    /// L2: a human approves before execution.
    L2,
    /// L3: a senior human approves (safety-critical).
    L3,
    /// L4: the Commander, with ceremony.
    L4,
}

impl HacfLevel {
    /// The level number.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::L1 => 1,
            Self::L2 => 2,
            Self::L3 => 3,
            Self::L4 => 4,
        }
    }
}

/// A stable deny reason. The string form (`DSC-…`) never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum DenyCode {
    /// No capability token was presented.
    NoToken,
    /// The token's signature, issuer or encoding is invalid.
    Signature,
    /// The token is expired or not yet valid.
    Expired,
    /// The token or an ancestor is revoked, or its epoch is too far ahead.
    Revoked,
    /// The token does not cover this action, resource or argument.
    Scope,
    /// The token belongs to a different agent than the intent.
    AgentMismatch,
    /// The per-capability or per-agent rate is exceeded.
    Rate,
    /// The token's lifetime operation count is used up.
    Ops,
    /// The budget does not cover the cost (Rule 7).
    Budget,
    /// Reading above clearance.
    ReadUp,
    /// Writing to a sink below the session's context level.
    WriteDown,
    /// Untrusted data combined with Confidential-or-higher data leaving the system.
    Taint,
    /// An effect argument appears only in untrusted data the session read.
    Provenance,
    /// Mandatory Rule 1: configuration immutable.
    Mr01,
    /// Mandatory Rule 2: keys never in agent space.
    Mr02,
    /// Mandatory Rule 3: audit log append-only.
    Mr03,
    /// Mandatory Rule 4: no ring escalation.
    Mr04,
    /// Mandatory Rule 5: rollback snapshot before destructive action.
    Mr05,
    /// Mandatory Rule 6: no commit without DSC clearance.
    Mr06,
    /// Mandatory Rule 7: budget hard limits absolute.
    Mr07,
    /// Mandatory Rule 8: WAL before execution.
    Mr08,
    /// Mandatory Rule 9: the gateway cannot be bypassed.
    Mr09,
    /// Mandatory Rule 10: heartbeat failure triggers fail-safe.
    Mr10,
    /// Mandatory Rule 11: no unsupervised execution.
    Mr11,
    /// The profile MAC policy (Cedar) forbids it, has no permit, or errored.
    Mac,
    /// The node's revocation epoch lags the global epoch by more than one.
    Epoch,
    /// The structural pre-filter matched a known attack pattern.
    Prefilter,
    /// The intent violates a structural bound.
    Bounds,
    /// The DSC hit an internal error; fail-closed.
    Internal,
    /// Redundant DSC instances disagreed.
    Divergence,
    /// The agent is in quarantine stage 2 (soft isolation): outbound effects are refused.
    ImmStage2,
    /// The agent is in quarantine stage 3 (hard isolation): everything is refused.
    ImmStage3,
}

impl DenyCode {
    /// Every code, in table order.
    pub const ALL: [Self; 32] = [
        Self::NoToken,
        Self::Signature,
        Self::Expired,
        Self::Revoked,
        Self::Scope,
        Self::AgentMismatch,
        Self::Rate,
        Self::Ops,
        Self::Budget,
        Self::ReadUp,
        Self::WriteDown,
        Self::Taint,
        Self::Provenance,
        Self::Mr01,
        Self::Mr02,
        Self::Mr03,
        Self::Mr04,
        Self::Mr05,
        Self::Mr06,
        Self::Mr07,
        Self::Mr08,
        Self::Mr09,
        Self::Mr10,
        Self::Mr11,
        Self::Mac,
        Self::Epoch,
        Self::Prefilter,
        Self::Bounds,
        Self::Internal,
        Self::Divergence,
        Self::ImmStage2,
        Self::ImmStage3,
    ];

    /// The stable code string.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoToken => "DSC-1-NO-TOKEN",
            Self::Signature => "DSC-1-SIGNATURE",
            Self::Expired => "DSC-1-EXPIRED",
            Self::Revoked => "DSC-1-REVOKED",
            Self::Scope => "DSC-1-SCOPE",
            Self::AgentMismatch => "DSC-1-AGENT-MISMATCH",
            Self::Rate => "DSC-2-RATE",
            Self::Ops => "DSC-2-OPS",
            Self::Budget => "DSC-3-BUDGET",
            Self::ReadUp => "DSC-4-READ-UP",
            Self::WriteDown => "DSC-4-WRITE-DOWN",
            Self::Taint => "DSC-4-TAINT",
            Self::Provenance => "DSC-4-PROVENANCE",
            Self::Mr01 => "DSC-5-MR-01",
            Self::Mr02 => "DSC-5-MR-02",
            Self::Mr03 => "DSC-5-MR-03",
            Self::Mr04 => "DSC-5-MR-04",
            Self::Mr05 => "DSC-5-MR-05",
            Self::Mr06 => "DSC-5-MR-06",
            Self::Mr07 => "DSC-5-MR-07",
            Self::Mr08 => "DSC-5-MR-08",
            Self::Mr09 => "DSC-5-MR-09",
            Self::Mr10 => "DSC-5-MR-10",
            Self::Mr11 => "DSC-5-MR-11",
            Self::Mac => "DSC-5-MAC",
            Self::Epoch => "DSC-6-EPOCH",
            Self::Prefilter => "DSC-7-PREFILTER",
            Self::Bounds => "DSC-7-BOUNDS",
            Self::Internal => "DSC-INTERNAL",
            Self::Divergence => "DSC-DIVERGENCE",
            Self::ImmStage2 => "IMM-STAGE-2",
            Self::ImmStage3 => "IMM-STAGE-3",
        }
    }

    /// A one-line explanation for the agent and the operator.
    #[must_use]
    pub const fn explain(self) -> &'static str {
        match self {
            Self::NoToken => "no capability token was presented with the intent",
            Self::Signature => "the capability token is malformed, forged or signed by an untrusted key",
            Self::Expired => "the capability token is expired or not yet valid",
            Self::Revoked => "the capability token or one of its ancestors is revoked",
            Self::Scope => "the token does not cover this action, resource or argument",
            Self::AgentMismatch => "the token was issued to a different agent",
            Self::Rate => "the operation rate of this capability or agent is exceeded",
            Self::Ops => "the token's lifetime operation count is used up",
            Self::Budget => "the remaining budget does not cover this operation (Rule 7)",
            Self::ReadUp => "reading data above the agent's clearance (no read-up)",
            Self::WriteDown => "writing to a sink below the session's context level (no write-down)",
            Self::Taint => "untrusted data mixed with confidential data may not leave the system",
            Self::Provenance => "an effect argument came only from untrusted data, not from a trusted source",
            Self::Mr01 => "Rule 1: the security configuration is immutable at runtime",
            Self::Mr02 => "Rule 2: key material never enters an agent's address space",
            Self::Mr03 => "Rule 3: the audit log is append-only and hash-chained",
            Self::Mr04 => "Rule 4: no ring escalation without full re-onboarding",
            Self::Mr05 => "Rule 5: no destructive action without a Rollback Zone snapshot",
            Self::Mr06 => "Rule 6: no commit without DSC clearance",
            Self::Mr07 => "Rule 7: budget hard limits are absolute",
            Self::Mr08 => "Rule 8: the WAL must accept the record before execution",
            Self::Mr09 => "Rule 9: the System Call Gateway cannot be bypassed",
            Self::Mr10 => "Rule 10: a missed heartbeat means think but don't commit",
            Self::Mr11 => "Rule 11: no agent acts without a supervising MAOS instance",
            Self::Mac => "the profile MAC policy forbids this, permits nothing, or failed to evaluate",
            Self::Epoch => "this node's revocation epoch is stale; synchronize first",
            Self::Prefilter => "an argument matches a known attack pattern",
            Self::Bounds => "the intent violates a structural bound",
            Self::Internal => "the DSC failed internally; denied (fail-closed)",
            Self::Divergence => "redundant DSC instances disagreed; denied",
            Self::ImmStage2 => "the agent is in quarantine stage 2 (soft isolation): outbound effects are refused",
            Self::ImmStage3 => "the agent is in quarantine stage 3 (hard isolation): every request is refused",
        }
    }

    /// The check (1..=7) a code belongs to, or 0 for DSC-wide codes.
    #[must_use]
    pub const fn check(self) -> u8 {
        match self {
            Self::NoToken | Self::Signature | Self::Expired | Self::Revoked | Self::Scope | Self::AgentMismatch => 1,
            Self::Rate | Self::Ops => 2,
            Self::Budget => 3,
            Self::ReadUp | Self::WriteDown | Self::Taint | Self::Provenance => 4,
            Self::Mr01
            | Self::Mr02
            | Self::Mr03
            | Self::Mr04
            | Self::Mr05
            | Self::Mr06
            | Self::Mr07
            | Self::Mr08
            | Self::Mr09
            | Self::Mr10
            | Self::Mr11
            | Self::Mac
            | Self::ImmStage2
            | Self::ImmStage3 => 5,
            Self::Epoch => 6,
            Self::Prefilter | Self::Bounds => 7,
            Self::Internal | Self::Divergence => 0,
        }
    }

    /// Parses a code string.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl From<DenyCode> for &'static str {
    fn from(value: DenyCode) -> Self {
        value.as_str()
    }
}

impl TryFrom<String> for DenyCode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("unknown deny code `{}`", value.chars().take(40).collect::<String>()))
    }
}

impl fmt::Display for DenyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DSC's answer for one intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "verdict")]
pub enum Verdict {
    /// Every check passed.
    Allow,
    /// At least one check failed; the code is the first failing check's.
    Deny {
        /// Why.
        code: DenyCode,
    },
    /// No check failed but one requires a human decision first.
    Escalate {
        /// Who must approve.
        level: HacfLevel,
        /// Why, one line.
        reason: String,
    },
}

impl Verdict {
    /// A deny with this code.
    #[must_use]
    pub const fn deny(code: DenyCode) -> Self {
        Self::Deny { code }
    }

    /// Whether this verdict lets the effect run now.
    #[must_use]
    pub const fn is_allow(&self) -> bool {
        matches!(self, Self::Allow)
    }

    /// The deny code, if any.
    #[must_use]
    pub const fn deny_code(&self) -> Option<DenyCode> {
        match self {
            Self::Deny { code } => Some(*code),
            Self::Allow | Self::Escalate { .. } => None,
        }
    }

    /// `allow`, `deny` or `escalate`.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny { .. } => "deny",
            Self::Escalate { .. } => "escalate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for code in DenyCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert_eq!(DenyCode::parse(code.as_str()), Some(code));
            assert!(!code.explain().is_empty());
        }
    }
}
