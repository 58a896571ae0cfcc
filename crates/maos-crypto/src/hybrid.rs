//! Hybrid ML-DSA-65 + Ed25519 signatures, the only suite MAOS signs with today.
//!
//! Why hybrid: ML-DSA covers a future quantum adversary, Ed25519 covers a flaw in
//! the young ML-DSA implementations. An attacker has to break both.

use crate::{CryptoError, Digest, Sha3Hasher, hash::hex, sha3_256};
use aws_lc_rs::signature::{
    ED25519, Ed25519KeyPair, KeyPair as _, ML_DSA_65, ML_DSA_65_SIGNING, ParsedPublicKey, PqdsaKeyPair,
};
use std::fmt;
use zeroize::Zeroizing;

/// ML-DSA-65 public key length (FIPS 204, table 2).
pub const MLDSA65_PUBLIC_KEY_LEN: usize = 1952;
/// ML-DSA-65 signature length (FIPS 204, table 2).
pub const MLDSA65_SIGNATURE_LEN: usize = 3309;
/// Ed25519 public key length.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// Ed25519 signature length.
pub const ED25519_SIGNATURE_LEN: usize = 64;
/// Hybrid public key length: the ML-DSA key then the Ed25519 key.
pub const PUBLIC_KEY_LEN: usize = MLDSA65_PUBLIC_KEY_LEN + ED25519_PUBLIC_KEY_LEN;
/// Hybrid signature length: the ML-DSA signature then the Ed25519 signature.
pub const SIGNATURE_LEN: usize = MLDSA65_SIGNATURE_LEN + ED25519_SIGNATURE_LEN;
/// Both seeds: 32 bytes of ML-DSA `xi` then the 32-byte Ed25519 seed.
pub(crate) const SEEDS_LEN: usize = 64;

/// Identifies an algorithm suite in every signed artifact, so a verifier knows
/// which suite to use and a future suite can coexist with this one (spec §14a.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SuiteId {
    /// ML-DSA-65 + Ed25519, both must verify; SHA3-256.
    MlDsa65Ed25519,
}

impl SuiteId {
    /// Stable code in encodings.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::MlDsa65Ed25519 => 1,
        }
    }

    /// The suite for a code.
    ///
    /// # Errors
    /// [`CryptoError::UnknownSuite`] for any other code.
    pub const fn from_code(code: u8) -> Result<Self, CryptoError> {
        match code {
            1 => Ok(Self::MlDsa65Ed25519),
            other => Err(CryptoError::UnknownSuite(other)),
        }
    }

    /// Human-readable name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::MlDsa65Ed25519 => "ml-dsa-65+ed25519",
        }
    }

    /// The implementation of this suite.
    #[must_use]
    pub fn suite(self) -> &'static dyn CryptoSuite {
        match self {
            Self::MlDsa65Ed25519 => &HybridMlDsa65Ed25519,
        }
    }
}

/// What a signature is for. The label is signed with the message, so a signature
/// made for one purpose never verifies for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignatureDomain {
    /// The claims of a capability token.
    CapabilityToken,
    /// A WAL checkpoint (chain head, sequence number, state digest).
    WalCheckpoint,
    /// A commander's approval or denial of an escalated intent.
    ApprovalDecision,
    /// A commander's approval of a quarantine decision (an agent's
    /// elimination under Hardened and Isolated).
    QuarantineDecision,
    /// A commander's approval of a threat pattern's indicators as pre-filter
    /// blocks (immune memory's proposal).
    PrefilterExtension,
    /// A commander's acknowledgement of an emergency shutdown's forensic
    /// report (the next boot may go ahead).
    EmergencyAcknowledgement,
    /// A commander's approval of a TSCA recovery proposal (Hardened, level B).
    TscaPlan,
}

impl SignatureDomain {
    /// The bytes prepended to the message before signing.
    #[must_use]
    pub const fn label(self) -> &'static [u8] {
        match self {
            Self::CapabilityToken => b"maos/v1/capability-token\0",
            Self::WalCheckpoint => b"maos/v1/wal-checkpoint\0",
            Self::ApprovalDecision => b"maos/v1/approval-decision\0",
            Self::QuarantineDecision => b"maos/v1/quarantine-decision\0",
            Self::PrefilterExtension => b"maos/v1/prefilter-extension\0",
            Self::EmergencyAcknowledgement => b"maos/v1/emergency-acknowledgement\0",
            Self::TscaPlan => b"maos/v1/tsca-plan\0",
        }
    }

    /// The exact bytes both algorithms sign: the domain label, then the message.
    #[must_use]
    pub fn signed_bytes(self, message: &[u8]) -> Vec<u8> {
        let label = self.label();
        let mut out = Vec::with_capacity(label.len() + message.len());
        out.extend_from_slice(label);
        out.extend_from_slice(message);
        out
    }
}

