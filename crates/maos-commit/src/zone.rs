//! The Rollback Zone (Rule 5, spec §35, §25.2): one file per snapshot under a
//! directory, written atomically and synced before the effect runs, kept for
//! the effect's hold period, then purged. Survives restarts, so undo and crash
//! recovery work after a crash.

use crate::effector::{Compensable, SNAPSHOT_BYTES_MAX, Snapshot};
use crate::fsutil;
use maos_model::{Intent, IntentId, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Total snapshot bytes kept (spec §25.2: 2 GB): a flood of large writes cannot
/// fill the disk with snapshots; past it, destructive commits fail at stage 3
/// (no destructive action without a snapshot) instead of running unprotected.
pub const ROLLBACK_ZONE_BYTES_DEFAULT: u64 = 2 * 1024 * 1024 * 1024;
/// Snapshots kept at once: bounds the index and the directory scan at open.
pub const ROLLBACK_ZONE_ENTRIES_MAX: usize = 1_000_000;
/// Bytes in one snapshot header line (the intent plus metadata).
const HEADER_BYTES_MAX: usize = 128 * 1024;
const ENTRY_SUFFIX: &str = ".snap";

/// Hold period of a sent message (spec §35: email 60 min).
pub const HOLD_MAIL_MS: u64 = 60 * 60 * 1000;
/// Hold period of a file write or delete (spec §35: file delete 24 h).
pub const HOLD_FILE_MS: u64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    v: u16,
    intent: Intent,
    created_ms: u64,
    hold_until_ms: u64,
    compensable: Compensable,
    undone: bool,
    len: u64,
}

/// What the zone knows about one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneEntry {
    /// When the snapshot was taken.
    pub created: UnixMillis,
    /// End of the hold period: undo is refused from this time on.
    pub hold_until: UnixMillis,
    /// Whether compensation is possible at all.
    pub compensable: Compensable,
    /// Whether an undo already compensated it.
    pub undone: bool,
    /// Stored bytes (file size).
    pub stored_bytes: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: BTreeMap<IntentId, ZoneEntry>,
    used_bytes: u64,
}

/// The on-disk Rollback Zone.
#[derive(Debug)]
pub struct RollbackZone {
    dir: PathBuf,
    bytes_max: u64,
    index: Mutex<Index>,
    damaged: Vec<PathBuf>,
}

