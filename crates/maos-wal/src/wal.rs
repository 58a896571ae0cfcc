//! The log: open and recover, group-committed appends to one or two copies, signed
//! checkpoints, retention, health.

use crate::error::{Fault, WalError};
use crate::frame::{
    FLAG_SEALED, FrameFields, PAYLOAD_BYTES_MAX, SEGMENT_HEADER_LEN, encode_frame, encode_segment_header,
    mark_group_end, segment_name,
};
use crate::payload::{Checkpoint, Genesis, RetentionDeletion};
use crate::reader::LogReader;
use crate::recovery::{CopyEnd, CopyScan, hash_at, read_segment, rehash_from_checkpoint, scan_copy};
use crate::storage::{FsStorage, SegmentFile, Storage};
use crate::types::{
    CheckpointCadence, Clock, CopyId, LegalHold, LogId, Lsn, RecordHash, RecordKind, StateDigest, StateDigestSource,
    SystemClock, encryption_required, retention_days,
};
use maos_crypto::{SealingKey, SigningKey, VerifyingKey};
use maos_model::{Profile, UnixMillis};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Records waiting for the next commit group. Past it, appenders block until the
/// group in flight is durable (backpressure): a flood of appends cannot grow memory
/// without bound while the disk is slow.
pub const APPEND_QUEUE_RECORDS_MAX: usize = 4096;
/// Payload bytes waiting for the next commit group (same reason).
pub const APPEND_QUEUE_BYTES_MAX: usize = 32 << 20;
/// Default size at which a segment is closed and a new one started.
pub const SEGMENT_BYTES_TARGET_DEFAULT: u64 = 16 << 20;
/// Smallest configurable segment target (tests use small segments).
pub const SEGMENT_BYTES_TARGET_MIN: u64 = 4 << 10;
/// Largest configurable segment target; bounds what a reader loads at once.
pub const SEGMENT_BYTES_TARGET_MAX: u64 = 1 << 30;
/// Critical events kept for [`Wal::health`]; older ones are dropped (they are also
/// in the tracing log). Bounds memory if a disk keeps failing.
pub const HEALTH_EVENTS_MAX: usize = 64;
/// Calls to `write` for one commit group on one copy. A device that accepts a
/// byte at a time would otherwise hold every appender forever.
pub const WRITE_CALLS_MAX: usize = 4096;
/// Largest checkpoint cadence in records; the spec asks for 100.
pub const CHECKPOINT_RECORDS_MAX: u64 = 100_000;

const _: () = assert!(APPEND_QUEUE_BYTES_MAX >= crate::frame::RECORD_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_TARGET_MIN >= SEGMENT_HEADER_LEN as u64);

/// Proof that a record is durable on every healthy copy. Only the WAL constructs it;
/// the Commit Layer asks for one before it executes an effect (Rule 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    lsn: Lsn,
    hash: RecordHash,
    timestamp: UnixMillis,
}

impl Logged {
    /// The record's Lsn.
    #[must_use]
    pub const fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The record's hash.
    #[must_use]
    pub const fn hash(&self) -> RecordHash {
        self.hash
    }

    /// The record's timestamp.
    #[must_use]
    pub const fn timestamp(&self) -> UnixMillis {
        self.timestamp
    }
}

enum CopySpec {
    Dir(PathBuf),
    Storage(Arc<dyn Storage>),
}

impl fmt::Debug for CopySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "Dir({})", d.display()),
            Self::Storage(s) => write!(f, "Storage({s:?})"),
        }
    }
}

/// How to open a [`Wal`]. Start from [`WalConfig::new`] (a directory) or
/// [`WalConfig::with_storage`], then add what you need.
pub struct WalConfig {
    profile: Profile,
    primary: CopySpec,
    secondary: Option<CopySpec>,
    sealing_key: Option<Arc<SealingKey>>,
    signer: Option<(Arc<SigningKey>, Arc<dyn StateDigestSource>)>,
    trusted_keys: Vec<VerifyingKey>,
    clock: Arc<dyn Clock>,
    cadence: CheckpointCadence,
    segment_bytes_target: u64,
    legal_hold: LegalHold,
}

impl fmt::Debug for WalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalConfig")
            .field("profile", &self.profile)
            .field("primary", &self.primary)
            .field("secondary", &self.secondary)
            .field("sealing_key", &self.sealing_key.as_ref().map(|_| "<redacted>"))
            .field("signer", &self.signer.as_ref().map(|(k, _)| k.key_id()))
            .field("trusted_keys", &self.trusted_keys)
            .field("cadence", &self.cadence)
            .field("segment_bytes_target", &self.segment_bytes_target)
            .field("legal_hold", &self.legal_hold)
            .finish_non_exhaustive()
    }
}

impl WalConfig {
    /// A log in directory `dir` (created with mode 0700 if missing), system clock,
    /// default cadence and segment size, no secondary, no encryption, no signer.
    #[must_use]
    pub fn new(profile: Profile, dir: impl Into<PathBuf>) -> Self {
        Self::from_spec(profile, CopySpec::Dir(dir.into()))
    }

    /// A log in any [`Storage`] (for example [`crate::sim::MemStorage`]).
    #[must_use]
    pub fn with_storage(profile: Profile, storage: Arc<dyn Storage>) -> Self {
        Self::from_spec(profile, CopySpec::Storage(storage))
    }

    fn from_spec(profile: Profile, primary: CopySpec) -> Self {
        Self {
            profile,
            primary,
            secondary: None,
            sealing_key: None,
            signer: None,
            trusted_keys: Vec::new(),
            clock: Arc::new(SystemClock),
            cadence: CheckpointCadence::default(),
            segment_bytes_target: SEGMENT_BYTES_TARGET_DEFAULT,
            legal_hold: LegalHold::Released,
        }
    }

    /// Writes a second copy to `dir` (spec §38.3); appends are acknowledged only when
    /// both copies are durable.
    #[must_use]
    pub fn secondary_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.secondary = Some(CopySpec::Dir(dir.into()));
        self
    }

    /// Writes a second copy to `storage`.
    #[must_use]
    pub fn secondary_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.secondary = Some(CopySpec::Storage(storage));
        self
    }

    /// Seals caller payloads with AES-256-GCM (required for Hardened and Isolated).
    #[must_use]
    pub fn sealing_key(mut self, key: Arc<SealingKey>) -> Self {
        self.sealing_key = Some(key);
        self
    }

    /// Signs checkpoints with `key`; automatic checkpoints take the kernel-state digest
    /// from `state`. The key's public half is also trusted on open.
    #[must_use]
    pub fn signer(mut self, key: Arc<SigningKey>, state: Arc<dyn StateDigestSource>) -> Self {
        self.signer = Some((key, state));
        self
    }

    /// Also trusts checkpoints signed by `key` (for example a key rotated out).
    #[must_use]
    pub fn trust_key(mut self, key: VerifyingKey) -> Self {
        self.trusted_keys.push(key);
        self
    }

    /// The clock for timestamps, the checkpoint interval and retention.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// When automatic checkpoints are written.
    #[must_use]
    pub const fn checkpoint_cadence(mut self, cadence: CheckpointCadence) -> Self {
        self.cadence = cadence;
        self
    }

    /// Segment size target in bytes.
    #[must_use]
    pub const fn segment_bytes_target(mut self, bytes: u64) -> Self {
        self.segment_bytes_target = bytes;
        self
    }

    /// Suspends retention deletion.
    #[must_use]
    pub const fn legal_hold(mut self, hold: LegalHold) -> Self {
        self.legal_hold = hold;
        self
    }
}

/// Whether the last checkpoint's signature was checked on open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Verified with a trusted key.
    Verified,
    /// The log has no checkpoint yet.
    NoCheckpoint,
    /// No signer or trusted key is configured, so nothing could be checked.
    NoKey,
}

/// A torn tail cut off on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The copy it was found in.
    pub copy: CopyId,
    /// The segment file.
    pub segment: String,
    /// Where the valid data ends (0: the whole file, a torn segment creation, was removed).
    pub offset: u64,
    /// Bytes dropped.
    pub bytes_dropped: u64,
    /// The Lsn the torn record would have had (never acknowledged).
    pub lsn: Lsn,
}

