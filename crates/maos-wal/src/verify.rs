//! Full offline verification, for auditors: every CRC, every hash, every link, every
//! checkpoint signature, the retention anchor. Needs only public keys.

use crate::chain::{Chain, Depth};
use crate::error::{Fault, WalError};
use crate::frame::{FrameError, ScanEnd, scan_segment};
use crate::storage::{FsStorage, Storage};
use crate::types::{CopyId, LogId, Lsn, RecordHash};
use maos_crypto::VerifyingKey;
use std::path::Path;

/// Largest segment file any reader loads. A segment is rolled once it passes its
/// target size (at most [`crate::SEGMENT_BYTES_TARGET_MAX`]), so it can exceed the target
/// by one commit group at most; anything larger is not ours, and loading it could
/// exhaust memory.
pub const SEGMENT_FILE_BYTES_MAX: u64 = crate::SEGMENT_BYTES_TARGET_MAX + 2 * crate::APPEND_QUEUE_BYTES_MAX as u64;

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files checked.
    pub segments: usize,
    /// Records checked.
    pub records: u64,
    /// The first Lsn present (above 1 after a retention cut).
    pub first_lsn: Lsn,
    /// The last Lsn.
    pub last_lsn: Lsn,
    /// Hash of the last record.
    pub head_hash: RecordHash,
    /// The log's id.
    pub log_id: Option<LogId>,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
    /// The last checkpoint's Lsn.
    pub last_checkpoint: Option<Lsn>,
    /// Records after the last checkpoint: intact, but vouched for by no signature yet.
    pub unsigned_tail_records: u64,
    /// Most records between two consecutive checkpoints (cadence check, CT-WAL-10).
    pub max_records_between_checkpoints: u64,
    /// The retention cut the log starts after, anchored by a retention record.
    pub retention_cut: Option<Lsn>,
    /// Records whose payload is sealed.
    pub sealed_records: u64,
}

/// Verifies a log directory (for example a copy taken to another machine) with the
/// checkpoint signer's public key.
///
/// # Errors
/// [`WalError::Corrupt`] naming the first bad Lsn and the [`Fault`], [`WalError::Empty`]
/// if there are no segments, [`WalError::Io`] if the directory cannot be read.
pub fn verify_log(dir: &Path, key: &VerifyingKey) -> Result<VerifyReport, WalError> {
    let storage = FsStorage::open_existing(dir).map_err(|e| WalError::io(CopyId::Primary, "open", &e))?;
    verify_storage(&storage, std::slice::from_ref(key))
}

