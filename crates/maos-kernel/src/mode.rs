//! The kernel's fail-safe modes (Rule 10, spec §14.2): when the machinery an
//! effect depends on is in doubt, the kernel keeps thinking (observations,
//! decisions) but refuses effects with a stable code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Refusal code while crash recovery runs.
pub const CODE_RECOVERY_HOLD: &str = "KERNEL-RECOVERY-HOLD";
/// Refusal code in commit freeze (the WAL accepts no durable write).
pub const CODE_FREEZE: &str = "KERNEL-FREEZE";
/// Refusal code in think-but-don't-commit (DSC errors, missed heartbeat).
pub const CODE_THINK_ONLY: &str = "KERNEL-THINK-ONLY";

/// The kernel's mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// Everything runs.
    Normal,
    /// Crash recovery is finishing logged intents: no new side effects.
    RecoveryHold,
    /// The WAL cannot make records durable: nothing can be logged, so nothing
    /// is allowed (observations are denied too, since their decision cannot be
    /// recorded). Sticky until restart.
    CommitFreeze {
        /// Why.
        why: String,
    },
    /// Think but don't commit (Rule 10): observations continue, effects are
    /// refused. Sticky until restart.
    ThinkDontCommit {
        /// Why.
        why: String,
    },
    /// An emergency controlled shutdown began (spec §38.6): every request is
    /// refused, observations included. Sticky until restart; the restart
    /// itself may need the commander ([`crate::ecs::boot_gate`]).
    Emergency {
        /// The shutdown's id and trigger.
        why: String,
    },
}

impl Mode {
    /// Stable name.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::RecoveryHold => "recovery_hold",
            Self::CommitFreeze { .. } => "commit_freeze",
            Self::ThinkDontCommit { .. } => "think_dont_commit",
            Self::Emergency { .. } => "emergency",
        }
    }

    /// Why the kernel is in this mode (`None` when normal).
    #[must_use]
    pub fn why(&self) -> Option<&str> {
        match self {
            Self::Normal => None,
            Self::RecoveryHold => Some("crash recovery is finishing logged intents"),
            Self::CommitFreeze { why } | Self::ThinkDontCommit { why } | Self::Emergency { why } => Some(why),
        }
    }

    /// The refusal code for an effect (write or irreversible) in this mode,
    /// `None` when effects may run.
    #[must_use]
    pub const fn effect_refusal(&self) -> Option<&'static str> {
        match self {
            Self::Normal => None,
            Self::RecoveryHold => Some(CODE_RECOVERY_HOLD),
            Self::CommitFreeze { .. } => Some(CODE_FREEZE),
            Self::ThinkDontCommit { .. } => Some(CODE_THINK_ONLY),
            Self::Emergency { .. } => Some(crate::ecs::CODE_ECS),
        }
    }

    /// Severity order: a transition never lowers it, except recovery hold
    /// ending in normal.
    pub(crate) const fn severity(&self) -> u8 {
        match self {
            Self::Normal => 0,
            Self::RecoveryHold => 1,
            Self::ThinkDontCommit { .. } => 2,
            Self::CommitFreeze { .. } => 3,
            Self::Emergency { .. } => 4,
        }
    }

    /// Whether observations are refused too (nothing is decided at all).
    #[must_use]
    pub const fn refuses_everything(&self) -> bool {
        matches!(self, Self::CommitFreeze { .. } | Self::Emergency { .. })
    }

    /// Whether moving from `self` to `next` is allowed: only to a stricter
    /// mode, or out of recovery hold into normal.
    pub(crate) const fn may_become(&self, next: &Self) -> bool {
        match (self, next) {
            (Self::RecoveryHold, Self::Normal) => true,
            // Recovery hold is entered only at start.
            (_, Self::RecoveryHold) => false,
            _ => next.severity() > self.severity(),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why() {
            Some(why) => write!(f, "{} ({why})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freeze() -> Mode {
        Mode::CommitFreeze { why: "disk".into() }
    }

    fn think() -> Mode {
        Mode::ThinkDontCommit { why: "heartbeat".into() }
    }

    #[test]
    fn transitions_only_get_stricter_except_leaving_recovery_hold() {
        assert!(Mode::RecoveryHold.may_become(&Mode::Normal));
        assert!(Mode::Normal.may_become(&think()));
        assert!(Mode::Normal.may_become(&freeze()));
        assert!(think().may_become(&freeze()));
        assert!(Mode::RecoveryHold.may_become(&freeze()));
        assert!(!freeze().may_become(&Mode::Normal));
        assert!(!freeze().may_become(&think()));
        assert!(!think().may_become(&Mode::Normal));
        assert!(!think().may_become(&think()));
        assert!(!Mode::Normal.may_become(&Mode::RecoveryHold));
        let ecs = Mode::Emergency { why: "ecs-1".into() };
        assert!(freeze().may_become(&ecs) && think().may_become(&ecs));
        assert!(!ecs.may_become(&freeze()) && !ecs.may_become(&Mode::Normal));
        assert_eq!(ecs.effect_refusal(), Some(crate::ecs::CODE_ECS));
        assert!(ecs.refuses_everything() && freeze().refuses_everything() && !think().refuses_everything());
    }

    #[test]
    fn every_mode_but_normal_refuses_effects_with_a_code() {
        assert_eq!(Mode::Normal.effect_refusal(), None);
        assert_eq!(Mode::RecoveryHold.effect_refusal(), Some(CODE_RECOVERY_HOLD));
        assert_eq!(freeze().effect_refusal(), Some(CODE_FREEZE));
        assert_eq!(think().effect_refusal(), Some(CODE_THINK_ONLY));
        assert_eq!(think().to_string(), "think_dont_commit (heartbeat)");
    }

    #[test]
    fn modes_serialize_with_a_tag() {
        let json = serde_json::to_string(&freeze()).unwrap();
        assert_eq!(json, r#"{"mode":"commit_freeze","why":"disk"}"#);
        assert_eq!(serde_json::from_str::<Mode>(&json).unwrap(), freeze());
    }
}
