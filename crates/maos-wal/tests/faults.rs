//! Fault injection through the `Storage` trait and dual copies (spec §38.3):
//! failing writes and syncs, short writes, a full disk, diverged and damaged copies.
//! Invariant everywhere: no acknowledged record is ever lost, nothing panics.

#![expect(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use maos_crypto::SigningKey;
use maos_model::{Profile, UnixMillis};
use maos_wal::sim::{CrashMode, MemStorage, SplitMix64};
use maos_wal::{
    CopyId, CriticalEventKind, HealthState, LogReader, Lsn, ManualClock, RecordKind, StateDigest, Wal, WalConfig,
    WalError, verify_storage,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const KIND: RecordKind = RecordKind(0x0100);

fn key() -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seeds(&[7; 64]).unwrap())
}

fn config(primary: &MemStorage, secondary: Option<&MemStorage>) -> WalConfig {
    let mut c = WalConfig::with_storage(Profile::Standard, Arc::new(primary.clone()))
        .signer(key(), Arc::new(|| StateDigest([1; 32])))
        .clock(Arc::new(ManualClock::new(UnixMillis(1_750_000_000_000))))
        .segment_bytes_target(8192);
    if let Some(s) = secondary {
        c = c.secondary_storage(Arc::new(s.clone()));
    }
    c
}

fn records(storage: &MemStorage) -> BTreeMap<u64, Vec<u8>> {
    LogReader::new(Arc::new(storage.clone()))
        .records()
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.kind == KIND)
        .map(|r| (r.lsn.0, r.payload))
        .collect()
}

fn assert_contains(storage: &MemStorage, acked: &BTreeMap<u64, Vec<u8>>) {
    let present = records(storage);
    for (lsn, payload) in acked {
        assert_eq!(present.get(lsn), Some(payload), "acknowledged lsn {lsn} lost");
    }
}

fn segments(s: &MemStorage) -> Vec<(String, Vec<u8>)> {
    use maos_wal::Storage as _;
    let mut names = s.list().unwrap();
    names.sort();
    names.into_iter().map(|n| (n.clone(), s.file(&n).unwrap())).collect()
}

#[test]
fn ct_wal_06_secondary_failure_raises_critical_and_continues() {
    let (p, s) = (MemStorage::new(), MemStorage::new());
    let (wal, _) = Wal::open(config(&p, Some(&s))).unwrap();
    let mut acked = BTreeMap::new();
    for i in 0..20u32 {
        let l = wal.append(KIND, &i.to_le_bytes()).unwrap();
        acked.insert(l.lsn().0, i.to_le_bytes().to_vec());
    }
    assert_eq!(segments(&p), segments(&s), "both copies written identically");
    assert_eq!(wal.health().state, HealthState::Healthy);
    s.faults().fail_syncs.store(true, Ordering::SeqCst);
    for i in 20..40u32 {
        let l = wal.append(KIND, &i.to_le_bytes()).unwrap();
        acked.insert(l.lsn().0, i.to_le_bytes().to_vec());
    }
    let health = wal.health();
    assert_eq!(health.state, HealthState::Degraded);
    let event = health.events.iter().find(|e| e.kind == CriticalEventKind::CopyFailed).unwrap();
    assert_eq!(event.copy, Some(CopyId::Secondary));
    assert_eq!(wal.critical_events_since(event.seq).len(), 1);
    drop(wal);
    p.crash(CrashMode::DropUnsynced, 1);
    s.crash(CrashMode::KeepRandomPrefix, 2);
    assert_contains(&p, &acked);
    // Restart with the secondary back: it is rebuilt from the primary (CT-WAL-08).
    s.faults().fail_syncs.store(false, Ordering::SeqCst);
    let (wal, report) = Wal::open(config(&p, Some(&s))).unwrap();
    assert_eq!(report.source_copy, CopyId::Primary);
    assert_eq!(report.repairs.first().map(|r| r.target), Some(CopyId::Secondary));
    assert_eq!(segments(&p), segments(&s));
    assert_eq!(wal.health().state, HealthState::Healthy);
}

