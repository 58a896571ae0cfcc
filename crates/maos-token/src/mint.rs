//! Minting root tokens and deriving (delegating) attenuated children.
//!
//! Derivation never widens: every field of the child is checked against the
//! parent, and the first one that would exceed it is named in the error.

use crate::TokenError;
use crate::claims::{Permission, TokenClaims};
use crate::encoding::{encode_signed_part, to_text};
use crate::limits::{
    DELEGATION_DEPTH_MAX, LIVE_CHILDREN_MAX, TTL_ABSOLUTE_MAX_MS, TTL_ACK_FACTOR, TTL_EXTERNAL_DEFAULT_MS,
    TTL_RING2_DEFAULT_MS, TTL_RING3_DEFAULT_MS,
};
use crate::registry::TokenRegistry;
use crate::token::VerifiedToken;
use maos_crypto::{Digest, SignatureDomain, SigningKey, sha3_256};
use maos_model::{AgentId, IfcLevel, Ring, TokenId, TrustClass, UnixMillis};

/// The default lifetime for a holder (spec §9.3): external agents 5 min,
/// Ring 3 15 min, Ring 2 60 min.
#[must_use]
pub const fn default_ttl_ms(ring: Ring, trust_class: TrustClass) -> u64 {
    match (trust_class, ring) {
        (TrustClass::External, _) => TTL_EXTERNAL_DEFAULT_MS,
        (_, Ring::Untrusted) => TTL_RING3_DEFAULT_MS,
        (_, Ring::Kernel | Ring::System | Ring::Trusted) => TTL_RING2_DEFAULT_MS,
    }
}

/// What to put in a new root token.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// Holder.
    pub agent: AgentId,
    /// Holder's ring: 2 or 3.
    pub ring: Ring,
    /// Holder's trust class.
    pub trust_class: TrustClass,
    /// IFC clearance.
    pub clearance: IfcLevel,
    /// Permissions (any order; they are sorted).
    pub permissions: Vec<Permission>,
    /// Lifetime; `None` for the holder's default.
    pub ttl_ms: Option<u64>,
    /// Operations per hour.
    pub rate_per_hour: u32,
    /// Operations over the token's life.
    pub max_ops: u64,
    /// Budget units.
    pub budget: u64,
    /// Human-authored mission statement.
    pub mission: Option<String>,
    /// The commander acknowledges a lifetime over 4× the default.
    pub commander_ack: bool,
}

/// A freshly signed token: its text for the holder, its claims, and the SHA3-256
/// of its bytes, which is what the audit log records instead of the credential.
#[derive(Clone)]
pub struct MintedToken {
    text: String,
    bytes: Vec<u8>,
    claims: TokenClaims,
    hash: Digest,
    ttl_ms: u64,
}

impl MintedToken {
    /// The text form to hand to the holder. A bearer credential: do not log it.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The encoded bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The claims just signed.
    #[must_use]
    pub fn claims(&self) -> &TokenClaims {
        &self.claims
    }

    /// SHA3-256 of the encoded token.
    #[must_use]
    pub fn hash(&self) -> Digest {
        self.hash
    }

    /// The lifetime granted, in milliseconds.
    #[must_use]
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MintedToken({})", self.claims.id)
    }
}

/// Checks a requested lifetime against the holder's default and the ack rule.
/// Returns the lifetime and whether the acknowledgement was needed.
fn resolve_ttl(ring: Ring, trust_class: TrustClass, ttl_ms: Option<u64>, ack: bool) -> Result<(u64, bool), TokenError> {
    let default_ms = default_ttl_ms(ring, trust_class);
    let ttl = ttl_ms.unwrap_or(default_ms);
    if ttl == 0 || ttl > TTL_ABSOLUTE_MAX_MS {
        return Err(TokenError::TtlOutOfRange { ttl_ms: ttl, max_ms: TTL_ABSOLUTE_MAX_MS });
    }
    let needs_ack = ttl > default_ms.saturating_mul(TTL_ACK_FACTOR);
    if needs_ack && !ack {
        return Err(TokenError::TtlNeedsAck { ttl_ms: ttl, default_ms });
    }
    Ok((ttl, needs_ack))
}

fn sign(key: &SigningKey, claims: TokenClaims, ttl_ms: u64) -> Result<MintedToken, TokenError> {
    let mut bytes = encode_signed_part(&claims)?;
    let signature =
        key.sign(SignatureDomain::CapabilityToken, &bytes).map_err(|e| TokenError::Crypto(e.to_string()))?;
    bytes.extend_from_slice(signature.as_bytes());
    // INVARIANT: what we sign, we can decode: a token we cannot read back is a bug.
    let check = crate::encoding::decode(&bytes)?;
    assert!(check.claims == claims, "minted token does not decode to its claims");
    Ok(MintedToken { text: to_text(&bytes), hash: sha3_256(&bytes), bytes, claims, ttl_ms })
}

/// Mints a root token.
///
/// # Errors
/// [`TokenError::TtlNeedsAck`], [`TokenError::TtlOutOfRange`], a claims
/// validation error, or [`TokenError::Crypto`].
pub fn mint(
    key: &SigningKey,
    req: MintRequest,
    now: UnixMillis,
    epoch: u64,
    random: [u8; 10],
) -> Result<MintedToken, TokenError> {
    let (ttl_ms, needs_ack) = resolve_ttl(req.ring, req.trust_class, req.ttl_ms, req.commander_ack)?;
    let mut permissions = req.permissions;
    permissions.sort();
    permissions.dedup();
    let claims = TokenClaims {
        id: TokenId::new_v7(now.0, random),
        agent: req.agent,
        ring: req.ring,
        trust_class: req.trust_class,
        clearance: req.clearance,
        permissions,
        rate_per_hour: req.rate_per_hour,
        max_ops: req.max_ops,
        budget: req.budget,
        not_before: now,
        expires: now.saturating_add_ms(ttl_ms),
        epoch,
        lineage: Vec::new(),
        issuer: key.key_id(),
        commander_ack: needs_ack,
        mission: req.mission.filter(|m| !m.is_empty()),
    };
    sign(key, claims, ttl_ms)
}

