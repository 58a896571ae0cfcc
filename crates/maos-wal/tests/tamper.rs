//! CT-WAL-12: tampering with a copied log is detected by `verify_log` (what
//! `maos audit verify` runs), naming the right Lsn.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers: a panic is a failed test"
)]

use maos_crypto::{SignatureDomain, SigningKey};
use maos_model::{Profile, UnixMillis};
use maos_wal::{
    Checkpoint, Fault, Lsn, ManualClock, RecordKind, StateDigest, Wal, WalConfig, WalError, scan_segment, verify_log,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const KIND: RecordKind = RecordKind(0x0100);

fn key(seed: u8) -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seeds(&[seed; 64]).unwrap())
}

/// A log of 150 caller records over about a dozen segments, with automatic checkpoints.
fn build_log(dir: &Path, seed: u8) {
    let config = WalConfig::new(Profile::Standard, dir)
        .signer(key(seed), Arc::new(|| StateDigest([2; 32])))
        .clock(Arc::new(ManualClock::new(UnixMillis(1_750_000_000_000))))
        .segment_bytes_target(4096);
    let (wal, _) = Wal::open(config).unwrap();
    for i in 0..150u32 {
        wal.append(KIND, format!("{{\"record\":{i},\"pad\":\"{:0>200}\"}}", i).as_bytes()).unwrap();
    }
    wal.checkpoint(StateDigest([3; 32])).unwrap();
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Segment path, byte offset and length of record `lsn`.
fn locate(dir: &Path, lsn: u64) -> (PathBuf, usize, usize) {
    for path in segment_paths(dir) {
        let bytes = std::fs::read(&path).unwrap();
        let scan = scan_segment(&bytes);
        if let Some((off, rec)) = scan.records.iter().find(|(_, r)| r.lsn.0 == lsn) {
            return (path, *off, rec.hashed.len() + 36);
        }
    }
    panic!("lsn {lsn} not found");
}

fn checkpoint_lsns(dir: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    for path in segment_paths(dir) {
        let bytes = std::fs::read(&path).unwrap();
        out.extend(
            scan_segment(&bytes).records.iter().filter(|(_, r)| r.kind == RecordKind::CHECKPOINT).map(|(_, r)| r.lsn.0),
        );
    }
    out
}

fn frames(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 32;
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        if len < 100 || at + len > bytes.len() {
            break;
        }
        out.push((at, len));
        at += len;
    }
    out
}

fn seal_frame(frame: &mut [u8], prev: Option<[u8; 32]>) -> [u8; 32] {
    let n = frame.len();
    if let Some(p) = prev {
        frame[n - 68..n - 36].copy_from_slice(&p);
    }
    let hash = maos_crypto::sha3_256(&frame[..n - 36]).0;
    frame[n - 36..n - 4].copy_from_slice(&hash);
    let crc = crc32c::crc32c(&frame[..n - 4]);
    frame[n - 4..].copy_from_slice(&crc.to_le_bytes());
    hash
}

/// What an attacker without the key can do: recompute every hash and CRC so the chain
/// links again after a change.
fn rechain(dir: &Path) {
    let mut prev: Option<[u8; 32]> = None;
    for path in segment_paths(dir) {
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, len) in frames(&bytes) {
            prev = Some(seal_frame(&mut bytes[at..at + len], prev));
        }
        std::fs::write(&path, bytes).unwrap();
    }
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

fn verify(dir: &Path) -> Result<maos_wal::VerifyReport, WalError> {
    verify_log(dir, key(1).verifying_key())
}

fn assert_detected(dir: &Path, fault: Fault, lsn: u64) {
    let err = verify(dir).unwrap_err();
    assert_eq!((err.fault(), err.lsn()), (Some(fault), Some(Lsn(lsn))), "{err}");
}

#[test]
fn intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let report = verify(dir.path()).unwrap();
    assert_eq!((report.first_lsn, report.last_lsn), (Lsn(1), Lsn(153)));
    assert_eq!((report.checkpoints, report.unsigned_tail_records), (2, 0));
    assert!(report.segments > 5, "{report:?}");
    assert_eq!(verify_log(dir.path(), key(9).verifying_key()).unwrap_err().code(), "WAL-CHECKPOINT-KEY");
}

#[test]
fn ct_wal_12_flipped_bit_is_a_crc_fault() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let (path, off, _) = locate(dir.path(), 40);
    edit(&path, |b| b[off + 50] ^= 0x01);
    assert_detected(dir.path(), Fault::Crc, 40);
}