/// Verifies a log in any [`Storage`], trusting checkpoints signed by any of `keys`
/// (several after a key rotation).
///
/// # Errors
/// As [`verify_log`].
pub fn verify_storage(storage: &dyn Storage, keys: &[VerifyingKey]) -> Result<VerifyReport, WalError> {
    let segments = crate::recovery::list_segments(storage, CopyId::Primary)?;
    let Some(last_index) = segments.len().checked_sub(1) else { return Err(WalError::Empty) };
    let mut chain = Chain::default();
    let mut first_lsn = None;
    for (i, (name_lsn, name)) in segments.iter().enumerate() {
        let is_last = i == last_index;
        let corrupt = |chain: &Chain, fault: Fault, offset: usize| WalError::Corrupt {
            lsn: chain.blame(*name_lsn),
            fault,
            segment: name.clone(),
            offset: offset as u64,
        };
        let bytes = crate::recovery::read_segment(storage, CopyId::Primary, name)?
            .ok_or_else(|| corrupt(&chain, Fault::Segment, 0))?;
        let scan = scan_segment(&bytes);
        match scan.header {
            Ok(h) if h.first_lsn == *name_lsn => {}
            Ok(_) => return Err(corrupt(&chain, Fault::Segment, 0)),
            Err(_) if is_last && matches!(scan.end, ScanEnd::Incomplete { .. }) => {
                return Err(corrupt(&chain, Fault::TornTail, 0));
            }
            Err(_) => return Err(corrupt(&chain, Fault::Segment, 0)),
        }
        chain.start_segment(*name_lsn).map_err(|f| corrupt(&chain, f, 0))?;
        for (offset, rec) in &scan.records {
            let checkpoint = chain.accept(rec, Depth::Full).map_err(|f| corrupt(&chain, f, *offset))?;
            first_lsn.get_or_insert(rec.lsn);
            if let Some(c) = checkpoint {
                let key = keys.iter().find(|k| k.key_id() == c.key_id).ok_or_else(|| WalError::Corrupt {
                    lsn: rec.lsn,
                    fault: Fault::CheckpointKey,
                    segment: name.clone(),
                    offset: *offset as u64,
                })?;
                c.verify(key).map_err(|_| WalError::Corrupt {
                    lsn: rec.lsn,
                    fault: Fault::CheckpointSignature,
                    segment: name.clone(),
                    offset: *offset as u64,
                })?;
            }
        }
        match scan.end {
            ScanEnd::Clean => {}
            ScanEnd::Incomplete { offset } if is_last => return Err(corrupt(&chain, Fault::TornTail, offset)),
            ScanEnd::Incomplete { offset } => return Err(corrupt(&chain, Fault::Truncated, offset)),
            ScanEnd::Bad { offset, torn_shaped: true, .. } if is_last => {
                return Err(corrupt(&chain, Fault::TornTail, offset));
            }
            ScanEnd::Bad { offset, error: FrameError::BadCrc, .. } => return Err(corrupt(&chain, Fault::Crc, offset)),
            ScanEnd::Bad { offset, .. } => return Err(corrupt(&chain, Fault::Frame, offset)),
        }
    }
    let first_name = segments.first().map(|(_, n)| n.clone()).unwrap_or_default();
    chain.check_anchor().map_err(|lsn| WalError::Corrupt {
        lsn,
        fault: Fault::RetentionAnchor,
        segment: first_name.clone(),
        offset: 0,
    })?;
    let (Some(first_lsn), Some(last_lsn), Some(head_hash)) = (first_lsn, chain.head_lsn, chain.head) else {
        return Err(WalError::Empty);
    };
    Ok(VerifyReport {
        segments: segments.len(),
        records: chain.records,
        first_lsn,
        last_lsn,
        head_hash,
        log_id: chain.log_id,
        checkpoints: chain.checkpoints,
        last_checkpoint: chain.last_checkpoint.map(|(l, _)| l),
        unsigned_tail_records: chain.since_checkpoint,
        max_records_between_checkpoints: chain.max_gap.max(if chain.checkpoints > 0 {
            0
        } else {
            chain.since_checkpoint
        }),
        retention_cut: (first_lsn.0 > 1).then(|| Lsn(first_lsn.0 - 1)),
        sealed_records: chain.sealed,
    })
}

/// Where a rolling re-verification ([`sweep`]) goes on from: the next
/// segment to verify and the chain's state over the pass so far (links,
/// Lsn continuity, the first record and the retention anchor).
#[derive(Debug, Default)]
pub struct SweepCursor {
    next_segment: Option<Lsn>,
    chain: Chain,
    /// The copy this pass reads (set by [`crate::Wal::sweep_step`]).
    pub(crate) copy: Option<CopyId>,
}

impl SweepCursor {
    /// The last Lsn this pass verified.
    #[must_use]
    pub const fn last_lsn(&self) -> Option<Lsn> {
        self.chain.head_lsn
    }
}

/// What one [`sweep`] step verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepStep {
    /// Records verified in this step.
    pub records: u64,
    /// Whether the step reached the last segment: the cursor starts the next
    /// pass at the first segment again.
    pub wrapped: bool,
    /// Whether the record at the Lsn to match was seen (and matched).
    pub matched: bool,
}