/// What to put in a derived (child) token. Unset limits default to the parent's.
#[derive(Debug, Clone)]
pub struct DeriveRequest {
    /// The child's holder (a subagent instance).
    pub agent: AgentId,
    /// The child's ring; `None` keeps the parent's. Never more trusted.
    pub ring: Option<Ring>,
    /// The child's clearance; `None` keeps the parent's. Never higher.
    pub clearance: Option<IfcLevel>,
    /// The child's permissions; each must be within one of the parent's.
    pub permissions: Vec<Permission>,
    /// Lifetime; `None` for the holder default, capped at the parent's expiry.
    pub ttl_ms: Option<u64>,
    /// Rate; `None` keeps the parent's.
    pub rate_per_hour: Option<u32>,
    /// Operation count; `None` keeps the parent's.
    pub max_ops: Option<u64>,
    /// Budget carved out of the parent's remaining budget.
    pub budget: u64,
}

/// Derives a child token that is a subset of `parent` in every field.
///
/// The child's budget is carved from the parent's remaining budget (the parent's
/// budget minus what earlier children carved), so a tree never holds more than
/// its root. The mission statement and trust class are inherited unchanged.
///
/// # Errors
/// [`TokenError::Widened`] naming the first widened field,
/// [`TokenError::DepthExceeded`], [`TokenError::TooManyChildren`],
/// [`TokenError::UnknownToken`] if the parent was not issued by this registry,
/// or a mint error.
pub fn derive(
    key: &SigningKey,
    parent: &VerifiedToken,
    req: DeriveRequest,
    now: UnixMillis,
    registry: &TokenRegistry,
    random: [u8; 10],
) -> Result<MintedToken, TokenError> {
    let p = parent.claims();
    if registry.get(&p.id).is_none() {
        return Err(TokenError::UnknownToken(p.id.to_string()));
    }
    let depth = p.depth() + 1;
    if depth > DELEGATION_DEPTH_MAX {
        return Err(TokenError::DepthExceeded { depth, max: DELEGATION_DEPTH_MAX });
    }
    let live = registry.live_children(&p.id, now);
    if live >= LIVE_CHILDREN_MAX {
        return Err(TokenError::TooManyChildren { parent: p.id.to_string(), live, max: LIVE_CHILDREN_MAX });
    }
    let widened = |field: &'static str, detail: String| Err(TokenError::Widened { field, detail });

    let ring = req.ring.unwrap_or(p.ring);
    if !p.ring.at_least_as_trusted_as(ring) {
        return widened("ring", format!("{ring} is more trusted than the parent's {}", p.ring));
    }
    let clearance = req.clearance.unwrap_or(p.clearance);
    if clearance > p.clearance {
        return widened("clearance", format!("{clearance} is above the parent's {}", p.clearance));
    }
    let mut permissions = req.permissions;
    permissions.sort();
    permissions.dedup();
    if let Some(extra) = permissions.iter().find(|c| !p.permissions.iter().any(|pp| c.within(pp))) {
        return widened("permissions", format!("`{extra}` is not within any parent permission"));
    }
    let rate_per_hour = req.rate_per_hour.unwrap_or(p.rate_per_hour);
    if rate_per_hour > p.rate_per_hour {
        return widened("rate_per_hour", format!("{rate_per_hour}/h is above the parent's {}/h", p.rate_per_hour));
    }
    let max_ops = req.max_ops.unwrap_or(p.max_ops);
    if max_ops > p.max_ops {
        return widened("max_ops", format!("{max_ops} is above the parent's {}", p.max_ops));
    }
    let remaining = p.budget.saturating_sub(registry.carved_budget(&p.id));
    if req.budget > remaining {
        return widened("budget", format!("{} is above the parent's remaining {remaining}", req.budget));
    }
    let parent_left_ms = p.expires.saturating_since(now);
    let (ttl_ms, needs_ack) = match req.ttl_ms {
        Some(ttl) if ttl > parent_left_ms => {
            return widened("expiry", format!("{ttl} ms outlives the parent, which has {parent_left_ms} ms left"));
        }
        Some(ttl) => resolve_ttl(ring, p.trust_class, Some(ttl), p.commander_ack)?,
        None => (default_ttl_ms(ring, p.trust_class).min(parent_left_ms), false),
    };
    let mut lineage = p.lineage.clone();
    lineage.push(p.id);
    let claims = TokenClaims {
        id: TokenId::new_v7(now.0, random),
        agent: req.agent,
        ring,
        trust_class: p.trust_class,
        clearance,
        permissions,
        rate_per_hour,
        max_ops,
        budget: req.budget,
        not_before: now.max(p.not_before),
        expires: now.saturating_add_ms(ttl_ms).min(p.expires),
        epoch: registry.revocations().epoch(),
        lineage,
        issuer: key.key_id(),
        commander_ack: needs_ack,
        mission: p.mission.clone(),
    };
    sign(key, claims, ttl_ms)
}
