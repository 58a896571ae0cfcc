//! An in-memory [`Storage`] that models durability and injects faults, for tests and
//! the deterministic kernel simulator. Never use it for a real log.
//!
//! Each file keeps how many of its bytes are durable; [`MemStorage::crash`] throws
//! away what was never synced (keeping a seeded random part of it, possibly garbled,
//! as a real disk might) and forgets files whose creation was never made durable by
//! a directory sync.

use crate::storage::{SegmentFile, Storage};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Faults to inject; flip them at any time from any thread.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// Every write fails.
    pub fail_writes: AtomicBool,
    /// Every sync fails (the written bytes stay not durable).
    pub fail_syncs: AtomicBool,
    /// File creation fails.
    pub fail_creates: AtomicBool,
    /// Reads fail.
    pub fail_reads: AtomicBool,
    /// Writes take at most half the bytes (at least one), like a short `write(2)`.
    pub short_writes: AtomicBool,
    /// Writes fail after this many more succeed (`u64::MAX`: never).
    pub writes_until_failure: AtomicU64,
    /// Each sync sleeps this long first (microseconds), like a real disk, so that
    /// concurrent appenders pile up behind it.
    pub sync_delay_us: AtomicU64,
    /// Total bytes the "disk" holds; a write past it fills the disk and then fails
    /// with `StorageFull` (ENOSPC). `u64::MAX`: unlimited.
    pub capacity_bytes: AtomicU64,
}

impl FaultPlan {
    /// No faults.
    #[must_use]
    pub fn none() -> Self {
        Self {
            writes_until_failure: AtomicU64::new(u64::MAX),
            capacity_bytes: AtomicU64::new(u64::MAX),
            ..Self::default()
        }
    }
}

/// How much unsynced data survives [`MemStorage::crash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Only synced bytes survive.
    DropUnsynced,
    /// A random prefix of the unsynced bytes survives.
    KeepRandomPrefix,
    /// A random prefix survives, and some of its bytes are overwritten with zeros or
    /// garbage (a torn sector, an unwritten block read back as a hole).
    Garble,
}

#[derive(Debug, Default, Clone)]
struct MemFile {
    data: Vec<u8>,
    durable_len: usize,
}

#[derive(Debug, Default)]
struct MemFs {
    files: BTreeMap<String, MemFile>,
    dir_durable: BTreeSet<String>,
    syncs: u64,
    writes: u64,
}

/// An in-memory directory. Clones share the same files and faults.
#[derive(Debug, Clone)]
pub struct MemStorage {
    fs: Arc<Mutex<MemFs>>,
    faults: Arc<FaultPlan>,
}

impl Default for MemStorage {
    fn default() -> Self {
        Self::new()
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl MemStorage {
    /// An empty directory without faults.
    #[must_use]
    pub fn new() -> Self {
        Self { fs: Arc::new(Mutex::new(MemFs::default())), faults: Arc::new(FaultPlan::none()) }
    }

    /// The fault switches.
    #[must_use]
    pub fn faults(&self) -> &FaultPlan {
        &self.faults
    }

    fn lock(&self) -> MutexGuard<'_, MemFs> {
        self.fs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of successful file syncs so far.
    #[must_use]
    pub fn sync_count(&self) -> u64 {
        self.lock().syncs
    }

    /// Number of successful writes so far.
    #[must_use]
    pub fn write_count(&self) -> u64 {
        self.lock().writes
    }

    /// A file's current bytes (durable or not).
    #[must_use]
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(|f| f.data.clone())
    }

    /// Overwrites a file's bytes (for tamper tests), durably.
    pub fn set_file(&self, name: &str, bytes: Vec<u8>) {
        let mut fs = self.lock();
        let len = bytes.len();
        fs.files.insert(name.to_owned(), MemFile { data: bytes, durable_len: len });
        fs.dir_durable.insert(name.to_owned());
    }

    /// Total bytes stored.
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        self.lock().files.values().map(|f| f.data.len() as u64).sum()
    }

    /// Simulates a power cut: what was not synced is lost, except (per `mode`) a
    /// random part of it chosen by `seed`.
    pub fn crash(&self, mode: CrashMode, seed: u64) {
        let mut rng = SplitMix64(seed);
        let mut fs = self.lock();
        let durable = fs.dir_durable.clone();
        fs.files.retain(|name, _| durable.contains(name));
        for file in fs.files.values_mut() {
            let unsynced = file.data.len().saturating_sub(file.durable_len);
            let keep = match mode {
                CrashMode::DropUnsynced => 0,
                CrashMode::KeepRandomPrefix | CrashMode::Garble => rng.below(unsynced as u64 + 1) as usize,
            };
            file.data.truncate(file.durable_len + keep);
            if mode == CrashMode::Garble && keep > 0 {
                let hits = 1 + rng.below(4);
                for _ in 0..hits {
                    let at = file.durable_len + rng.below(keep as u64) as usize;
                    let zero = rng.below(2) == 0;
                    let run = 1 + rng.below(64) as usize;
                    for b in file.data.iter_mut().skip(at).take(run) {
                        *b = if zero { 0 } else { rng.next_u64() as u8 };
                    }
                }
            }
            file.durable_len = file.data.len();
        }
    }
}

