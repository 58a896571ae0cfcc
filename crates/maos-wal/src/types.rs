//! Small value types of the log: sequence numbers, record kinds, hashes, clocks.

use crate::error::WalError;
use maos_model::{Profile, UnixMillis};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Log sequence number: the position of a record in the log. The first record
/// of every log (the genesis record) has Lsn 1; Lsn 0 is never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The Lsn of the genesis record.
    pub const FIRST: Self = Self(1);

    /// The next Lsn, or `None` at `u64::MAX`.
    #[must_use]
    pub const fn next(self) -> Option<Self> {
        match self.0.checked_add(1) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a record is. Kinds `0..=0x00FF` belong to the WAL itself; callers use
/// `0x0100..=0xFFFF` (see [`RecordKind::caller`]). The WAL never interprets a
/// caller kind or its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKind(pub u16);

impl RecordKind {
    /// The first record of a log: its random id and the profile it was created under.
    pub const GENESIS: Self = Self(1);
    /// A signed checkpoint over the chain head and a digest of kernel state.
    pub const CHECKPOINT: Self = Self(2);
    /// Metadata left behind when retention deleted whole segments.
    pub const RETENTION_DELETION: Self = Self(3);
    /// One chunk of a state snapshot: the folded state of every record before
    /// it, written just before retention cuts segments (see [`crate::snapshot`]).
    pub const STATE_SNAPSHOT: Self = Self(4);
    /// The highest kind reserved for the WAL (kinds 5..=0xFF are reserved for future use,
    /// e.g. a hash-migration bridge record, CT-WAL-13).
    pub const RESERVED_MAX: u16 = 0x00FF;
    /// The first kind a caller may use.
    pub const CALLER_MIN: u16 = 0x0100;

    /// A caller kind.
    ///
    /// # Errors
    /// [`WalError::ReservedKind`] if `code` is below [`Self::CALLER_MIN`].
    pub const fn caller(code: u16) -> Result<Self, WalError> {
        if code < Self::CALLER_MIN {
            return Err(WalError::ReservedKind { kind: code });
        }
        Ok(Self(code))
    }

    /// Whether this kind belongs to the WAL itself.
    #[must_use]
    pub const fn is_reserved(self) -> bool {
        self.0 <= Self::RESERVED_MAX
    }

    /// A short name for WAL kinds, `caller` for the rest.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "genesis",
            2 => "checkpoint",
            3 => "retention-deletion",
            4 => "state-snapshot",
            0..=Self::RESERVED_MAX => "reserved",
            _ => "caller",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// A SHA3-256 record hash, the links of the chain.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RecordHash(pub [u8; 32]);

impl RecordHash {
    /// The `prev_hash` of the genesis record.
    pub const ZERO: Self = Self([0; 32]);

    /// Lowercase hex.
    #[must_use]
    pub fn to_hex(&self) -> String {
        maos_crypto::Digest(self.0).to_hex()
    }
}

impl fmt::Debug for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordHash({})", self.to_hex())
    }
}

impl fmt::Display for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A 32-byte digest of kernel state, supplied by the caller and signed into each checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StateDigest(pub [u8; 32]);

/// The random 16-byte identity of a log, fixed by its genesis record and signed into
/// every checkpoint, so a checkpoint from one log never vouches for another.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId(pub [u8; 16]);

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogId({self})")
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Which copy of a dual-copy log (spec §38.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CopyId {
    /// The primary directory.
    Primary,
    /// The optional secondary directory.
    Secondary,
}

impl fmt::Display for CopyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        })
    }
}

/// Wall-clock time for record timestamps, the checkpoint interval and retention.
/// Injected so tests are deterministic.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now(&self) -> UnixMillis;

    /// How far the wall clock is ahead of this clock now, in milliseconds
    /// (negative: behind). Zero for a clock that is the wall clock; a
    /// [`MonotonicClock`] reports the steps the wall clock took since it
    /// was anchored (spec CT-IMM-17: time integrity).
    fn wall_offset_ms(&self) -> i64 {
        0
    }
}

/// The system wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        UnixMillis(ms)
    }
}

/// The wall time it was anchored at, advanced by the monotonic clock: a step
/// of the wall clock (an operator, a bad NTP server, a VM resumed) does not
/// move it. [`Clock::wall_offset_ms`] says how far the wall clock has moved
/// away since. The reference of a [`WallClock`].
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    anchor_wall: UnixMillis,
    anchor: std::time::Instant,
}