/// A copy rebuilt from the other on open (spec §38.3, CT-WAL-08).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRepair {
    /// The copy rewritten.
    pub target: CopyId,
    /// The copy it was rebuilt from (the longer valid chain).
    pub source: CopyId,
    /// The target's valid chain length before the repair.
    pub target_head_before: u64,
    /// The source's chain length.
    pub source_head: u64,
    /// What was wrong with the target, if it was damaged rather than behind.
    pub target_fault: Option<String>,
    /// Segment files rewritten.
    pub segments_rewritten: Vec<String>,
    /// Segment files removed.
    pub segments_removed: Vec<String>,
}

/// What opening the log found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// A new log was created (genesis written).
    pub created: bool,
    /// The log's id.
    pub log_id: LogId,
    /// The first Lsn present (above 1 after a retention cut).
    pub first_lsn: Lsn,
    /// The last Lsn.
    pub head_lsn: Lsn,
    /// The last record's hash.
    pub head_hash: RecordHash,
    /// Which copy held the longer valid chain and was used.
    pub source_copy: CopyId,
    /// A torn tail cut off the source copy.
    pub torn_tail: Option<TornTail>,
    /// Copies repaired.
    pub repairs: Vec<CopyRepair>,
    /// Copies that could not be opened or repaired (the log runs degraded).
    pub failed_copies: Vec<(CopyId, String)>,
    /// The last checkpoint.
    pub last_checkpoint: Option<Lsn>,
    /// Whether its signature was verified.
    pub checkpoint_signature: SignatureCheck,
    /// Segments left by an interrupted retention deletion and removed now.
    pub retention_finished: Vec<String>,
}

/// Overall state of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Every configured copy is written.
    Healthy,
    /// One copy failed; appends continue on the other (a critical event was raised).
    Degraded,
    /// No copy can be written: every append fails with [`WalError::CommitFreeze`].
    CommitFreeze,
}

/// State of one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyHealth {
    /// Which copy.
    pub copy: CopyId,
    /// Still written to.
    pub healthy: bool,
    /// Why it failed.
    pub failure: Option<String>,
}

/// Kinds of critical event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriticalEventKind {
    /// A copy failed and is no longer written (CT-WAL-06).
    CopyFailed,
    /// Every copy failed: commit freeze (CT-WAL-07).
    CommitFreeze,
    /// An automatic checkpoint could not be signed.
    CheckpointFailed,
}

/// An event an administrator must see (also logged with `tracing::error!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalEvent {
    /// Increasing number, for [`Wal::critical_events_since`].
    pub seq: u64,
    /// When.
    pub at: UnixMillis,
    /// What.
    pub kind: CriticalEventKind,
    /// The copy concerned.
    pub copy: Option<CopyId>,
    /// Details (an I/O error message; never payload bytes or keys).
    pub detail: String,
}

/// The log's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Overall state.
    pub state: HealthState,
    /// Each configured copy.
    pub copies: Vec<CopyHealth>,
    /// The most recent critical events (at most [`HEALTH_EVENTS_MAX`]).
    pub events: Vec<CriticalEvent>,
}

/// What a retention pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// Segment files deleted.
    pub deleted_segments: Vec<String>,
    /// The deleted Lsn range.
    pub deleted: Option<(Lsn, Lsn)>,
    /// The retention-deletion record written.
    pub record: Option<Logged>,
    /// Deletions that failed (retried on the next open).
    pub errors: Vec<String>,
}

#[derive(Debug)]
struct HealthInner {
    copies: Vec<CopyHealth>,
    frozen: bool,
    events: VecDeque<CriticalEvent>,
    next_seq: u64,
}

#[derive(Debug)]
struct Health {
    inner: Mutex<HealthInner>,
    clock: Arc<dyn Clock>,
}

impl Health {
    fn lock(&self) -> MutexGuard<'_, HealthInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn raise(&self, kind: CriticalEventKind, copy: Option<CopyId>, detail: String) {
        let copy_name = copy.map_or("none", |c| if c == CopyId::Primary { "primary" } else { "secondary" });
        match kind {
            CriticalEventKind::CopyFailed => {
                tracing::error!(copy = copy_name, detail = %detail, "CRITICAL: wal copy failed, continuing on the other copy");
            }
            CriticalEventKind::CommitFreeze => {
                tracing::error!(detail = %detail, "CRITICAL: every wal copy failed, commit freeze");
            }
            CriticalEventKind::CheckpointFailed => {
                tracing::error!(detail = %detail, "CRITICAL: wal checkpoint could not be signed");
            }
        }
        let at = self.clock.now();
        let mut h = self.lock();
        match kind {
            CriticalEventKind::CopyFailed => {
                if let Some(c) = h.copies.iter_mut().find(|c| Some(c.copy) == copy) {
                    c.healthy = false;
                    c.failure = Some(detail.clone());
                }
            }
            CriticalEventKind::CommitFreeze => h.frozen = true,
            CriticalEventKind::CheckpointFailed => {}
        }
        let seq = h.next_seq;
        h.next_seq += 1;
        if h.events.len() >= HEALTH_EVENTS_MAX {
            h.events.pop_front();
        }
        h.events.push_back(CriticalEvent { seq, at, kind, copy, detail });
    }
}

struct CopyWriter {
    id: CopyId,
    storage: Arc<dyn Storage>,
    file: Option<Box<dyn SegmentFile>>,
    healthy: bool,
}

#[derive(Debug, Clone)]
struct SegMeta {
    name: String,
    first_lsn: Lsn,
    last: Option<(Lsn, RecordHash)>,
    max_ts: UnixMillis,
}

struct Settings {
    profile: Profile,
    clock: Arc<dyn Clock>,
    sealing_key: Option<Arc<SealingKey>>,
    signer: Option<(Arc<SigningKey>, Arc<dyn StateDigestSource>)>,
    cadence: CheckpointCadence,
    segment_bytes_target: u64,
    legal_hold: LegalHold,
}

enum Op {
    Caller {
        kind: RecordKind,
        payload: Vec<u8>,
    },
    Internal {
        kind: RecordKind,
        payload: Vec<u8>,
    },
    /// `None`: take the digest from the configured source.
    Checkpoint(Option<StateDigest>),
}

/// The writer's state. Only the current leader (or an exclusive operation) touches it.
/// A long-lived thread that writes and syncs the second copy while the caller
/// writes the first, so the two `fdatasync`s overlap without spawning a thread
/// per commit group (which cost more than the sync on a busy kernel).
struct Mirror {
    jobs: std::sync::mpsc::Sender<(Box<dyn SegmentFile>, Vec<u8>)>,
    done: std::sync::mpsc::Receiver<(Box<dyn SegmentFile>, io::Result<()>)>,
}

impl Mirror {
    fn start() -> io::Result<Self> {
        let (jobs, job_rx) = std::sync::mpsc::channel::<(Box<dyn SegmentFile>, Vec<u8>)>();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("maos-wal-mirror".into()).spawn(move || {
            while let Ok((mut file, buf)) = job_rx.recv() {
                let result = write_and_sync(file.as_mut(), &buf);
                if done_tx.send((file, result)).is_err() {
                    return;
                }
            }
        })?;
        Ok(Self { jobs, done })
    }

    /// Writes `buf` to `b` on the mirror thread while `write_a` runs here.
    fn write_pair(
        mirror: &mut Option<Self>,
        a: &mut CopyWriter,
        b: &mut CopyWriter,
        buf: &[u8],
    ) -> (io::Result<()>, io::Result<()>) {
        let Some(file) = b.file.take() else {
            return (copy_write(a, buf), Err(io::Error::other("no open segment")));
        };
        if mirror.is_none() {
            *mirror = Self::start().ok();
        }
        let Some(m) = mirror.as_ref() else {
            // No thread: write both here, one after the other.
            b.file = Some(file);
            return (copy_write(a, buf), copy_write(b, buf));
        };
        if let Err(std::sync::mpsc::SendError((file, _))) = m.jobs.send((file, buf.to_vec())) {
            *mirror = None;
            b.file = Some(file);
            return (copy_write(a, buf), copy_write(b, buf));
        }
        let ra = copy_write(a, buf);
        let rb = match m.done.recv() {
            Ok((file, result)) => {
                b.file = Some(file);
                result
            }
            Err(_) => {
                *mirror = None;
                Err(io::Error::other("the mirror writer thread stopped"))
            }
        };
        (ra, rb)
    }
}

