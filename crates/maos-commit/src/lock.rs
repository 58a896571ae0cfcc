//! The per-resource lock table (spec §13 stage 2): exclusive locks, never
//! system-wide, taken in sorted order (no lock-order deadlock), bounded in
//! number, each with a timeout after which the holder's commit is rolled back.

use crate::error::FailReason;
use maos_model::IntentId;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a commit may hold a resource lock (spec §13: 30 s). A hung or
/// slow effect cannot keep other commits off a resource past this.
pub const LOCK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Locks held at once: an agent flooding distinct resources cannot grow the
/// table without bound.
pub const LOCKS_MAX: usize = 65_536;
/// Bytes in one lock key (keys embed paths and hosts).
pub const LOCK_KEY_BYTES_MAX: usize = 2048;

#[derive(Debug)]
struct Held {
    intent: IntentId,
    since: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    held: Mutex<BTreeMap<String, Held>>,
    freed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Held>> {
        // A panic while holding this mutex cannot leave the map half-updated
        // (every update is one insert or remove), so a poisoned lock is usable.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Exclusive per-resource locks.
#[derive(Debug, Clone, Default)]
pub struct LockTable {
    inner: Arc<Inner>,
}

/// Locks held by one commit; released on drop.
#[derive(Debug)]
#[must_use = "the locks are released when the guard drops"]
pub struct LockGuard {
    inner: Arc<Inner>,
    keys: Vec<String>,
    intent: IntentId,
}

impl LockTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every key for `intent`, waiting up to `wait` for keys another
    /// commit holds. Keys are deduplicated and taken in sorted order, all or none.
    ///
    /// # Errors
    /// [`FailReason::LockBusy`] after `wait`, [`FailReason::LockTableFull`] at
    /// [`LOCKS_MAX`], [`FailReason::Effect`] for an oversized key.
    pub fn acquire(&self, intent: IntentId, keys: &[String], wait: Duration) -> Result<LockGuard, FailReason> {
        let mut keys: Vec<String> = keys.to_vec();
        keys.sort();
        keys.dedup();
        if keys.iter().any(|k| k.len() > LOCK_KEY_BYTES_MAX) {
            return Err(FailReason::Effect(crate::EffectError::TooLarge { what: "lock key", max: LOCK_KEY_BYTES_MAX }));
        }
        let deadline = Instant::now().checked_add(wait).unwrap_or_else(Instant::now);
        let mut held = self.inner.lock();
        loop {
            let busy = keys.iter().find(|k| held.get(*k).is_some_and(|h| h.intent != intent));
            match busy {
                None => break,
                Some(key) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(FailReason::LockBusy(key.clone()));
                    }
                    let (next, _) = self
                        .inner
                        .freed
                        .wait_timeout(held, deadline.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner);
                    held = next;
                }
            }
        }
        let new_keys = keys.iter().filter(|k| !held.contains_key(*k)).count();
        if held.len().saturating_add(new_keys) > LOCKS_MAX {
            return Err(FailReason::LockTableFull);
        }
        let now = Instant::now();
        for key in &keys {
            held.insert(key.clone(), Held { intent, since: now });
        }
        drop(held);
        Ok(LockGuard { inner: Arc::clone(&self.inner), keys, intent })
    }

    /// Number of locks held.
    #[must_use]
    pub fn held(&self) -> usize {
        self.inner.lock().len()
    }

    /// Locks held longer than `timeout`, with their intents (for the kernel's
    /// watchdog; the pipeline enforces the timeout itself).
    #[must_use]
    pub fn overdue(&self, timeout: Duration) -> Vec<(String, IntentId)> {
        let held = self.inner.lock();
        held.iter().filter(|(_, h)| h.since.elapsed() > timeout).map(|(k, h)| (k.clone(), h.intent)).collect()
    }
}

impl LockGuard {
    /// The keys held.
    #[must_use]
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut held = self.inner.lock();
        for key in &self.keys {
            if held.get(key).is_some_and(|h| h.intent == self.intent) {
                held.remove(key);
            }
        }
        drop(held);
        self.inner.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> IntentId {
        IntentId::new_v7(1_700_000_000_000, [n; 10])
    }

    #[test]
    fn exclusive_per_resource_and_released_on_drop() {
        let table = LockTable::new();
        let a = table.acquire(id(1), &["fs:/a".into(), "fs:/b".into()], Duration::ZERO);
        assert!(a.is_ok());
        let b = table.acquire(id(2), &["fs:/b".into()], Duration::from_millis(20));
        assert!(matches!(b, Err(FailReason::LockBusy(ref k)) if k == "fs:/b"));
        let c = table.acquire(id(3), &["fs:/c".into()], Duration::ZERO);
        assert!(c.is_ok(), "locks are per resource, never system-wide");
        drop(a);
        assert!(table.acquire(id(2), &["fs:/b".into()], Duration::ZERO).is_ok());
    }

    #[test]
    fn a_waiter_gets_the_lock_when_it_is_freed() {
        let table = LockTable::new();
        let a = table.acquire(id(1), &["k".into()], Duration::ZERO);
        let t2 = table.clone();
        let waiter = std::thread::spawn(move || t2.acquire(id(2), &["k".into()], Duration::from_secs(5)).is_ok());
        std::thread::sleep(Duration::from_millis(30));
        drop(a);
        assert!(waiter.join().unwrap_or(false));
        assert_eq!(table.held(), 0);
    }
}
