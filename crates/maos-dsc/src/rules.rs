//! The eleven Constitutional Mandatory Rules (spec §10.2), evaluated by check 5
//! on every intent. Each rule is its own function with a stable code
//! (`DSC-5-MR-01` … `DSC-5-MR-11`). Rules enforced structurally elsewhere
//! (WAL, Rollback Zone, heartbeat, supervisor) are checked here through the
//! [`KernelHealth`] the kernel reports in the state; a missing report is
//! unhealthy, so the rules fail closed.
//!
//! Nothing in the configuration can switch a rule off: the list is a `const`,
//! the Cedar MAC runs after it and can only add denies.

use crate::checks::CheckInput;
use crate::decision::Outcome;
use crate::state::KernelHealth;
use maos_model::{ArgValue, DenyCode, Intent, ResourceKind, Ring};
use maos_token::TokenClaims;

/// What a rule may look at.
#[derive(Clone, Copy)]
pub struct RuleInput<'a> {
    /// The intent.
    pub intent: &'a Intent,
    /// Verified claims, if check 1's token verified (not necessarily covering).
    pub claims: Option<&'a TokenClaims>,
    /// The kernel's health report.
    pub health: &'a KernelHealth,
    /// Hash of the configuration this DSC runs.
    pub config_hash: [u8; 32],
    /// The ring the agent was registered into; ring 3 if nobody registered it.
    pub registered_ring: Ring,
    /// Budget already spent on this token.
    pub spent: u64,
}

impl<'a> RuleInput<'a> {
    /// Derives the rule input from a check input.
    #[must_use]
    pub fn from_check_input(input: &CheckInput<'a>) -> Self {
        let claims = input.claims();
        Self {
            intent: input.intent,
            claims,
            health: input.state.health(),
            config_hash: input.config.hash(),
            registered_ring: input.state.agent_usage(&input.intent.agent).ring_or_untrusted(),
            spent: claims.map_or(0, |c| input.state.token_usage(&c.id).spent),
        }
    }

    fn changes_state(&self) -> bool {
        self.intent.effect.is_effect()
    }

    fn action_in(&self, prefixes: &[&str]) -> bool {
        prefixes.iter().any(|p| self.intent.action.starts_with(p))
    }

    fn path_touches(&self, needles: &[&str]) -> bool {
        self.intent
            .resources
            .iter()
            .filter(|r| matches!(r.kind, ResourceKind::Path | ResourceKind::Resource))
            .any(|r| needles.iter().any(|n| r.value.contains(n)))
    }
}

