//! WAL benchmarks (issue #3): append latency and throughput with 1, 8 and 64
//! appenders against the floor (raw `write` + `fdatasync` of the same record size)
//! and SQLite (WAL mode, `synchronous=FULL`, one insert per transaction and 64 per
//! transaction), plus recovery time, the full audit (`verify_log`) and the
//! kernel's rolling audit sweep over the same log.
//!
//! ```text
//! cargo bench -p maos-wal
//! MAOS_BENCH_RECOVERY_MB=1024 cargo bench -p maos-wal -- recovery   # 1 GB log
//! MAOS_BENCH_DIR=/some/disk cargo bench -p maos-wal                 # another disk
//! ```
//! Files go to `MAOS_BENCH_DIR`, else the system temp dir (check it is a real disk,
//! not tmpfs: `df /tmp`).

#![expect(clippy::unwrap_used, reason = "benchmark setup: a failure is a broken benchmark")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use maos_crypto::SigningKey;
use maos_model::Profile;
use maos_wal::{RECORD_OVERHEAD, RecordKind, StateDigest, Wal, WalConfig, verify_log};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAYLOAD: [u8; 256] = [b'x'; 256];
const KIND: RecordKind = RecordKind(0x0100);

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("MAOS_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(PathBuf::from(d)).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn signer() -> Arc<SigningKey> {
    Arc::new(SigningKey::from_seeds(&[1; 64]).unwrap())
}

fn open(dir: &std::path::Path, dual: bool) -> Wal {
    let mut config =
        WalConfig::new(Profile::Standard, dir.join("wal")).signer(signer(), Arc::new(|| StateDigest([0; 32])));
    if dual {
        config = config.secondary_dir(dir.join("wal2"));
    }
    Wal::open(config).unwrap().0
}

/// The floor: what the disk costs for one durable record of the same size.
fn floor(c: &mut Criterion) {
    let dir = bench_dir();
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("raw")).unwrap();
    let record = vec![b'x'; PAYLOAD.len() + RECORD_OVERHEAD];
    let mut g = c.benchmark_group("append_1");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_write_fdatasync", |b| {
        b.iter(|| {
            f.write_all(&record).unwrap();
            f.sync_data().unwrap();
        });
    });
    let wal_dir = bench_dir();
    let wal = open(wal_dir.path(), false);
    g.bench_function("wal", |b| b.iter(|| wal.append(KIND, &PAYLOAD).unwrap()));
    drop(wal);
    let dual_dir = bench_dir();
    let wal = open(dual_dir.path(), true);
    g.bench_function("wal_dual_copy", |b| b.iter(|| wal.append(KIND, &PAYLOAD).unwrap()));
    g.finish();
}

/// `iters` appends spread over `threads` appenders; returns the wall time.
fn concurrent(wal: &Arc<Wal>, threads: u64, iters: u64) -> Duration {
    let per = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let wal = wal.clone();
            s.spawn(move || {
                for _ in 0..per {
                    wal.append(KIND, &PAYLOAD).unwrap();
                }
            });
        }
    });
    // Normalise to exactly `iters` appends.
    start.elapsed().mul_f64(iters as f64 / (per * threads) as f64)
}

fn throughput(c: &mut Criterion) {
    for threads in [8u64, 64] {
        let mut g = c.benchmark_group(format!("append_{threads}"));
        g.throughput(Throughput::Elements(1));
        for dual in [false, true] {
            let dir = bench_dir();
            let wal = Arc::new(open(dir.path(), dual));
            let name = if dual { "wal_dual_copy" } else { "wal" };
            g.bench_function(name, |b| b.iter_custom(|iters| concurrent(&wal, threads, iters)));
        }
        g.finish();
    }
}

/// A real directory whose flush costs 1 ms more than this VM's (~35 µs): the cost
/// of a flush on a spinning disk or many cloud volumes, the regime group commit
/// is for. Everything else is the real file system.
#[derive(Debug)]
struct SlowFlush(maos_wal::FsStorage);

struct SlowFile(Box<dyn maos_wal::SegmentFile>);

const SLOW_FLUSH: Duration = Duration::from_millis(1);

impl maos_wal::SegmentFile for SlowFile {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.append(bytes)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.0.sync()?;
        std::thread::sleep(SLOW_FLUSH);
        Ok(())
    }
}

impl maos_wal::Storage for SlowFlush {
    fn list(&self) -> std::io::Result<Vec<String>> {
        self.0.list()
    }
    fn create(&self, name: &str) -> std::io::Result<Box<dyn maos_wal::SegmentFile>> {
        Ok(Box::new(SlowFile(self.0.create(name)?)))
    }
    fn open_append(&self, name: &str) -> std::io::Result<Box<dyn maos_wal::SegmentFile>> {
        Ok(Box::new(SlowFile(self.0.open_append(name)?)))
    }
    fn read(&self, name: &str, offset: u64, len_max: usize) -> std::io::Result<Vec<u8>> {
        self.0.read(name, offset, len_max)
    }
    fn len(&self, name: &str) -> std::io::Result<u64> {
        self.0.len(name)
    }
    fn truncate(&self, name: &str, len: u64) -> std::io::Result<()> {
        self.0.truncate(name, len)
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.0.remove(name)
    }
    fn replace(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.0.replace(name, bytes)
    }
    fn sync_dir(&self) -> std::io::Result<()> {
        self.0.sync_dir()
    }
}