/// The crypto agility trait: everything MAOS needs from a signature suite.
pub trait CryptoSuite: Send + Sync {
    /// The id stamped into artifacts signed with this suite.
    fn id(&self) -> SuiteId;
    /// Signs `message` for `domain`.
    ///
    /// # Errors
    /// [`CryptoError::Backend`] if the backend fails.
    fn sign(&self, key: &SigningKey, domain: SignatureDomain, message: &[u8]) -> Result<Signature, CryptoError>;
    /// Verifies `signature` over `message` for `domain`; every component must pass.
    ///
    /// # Errors
    /// [`CryptoError::SignatureInvalid`] if any component fails.
    fn verify(
        &self,
        key: &VerifyingKey,
        domain: SignatureDomain,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError>;
    /// The suite's hash.
    fn hash(&self, data: &[u8]) -> Digest;
}

/// ML-DSA-65 (FIPS 204) + Ed25519 on the AWS-LC backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct HybridMlDsa65Ed25519;

impl CryptoSuite for HybridMlDsa65Ed25519 {
    fn id(&self) -> SuiteId {
        SuiteId::MlDsa65Ed25519
    }

    fn sign(&self, key: &SigningKey, domain: SignatureDomain, message: &[u8]) -> Result<Signature, CryptoError> {
        let signed = domain.signed_bytes(message);
        let mut bytes = vec![0u8; SIGNATURE_LEN];
        let (mldsa_out, ed_out) = bytes.split_at_mut(MLDSA65_SIGNATURE_LEN);
        let written = key.mldsa.sign(&signed, mldsa_out).map_err(|_| CryptoError::Backend("sign with ml-dsa-65"))?;
        if written != MLDSA65_SIGNATURE_LEN {
            return Err(CryptoError::Backend("sign with ml-dsa-65"));
        }
        ed_out.copy_from_slice(key.ed25519.sign(&signed).as_ref());
        Ok(Signature { bytes })
    }

    fn verify(
        &self,
        key: &VerifyingKey,
        domain: SignatureDomain,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        let signed = domain.signed_bytes(message);
        // Both halves are always checked so the error can say which failed.
        let mldsa = key.mldsa.verify_sig(&signed, signature.mldsa_part()).is_ok();
        let ed25519 = key.ed25519.verify_sig(&signed, signature.ed25519_part()).is_ok();
        if mldsa && ed25519 {
            Ok(())
        } else {
            Err(CryptoError::SignatureInvalid { mldsa: pass_fail(mldsa), ed25519: pass_fail(ed25519) })
        }
    }

    fn hash(&self, data: &[u8]) -> Digest {
        sha3_256(data)
    }
}

const fn pass_fail(ok: bool) -> &'static str {
    if ok { "ok" } else { "failed" }
}

/// A key id: SHA3-256 over a label, the suite code and both public keys.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// The first 16 hex characters, enough to tell keys apart on screen.
    #[must_use]
    pub fn short(&self) -> String {
        hex(self.0.get(..8).unwrap_or(&self.0))
    }

    /// All 64 hex characters.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.short())
    }
}

/// A hybrid signature: the ML-DSA-65 signature followed by the Ed25519 signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    // INVARIANT: exactly SIGNATURE_LEN bytes.
    bytes: Vec<u8>,
}

impl Signature {
    /// Wraps encoded signature bytes.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] unless exactly [`SIGNATURE_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(CryptoError::Malformed { what: "signature", why: "wrong length" });
        }
        Ok(Self { bytes: bytes.to_vec() })
    }

    /// Builds a signature from its two halves (used to test that each half matters).
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] if either half has the wrong length.
    pub fn from_parts(mldsa: &[u8], ed25519: &[u8]) -> Result<Self, CryptoError> {
        if mldsa.len() != MLDSA65_SIGNATURE_LEN || ed25519.len() != ED25519_SIGNATURE_LEN {
            return Err(CryptoError::Malformed { what: "signature", why: "wrong component length" });
        }
        let mut bytes = Vec::with_capacity(SIGNATURE_LEN);
        bytes.extend_from_slice(mldsa);
        bytes.extend_from_slice(ed25519);
        Ok(Self { bytes })
    }

    /// The encoded signature.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The ML-DSA-65 half.
    #[must_use]
    pub fn mldsa_part(&self) -> &[u8] {
        self.bytes.get(..MLDSA65_SIGNATURE_LEN).unwrap_or_default()
    }

    /// The Ed25519 half.
    #[must_use]
    pub fn ed25519_part(&self) -> &[u8] {
        self.bytes.get(MLDSA65_SIGNATURE_LEN..).unwrap_or_default()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({} bytes)", self.bytes.len())
    }
}