struct Writer {
    mirror: Option<Mirror>,
    copies: Vec<CopyWriter>,
    next_lsn: Lsn,
    head_hash: RecordHash,
    // INVARIANT: the last entry is the segment appended to; every healthy copy holds
    // byte-identical files for every entry.
    segments: Vec<SegMeta>,
    segment_len: u64,
    log_id: LogId,
    records_since_checkpoint: u64,
    last_checkpoint: Option<Lsn>,
    last_checkpoint_time: UnixMillis,
    frozen: Option<String>,
}

/// The AAD sealed payloads are bound to: a label, the Lsn, the kind and the timestamp.
pub(crate) fn seal_aad(lsn: Lsn, kind: RecordKind, timestamp: UnixMillis) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40);
    aad.extend_from_slice(b"maos/v1/wal-record\0");
    aad.extend_from_slice(&lsn.0.to_le_bytes());
    aad.extend_from_slice(&kind.0.to_le_bytes());
    aad.extend_from_slice(&timestamp.0.to_le_bytes());
    aad
}

fn write_and_sync(file: &mut dyn SegmentFile, buf: &[u8]) -> io::Result<()> {
    let mut rest = buf;
    let mut calls = 0usize;
    while !rest.is_empty() {
        calls += 1;
        if calls > WRITE_CALLS_MAX {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "device keeps accepting too few bytes"));
        }
        match file.append(rest) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write accepted no bytes")),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.sync()
}

fn copy_write(c: &mut CopyWriter, buf: &[u8]) -> io::Result<()> {
    let file = c.file.as_mut().ok_or_else(|| io::Error::other("no open segment"))?;
    write_and_sync(file.as_mut(), buf)
}

impl Writer {
    fn healthy_count(&self) -> usize {
        self.copies.iter().filter(|c| c.healthy).count()
    }

    fn fail_copy(&mut self, index: usize, op: &str, err: &io::Error, health: &Health) {
        if let Some(c) = self.copies.get_mut(index) {
            c.healthy = false;
            c.file = None;
            health.raise(CriticalEventKind::CopyFailed, Some(c.id), format!("{op}: {err}"));
        }
    }

    fn freeze(&mut self, cause: String, health: &Health) {
        if self.frozen.is_none() {
            health.raise(CriticalEventKind::CommitFreeze, None, cause.clone());
            self.frozen = Some(cause);
        }
    }

    /// Starts a new segment on every healthy copy: header, sync, directory sync.
    fn roll(&mut self, first_lsn: Lsn, health: &Health) {
        let name = segment_name(first_lsn);
        let header = encode_segment_header(first_lsn);
        for i in 0..self.copies.len() {
            let Some(c) = self.copies.get_mut(i) else { continue };
            if !c.healthy {
                continue;
            }
            let result = c.storage.create(&name).and_then(|mut f| {
                write_and_sync(f.as_mut(), &header)?;
                c.storage.sync_dir()?;
                Ok(f)
            });
            match result {
                Ok(f) => c.file = Some(f),
                Err(e) => self.fail_copy(i, "create segment", &e, health),
            }
        }
        self.segments.push(SegMeta { name, first_lsn, last: None, max_ts: UnixMillis(0) });
        self.segment_len = SEGMENT_HEADER_LEN as u64;
    }

    /// Writes `buf` to every healthy copy (in parallel when there are two) and syncs.
    fn write_copies(&mut self, buf: &[u8], health: &Health) {
        let results: Vec<(usize, io::Result<()>)> = {
            let mirror = &mut self.mirror;
            let mut targets: Vec<(usize, &mut CopyWriter)> =
                self.copies.iter_mut().enumerate().filter(|(_, c)| c.healthy).collect();
            match targets.as_mut_slice() {
                [(ia, a), (ib, b)] => {
                    let (ra, rb) = Mirror::write_pair(mirror, a, b, buf);
                    vec![(*ia, ra), (*ib, rb)]
                }
                _ => targets.into_iter().map(|(i, c)| (i, copy_write(c, buf))).collect(),
            }
        };
        for (i, r) in results {
            if let Err(e) = r {
                self.fail_copy(i, "append", &e, health);
            }
        }
    }

    fn checkpoint_due(&self, settings: &Settings, since: u64, now: UnixMillis) -> bool {
        since >= settings.cadence.records_max
            || (since > 0 && now.saturating_since(self.last_checkpoint_time) >= settings.cadence.interval_ms)
    }

    /// Encodes, writes and syncs one commit group. Returns one result per op.
    fn commit(&mut self, ops: Vec<Op>, settings: &Settings, health: &Health) -> Vec<Result<Logged, WalError>> {
        self.commit_group(ops, settings, health, false)
    }