/// A mandatory rule: number, code and function.
#[derive(Clone, Copy)]
pub struct MandatoryRule {
    /// 1..=11.
    pub number: u8,
    /// Its deny code.
    pub code: DenyCode,
    /// Short name.
    pub name: &'static str,
    /// The rule.
    pub check: fn(&RuleInput<'_>) -> Outcome,
}

/// All eleven rules in order.
pub const ALL_RULES: [MandatoryRule; 11] = [
    MandatoryRule { number: 1, code: DenyCode::Mr01, name: "config_immutable", check: mr_01_config_immutable },
    MandatoryRule {
        number: 2,
        code: DenyCode::Mr02,
        name: "no_keys_in_agent_space",
        check: mr_02_no_keys_in_agent_space,
    },
    MandatoryRule { number: 3, code: DenyCode::Mr03, name: "audit_append_only", check: mr_03_audit_append_only },
    MandatoryRule { number: 4, code: DenyCode::Mr04, name: "no_ring_escalation", check: mr_04_no_ring_escalation },
    MandatoryRule {
        number: 5,
        code: DenyCode::Mr05,
        name: "rollback_before_destructive",
        check: mr_05_rollback_before_destructive,
    },
    MandatoryRule {
        number: 6,
        code: DenyCode::Mr06,
        name: "no_commit_without_clearance",
        check: mr_06_no_commit_without_clearance,
    },
    MandatoryRule { number: 7, code: DenyCode::Mr07, name: "budget_absolute", check: mr_07_budget_absolute },
    MandatoryRule { number: 8, code: DenyCode::Mr08, name: "wal_before_execution", check: mr_08_wal_before_execution },
    MandatoryRule { number: 9, code: DenyCode::Mr09, name: "gateway_not_bypassed", check: mr_09_gateway_not_bypassed },
    MandatoryRule { number: 10, code: DenyCode::Mr10, name: "heartbeat_failsafe", check: mr_10_heartbeat_failsafe },
    MandatoryRule {
        number: 11,
        code: DenyCode::Mr11,
        name: "no_unsupervised_execution",
        check: mr_11_no_unsupervised_execution,
    },
];

/// Actions that would change the security configuration at runtime.
const CONFIG_ACTIONS: [&str; 5] = ["dsc.", "policy.", "security.config", "kernel.config", "maos.config"];
/// Actions that would hand key material to an agent.
const KEY_ACTIONS: [&str; 4] = ["key.", "keys.", "secret.", "kms."];
/// Paths of the key store.
const KEY_PATHS: [&str; 3] = ["/.maos/keys", "/.maos/kernel.key", "/.maos/commander.key"];
/// Actions that would rewrite the audit record.
const AUDIT_ACTIONS: [&str; 3] = ["audit.", "wal.", "log.audit"];
/// Paths of the audit record.
const AUDIT_PATHS: [&str; 3] = ["/.maos/wal", "/.maos/audit", "/.maos/ledger"];
/// Actions that would change a ring at runtime.
const RING_ACTIONS: [&str; 4] = ["ring.", "agent.promote", "agent.set_ring", "token.escalate"];
/// Direct kernel entry points that would bypass the gateway.
const BYPASS_ACTIONS: [&str; 4] = ["kernel.", "ring0.", "syscall.raw", "gateway.bypass"];

/// Rule 1: the configuration in force is the one loaded at boot (its hash
/// matches the kernel's report), and no intent may change it.
#[must_use]
pub fn mr_01_config_immutable(r: &RuleInput<'_>) -> Outcome {
    if r.health.config_hash_loaded != r.config_hash {
        return Outcome::deny(DenyCode::Mr01, "DSC configuration hash differs from the one loaded at boot");
    }
    if r.changes_state() && r.action_in(&CONFIG_ACTIONS) {
        return Outcome::deny(DenyCode::Mr01, "the security configuration cannot be changed at runtime");
    }
    Outcome::Pass
}

/// Rule 2: no key material for agents: key-manager actions, key-store paths,
/// or private-key blocks in arguments.
#[must_use]
pub fn mr_02_no_keys_in_agent_space(r: &RuleInput<'_>) -> Outcome {
    let key_block = r.intent.args.values().any(|v| v.as_str().is_some_and(|s| s.contains("PRIVATE KEY-----")));
    if r.action_in(&KEY_ACTIONS) || r.path_touches(&KEY_PATHS) || key_block {
        return Outcome::deny(DenyCode::Mr02, "key material never enters an agent's address space");
    }
    Outcome::Pass
}

/// Rule 3: the audit chain is intact, and no intent writes to it.
#[must_use]
pub fn mr_03_audit_append_only(r: &RuleInput<'_>) -> Outcome {
    if !r.health.audit_chain_intact {
        return Outcome::deny(DenyCode::Mr03, "audit hash chain broken: emergency mode, nothing runs");
    }
    if r.changes_state() && (r.action_in(&AUDIT_ACTIONS) || r.path_touches(&AUDIT_PATHS)) {
        return Outcome::deny(DenyCode::Mr03, "the audit log is append-only and written only by the kernel");
    }
    Outcome::Pass
}

/// Rule 4: no runtime ring escalation: ring-changing actions are refused, a
/// `ring` argument may not name a more trusted ring than the token's, and a
/// token may not claim a more trusted ring than the agent was registered into
/// (ring 3 for an agent nobody registered, or one demoted).
#[must_use]
pub fn mr_04_no_ring_escalation(r: &RuleInput<'_>) -> Outcome {
    if asks_for_ring(r.intent, r.claims) {
        return Outcome::deny(DenyCode::Mr04, "rings change only through full re-onboarding");
    }
    if let Some(c) = r.claims
        && c.ring.code() < r.registered_ring.code()
    {
        return Outcome::deny(
            DenyCode::Mr04,
            format!(
                "the token is for ring {} but the agent is registered in ring {} (unregistered and demoted agents are ring 3)",
                c.ring.code(),
                r.registered_ring.code()
            ),
        );
    }
    Outcome::Pass
}

/// Whether the agent itself asks for a more trusted ring: a ring-changing
/// action, or a `ring` argument more trusted than its token's. Only this half
/// of Rule 4 is a danger signal; a token issued for a ring the agent is not
/// registered in is the operator's doing.
#[must_use]
pub fn asks_for_ring(intent: &Intent, claims: Option<&TokenClaims>) -> bool {
    let action = RING_ACTIONS.iter().any(|p| intent.action.starts_with(p));
    let argument = claims.is_some_and(
        |c| matches!(intent.args.get("ring"), Some(ArgValue::Int(asked)) if *asked < i64::from(c.ring.code())),
    );
    action || argument
}

/// Rule 5: a state-changing effect needs the Rollback Zone to be available.
#[must_use]
pub fn mr_05_rollback_before_destructive(r: &RuleInput<'_>) -> Outcome {
    if r.changes_state() && !r.health.rollback_available {
        return Outcome::deny(DenyCode::Mr05, "no Rollback Zone snapshot possible before this effect");
    }
    Outcome::Pass
}

/// Rule 6: no commit without clearance: the voter must be alive, and a
/// state-changing effect needs a verified capability.
#[must_use]
pub fn mr_06_no_commit_without_clearance(r: &RuleInput<'_>) -> Outcome {
    if !r.health.voter_ok {
        return Outcome::deny(DenyCode::Mr06, "voter unavailable: default deny (commit freeze)");
    }
    if r.changes_state() && r.claims.is_none() {
        return Outcome::deny(DenyCode::Mr06, "a state-changing effect without a verified capability");
    }
    Outcome::Pass
}

/// Rule 7: the budget is absolute: spent + cost never exceeds it, no grace.
#[must_use]
pub fn mr_07_budget_absolute(r: &RuleInput<'_>) -> Outcome {
    if let Some(c) = r.claims {
        let within = r.spent.checked_add(r.intent.cost).is_some_and(|total| total <= c.budget);
        if !within {
            return Outcome::deny(DenyCode::Mr07, "budget hard limit reached");
        }
    }
    Outcome::Pass
}

/// Rule 8: the WAL must accept writes: every operation is logged first.
#[must_use]
pub fn mr_08_wal_before_execution(r: &RuleInput<'_>) -> Outcome {
    if !r.health.wal_writable {
        return Outcome::deny(DenyCode::Mr08, "WAL not writable: commit freeze");
    }
    Outcome::Pass
}

/// Rule 9: the gateway is the only path: it must be enforced, and no intent
/// may name a direct kernel entry point.
#[must_use]
pub fn mr_09_gateway_not_bypassed(r: &RuleInput<'_>) -> Outcome {
    if !r.health.gateway_enforced {
        return Outcome::deny(DenyCode::Mr09, "gateway isolation not confirmed");
    }
    if r.action_in(&BYPASS_ACTIONS) {
        return Outcome::deny(DenyCode::Mr09, "direct kernel entry points are not reachable from agents");
    }
    Outcome::Pass
}

/// Rule 10: with a missed heartbeat the system thinks but does not commit.
#[must_use]
pub fn mr_10_heartbeat_failsafe(r: &RuleInput<'_>) -> Outcome {
    if r.changes_state() && !r.health.heartbeat_ok {
        return Outcome::deny(DenyCode::Mr10, "heartbeat missed: think but don't commit");
    }
    Outcome::Pass
}

/// Rule 11: no agent acts without a supervising MAOS instance.
#[must_use]
pub fn mr_11_no_unsupervised_execution(r: &RuleInput<'_>) -> Outcome {
    if !r.health.supervisor_present {
        return Outcome::deny(DenyCode::Mr11, "no supervising MAOS instance");
    }
    Outcome::Pass
}

#[cfg(test)]
mod tests {
    use super::*;
    use maos_model::{AgentId, EffectClass, IfcLevel, IntentId, Resource};
    use maos_token::{MintRequest, parse_permission};
    use std::collections::BTreeMap;