#[test]
fn ct_wal_12_flipped_bit_with_fixed_crc_breaks_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let (path, off, len) = locate(dir.path(), 40);
    edit(&path, |b| {
        b[off + 50] ^= 0x01;
        let crc = crc32c::crc32c(&b[off..off + len - 4]);
        b[off + len - 4..off + len].copy_from_slice(&crc.to_le_bytes());
    });
    assert_detected(dir.path(), Fault::Chain, 40);
}

#[test]
fn ct_wal_12_deleted_record_is_a_sequence_fault() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let (path, off, len) = locate(dir.path(), 40);
    let (path2, ..) = locate(dir.path(), 41);
    assert_eq!(path, path2, "pick a record in the middle of a segment");
    edit(&path, |b| drop(b.drain(off..off + len)));
    assert_detected(dir.path(), Fault::Sequence { found: 41 }, 40);
}

#[test]
fn ct_wal_12_swapped_records_are_a_sequence_fault() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let (path, a, alen) = locate(dir.path(), 40);
    let (_, b_off, blen) = locate(dir.path(), 41);
    edit(&path, |b| {
        let first = b[a..a + alen].to_vec();
        let second = b[b_off..b_off + blen].to_vec();
        b.splice(a..b_off + blen, second.into_iter().chain(first));
    });
    assert_detected(dir.path(), Fault::Sequence { found: 41 }, 40);
}

#[test]
fn ct_wal_12_record_spliced_from_another_log_breaks_the_chain() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build_log(dir.path(), 1);
    build_log(other.path(), 1);
    let (path, off, len) = locate(dir.path(), 40);
    let (opath, ooff, olen) = locate(other.path(), 40);
    let foreign = std::fs::read(opath).unwrap()[ooff..ooff + olen].to_vec();
    edit(&path, |b| drop(b.splice(off..off + len, foreign)));
    assert_detected(dir.path(), Fault::Chain, 40);
}

#[test]
fn ct_wal_12_truncation_mid_log_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let segs = segment_paths(dir.path());
    let middle = &segs[3];
    let bytes = std::fs::read(middle).unwrap();
    let scan = scan_segment(&bytes);
    let (last_off, last) = *scan.records.last().unwrap();
    let last_lsn = last.lsn.0;
    // Cut inside the segment's last record.
    std::fs::write(middle, &bytes[..last_off + 60]).unwrap();
    assert_detected(dir.path(), Fault::Truncated, last_lsn);
    // Cut exactly at a record boundary: the next segment no longer follows on.
    std::fs::write(middle, &bytes[..last_off]).unwrap();
    assert_detected(dir.path(), Fault::Sequence { found: last_lsn + 1 }, last_lsn);
}

#[test]
fn ct_wal_12_replaced_checkpoint_signature_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let cp_lsn = checkpoint_lsns(dir.path())[0];
    let (path, off, len) = locate(dir.path(), cp_lsn);
    let forger = key(2);
    edit(&path, |b| {
        let payload = &b[off + 32..off + len - 68];
        let mut cp = Checkpoint::decode(payload).unwrap();
        let msg =
            Checkpoint::signed_message(cp.head_lsn, &cp.head_hash, &cp.state, &cp.log_id, cp.timestamp, &cp.key_id);
        cp.signature = forger.sign(SignatureDomain::WalCheckpoint, &msg).unwrap();
        let encoded = cp.encode();
        b[off + 32..off + len - 68].copy_from_slice(&encoded);
    });
    rechain(dir.path());
    assert_detected(dir.path(), Fault::CheckpointSignature, cp_lsn);
}

#[test]
fn ct_wal_12_rewritten_history_is_caught_by_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let (path, off, _) = locate(dir.path(), 40);
    edit(&path, |b| b[off + 40] = b'X');
    rechain(dir.path());
    let next_checkpoint = checkpoint_lsns(dir.path()).into_iter().find(|l| *l > 40).unwrap();
    assert_detected(dir.path(), Fault::CheckpointMismatch, next_checkpoint);
}

// ---- boot re-verifies what it folds (issue #12) ----------------------------

/// Opens the log as `maos up` does (same key, so checkpoints verify).
fn open(dir: &Path) -> Result<maos_wal::OpenReport, WalError> {
    let config = WalConfig::new(Profile::Standard, dir)
        .signer(key(1), Arc::new(|| StateDigest([2; 32])))
        .clock(Arc::new(ManualClock::new(UnixMillis(1_750_000_000_000))))
        .segment_bytes_target(4096);
    Wal::open(config).map(|(_, report)| report)
}