    /// [`Self::commit`]; an `atomic` group is written whole or not at all (an
    /// op that cannot be encoded fails every op and nothing is written) and
    /// gets no automatic checkpoint between its records.
    fn commit_group(
        &mut self,
        ops: Vec<Op>,
        settings: &Settings,
        health: &Health,
        atomic: bool,
    ) -> Vec<Result<Logged, WalError>> {
        if let Some(cause) = &self.frozen {
            return ops.iter().map(|_| Err(WalError::CommitFreeze { cause: cause.clone() })).collect();
        }
        let now = settings.clock.now();
        let mut buf = Vec::new();
        let mut next = self.next_lsn;
        let mut head = self.head_hash;
        let mut since = self.records_since_checkpoint;
        let mut last_cp = (self.last_checkpoint, self.last_checkpoint_time);
        let mut results: Vec<Result<Logged, WalError>> = Vec::with_capacity(ops.len());
        // The last frame's start and the result it belongs to (None: an automatic checkpoint).
        let mut last_frame: Option<(usize, Option<usize>)> = None;
        let auto = settings.signer.is_some() && !atomic;
        let count = ops.len();
        for op in ops {
            let start = buf.len();
            let (kind, flags, stored, is_checkpoint) = match op {
                Op::Caller { kind, payload } => match &settings.sealing_key {
                    Some(key) => match key.seal(&seal_aad(next, kind, now), &payload) {
                        Ok(sealed) => (kind, FLAG_SEALED, sealed, false),
                        Err(e) => {
                            results.push(Err(WalError::crypto(&e)));
                            continue;
                        }
                    },
                    None => (kind, 0, payload, false),
                },
                Op::Internal { kind, payload } => (kind, 0, payload, false),
                Op::Checkpoint(digest) => match self.sign_checkpoint(settings, digest, next, head, now) {
                    Ok(payload) => (RecordKind::CHECKPOINT, 0, payload, true),
                    Err(e) => {
                        results.push(Err(e));
                        continue;
                    }
                },
            };
            let lsn = next;
            head = encode_frame(
                &mut buf,
                &FrameFields { lsn, kind, flags, timestamp: now, payload: &stored, prev_hash: head },
            );
            next = Lsn(next.0 + 1);
            last_frame = Some((start, Some(results.len())));
            results.push(Ok(Logged { lsn, hash: head, timestamp: now }));
            if is_checkpoint {
                since = 0;
                last_cp = (Some(lsn), now);
            } else {
                since += 1;
            }
            if auto
                && since >= settings.cadence.records_max
                && let Some(start) = self.auto_checkpoint(settings, &mut buf, &mut next, &mut head, now, health)
            {
                last_frame = Some((start, None));
                since = 0;
                last_cp = (Some(Lsn(next.0 - 1)), now);
            }
        }
        if atomic && let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            // Nothing has reached a file or the writer's state yet.
            let e = e.clone();
            return (0..count).map(|_| Err(e.clone())).collect();
        }
        if auto
            && since > 0
            && now.saturating_since(last_cp.1) >= settings.cadence.interval_ms
            && let Some(start) = self.auto_checkpoint(settings, &mut buf, &mut next, &mut head, now, health)
        {
            last_frame = Some((start, None));
            since = 0;
            last_cp = (Some(Lsn(next.0 - 1)), now);
        }
        let Some((start, owner)) = last_frame else { return results };
        if let Some(h) = mark_group_end(&mut buf, start) {
            head = h;
            if let Some(Some(Ok(logged))) = owner.map(|i| results.get_mut(i)) {
                logged.hash = h;
            }
        }
        let first_lsn = self.next_lsn;
        let frame_bytes = buf.len() as u64;
        if self.segments.is_empty()
            || (self.segment_len > SEGMENT_HEADER_LEN as u64
                && self.segment_len.saturating_add(frame_bytes) > settings.segment_bytes_target)
        {
            self.roll(first_lsn, health);
        }
        if self.healthy_count() > 0 {
            self.write_copies(&buf, health);
        }
        if self.healthy_count() == 0 {
            let cause = health
                .lock()
                .copies
                .iter()
                .find_map(|c| c.failure.clone())
                .unwrap_or_else(|| "no wal copy is writable".to_owned());
            self.freeze(cause.clone(), health);
            return results
                .into_iter()
                .map(|r| r.and_then(|_| Err(WalError::CommitFreeze { cause: cause.clone() })))
                .collect();
        }
        self.segment_len += frame_bytes;
        if let Some(seg) = self.segments.last_mut() {
            seg.last = Some((Lsn(next.0 - 1), head));
            seg.max_ts = seg.max_ts.max(now);
        }
        self.next_lsn = next;
        self.head_hash = head;
        self.records_since_checkpoint = since;
        (self.last_checkpoint, self.last_checkpoint_time) = last_cp;
        results
    }

    fn sign_checkpoint(
        &self,
        settings: &Settings,
        digest: Option<StateDigest>,
        lsn: Lsn,
        head: RecordHash,
        now: UnixMillis,
    ) -> Result<Vec<u8>, WalError> {
        let (key, source) = settings.signer.as_ref().ok_or(WalError::NoSigner)?;
        let state = digest.unwrap_or_else(|| source.state_digest());
        let head_lsn = Lsn(lsn.0.saturating_sub(1));
        Checkpoint::sign(key, head_lsn, head, state, self.log_id, now)
            .map(|c| c.encode())
            .map_err(|e| WalError::crypto(&e))
    }

    /// Appends an automatic checkpoint frame; returns its start, or `None` if signing failed.
    fn auto_checkpoint(
        &self,
        settings: &Settings,
        buf: &mut Vec<u8>,
        next: &mut Lsn,
        head: &mut RecordHash,
        now: UnixMillis,
        health: &Health,
    ) -> Option<usize> {
        match self.sign_checkpoint(settings, None, *next, *head, now) {
            Ok(payload) => {
                let start = buf.len();
                *head = encode_frame(
                    buf,
                    &FrameFields {
                        lsn: *next,
                        kind: RecordKind::CHECKPOINT,
                        flags: 0,
                        timestamp: now,
                        payload: &payload,
                        prev_hash: *head,
                    },
                );
                *next = Lsn(next.0 + 1);
                Some(start)
            }
            Err(e) => {
                health.raise(CriticalEventKind::CheckpointFailed, None, e.to_string());
                None
            }
        }
    }

    fn retention(
        &mut self,
        settings: &Settings,
        health: &Health,
        snapshot: impl FnOnce(Lsn) -> Result<Vec<u8>, String>,
    ) -> Result<RetentionReport, WalError> {
        let mut report = RetentionReport::default();
        if settings.legal_hold == LegalHold::Active {
            return Ok(report);
        }
        let Some(checkpoint) = self.last_checkpoint else { return Ok(report) };
        let days = retention_days(settings.profile);
        let now = settings.clock.now();
        let cutoff = UnixMillis(now.0.saturating_sub(u64::from(days) * 86_400_000));
        let active = self.segments.len().saturating_sub(1);
        let eligible = self
            .segments
            .iter()
            .take(active)
            .take_while(|s| s.last.is_some_and(|(l, _)| l < checkpoint) && s.max_ts <= cutoff)
            .count();
        let (Some(first), Some(last)) =
            (self.segments.first(), eligible.checked_sub(1).and_then(|i| self.segments.get(i)))
        else {
            return Ok(report);
        };
        let Some((last_lsn, last_hash)) = last.last else { return Ok(report) };
        // INVARIANT: nothing else appends while the writer is held, so the
        // state the caller folds through the head is the state before the
        // snapshot's first chunk.
        let head = Lsn(self.next_lsn.0.saturating_sub(1));
        let state = snapshot(head).map_err(WalError::Snapshot)?;
        let digest = StateDigest(maos_crypto::sha3_256(&state).0);
        let mut ops: Vec<Op> = crate::snapshot::encode_chunks(&state)?
            .into_iter()
            .map(|payload| Op::Caller { kind: RecordKind::STATE_SNAPSHOT, payload })
            .collect();
        if settings.signer.is_some() {
            ops.push(Op::Checkpoint(Some(digest)));
        }
        let record = RetentionDeletion {
            first_lsn: first.first_lsn,
            last_lsn,
            last_hash,
            segments: u32::try_from(eligible).unwrap_or(u32::MAX),
            retention_days: days,
            cutoff,
        };
        ops.push(Op::Internal { kind: RecordKind::RETENTION_DELETION, payload: record.encode() });
        // One group: the snapshot, its checkpoint and the deletion record are
        // durable together or not at all, before any segment goes.
        let mut results = self.commit_group(ops, settings, health, true);
        let logged = results.pop().ok_or(WalError::Internal("retention record missing"))??;
        let first_chunk = match results.first() {
            Some(Ok(l)) => l.lsn,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(WalError::Internal("snapshot records missing")),
        };
        // Read the snapshot back as a fold will, before anything is deleted.
        self.read_back_snapshot(settings, first_chunk, &state)?;
        let doomed: Vec<SegMeta> = self.segments.drain(..eligible).collect();
        for c in self.copies.iter().filter(|c| c.healthy) {
            // Oldest first, and not past a failure: what is left stays one
            // contiguous log (a gap would be damage to every verifier).
            for s in &doomed {
                if let Err(e) = c.storage.remove(&s.name)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    report.errors.push(format!("{} {}: {e}", c.id, s.name));
                    break;
                }
            }
            if let Err(e) = c.storage.sync_dir() {
                report.errors.push(format!("{} directory sync: {e}", c.id));
            }
        }
        tracing::info!(
            first = first_lsn_of(&doomed),
            last = last_lsn.0,
            segments = eligible,
            "wal retention deleted segments"
        );
        report.deleted = Some((record.first_lsn, last_lsn));
        report.deleted_segments = doomed.into_iter().map(|s| s.name).collect();
        report.record = Some(logged);
        Ok(report)
    }
}

impl Writer {
    fn read_back_snapshot(&self, settings: &Settings, first_chunk: Lsn, state: &[u8]) -> Result<(), WalError> {
        let copy = self.copies.iter().find(|c| c.healthy).ok_or(WalError::Internal("no healthy copy to read back"))?;
        let mut reader = crate::LogReader::new(copy.storage.clone());
        if let Some(key) = &settings.sealing_key {
            reader = reader.with_sealing_key(key.clone());
        }
        match crate::snapshot::read_at(&reader, first_chunk)? {
            read if read == state => Ok(()),
            _ => Err(WalError::Snapshot("the snapshot read back differs from the one written".into())),
        }
    }
}

fn first_lsn_of(segs: &[SegMeta]) -> u64 {
    segs.first().map_or(0, |s| s.first_lsn.0)
}

#[derive(Default)]
struct Shared {
    queue: VecDeque<(u64, Op)>,
    queued_bytes: usize,
    next_ticket: u64,
    leader: bool,
    /// Records in the last commit group, and how long its commit took: a new
    /// leader uses them to gather the appenders the last group just released.
    last_group: usize,
    last_commit_us: u64,
    results: HashMap<u64, Result<Logged, WalError>>,
    frozen: Option<String>,
    /// When the commit group (or exclusive operation) in flight began.
    busy_since: Option<Instant>,
}

/// Longest a new commit-group leader waits to gather the appenders the previous
/// group released (see `Wal::gather`); bounds the latency this adds under load.
pub const GROUP_GATHER_MAX_US: u64 = 500;

