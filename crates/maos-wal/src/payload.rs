//! Payloads of the WAL's own record kinds: genesis, checkpoint, retention deletion.
//! These are never encrypted, so an auditor needs only the public key.

use crate::types::{LogId, Lsn, RecordHash, StateDigest};
use maos_crypto::{KeyId, SIGNATURE_LEN, Signature, SignatureDomain, SigningKey, VerifyingKey};
use maos_model::{Profile, UnixMillis};

/// Bytes of a genesis payload.
pub const GENESIS_LEN: usize = 20;
/// Bytes of a checkpoint payload before the signature (the signed message).
pub const CHECKPOINT_SIGNED_LEN: usize = 128;
/// Bytes of a retention-deletion payload.
pub const RETENTION_LEN: usize = 64;

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn arr32(b: &[u8], at: usize) -> Option<[u8; 32]> {
    b.get(at..at + 32)?.try_into().ok()
}

const fn profile_code(p: Profile) -> u8 {
    match p {
        Profile::Standard => 0,
        Profile::Hardened => 1,
        Profile::Isolated => 2,
    }
}

const fn profile_from_code(c: u8) -> Option<Profile> {
    match c {
        0 => Some(Profile::Standard),
        1 => Some(Profile::Hardened),
        2 => Some(Profile::Isolated),
        _ => None,
    }
}

/// The genesis record (Lsn 1): the log's identity and the profile it was created under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Genesis {
    /// Random log id.
    pub log_id: LogId,
    /// The profile at creation.
    pub profile: Profile,
}

impl Genesis {
    /// Encodes: log id (16), profile code (1), 3 zero bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(GENESIS_LEN);
        out.extend_from_slice(&self.log_id.0);
        out.push(profile_code(self.profile));
        out.extend_from_slice(&[0; 3]);
        out
    }

    /// Decodes a genesis payload; `None` if malformed.
    #[must_use]
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != GENESIS_LEN || b.get(17..20) != Some(&[0u8; 3][..]) {
            return None;
        }
        let log_id = LogId(b.get(..16)?.try_into().ok()?);
        let profile = profile_from_code(*b.get(16)?)?;
        Some(Self { log_id, profile })
    }
}

/// A signed checkpoint (spec §14.3). It signs the chain head (the record just before
/// it), which by the hash chain commits to the whole log up to that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Lsn of the record the checkpoint covers (the checkpoint's own Lsn minus one).
    pub head_lsn: Lsn,
    /// Hash of that record.
    pub head_hash: RecordHash,
    /// The caller's digest of kernel state.
    pub state: StateDigest,
    /// The log's id.
    pub log_id: LogId,
    /// The checkpoint record's timestamp.
    pub timestamp: UnixMillis,
    /// The signer.
    pub key_id: KeyId,
    /// Hybrid signature (domain [`SignatureDomain::WalCheckpoint`]) over [`Self::signed_message`].
    pub signature: Signature,
}

impl Checkpoint {
    /// The 128 signed bytes: head Lsn, head hash, state digest, log id, timestamp, key id.
    #[must_use]
    pub fn signed_message(
        head_lsn: Lsn,
        head_hash: &RecordHash,
        state: &StateDigest,
        log_id: &LogId,
        timestamp: UnixMillis,
        key_id: &KeyId,
    ) -> Vec<u8> {
        let mut m = Vec::with_capacity(CHECKPOINT_SIGNED_LEN);
        m.extend_from_slice(&head_lsn.0.to_le_bytes());
        m.extend_from_slice(&head_hash.0);
        m.extend_from_slice(&state.0);
        m.extend_from_slice(&log_id.0);
        m.extend_from_slice(&timestamp.0.to_le_bytes());
        m.extend_from_slice(&key_id.0);
        m
    }

    /// Signs a new checkpoint.
    ///
    /// # Errors
    /// The crypto layer's error if signing fails.
    pub fn sign(
        key: &SigningKey,
        head_lsn: Lsn,
        head_hash: RecordHash,
        state: StateDigest,
        log_id: LogId,
        timestamp: UnixMillis,
    ) -> Result<Self, maos_crypto::CryptoError> {
        let key_id = key.key_id();
        let msg = Self::signed_message(head_lsn, &head_hash, &state, &log_id, timestamp, &key_id);
        let signature = key.sign(SignatureDomain::WalCheckpoint, &msg)?;
        Ok(Self { head_lsn, head_hash, state, log_id, timestamp, key_id, signature })
    }