/// CT-WAL-12 at boot: a record before the last checkpoint rewritten with a
/// fixed CRC (its stored hash kept) links, so only its own hash shows the
/// edit; the open that boot runs re-hashes every record and refuses it.
#[test]
fn ct_wal_12_attack_boot_refuses_a_record_before_the_checkpoint_rewritten_with_a_fixed_crc() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let (path, off, len) = locate(dir.path(), 12);
    edit(&path, |b| {
        b[off + 50] ^= 0x01;
        let crc = crc32c::crc32c(&b[off..off + len - 4]);
        b[off + len - 4..off + len].copy_from_slice(&crc.to_le_bytes());
    });
    assert_detected(dir.path(), Fault::Chain, 12);
    let err = open(dir.path()).unwrap_err();
    assert_eq!((err.fault(), err.lsn()), (Some(Fault::Chain), Some(Lsn(12))), "{err}");
}

/// What one tamper does to one record.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// One byte flipped (the CRC then fails).
    Flip,
    /// One byte flipped and the CRC recomputed (the stored hash kept).
    FlipFixCrc,
    /// The frame zeroed from the byte on.
    ZeroRest,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// CT-WAL-08, CT-WAL-12: random damage to any record, before or after the
    /// last checkpoint, with or without the groups after it. Whenever the open
    /// boot runs succeeds, the log it leaves is one `verify_log` (`maos audit
    /// verify`) accepts, and if the damage was rejected before the open, the
    /// open named it as a torn tail it cut: never a silent fold of a rejected log.
    /// Failing inputs are printed (and persisted) by proptest.
    #[test]
    fn ct_wal_08_boot_never_opens_normally_on_a_log_verify_rejects(
        lsn in 1u64..=153,
        at in 0usize..400,
        how in proptest::prop_oneof![
            proptest::strategy::Just(Tamper::Flip),
            proptest::strategy::Just(Tamper::FlipFixCrc),
            proptest::strategy::Just(Tamper::ZeroRest),
        ],
        drop_later in proptest::bool::ANY,
    ) {
        let dir = tempfile::tempdir().unwrap();
        build_log(dir.path(), 1);
        let (path, off, len) = locate(dir.path(), lsn);
        let at = at % len;
        edit(&path, |b| {
            match how {
                Tamper::Flip => b[off + at] ^= 0x5A,
                Tamper::FlipFixCrc => {
                    b[off + at] ^= 0x5A;
                    let crc = crc32c::crc32c(&b[off..off + len - 4]);
                    b[off + len - 4..off + len].copy_from_slice(&crc.to_le_bytes());
                }
                Tamper::ZeroRest => b[off + at..off + len].fill(0),
            }
            if drop_later {
                b.truncate(off + len);
            }
        });
        if drop_later {
            // Everything after this segment goes too: the damage is then in the tail.
            let mut later = false;
            for p in segment_paths(dir.path()) {
                if later {
                    std::fs::remove_file(&p).unwrap();
                }
                later |= p == path;
            }
        }
        let before = verify(dir.path());
        let opened = open(dir.path());
        if !drop_later && lsn <= 151 && before.is_err() {
            // At least two complete groups follow the damage: it was
            // acknowledged, so it is corruption, never a torn tail to cut.
            proptest::prop_assert!(opened.is_err(), "damage at {lsn} ({how:?} at {at}) was cut as a torn tail: {opened:?}");
        }
        match opened {
            Err(_) => {}
            Ok(report) => {
                proptest::prop_assert!(
                    before.is_ok() || report.torn_tail.is_some(),
                    "open folded a log verify rejects ({:?}) without cutting it: {report:?}", before.err()
                );
                let after = verify(dir.path());
                proptest::prop_assert!(after.is_ok(), "the opened log does not verify: {:?}", after.err());
            }
        }
    }
}

/// The rolling sweep the kernel runs while the log is live (Rule 3 at run
/// time): a pass in steps of a few segments verifies every record and, at
/// the head, matches the hash the writer knows.
fn sweep_pass(dir: &Path, must_match: Option<(Lsn, maos_wal::RecordHash)>) -> Result<u64, WalError> {
    let reader = maos_wal::LogReader::open_dir(dir).unwrap();
    let mut cursor = maos_wal::SweepCursor::default();
    let mut records = 0;
    for _ in 0..100 {
        let step = reader.sweep(&mut cursor, 2, must_match)?;
        records += step.records;
        if step.wrapped {
            return Ok(records);
        }
    }
    panic!("the sweep never wrapped");
}

