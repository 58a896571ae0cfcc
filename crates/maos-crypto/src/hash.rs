//! SHA3-256, the hash of every chain and id in MAOS (spec §14a.3).

use std::fmt;

/// Length of a SHA3-256 digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// A SHA3-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; DIGEST_LEN]);

impl Digest {
    /// Lowercase hex of all 32 bytes.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex characters.
    ///
    /// # Errors
    /// [`crate::CryptoError::Malformed`] if the text is not 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, crate::CryptoError> {
        let bad = crate::CryptoError::Malformed { what: "digest", why: "expected 64 hex characters" };
        if text.len() != DIGEST_LEN * 2 {
            return Err(bad);
        }
        let mut out = [0u8; DIGEST_LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let pair = text.get(i * 2..i * 2 + 2).ok_or_else(|| bad.clone())?;
            *slot = u8::from_str_radix(pair, 16).map_err(|_| bad.clone())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

// SHA3-256 comes from the same aws-lc backend as the signatures: its
// Keccak is several times faster than the portable one, and every log record
// and decision is hashed. The RustCrypto `sha3` crate stays as the reference
// the known-answer and differential tests compare against.

fn digest_of(d: &aws_lc_rs::digest::Digest) -> Digest {
    let mut out = [0u8; DIGEST_LEN];
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    Digest(out)
}

/// SHA3-256 of `data`.
#[must_use]
pub fn sha3_256(data: &[u8]) -> Digest {
    digest_of(&aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA3_256, data))
}

/// Incremental SHA3-256, for hashing framed records without concatenating them.
#[derive(Clone)]
pub struct Sha3Hasher(aws_lc_rs::digest::Context);

impl Default for Sha3Hasher {
    fn default() -> Self {
        Self(aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA3_256))
    }
}

impl Sha3Hasher {
    /// A fresh hasher.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(data);
        self
    }

    /// The digest of everything fed so far.
    #[must_use]
    pub fn finish(self) -> Digest {
        digest_of(&self.0.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_lc_sha3_equals_the_rustcrypto_reference() {
        use sha3::Digest as _;
        for len in [0usize, 1, 135, 136, 137, 4700, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let reference: [u8; 32] = sha3::Sha3_256::digest(&data).into();
            assert_eq!(sha3_256(&data).0, reference, "len {len}");
            let mut h = Sha3Hasher::new();
            for chunk in data.chunks(97) {
                h.update(chunk);
            }
            assert_eq!(h.finish().0, reference, "incremental, len {len}");
        }
    }

    #[test]
    fn sha3_256_known_answer() {
        // FIPS 202 test vector for the empty string.
        assert_eq!(sha3_256(b"").to_hex(), "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
        assert_eq!(sha3_256(b"abc").to_hex(), "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532");
    }

    #[test]
    fn incremental_matches_one_shot() {
        let mut h = Sha3Hasher::new();
        h.update(b"ab").update(b"c");
        assert_eq!(h.finish(), sha3_256(b"abc"));
    }

    #[test]
    fn hex_round_trip() {
        let d = sha3_256(b"x");
        assert_eq!(Digest::from_hex(&d.to_hex()), Ok(d));
        assert!(Digest::from_hex("zz").is_err());
    }
}
