//! Reading the log: iterate, get one record, tail, follow. Readers check CRCs, Lsn
//! order and hash links as they go; [`crate::verify_log`] does the full audit.

use crate::chain::{Chain, Depth};
use crate::error::{Fault, WalError};
use crate::frame::{FrameError, RawRecord, SEGMENT_HEADER_LEN, ScanEnd, scan_frames, scan_segment};
use crate::payload::{Checkpoint, Genesis, RetentionDeletion};
use crate::recovery::{list_segments, read_segment};
use crate::storage::{FsStorage, Storage};
use crate::types::{CopyId, Lsn, RecordHash, RecordKind};
use crate::verify::SEGMENT_FILE_BYTES_MAX;
use crate::wal::seal_aad;
use maos_crypto::SealingKey;
use maos_model::UnixMillis;
use std::path::Path;
use std::sync::Arc;

/// Most records [`LogReader::tail`] returns: a bound on what one request can make the
/// reader hold in memory.
pub const TAIL_RECORDS_MAX: usize = 100_000;
/// Most records one [`Follower::poll`] returns (the rest come on the next poll).
pub const FOLLOW_BATCH_RECORDS_MAX: usize = 10_000;

/// What a record's payload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadState {
    /// Stored in the clear.
    Plain,
    /// Stored sealed and decrypted with the reader's key.
    Decrypted,
    /// Stored sealed and the reader has no key: `payload` is the ciphertext.
    Sealed,
}

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number.
    pub lsn: Lsn,
    /// Kind.
    pub kind: RecordKind,
    /// Wall-clock time of its commit group.
    pub timestamp: UnixMillis,
    /// The payload (see `payload_state`).
    pub payload: Vec<u8>,
    /// Whether the payload was decrypted.
    pub payload_state: PayloadState,
    /// Hash of the previous record.
    pub prev_hash: RecordHash,
    /// This record's hash.
    pub hash: RecordHash,
}

impl Record {
    /// The checkpoint, for kind [`RecordKind::CHECKPOINT`].
    #[must_use]
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        (self.kind == RecordKind::CHECKPOINT).then(|| Checkpoint::decode(&self.payload)).flatten()
    }

    /// The retention metadata, for kind [`RecordKind::RETENTION_DELETION`].
    #[must_use]
    pub fn retention(&self) -> Option<RetentionDeletion> {
        (self.kind == RecordKind::RETENTION_DELETION).then(|| RetentionDeletion::decode(&self.payload)).flatten()
    }

    /// The genesis, for kind [`RecordKind::GENESIS`].
    #[must_use]
    pub fn genesis(&self) -> Option<Genesis> {
        (self.kind == RecordKind::GENESIS).then(|| Genesis::decode(&self.payload)).flatten()
    }
}

/// Reads a log directory or [`Storage`]. Safe to use while a [`crate::Wal`] appends to
/// the same directory: a record still being written is simply not there yet.
#[derive(Debug, Clone)]
pub struct LogReader {
    storage: Arc<dyn Storage>,
    sealing_key: Option<Arc<SealingKey>>,
}

