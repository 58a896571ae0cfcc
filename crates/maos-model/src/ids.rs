//! Validated identifiers. Parsing is strict so an id can be printed, logged and
//! embedded in canonical bytes without escaping.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest agent id in bytes: ids go into every token, log record and audit line,
/// so an unbounded id would let one agent bloat all of them.
pub const AGENT_ID_BYTES_MAX: usize = 64;

/// Error for an identifier that fails validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The agent id is empty, too long, or has a character outside `[a-z0-9._-]`.
    #[error("invalid agent id `{0}`: use 1 to 64 characters from a-z, 0-9, '.', '_' and '-'")]
    AgentId(String),
    /// The token id is not a UUIDv7.
    #[error("invalid token id `{0}`: expected a UUIDv7")]
    TokenId(String),
}

/// The id of one agent *instance* (spec §9.1: a token names an instance, not a role).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

impl AgentId {
    /// Validates and wraps an agent id.
    ///
    /// # Errors
    /// [`IdError::AgentId`] if the id is empty, longer than [`AGENT_ID_BYTES_MAX`]
    /// or uses a character outside `[a-z0-9._-]`.
    pub fn new(id: &str) -> Result<Self, IdError> {
        let ok = !id.is_empty()
            && id.len() <= AGENT_ID_BYTES_MAX
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            let shown: String = id.chars().take(AGENT_ID_BYTES_MAX).collect();
            Err(IdError::AgentId(shown))
        }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgentId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<AgentId> for String {
    fn from(value: AgentId) -> Self {
        value.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({})", self.0)
    }
}

/// A capability token id: a UUIDv7 (spec §2.2), so ids sort by issue time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(uuid::Uuid);

impl TokenId {
    /// A fresh id from the given Unix time in milliseconds and 10 random bytes.
    ///
    /// Randomness is passed in so the pure crates never read an RNG themselves.
    #[must_use]
    pub fn new_v7(unix_ms: u64, random: [u8; 10]) -> Self {
        Self(uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid())
    }

    /// Wraps 16 bytes read from a canonical encoding.
    ///
    /// # Errors
    /// [`IdError::TokenId`] if the bytes are not a UUIDv7.
    pub fn from_bytes(bytes: [u8; 16]) -> Result<Self, IdError> {
        let id = uuid::Uuid::from_bytes(bytes);
        if id.get_version_num() == 7 && id.get_variant() == uuid::Variant::RFC4122 {
            Ok(Self(id))
        } else {
            Err(IdError::TokenId(id.to_string()))
        }
    }

    /// Parses the hyphenated text form.
    ///
    /// # Errors
    /// [`IdError::TokenId`] if the text is not a UUIDv7.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let id = uuid::Uuid::try_parse(text.trim()).map_err(|_| IdError::TokenId(text.chars().take(40).collect()))?;
        Self::from_bytes(*id.as_bytes())
    }

    /// The 16 bytes of the id.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for TokenId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TokenId> for String {
    fn from(value: TokenId) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_are_validated() {
        assert!(AgentId::new("a").is_ok());
        assert!(AgentId::new("research-agent.v2_1").is_ok());
        assert!(AgentId::new("").is_err());
        assert!(AgentId::new("Upper").is_err());
        assert!(AgentId::new("spa ce").is_err());
        assert!(AgentId::new(&"x".repeat(AGENT_ID_BYTES_MAX)).is_ok());
        assert!(AgentId::new(&"x".repeat(AGENT_ID_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn token_ids_are_v7_and_round_trip() {
        let id = TokenId::new_v7(1_700_000_000_000, [7; 10]);
        assert_eq!(TokenId::from_bytes(*id.as_bytes()), Ok(id));
        assert_eq!(TokenId::parse(&id.to_string()), Ok(id));
        assert!(TokenId::from_bytes([0; 16]).is_err());
        assert!(TokenId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn token_ids_sort_by_time() {
        let a = TokenId::new_v7(1_000, [255; 10]);
        let b = TokenId::new_v7(1_001, [0; 10]);
        assert!(a < b);
    }
}
