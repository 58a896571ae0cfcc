//! Fuzz the WAL record reader: arbitrary bytes as a segment file, as a lone frame,
//! as the payloads of the WAL's own record kinds and as a cut log a fold reads.
//! Nothing may panic, and every frame the scanner accepts must decode again to
//! the same record.
//!
//!   cargo +nightly fuzz run wal_reader
#![no_main]

use libfuzzer_sys::fuzz_target;
use maos_wal::{
    Checkpoint, Genesis, Lsn, RetentionDeletion, decode_frame, decode_segment_header, encode_segment_header,
    scan_frames, scan_segment,
};

fuzz_target!(|data: &[u8]| {
    let scan = scan_segment(data);
    for (offset, rec) in &scan.records {
        let again = data.get(*offset..).map(decode_frame);
        assert!(matches!(again, Some(Ok((r, _))) if r == *rec));
        let _ = rec.hash_is_valid();
    }
    assert!(scan.valid_len <= data.len());
    let _ = scan_frames(data, 0);
    let _ = decode_frame(data);
    let _ = decode_segment_header(data);
    let _ = Checkpoint::decode(data);
    let _ = Genesis::decode(data);
    let _ = RetentionDeletion::decode(data);
    // The same bytes behind a valid segment header, as a real segment would start.
    let mut segment = encode_segment_header(Lsn(1)).to_vec();
    segment.extend_from_slice(data);
    let _ = scan_segment(&segment);
    // The same bytes as the first segment left after a retention cut: a fold
    // then looks for a state snapshot (chunk headers parsed from the bytes).
    let mut cut = encode_segment_header(Lsn(5)).to_vec();
    cut.extend_from_slice(data);
    let storage = maos_wal::sim::MemStorage::new();
    storage.set_file("00000000000000000005.seg", cut);
    let reader = maos_wal::LogReader::new(std::sync::Arc::new(storage));
    if let Ok(records) = reader.fold_records() {
        for r in records {
            let _ = r;
        }
    }
});