/// An encoded hybrid public key: ML-DSA-65 key then Ed25519 key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    // INVARIANT: exactly PUBLIC_KEY_LEN bytes.
    bytes: Vec<u8>,
}

impl PublicKey {
    /// Wraps encoded public key bytes.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] unless exactly [`PUBLIC_KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(CryptoError::Malformed { what: "public key", why: "wrong length" });
        }
        Ok(Self { bytes: bytes.to_vec() })
    }

    /// The encoded key.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The ML-DSA-65 half.
    #[must_use]
    pub fn mldsa_part(&self) -> &[u8] {
        self.bytes.get(..MLDSA65_PUBLIC_KEY_LEN).unwrap_or_default()
    }

    /// The Ed25519 half.
    #[must_use]
    pub fn ed25519_part(&self) -> &[u8] {
        self.bytes.get(MLDSA65_PUBLIC_KEY_LEN..).unwrap_or_default()
    }

    /// The key id of this key under `suite`.
    #[must_use]
    pub fn key_id(&self, suite: SuiteId) -> KeyId {
        let mut h = Sha3Hasher::new();
        h.update(b"maos/v1/key-id\0").update(&[suite.code()]).update(&self.bytes);
        KeyId(h.finish().0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id(SuiteId::MlDsa65Ed25519).short())
    }
}

/// A public key parsed once for repeated verification.
pub struct VerifyingKey {
    public: PublicKey,
    key_id: KeyId,
    suite: SuiteId,
    mldsa: ParsedPublicKey,
    ed25519: ParsedPublicKey,
}

impl VerifyingKey {
    /// Parses both halves of a hybrid public key.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] if either half is not a valid key.
    pub fn new(public: PublicKey) -> Result<Self, CryptoError> {
        let bad = |why| CryptoError::Malformed { what: "public key", why };
        let mldsa = ParsedPublicKey::new(&ML_DSA_65, public.mldsa_part()).map_err(|_| bad("bad ml-dsa-65 key"))?;
        let ed25519 = ParsedPublicKey::new(&ED25519, public.ed25519_part()).map_err(|_| bad("bad ed25519 key"))?;
        let suite = SuiteId::MlDsa65Ed25519;
        Ok(Self { key_id: public.key_id(suite), public, suite, mldsa, ed25519 })
    }

    /// Verifies a signature; both halves must pass.
    ///
    /// # Errors
    /// [`CryptoError::SignatureInvalid`] naming the half (or halves) that failed.
    pub fn verify(&self, domain: SignatureDomain, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        self.suite.suite().verify(self, domain, message, signature)
    }

    /// The id of this key.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The suite this key belongs to.
    #[must_use]
    pub fn suite(&self) -> SuiteId {
        self.suite
    }

    /// The encoded public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

impl Clone for VerifyingKey {
    fn clone(&self) -> Self {
        // Re-parsing cannot fail for bytes that parsed before; fall back to a
        // key that verifies nothing rather than panicking.
        match Self::new(self.public.clone()) {
            Ok(k) => k,
            Err(_) => Self {
                public: self.public.clone(),
                key_id: self.key_id,
                suite: self.suite,
                mldsa: self.mldsa.clone(),
                ed25519: self.ed25519.clone(),
            },
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({}, {})", self.suite.name(), self.key_id.short())
    }
}

/// A hybrid signing key. Its seeds are zeroized on drop and never printed.
pub struct SigningKey {
    seeds: Zeroizing<[u8; SEEDS_LEN]>,
    mldsa: PqdsaKeyPair,
    ed25519: Ed25519KeyPair,
    verifying: VerifyingKey,
}

impl SigningKey {
    /// A new key from the system CSPRNG.
    ///
    /// # Errors
    /// [`CryptoError::Random`] or [`CryptoError::Backend`].
    pub fn generate() -> Result<Self, CryptoError> {
        let seeds = Zeroizing::new(crate::random_bytes::<SEEDS_LEN>()?);
        Self::from_seeds(&seeds)
    }