    /// Encodes: the signed message, signature length (u16 LE), signature.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Self::signed_message(
            self.head_lsn,
            &self.head_hash,
            &self.state,
            &self.log_id,
            self.timestamp,
            &self.key_id,
        );
        let sig = self.signature.as_bytes();
        out.extend_from_slice(&u16::try_from(sig.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(sig);
        out
    }

    /// Decodes a checkpoint payload; `None` if malformed. Never panics.
    #[must_use]
    pub fn decode(b: &[u8]) -> Option<Self> {
        let sig_len = usize::from(u16::from_le_bytes(b.get(128..130)?.try_into().ok()?));
        if sig_len != SIGNATURE_LEN || b.len() != 130 + sig_len {
            return None;
        }
        Some(Self {
            head_lsn: Lsn(u64_at(b, 0)?),
            head_hash: RecordHash(arr32(b, 8)?),
            state: StateDigest(arr32(b, 40)?),
            log_id: LogId(b.get(72..88)?.try_into().ok()?),
            timestamp: UnixMillis(u64_at(b, 88)?),
            key_id: KeyId(arr32(b, 96)?),
            signature: Signature::from_bytes(b.get(130..)?).ok()?,
        })
    }

    /// Verifies the signature with `key` (whose id must match).
    ///
    /// # Errors
    /// The crypto layer's error if either half of the signature fails.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), maos_crypto::CryptoError> {
        let msg = Self::signed_message(
            self.head_lsn,
            &self.head_hash,
            &self.state,
            &self.log_id,
            self.timestamp,
            &self.key_id,
        );
        key.verify(SignatureDomain::WalCheckpoint, &msg, &self.signature)
    }
}

/// Metadata left when retention deletes whole segments (spec §5.3.1: deletions leave
/// metadata-only audit entries). Anchors the chain at the cut: the first record kept
/// has `prev_hash == last_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDeletion {
    /// First deleted Lsn.
    pub first_lsn: Lsn,
    /// Last deleted Lsn.
    pub last_lsn: Lsn,
    /// Hash of the last deleted record.
    pub last_hash: RecordHash,
    /// Number of segment files deleted.
    pub segments: u32,
    /// The retention period applied.
    pub retention_days: u32,
    /// Records older than this were eligible.
    pub cutoff: UnixMillis,
}

impl RetentionDeletion {
    /// Encodes the 64-byte payload.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RETENTION_LEN);
        out.extend_from_slice(&self.first_lsn.0.to_le_bytes());
        out.extend_from_slice(&self.last_lsn.0.to_le_bytes());
        out.extend_from_slice(&self.last_hash.0);
        out.extend_from_slice(&self.segments.to_le_bytes());
        out.extend_from_slice(&self.retention_days.to_le_bytes());
        out.extend_from_slice(&self.cutoff.0.to_le_bytes());
        out
    }

    /// Decodes; `None` if malformed.
    #[must_use]
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != RETENTION_LEN {
            return None;
        }
        let d = Self {
            first_lsn: Lsn(u64_at(b, 0)?),
            last_lsn: Lsn(u64_at(b, 8)?),
            last_hash: RecordHash(arr32(b, 16)?),
            segments: u32_at(b, 48)?,
            retention_days: u32_at(b, 52)?,
            cutoff: UnixMillis(u64_at(b, 56)?),
        };
        (d.first_lsn <= d.last_lsn && d.first_lsn.0 >= 1).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip() -> Result<(), maos_crypto::CryptoError> {
        let g = Genesis { log_id: LogId([3; 16]), profile: Profile::Hardened };
        assert_eq!(Genesis::decode(&g.encode()), Some(g));
        assert_eq!(Genesis::decode(&[0; 19]), None);
        let r = RetentionDeletion {
            first_lsn: Lsn(1),
            last_lsn: Lsn(9),
            last_hash: RecordHash([1; 32]),
            segments: 2,
            retention_days: 30,
            cutoff: UnixMillis(5),
        };
        assert_eq!(RetentionDeletion::decode(&r.encode()), Some(r));
        let key = SigningKey::from_seeds(&[9; 64])?;
        let c =
            Checkpoint::sign(&key, Lsn(4), RecordHash([2; 32]), StateDigest([5; 32]), LogId([3; 16]), UnixMillis(7))?;
        let back = Checkpoint::decode(&c.encode());
        assert_eq!(back.as_ref(), Some(&c));
        assert!(c.verify(key.verifying_key()).is_ok());
        let mut forged = c.clone();
        forged.head_lsn = Lsn(5);
        assert!(forged.verify(key.verifying_key()).is_err());
        assert_eq!(Checkpoint::decode(&c.encode()[..100]), None);
        Ok(())
    }
}
