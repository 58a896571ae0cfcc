//! AES-256-GCM sealing for data at rest (spec §14a.3), e.g. WAL payloads in the
//! Hardened and Isolated profiles.

use crate::CryptoError;
use crate::keyfile::{read_small_file, write_private_file};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// Bytes a sealed message adds to its plaintext: a 12-byte nonce and a 16-byte tag.
pub const SEALED_OVERHEAD: usize = NONCE_LEN + 16;
const HEADER: &str = "maos-sealing-key v1";

/// A 256-bit AES-GCM key. Zeroized on drop, never printed.
pub struct SealingKey {
    raw: Zeroizing<[u8; 32]>,
    key: LessSafeKey,
}

impl SealingKey {
    /// A key from 32 bytes.
    ///
    /// # Errors
    /// [`CryptoError::Backend`] if the backend rejects the key.
    pub fn from_bytes(raw: &[u8; 32]) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, raw).map_err(|_| CryptoError::Backend("load aes-256-gcm key"))?;
        Ok(Self { raw: Zeroizing::new(*raw), key: LessSafeKey::new(unbound) })
    }

    /// A fresh random key.
    ///
    /// # Errors
    /// [`CryptoError::Random`] if the RNG fails.
    pub fn generate() -> Result<Self, CryptoError> {
        let raw = Zeroizing::new(crate::random_bytes::<32>()?);
        Self::from_bytes(&raw)
    }

    /// Encrypts `plaintext` bound to `aad`; output is nonce ‖ ciphertext ‖ tag.
    ///
    /// # Errors
    /// [`CryptoError::Random`] or [`CryptoError::Backend`].
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes = crate::random_bytes::<NONCE_LEN>()?;
        let mut out = Vec::with_capacity(plaintext.len() + SEALED_OVERHEAD);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(aad), &mut body)
            .map_err(|_| CryptoError::Backend("seal with aes-256-gcm"))?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypts what [`Self::seal`] produced with the same `aad`.
    ///
    /// # Errors
    /// [`CryptoError::Unseal`] if the data was altered, the AAD differs or the key is wrong.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEALED_OVERHEAD {
            return Err(CryptoError::Unseal);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unseal)?;
        let mut buf = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(aad), &mut buf).map_err(|_| CryptoError::Unseal)?;
        Ok(plain.to_vec())
    }

    /// Writes the key to a new file with mode 0600.
    ///
    /// # Errors
    /// [`CryptoError::KeyFile`] if the file exists or cannot be written.
    pub fn write_file(&self, path: &Path) -> Result<(), CryptoError> {
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(*self.raw));
        let text = Zeroizing::new(format!(
            "# MAOS at-rest encryption key. Losing it loses the encrypted log.\n{HEADER}\nkey {}\n",
            encoded.as_str()
        ));
        write_private_file(path, text.as_bytes())
    }

    /// Reads a key written by [`Self::write_file`].
    ///
    /// # Errors
    /// [`CryptoError::KeyFile`] if missing, readable by others or malformed.
    pub fn read_file(path: &Path) -> Result<Self, CryptoError> {
        let text = read_small_file(path, true)?;
        let bad = |why: &str| CryptoError::KeyFile { path: path.display().to_string(), why: why.to_owned() };
        let mut lines = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty());
        if lines.next().map(str::trim) != Some(HEADER) {
            return Err(bad("not a sealing key file"));
        }
        let encoded = lines.find_map(|l| l.trim().strip_prefix("key ")).ok_or_else(|| bad("missing `key` line"))?;
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| bad("key is not base64"))?,
        );
        let raw: Zeroizing<[u8; 32]> =
            Zeroizing::new(decoded.as_slice().try_into().map_err(|_| bad("key has the wrong length"))?);
        Self::from_bytes(&raw)
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() -> Result<(), CryptoError> {
        let k = SealingKey::from_bytes(&[5; 32])?;
        let sealed = k.seal(b"lsn=1", b"secret payload")?;
        assert_eq!(k.open(b"lsn=1", &sealed)?, b"secret payload");
        assert_eq!(k.open(b"lsn=2", &sealed), Err(CryptoError::Unseal));
        let mut bent = sealed.clone();
        if let Some(b) = bent.last_mut() {
            *b ^= 1;
        }
        assert_eq!(k.open(b"lsn=1", &bent), Err(CryptoError::Unseal));
        assert_eq!(SealingKey::from_bytes(&[6; 32])?.open(b"lsn=1", &sealed), Err(CryptoError::Unseal));
        assert_eq!(k.open(b"", &[0; 3]), Err(CryptoError::Unseal));
        Ok(())
    }

    #[test]
    fn key_file_round_trip() -> Result<(), CryptoError> {
        let dir = tempfile::tempdir().map_err(|_| CryptoError::Random)?;
        let path = dir.path().join("wal.key");
        let k = SealingKey::generate()?;
        k.write_file(&path)?;
        let k2 = SealingKey::read_file(&path)?;
        let sealed = k.seal(b"", b"x")?;
        assert_eq!(k2.open(b"", &sealed)?, b"x");
        Ok(())
    }
}