#[test]
fn ct_wal_06_primary_failure_continues_on_secondary() {
    let (p, s) = (MemStorage::new(), MemStorage::new());
    let (wal, _) = Wal::open(config(&p, Some(&s))).unwrap();
    wal.append(KIND, b"before").unwrap();
    p.faults().fail_writes.store(true, Ordering::SeqCst);
    let l = wal.append(KIND, b"after").unwrap();
    assert_eq!(wal.health().state, HealthState::Degraded);
    drop(wal);
    p.faults().fail_writes.store(false, Ordering::SeqCst);
    let (_, report) = Wal::open(config(&p, Some(&s))).unwrap();
    assert_eq!(report.source_copy, CopyId::Secondary, "the longer valid chain wins");
    assert_eq!(records(&p).get(&l.lsn().0).map(Vec::as_slice), Some(&b"after"[..]));
}

/// The audit sweep beside a copy that fails mid-pass: the copy it was
/// reading stops receiving records (it would look cut short of the head),
/// so the step's verdict is dropped and the sweep goes on with the healthy
/// copy, without ever reporting damage.
#[test]
fn sweep_moves_to_the_healthy_copy_when_the_one_it_reads_fails() {
    let (p, s) = (MemStorage::new(), MemStorage::new());
    let (wal, _) = Wal::open(config(&p, Some(&s))).unwrap();
    let mut cursor = maos_wal::SweepCursor::default();
    let mut passes = 0;
    for i in 0..400u32 {
        if i == 150 {
            p.faults().fail_writes.store(true, Ordering::SeqCst);
        }
        wal.append(KIND, format!("record {i} {:0>120}", i).as_bytes()).unwrap();
        if i % 10 == 0 {
            let step = wal.sweep_step(&mut cursor, 1).unwrap_or_else(|e| panic!("after record {i}: {e}"));
            passes += u32::from(step.wrapped);
        }
    }
    assert_eq!(wal.health().state, HealthState::Degraded, "the primary failed");
    let mut wrapped = false;
    for _ in 0..1_000 {
        if wal.sweep_step(&mut cursor, 8).unwrap().wrapped {
            wrapped = true;
            break;
        }
    }
    assert!(wrapped && passes >= 1, "a full pass on the secondary ({passes} passes before)");
}

#[test]
fn ct_wal_07_both_copies_failing_is_commit_freeze() {
    let (p, s) = (MemStorage::new(), MemStorage::new());
    let (wal, _) = Wal::open(config(&p, Some(&s))).unwrap();
    let ok = wal.append(KIND, b"committed").unwrap();
    p.faults().fail_writes.store(true, Ordering::SeqCst);
    s.faults().fail_syncs.store(true, Ordering::SeqCst);
    let err = wal.append(KIND, b"never acknowledged").unwrap_err();
    assert_eq!(err.code(), "WAL-COMMIT-FREEZE");
    // Freeze is sticky, even once the disks come back: an operator must restart.
    p.faults().fail_writes.store(false, Ordering::SeqCst);
    s.faults().fail_syncs.store(false, Ordering::SeqCst);
    assert!(matches!(wal.append(KIND, b"x"), Err(WalError::CommitFreeze { .. })));
    assert!(matches!(wal.checkpoint(StateDigest::default()), Err(WalError::CommitFreeze { .. })));
    let health = wal.health();
    assert_eq!(health.state, HealthState::CommitFreeze);
    assert!(health.events.iter().any(|e| e.kind == CriticalEventKind::CommitFreeze));
    drop(wal);
    p.crash(CrashMode::Garble, 3);
    s.crash(CrashMode::Garble, 4);
    let (wal, _) = Wal::open(config(&p, Some(&s))).unwrap();
    assert_eq!(wal.reader().get(ok.lsn()).unwrap().payload, b"committed");
}

#[test]
fn ct_wal_08_truncated_copy_is_repaired_from_the_longer_chain() {
    for damaged_is_primary in [false, true] {
        let (p, s) = (MemStorage::new(), MemStorage::new());
        let (wal, _) = Wal::open(config(&p, Some(&s))).unwrap();
        for i in 0..50u32 {
            wal.append(KIND, format!("{i:0>100}").as_bytes()).unwrap();
        }
        drop(wal);
        let (damaged, healthy) = if damaged_is_primary { (&p, &s) } else { (&s, &p) };
        let (last_name, bytes) = segments(damaged).pop().unwrap();
        damaged.set_file(&last_name, bytes[..bytes.len() - 77].to_vec());
        let (wal, report) = Wal::open(config(&p, Some(&s))).unwrap();
        let repair = report.repairs.first().unwrap();
        let healthy_id = if damaged_is_primary { CopyId::Secondary } else { CopyId::Primary };
        assert_eq!((report.source_copy, repair.source), (healthy_id, healthy_id));
        assert!(repair.target_head_before < repair.source_head);
        assert_eq!(segments(damaged), segments(healthy));
        assert_eq!(records(&p).len(), 50);
        wal.append(KIND, b"after repair").unwrap();
        assert_eq!(segments(&p), segments(&s));
    }
}

