//! Warm verification: a bounded cache of tokens already verified at the current
//! revocation epoch.
//!
//! A hit needs the presented text to be byte-for-byte the text that was verified,
//! at the same epoch (every revocation bumps it), signed by a key the caller
//! still trusts, and still inside its time window. So a hit is exactly as strong as a full verify, minus the two
//! signature checks. The lookup key is the token's tail (part of its Ed25519
//! signature, unique per signed body), which avoids hashing 5 KB per call.

use crate::TokenError;
use crate::token::{KeyRing, RevocationState, UnverifiedToken, VerifiedToken, check_live};
use maos_model::UnixMillis;
use std::collections::{HashMap, VecDeque};

/// Entries kept; beyond this the oldest is evicted. Bounds memory an agent can
/// make the verifier spend by presenting many distinct tokens.
pub const VERIFY_CACHE_ENTRIES_MAX: usize = 4096;
const KEY_LEN: usize = 32;

struct Entry {
    text: Box<str>,
    /// SHA3-256 of `text`, for callers that log the presented text's hash.
    sha3: maos_crypto::Digest,
    epoch: u64,
    token: VerifiedToken,
}

/// A verify cache keyed by token tail and epoch.
#[derive(Default)]
pub struct VerifyCache {
    map: HashMap<[u8; KEY_LEN], Entry>,
    order: VecDeque<[u8; KEY_LEN]>,
}

impl VerifyCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn key(text: &str) -> [u8; KEY_LEN] {
        let bytes = text.as_bytes();
        let mut key = [0u8; KEY_LEN];
        let start = bytes.len().saturating_sub(KEY_LEN);
        if let Some(tail) = bytes.get(start..)
            && let Some(dst) = key.get_mut(..tail.len())
        {
            dst.copy_from_slice(tail);
        }
        key
    }

    /// Verifies `text`, from the cache when possible.
    ///
    /// # Errors
    /// As [`UnverifiedToken::parse`] and [`UnverifiedToken::verify`].
    pub fn verify(
        &mut self,
        text: &str,
        keys: &KeyRing,
        now: UnixMillis,
        revocations: &RevocationState,
    ) -> Result<VerifiedToken, TokenError> {
        let text = text.trim();
        let key = Self::key(text);
        if let Some(entry) = self.map.get(&key)
            && entry.epoch == revocations.epoch()
            && *entry.text == *text
            && keys.issuer_for(entry.token.claims()).is_ok()
        {
            check_live(entry.token.claims(), now, revocations)?;
            return Ok(entry.token.clone());
        }
        let token = UnverifiedToken::parse(text)?.verify(keys, now, revocations)?;
        if self.map.len() >= VERIFY_CACHE_ENTRIES_MAX
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        if self
            .map
            .insert(
                key,
                Entry {
                    text: text.into(),
                    sha3: maos_crypto::sha3_256(text.as_bytes()),
                    epoch: revocations.epoch(),
                    token: token.clone(),
                },
            )
            .is_none()
        {
            self.order.push_back(key);
        }
        Ok(token)
    }

    /// SHA3-256 of the trimmed `text`: from the entry when `text` is a cached
    /// token (no 5 KB hash per decision), computed otherwise.
    #[must_use]
    pub fn text_sha3(&self, text: &str) -> maos_crypto::Digest {
        let text = text.trim();
        match self.map.get(&Self::key(text)) {
            Some(entry) if *entry.text == *text => entry.sha3,
            _ => maos_crypto::sha3_256(text.as_bytes()),
        }
    }

    /// Number of cached entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
