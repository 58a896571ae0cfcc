//! State snapshots: what lets retention cut segments without cutting state.
//!
//! Guarantees:
//! - Retention never deletes a segment unless a snapshot of the folded state
//!   of every record before it is written, in the same commit group as the
//!   retention-deletion record, and vouched for by a signed checkpoint whose
//!   state digest is the snapshot's SHA3-256 ([`crate::Wal::apply_retention`]).
//! - [`LogReader::fold_records`] is the one way a fold reads the log: on a log
//!   that was cut it starts at the first snapshot (whose state covers every
//!   record before it, cut or not), so no fold ever sees a revocation without
//!   its token or a derived token without its parent; a cut log without a
//!   snapshot is refused (`WAL-SNAPSHOT`), never folded from the middle.
//!
//! The payload is the caller's bytes (the WAL does not interpret them), split
//! into at most [`SNAPSHOT_CHUNKS_MAX`] records of kind
//! [`RecordKind::STATE_SNAPSHOT`], sealed like caller payloads when the log is
//! encrypted. Each chunk starts with its index and the chunk count (u32 LE).

use crate::error::WalError;
use crate::frame::PAYLOAD_BYTES_MAX;
use crate::reader::{LogReader, Record, Records};
use crate::types::{Lsn, RecordKind};

/// Chunks in one snapshot: 64 records of up to 1 MiB bound the state a
/// snapshot can carry (and what a fold buffers to read it) to 64 MiB.
pub const SNAPSHOT_CHUNKS_MAX: usize = 64;
const CHUNK_HEADER: usize = 8;
/// Caller bytes in one chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = PAYLOAD_BYTES_MAX - CHUNK_HEADER;
/// The largest snapshot payload.
pub const SNAPSHOT_BYTES_MAX: usize = SNAPSHOT_CHUNKS_MAX * SNAPSHOT_CHUNK_BYTES;

/// Splits `payload` into chunk payloads.
pub(crate) fn encode_chunks(payload: &[u8]) -> Result<Vec<Vec<u8>>, WalError> {
    if payload.len() > SNAPSHOT_BYTES_MAX {
        return Err(WalError::TooLarge { len: payload.len(), max: SNAPSHOT_BYTES_MAX });
    }
    let parts: Vec<&[u8]> =
        if payload.is_empty() { vec![payload] } else { payload.chunks(SNAPSHOT_CHUNK_BYTES).collect() };
    let count = u32::try_from(parts.len()).map_err(|_| WalError::Internal("snapshot chunk count"))?;
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        let index = u32::try_from(i).map_err(|_| WalError::Internal("snapshot chunk index"))?;
        let mut chunk = Vec::with_capacity(CHUNK_HEADER + part.len());
        chunk.extend_from_slice(&index.to_le_bytes());
        chunk.extend_from_slice(&count.to_le_bytes());
        chunk.extend_from_slice(part);
        out.push(chunk);
    }
    Ok(out)
}

fn chunk_header(record: &Record) -> Result<(u32, u32, &[u8]), WalError> {
    let bad = |why: &str| WalError::Snapshot(format!("lsn {}: {why}", record.lsn));
    if record.payload_state == crate::PayloadState::Sealed {
        return Err(bad("the snapshot is encrypted and the reader has no key"));
    }
    let (head, data) =
        record.payload.split_at_checked(CHUNK_HEADER).ok_or_else(|| bad("chunk shorter than its header"))?;
    let word = |i: usize| head.get(i..i + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let (Some(index), Some(count)) = (word(0), word(4)) else { return Err(bad("chunk header")) };
    if count == 0 || index >= count || count as usize > SNAPSHOT_CHUNKS_MAX {
        return Err(bad("chunk numbering"));
    }
    Ok((index, count, data))
}

/// Records in fold order; see [`LogReader::fold_records`].
#[derive(Debug)]
pub struct FoldRecords<'a> {
    inner: Records<'a>,
    /// Whether the log was cut and the snapshot has not been reached yet.
    seeking: Option<bool>,
    /// The first Lsn present, for the error when no snapshot follows a cut.
    first: Option<Lsn>,
    failed: bool,
}