#[test]
fn damaged_copy_is_rebuilt_and_both_damaged_refuses() {
    let (p, s) = (MemStorage::new(), MemStorage::new());
    let (wal, _) = Wal::open(config(&p, Some(&s))).unwrap();
    for i in 0..200u32 {
        wal.append(KIND, format!("{i:0>100}").as_bytes()).unwrap();
    }
    drop(wal);
    let (name, mut bytes) = segments(&p).into_iter().nth(1).unwrap();
    bytes[300] ^= 4;
    p.set_file(&name, bytes.clone());
    let (_, report) = Wal::open(config(&p, Some(&s))).unwrap();
    assert_eq!(report.source_copy, CopyId::Secondary);
    assert!(report.repairs.first().unwrap().target_fault.as_deref().unwrap_or("").contains("crc"));
    assert_eq!(segments(&p), segments(&s));
    // Both copies damaged: Emergency Mode.
    p.set_file(&name, bytes.clone());
    s.set_file(&name, bytes);
    let err = Wal::open(config(&p, Some(&s))).unwrap_err();
    assert_eq!(err.code(), "WAL-CRC");
}

#[test]
fn forked_copies_refuse_to_open() {
    let (p, s) = (MemStorage::new(), MemStorage::new());
    let (wal, _) = Wal::open(config(&p, None)).unwrap();
    wal.append(KIND, b"one history").unwrap();
    drop(wal);
    let (wal, _) = Wal::open(config(&s, None)).unwrap();
    wal.append(KIND, b"another history").unwrap();
    wal.append(KIND, b"longer").unwrap();
    drop(wal);
    assert_eq!(Wal::open(config(&p, Some(&s))).unwrap_err().code(), "WAL-FORK");
}

#[test]
fn failing_syncs_on_a_single_copy_freeze_without_losing_acknowledged_records() {
    let p = MemStorage::new();
    let (wal, _) = Wal::open(config(&p, None)).unwrap();
    let mut acked = BTreeMap::new();
    for i in 0..30u32 {
        acked.insert(wal.append(KIND, &i.to_le_bytes()).unwrap().lsn().0, i.to_le_bytes().to_vec());
    }
    p.faults().fail_syncs.store(true, Ordering::SeqCst);
    assert_eq!(wal.append(KIND, b"lost").unwrap_err().code(), "WAL-COMMIT-FREEZE");
    drop(wal);
    p.crash(CrashMode::DropUnsynced, 9);
    p.faults().fail_syncs.store(false, Ordering::SeqCst);
    let (_, report) = Wal::open(config(&p, None)).unwrap();
    assert_eq!(report.head_lsn.0, *acked.keys().last().unwrap());
    assert_contains(&p, &acked);
}

#[test]
fn short_writes_are_completed() {
    let (p, s) = (MemStorage::new(), MemStorage::new());
    p.faults().short_writes.store(true, Ordering::SeqCst);
    s.faults().short_writes.store(true, Ordering::SeqCst);
    let (wal, _) = Wal::open(config(&p, Some(&s))).unwrap();
    let mut acked = BTreeMap::new();
    for i in 0..40u32 {
        let payload = format!("{i:0>300}").into_bytes();
        acked.insert(wal.append(KIND, &payload).unwrap().lsn().0, payload);
    }
    assert_eq!(wal.health().state, HealthState::Healthy);
    drop(wal);
    p.crash(CrashMode::DropUnsynced, 1);
    assert_contains(&p, &acked);
    verify_storage(&p, &[key().verifying_key().clone()]).unwrap();
}

