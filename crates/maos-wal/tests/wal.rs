//! Behaviour of the log through its public API: durability, group commit,
//! checkpoints, retention, encryption, reading.

#![expect(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use maos_crypto::{SealingKey, SigningKey};
use maos_model::{Profile, UnixMillis};
use maos_wal::sim::{CrashMode, MemStorage};
use maos_wal::{
    Fault, LegalHold, LogReader, Lsn, ManualClock, PAYLOAD_BYTES_MAX, PayloadState, RecordKind, SignatureCheck,
    StateDigest, Storage, Wal, WalConfig, WalError, verify_storage,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;

const KIND: RecordKind = RecordKind(0x0100);
const DAY_MS: u64 = 86_400_000;
const T0: UnixMillis = UnixMillis(1_750_000_000_000);

fn key(seed: u8) -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seeds(&[seed; 64]).unwrap())
}

fn config(storage: &MemStorage, clock: &Arc<ManualClock>) -> WalConfig {
    WalConfig::with_storage(Profile::Standard, Arc::new(storage.clone()))
        .signer(key(7), Arc::new(|| StateDigest([1; 32])))
        .clock(clock.clone())
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

/// A stand-in fold for retention: the state "through" the head it is given.
#[expect(clippy::unnecessary_wraps, reason = "the shape apply_retention takes")]
fn state(head: Lsn) -> Result<Vec<u8>, String> {
    Ok(format!("state through {head}").into_bytes())
}

fn payloads(reader: &LogReader) -> Vec<(u64, Vec<u8>)> {
    reader.records().unwrap().map(|r| r.unwrap()).filter(|r| r.kind == KIND).map(|r| (r.lsn.0, r.payload)).collect()
}

#[test]
fn wal_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wal>();
}

#[test]
fn acknowledged_records_survive_a_power_cut() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, report) = Wal::open(config(&storage, &clock)).unwrap();
    assert!(report.created);
    assert_eq!(report.head_lsn, Lsn(1), "genesis is lsn 1");
    let mut acked = Vec::new();
    for i in 0..250u32 {
        let p = format!("record {i}").into_bytes();
        acked.push((wal.append(KIND, &p).unwrap().lsn().0, p));
    }
    drop(wal);
    storage.crash(CrashMode::DropUnsynced, 1);
    let (wal, report) = Wal::open(config(&storage, &clock)).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.checkpoint_signature, SignatureCheck::Verified);
    assert_eq!(payloads(&wal.reader()), acked);
    let audit = verify_storage(&storage, &[key(7).verifying_key().clone()]).unwrap();
    assert_eq!(audit.first_lsn, Lsn(1));
    assert!(audit.max_records_between_checkpoints <= 100, "CT-WAL-10: {audit:?}");
    assert_eq!(audit.checkpoints, 2);
}

#[test]
fn single_appender_pays_one_sync_per_append() {
    let storage = MemStorage::new();
    let (wal, _) = Wal::open(WalConfig::with_storage(Profile::Standard, Arc::new(storage.clone()))).unwrap();
    let before = storage.sync_count();
    for _ in 0..20 {
        wal.append(KIND, b"x").unwrap();
    }
    assert_eq!(storage.sync_count() - before, 20);
}

#[test]
fn concurrent_appenders_share_syncs() {
    let storage = MemStorage::new();
    storage.faults().sync_delay_us.store(2000, Ordering::SeqCst);
    let (wal, _) = Wal::open(WalConfig::with_storage(Profile::Standard, Arc::new(storage.clone()))).unwrap();
    let wal = Arc::new(wal);
    let before = storage.sync_count();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                (0..20).map(|i| wal.append(KIND, format!("{t}-{i}").as_bytes()).unwrap().lsn().0).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut lsns: Vec<u64> = threads.into_iter().flat_map(|h| h.join().unwrap()).collect();
    lsns.sort_unstable();
    assert_eq!(lsns, (2..2 + 640).collect::<Vec<_>>(), "every append gets a distinct, contiguous lsn");
    let syncs = storage.sync_count() - before;
    assert!(syncs * 4 < 640, "group commit should share syncs, got {syncs} syncs for 640 appends");
}