impl LogReader {
    /// A reader over `storage`.
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage, sealing_key: None }
    }

    /// A reader over an existing directory.
    ///
    /// # Errors
    /// [`WalError::Io`] if `dir` does not exist.
    pub fn open_dir(dir: &Path) -> Result<Self, WalError> {
        let s = FsStorage::open_existing(dir).map_err(|e| WalError::io(CopyId::Primary, "open", &e))?;
        Ok(Self::new(Arc::new(s)))
    }

    /// Decrypts sealed payloads with `key`.
    #[must_use]
    pub fn with_sealing_key(mut self, key: Arc<SealingKey>) -> Self {
        self.sealing_key = Some(key);
        self
    }

    fn to_record(&self, rec: &RawRecord<'_>) -> Result<Record, WalError> {
        let (payload, payload_state) = match (&self.sealing_key, rec.is_sealed()) {
            (_, false) => (rec.payload.to_vec(), PayloadState::Plain),
            (Some(k), true) => (
                k.open(&seal_aad(rec.lsn, rec.kind, rec.timestamp), rec.payload)
                    .map_err(|_| WalError::Decrypt { lsn: rec.lsn })?,
                PayloadState::Decrypted,
            ),
            (None, true) => (rec.payload.to_vec(), PayloadState::Sealed),
        };
        Ok(Record {
            lsn: rec.lsn,
            kind: rec.kind,
            timestamp: rec.timestamp,
            payload,
            payload_state,
            prev_hash: rec.prev_hash,
            hash: rec.hash,
        })
    }

    /// Decodes one segment. A torn or in-progress tail of the last segment ends it
    /// quietly; damage anywhere else is an error.
    fn decode_segment(
        &self,
        name_lsn: Lsn,
        name: &str,
        is_last: bool,
        chain: &mut Chain,
    ) -> Result<Vec<Record>, WalError> {
        let corrupt = |chain: &Chain, fault: Fault, offset: usize| WalError::Corrupt {
            lsn: chain.blame(name_lsn),
            fault,
            segment: name.to_owned(),
            offset: offset as u64,
        };
        let bytes = read_segment(self.storage.as_ref(), CopyId::Primary, name)?
            .ok_or_else(|| corrupt(chain, Fault::Segment, 0))?;
        let scan = scan_segment(&bytes);
        match scan.header {
            Ok(h) if h.first_lsn == name_lsn => {}
            Err(_) if is_last && bytes.len() < SEGMENT_HEADER_LEN => return Ok(Vec::new()),
            _ => return Err(corrupt(chain, Fault::Segment, 0)),
        }
        chain.start_segment(name_lsn).map_err(|f| corrupt(chain, f, 0))?;
        let mut out = Vec::with_capacity(scan.records.len());
        for (offset, rec) in &scan.records {
            chain.accept(rec, Depth::Links).map_err(|f| corrupt(chain, f, *offset))?;
            out.push(self.to_record(rec)?);
        }
        end_error(scan.end, is_last).map_or(Ok(out), |(fault, offset)| Err(corrupt(chain, fault, offset)))
    }

    /// Every record, oldest first. Stops after the first error.
    ///
    /// # Errors
    /// [`WalError::Io`] if the directory cannot be listed.
    pub fn records(&self) -> Result<Records<'_>, WalError> {
        self.records_from(Lsn(0))
    }

    /// Records from `from` on (whole segments before it are skipped unread).
    ///
    /// # Errors
    /// [`WalError::Io`] if the directory cannot be listed.
    pub fn records_from(&self, from: Lsn) -> Result<Records<'_>, WalError> {
        let mut segments = list_segments(self.storage.as_ref(), CopyId::Primary)?;
        let skip = segments.iter().take_while(|(l, _)| *l <= from).count().saturating_sub(1);
        segments.drain(..skip);
        Ok(Records {
            reader: self,
            segments,
            index: 0,
            from,
            buffered: Vec::new().into_iter(),
            chain: Chain::default(),
            done: false,
        })
    }

    /// The record with Lsn `lsn`.
    ///
    /// # Errors
    /// [`WalError::NotFound`] if absent; a read or decryption error.
    pub fn get(&self, lsn: Lsn) -> Result<Record, WalError> {
        let segments = list_segments(self.storage.as_ref(), CopyId::Primary)?;
        let last = segments.len().saturating_sub(1);
        let Some((i, (first, name))) = segments.iter().enumerate().rev().find(|(_, (l, _))| *l <= lsn) else {
            return Err(WalError::NotFound { lsn });
        };
        let records = self.decode_segment(*first, name, i == last, &mut Chain::default())?;
        records.into_iter().find(|r| r.lsn == lsn).ok_or(WalError::NotFound { lsn })
    }

    /// The last `n` records, oldest first.
    ///
    /// # Errors
    /// [`WalError::Limit`] if `n` exceeds [`TAIL_RECORDS_MAX`]; a read error.
    pub fn tail(&self, n: usize) -> Result<Vec<Record>, WalError> {
        if n > TAIL_RECORDS_MAX {
            return Err(WalError::Limit { what: "tail records", max: TAIL_RECORDS_MAX });
        }
        let segments = list_segments(self.storage.as_ref(), CopyId::Primary)?;
        let last = segments.len().saturating_sub(1);
        let mut out: Vec<Record> = Vec::new();
        for (i, (first, name)) in segments.iter().enumerate().rev() {
            if out.len() >= n {
                break;
            }
            let mut records = self.decode_segment(*first, name, i == last, &mut Chain::default())?;
            let keep = records.len().saturating_sub(n - out.len());
            records.drain(..keep);
            records.append(&mut out);
            out = records;
        }
        Ok(out)
    }

    /// One step of a rolling full-depth re-verification of this log
    /// ([`crate::sweep`]).
    ///
    /// # Errors
    /// As [`crate::sweep`].
    pub fn sweep(
        &self,
        cursor: &mut crate::SweepCursor,
        segments_max: usize,
        must_match: Option<(Lsn, crate::RecordHash)>,
    ) -> Result<crate::SweepStep, WalError> {
        crate::verify::sweep(self.storage.as_ref(), cursor, segments_max, must_match)
    }

    /// A follower that yields records from `from` on as they are appended.
    #[must_use]
    pub fn follow(&self, from: Lsn) -> Follower {
        Follower { reader: self.clone(), next: from, position: None, head: None }
    }
}