/// Group commit where a flush costs ~1 ms: 1, 8 and 64 appenders.
fn slow_flush(c: &mut Criterion) {
    let mut g = c.benchmark_group("slow_flush_1ms");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    for threads in [1u64, 8, 64] {
        let dir = bench_dir();
        let storage = Arc::new(SlowFlush(maos_wal::FsStorage::open(dir.path().join("wal")).unwrap()));
        let config =
            WalConfig::with_storage(Profile::Standard, storage).signer(signer(), Arc::new(|| StateDigest([0; 32])));
        let wal = Arc::new(Wal::open(config).unwrap().0);
        g.bench_function(format!("appenders_{threads}"), |b| b.iter_custom(|iters| concurrent(&wal, threads, iters)));
    }
    g.finish();
}

/// One caller (the kernel's sequencer) handing 64 records at a time: one commit group.
fn batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_batch_64");
    g.throughput(Throughput::Elements(64));
    let batch: Vec<(RecordKind, &[u8])> = (0..64).map(|_| (KIND, &PAYLOAD[..])).collect();
    for dual in [false, true] {
        let dir = bench_dir();
        let wal = open(dir.path(), dual);
        let name = if dual { "wal_dual_copy" } else { "wal" };
        g.bench_function(name, |b| b.iter(|| wal.append_batch(&batch).unwrap()));
    }
    g.finish();
    // What each automatic checkpoint (every 100 records) costs the commit group.
    let key = signer();
    let mut g = c.benchmark_group("checkpoint");
    g.bench_function("sign_hybrid", |b| {
        b.iter(|| {
            maos_wal::Checkpoint::sign(
                &key,
                maos_wal::Lsn(1),
                maos_wal::RecordHash::ZERO,
                StateDigest([0; 32]),
                maos_wal::LogId::default(),
                maos_model::UnixMillis(0),
            )
            .unwrap()
        });
    });
    g.finish();
}

fn sqlite(c: &mut Criterion) {
    let dir = bench_dir();
    let db = rusqlite::Connection::open(dir.path().join("bench.db")).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", "FULL").unwrap();
    db.execute("CREATE TABLE log (lsn INTEGER PRIMARY KEY, payload BLOB NOT NULL)", []).unwrap();
    let mut g = c.benchmark_group("sqlite_wal_full");
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert_1_per_tx", |b| {
        b.iter(|| {
            db.execute("INSERT INTO log (payload) VALUES (?1)", [&PAYLOAD[..]]).unwrap();
        });
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("insert_64_per_tx", |b| {
        b.iter(|| {
            db.execute_batch("BEGIN").unwrap();
            {
                let mut stmt = db.prepare_cached("INSERT INTO log (payload) VALUES (?1)").unwrap();
                for _ in 0..64 {
                    stmt.execute([&PAYLOAD[..]]).unwrap();
                }
            }
            db.execute_batch("COMMIT").unwrap();
        });
    });
    g.finish();
}

/// Recovery (open) and full audit (`verify_log`) of a log of `MAOS_BENCH_RECOVERY_MB`
/// megabytes (default 64) of 256-byte records with checkpoints every 100.
fn recovery(c: &mut Criterion) {
    let mb: u64 = std::env::var("MAOS_BENCH_RECOVERY_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let dir = bench_dir();
    let records = mb * 1024 * 1024 / (PAYLOAD.len() + RECORD_OVERHEAD) as u64;
    let built = Instant::now();
    {
        let wal = open(dir.path(), false);
        let batch: Vec<(RecordKind, &[u8])> = (0..1000).map(|_| (KIND, &PAYLOAD[..])).collect();
        for _ in 0..records.div_ceil(1000) {
            wal.append_batch(&batch).unwrap();
        }
    }
    let bytes: u64 =
        std::fs::read_dir(dir.path().join("wal")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    eprintln!("recovery: built a {} MB log in {:?}", bytes >> 20, built.elapsed());
    let mut g = c.benchmark_group(format!("recovery_{}MB", bytes >> 20));
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    let path = dir.path().join("wal");
    let key = signer();
    g.bench_function("open", |b| {
        b.iter(|| {
            let config =
                WalConfig::new(Profile::Standard, &path).signer(key.clone(), Arc::new(|| StateDigest([0; 32])));
            Wal::open(config).unwrap()
        });
    });
    g.bench_function("verify_log", |b| b.iter(|| verify_log(&path, key.verifying_key()).unwrap()));
    // The kernel's audit sweep (Rule 3 while running): the same pass, one
    // segment per step, without checkpoint signatures. Its cost per 5 s step
    // is one segment at this throughput.
    let reader = maos_wal::LogReader::open_dir(&path).unwrap();
    g.bench_function("sweep_pass_one_segment_per_step", |b| {
        b.iter(|| {
            let mut cursor = maos_wal::SweepCursor::default();
            while !reader.sweep(&mut cursor, 1, None).unwrap().wrapped {}
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = floor, throughput, batched, slow_flush, sqlite, recovery
}
criterion_main!(benches);