/// A tiny seeded RNG (SplitMix64), enough for fault schedules.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

struct MemSegmentFile {
    storage: MemStorage,
    name: String,
}

impl SegmentFile for MemSegmentFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let faults = &self.storage.faults;
        if faults.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("write"));
        }
        let until = faults.writes_until_failure.load(Ordering::SeqCst);
        if until == 0 {
            return Err(injected("write"));
        }
        if until != u64::MAX {
            faults.writes_until_failure.store(until - 1, Ordering::SeqCst);
        }
        let mut n = bytes.len();
        if faults.short_writes.load(Ordering::SeqCst) && n > 1 {
            n = n.div_ceil(2);
        }
        let capacity = faults.capacity_bytes.load(Ordering::SeqCst);
        let used = self.storage.used_bytes();
        let room = usize::try_from(capacity.saturating_sub(used)).unwrap_or(usize::MAX);
        let full = room < n;
        n = n.min(room);
        let mut fs = self.storage.lock();
        let file = fs.files.get_mut(&self.name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.data.extend_from_slice(bytes.get(..n).unwrap_or_default());
        fs.writes += 1;
        if full && n == 0 {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"));
        }
        Ok(n)
    }

    fn sync(&mut self) -> io::Result<()> {
        let delay = self.storage.faults.sync_delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        if self.storage.faults.fail_syncs.load(Ordering::SeqCst) {
            return Err(injected("sync"));
        }
        let mut fs = self.storage.lock();
        let file = fs.files.get_mut(&self.name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.durable_len = file.data.len();
        fs.syncs += 1;
        Ok(())
    }
}

impl Storage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        if self.faults.fail_reads.load(Ordering::SeqCst) {
            return Err(injected("read"));
        }
        Ok(self.lock().files.keys().cloned().collect())
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        if self.faults.fail_creates.load(Ordering::SeqCst) || self.faults.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("create"));
        }
        let mut fs = self.lock();
        if fs.files.contains_key(name) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        fs.files.insert(name.to_owned(), MemFile::default());
        drop(fs);
        Ok(Box::new(MemSegmentFile { storage: self.clone(), name: name.to_owned() }))
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        if !self.lock().files.contains_key(name) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(Box::new(MemSegmentFile { storage: self.clone(), name: name.to_owned() }))
    }

    fn read(&self, name: &str, offset: u64, len_max: usize) -> io::Result<Vec<u8>> {
        if self.faults.fail_reads.load(Ordering::SeqCst) {
            return Err(injected("read"));
        }
        let fs = self.lock();
        let file = fs.files.get(name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(file.data.len());
        let end = start.saturating_add(len_max).min(file.data.len());
        Ok(file.data.get(start..end).unwrap_or_default().to_vec())
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        let fs = self.lock();
        let file = fs.files.get(name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(file.data.len() as u64)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        if self.faults.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("truncate"));
        }
        let mut fs = self.lock();
        let file = fs.files.get_mut(name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        file.durable_len = file.data.len();
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut fs = self.lock();
        fs.files.remove(name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        fs.dir_durable.remove(name);
        Ok(())
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        if self.faults.fail_writes.load(Ordering::SeqCst) || self.faults.fail_creates.load(Ordering::SeqCst) {
            return Err(injected("replace"));
        }
        self.set_file(name, bytes.to_vec());
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        if self.faults.fail_syncs.load(Ordering::SeqCst) {
            return Err(injected("directory sync"));
        }
        let mut fs = self.lock();
        let names: Vec<String> = fs.files.keys().cloned().collect();
        fs.dir_durable = names.into_iter().collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_drops_unsynced_bytes_and_undirsynced_files() -> io::Result<()> {
        let s = MemStorage::new();
        let mut a = s.create("a")?;
        a.append(b"hello")?;
        a.sync()?;
        s.sync_dir()?;
        a.append(b" world")?;
        let mut b = s.create("b")?;
        b.append(b"x")?;
        b.sync()?;
        s.crash(CrashMode::DropUnsynced, 1);
        assert_eq!(s.file("a"), Some(b"hello".to_vec()));
        assert_eq!(s.file("b"), None);
        Ok(())
    }

    #[test]
    fn full_disk_writes_what_fits_then_fails() -> io::Result<()> {
        let s = MemStorage::new();
        s.faults().capacity_bytes.store(3, Ordering::SeqCst);
        let mut a = s.create("a")?;
        assert_eq!(a.append(b"hello")?, 3);
        assert_eq!(a.append(b"lo").map_err(|e| e.kind()).err(), Some(io::ErrorKind::StorageFull));
        Ok(())
    }
}
