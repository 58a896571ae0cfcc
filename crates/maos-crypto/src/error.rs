//! The one error type of this crate. Messages never carry key material.

/// Errors from the crypto agility layer. Stable codes are listed in `docs/errors.md`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// `CRYPTO-SIGNATURE`: at least one half of a hybrid signature failed.
    #[error("signature invalid (ml-dsa-65 {mldsa}, ed25519 {ed25519})")]
    SignatureInvalid {
        /// Whether the ML-DSA-65 half verified.
        mldsa: &'static str,
        /// Whether the Ed25519 half verified.
        ed25519: &'static str,
    },
    /// `CRYPTO-ENCODING`: bytes are not a well-formed key or signature.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it was rejected.
        why: &'static str,
    },
    /// `CRYPTO-SUITE`: the algorithm suite id is not one this build knows.
    #[error("unknown crypto suite id {0}")]
    UnknownSuite(u8),
    /// `CRYPTO-BACKEND`: the crypto backend refused an operation.
    #[error("crypto backend failed to {0}")]
    Backend(&'static str),
    /// `CRYPTO-RANDOM`: the system random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// `CRYPTO-KEYFILE`: a key file could not be read or written.
    #[error("key file `{path}`: {why}")]
    KeyFile {
        /// The file path.
        path: String,
        /// What went wrong (never the key itself).
        why: String,
    },
    /// `CRYPTO-SEAL`: authenticated decryption failed (wrong key or tampered data).
    #[error("sealed data failed authentication")]
    Unseal,
}

impl CryptoError {
    /// The stable code for this error, for logs and `--json` output.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::SignatureInvalid { .. } => "CRYPTO-SIGNATURE",
            Self::Malformed { .. } => "CRYPTO-ENCODING",
            Self::UnknownSuite(_) => "CRYPTO-SUITE",
            Self::Backend(_) => "CRYPTO-BACKEND",
            Self::Random => "CRYPTO-RANDOM",
            Self::KeyFile { .. } => "CRYPTO-KEYFILE",
            Self::Unseal => "CRYPTO-SEAL",
        }
    }
}
