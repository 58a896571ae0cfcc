//! MAOS capability tokens (spec §9): signed, scoped, time-limited permissions.
//!
//! Guarantees:
//! - One canonical, versioned binary encoding (`maos1.` + base64url as text); the
//!   decoder never panics, enforces every limit in [`limits`], and rejects any
//!   non-canonical byte string, so a token has exactly one encoding.
//! - [`VerifiedToken`] can only be obtained through [`UnverifiedToken::verify`]
//!   (or the [`VerifyCache`], which is as strict): hybrid signature (both halves),
//!   trusted issuer, `not_before <= now < expires`, no revoked ancestor, and a
//!   verifier epoch at most one behind the token's.
//! - [`derive`] never widens: permissions, scopes, argument rules, expiry, rate,
//!   operation count, clearance and ring are each checked against the parent, and
//!   budget is carved from the parent's remaining budget.
//! - Revoking a token revokes its whole subtree and bumps the epoch
//!   ([`TokenRegistry`]), a pure fold over [`TokenEvent`]s.
//!
//! ```
//! use maos_crypto::SigningKey;
//! use maos_model::{AgentId, IfcLevel, Ring, TrustClass, UnixMillis};
//! use maos_token::*;
//!
//! let key = SigningKey::from_seeds(&[1; 64]).unwrap();
//! let permission = parse_permission("fs.write=/workspace/**").unwrap();
//! let req = MintRequest {
//!     agent: AgentId::new("assistant").unwrap(), ring: Ring::Trusted,
//!     trust_class: TrustClass::Transparent, clearance: IfcLevel::Internal,
//!     permissions: vec![permission], ttl_ms: None, rate_per_hour: 600,
//!     max_ops: 1000, budget: 100, mission: None, commander_ack: false,
//! };
//! let now = UnixMillis(1_700_000_000_000);
//! let token = mint(&key, req, now, 0, [0; 10]).unwrap();
//! let keys = KeyRing::with(key.verifying_key().clone());
//! let verified = UnverifiedToken::parse(token.text()).unwrap()
//!     .verify(&keys, now, &RevocationState::default()).unwrap();
//! let target = [ResourceRef { kind: ScopeKind::Path, value: "/workspace/a.txt" }];
//! assert!(verified.claims().permission_for("fs.write", &target, &()).is_some());
//! ```

#![forbid(unsafe_code)]

mod cache;
mod claims;
mod encoding;
mod error;
pub mod limits;
mod mint;
mod parse;
mod pattern;
mod registry;
mod token;

pub use cache::{VERIFY_CACHE_ENTRIES_MAX, VerifyCache};
pub use claims::{
    ActionPattern, ArgConstraint, ArgSource, ConstraintRule, Permission, ResourceRef, Scope, ScopeKind, TokenClaims,
    default_scope_kind,
};
pub use encoding::{FORMAT_VERSION, HEADER_LEN, MAGIC, TEXT_PREFIX, encode_signed_part, to_text};
pub use error::TokenError;
pub use mint::{DeriveRequest, MintRequest, MintedToken, default_ttl_ms, derive, mint};
pub use parse::{parse_duration_ms, parse_permission, parse_rate_per_hour};
pub use registry::{RegistrySnapshot, TokenEvent, TokenIssued, TokenRecord, TokenRegistry, TokenRevoked};
pub use token::{KeyRing, RevocationState, UnverifiedToken, VerifiedToken};