impl FoldRecords<'_> {
    /// Reads the rest of a snapshot that starts with `first`, returning one
    /// record that carries the whole payload (Lsn of its last chunk).
    fn assemble(&mut self, first: Record) -> Result<Record, WalError> {
        let (index, count, data) = chunk_header(&first)?;
        if index != 0 {
            return Err(WalError::Snapshot(format!("lsn {}: snapshot starts at chunk {index}", first.lsn)));
        }
        let mut payload = data.to_vec();
        let mut last = first;
        for expected in 1..count {
            let next = match self.inner.next() {
                Some(r) => r?,
                None => return Err(WalError::Snapshot(format!("lsn {}: snapshot ends early", last.lsn))),
            };
            let (i, c, data) = if next.kind == RecordKind::STATE_SNAPSHOT {
                chunk_header(&next)?
            } else {
                return Err(WalError::Snapshot(format!("lsn {}: snapshot chunk missing", next.lsn)));
            };
            if i != expected || c != count {
                return Err(WalError::Snapshot(format!("lsn {}: chunk {i} of {c} out of order", next.lsn)));
            }
            payload.extend_from_slice(data);
            last = next;
        }
        last.payload = payload;
        Ok(last)
    }
}

/// The payload of the snapshot whose first chunk is at `first` (the read-back
/// retention does before it deletes anything).
pub(crate) fn read_at(reader: &LogReader, first: Lsn) -> Result<Vec<u8>, WalError> {
    let mut records =
        FoldRecords { inner: reader.records_from(first)?, seeking: Some(true), first: Some(first), failed: false };
    let record = records.next().ok_or_else(|| WalError::Snapshot(format!("no snapshot at lsn {first}")))??;
    if record.kind != RecordKind::STATE_SNAPSHOT {
        return Err(WalError::Snapshot(format!("no snapshot at lsn {first}")));
    }
    Ok(record.payload)
}

impl Iterator for FoldRecords<'_> {
    type Item = Result<Record, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let out = loop {
            let record = match self.inner.next() {
                Some(Ok(r)) => r,
                Some(Err(e)) => break Some(Err(e)),
                None => {
                    break match (self.seeking, self.first) {
                        (Some(true), Some(first)) => Some(Err(WalError::Snapshot(format!(
                            "the log was cut before lsn {first} and no state snapshot follows the cut"
                        )))),
                        _ => None,
                    };
                }
            };
            let seeking = *self.seeking.get_or_insert_with(|| {
                self.first = Some(record.lsn);
                record.lsn > Lsn(1)
            });
            if record.kind == RecordKind::STATE_SNAPSHOT {
                if seeking {
                    self.seeking = Some(false);
                    break Some(self.assemble(record));
                }
                // Its state is what the records before it folded to: skipped
                // by kind, without reading it (it may be sealed).
                continue;
            }
            if !seeking {
                break Some(Ok(record));
            }
        };
        if matches!(out, Some(Err(_))) {
            self.failed = true;
        }
        out
    }
}

impl LogReader {
    /// Records in the order a fold must read them. On a log that starts at
    /// genesis: every record except state snapshots. On a log that retention
    /// cut: the first snapshot (one record carrying its whole payload, kind
    /// [`RecordKind::STATE_SNAPSHOT`]: the fold starts from that state), then
    /// every later record except snapshots.
    ///
    /// # Errors
    /// As [`Self::records`]; items fail with [`WalError::Snapshot`] when a cut
    /// log holds no snapshot or a snapshot's chunks are damaged.
    pub fn fold_records(&self) -> Result<FoldRecords<'_>, WalError> {
        Ok(FoldRecords { inner: self.records()?, seeking: None, first: None, failed: false })
    }
}