/// The write-ahead log. `Send + Sync`: share it (`Arc<Wal>`) and append from any
/// number of threads; concurrent appends share one `fdatasync` per copy.
pub struct Wal {
    settings: Settings,
    shared: Mutex<Shared>,
    /// Signalled when a commit group finishes (results ready, leadership free).
    done: Condvar,
    /// Signalled when the queue drains.
    space: Condvar,
    /// Signalled when a record is queued (a gathering leader waits on it).
    arrivals: Condvar,
    writer: Mutex<Writer>,
    health: Health,
    storages: Vec<(CopyId, Arc<dyn Storage>)>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal").field("profile", &self.settings.profile).finish_non_exhaustive()
    }
}

/// Releases leadership even if the leader unwinds, so followers never wait forever.
struct Leadership<'a>(&'a Wal);

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        let mut s = self.0.shared.lock().unwrap_or_else(PoisonError::into_inner);
        s.leader = false;
        s.busy_since = None;
        drop(s);
        self.0.done.notify_all();
    }
}

/// A copy, its storage and what scanning it found.
type ScannedCopy = (CopyId, Arc<dyn Storage>, Result<CopyScan, WalError>);

fn poisoned<T>(_: PoisonError<T>) -> WalError {
    WalError::Internal("lock poisoned")
}

fn open_copy(spec: CopySpec, copy: CopyId) -> Result<Arc<dyn Storage>, WalError> {
    match spec {
        CopySpec::Storage(s) => Ok(s),
        CopySpec::Dir(d) => FsStorage::open_locked(d).map(|s| Arc::new(s) as Arc<dyn Storage>).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                WalError::Locked { copy: copy.to_string() }
            } else {
                WalError::io(copy, "open", &e)
            }
        }),
    }
}

impl Wal {
    /// Opens (or creates) the log and recovers it: scans every copy (CRC, Lsn order and
    /// hash links on every record), picks the copy with the longer valid chain, cuts a
    /// torn tail, repairs the other copy, re-hashes from the last checkpoint and checks
    /// its signature. Returns only when the log is consistent and durable.
    ///
    /// # Errors
    /// - [`WalError::EncryptionRequired`]: Hardened/Isolated profile, or sealed records,
    ///   without a sealing key.
    /// - [`WalError::Corrupt`]: damage before the tail (Emergency Mode, Rule 3), naming the
    ///   first bad Lsn; with two copies only if the longer chain itself is damaged.
    /// - [`WalError::CopiesForked`]: both copies valid but different.
    /// - [`WalError::Decrypt`]: the sealing key does not open the log's sealed records.
    /// - [`WalError::Io`] / [`WalError::CommitFreeze`]: no copy is usable.
    /// - [`WalError::Config`]: an out-of-range setting.
    pub fn open(config: WalConfig) -> Result<(Self, OpenReport), WalError> {
        let WalConfig {
            profile,
            primary,
            secondary,
            sealing_key,
            signer,
            trusted_keys,
            clock,
            cadence,
            segment_bytes_target,
            legal_hold,
        } = config;
        if !(SEGMENT_BYTES_TARGET_MIN..=SEGMENT_BYTES_TARGET_MAX).contains(&segment_bytes_target) {
            return Err(WalError::Config("segment size target out of range"));
        }
        if !(1..=CHECKPOINT_RECORDS_MAX).contains(&cadence.records_max) || cadence.interval_ms == 0 {
            return Err(WalError::Config("checkpoint cadence out of range"));
        }
        if encryption_required(profile) && sealing_key.is_none() {
            return Err(WalError::EncryptionRequired { reason: "the profile requires a sealing key" });
        }
        let mut keys: Vec<VerifyingKey> = trusted_keys;
        if let Some((k, _)) = &signer {
            keys.push(k.verifying_key().clone());
        }
        let settings =
            Settings { profile, clock: clock.clone(), sealing_key, signer, cadence, segment_bytes_target, legal_hold };

        let mut failed_copies: Vec<(CopyId, String)> = Vec::new();
        let mut specs = vec![(CopyId::Primary, primary)];
        if let Some(s) = secondary {
            specs.push((CopyId::Secondary, s));
        }
        let mut opened: Vec<(CopyId, Arc<dyn Storage>)> = Vec::new();
        let mut first_error = None;
        for (id, spec) in specs {
            match open_copy(spec, id) {
                Ok(s) => opened.push((id, s)),
                // Another writer owns this log: carrying on with the other copy
                // would fork the chain, so this is fatal, never a degraded copy.
                Err(e @ WalError::Locked { .. }) => return Err(e),
                Err(e) => {
                    failed_copies.push((id, e.to_string()));
                    first_error.get_or_insert(e);
                }
            }
        }
        let all_copies: Vec<CopyId> =
            opened.iter().map(|(c, _)| *c).chain(failed_copies.iter().map(|(c, _)| *c)).collect();
        // Scan the copies in parallel: recovery reads the whole log.
        let scans: Vec<ScannedCopy> = std::thread::scope(|s| {
            let handles: Vec<_> = opened
                .iter()
                .map(|(id, st)| {
                    let st2 = st.clone();
                    let id2 = *id;
                    (id2, st.clone(), s.spawn(move || scan_copy(st2.as_ref(), id2)))
                })
                .collect();
            handles
                .into_iter()
                .map(|(id, st, h)| (id, st, h.join().unwrap_or(Err(WalError::Internal("scan thread failed")))))
                .collect()
        });
        let mut usable: Vec<(CopyId, Arc<dyn Storage>, CopyScan)> = Vec::new();
        for (id, st, r) in scans {
            match r {
                Ok(scan) => usable.push((id, st, scan)),
                Err(e) => {
                    failed_copies.push((id, e.to_string()));
                    first_error.get_or_insert(e);
                }
            }
        }
        // The longer valid chain wins; on a tie an undamaged copy, then the primary.
        usable.sort_by_key(|(id, _, scan)| {
            (std::cmp::Reverse(scan.chain_len()), matches!(scan.end, CopyEnd::Corrupt(_)), *id != CopyId::Primary)
        });
        let mut usable = usable.into_iter();
        let Some((source_id, source, mut scan)) = usable.next() else {
            return Err(first_error.unwrap_or(WalError::Internal("no wal copy configured")));
        };
        let others: Vec<(CopyId, Arc<dyn Storage>, CopyScan)> = usable.collect();
        if let CopyEnd::Corrupt(e) = &scan.end {
            return Err(e.clone());
        }
        for (_, _, other) in &others {
            if let Some((lsn, hash)) = other.head
                && scan.first_lsn().is_some_and(|f| f <= lsn)
            {
                let ours = hash_at(source.as_ref(), source_id, &scan, lsn)?;
                if ours != Some(hash) {
                    return Err(WalError::CopiesForked { lsn });
                }
            }
        }
        if scan.last_sealed.is_some() && settings.sealing_key.is_none() {
            return Err(WalError::EncryptionRequired { reason: "the log holds sealed records" });
        }

        // Cut the torn tail of the source copy.
        let mut torn_tail = None;
        if let CopyEnd::Torn { offset, lsn } = scan.end.clone() {
            if let Some(seg) = scan.segments.last_mut() {
                let dropped = seg.file_len.saturating_sub(offset);
                let name = seg.name.clone();
                if offset == 0 {
                    source.remove(&name).map_err(|e| WalError::io(source_id, "remove torn segment", &e))?;
                    source.sync_dir().map_err(|e| WalError::io(source_id, "sync directory", &e))?;
                    scan.segments.pop();
                } else {
                    source.truncate(&name, offset).map_err(|e| WalError::io(source_id, "truncate torn tail", &e))?;
                    seg.file_len = offset;
                    seg.intact = true;
                }
                tracing::warn!(copy = %source_id, segment = %name, offset, lsn = lsn.0, "wal torn tail truncated");
                torn_tail = Some(TornTail { copy: source_id, segment: name, offset, bytes_dropped: dropped, lsn });
            }
            scan.end = CopyEnd::Clean;
        }

        // Finish a retention deletion a crash interrupted.
        let mut retention_finished = Vec::new();
        if let Some(cut) = scan.retention_cut {
            let active = scan.segments.len().saturating_sub(1);
            let n = scan.segments.iter().take(active).take_while(|s| s.last.is_some_and(|(l, _)| l <= cut)).count();
            for seg in scan.segments.drain(..n) {
                source.remove(&seg.name).map_err(|e| WalError::io(source_id, "finish retention", &e))?;
                retention_finished.push(seg.name);
            }
            if n > 0 {
                source.sync_dir().map_err(|e| WalError::io(source_id, "sync directory", &e))?;
            }
        }
        for stray in &scan.stray {
            let _ = source.remove(stray);
        }

        // Check the tail the cheap scan did not hash, and the last checkpoint's signature.
        let checkpoint = rehash_from_checkpoint(source.as_ref(), source_id, &scan)?;
        let checkpoint_signature = match (&checkpoint, scan.last_checkpoint) {
            (None, _) | (_, None) => SignatureCheck::NoCheckpoint,
            (Some(_), Some(_)) if keys.is_empty() => SignatureCheck::NoKey,
            (Some((lsn, c)), Some(loc)) => {
                let seg = scan.segments.get(loc.seg_index).map(|s| s.name.clone()).unwrap_or_default();
                let fault = |fault| WalError::Corrupt { lsn: *lsn, fault, segment: seg.clone(), offset: 0 };
                let key = keys.iter().find(|k| k.key_id() == c.key_id).ok_or_else(|| fault(Fault::CheckpointKey))?;
                c.verify(key).map_err(|_| fault(Fault::CheckpointSignature))?;
                SignatureCheck::Verified
            }
        };
        // A wrong sealing key must fail now, not when an auditor reads the log.
        if let (Some(lsn), Some(key)) = (scan.last_sealed, &settings.sealing_key) {
            check_sealing_key(source.as_ref(), source_id, &scan, lsn, key)?;
        }

        // Repair the other copies from the source.
        let mut repairs = Vec::new();
        let mut healthy_others = Vec::new();
        for (id, st, other) in others {
            match repair_copy(source.as_ref(), source_id, &scan, st.as_ref(), id, &other) {
                Ok(Some(r)) => {
                    tracing::warn!(target_copy = %id, rewritten = r.segments_rewritten.len(), removed = r.segments_removed.len(), "wal copy repaired");
                    repairs.push(r);
                    healthy_others.push((id, st));
                }
                Ok(None) => healthy_others.push((id, st)),
                Err(e) => failed_copies.push((id, format!("repair: {e}"))),
            }
        }

        let health = Health {
            inner: Mutex::new(HealthInner {
                copies: all_copies.iter().map(|c| CopyHealth { copy: *c, healthy: true, failure: None }).collect(),
                frozen: false,
                events: VecDeque::new(),
                next_seq: 0,
            }),
            clock,
        };
        for (id, why) in &failed_copies {
            health.raise(CriticalEventKind::CopyFailed, Some(*id), why.clone());
        }

        let mut copies: Vec<CopyWriter> = std::iter::once((source_id, source))
            .chain(healthy_others)
            .map(|(id, storage)| CopyWriter { id, storage, file: None, healthy: true })
            .collect();
        copies.sort_by_key(|c| c.id);
        // No record at all (a new log, or a crash before the genesis was durable): write
        // the genesis. An empty segment may exist only as the one that holds Lsn 1.
        let created = scan.head.is_none();
        if let Some(seg) = scan.segments.iter().find(|s| created && s.first_lsn != Lsn::FIRST) {
            return Err(WalError::Corrupt {
                lsn: Lsn::FIRST,
                fault: Fault::Segment,
                segment: seg.name.clone(),
                offset: 0,
            });
        }
        if let Some(last) = scan.segments.last() {
            for c in &mut copies {
                match c.storage.open_append(&last.name) {
                    Ok(f) => c.file = Some(f),
                    Err(e) => {
                        c.healthy = false;
                        health.raise(CriticalEventKind::CopyFailed, Some(c.id), format!("open segment: {e}"));
                    }
                }
            }
            if copies.iter().all(|c| !c.healthy) {
                return Err(WalError::CommitFreeze { cause: "no wal copy could be opened for appending".to_owned() });
            }
        }
        let storages = copies.iter().map(|c| (c.id, c.storage.clone())).collect();
        let log_id = match scan.log_id {
            Some(id) => id,
            None if created => LogId(maos_crypto::random_bytes::<16>().map_err(|e| WalError::crypto(&e))?),
            None => {
                return Err(WalError::Corrupt {
                    lsn: scan.first_lsn().unwrap_or(Lsn::FIRST),
                    fault: Fault::Genesis,
                    segment: scan.segments.first().map(|s| s.name.clone()).unwrap_or_default(),
                    offset: 0,
                });
            }
        };
        let now = settings.clock.now();
        let (head_lsn, head_hash) = scan.head.unwrap_or((Lsn(0), RecordHash::ZERO));
        let writer = Writer {
            mirror: None,
            copies,
            next_lsn: Lsn(head_lsn.0 + 1),
            head_hash,
            segments: scan
                .segments
                .iter()
                .map(|s| SegMeta { name: s.name.clone(), first_lsn: s.first_lsn, last: s.last, max_ts: s.max_ts })
                .collect(),
            segment_len: scan.segments.last().map_or(0, |s| s.file_len),
            log_id,
            records_since_checkpoint: scan.records_since_checkpoint,
            last_checkpoint: scan.last_checkpoint.map(|c| c.lsn),
            last_checkpoint_time: scan.last_checkpoint.map_or(now, |c| c.timestamp),
            frozen: None,
        };
        let wal = Self {
            settings,
            shared: Mutex::new(Shared::default()),
            done: Condvar::new(),
            space: Condvar::new(),
            arrivals: Condvar::new(),
            writer: Mutex::new(writer),
            health,
            storages,
        };
        if created {
            let genesis = Genesis { log_id, profile };
            wal.submit(Op::Internal { kind: RecordKind::GENESIS, payload: genesis.encode() }, 0)?;
        }
        let (head_lsn, head_hash) = wal.head()?;
        let report = OpenReport {
            created,
            log_id,
            first_lsn: scan.first_lsn().unwrap_or(Lsn::FIRST),
            head_lsn,
            head_hash,
            source_copy: source_id,
            torn_tail,
            repairs,
            failed_copies,
            last_checkpoint: scan.last_checkpoint.map(|c| c.lsn),
            checkpoint_signature,
            retention_finished,
        };
        tracing::info!(head = head_lsn.0, created, "wal opened");
        Ok((wal, report))
    }

