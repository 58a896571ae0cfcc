//! `UnverifiedToken` → `verify` → `VerifiedToken`. A `VerifiedToken` has private
//! fields and no public constructor: holding one proves the signature, the time
//! window, the revocation state and the epoch were all checked.

use crate::TokenError;
use crate::claims::TokenClaims;
use crate::encoding::{self, Decoded};
use maos_crypto::{KeyId, SignatureDomain, VerifyingKey};
use maos_model::{TokenId, UnixMillis};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// The kernel keys a verifier trusts, by key id, each with the time it was
/// retired (if it was): a retired key verifies only tokens issued before its
/// retirement, so a copy of its secret kept somewhere cannot mint new ones.
#[derive(Debug, Default, Clone)]
pub struct KeyRing {
    keys: BTreeMap<KeyId, (VerifyingKey, Option<UnixMillis>)>,
}

impl KeyRing {
    /// An empty key ring (trusts nothing).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts one more issuer key, without a retirement time.
    pub fn insert(&mut self, key: VerifyingKey) {
        self.keys.insert(key.key_id(), (key, None));
    }

    /// Trusts a key retired at `retired_at` for tokens issued before then.
    pub fn insert_retired(&mut self, key: VerifyingKey, retired_at: UnixMillis) {
        self.keys.insert(key.key_id(), (key, Some(retired_at)));
    }

    /// A ring holding exactly one key.
    #[must_use]
    pub fn with(key: VerifyingKey) -> Self {
        let mut ring = Self::new();
        ring.insert(key);
        ring
    }

    /// The key with this id, if trusted.
    #[must_use]
    pub fn get(&self, id: &KeyId) -> Option<&VerifyingKey> {
        self.keys.get(id).map(|(k, _)| k)
    }

    /// When the key with this id was retired (`None`: current, or unknown).
    #[must_use]
    pub fn retired_at(&self, id: &KeyId) -> Option<UnixMillis> {
        self.keys.get(id).and_then(|(_, r)| *r)
    }

    /// Whether `claims` may have been signed by a trusted key: the issuer is
    /// known and, if retired, the token was issued before the retirement.
    ///
    /// # Errors
    /// [`TokenError::UnknownIssuer`], [`TokenError::KeyRetired`].
    pub fn issuer_for(&self, claims: &TokenClaims) -> Result<&VerifyingKey, TokenError> {
        let (key, retired) =
            self.keys.get(&claims.issuer).ok_or_else(|| TokenError::UnknownIssuer(claims.issuer.short()))?;
        match retired {
            Some(at) if claims.not_before >= *at => Err(TokenError::KeyRetired {
                key: claims.issuer.short(),
                retired_ms: at.0,
                issued_ms: claims.not_before.0,
            }),
            _ => Ok(key),
        }
    }
}

/// What a verifier knows about revocation: its current epoch and every revoked id.
///
/// Each revocation bumps the epoch (spec §9.3), so two verifiers at the same epoch
/// have the same revoked set.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RevocationState {
    epoch: u64,
    revoked: BTreeSet<TokenId>,
}

impl RevocationState {
    /// A state at `epoch` with the given revoked ids.
    #[must_use]
    pub fn new(epoch: u64, revoked: BTreeSet<TokenId>) -> Self {
        Self { epoch, revoked }
    }

    /// The current revocation epoch.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether this id was revoked.
    #[must_use]
    pub fn is_revoked(&self, id: &TokenId) -> bool {
        self.revoked.contains(id)
    }

    /// All revoked ids, in id order.
    #[must_use]
    pub fn revoked(&self) -> &BTreeSet<TokenId> {
        &self.revoked
    }

    pub(crate) fn revoke_all(&mut self, ids: impl IntoIterator<Item = TokenId>) {
        self.revoked.extend(ids);
        self.epoch = self.epoch.saturating_add(1);
    }
}

/// A decoded token whose signature and validity have not been checked yet.
#[derive(Clone)]
pub struct UnverifiedToken {
    bytes: Vec<u8>,
    decoded: Arc<DecodedParts>,
}

struct DecodedParts {
    claims: TokenClaims,
    signature: maos_crypto::Signature,
    signed_len: usize,
}