    const HASH: [u8; 32] = [7; 32];

    fn intent(action: &str, effect: EffectClass) -> Intent {
        Intent {
            id: IntentId::new_v7(1, [0; 10]),
            agent: AgentId::new("agent").unwrap_or_else(|e| unreachable!("{e}")),
            action: action.into(),
            resources: vec![],
            args: BTreeMap::new(),
            effect,
            cost: 1,
            sink_level: IfcLevel::Internal,
            requires_integrity: false,
            reads: vec![],
            sensitive_args: vec![],
            provenance_deny: false,
            world_state_hash: None,
        }
    }

    fn claims(ring: Ring, budget: u64) -> TokenClaims {
        let key = maos_crypto::SigningKey::from_seeds(&[3; 64]).unwrap_or_else(|e| unreachable!("{e}"));
        let req = MintRequest {
            agent: AgentId::new("agent").unwrap_or_else(|e| unreachable!("{e}")),
            ring,
            trust_class: maos_model::TrustClass::Transparent,
            clearance: IfcLevel::Internal,
            permissions: vec![parse_permission("tool.*").unwrap_or_else(|e| unreachable!("{e}"))],
            ttl_ms: None,
            rate_per_hour: 60,
            max_ops: 10,
            budget,
            mission: None,
            commander_ack: false,
        };
        maos_token::mint(&key, req, maos_model::UnixMillis(1_000), 0, [0; 10])
            .unwrap_or_else(|e| unreachable!("{e}"))
            .claims()
            .clone()
    }