impl MonotonicClock {
    /// A clock anchored at the wall time now.
    #[must_use]
    pub fn new() -> Self {
        Self { anchor_wall: SystemClock.now(), anchor: std::time::Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> UnixMillis {
        let elapsed = u64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(u64::MAX);
        UnixMillis(self.anchor_wall.0.saturating_add(elapsed))
    }

    fn wall_offset_ms(&self) -> i64 {
        let diff = i128::from(SystemClock.now().0) - i128::from(self.now().0);
        i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
    }
}

/// The system wall clock, with a monotonic reference taken when it was made:
/// [`Clock::wall_offset_ms`] is how far the wall clock has stepped since
/// (spec CT-IMM-17: the kernel alerts past 5 s). The kernel decides on wall
/// time because tokens and approvals are stamped in wall time by whoever
/// issued them.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock {
    reference: MonotonicClock,
}

impl WallClock {
    /// The wall clock, its monotonic reference taken now.
    #[must_use]
    pub fn new() -> Self {
        Self { reference: MonotonicClock::new() }
    }
}

impl Clock for WallClock {
    fn now(&self) -> UnixMillis {
        SystemClock.now()
    }

    fn wall_offset_ms(&self) -> i64 {
        self.reference.wall_offset_ms()
    }
}

/// A clock that moves only when told to, for tests and the simulator. Its
/// wall offset moves only by [`Self::step_wall`].
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
    wall_offset: AtomicI64,
}

impl ManualClock {
    /// A clock showing `start`.
    #[must_use]
    pub const fn new(start: UnixMillis) -> Self {
        Self { now: AtomicU64::new(start.0), wall_offset: AtomicI64::new(0) }
    }

    /// Moves the clock forward by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now: UnixMillis) {
        self.now.store(now.0, Ordering::SeqCst);
    }

    /// Simulates a step of the wall clock by `ms` (negative: back) that this
    /// clock, like a [`MonotonicClock`], does not follow.
    pub fn step_wall(&self, ms: i64) {
        self.wall_offset.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.now.load(Ordering::SeqCst))
    }

    fn wall_offset_ms(&self) -> i64 {
        self.wall_offset.load(Ordering::SeqCst)
    }
}

/// Supplies the kernel-state digest signed into automatic checkpoints. Called by the
/// thread that commits a batch, while it holds the log: it must be quick and must
/// never call back into the [`crate::Wal`].
pub trait StateDigestSource: Send + Sync {
    /// The current digest of kernel state.
    fn state_digest(&self) -> StateDigest;
}

impl<F: Fn() -> StateDigest + Send + Sync> StateDigestSource for F {
    fn state_digest(&self) -> StateDigest {
        self()
    }
}

/// Minimum audit-log retention per profile in days (spec §5.3.1).
#[must_use]
pub const fn retention_days(profile: Profile) -> u32 {
    match profile {
        Profile::Standard => 30,
        Profile::Hardened => 365,
        Profile::Isolated => 2555,
    }
}

/// Whether encryption at rest is mandatory for a profile (spec §14a.3).
#[must_use]
pub const fn encryption_required(profile: Profile) -> bool {
    match profile {
        Profile::Standard => false,
        Profile::Hardened | Profile::Isolated => true,
    }
}

/// A legal hold suspends retention deletion (spec §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegalHold {
    /// Retention deletes expired segments.
    #[default]
    Released,
    /// Nothing is deleted.
    Active,
}

/// When automatic checkpoints are written (spec §14.3): after `records_max` records
/// or `interval_ms` since the last checkpoint, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointCadence {
    /// Records between checkpoints.
    pub records_max: u64,
    /// Milliseconds between checkpoints while records keep arriving.
    pub interval_ms: u64,
}

impl Default for CheckpointCadence {
    fn default() -> Self {
        Self { records_max: 100, interval_ms: 5 * 60 * 1000 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_kinds_start_above_the_reserved_range() {
        assert!(RecordKind::caller(0x00FF).is_err());
        assert_eq!(RecordKind::caller(0x0100).map(|k| k.is_reserved()), Ok(false));
        assert!(RecordKind::CHECKPOINT.is_reserved());
        assert_eq!(RecordKind::RETENTION_DELETION.name(), "retention-deletion");
    }

    /// A monotonic clock starts at the wall time, never goes back, and
    /// reports how far the wall clock is from it (a step of the system
    /// clock needs privileges a test does not have: the kernel test
    /// `ct_imm_17_…` steps a manual clock's wall instead).
    #[test]
    fn monotonic_clock_starts_at_the_wall_and_never_goes_back() {
        let clock = MonotonicClock::new();
        let first = clock.now();
        assert!(clock.wall_offset_ms().abs() < 1_000, "{}", clock.wall_offset_ms());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let later = clock.now();
        assert!(later.0 >= first.0 + 20, "{first:?} {later:?}");
        let manual = ManualClock::new(UnixMillis(5));
        manual.step_wall(-7_000);
        assert_eq!((manual.now(), manual.wall_offset_ms()), (UnixMillis(5), -7_000));
    }

    #[test]
    fn retention_per_profile() {
        assert_eq!(retention_days(Profile::Standard), 30);
        assert_eq!(retention_days(Profile::Hardened), 365);
        assert_eq!(retention_days(Profile::Isolated), 2555);
    }
}
