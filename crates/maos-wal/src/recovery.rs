//! Recovery on open: scan each copy, pick the longer valid chain, cut a torn tail,
//! repair the other copy, re-hash every record.

use crate::chain::{Chain, Depth};
use crate::error::{Fault, WalError};
use crate::frame::{FrameError, SEGMENT_HEADER_LEN, ScanEnd, parse_segment_name, scan_segment};
use crate::payload::Checkpoint;
use crate::storage::Storage;
use crate::types::{CopyId, LogId, Lsn, RecordHash};
use crate::verify::SEGMENT_FILE_BYTES_MAX;
use maos_model::UnixMillis;

/// The segments of a directory, sorted by first Lsn.
pub(crate) fn list_segments(storage: &dyn Storage, copy: CopyId) -> Result<Vec<(Lsn, String)>, WalError> {
    let names = storage.list().map_err(|e| WalError::io(copy, "list", &e))?;
    let mut segs: Vec<(Lsn, String)> =
        names.into_iter().filter_map(|n| parse_segment_name(&n).map(|l| (l, n))).collect();
    segs.sort();
    Ok(segs)
}

/// Reads a whole segment; `Ok(None)` if it is larger than any segment we write.
pub(crate) fn read_segment(storage: &dyn Storage, copy: CopyId, name: &str) -> Result<Option<Vec<u8>>, WalError> {
    let len = storage.len(name).map_err(|e| WalError::io(copy, "read", &e))?;
    if len > SEGMENT_FILE_BYTES_MAX {
        return Ok(None);
    }
    let cap = usize::try_from(len).map_err(|_| WalError::Internal("segment length"))?;
    storage.read(name, 0, cap).map(Some).map_err(|e| WalError::io(copy, "read", &e))
}

/// What the scan learned about one segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegInfo {
    pub name: String,
    pub first_lsn: Lsn,
    pub file_len: u64,
    pub valid_len: u64,
    /// Last valid record in this segment.
    pub last: Option<(Lsn, RecordHash)>,
    pub max_ts: UnixMillis,
    /// Scanned to the end with no fault.
    pub intact: bool,
}