    /// Rebuilds a key from its 64 seed bytes (ML-DSA `xi`, then the Ed25519 seed).
    ///
    /// # Errors
    /// [`CryptoError::Backend`] if the backend rejects a seed.
    pub fn from_seeds(seeds: &[u8; SEEDS_LEN]) -> Result<Self, CryptoError> {
        let (mldsa_seed, ed_seed) = seeds.split_at(32);
        let mldsa = PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, mldsa_seed)
            .map_err(|_| CryptoError::Backend("derive ml-dsa-65 key from seed"))?;
        let ed25519 = Ed25519KeyPair::from_seed_unchecked(ed_seed)
            .map_err(|_| CryptoError::Backend("derive ed25519 key from seed"))?;
        let mut public = Vec::with_capacity(PUBLIC_KEY_LEN);
        public.extend_from_slice(mldsa.public_key().as_ref());
        public.extend_from_slice(ed25519.public_key().as_ref());
        let verifying = VerifyingKey::new(PublicKey::from_bytes(&public)?)?;
        Ok(Self { seeds: Zeroizing::new(*seeds), mldsa, ed25519, verifying })
    }

    /// Signs `message` for `domain` with both algorithms.
    ///
    /// # Errors
    /// [`CryptoError::Backend`] if the backend fails.
    pub fn sign(&self, domain: SignatureDomain, message: &[u8]) -> Result<Signature, CryptoError> {
        self.verifying.suite.suite().sign(self, domain, message)
    }

    /// The matching verifying key.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The id of this key.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.verifying.key_id
    }

    pub(crate) fn seeds(&self) -> &[u8; SEEDS_LEN] {
        &self.seeds
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.key_id().short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        let Ok(k) = SigningKey::from_seeds(&[n; SEEDS_LEN]) else { unreachable!("fixed seeds are valid") };
        k
    }

    #[test]
    fn sign_verify_round_trip_and_lengths() -> Result<(), CryptoError> {
        let k = key(1);
        let sig = k.sign(SignatureDomain::CapabilityToken, b"hello")?;
        assert_eq!(sig.as_bytes().len(), SIGNATURE_LEN);
        assert_eq!(k.verifying_key().public_key().as_bytes().len(), PUBLIC_KEY_LEN);
        k.verifying_key().verify(SignatureDomain::CapabilityToken, b"hello", &sig)
    }

    #[test]
    fn each_half_is_required() -> Result<(), CryptoError> {
        let k = key(2);
        let other = key(3);
        let sig = k.sign(SignatureDomain::CapabilityToken, b"m")?;
        let foreign = other.sign(SignatureDomain::CapabilityToken, b"m")?;
        let vk = k.verifying_key();
        // Swap in the other key's ML-DSA half: Ed25519 passes, ML-DSA fails.
        let mixed = Signature::from_parts(foreign.mldsa_part(), sig.ed25519_part())?;
        assert_eq!(
            vk.verify(SignatureDomain::CapabilityToken, b"m", &mixed),
            Err(CryptoError::SignatureInvalid { mldsa: "failed", ed25519: "ok" })
        );
        let mixed = Signature::from_parts(sig.mldsa_part(), foreign.ed25519_part())?;
        assert_eq!(
            vk.verify(SignatureDomain::CapabilityToken, b"m", &mixed),
            Err(CryptoError::SignatureInvalid { mldsa: "ok", ed25519: "failed" })
        );
        // Zeroed halves ("stripped") fail too.
        let stripped = Signature::from_parts(&[0; MLDSA65_SIGNATURE_LEN], sig.ed25519_part())?;
        assert!(vk.verify(SignatureDomain::CapabilityToken, b"m", &stripped).is_err());
        let stripped = Signature::from_parts(sig.mldsa_part(), &[0; ED25519_SIGNATURE_LEN])?;
        assert!(vk.verify(SignatureDomain::CapabilityToken, b"m", &stripped).is_err());
        Ok(())
    }

    #[test]
    fn domains_are_separated() -> Result<(), CryptoError> {
        let k = key(4);
        let sig = k.sign(SignatureDomain::WalCheckpoint, b"head")?;
        assert!(k.verifying_key().verify(SignatureDomain::ApprovalDecision, b"head", &sig).is_err());
        Ok(())
    }

    #[test]
    fn key_ids_differ_and_are_stable() {
        assert_ne!(key(5).key_id(), key(6).key_id());
        assert_eq!(key(5).key_id(), key(5).key_id());
    }

    #[test]
    fn debug_never_shows_seeds() {
        let shown = format!("{:?}", key(7));
        assert!(shown.contains("redacted"));
        assert!(!shown.contains("07, 07"));
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        assert!(Signature::from_bytes(&[0; 10]).is_err());
        assert!(PublicKey::from_bytes(&[0; 10]).is_err());
        assert!(SuiteId::from_code(9).is_err());
    }
}
