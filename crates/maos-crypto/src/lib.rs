//! The MAOS crypto agility layer (spec §14a): signatures, hashes and key files
//! behind one small trait, so the algorithm suite can change without touching callers.
//!
//! Guarantees:
//! - A hybrid signature is valid only if **both** halves verify: ML-DSA-65
//!   (FIPS 204) and Ed25519 over the same domain-separated bytes.
//! - Every signature is bound to a [`SignatureDomain`], so a token signature can
//!   never be replayed as a checkpoint signature or the reverse.
//! - Hashes are SHA3-256; a [`KeyId`] is the SHA3-256 of the suite and both public keys.
//! - Secret seeds are zeroized on drop, never printed by `Debug`, never placed in an
//!   error message, and written to disk with mode 0600 only.
//!
//! ```
//! use maos_crypto::{SigningKey, SignatureDomain};
//! let key = SigningKey::generate().unwrap();
//! let sig = key.sign(SignatureDomain::CapabilityToken, b"claims").unwrap();
//! let public = key.verifying_key();
//! assert!(public.verify(SignatureDomain::CapabilityToken, b"claims", &sig).is_ok());
//! assert!(public.verify(SignatureDomain::WalCheckpoint, b"claims", &sig).is_err());
//! assert!(public.verify(SignatureDomain::CapabilityToken, b"claimz", &sig).is_err());
//! ```

#![forbid(unsafe_code)]

mod error;
mod hash;
mod hybrid;
mod keyfile;
mod seal;

pub use error::CryptoError;
pub use hash::{DIGEST_LEN, Digest, Sha3Hasher, sha3_256};
pub use hybrid::{
    CryptoSuite, ED25519_PUBLIC_KEY_LEN, ED25519_SIGNATURE_LEN, HybridMlDsa65Ed25519, KeyId, MLDSA65_PUBLIC_KEY_LEN,
    MLDSA65_SIGNATURE_LEN, PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN, Signature, SignatureDomain, SigningKey, SuiteId,
    VerifyingKey,
};
pub use keyfile::{read_public_key_file, read_secret_key_file, write_public_key_file, write_secret_key_file};
pub use seal::{SEALED_OVERHEAD, SealingKey};

/// Fills a buffer from the operating system's CSPRNG (through AWS-LC).
///
/// # Errors
/// [`CryptoError::Random`] if the system RNG fails.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}