/// The damage a segment's scan ended on, if any: a torn or in-progress tail
/// of the last segment is none.
pub(crate) fn end_error(end: ScanEnd, is_last: bool) -> Option<(Fault, usize)> {
    match end {
        ScanEnd::Clean => None,
        ScanEnd::Incomplete { .. } | ScanEnd::Bad { torn_shaped: true, .. } if is_last => None,
        ScanEnd::Incomplete { offset } => Some((Fault::Truncated, offset)),
        ScanEnd::Bad { offset, error: FrameError::BadCrc, .. } => Some((Fault::Crc, offset)),
        ScanEnd::Bad { offset, .. } => Some((Fault::Frame, offset)),
    }
}

/// Iterator over records; see [`LogReader::records`].
#[derive(Debug)]
pub struct Records<'a> {
    reader: &'a LogReader,
    segments: Vec<(Lsn, String)>,
    index: usize,
    from: Lsn,
    buffered: std::vec::IntoIter<Record>,
    chain: Chain,
    done: bool,
}

impl Iterator for Records<'_> {
    type Item = Result<Record, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.buffered.next() {
                if r.lsn < self.from {
                    continue;
                }
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            let Some((first, name)) = self.segments.get(self.index).cloned() else {
                self.done = true;
                return None;
            };
            let is_last = self.index + 1 == self.segments.len();
            self.index += 1;
            match self.reader.decode_segment(first, &name, is_last, &mut self.chain) {
                Ok(records) => self.buffered = records.into_iter(),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Follows a growing log (`maos audit tail --follow`); call [`Self::poll`] periodically.
#[derive(Debug)]
pub struct Follower {
    reader: LogReader,
    next: Lsn,
    /// Segment being read and the offset after the last frame returned.
    position: Option<(String, u64)>,
    head: Option<RecordHash>,
}

impl Follower {
    /// The Lsn the next returned record will have.
    #[must_use]
    pub const fn next_lsn(&self) -> Lsn {
        self.next
    }

    /// Records appended since the last poll (at most [`FOLLOW_BATCH_RECORDS_MAX`]).
    ///
    /// # Errors
    /// A read error, damage, or a gap (the next record was removed by retention).
    pub fn poll(&mut self) -> Result<Vec<Record>, WalError> {
        let storage = self.reader.storage.clone();
        let segments = list_segments(storage.as_ref(), CopyId::Primary)?;
        let mut out = Vec::new();
        let Some(mut index) = segments.iter().rposition(|(l, _)| *l <= self.next) else {
            return Ok(out);
        };
        while let Some((first, name)) = segments.get(index) {
            let is_last = index + 1 == segments.len();
            let offset = match &self.position {
                Some((n, off)) if n == name => *off,
                _ => 0,
            };
            let len_max = usize::try_from(SEGMENT_FILE_BYTES_MAX.saturating_sub(offset)).unwrap_or(usize::MAX);
            let bytes = storage.read(name, offset, len_max).map_err(|e| WalError::io(CopyId::Primary, "read", &e))?;
            let (records, end, start) = if offset == 0 {
                let scan = scan_segment(&bytes);
                match scan.header {
                    Ok(h) if h.first_lsn == *first => {}
                    Err(_) if is_last && bytes.len() < SEGMENT_HEADER_LEN => return Ok(out),
                    _ => {
                        return Err(WalError::Corrupt {
                            lsn: self.next,
                            fault: Fault::Segment,
                            segment: name.clone(),
                            offset: 0,
                        });
                    }
                }
                (scan.records, scan.end, 0u64)
            } else {
                let (records, _, end) = scan_frames(&bytes, 0);
                (records, end, offset)
            };
            let mut consumed = if offset == 0 { SEGMENT_HEADER_LEN as u64 } else { offset };
            for (at, rec) in &records {
                consumed = start + (*at + rec.hashed.len() + 36) as u64;
                if rec.lsn < self.next {
                    self.head = Some(rec.hash);
                    continue;
                }
                let bad = |fault| WalError::Corrupt {
                    lsn: self.next,
                    fault,
                    segment: name.clone(),
                    offset: start + *at as u64,
                };
                if rec.lsn != self.next {
                    return Err(bad(Fault::Sequence { found: rec.lsn.0 }));
                }
                if self.head.is_some_and(|h| h != rec.prev_hash) {
                    return Err(bad(Fault::Chain));
                }
                out.push(self.reader.to_record(rec)?);
                self.head = Some(rec.hash);
                self.next = Lsn(rec.lsn.0 + 1);
                self.position = Some((name.clone(), consumed));
                if out.len() >= FOLLOW_BATCH_RECORDS_MAX {
                    return Ok(out);
                }
            }
            self.position = Some((name.clone(), consumed));
            if let Some((fault, at)) = end_error(end, is_last) {
                return Err(WalError::Corrupt {
                    lsn: self.next,
                    fault,
                    segment: name.clone(),
                    offset: start + at as u64,
                });
            }
            if is_last || !matches!(end, ScanEnd::Clean) {
                break;
            }
            index += 1;
        }
        Ok(out)
    }
}