#[test]
fn full_disk_freezes_and_keeps_what_was_acknowledged() {
    let p = MemStorage::new();
    p.faults().capacity_bytes.store(20_000, Ordering::SeqCst);
    let (wal, _) = Wal::open(config(&p, None)).unwrap();
    let mut acked = BTreeMap::new();
    let mut froze = false;
    for i in 0..200u32 {
        let payload = format!("{i:0>300}").into_bytes();
        match wal.append(KIND, &payload) {
            Ok(l) => {
                acked.insert(l.lsn().0, payload);
            }
            Err(e) => {
                assert_eq!(e.code(), "WAL-COMMIT-FREEZE");
                froze = true;
                break;
            }
        }
    }
    assert!(froze && acked.len() > 10);
    drop(wal);
    p.crash(CrashMode::KeepRandomPrefix, 5);
    p.faults().capacity_bytes.store(u64::MAX, Ordering::SeqCst);
    let (wal, _) = Wal::open(config(&p, None)).unwrap();
    assert_contains(&p, &acked);
    wal.append(KIND, b"disk freed").unwrap();
}

/// A seeded simulation: random faults on either copy, random power cuts with torn
/// and garbled tails, reopen, check. Prints the seed of any failure.
#[test]
fn simulated_faults_and_power_cuts_never_lose_acknowledged_records() {
    let rounds: u64 = std::env::var("MAOS_SIM_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    for seed in 0..rounds {
        let mut rng = SplitMix64(seed);
        let (p, s) = (MemStorage::new(), MemStorage::new());
        let dual = rng.below(3) != 0;
        let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for life in 0..4 {
            for st in [&p, &s] {
                st.faults().fail_writes.store(false, Ordering::SeqCst);
                st.faults().fail_syncs.store(false, Ordering::SeqCst);
                st.faults().writes_until_failure.store(u64::MAX, Ordering::SeqCst);
            }
            let opened = Wal::open(config(&p, dual.then_some(&s)));
            let (wal, _) = match opened {
                Ok(w) => w,
                Err(e) => panic!("seed {seed} life {life}: open failed: {e}"),
            };
            for st in [&p, &s] {
                if rng.below(3) == 0 {
                    st.faults().writes_until_failure.store(rng.below(40), Ordering::SeqCst);
                }
                if rng.below(6) == 0 {
                    st.faults().fail_syncs.store(true, Ordering::SeqCst);
                }
                st.faults().short_writes.store(rng.below(4) == 0, Ordering::SeqCst);
            }
            for i in 0..rng.below(80) {
                let payload = format!("{seed}-{life}-{i}").into_bytes();
                match wal.append(KIND, &payload) {
                    Ok(l) => {
                        assert!(acked.insert(l.lsn().0, payload).is_none(), "seed {seed}: lsn reused");
                    }
                    Err(WalError::CommitFreeze { .. }) => break,
                    Err(e) => panic!("seed {seed}: unexpected {e}"),
                }
            }
            drop(wal);
            let mode = [CrashMode::DropUnsynced, CrashMode::KeepRandomPrefix, CrashMode::Garble][rng.below(3) as usize];
            p.crash(mode, rng.next_u64());
            s.crash(mode, rng.next_u64());
        }
        for st in [&p, &s] {
            st.faults().fail_writes.store(false, Ordering::SeqCst);
            st.faults().fail_syncs.store(false, Ordering::SeqCst);
            st.faults().writes_until_failure.store(u64::MAX, Ordering::SeqCst);
            st.faults().short_writes.store(false, Ordering::SeqCst);
        }
        let (wal, _) =
            Wal::open(config(&p, dual.then_some(&s))).unwrap_or_else(|e| panic!("seed {seed}: final open: {e}"));
        let present: BTreeMap<u64, Vec<u8>> = wal
            .reader()
            .records()
            .unwrap()
            .map(|r| r.unwrap())
            .filter(|r| r.kind == KIND)
            .map(|r| (r.lsn.0, r.payload))
            .collect();
        for (lsn, payload) in &acked {
            assert_eq!(present.get(lsn), Some(payload), "seed {seed}: acknowledged lsn {lsn} lost");
        }
        verify_storage(&p, &[key().verifying_key().clone()]).unwrap_or_else(|e| panic!("seed {seed}: verify: {e}"));
        assert!(wal.head().unwrap().0 >= Lsn(acked.keys().last().copied().unwrap_or(1)));
    }
}