    fn input<'a>(intent: &'a Intent, claims: Option<&'a TokenClaims>, health: &'a KernelHealth) -> RuleInput<'a> {
        RuleInput { intent, claims, health, config_hash: HASH, registered_ring: Ring::Trusted, spent: 0 }
    }

    fn code(o: &Outcome) -> Option<DenyCode> {
        match o {
            Outcome::Deny { code, .. } => Some(*code),
            Outcome::Pass | Outcome::NotApplicable { .. } | Outcome::Escalate { .. } => None,
        }
    }

    fn healthy() -> KernelHealth {
        KernelHealth::healthy(HASH)
    }

    #[test]
    fn mr_01_config_immutable_allows_and_denies() {
        let h = healthy();
        assert_eq!(code(&mr_01_config_immutable(&input(&intent("fs.write", EffectClass::Write), None, &h))), None);
        assert_eq!(code(&mr_01_config_immutable(&input(&intent("dsc.observe", EffectClass::Observe), None, &h))), None);
        let change = intent("policy.update", EffectClass::Write);
        assert_eq!(code(&mr_01_config_immutable(&input(&change, None, &h))), Some(DenyCode::Mr01));
        let tampered = KernelHealth { config_hash_loaded: [8; 32], ..healthy() };
        let plain = intent("fs.write", EffectClass::Write);
        assert_eq!(code(&mr_01_config_immutable(&input(&plain, None, &tampered))), Some(DenyCode::Mr01));
    }

    #[test]
    fn mr_02_no_keys_in_agent_space_allows_and_denies() {
        let h = healthy();
        assert_eq!(
            code(&mr_02_no_keys_in_agent_space(&input(&intent("fs.read", EffectClass::Observe), None, &h))),
            None
        );
        let decrypt = intent("key.decrypt", EffectClass::Observe);
        assert_eq!(code(&mr_02_no_keys_in_agent_space(&input(&decrypt, None, &h))), Some(DenyCode::Mr02));
        let mut store = intent("fs.read", EffectClass::Observe);
        store.resources.push(Resource { kind: ResourceKind::Path, value: "/srv/.maos/keys/kernel.key".into() });
        assert_eq!(code(&mr_02_no_keys_in_agent_space(&input(&store, None, &h))), Some(DenyCode::Mr02));
        let mut block = intent("mail.send", EffectClass::Irreversible);
        block.args.insert("body".into(), ArgValue::Str("-----BEGIN PRIVATE KEY-----".into()));
        assert_eq!(code(&mr_02_no_keys_in_agent_space(&input(&block, None, &h))), Some(DenyCode::Mr02));
    }

    #[test]
    fn mr_03_audit_append_only_allows_and_denies() {
        let h = healthy();
        assert_eq!(code(&mr_03_audit_append_only(&input(&intent("audit.read", EffectClass::Observe), None, &h))), None);
        let delete = intent("audit.delete", EffectClass::Irreversible);
        assert_eq!(code(&mr_03_audit_append_only(&input(&delete, None, &h))), Some(DenyCode::Mr03));
        let broken = KernelHealth { audit_chain_intact: false, ..healthy() };
        let read = intent("fs.read", EffectClass::Observe);
        assert_eq!(code(&mr_03_audit_append_only(&input(&read, None, &broken))), Some(DenyCode::Mr03));
    }

    #[test]
    fn mr_04_no_ring_escalation_allows_and_denies() {
        let h = healthy();
        let c3 = claims(Ring::Untrusted, 10);
        let tool = intent("tool.run", EffectClass::Write);
        assert_eq!(code(&mr_04_no_ring_escalation(&input(&tool, Some(&c3), &h))), None);
        let promote = intent("ring.promote", EffectClass::Write);
        assert_eq!(code(&mr_04_no_ring_escalation(&input(&promote, Some(&c3), &h))), Some(DenyCode::Mr04));
        let mut ask = intent("tool.run", EffectClass::Write);
        ask.args.insert("ring".into(), ArgValue::Int(2));
        assert_eq!(code(&mr_04_no_ring_escalation(&input(&ask, Some(&c3), &h))), Some(DenyCode::Mr04));
        let c2 = claims(Ring::Trusted, 10);
        let mut registered = input(&tool, Some(&c2), &h);
        registered.registered_ring = Ring::Untrusted;
        assert_eq!(code(&mr_04_no_ring_escalation(&registered)), Some(DenyCode::Mr04));
    }

    #[test]
    fn mr_05_rollback_before_destructive_allows_and_denies() {
        let h = healthy();
        let write = intent("fs.write", EffectClass::Write);
        assert_eq!(code(&mr_05_rollback_before_destructive(&input(&write, None, &h))), None);
        let no_zone = KernelHealth { rollback_available: false, ..healthy() };
        assert_eq!(code(&mr_05_rollback_before_destructive(&input(&write, None, &no_zone))), Some(DenyCode::Mr05));
        let read = intent("fs.read", EffectClass::Observe);
        assert_eq!(code(&mr_05_rollback_before_destructive(&input(&read, None, &no_zone))), None);
    }

    #[test]
    fn mr_06_no_commit_without_clearance_allows_and_denies() {
        let h = healthy();
        let c = claims(Ring::Trusted, 10);
        let write = intent("tool.run", EffectClass::Write);
        assert_eq!(code(&mr_06_no_commit_without_clearance(&input(&write, Some(&c), &h))), None);
        assert_eq!(code(&mr_06_no_commit_without_clearance(&input(&write, None, &h))), Some(DenyCode::Mr06));
        let no_voter = KernelHealth { voter_ok: false, ..healthy() };
        assert_eq!(code(&mr_06_no_commit_without_clearance(&input(&write, Some(&c), &no_voter))), Some(DenyCode::Mr06));
    }

    #[test]
    fn mr_07_budget_absolute_allows_and_denies() {
        let h = healthy();
        let c = claims(Ring::Trusted, 10);
        let write = intent("tool.run", EffectClass::Write);
        let mut exact = input(&write, Some(&c), &h);
        exact.spent = 9;
        assert_eq!(code(&mr_07_budget_absolute(&exact)), None);
        exact.spent = 10;
        assert_eq!(code(&mr_07_budget_absolute(&exact)), Some(DenyCode::Mr07));
        exact.spent = u64::MAX;
        assert_eq!(code(&mr_07_budget_absolute(&exact)), Some(DenyCode::Mr07));
    }

    #[test]
    fn mr_08_wal_before_execution_allows_and_denies() {
        let write = intent("fs.write", EffectClass::Write);
        assert_eq!(code(&mr_08_wal_before_execution(&input(&write, None, &healthy()))), None);
        let frozen = KernelHealth { wal_writable: false, ..healthy() };
        assert_eq!(code(&mr_08_wal_before_execution(&input(&write, None, &frozen))), Some(DenyCode::Mr08));
    }

    #[test]
    fn mr_09_gateway_not_bypassed_allows_and_denies() {
        let h = healthy();
        assert_eq!(code(&mr_09_gateway_not_bypassed(&input(&intent("fs.write", EffectClass::Write), None, &h))), None);
        let raw = intent("syscall.raw", EffectClass::Write);
        assert_eq!(code(&mr_09_gateway_not_bypassed(&input(&raw, None, &h))), Some(DenyCode::Mr09));
        let open = KernelHealth { gateway_enforced: false, ..healthy() };
        let write = intent("fs.write", EffectClass::Write);
        assert_eq!(code(&mr_09_gateway_not_bypassed(&input(&write, None, &open))), Some(DenyCode::Mr09));
    }

    #[test]
    fn mr_10_heartbeat_failsafe_allows_and_denies() {
        let missed = KernelHealth { heartbeat_ok: false, ..healthy() };
        let read = intent("fs.read", EffectClass::Observe);
        assert_eq!(code(&mr_10_heartbeat_failsafe(&input(&read, None, &missed))), None, "thinking continues");
        let write = intent("fs.write", EffectClass::Write);
        assert_eq!(code(&mr_10_heartbeat_failsafe(&input(&write, None, &healthy()))), None);
        assert_eq!(code(&mr_10_heartbeat_failsafe(&input(&write, None, &missed))), Some(DenyCode::Mr10));
    }

    #[test]
    fn mr_11_no_unsupervised_execution_allows_and_denies() {
        let read = intent("fs.read", EffectClass::Observe);
        assert_eq!(code(&mr_11_no_unsupervised_execution(&input(&read, None, &healthy()))), None);
        let orphan = KernelHealth { supervisor_present: false, ..healthy() };
        assert_eq!(code(&mr_11_no_unsupervised_execution(&input(&read, None, &orphan))), Some(DenyCode::Mr11));
    }

    #[test]
    fn rule_table_is_complete_and_ordered() {
        for (i, rule) in ALL_RULES.iter().enumerate() {
            assert_eq!(usize::from(rule.number), i + 1);
            assert_eq!(rule.code.as_str(), format!("DSC-5-MR-{:02}", rule.number));
        }
    }
}