#[test]
fn ct_wal_10_checkpoint_after_five_minutes_of_appends() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock)).unwrap();
    wal.append(KIND, b"a").unwrap();
    clock.advance_ms(4 * 60 * 1000);
    wal.append(KIND, b"b").unwrap();
    assert!(!wal.checkpoint_due().unwrap());
    clock.advance_ms(61 * 1000);
    assert!(wal.checkpoint_due().unwrap());
    let logged = wal.append(KIND, b"c").unwrap();
    let last = wal.reader().tail(1).unwrap();
    assert_eq!(last.first().map(|r| (r.lsn, r.kind)), Some((Lsn(logged.lsn().0 + 1), RecordKind::CHECKPOINT)));
    let cp = last.first().and_then(maos_wal::Record::checkpoint).unwrap();
    assert_eq!(cp.head_lsn, logged.lsn());
    assert_eq!(cp.state, StateDigest([1; 32]));
    // Idle: the periodic task writes the checkpoint.
    wal.append(KIND, b"d").unwrap();
    assert_eq!(wal.maybe_checkpoint().unwrap(), None);
    clock.advance_ms(5 * 60 * 1000);
    assert!(wal.maybe_checkpoint().unwrap().is_some());
    assert_eq!(wal.maybe_checkpoint().unwrap(), None, "nothing new to sign");
}

#[test]
fn explicit_checkpoint_signs_the_given_state() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock)).unwrap();
    let a = wal.append(KIND, b"a").unwrap();
    let c = wal.checkpoint(StateDigest([9; 32])).unwrap();
    let rec = wal.reader().get(c.lsn()).unwrap();
    let cp = rec.checkpoint().unwrap();
    assert_eq!((cp.head_lsn, cp.head_hash, cp.state), (a.lsn(), a.hash(), StateDigest([9; 32])));
    cp.verify(key(7).verifying_key()).unwrap();
    let (unsigned, _) = Wal::open(WalConfig::with_storage(Profile::Standard, Arc::new(MemStorage::new()))).unwrap();
    assert_eq!(unsigned.checkpoint(StateDigest::default()).unwrap_err().code(), "WAL-NO-SIGNER");
}

#[test]
fn open_checks_the_last_checkpoint_signer() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock)).unwrap();
    wal.append(KIND, b"a").unwrap();
    wal.checkpoint(StateDigest::default()).unwrap();
    drop(wal);
    let other = WalConfig::with_storage(Profile::Standard, Arc::new(storage.clone()))
        .signer(key(8), Arc::new(|| StateDigest([1; 32])));
    let err = Wal::open(other).unwrap_err();
    assert_eq!(err.code(), "WAL-CHECKPOINT-KEY");
    let rotated = WalConfig::with_storage(Profile::Standard, Arc::new(storage.clone()))
        .signer(key(8), Arc::new(|| StateDigest([1; 32])))
        .trust_key(key(7).verifying_key().clone());
    let (_, report) = Wal::open(rotated).unwrap();
    assert_eq!(report.checkpoint_signature, SignatureCheck::Verified);
}

#[test]
fn caller_input_is_bounded() {
    let (wal, _) = Wal::open(WalConfig::with_storage(Profile::Standard, Arc::new(MemStorage::new()))).unwrap();
    assert_eq!(wal.append(RecordKind::CHECKPOINT, b"forged").unwrap_err().code(), "WAL-KIND");
    assert_eq!(wal.append(RecordKind(0x00FF), b"x").unwrap_err().code(), "WAL-KIND");
    let big = vec![0u8; PAYLOAD_BYTES_MAX + 1];
    assert_eq!(
        wal.append(KIND, &big).unwrap_err(),
        WalError::TooLarge { len: PAYLOAD_BYTES_MAX + 1, max: PAYLOAD_BYTES_MAX }
    );
    let max = vec![0u8; PAYLOAD_BYTES_MAX];
    wal.append(KIND, &max).unwrap();
    assert_eq!(wal.reader().tail(1).unwrap().first().map(|r| r.payload.len()), Some(PAYLOAD_BYTES_MAX));
    assert_eq!(wal.reader().tail(maos_wal::TAIL_RECORDS_MAX + 1).unwrap_err().code(), "WAL-LIMIT");
}

#[test]
fn encryption_required_for_hardened_and_isolated() {
    for profile in [Profile::Hardened, Profile::Isolated] {
        let err = Wal::open(WalConfig::with_storage(profile, Arc::new(MemStorage::new()))).unwrap_err();
        assert_eq!(err.code(), "WAL-ENCRYPTION-REQUIRED");
    }
}

