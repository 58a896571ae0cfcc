//! Fixtures shared by the integration tests: fixed keys, ids and times, so that
//! failures reproduce and golden vectors stay stable.

use maos_crypto::SigningKey;
use maos_model::{AgentId, IfcLevel, Ring, TrustClass, UnixMillis};
use maos_token::{KeyRing, MintRequest, MintedToken, Permission, RevocationState, parse_permission};

pub const NOW: UnixMillis = UnixMillis(1_767_225_600_000); // 2026-01-01T00:00:00Z

pub fn kernel_key() -> SigningKey {
    SigningKey::from_seeds(&[0x4D; 64]).expect("fixed seed")
}

pub fn other_key() -> SigningKey {
    SigningKey::from_seeds(&[0x21; 64]).expect("fixed seed")
}

pub fn keys() -> KeyRing {
    KeyRing::with(kernel_key().verifying_key().clone())
}

pub fn perms(list: &[&str]) -> Vec<Permission> {
    list.iter().map(|p| parse_permission(p).expect("test permission")).collect()
}

pub fn request(agent: &str, list: &[&str]) -> MintRequest {
    MintRequest {
        agent: AgentId::new(agent).expect("agent"),
        ring: Ring::Trusted,
        trust_class: TrustClass::Transparent,
        clearance: IfcLevel::Confidential,
        permissions: perms(list),
        ttl_ms: None,
        rate_per_hour: 600,
        max_ops: 1000,
        budget: 500,
        mission: Some("Answer the customer's support ticket #42.".into()),
        commander_ack: false,
    }
}

pub fn mint_at(req: MintRequest, now: UnixMillis, epoch: u64) -> MintedToken {
    maos_token::mint(&kernel_key(), req, now, epoch, [0x11; 10]).expect("mint")
}

pub fn fresh() -> RevocationState {
    RevocationState::default()
}