#[test]
fn sweep_verifies_an_intact_log_in_steps_and_matches_the_head() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let report = verify(dir.path()).unwrap();
    let head = Some((report.last_lsn, report.head_hash));
    assert_eq!(sweep_pass(dir.path(), head).unwrap(), 153);
    let other = Some((report.last_lsn, maos_wal::RecordHash([7; 32])));
    assert_eq!(sweep_pass(dir.path(), other).unwrap_err().fault(), Some(Fault::Chain), "another head hash");
}

#[test]
fn sweep_catches_a_flipped_bit_with_a_fixed_crc() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let (path, off, len) = locate(dir.path(), 40);
    edit(&path, |b| {
        b[off + 50] ^= 0x01;
        let crc = crc32c::crc32c(&b[off..off + len - 4]);
        b[off + len - 4..off + len].copy_from_slice(&crc.to_le_bytes());
    });
    let err = sweep_pass(dir.path(), None).unwrap_err();
    assert_eq!((err.fault(), err.lsn()), (Some(Fault::Chain), Some(Lsn(40))), "{err}");
}

#[test]
fn sweep_catches_a_consistent_rewrite_at_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path(), 1);
    let (path, off, _) = locate(dir.path(), 40);
    edit(&path, |b| b[off + 50] ^= 0x01);
    rechain(dir.path());
    let err = sweep_pass(dir.path(), None).unwrap_err();
    assert_eq!(err.fault(), Some(Fault::CheckpointMismatch), "{err}");
}

/// A log of 60 records over 4 KiB segments without checkpoints; its head.
fn build_unsigned_log(dir: &Path) -> (Lsn, maos_wal::RecordHash) {
    let config = WalConfig::new(Profile::Standard, dir)
        .clock(Arc::new(ManualClock::new(UnixMillis(1_750_000_000_000))))
        .segment_bytes_target(4096);
    let (wal, _) = Wal::open(config).unwrap();
    for i in 0..60u32 {
        wal.append(KIND, format!("{{\"record\":{i},\"pad\":\"{:0>200}\"}}", i).as_bytes()).unwrap();
    }
    wal.head().unwrap()
}

/// Without checkpoints after the change, the head hash the writer knows
/// is what catches a history rewritten with every link recomputed.
#[test]
fn sweep_catches_a_consistent_rewrite_by_the_head_hash() {
    let dir = tempfile::tempdir().unwrap();
    let head = build_unsigned_log(dir.path());
    let (path, off, _) = locate(dir.path(), 40);
    edit(&path, |b| b[off + 50] ^= 0x01);
    rechain(dir.path());
    assert_eq!(sweep_pass(dir.path(), None).unwrap(), head.0.0, "every link holds after the rewrite");
    let err = sweep_pass(dir.path(), Some(head)).unwrap_err();
    assert_eq!((err.fault(), err.lsn()), (Some(Fault::Chain), Some(head.0)), "{err}");
}

#[test]
fn sweep_catches_a_log_cut_short_of_the_published_head() {
    let dir = tempfile::tempdir().unwrap();
    let head = build_unsigned_log(dir.path());
    std::fs::remove_file(segment_paths(dir.path()).last().unwrap()).unwrap();
    let err = sweep_pass(dir.path(), Some(head)).unwrap_err();
    assert_eq!((err.fault(), err.lsn()), (Some(Fault::Truncated), Some(head.0)), "{err}");
}

/// The sweep runs beside a writer appending and rolling 4 KiB segments: a
/// live log, torn tails and new segments included, is never damage.
#[test]
fn sweep_beside_live_appends_never_reports_damage() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::new(Profile::Standard, dir.path())
        .signer(key(1), Arc::new(|| StateDigest([2; 32])))
        .clock(Arc::new(ManualClock::new(UnixMillis(1_750_000_000_000))))
        .segment_bytes_target(4096);
    let wal = Arc::new(Wal::open(config).unwrap().0);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (wal, done) = (wal.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 0..3_000u32 {
                wal.append(KIND, format!("{{\"record\":{i},\"pad\":\"{:0>100}\"}}", i).as_bytes()).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut cursor = maos_wal::SweepCursor::default();
    let (mut steps, mut passes) = (0u32, 0u32);
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        let step = wal.sweep_step(&mut cursor, 1).unwrap_or_else(|e| panic!("a live log taken for damage: {e}"));
        steps += 1;
        passes += u32::from(step.wrapped);
    }
    writer.join().unwrap();
    loop {
        if wal.sweep_step(&mut cursor, 4).unwrap().wrapped {
            break;
        }
    }
    assert!(steps > 10 && passes >= 1, "the sweep ran beside the writer: {steps} steps, {passes} passes");
}
