//! All I/O of the log goes through [`Storage`]: a real directory ([`FsStorage`]) or
//! the fault-injecting in-memory one in [`crate::sim`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most directory entries listed. A directory stuffed with millions of files must not
/// exhaust memory at open; a log at the 1 GB disk budget (spec §25.2) has ~64 segments.
pub const DIRECTORY_ENTRIES_MAX: usize = 100_000;

/// An open segment file, appended to at its end.
pub trait SegmentFile: Send {
    /// Appends bytes at the end of the file; may write fewer than given (a short
    /// write), returning how many were written.
    ///
    /// # Errors
    /// The operating system's error.
    fn append(&mut self, bytes: &[u8]) -> io::Result<usize>;
    /// Makes every appended byte durable (`fdatasync`).
    ///
    /// # Errors
    /// The operating system's error. After a failed sync nothing about the file's
    /// durability is known; the log never syncs that file again.
    fn sync(&mut self) -> io::Result<()>;
}

/// A directory of segment files. Names are plain file names (no separators).
pub trait Storage: Send + Sync + fmt::Debug {
    /// The names of the files in the directory (any order).
    ///
    /// # Errors
    /// The operating system's error, or `InvalidData` past [`DIRECTORY_ENTRIES_MAX`].
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates a new, empty file (fails if it exists), opened for appending.
    ///
    /// # Errors
    /// The operating system's error.
    fn create(&self, name: &str) -> io::Result<Box<dyn SegmentFile>>;
    /// Opens an existing file for appending.
    ///
    /// # Errors
    /// The operating system's error.
    fn open_append(&self, name: &str) -> io::Result<Box<dyn SegmentFile>>;
    /// Reads up to `len_max` bytes from `offset`.
    ///
    /// # Errors
    /// The operating system's error.
    fn read(&self, name: &str, offset: u64, len_max: usize) -> io::Result<Vec<u8>>;
    /// The file's length.
    ///
    /// # Errors
    /// The operating system's error.
    fn len(&self, name: &str) -> io::Result<u64>;
    /// Shrinks the file to `len` bytes, durably.
    ///
    /// # Errors
    /// The operating system's error.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Removes the file (durable after [`Self::sync_dir`]).
    ///
    /// # Errors
    /// The operating system's error.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Atomically and durably replaces (or creates) the file with `bytes`.
    ///
    /// # Errors
    /// The operating system's error.
    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Makes creations and removals in the directory durable.
    ///
    /// # Errors
    /// The operating system's error.
    fn sync_dir(&self) -> io::Result<()>;
}

/// A real directory. Files are created with mode 0600 and the directory with 0700:
/// the log is an audit record and may hold sensitive payloads.
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
    /// The exclusive lock of a writer, held while this storage lives: two writers
    /// on one directory would fork the chain.
    _lock: Option<Arc<File>>,
}

/// Name of the lock file a writer holds in each log directory.
pub const LOCK_FILE: &str = "LOCK";

impl FsStorage {
    /// Opens (creating if needed) a log directory.
    ///
    /// # Errors
    /// The operating system's error.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(Self { dir, _lock: None })
    }

    /// Opens (creating if needed) a log directory for writing, holding an exclusive
    /// lock on its `LOCK` file until the storage is dropped.
    ///
    /// # Errors
    /// `WouldBlock` if another process (or another `Wal` in this one) holds the lock;
    /// otherwise the operating system's error.
    pub fn open_locked(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let mut storage = Self::open(dir)?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(storage.dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "wal directory is locked by another writer"));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        storage._lock = Some(Arc::new(file));
        Ok(storage)
    }

    /// Opens an existing directory for reading; fails if it does not exist.
    ///
    /// # Errors
    /// `NotFound` if `dir` is not a directory.
    pub fn open_existing(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "wal directory does not exist"));
        }
        Ok(Self { dir, _lock: None })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> io::Result<PathBuf> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad wal file name"));
        }
        Ok(self.dir.join(name))
    }
}

struct FsSegmentFile(File);

impl SegmentFile for FsSegmentFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if out.len() >= DIRECTORY_ENTRIES_MAX {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "too many files in wal directory"));
            }
            if let Ok(name) = entry.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        let f = OpenOptions::new().append(true).create_new(true).mode(0o600).open(self.path(name)?)?;
        Ok(Box::new(FsSegmentFile(f)))
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        let f = OpenOptions::new().append(true).open(self.path(name)?)?;
        Ok(Box::new(FsSegmentFile(f)))
    }

    fn read(&self, name: &str, offset: u64, len_max: usize) -> io::Result<Vec<u8>> {
        let mut f = File::open(self.path(name)?)?;
        let len = f.metadata()?.len();
        let want = usize::try_from(len.saturating_sub(offset)).unwrap_or(usize::MAX).min(len_max);
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::with_capacity(want);
        f.take(u64::try_from(want).unwrap_or(u64::MAX)).read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(name)?)?.len())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(name)?)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name)?)
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let target = self.path(name)?;
        let tmp = self.dir.join(format!("{name}.repair"));
        {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &target)?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// A storage that skips every sync. **Benchmarks only**: appends are
/// acknowledged before they are durable, so a crash can lose acknowledged
/// records. `maos up --bench-no-fsync` uses it to measure what durability
/// costs; nothing else may.
#[derive(Debug)]
pub struct NoSyncStorage(pub Arc<dyn Storage>);

struct NoSyncFile(Box<dyn SegmentFile>);

impl SegmentFile for NoSyncFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for NoSyncStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        self.0.list()
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(NoSyncFile(self.0.create(name)?)))
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(NoSyncFile(self.0.open_append(name)?)))
    }

    fn read(&self, name: &str, offset: u64, len_max: usize) -> io::Result<Vec<u8>> {
        self.0.read(name, offset, len_max)
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        self.0.len(name)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.0.truncate(name, len)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.0.remove(name)
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.0.replace(name, bytes)
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A storage whose syncs fail while `fail` is set: the fault drill of a disk
/// that stops accepting durable writes (`maos up` with `MAOS_DRILL_DIR`, see
/// `docs/resilience.md`). It can only make the log refuse more: a failed sync
/// freezes the log, as a real one does.
#[derive(Debug)]
pub struct DrillStorage {
    /// The real storage underneath.
    pub inner: Arc<dyn Storage>,
    /// While set, every sync (and every atomic replace) fails.
    pub fail: Arc<std::sync::atomic::AtomicBool>,
}

struct DrillFile {
    file: Box<dyn SegmentFile>,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

fn drilled(fail: &std::sync::atomic::AtomicBool) -> io::Result<()> {
    if fail.load(std::sync::atomic::Ordering::SeqCst) {
        Err(io::Error::other("fault drill: the disk refuses durable writes"))
    } else {
        Ok(())
    }
}

impl SegmentFile for DrillFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.file.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        drilled(&self.fail)?;
        self.file.sync()
    }
}

impl Storage for DrillStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(DrillFile { file: self.inner.create(name)?, fail: self.fail.clone() }))
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(DrillFile { file: self.inner.open_append(name)?, fail: self.fail.clone() }))
    }

    fn read(&self, name: &str, offset: u64, len_max: usize) -> io::Result<Vec<u8>> {
        self.inner.read(name, offset, len_max)
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        self.inner.len(name)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        self.inner.truncate(name, len)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }

    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        drilled(&self.fail)?;
        self.inner.replace(name, bytes)
    }

    fn sync_dir(&self) -> io::Result<()> {
        drilled(&self.fail)?;
        self.inner.sync_dir()
    }
}
