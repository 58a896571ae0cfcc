//! The token crate's one error type. Every variant has a stable code
//! (documented in `docs/errors.md`) that the CLI prints and the DSC logs.

/// Why a token could not be parsed, verified, minted or derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// `TOKEN-ENCODING`: the bytes or text are not a well-formed token.
    #[error("malformed token: {0}")]
    Encoding(String),
    /// `TOKEN-VERSION`: a format version this build does not know.
    #[error("unsupported token format version {0}")]
    UnsupportedVersion(u8),
    /// `TOKEN-TOO-LARGE`: larger than the hard size limit.
    #[error("token is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `TOKEN-LIMIT`: a list or number is over its limit.
    #[error("`{field}` is over its limit of {max}")]
    LimitExceeded {
        /// Which field.
        field: &'static str,
        /// The limit.
        max: u64,
    },
    /// `TOKEN-INVALID`: the claims are inconsistent or a pattern is invalid.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// `TOKEN-SIGNATURE`: the hybrid signature does not verify.
    #[error("signature invalid: {0}")]
    Signature(String),
    /// `TOKEN-UNKNOWN-ISSUER`: signed by a key this verifier does not trust.
    #[error("issuer key {0} is not trusted here")]
    UnknownIssuer(String),
    /// `TOKEN-NOT-YET-VALID`: used before its not-before time.
    #[error("token is not valid until {not_before_ms} (now {now_ms})")]
    NotYetValid {
        /// Not-before, Unix ms.
        not_before_ms: u64,
        /// Now, Unix ms.
        now_ms: u64,
    },
    /// `TOKEN-EXPIRED`: used at or after its expiry.
    #[error("token expired at {expires_ms} (now {now_ms})")]
    Expired {
        /// Expiry, Unix ms.
        expires_ms: u64,
        /// Now, Unix ms.
        now_ms: u64,
    },
    /// `TOKEN-REVOKED`: the token or one of its ancestors was revoked.
    #[error("token {0} is revoked")]
    Revoked(String),
    /// `TOKEN-EPOCH-STALE`: the verifier's revocation epoch lags the token's by more than one.
    #[error("verifier revocation epoch {verifier} is more than one behind the token's {token}; sync first")]
    EpochStale {
        /// The verifier's epoch.
        verifier: u64,
        /// The epoch the token was issued in.
        token: u64,
    },
    /// `TOKEN-WIDENED`: a derived token would exceed its parent.
    #[error("derived token would widen `{field}`: {detail}")]
    Widened {
        /// Which field widened.
        field: &'static str,
        /// How.
        detail: String,
    },
    /// `TOKEN-DEPTH`: delegation deeper than allowed.
    #[error("delegation depth {depth} exceeds the maximum of {max}")]
    DepthExceeded {
        /// The depth the child would have.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// `TOKEN-CHILDREN`: the parent already has the maximum of live children.
    #[error("token {parent} already has {live} live children (maximum {max})")]
    TooManyChildren {
        /// Parent id.
        parent: String,
        /// Live children now.
        live: usize,
        /// The limit.
        max: usize,
    },
    /// `TOKEN-TTL-ACK`: a lifetime beyond 4× the default without commander acknowledgement.
    #[error("ttl of {ttl_ms} ms is over 4x the default of {default_ms} ms; pass --commander-ack to acknowledge")]
    TtlNeedsAck {
        /// Requested ttl.
        ttl_ms: u64,
        /// Default ttl for this holder.
        default_ms: u64,
    },
    /// `TOKEN-TTL`: a lifetime of zero or beyond the absolute maximum.
    #[error("ttl of {ttl_ms} ms is outside 1 ms ..= {max_ms} ms")]
    TtlOutOfRange {
        /// Requested ttl.
        ttl_ms: u64,
        /// Absolute maximum.
        max_ms: u64,
    },
    /// `TOKEN-KEY-RETIRED`: the issuer key was retired before this token's
    /// issue time: whoever signed it kept a key that was rotated out.
    #[error("issuer key {key} was retired at {retired_ms} ms; this token claims issue at {issued_ms} ms")]
    KeyRetired {
        /// Short key id.
        key: String,
        /// Retirement time, Unix ms.
        retired_ms: u64,
        /// The token's issue time, Unix ms.
        issued_ms: u64,
    },
    /// `TOKEN-UNLOGGED`: the signature verifies, but the kernel never logged
    /// issuing this token (or logged a different one under its id): it was
    /// minted outside this kernel, for example from a copy of an old key.
    #[error("token {0} was never issued by this kernel (not in its ledger)")]
    Unlogged(String),
    /// `TOKEN-UNKNOWN`: no token with this id is registered.
    #[error("no token with id {0}")]
    UnknownToken(String),
    /// `TOKEN-CRYPTO`: the signing backend failed.
    #[error("crypto failure: {0}")]
    Crypto(String),
}

impl TokenError {
    /// The stable code, for `--json` output, logs and deny reasons.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Encoding(_) => "TOKEN-ENCODING",
            Self::UnsupportedVersion(_) => "TOKEN-VERSION",
            Self::TooLarge { .. } => "TOKEN-TOO-LARGE",
            Self::LimitExceeded { .. } => "TOKEN-LIMIT",
            Self::InvalidClaims(_) => "TOKEN-INVALID",
            Self::Signature(_) => "TOKEN-SIGNATURE",
            Self::UnknownIssuer(_) => "TOKEN-UNKNOWN-ISSUER",
            Self::NotYetValid { .. } => "TOKEN-NOT-YET-VALID",
            Self::Expired { .. } => "TOKEN-EXPIRED",
            Self::Revoked(_) => "TOKEN-REVOKED",
            Self::EpochStale { .. } => "TOKEN-EPOCH-STALE",
            Self::Widened { .. } => "TOKEN-WIDENED",
            Self::DepthExceeded { .. } => "TOKEN-DEPTH",
            Self::TooManyChildren { .. } => "TOKEN-CHILDREN",
            Self::TtlNeedsAck { .. } => "TOKEN-TTL-ACK",
            Self::TtlOutOfRange { .. } => "TOKEN-TTL",
            Self::KeyRetired { .. } => "TOKEN-KEY-RETIRED",
            Self::Unlogged(_) => "TOKEN-UNLOGGED",
            Self::UnknownToken(_) => "TOKEN-UNKNOWN",
            Self::Crypto(_) => "TOKEN-CRYPTO",
        }
    }
}