#[test]
fn sealed_payloads_round_trip_and_need_the_key() {
    let storage = MemStorage::new();
    let sealing = Arc::new(SealingKey::from_bytes(&[4; 32]).unwrap());
    let cfg = || {
        WalConfig::with_storage(Profile::Hardened, Arc::new(storage.clone()))
            .sealing_key(sealing.clone())
            .signer(key(7), Arc::new(|| StateDigest([1; 32])))
    };
    let (wal, _) = Wal::open(cfg()).unwrap();
    let logged = wal.append(KIND, b"secret intent").unwrap();
    wal.checkpoint(StateDigest::default()).unwrap();
    let rec = wal.reader().get(logged.lsn()).unwrap();
    assert_eq!((rec.payload.as_slice(), rec.payload_state), (&b"secret intent"[..], PayloadState::Decrypted));
    drop(wal);
    let bytes = storage.file("00000000000000000001.seg").unwrap();
    assert!(!bytes.windows(13).any(|w| w == b"secret intent"), "plaintext on disk");
    // An auditor verifies without the sealing key.
    verify_storage(&storage, &[key(7).verifying_key().clone()]).unwrap();
    let raw = LogReader::new(Arc::new(storage.clone())).get(logged.lsn()).unwrap();
    assert_eq!(raw.payload_state, PayloadState::Sealed);
    // Downgrading to Standard without the key is refused.
    let err = Wal::open(WalConfig::with_storage(Profile::Standard, Arc::new(storage.clone()))).unwrap_err();
    assert_eq!(err.code(), "WAL-ENCRYPTION-REQUIRED");
    // A wrong key fails on open, not later.
    let wrong = WalConfig::with_storage(Profile::Hardened, Arc::new(storage.clone()))
        .sealing_key(Arc::new(SealingKey::from_bytes(&[5; 32]).unwrap()))
        .signer(key(7), Arc::new(|| StateDigest([1; 32])));
    assert_eq!(Wal::open(wrong).unwrap_err(), WalError::Decrypt { lsn: logged.lsn() });
    assert!(Wal::open(cfg()).is_ok());
}

fn fill(wal: &Wal, n: usize) -> Vec<u64> {
    (0..n).map(|i| wal.append(KIND, format!("{i:0>400}").as_bytes()).unwrap().lsn().0).collect()
}

#[test]
fn retention_deletes_expired_segments_and_anchors_the_cut() {
    let storage = MemStorage::new();
    let clock = clock();
    let cfg = || config(&storage, &clock).segment_bytes_target(4096);
    let (wal, _) = Wal::open(cfg()).unwrap();
    let old = fill(&wal, 60);
    assert!(wal.apply_retention(state).unwrap().deleted.is_none(), "nothing is old yet");
    clock.advance_ms(31 * DAY_MS);
    let fresh = fill(&wal, 5);
    let cp = wal.checkpoint(StateDigest::default()).unwrap();
    let report = wal.apply_retention(state).unwrap();
    let (first, last) = report.deleted.unwrap();
    assert_eq!(first, Lsn(1));
    assert!(last < cp.lsn() && last.0 >= 40, "{report:?}");
    let retention_rec = wal.reader().get(report.record.unwrap().lsn()).unwrap().retention().unwrap();
    assert_eq!((retention_rec.first_lsn, retention_rec.last_lsn, retention_rec.retention_days), (first, last, 30));
    assert!(storage.file("00000000000000000001.seg").is_none());
    // Records after the cut are all there; the cut is anchored.
    let kept: Vec<u64> = payloads(&wal.reader()).into_iter().map(|(l, _)| l).collect();
    let expected: Vec<u64> = old.iter().chain(&fresh).copied().filter(|l| *l > last.0).collect();
    assert_eq!(kept, expected);
    let audit = verify_storage(&storage, &[key(7).verifying_key().clone()]).unwrap();
    assert_eq!(audit.retention_cut, Some(last));
    drop(wal);
    let (_, report) = Wal::open(cfg()).unwrap();
    assert_eq!(report.first_lsn, Lsn(last.0 + 1));
}

/// Fills a log and ages it past retention, with a checkpoint after the fresh records.
fn aged(wal: &Wal, clock: &ManualClock) {
    fill(wal, 60);
    clock.advance_ms(31 * DAY_MS);
    fill(wal, 5);
    wal.checkpoint(StateDigest::default()).unwrap();
}