impl UnverifiedToken {
    /// Parses the text form (`maos1.…`).
    ///
    /// # Errors
    /// [`TokenError::TooLarge`], [`TokenError::UnsupportedVersion`] or
    /// [`TokenError::Encoding`] for malformed input. Never panics on any input.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        Self::from_bytes(&encoding::from_text(text)?)
    }

    /// Decodes the binary form.
    ///
    /// # Errors
    /// As [`Self::parse`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenError> {
        let Decoded { claims, signature, signed_len } = encoding::decode(bytes)?;
        Ok(Self { bytes: bytes.to_vec(), decoded: Arc::new(DecodedParts { claims, signature, signed_len }) })
    }

    /// The claims as written, **not yet trusted**; for display and diagnostics.
    #[must_use]
    pub fn unverified_claims(&self) -> &TokenClaims {
        &self.decoded.claims
    }

    /// The encoded bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Checks the hybrid signature (both halves), the issuer, the time window
    /// (`not_before <= now < expires`), revocation of the token and of every
    /// ancestor, and that the verifier's epoch is at most one behind the token's.
    ///
    /// # Errors
    /// The first failing check, in the order listed.
    pub fn verify(
        &self,
        keys: &KeyRing,
        now: UnixMillis,
        revocations: &RevocationState,
    ) -> Result<VerifiedToken, TokenError> {
        let parts = &self.decoded;
        let claims = &parts.claims;
        let key = keys.issuer_for(claims)?;
        let signed = self.bytes.get(..parts.signed_len).ok_or_else(|| TokenError::Encoding("signed length".into()))?;
        key.verify(SignatureDomain::CapabilityToken, signed, &parts.signature)
            .map_err(|e| TokenError::Signature(e.to_string()))?;
        check_live(claims, now, revocations)?;
        Ok(VerifiedToken {
            inner: Arc::new(VerifiedInner {
                claims: claims.clone(),
                text: encoding::to_text(&self.bytes),
                hash: maos_crypto::sha3_256(&self.bytes),
            }),
        })
    }
}

/// Checks the parts of validity that change over time: window, revocation, epoch.
pub(crate) fn check_live(
    claims: &TokenClaims,
    now: UnixMillis,
    revocations: &RevocationState,
) -> Result<(), TokenError> {
    if now < claims.not_before {
        return Err(TokenError::NotYetValid { not_before_ms: claims.not_before.0, now_ms: now.0 });
    }
    if now >= claims.expires {
        return Err(TokenError::Expired { expires_ms: claims.expires.0, now_ms: now.0 });
    }
    if claims.epoch > revocations.epoch().saturating_add(1) {
        return Err(TokenError::EpochStale { verifier: revocations.epoch(), token: claims.epoch });
    }
    if let Some(id) = std::iter::once(&claims.id).chain(claims.lineage.iter()).find(|id| revocations.is_revoked(id)) {
        return Err(TokenError::Revoked(id.to_string()));
    }
    Ok(())
}

impl fmt::Debug for UnverifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnverifiedToken({})", self.decoded.claims.id)
    }
}

/// A token whose signature and validity were checked at a given time and epoch.
/// Only [`UnverifiedToken::verify`] and the verify cache create one.
#[derive(Clone)]
pub struct VerifiedToken {
    inner: Arc<VerifiedInner>,
}

struct VerifiedInner {
    claims: TokenClaims,
    text: String,
    /// SHA3-256 of the encoded bytes: what the issue event logs.
    hash: maos_crypto::Digest,
}

impl VerifiedToken {
    /// The verified claims.
    #[must_use]
    pub fn claims(&self) -> &TokenClaims {
        &self.inner.claims
    }

    /// The token id.
    #[must_use]
    pub fn id(&self) -> TokenId {
        self.inner.claims.id
    }

    /// SHA3-256 of the encoded token, as its issue event logs it.
    #[must_use]
    pub fn hash(&self) -> maos_crypto::Digest {
        self.inner.hash
    }

    /// The text form, for handing the token to its holder.
    #[must_use]
    pub fn to_text(&self) -> &str {
        &self.inner.text
    }

    /// Re-checks time window, revocation and epoch for a later moment.
    ///
    /// # Errors
    /// As the live checks of [`UnverifiedToken::verify`].
    pub fn recheck(&self, now: UnixMillis, revocations: &RevocationState) -> Result<(), TokenError> {
        check_live(&self.inner.claims, now, revocations)
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token text: it is a bearer credential.
        write!(f, "VerifiedToken({}, agent {})", self.inner.claims.id, self.inner.claims.agent)
    }
}
