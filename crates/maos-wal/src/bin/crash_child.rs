//! Child process for the SIGKILL crash test (`tests/crash.rs`, CT-WAL-02): opens a
//! dual-copy log and appends from several threads until killed, printing
//! `ack <lsn> <payload-id>` for every acknowledged record.
//!
//! Usage: `maos-wal-crash-child PRIMARY SECONDARY RUN THREADS`

use maos_model::Profile;
use maos_wal::{CheckpointCadence, RecordKind, StateDigest, Wal, WalConfig};
use std::io::Write as _;
use std::sync::{Arc, Mutex};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().ok_or("usage: maos-wal-crash-child PRIMARY SECONDARY RUN THREADS");
    let (primary, secondary, run, threads) = (arg(1)?, arg(2)?, arg(3)?.parse::<u64>()?, arg(4)?.parse::<u64>()?);
    let key = Arc::new(maos_crypto::SigningKey::from_seeds(&[42; 64])?);
    let config = WalConfig::new(Profile::Standard, primary)
        .secondary_dir(secondary)
        .signer(key, Arc::new(|| StateDigest([1; 32])))
        .checkpoint_cadence(CheckpointCadence { records_max: 50, interval_ms: 300_000 })
        .segment_bytes_target(64 << 10);
    let (wal, _) = Wal::open(config)?;
    let wal = Arc::new(wal);
    let out = Arc::new(Mutex::new(std::io::stdout()));
    writeln!(out.lock().map_err(|_| "stdout lock")?, "open")?;
    let kind = RecordKind::caller(0x0100)?;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (wal, out) = (wal.clone(), out.clone());
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0u64.. {
                    let id = format!("{run}-{t}-{i}");
                    let payload = format!("{id:-<200}");
                    let logged = wal.append(kind, payload.as_bytes()).map_err(|e| e.to_string())?;
                    let mut o = out.lock().map_err(|_| "stdout lock")?;
                    writeln!(o, "ack {} {id}", logged.lsn().0).map_err(|e| e.to_string())?;
                    o.flush().map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "appender thread failed")??;
    }
    Ok(())
}
