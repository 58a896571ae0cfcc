//! Fixed keys, times and builders so failures reproduce.

use maos_crypto::SigningKey;
use maos_dsc::{Decision, DscConfig, DscState, decide};
use maos_model::{
    AgentId, ArgValue, EffectClass, IfcLevel, Intent, IntentId, Profile, ReadLabel, Resource, ResourceKind, Ring,
    TrustClass, UnixMillis,
};
use maos_token::{KeyRing, MintRequest, RevocationState, TokenError, UnverifiedToken, VerifiedToken, parse_permission};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

pub const NOW: UnixMillis = UnixMillis(1_767_225_600_000); // 2026-01-01T00:00:00Z

/// Test tokens are for ring 3 (agents nobody registered are ring 3, Rule 4)
/// with the hour a ring-2 token lives by default, so timelines of up to an
/// hour need no re-issue (four times ring 3's 15-minute default: no
/// commander acknowledgement needed).
pub const RING3_TEST_TTL_MS: u64 = 60 * 60 * 1000;

pub fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seeds(&[0x5A; 64]).expect("fixed seed"))
}

pub fn keys() -> KeyRing {
    KeyRing::with(key().verifying_key().clone())
}

pub fn config(profile: Profile) -> Arc<DscConfig> {
    DscConfig::default_for(profile).expect("default config")
}

pub fn state(profile: Profile) -> DscState {
    DscState::new(config(profile))
}

pub fn agent(id: &str) -> AgentId {
    AgentId::new(id).expect("agent id")
}

/// A mint request with generous limits; tests narrow what they need.
pub fn request(agent_id: &str, perms: &[&str]) -> MintRequest {
    MintRequest {
        agent: agent(agent_id),
        ring: Ring::Untrusted,
        trust_class: TrustClass::Transparent,
        clearance: IfcLevel::Internal,
        permissions: perms.iter().map(|p| parse_permission(p).expect("permission")).collect(),
        ttl_ms: Some(RING3_TEST_TTL_MS),
        rate_per_hour: 3600,
        max_ops: 1000,
        budget: 1000,
        mission: Some("Email the weekly report to bob@example.com.".into()),
        commander_ack: false,
    }
}

pub fn token_from(req: MintRequest, seed: u8) -> VerifiedToken {
    let minted = maos_token::mint(key(), req, NOW, 0, [seed; 10]).expect("mint");
    UnverifiedToken::parse(minted.text()).unwrap().verify(&keys(), NOW, &RevocationState::default()).expect("verify")
}

pub fn token(agent_id: &str, perms: &[&str]) -> VerifiedToken {
    token_from(request(agent_id, perms), 1)
}

pub fn intent(agent_id: &str, action: &str, kind: ResourceKind, value: &str, effect: EffectClass) -> Intent {
    Intent {
        id: IntentId::new_v7(NOW.0, [9; 10]),
        agent: agent(agent_id),
        action: action.into(),
        resources: vec![Resource { kind, value: value.into() }],
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

pub fn with_arg(mut intent: Intent, name: &str, value: &str) -> Intent {
    intent.args.insert(name.into(), ArgValue::Str(value.into()));
    intent
}

pub fn with_label(mut intent: Intent, level: IfcLevel, untrusted: bool) -> Intent {
    intent.reads.push(ReadLabel { level, untrusted });
    intent
}

pub fn run(state: &DscState, intent: &Intent, token: &VerifiedToken) -> Decision {
    decide(state, intent, Ok(token), NOW)
}

pub fn code(d: &Decision) -> Option<&'static str> {
    d.verdict().deny_code().map(|c| c.as_str())
}

pub fn no_token() -> TokenError {
    TokenError::UnknownToken("none presented".into())
}

/// A workspace file write by `writer`, allowed by default.
pub fn fs_write(path: &str) -> Intent {
    intent("writer", "fs.write", ResourceKind::Path, path, EffectClass::Write)
}

pub fn writer() -> VerifiedToken {
    token("writer", &["fs.write=/workspace/**", "fs.read=/workspace/**"])
}