/// Where a copy's valid chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CopyEnd {
    Clean,
    /// The last segment ends in a torn group at `offset` (0: the segment header
    /// itself is torn and the file goes).
    Torn {
        offset: u64,
        lsn: Lsn,
    },
    /// Damage before the tail.
    Corrupt(WalError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointLoc {
    pub seg_index: usize,
    pub lsn: Lsn,
    pub timestamp: UnixMillis,
}

/// One copy as found on disk.
#[derive(Debug)]
pub(crate) struct CopyScan {
    pub segments: Vec<SegInfo>,
    /// Leftover temporary files of an interrupted repair.
    pub stray: Vec<String>,
    pub head: Option<(Lsn, RecordHash)>,
    pub end: CopyEnd,
    pub last_checkpoint: Option<CheckpointLoc>,
    pub log_id: Option<LogId>,
    pub retention_cut: Option<Lsn>,
    pub last_sealed: Option<Lsn>,
    pub records_since_checkpoint: u64,
}

impl CopyScan {
    /// The length of the valid chain: its last Lsn (0 if empty).
    pub fn chain_len(&self) -> u64 {
        self.head.map_or(0, |(l, _)| l.0)
    }

    pub fn first_lsn(&self) -> Option<Lsn> {
        self.segments.first().map(|s| s.first_lsn)
    }
}

/// Scans one copy: CRC, Lsn order and hash links on every record (the cheap checks);
/// SHA3 re-hashing is left to [`rehash_from_checkpoint`].
pub(crate) fn scan_copy(storage: &dyn Storage, copy: CopyId) -> Result<CopyScan, WalError> {
    let names = storage.list().map_err(|e| WalError::io(copy, "list", &e))?;
    let stray = names.iter().filter(|n| n.ends_with(".repair")).cloned().collect();
    let listed = list_segments(storage, copy)?;
    let mut chain = Chain::default();
    let mut segments: Vec<SegInfo> = Vec::with_capacity(listed.len());
    let mut last_checkpoint = None;
    let mut end = CopyEnd::Clean;
    let last_index = listed.len().saturating_sub(1);
    for (i, (name_lsn, name)) in listed.iter().enumerate() {
        let is_last = i == last_index;
        let corrupt = |chain: &Chain, fault: Fault, offset: usize| {
            CopyEnd::Corrupt(WalError::Corrupt {
                lsn: chain.blame(*name_lsn),
                fault,
                segment: name.clone(),
                offset: offset as u64,
            })
        };
        let Some(bytes) = read_segment(storage, copy, name)? else {
            end = corrupt(&chain, Fault::Segment, 0);
            break;
        };
        let scan = scan_segment(&bytes);
        let mut info = SegInfo {
            name: name.clone(),
            first_lsn: *name_lsn,
            file_len: bytes.len() as u64,
            valid_len: 0,
            last: None,
            max_ts: UnixMillis(0),
            intact: false,
        };
        match scan.header {
            Ok(h) if h.first_lsn == *name_lsn => {}
            Ok(_) => {
                end = corrupt(&chain, Fault::Segment, 0);
                break;
            }
            Err(_) => {
                let torn = is_last
                    && (matches!(scan.end, ScanEnd::Incomplete { .. })
                        || matches!(scan.end, ScanEnd::Bad { torn_shaped: true, .. }));
                end = if torn {
                    segments.push(info);
                    CopyEnd::Torn { offset: 0, lsn: chain.blame(*name_lsn) }
                } else {
                    corrupt(&chain, Fault::Segment, 0)
                };
                break;
            }
        }
        if let Err(f) = chain.start_segment(*name_lsn) {
            end = corrupt(&chain, f, 0);
            break;
        }
        info.valid_len = SEGMENT_HEADER_LEN as u64;
        let mut fault = None;
        for (offset, rec) in &scan.records {
            match chain.accept(rec, Depth::Links) {
                Ok(cp) => {
                    if cp.is_some() {
                        last_checkpoint = Some(CheckpointLoc { seg_index: i, lsn: rec.lsn, timestamp: rec.timestamp });
                    }
                    info.last = Some((rec.lsn, rec.hash));
                    info.max_ts = info.max_ts.max(rec.timestamp);
                    info.valid_len = (*offset + rec.hashed.len() + 32 + 4) as u64;
                }
                Err(f) => {
                    fault = Some(corrupt(&chain, f, *offset));
                    break;
                }
            }
        }
        if let Some(f) = fault {
            segments.push(info);
            end = f;
            break;
        }
        match scan.end {
            ScanEnd::Clean => info.intact = info.valid_len == info.file_len,
            ScanEnd::Incomplete { offset } | ScanEnd::Bad { offset, torn_shaped: true, .. } if is_last => {
                end = CopyEnd::Torn { offset: offset as u64, lsn: chain.blame(*name_lsn) };
            }
            ScanEnd::Incomplete { offset } => end = corrupt(&chain, Fault::Truncated, offset),
            ScanEnd::Bad { offset, error: FrameError::BadCrc, .. } => end = corrupt(&chain, Fault::Crc, offset),
            ScanEnd::Bad { offset, .. } => end = corrupt(&chain, Fault::Frame, offset),
        }
        segments.push(info);
        if end != CopyEnd::Clean {
            break;
        }
    }
    if end == CopyEnd::Clean
        && let Err(lsn) = chain.check_anchor()
    {
        end = CopyEnd::Corrupt(WalError::Corrupt {
            lsn,
            fault: Fault::RetentionAnchor,
            segment: segments.first().map(|s| s.name.clone()).unwrap_or_default(),
            offset: 0,
        });
    }
    Ok(CopyScan {
        segments,
        stray,
        head: chain.head_lsn.zip(chain.head),
        end,
        last_checkpoint,
        log_id: chain.log_id,
        retention_cut: chain.retention_cut,
        last_sealed: chain.last_sealed,
        records_since_checkpoint: chain.since_checkpoint,
    })
}

/// The hash of record `lsn` in a scanned copy, reading its segment again.
pub(crate) fn hash_at(
    storage: &dyn Storage,
    copy: CopyId,
    scan: &CopyScan,
    lsn: Lsn,
) -> Result<Option<RecordHash>, WalError> {
    let Some(seg) = scan.segments.iter().rev().find(|s| s.first_lsn <= lsn) else { return Ok(None) };
    let Some(bytes) = read_segment(storage, copy, &seg.name)? else { return Ok(None) };
    Ok(scan_segment(&bytes).records.iter().find(|(_, r)| r.lsn == lsn).map(|(_, r)| r.hash))
}

/// Re-hashes every record of the copy (the check the cheap scan skipped) and
/// returns the last checkpoint, decoded, with its Lsn.
///
/// Every record, not only those after the last checkpoint: the kernel folds
/// the whole log at boot, and a record before a checkpoint rewritten with a
/// fixed CRC but its stored hash kept still links, so only its own hash shows
/// the edit (CT-WAL-12). What is folded must have been re-hashed.
pub(crate) fn rehash_from_checkpoint(
    storage: &dyn Storage,
    copy: CopyId,
    scan: &CopyScan,
) -> Result<Option<(Lsn, Checkpoint)>, WalError> {
    let from_lsn = scan.last_checkpoint.map_or(Lsn(0), |c| c.lsn);
    let mut found = None;
    for seg in &scan.segments {
        let Some(bytes) = read_segment(storage, copy, &seg.name)? else {
            return Err(WalError::Corrupt {
                lsn: seg.first_lsn,
                fault: Fault::Segment,
                segment: seg.name.clone(),
                offset: 0,
            });
        };
        let valid = bytes.get(..usize::try_from(seg.valid_len).unwrap_or(usize::MAX)).unwrap_or(&bytes);
        for (offset, rec) in scan_segment(valid).records {
            if !rec.hash_is_valid() {
                return Err(WalError::Corrupt {
                    lsn: rec.lsn,
                    fault: Fault::Chain,
                    segment: seg.name.clone(),
                    offset: offset as u64,
                });
            }
            if rec.lsn == from_lsn {
                found = Checkpoint::decode(rec.payload).map(|c| (rec.lsn, c));
            }
        }
    }
    Ok(found)
}