/// One step of a rolling re-verification of one copy at full depth (CRC,
/// Lsn order, hash links, every record's SHA3-256, each checkpoint naming
/// its predecessor, the retention anchor at the end of a pass), continuing
/// the chain of the step before: at most `segments_max` whole segments (at
/// least one) from `cursor`, stopping after the last segment.
///
/// `must_match` is a record the caller knows is durable on this copy (the
/// writer's head when the step began: it is published only once every
/// healthy copy synced it): its hash must be that one, and a pass that ends
/// below its Lsn is a truncated log. So a history rewritten with every link
/// recomputed, or a log cut short, is still caught.
///
/// A torn or in-progress tail of the last segment is not damage (appends go
/// on while this runs); checkpoint signatures are not checked here (`maos
/// audit verify` does).
///
/// # Errors
/// [`WalError::Corrupt`] naming the Lsn and the [`Fault`] (the chain is
/// broken, a segment is oversized, the log is cut short); [`WalError::Io`]
/// when a segment cannot be read (the cursor starts over: a segment
/// retention just deleted is not damage, and the caller decides how many
/// failed reads in a row are).
pub fn sweep(
    storage: &dyn Storage,
    cursor: &mut SweepCursor,
    segments_max: usize,
    must_match: Option<(Lsn, RecordHash)>,
) -> Result<SweepStep, WalError> {
    let segments = crate::recovery::list_segments(storage, CopyId::Primary)?;
    let start = match cursor.next_segment.and_then(|next| segments.iter().position(|(l, _)| *l == next)) {
        Some(i) => i,
        None => {
            // A new pass, or the segment is gone (retention).
            cursor.chain = Chain::default();
            0
        }
    };
    let mut step = SweepStep { records: 0, wrapped: false, matched: false };
    let last_index = segments.len().saturating_sub(1);
    let result = sweep_segments(storage, cursor, &segments, start, last_index, segments_max, must_match, &mut step);
    if result.is_err() {
        *cursor = SweepCursor { copy: cursor.copy, ..SweepCursor::default() };
    }
    result.map(|()| step)
}

#[expect(clippy::too_many_arguments, reason = "one caller; the step's parts")]
fn sweep_segments(
    storage: &dyn Storage,
    cursor: &mut SweepCursor,
    segments: &[(Lsn, String)],
    start: usize,
    last_index: usize,
    segments_max: usize,
    must_match: Option<(Lsn, RecordHash)>,
    step: &mut SweepStep,
) -> Result<(), WalError> {
    for (done, (i, (name_lsn, name))) in segments.iter().enumerate().skip(start).enumerate() {
        let is_last = i == last_index;
        let chain = &mut cursor.chain;
        let corrupt = |chain: &Chain, fault: Fault, offset: usize| WalError::Corrupt {
            lsn: chain.blame(*name_lsn),
            fault,
            segment: name.clone(),
            offset: offset as u64,
        };
        // `None`: larger than any segment of ours (see `verify_storage`).
        let bytes = crate::recovery::read_segment(storage, CopyId::Primary, name)?
            .ok_or_else(|| corrupt(chain, Fault::Segment, 0))?;
        let scan = scan_segment(&bytes);
        match scan.header {
            Ok(h) if h.first_lsn == *name_lsn => {}
            Err(_) if is_last && matches!(scan.end, ScanEnd::Incomplete { .. }) => {}
            _ => return Err(corrupt(chain, Fault::Segment, 0)),
        }
        if scan.header.is_ok() {
            chain.start_segment(*name_lsn).map_err(|f| corrupt(chain, f, 0))?;
        }
        for (offset, rec) in &scan.records {
            chain.accept(rec, Depth::Full).map_err(|f| corrupt(chain, f, *offset))?;
            if let Some((lsn, hash)) = must_match
                && rec.lsn == lsn
            {
                if rec.hash != hash {
                    return Err(WalError::Corrupt {
                        lsn,
                        fault: Fault::Chain,
                        segment: name.clone(),
                        offset: *offset as u64,
                    });
                }
                step.matched = true;
            }
            step.records = step.records.saturating_add(1);
        }
        // As every reader: a torn or in-progress tail of the last segment is not damage.
        if let Some((fault, offset)) = crate::reader::end_error(scan.end, is_last) {
            return Err(corrupt(chain, fault, offset));
        }
        cursor.next_segment = segments.get(i + 1).map(|(l, _)| *l);
        if is_last {
            break;
        }
        if done.saturating_add(1) >= segments_max {
            return Ok(());
        }
    }
    // The pass is over: the log starts where a retention record says it
    // may, and it reaches the head the writer published.
    let first_name = segments.first().map(|(_, n)| n.clone()).unwrap_or_default();
    cursor.chain.check_anchor().map_err(|lsn| WalError::Corrupt {
        lsn,
        fault: Fault::RetentionAnchor,
        segment: first_name,
        offset: 0,
    })?;
    if let Some((lsn, _)) = must_match
        && cursor.chain.head_lsn.is_none_or(|last| last < lsn)
    {
        let segment = segments.last().map(|(_, n)| n.clone()).unwrap_or_default();
        return Err(WalError::Corrupt { lsn, fault: Fault::Truncated, segment, offset: 0 });
    }
    step.wrapped = true;
    *cursor = SweepCursor { copy: cursor.copy, ..SweepCursor::default() };
    Ok(())
}
