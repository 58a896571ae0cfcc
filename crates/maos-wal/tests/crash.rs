//! CT-WAL-02: a child process appends to a dual-copy log from several threads and
//! prints each acknowledged Lsn; we SIGKILL it at random moments, reopen, and check
//! that every acknowledged record is there and the chain verifies.
//!
//! `MAOS_CRASH_KILLS=2000 cargo test -p maos-wal --test crash` runs longer.

use maos_crypto::SigningKey;
use maos_model::Profile;
use maos_wal::sim::SplitMix64;
use maos_wal::{LogReader, Lsn, RecordKind, StateDigest, Wal, WalConfig, verify_log};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD: &str = env!("CARGO_BIN_EXE_maos-wal-crash-child");

#[test]
fn ct_wal_02_no_acknowledged_record_lost_after_sigkill() {
    let kills: u64 = std::env::var("MAOS_CRASH_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seed = std::env::var("MAOS_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("crash test: {kills} kills, MAOS_CRASH_SEED={seed}");
    let mut rng = SplitMix64(seed);
    let root = tempfile::tempdir().unwrap();
    let (primary, secondary) = (root.path().join("wal"), root.path().join("wal2"));
    let key = Arc::new(SigningKey::from_seeds(&[42; 64]).unwrap());
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let mut opened_runs = 0;
    let started = Instant::now();
    for run in 0..kills {
        let threads = 1 + rng.below(4);
        let mut child = Command::new(CHILD)
            .args([primary.as_os_str(), secondary.as_os_str()])
            .arg(run.to_string())
            .arg(threads.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        // Wait for the child to have opened the log (recovery included: creating it
        // takes several fsyncs, tens of ms on a slow disk), then kill it 1-30 ms into
        // its appends. The child prints `open` first, or exits (EOF).
        let mut first = String::new();
        let _ = std::io::BufRead::read_line(&mut stdout, &mut first);
        let reader = std::thread::spawn(move || {
            let mut s = first;
            let _ = stdout.read_to_string(&mut s);
            s
        });
        std::thread::sleep(Duration::from_millis(1 + rng.below(30)));
        child.kill().unwrap();
        child.wait().unwrap();
        let out = reader.join().unwrap();
        if out.starts_with("open") {
            opened_runs += 1;
        }
        let mut new = Vec::new();
        for line in out.lines().filter(|l| l.ends_with(|c: char| c.is_ascii_digit())) {
            let mut parts = line.split(' ');
            if let (Some("ack"), Some(lsn), Some(id)) = (parts.next(), parts.next(), parts.next()) {
                let lsn: u64 = lsn.parse().unwrap();
                assert!(acked.insert(lsn, id.to_owned()).is_none(), "seed {seed}: lsn {lsn} acknowledged twice");
                new.push(lsn);
            }
        }
        // Every record acknowledged in this run is on disk with its payload.
        if let Some(first) = new.iter().min() {
            let on_disk: BTreeMap<u64, String> = LogReader::open_dir(&primary)
                .unwrap()
                .records_from(Lsn(*first))
                .unwrap()
                .map(|r| r.unwrap_or_else(|e| panic!("seed {seed} run {run}: {e}")))
                .map(|r| (r.lsn.0, String::from_utf8_lossy(&r.payload).trim_end_matches('-').to_owned()))
                .collect();
            for lsn in &new {
                assert_eq!(on_disk.get(lsn), acked.get(lsn), "seed {seed} run {run}: acknowledged lsn {lsn} missing");
            }
        }
    }
    assert!(opened_runs > kills / 4, "the child rarely got to append ({opened_runs} of {kills} runs)");
    // Recover once more the way the kernel does, then check everything.
    let config = WalConfig::new(Profile::Standard, &primary)
        .secondary_dir(&secondary)
        .signer(key.clone(), Arc::new(|| StateDigest([1; 32])));
    let (wal, report) = Wal::open(config).unwrap_or_else(|e| panic!("seed {seed}: reopen: {e}"));
    assert!(report.failed_copies.is_empty(), "{report:?}");
    let present: BTreeMap<u64, String> = wal
        .reader()
        .records()
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|r| r.kind == RecordKind(0x0100))
        .map(|r| (r.lsn.0, String::from_utf8_lossy(&r.payload).trim_end_matches('-').to_owned()))
        .collect();
    for (lsn, id) in &acked {
        assert_eq!(present.get(lsn), Some(id), "seed {seed}: acknowledged lsn {lsn} lost");
    }
    drop(wal);
    for dir in [&primary, &secondary] {
        let audit = verify_log(dir, key.verifying_key())
            .unwrap_or_else(|e| panic!("seed {seed}: verify {}: {e}", dir.display()));
        assert!(audit.last_lsn.0 >= acked.keys().last().copied().unwrap_or(1));
    }
    eprintln!("crash test: {} acknowledged records over {kills} kills in {:?}", acked.len(), started.elapsed());
}
