//! Property tests: truncation anywhere recovers a prefix; arbitrary bytes never panic
//! the reader (the stable twin of the `wal_reader` fuzz target).

#![expect(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use maos_crypto::SigningKey;
use maos_model::{Profile, UnixMillis};
use maos_wal::sim::MemStorage;
use maos_wal::{
    Checkpoint, Genesis, LogReader, Lsn, ManualClock, RecordKind, RetentionDeletion, StateDigest, Storage, Wal,
    WalConfig, decode_frame, decode_segment_header, encode_segment_header, scan_segment, verify_storage,
};
use proptest::prelude::*;
use std::sync::{Arc, OnceLock};

const KIND: RecordKind = RecordKind(0x0100);

fn key() -> Arc<SigningKey> {
    static KEY: OnceLock<Arc<SigningKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(SigningKey::from_seeds(&[7; 64]).unwrap())).clone()
}

fn config(storage: &MemStorage) -> WalConfig {
    WalConfig::with_storage(Profile::Standard, Arc::new(storage.clone()))
        .signer(key(), Arc::new(|| StateDigest([1; 32])))
        .clock(Arc::new(ManualClock::new(UnixMillis(1_750_000_000_000))))
        .segment_bytes_target(4096)
}

/// Segment files of a reference log: 120 records of varied sizes, with checkpoints.
/// Segment files (name, bytes) and the caller records written (lsn, payload).
type Reference = (Vec<(String, Vec<u8>)>, Vec<(u64, Vec<u8>)>);

fn reference() -> &'static Reference {
    static LOG: OnceLock<Reference> = OnceLock::new();
    LOG.get_or_init(|| {
        let storage = MemStorage::new();
        let (wal, _) = Wal::open(config(&storage)).unwrap();
        let mut written = Vec::new();
        for i in 0..120usize {
            let payload = vec![b'a' + (i % 26) as u8; 10 + (i * 37) % 300];
            written.push((wal.append(KIND, &payload).unwrap().lsn().0, payload));
        }
        let mut names = storage.list().unwrap();
        names.sort();
        (names.into_iter().map(|n| (n.clone(), storage.file(&n).unwrap())).collect(), written)
    })
}

fn caller_records(storage: &MemStorage) -> Vec<(u64, Vec<u8>)> {
    LogReader::new(Arc::new(storage.clone()))
        .records()
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.kind == KIND)
        .map(|r| (r.lsn.0, r.payload))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn truncating_the_log_at_any_byte_recovers_a_prefix(segment in 0usize..1000, cut in 0usize..5000) {
        let (segments, written) = reference();
        let segment = segment % segments.len();
        let storage = MemStorage::new();
        for (name, bytes) in segments.iter().take(segment) {
            storage.set_file(name, bytes.clone());
        }
        let (name, bytes) = &segments[segment];
        let cut = cut % (bytes.len() + 1);
        storage.set_file(name, bytes[..cut].to_vec());
        let (wal, _) = Wal::open(config(&storage)).unwrap();
        let got = caller_records(&storage);
        prop_assert!(got.len() <= written.len());
        prop_assert_eq!(&got[..], &written[..got.len()]);
        // Records wholly before the cut survive.
        let whole: usize = segments[..segment].iter().map(|(_, b)| scan_segment(b).records.len()).sum::<usize>()
            + scan_segment(&bytes[..cut]).records.len();
        let caller_before = written.iter().filter(|(l, _)| (*l as usize) <= whole).count();
        prop_assert!(got.len() >= caller_before.min(written.len()) || whole == 0);
        wal.append(KIND, b"after recovery").unwrap();
        verify_storage(&storage, &[key().verifying_key().clone()]).unwrap();
    }

    #[test]
    fn corruption_anywhere_is_refused_or_recovers_a_prefix(segment in 0usize..1000, at in 0usize..5000, mask in 1u8..=255) {
        let (segments, written) = reference();
        let segment = segment % segments.len();
        let storage = MemStorage::new();
        for (i, (name, bytes)) in segments.iter().enumerate() {
            let mut b = bytes.clone();
            if i == segment {
                let at = at % b.len();
                b[at] ^= mask;
            }
            storage.set_file(name, b);
        }
        let _ = verify_storage(&storage, &[key().verifying_key().clone()]);
        if Wal::open(config(&storage)).is_ok() {
            let got = caller_records(&storage);
            prop_assert_eq!(&got[..], &written[..got.len()]);
        }
    }

    /// Retention: whatever the snapshot's size (empty, one chunk, several) and
    /// however many records follow it, a fold of the cut log yields the
    /// snapshot whole first, then exactly the caller records after it.
    #[test]
    fn a_cut_log_folds_from_its_snapshot(len in prop_oneof![Just(0usize), 1usize..5000, 1_048_000usize..2_200_000], after in 0usize..20) {
        let storage = MemStorage::new();
        let clock = Arc::new(ManualClock::new(UnixMillis(1_750_000_000_000)));
        let (wal, _) = Wal::open(config(&storage).clock(clock.clone())).unwrap();
        for i in 0..40usize {
            wal.append(KIND, &vec![b'x'; 100 + i]).unwrap();
        }
        wal.checkpoint(StateDigest::default()).unwrap();
        clock.advance_ms(31 * 86_400_000);
        let state: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let report = wal.apply_retention(|_| Ok(state.clone())).unwrap();
        prop_assert!(report.deleted.is_some());
        let written: Vec<u64> = (0..after).map(|i| wal.append(KIND, &[i as u8]).unwrap().lsn().0).collect();
        let reader = wal.reader();
        let mut folded = reader.fold_records().unwrap().map(Result::unwrap);
        let first = folded.next().unwrap();
        prop_assert_eq!(first.kind, RecordKind::STATE_SNAPSHOT);
        prop_assert!(first.payload == state, "the snapshot reassembles");
        let rest: Vec<u64> = folded.filter(|r| r.kind == KIND).map(|r| r.lsn.0).collect();
        prop_assert_eq!(rest, written);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..2048), with_header in any::<bool>()) {
        let mut seg = if with_header { encode_segment_header(Lsn(1)).to_vec() } else { Vec::new() };
        seg.extend_from_slice(&bytes);
        let _ = scan_segment(&seg);
        let _ = decode_frame(&bytes);
        let _ = decode_segment_header(&bytes);
        let _ = Checkpoint::decode(&bytes);
        let _ = Genesis::decode(&bytes);
        let _ = RetentionDeletion::decode(&bytes);
        let storage = MemStorage::new();
        storage.set_file("00000000000000000001.seg", seg);
        let _ = verify_storage(&storage, &[key().verifying_key().clone()]);
        let reader = LogReader::new(Arc::new(storage.clone()));
        if let Ok(records) = reader.records() {
            for r in records { let _ = r; }
        }
        if let Ok(records) = reader.fold_records() {
            for r in records { let _ = r; }
        }
        let _ = reader.tail(10);
        let _ = reader.follow(Lsn(1)).poll();
        let _ = Wal::open(config(&storage));
    }
}