/// Fills, ages and cuts a log; returns the cut's last Lsn and the head the
/// snapshot was asked for.
fn cut_with(wal: &Wal, clock: &ManualClock, snapshot: Vec<u8>) -> (Lsn, Lsn) {
    aged(wal, clock);
    let mut asked = None;
    let report = wal
        .apply_retention(|head| {
            asked = Some(head);
            Ok(snapshot)
        })
        .unwrap();
    (report.deleted.unwrap().1, asked.unwrap())
}

#[test]
fn retention_writes_a_signed_state_snapshot_and_folds_start_there() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    let (cut, head) = cut_with(&wal, &clock, b"the folded state".to_vec());
    let after = wal.append(KIND, b"after").unwrap().lsn();
    let reader = wal.reader();
    let all: Vec<_> = reader.records().unwrap().map(Result::unwrap).collect();
    let chunk = all.iter().find(|r| r.kind == RecordKind::STATE_SNAPSHOT).unwrap();
    assert_eq!(chunk.lsn, Lsn(head.0 + 1), "the snapshot follows the head it folds");
    let cp = all.iter().find(|r| r.lsn == Lsn(chunk.lsn.0 + 1)).unwrap().checkpoint().unwrap();
    assert_eq!(cp.state.0, maos_crypto::sha3_256(b"the folded state").0, "the checkpoint signs the snapshot");
    // A fold starts at the snapshot, never at the first record left after the cut.
    let folded: Vec<_> = reader.fold_records().unwrap().map(Result::unwrap).collect();
    assert!(all.first().unwrap().lsn > cut);
    assert_eq!(folded[0].kind, RecordKind::STATE_SNAPSHOT);
    assert_eq!(folded[0].payload, b"the folded state");
    assert!(folded[1..].iter().all(|r| r.lsn > chunk.lsn && r.kind != RecordKind::STATE_SNAPSHOT));
    assert_eq!(folded.last().unwrap().lsn, after);
    verify_storage(&storage, &[key(7).verifying_key().clone()]).unwrap();
}

#[test]
fn a_snapshot_larger_than_a_record_spans_chunks_and_reads_back_whole() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    let big: Vec<u8> = (0..(maos_wal::SNAPSHOT_CHUNK_BYTES * 2 + 17)).map(|i| (i % 251) as u8).collect();
    cut_with(&wal, &clock, big.clone());
    let reader = wal.reader();
    let chunks = reader.records().unwrap().map(Result::unwrap).filter(|r| r.kind == RecordKind::STATE_SNAPSHOT).count();
    assert_eq!(chunks, 3);
    let first = reader.fold_records().unwrap().next().unwrap().unwrap();
    assert!(first.payload == big, "the chunks reassemble to the snapshot");
    assert!(
        matches!(
            wal.apply_retention(|_| Ok(vec![0; maos_wal::SNAPSHOT_BYTES_MAX + 1])).map(|r| r.deleted),
            Ok(None) | Err(WalError::TooLarge { .. })
        ),
        "over the bound: nothing cut"
    );
}

/// A retention group is never split by an automatic checkpoint: with 99
/// records since the last checkpoint (the cadence is 100), a snapshot of three
/// chunks still reads back whole, and the log folds after the cut.
#[test]
fn a_snapshot_group_gets_no_automatic_checkpoint_between_its_chunks() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    aged(&wal, &clock);
    fill(&wal, 99);
    let big: Vec<u8> = (0..(maos_wal::SNAPSHOT_CHUNK_BYTES * 2 + 1)).map(|i| (i % 249) as u8).collect();
    assert!(wal.apply_retention(|_| Ok(big.clone())).unwrap().deleted.is_some());
    let reader = wal.reader();
    let first = reader.fold_records().unwrap().next().unwrap().unwrap();
    assert!(first.kind == RecordKind::STATE_SNAPSHOT && first.payload == big);
    assert!(reader.fold_records().unwrap().all(|r| r.is_ok()));
    drop(wal);
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    assert!(wal.reader().fold_records().unwrap().all(|r| r.is_ok()), "the cut log folds after a restart");
}

#[test]
fn a_failed_snapshot_cuts_nothing() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    aged(&wal, &clock);
    let err = wal.apply_retention(|_| Err("the fold failed".into())).unwrap_err();
    assert_eq!(err.code(), "WAL-SNAPSHOT");
    assert!(storage.file("00000000000000000001.seg").is_some(), "nothing deleted");
    assert_eq!(wal.reader().fold_records().unwrap().next().unwrap().unwrap().lsn, Lsn(1));
}

