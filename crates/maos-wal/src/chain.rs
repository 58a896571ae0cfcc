//! The chain rules every pass over a log applies, record by record: Lsn order, hash
//! links, the genesis record, checkpoint contents and retention anchors.

use crate::error::Fault;
use crate::frame::RawRecord;
use crate::payload::{Checkpoint, Genesis, RetentionDeletion};
use crate::types::{LogId, Lsn, RecordHash, RecordKind};
use maos_model::UnixMillis;

/// How thoroughly to check each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// CRC (already checked by the decoder), Lsn order and hash links only.
    Links,
    /// Also recompute every record's SHA3-256.
    Full,
}

/// Running state of a pass over the log.
#[derive(Debug, Default)]
pub(crate) struct Chain {
    /// The Lsn the next record must have, once known.
    pub expected: Option<Lsn>,
    /// Hash of the last accepted record.
    pub head: Option<RecordHash>,
    /// Lsn of the last accepted record.
    pub head_lsn: Option<Lsn>,
    /// The first record's Lsn and `prev_hash` (the retention anchor to match).
    pub first: Option<(Lsn, RecordHash)>,
    /// The log id (from genesis or the first checkpoint).
    pub log_id: Option<LogId>,
    /// The genesis record, if present.
    pub genesis: Option<Genesis>,
    /// The last checkpoint's Lsn and time.
    pub last_checkpoint: Option<(Lsn, UnixMillis)>,
    /// Whether a retention record anchors a log that starts after Lsn 1.
    pub anchored: bool,
    /// The highest Lsn any retention record says was deleted.
    pub retention_cut: Option<Lsn>,
    /// Records accepted.
    pub records: u64,
    /// Checkpoints accepted.
    pub checkpoints: u64,
    /// Records since the last checkpoint.
    pub since_checkpoint: u64,
    /// Most records seen between two checkpoints.
    pub max_gap: u64,
    /// Sealed records seen, and the last one.
    pub sealed: u64,
    /// The last sealed record's Lsn.
    pub last_sealed: Option<Lsn>,
}

impl Chain {
    /// A segment starts with `first_lsn` (from its header).
    pub fn start_segment(&self, first_lsn: Lsn) -> Result<(), Fault> {
        match self.expected {
            Some(e) if e != first_lsn => Err(Fault::Sequence { found: first_lsn.0 }),
            _ => Ok(()),
        }
    }

    /// The Lsn to blame for a fault at the current position.
    pub fn blame(&self, fallback: Lsn) -> Lsn {
        self.expected.unwrap_or(fallback)
    }

    /// Checks and accepts one record. Returns the decoded checkpoint for kind
    /// [`RecordKind::CHECKPOINT`] so the caller can verify its signature.
    pub fn accept(&mut self, rec: &RawRecord<'_>, depth: Depth) -> Result<Option<Checkpoint>, Fault> {
        if let Some(e) = self.expected
            && rec.lsn != e
        {
            return Err(Fault::Sequence { found: rec.lsn.0 });
        }
        if rec.lsn.0 == 0 {
            return Err(Fault::Sequence { found: 0 });
        }
        match self.head {
            Some(h) if h != rec.prev_hash => return Err(Fault::Chain),
            _ => {}
        }
        if depth == Depth::Full && !rec.hash_is_valid() {
            return Err(Fault::Chain);
        }
        if self.first.is_none() {
            if rec.lsn == Lsn::FIRST && (rec.kind != RecordKind::GENESIS || rec.prev_hash != RecordHash::ZERO) {
                return Err(Fault::Genesis);
            }
            self.first = Some((rec.lsn, rec.prev_hash));
        }
        let mut checkpoint = None;
        match rec.kind {
            RecordKind::GENESIS => {
                let g = Genesis::decode(rec.payload).ok_or(Fault::Genesis)?;
                if rec.lsn != Lsn::FIRST || rec.is_sealed() {
                    return Err(Fault::Genesis);
                }
                self.log_id = Some(g.log_id);
                self.genesis = Some(g);
            }
            RecordKind::CHECKPOINT => {
                let c = Checkpoint::decode(rec.payload).ok_or(Fault::CheckpointMismatch)?;
                let consistent = Some(c.head_lsn) == self.head_lsn
                    && c.head_lsn.next() == Some(rec.lsn)
                    && c.head_hash == rec.prev_hash
                    && c.timestamp == rec.timestamp
                    && self.log_id.is_none_or(|id| id == c.log_id)
                    && !rec.is_sealed();
                // The first record of a log cut by retention may itself be a checkpoint:
                // its head is then the deleted record before it, known only by prev_hash.
                let consistent = consistent
                    || (self.head_lsn.is_none()
                        && c.head_lsn.next() == Some(rec.lsn)
                        && c.head_hash == rec.prev_hash
                        && c.timestamp == rec.timestamp);
                if !consistent {
                    return Err(Fault::CheckpointMismatch);
                }
                self.log_id = Some(c.log_id);
                self.last_checkpoint = Some((rec.lsn, rec.timestamp));
                self.checkpoints += 1;
                self.max_gap = self.max_gap.max(self.since_checkpoint);
                self.since_checkpoint = 0;
                checkpoint = Some(c);
            }
            RecordKind::RETENTION_DELETION => {
                let r = RetentionDeletion::decode(rec.payload).ok_or(Fault::RetentionAnchor)?;
                if r.last_lsn >= rec.lsn || rec.is_sealed() {
                    return Err(Fault::RetentionAnchor);
                }
                if let Some((first, prev)) = self.first
                    && first.0 > 1
                    && r.last_lsn.next() == Some(first)
                    && r.last_hash == prev
                {
                    self.anchored = true;
                }
                self.retention_cut = self.retention_cut.max(Some(r.last_lsn));
            }
            _ => {}
        }
        if rec.kind != RecordKind::CHECKPOINT {
            self.since_checkpoint += 1;
        }
        if rec.is_sealed() {
            self.sealed += 1;
            self.last_sealed = Some(rec.lsn);
        }
        self.records += 1;
        self.head = Some(rec.hash);
        self.head_lsn = Some(rec.lsn);
        self.expected = rec.lsn.next();
        Ok(checkpoint)
    }

    /// After the last record: a log that starts after Lsn 1 must be anchored by a
    /// retention record. Returns the first Lsn to blame otherwise.
    pub fn check_anchor(&self) -> Result<(), Lsn> {
        match self.first {
            Some((first, _)) if first.0 > 1 && !self.anchored => Err(first),
            _ => Ok(()),
        }
    }
}