impl RollbackZone {
    /// Opens (creating) the zone in `dir` and indexes the snapshots there.
    ///
    /// Damaged snapshot files are skipped and listed in [`RollbackZone::damaged`].
    ///
    /// # Errors
    /// A message if the directory cannot be created or read.
    pub fn open(dir: impl Into<PathBuf>, bytes_max: u64) -> Result<Self, String> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating the rollback zone: {}", e.kind()))?;
        let mut index = Index::default();
        let mut damaged = Vec::new();
        let listing = std::fs::read_dir(&dir).map_err(|e| format!("listing the rollback zone: {}", e.kind()))?;
        for entry in listing {
            let entry = entry.map_err(|e| format!("listing the rollback zone: {}", e.kind()))?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(ENTRY_SUFFIX)) else { continue };
            let Ok(id) = IntentId::parse(stem) else { continue };
            if index.entries.len() >= ROLLBACK_ZONE_ENTRIES_MAX {
                return Err("the rollback zone holds too many snapshots".into());
            }
            let header = match read_header(&entry.path()) {
                Ok((header, _)) => header,
                Err(e) => {
                    // A damaged snapshot loses its undo, not the kernel's boot.
                    tracing::error!(file = %entry.path().display(), error = %e, "damaged rollback snapshot skipped");
                    damaged.push(entry.path());
                    continue;
                }
            };
            let stored_bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            index.used_bytes = index.used_bytes.saturating_add(stored_bytes);
            index.entries.insert(id, entry_of(&header, stored_bytes));
        }
        Ok(Self { dir, bytes_max, index: Mutex::new(index), damaged })
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // Index updates are single inserts/removes; a poisoned lock is consistent.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path_of(&self, id: IntentId) -> PathBuf {
        self.dir.join(format!("{id}{ENTRY_SUFFIX}"))
    }

    /// Stores `snapshot` for `intent`, durably, before the effect runs.
    ///
    /// # Errors
    /// A message if the snapshot is too large, the zone is full, or I/O fails.
    pub fn put(&self, intent: &Intent, snapshot: &Snapshot, now: UnixMillis) -> Result<ZoneEntry, String> {
        if snapshot.bytes.len() > SNAPSHOT_BYTES_MAX {
            return Err(format!("snapshot exceeds {SNAPSHOT_BYTES_MAX} bytes"));
        }
        let header = Header {
            v: 1,
            intent: intent.clone(),
            created_ms: now.0,
            hold_until_ms: now.saturating_add_ms(snapshot.hold_ms).0,
            compensable: snapshot.compensable,
            undone: false,
            len: u64::try_from(snapshot.bytes.len()).unwrap_or(u64::MAX),
        };
        let mut data = serde_json::to_vec(&header).map_err(|e| format!("encoding a snapshot header: {e}"))?;
        data.push(b'\n');
        data.extend_from_slice(&snapshot.bytes);
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        {
            let idx = self.index();
            let replaced = idx.entries.get(&intent.id).map_or(0, |e| e.stored_bytes);
            if idx.entries.len() >= ROLLBACK_ZONE_ENTRIES_MAX {
                return Err("the rollback zone holds too many snapshots".into());
            }
            if idx.used_bytes.saturating_sub(replaced).saturating_add(size) > self.bytes_max {
                return Err(format!("the rollback zone is full ({} bytes)", self.bytes_max));
            }
        }
        fsutil::write_atomic(&self.path_of(intent.id), &data).map_err(|e| format!("writing a snapshot: {e}"))?;
        let entry = entry_of(&header, size);
        let mut idx = self.index();
        let replaced = idx.entries.insert(intent.id, entry).map_or(0, |e| e.stored_bytes);
        idx.used_bytes = idx.used_bytes.saturating_sub(replaced).saturating_add(size);
        Ok(entry)
    }

    /// The entry for an intent, if any.
    #[must_use]
    pub fn entry(&self, id: IntentId) -> Option<ZoneEntry> {
        self.index().entries.get(&id).copied()
    }

    /// Reads a stored snapshot back.
    ///
    /// # Errors
    /// A message if the file is missing or damaged.
    pub fn load(&self, id: IntentId) -> Result<Option<(Intent, Snapshot, ZoneEntry)>, String> {
        let Some(entry) = self.entry(id) else { return Ok(None) };
        let (header, mut reader) = read_header(&self.path_of(id))?;
        let len = usize::try_from(header.len).map_err(|_| "snapshot length out of range".to_owned())?;
        if len > SNAPSHOT_BYTES_MAX {
            return Err("stored snapshot exceeds its bound".into());
        }
        let mut bytes = Vec::with_capacity(len);
        reader
            .by_ref()
            .take(header.len)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading a snapshot: {}", e.kind()))?;
        if bytes.len() != len || header.intent.id != id {
            return Err("stored snapshot is damaged".into());
        }
        let hold_ms = header.hold_until_ms.saturating_sub(header.created_ms);
        Ok(Some((header.intent, Snapshot { hold_ms, compensable: header.compensable, bytes }, entry)))
    }

    /// Marks a snapshot as undone (durably), so a second undo is refused.
    ///
    /// # Errors
    /// A message if the entry is missing or I/O fails.
    pub fn mark_undone(&self, id: IntentId) -> Result<(), String> {
        let path = self.path_of(id);
        let data = std::fs::read(&path).map_err(|e| format!("reading a snapshot: {}", e.kind()))?;
        let split = data.iter().position(|b| *b == b'\n').ok_or("stored snapshot is damaged")?;
        let (head, rest) = data.split_at(split);
        let mut header: Header = serde_json::from_slice(head).map_err(|_| "stored snapshot is damaged".to_owned())?;
        header.undone = true;
        let mut out = serde_json::to_vec(&header).map_err(|e| format!("encoding a snapshot header: {e}"))?;
        out.extend_from_slice(rest);
        fsutil::write_atomic(&path, &out).map_err(|e| format!("writing a snapshot: {e}"))?;
        let mut idx = self.index();
        if let Some(entry) = idx.entries.get_mut(&id) {
            entry.undone = true;
        }
        Ok(())
    }

    /// Drops a snapshot (after its commit failed and was rolled back).
    ///
    /// # Errors
    /// A message if the file cannot be removed.
    pub fn remove(&self, id: IntentId) -> Result<(), String> {
        match std::fs::remove_file(self.path_of(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing a snapshot: {}", e.kind())),
        }
        let mut idx = self.index();
        if let Some(old) = idx.entries.remove(&id) {
            idx.used_bytes = idx.used_bytes.saturating_sub(old.stored_bytes);
        }
        Ok(())
    }

    /// Deletes snapshots whose hold period ended before `now`; returns how many.
    ///
    /// # Errors
    /// A message if a file cannot be removed.
    pub fn purge_expired(&self, now: UnixMillis) -> Result<usize, String> {
        let expired: Vec<IntentId> =
            self.index().entries.iter().filter(|(_, e)| e.hold_until <= now).map(|(id, _)| *id).collect();
        for id in &expired {
            self.remove(*id)?;
        }
        Ok(expired.len())
    }

    /// Bytes stored.
    #[must_use]
    pub fn used_bytes(&self) -> u64 {
        self.index().used_bytes
    }

    /// Snapshot files skipped at open because they were damaged (their undo is
    /// lost; the operator should look).
    #[must_use]
    pub fn damaged(&self) -> &[PathBuf] {
        &self.damaged
    }

    /// Whether the zone can take a snapshot now (Rule 5): its directory
    /// exists and is writable. Probed by the kernel's watchdog.
    #[must_use]
    pub fn ready(&self) -> bool {
        std::fs::metadata(&self.dir).is_ok_and(|m| m.is_dir() && !m.permissions().readonly())
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn entry_of(header: &Header, stored_bytes: u64) -> ZoneEntry {
    ZoneEntry {
        created: UnixMillis(header.created_ms),
        hold_until: UnixMillis(header.hold_until_ms),
        compensable: header.compensable,
        undone: header.undone,
        stored_bytes,
    }
}

fn read_header(path: &Path) -> Result<(Header, BufReader<std::fs::File>), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening a snapshot: {}", e.kind()))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let limit = u64::try_from(HEADER_BYTES_MAX).unwrap_or(u64::MAX);
    reader
        .by_ref()
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading a snapshot: {}", e.kind()))?;
    if line.last() != Some(&b'\n') {
        return Err("stored snapshot header is damaged or too long".into());
    }
    line.pop();
    let header: Header = serde_json::from_slice(&line).map_err(|_| "stored snapshot header is damaged".to_owned())?;
    Ok((header, reader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maos_model::{AgentId, EffectClass, IfcLevel};

    fn intent(n: u8) -> Intent {
        Intent {
            id: IntentId::new_v7(1_700_000_000_000, [n; 10]),
            agent: AgentId::new("a").unwrap(),
            action: "fs.write".into(),
            resources: Vec::new(),
            args: std::collections::BTreeMap::new(),
            effect: EffectClass::Write,
            cost: 0,
            sink_level: IfcLevel::Internal,
            requires_integrity: false,
            reads: Vec::new(),
            sensitive_args: Vec::new(),
            provenance_deny: false,
            world_state_hash: None,
        }
    }

    fn snap(bytes: &[u8]) -> Snapshot {
        Snapshot { hold_ms: 1000, compensable: Compensable::Yes, bytes: bytes.to_vec() }
    }

    #[test]
    fn snapshots_round_trip_survive_reopen_and_respect_the_byte_bound() {
        let dir = tempfile::tempdir().unwrap();
        let zone = RollbackZone::open(dir.path(), 4096).unwrap();
        let entry = zone.put(&intent(1), &snap(b"previous"), UnixMillis(10)).unwrap();
        assert_eq!(entry.hold_until, UnixMillis(1010));
        assert!(zone.put(&intent(2), &snap(&[0; 8192]), UnixMillis(10)).is_err(), "over the zone bound");
        let reopened = RollbackZone::open(dir.path(), 4096).unwrap();
        let (back, snapshot, _) = reopened.load(intent(1).id).unwrap().unwrap();
        assert_eq!(back.id, intent(1).id);
        assert_eq!(snapshot, snap(b"previous"));
        assert_eq!(reopened.used_bytes(), zone.used_bytes());
        reopened.mark_undone(intent(1).id).unwrap();
        assert!(RollbackZone::open(dir.path(), 4096).unwrap().entry(intent(1).id).unwrap().undone);
        assert_eq!(reopened.purge_expired(UnixMillis(1010)).unwrap(), 1);
        assert_eq!(reopened.used_bytes(), 0);
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let zone = RollbackZone::open(dir.path(), 4096).unwrap();
        zone.put(&intent(1), &snap(b"abc"), UnixMillis(0)).unwrap();
        let path = dir.path().join(format!("{}{ENTRY_SUFFIX}", intent(1).id));
        let mut data = std::fs::read(&path).unwrap();
        data.truncate(data.len() - 2);
        std::fs::write(&path, &data).unwrap();
        assert!(zone.load(intent(1).id).is_err());
        std::fs::write(&path, b"not json\n").unwrap();
        let reopened = RollbackZone::open(dir.path(), 4096).unwrap();
        assert_eq!(reopened.damaged(), [path]);
        assert!(reopened.entry(intent(1).id).is_none());
    }
}