#[test]
fn a_cut_log_without_a_snapshot_does_not_fold() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    fill(&wal, 60);
    drop(wal);
    storage.remove("00000000000000000001.seg").unwrap();
    let reader = LogReader::new(Arc::new(storage.clone()));
    let last = reader.fold_records().unwrap().last().unwrap();
    assert_eq!(last.unwrap_err().code(), "WAL-SNAPSHOT");
}

#[test]
fn retention_never_touches_records_after_the_last_checkpoint() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    wal.checkpoint(StateDigest::default()).unwrap();
    fill(&wal, 60);
    clock.advance_ms(400 * DAY_MS);
    let report = wal.apply_retention(state).unwrap();
    assert!(report.deleted.is_none(), "the first segment holds the last checkpoint: {report:?}");
    fill(&wal, 5);
    let cp = wal.checkpoint(StateDigest::default()).unwrap();
    let report = wal.apply_retention(state).unwrap();
    let (_, last) = report.deleted.unwrap();
    assert!(last < cp.lsn(), "deleted up to {last}, checkpoint at {}", cp.lsn());
    let audit = verify_storage(&storage, &[key(7).verifying_key().clone()]).unwrap();
    assert!(audit.first_lsn <= Lsn(cp.lsn().0 - 5));
}

#[test]
fn retention_honours_profile_and_legal_hold() {
    let storage = MemStorage::new();
    let clock = clock();
    let sealing = Arc::new(SealingKey::from_bytes(&[4; 32]).unwrap());
    let cfg = |hold| {
        WalConfig::with_storage(Profile::Hardened, Arc::new(storage.clone()))
            .sealing_key(sealing.clone())
            .signer(key(7), Arc::new(|| StateDigest([1; 32])))
            .clock(clock.clone())
            .segment_bytes_target(4096)
            .legal_hold(hold)
    };
    let (wal, _) = Wal::open(cfg(LegalHold::Released)).unwrap();
    fill(&wal, 40);
    wal.checkpoint(StateDigest::default()).unwrap();
    clock.advance_ms(364 * DAY_MS);
    assert!(wal.apply_retention(state).unwrap().deleted.is_none(), "hardened keeps 365 days");
    clock.advance_ms(2 * DAY_MS);
    drop(wal);
    let (wal, _) = Wal::open(cfg(LegalHold::Active)).unwrap();
    assert!(wal.apply_retention(state).unwrap().deleted.is_none(), "legal hold");
    drop(wal);
    let (wal, _) = Wal::open(cfg(LegalHold::Released)).unwrap();
    assert!(wal.apply_retention(state).unwrap().deleted.is_some());
}

#[test]
fn removing_old_segments_without_a_retention_record_is_detected() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    fill(&wal, 60);
    drop(wal);
    storage.remove("00000000000000000001.seg").unwrap();
    let err = verify_storage(&storage, &[key(7).verifying_key().clone()]).unwrap_err();
    assert_eq!(err.fault(), Some(Fault::RetentionAnchor));
    assert!(err.lsn().is_some_and(|l| l.0 > 1));
    assert_eq!(Wal::open(config(&storage, &clock)).unwrap_err().code(), "WAL-RETENTION");
}