    /// Appends one record and returns once it is durable on every healthy copy.
    /// Concurrent callers share one write and one sync per copy (group commit); a lone
    /// caller pays exactly one sync and never waits for a timer. Sealed with the
    /// configured key, if any. May write an automatic checkpoint after the record.
    ///
    /// # Errors
    /// - [`WalError::ReservedKind`] / [`WalError::TooLarge`]: rejected before queueing.
    /// - [`WalError::CommitFreeze`]: no copy can be written; the record is not
    ///   acknowledged and the caller must deny.
    /// - [`WalError::Crypto`]: sealing failed.
    pub fn append(&self, kind: RecordKind, payload: &[u8]) -> Result<Logged, WalError> {
        if kind.is_reserved() {
            return Err(WalError::ReservedKind { kind: kind.0 });
        }
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(WalError::TooLarge { len: payload.len(), max: PAYLOAD_BYTES_MAX });
        }
        self.submit(Op::Caller { kind, payload: payload.to_vec() }, payload.len())
    }

    /// Appends several records in one commit group (one write, one sync per copy):
    /// consecutive Lsns, all durable when this returns `Ok`. Useful for an intent and
    /// its verdict, and for bulk import.
    ///
    /// # Errors
    /// As [`Self::append`]; [`WalError::Limit`] above [`APPEND_QUEUE_RECORDS_MAX`] records
    /// or [`APPEND_QUEUE_BYTES_MAX`] bytes. On any error treat the whole batch as not
    /// logged (deny), even though some of its records may be durable.
    pub fn append_batch(&self, records: &[(RecordKind, &[u8])]) -> Result<Vec<Logged>, WalError> {
        if records.len() > APPEND_QUEUE_RECORDS_MAX {
            return Err(WalError::Limit { what: "records in one batch", max: APPEND_QUEUE_RECORDS_MAX });
        }
        let mut bytes = 0usize;
        for (kind, payload) in records {
            if kind.is_reserved() {
                return Err(WalError::ReservedKind { kind: kind.0 });
            }
            if payload.len() > PAYLOAD_BYTES_MAX {
                return Err(WalError::TooLarge { len: payload.len(), max: PAYLOAD_BYTES_MAX });
            }
            bytes = bytes.saturating_add(payload.len());
        }
        if bytes > APPEND_QUEUE_BYTES_MAX {
            return Err(WalError::Limit { what: "payload bytes in one batch", max: APPEND_QUEUE_BYTES_MAX });
        }
        let ops = records.iter().map(|(kind, payload)| Op::Caller { kind: *kind, payload: payload.to_vec() }).collect();
        self.submit_many(ops, bytes)?.into_iter().collect()
    }

    /// Writes a signed checkpoint over the current head and `state` (in order with
    /// concurrent appends).
    ///
    /// # Errors
    /// [`WalError::NoSigner`] without a signer; otherwise as [`Self::append`].
    pub fn checkpoint(&self, state: StateDigest) -> Result<Logged, WalError> {
        if self.settings.signer.is_none() {
            return Err(WalError::NoSigner);
        }
        self.submit(Op::Checkpoint(Some(state)), 0)
    }

    /// Writes a signed checkpoint now, with the state digest from the configured
    /// source (a daemon calls it at shutdown so its last records are vouched for).
    ///
    /// # Errors
    /// [`WalError::NoSigner`] without a signer; otherwise as [`Self::append`].
    pub fn checkpoint_now(&self) -> Result<Logged, WalError> {
        if self.settings.signer.is_none() {
            return Err(WalError::NoSigner);
        }
        self.submit(Op::Checkpoint(None), 0)
    }

    /// Whether the cadence calls for a checkpoint now (records or time since the last).
    ///
    /// # Errors
    /// [`WalError::Internal`] on a poisoned lock.
    pub fn checkpoint_due(&self) -> Result<bool, WalError> {
        let w = self.writer.lock().map_err(poisoned)?;
        Ok(w.checkpoint_due(&self.settings, w.records_since_checkpoint, self.settings.clock.now()))
    }

    /// Writes an automatic checkpoint if one is due. Call it from a periodic task so the
    /// 5-minute rule holds when appends stop.
    ///
    /// # Errors
    /// [`WalError::NoSigner`] without a signer; otherwise as [`Self::append`].
    pub fn maybe_checkpoint(&self) -> Result<Option<Logged>, WalError> {
        if self.settings.signer.is_none() {
            return Err(WalError::NoSigner);
        }
        if !self.checkpoint_due()? {
            return Ok(None);
        }
        self.submit(Op::Checkpoint(None), 0).map(Some)
    }

    /// Deletes whole segments older than the profile's retention (30 d / 365 d / 2555 d),
    /// never the active segment and never one holding the last checkpoint or anything
    /// after it, and leaves a retention-deletion record that anchors the chain at the cut.
    /// Does nothing under a legal hold or before the first checkpoint.
    ///
    /// Before anything is cut, `snapshot` is called with the head Lsn (no record
    /// is appended meanwhile) and returns the folded state of every record
    /// through it; that state is written as a state snapshot, a checkpoint signs
    /// its SHA3-256 as the state digest, and the retention record follows, all in
    /// one commit group (see [`crate::FoldRecords`]).
    ///
    /// # Errors
    /// [`WalError::Snapshot`] if `snapshot` fails, [`WalError::TooLarge`] past
    /// [`crate::SNAPSHOT_BYTES_MAX`]; as [`Self::append`] if the records cannot
    /// be written. Nothing is deleted then.
    pub fn apply_retention(
        &self,
        snapshot: impl FnOnce(Lsn) -> Result<Vec<u8>, String>,
    ) -> Result<RetentionReport, WalError> {
        self.exclusive(|w, settings, health| w.retention(settings, health, snapshot))?
    }

    /// One step of the rolling re-verification ([`crate::sweep`]) of a
    /// healthy copy, against the head this log published before the step. A
    /// pass stays on one copy; if that copy is no longer healthy when the
    /// step ends, the step's verdict is dropped and the next pass reads a
    /// healthy one (a copy that stopped receiving writes would look cut
    /// short).
    ///
    /// # Errors
    /// As [`crate::sweep`], or [`WalError::Internal`] on a poisoned lock.
    pub fn sweep_step(
        &self,
        cursor: &mut crate::SweepCursor,
        segments_max: usize,
    ) -> Result<crate::SweepStep, WalError> {
        let healthy = |id: CopyId| self.health.lock().copies.iter().any(|c| c.copy == id && c.healthy);
        let copy = cursor
            .copy
            .filter(|c| healthy(*c))
            .or_else(|| self.storages.iter().map(|(id, _)| *id).find(|id| healthy(*id)));
        let Some((id, storage)) = copy.and_then(|c| self.storages.iter().find(|(id, _)| *id == c)) else {
            return Ok(crate::SweepStep { records: 0, wrapped: false, matched: false });
        };
        if cursor.copy != Some(*id) {
            *cursor = crate::SweepCursor::default();
            cursor.copy = Some(*id);
        }
        let head = self.head()?;
        let result = crate::verify::sweep(storage.as_ref(), cursor, segments_max, Some(head));
        if !healthy(*id) {
            *cursor = crate::SweepCursor::default();
            return Ok(crate::SweepStep { records: 0, wrapped: false, matched: false });
        }
        if let Err(WalError::Io { .. }) = &result {
            // A copy that cannot be read now: the next pass reads the next
            // healthy one (the caller counts failures across copies).
            let next = self.storages.iter().map(|(c, _)| *c).find(|c| *c != *id && healthy(*c)).unwrap_or(*id);
            *cursor = crate::SweepCursor::default();
            cursor.copy = Some(next);
        }
        result
    }

    /// How long the commit group (or exclusive operation such as a
    /// checkpoint) in flight has been writing and syncing; `None` when the
    /// writer is idle. A watchdog reads it: a sync that never returns shows
    /// here, not as an error.
    #[must_use]
    pub fn busy_for(&self) -> Option<Duration> {
        self.shared.lock().map_or(Some(Duration::MAX), |s| s.busy_since.map(|t| t.elapsed()))
    }

    /// The last Lsn and its hash.
    ///
    /// # Errors
    /// [`WalError::Internal`] on a poisoned lock.
    pub fn head(&self) -> Result<(Lsn, RecordHash), WalError> {
        let w = self.writer.lock().map_err(poisoned)?;
        Ok((Lsn(w.next_lsn.0.saturating_sub(1)), w.head_hash))
    }

    /// The log's id.
    ///
    /// # Errors
    /// [`WalError::Internal`] on a poisoned lock.
    pub fn log_id(&self) -> Result<LogId, WalError> {
        Ok(self.writer.lock().map_err(poisoned)?.log_id)
    }

    /// Whether no copy can be written (commit freeze): [`Self::health`]'s
    /// state without copying the report, for callers on a hot path.
    #[must_use]
    pub fn frozen(&self) -> bool {
        self.health.lock().frozen
    }

    /// Health: overall state, each copy, recent critical events.
    #[must_use]
    pub fn health(&self) -> HealthReport {
        let h = self.health.lock();
        let state = if h.frozen {
            HealthState::CommitFreeze
        } else if h.copies.iter().any(|c| !c.healthy) {
            HealthState::Degraded
        } else {
            HealthState::Healthy
        };
        HealthReport { state, copies: h.copies.clone(), events: h.events.iter().cloned().collect() }
    }

    /// Critical events with `seq >= since` still held (see [`HEALTH_EVENTS_MAX`]).
    #[must_use]
    pub fn critical_events_since(&self, since: u64) -> Vec<CriticalEvent> {
        self.health.lock().events.iter().filter(|e| e.seq >= since).cloned().collect()
    }

    /// A reader over a healthy copy, decrypting with the configured key.
    #[must_use]
    pub fn reader(&self) -> LogReader {
        let healthy: Vec<CopyId> = self.health.lock().copies.iter().filter(|c| c.healthy).map(|c| c.copy).collect();
        let storage = self
            .storages
            .iter()
            .find(|(id, _)| healthy.contains(id))
            .or_else(|| self.storages.first())
            .map(|(_, s)| s.clone());
        let reader = match storage {
            Some(s) => LogReader::new(s),
            None => LogReader::new(Arc::new(crate::sim::MemStorage::new())),
        };
        match &self.settings.sealing_key {
            Some(k) => reader.with_sealing_key(k.clone()),
            None => reader,
        }
    }

    fn submit(&self, op: Op, bytes: usize) -> Result<Logged, WalError> {
        self.submit_many(vec![op], bytes)?.pop().ok_or(WalError::Internal("missing result"))?
    }

    /// Queues `ops` together (so they land in one commit group) and waits for all of them.
    fn submit_many(&self, ops: Vec<Op>, bytes: usize) -> Result<Vec<Result<Logged, WalError>>, WalError> {
        let n = ops.len();
        let mut s = self.shared.lock().map_err(poisoned)?;
        loop {
            if let Some(cause) = &s.frozen {
                return Err(WalError::CommitFreeze { cause: cause.clone() });
            }
            if s.queue.len() + n <= APPEND_QUEUE_RECORDS_MAX
                && s.queued_bytes.saturating_add(bytes) <= APPEND_QUEUE_BYTES_MAX
            {
                break;
            }
            s = self.space.wait(s).map_err(poisoned)?;
        }
        let first_ticket = s.next_ticket;
        s.next_ticket += n as u64;
        for (i, op) in ops.into_iter().enumerate() {
            s.queue.push_back((first_ticket + i as u64, op));
        }
        s.queued_bytes += bytes;
        self.arrivals.notify_one();
        let tickets = first_ticket..first_ticket + n as u64;
        loop {
            if tickets.clone().all(|t| s.results.contains_key(&t)) {
                return Ok(tickets
                    .map(|t| s.results.remove(&t).unwrap_or(Err(WalError::Internal("missing result"))))
                    .collect());
            }
            if s.leader {
                s = self.done.wait(s).map_err(poisoned)?;
                continue;
            }
            // Lead: take everything queued, write it as one group, wake the followers.
            s.leader = true;
            s = self.gather(s)?;
            let batch: Vec<(u64, Op)> = s.queue.drain(..).collect();
            let started = Instant::now();
            s.busy_since = Some(started);
            s.queued_bytes = 0;
            drop(s);
            self.space.notify_all();
            let leadership = Leadership(self);
            let (batch_tickets, ops): (Vec<u64>, Vec<Op>) = batch.into_iter().unzip();
            let (results, frozen) = match self.writer.lock() {
                Ok(mut w) => {
                    let results = w.commit(ops, &self.settings, &self.health);
                    (results, w.frozen.clone())
                }
                // Every follower in this group still gets an answer.
                Err(_) => (ops.iter().map(|_| Err(WalError::Internal("lock poisoned"))).collect(), None),
            };
            s = self.shared.lock().map_err(poisoned)?;
            s.last_group = batch_tickets.len();
            s.last_commit_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            // INVARIANT: one result per op, so every waiting ticket gets its answer.
            assert!(results.len() == batch_tickets.len(), "wal commit returned the wrong number of results");
            for (t, r) in batch_tickets.into_iter().zip(results) {
                s.results.insert(t, r);
            }
            if frozen.is_some() && s.frozen.is_none() {
                s.frozen = frozen;
            }
            drop(s);
            // Leadership ends only after the results are published.
            drop(leadership);
            s = self.shared.lock().map_err(poisoned)?;
        }
    }

    /// Without this, concurrent appenders split into two alternating half-groups:
    /// the appenders released by one group re-enqueue just after the next leader
    /// has already taken the queue. So a new leader whose last group held several
    /// records waits until as many are queued again, but never longer than a
    /// quarter of the last commit (at most [`GROUP_GATHER_MAX_US`]). A lone
    /// appender's last group held one record: it never waits.
    fn gather<'a>(&'a self, mut s: MutexGuard<'a, Shared>) -> Result<MutexGuard<'a, Shared>, WalError> {
        let want = s.last_group;
        if want <= 1 || s.queue.len() >= want {
            return Ok(s);
        }
        let budget = Duration::from_micros((s.last_commit_us / 4).min(GROUP_GATHER_MAX_US));
        let deadline = Instant::now() + budget;
        while s.queue.len() < want && s.frozen.is_none() {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                break;
            };
            s = self.arrivals.wait_timeout(s, left).map_err(poisoned)?.0;
        }
        Ok(s)
    }

    /// Runs `f` as the only writer (no commit group in flight).
    fn exclusive<R>(&self, f: impl FnOnce(&mut Writer, &Settings, &Health) -> R) -> Result<R, WalError> {
        let mut s = self.shared.lock().map_err(poisoned)?;
        while s.leader {
            s = self.done.wait(s).map_err(poisoned)?;
        }
        s.leader = true;
        s.busy_since = Some(Instant::now());
        drop(s);
        let leadership = Leadership(self);
        let (r, frozen) = {
            let mut w = self.writer.lock().map_err(poisoned)?;
            let r = f(&mut w, &self.settings, &self.health);
            (r, w.frozen.clone())
        };
        if frozen.is_some() {
            let mut s = self.shared.lock().map_err(poisoned)?;
            if s.frozen.is_none() {
                s.frozen = frozen;
            }
        }
        drop(leadership);
        Ok(r)
    }
}

fn check_sealing_key(
    storage: &dyn Storage,
    copy: CopyId,
    scan: &CopyScan,
    lsn: Lsn,
    key: &SealingKey,
) -> Result<(), WalError> {
    let Some(seg) = scan.segments.iter().rev().find(|s| s.first_lsn <= lsn) else { return Ok(()) };
    let Some(bytes) = read_segment(storage, copy, &seg.name)? else { return Ok(()) };
    let scanned = crate::frame::scan_segment(&bytes);
    let Some((_, rec)) = scanned.records.iter().find(|(_, r)| r.lsn == lsn) else { return Ok(()) };
    key.open(&seal_aad(rec.lsn, rec.kind, rec.timestamp), rec.payload)
        .map(|_| ())
        .map_err(|_| WalError::Decrypt { lsn })
}

/// Makes `target` byte-identical to the valid part of `source`. `Ok(None)` if it already is.
fn repair_copy(
    source: &dyn Storage,
    source_id: CopyId,
    scan: &CopyScan,
    target: &dyn Storage,
    target_id: CopyId,
    tscan: &CopyScan,
) -> Result<Option<CopyRepair>, WalError> {
    let mut rewritten = Vec::new();
    let mut removed = Vec::new();
    for t in &tscan.segments {
        if !scan.segments.iter().any(|s| s.name == t.name) {
            target.remove(&t.name).map_err(|e| WalError::io(target_id, "repair remove", &e))?;
            removed.push(t.name.clone());
        }
    }
    for s in &scan.segments {
        let same = tscan.segments.iter().any(|t| {
            t.name == s.name && t.intact && t.valid_len == s.file_len && t.file_len == s.file_len && t.last == s.last
        });
        if same {
            continue;
        }
        let bytes = read_segment(source, source_id, &s.name)?.ok_or(WalError::Internal("source segment vanished"))?;
        let valid = bytes.get(..usize::try_from(s.file_len).unwrap_or(usize::MAX)).unwrap_or(&bytes);
        target.replace(&s.name, valid).map_err(|e| WalError::io(target_id, "repair write", &e))?;
        rewritten.push(s.name.clone());
    }
    for stray in &tscan.stray {
        let _ = target.remove(stray);
    }
    if rewritten.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    target.sync_dir().map_err(|e| WalError::io(target_id, "repair sync directory", &e))?;
    Ok(Some(CopyRepair {
        target: target_id,
        source: source_id,
        target_head_before: tscan.chain_len(),
        source_head: scan.chain_len(),
        target_fault: match &tscan.end {
            CopyEnd::Corrupt(e) => Some(e.to_string()),
            CopyEnd::Torn { lsn, .. } => Some(format!("torn tail at lsn {lsn}")),
            CopyEnd::Clean => None,
        },
        segments_rewritten: rewritten,
        segments_removed: removed,
    }))
}