#[test]
fn reader_get_tail_and_follow() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock).segment_bytes_target(4096)).unwrap();
    let lsns = fill(&wal, 30);
    let reader = LogReader::new(Arc::new(storage.clone()));
    assert_eq!(reader.get(Lsn(lsns[3])).unwrap().payload, format!("{:0>400}", 3).into_bytes());
    assert_eq!(reader.get(Lsn(10_000)).unwrap_err().code(), "WAL-NOT-FOUND");
    let tail = reader.tail(5).unwrap();
    assert_eq!(tail.len(), 5);
    assert_eq!(tail.last().map(|r| r.lsn), Some(wal.head().unwrap().0));
    assert!(tail.windows(2).all(|w| w[0].lsn.0 + 1 == w[1].lsn.0 && w[1].prev_hash == w[0].hash));
    let mut follower = reader.follow(Lsn(1));
    let first = follower.poll().unwrap();
    assert_eq!(first.first().map(|r| r.kind), Some(RecordKind::GENESIS));
    assert_eq!(first.last().map(|r| r.lsn), Some(wal.head().unwrap().0));
    assert!(follower.poll().unwrap().is_empty());
    let more = fill(&wal, 25);
    let got: Vec<u64> = follower.poll().unwrap().into_iter().filter(|r| r.kind == KIND).map(|r| r.lsn.0).collect();
    assert_eq!(got, more);
    let from_mid: Vec<u64> = reader.records_from(Lsn(lsns[20])).unwrap().map(|r| r.unwrap().lsn.0).take(3).collect();
    assert_eq!(from_mid, vec![lsns[20], lsns[20] + 1, lsns[20] + 2]);
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock)).unwrap();
    let acked = fill(&wal, 10);
    drop(wal);
    let name = "00000000000000000001.seg";
    let mut bytes = storage.file(name).unwrap();
    let clean_len = bytes.len();
    bytes.extend_from_slice(b"MWAL\x01\x00\x02\x00\xff\x00\x00\x00partial");
    storage.set_file(name, bytes);
    let (wal, report) = Wal::open(config(&storage, &clock)).unwrap();
    let torn = report.torn_tail.unwrap();
    assert_eq!((torn.offset, torn.lsn), (clean_len as u64, Lsn(acked[9] + 1)));
    assert_eq!(storage.file(name).map(|b| b.len()), Some(clean_len));
    assert_eq!(payloads(&wal.reader()).len(), 10);
    wal.append(KIND, b"after").unwrap();
    verify_storage(&storage, &[key(7).verifying_key().clone()]).unwrap();
}

#[test]
fn damage_before_the_tail_refuses_to_open() {
    let storage = MemStorage::new();
    let clock = clock();
    let (wal, _) = Wal::open(config(&storage, &clock)).unwrap();
    let lsns = fill(&wal, 10);
    drop(wal);
    let name = "00000000000000000001.seg";
    let mut bytes = storage.file(name).unwrap();
    // Record lsns[4] starts after the header, genesis (120 bytes) and four 500-byte records.
    let at = 32 + 120 + 4 * 500 + 40;
    bytes[at] ^= 0x10;
    storage.set_file(name, bytes);
    let err = Wal::open(config(&storage, &clock)).unwrap_err();
    assert_eq!((err.code(), err.lsn()), ("WAL-CRC", Some(Lsn(lsns[4]))));
}

#[test]
fn append_batch_is_one_commit_group() {
    let storage = MemStorage::new();
    let (wal, _) = Wal::open(WalConfig::with_storage(Profile::Standard, Arc::new(storage.clone()))).unwrap();
    let before = storage.sync_count();
    let batch: Vec<(RecordKind, &[u8])> = vec![(KIND, b"intent"), (RecordKind(0x0101), b"verdict")];
    let logged = wal.append_batch(&batch).unwrap();
    assert_eq!(storage.sync_count() - before, 1);
    assert_eq!(logged.iter().map(|l| l.lsn().0).collect::<Vec<_>>(), vec![2, 3]);
    let bad: Vec<(RecordKind, &[u8])> = vec![(KIND, b"ok"), (RecordKind::GENESIS, b"forged")];
    assert_eq!(wal.append_batch(&bad).unwrap_err().code(), "WAL-KIND");
    assert_eq!(wal.head().unwrap().0, Lsn(3), "a rejected batch writes nothing");
}

#[test]
fn a_second_writer_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = maos_wal::Wal::open(maos_wal::WalConfig::new(maos_model::Profile::Standard, dir.path())).unwrap();
    let err = maos_wal::Wal::open(maos_wal::WalConfig::new(maos_model::Profile::Standard, dir.path())).unwrap_err();
    assert_eq!(err.code(), "WAL-LOCKED");
    drop(first);
    assert!(maos_wal::Wal::open(maos_wal::WalConfig::new(maos_model::Profile::Standard, dir.path())).is_ok());
}

#[test]
fn a_locked_primary_is_fatal_not_a_degraded_copy() {
    let dir = tempfile::tempdir().unwrap();
    // Someone else writes the primary directory only.
    let (_other, _) =
        maos_wal::Wal::open(maos_wal::WalConfig::new(maos_model::Profile::Standard, dir.path().join("a"))).unwrap();
    // Opening primary + secondary must not fall back to the secondary alone.
    let err = maos_wal::Wal::open(
        maos_wal::WalConfig::new(maos_model::Profile::Standard, dir.path().join("a"))
            .secondary_dir(dir.path().join("b")),
    )
    .unwrap_err();
    assert_eq!(err.code(), "WAL-LOCKED");
}
