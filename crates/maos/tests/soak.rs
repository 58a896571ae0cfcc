//! The 10-minute soak of issue #12, run by hand (numbers in docs/benchmarks.md):
//!
//! ```text
//! cargo test --release -p maos --test soak -- --ignored --nocapture
//! MAOS_SOAK_SECS=120 cargo test -p maos --test soak -- --ignored --nocapture   # a shorter run
//! ```
//!
//! 200 agents on loopback against the real daemon, each sending a mix of
//! allowed writes, denied writes (outside its scope) and, now and then, an
//! escalated mail (a declassification); one abusive agent sends denied and
//! escalated intents at ten times the others' rate. Every minute it samples the
//! daemon's RSS, the log's growth and the well-behaved agents' p99 latency, and
//! asserts they are stable from minute 2 to the end.

mod common;

#[cfg(test)]
mod soak {
    use super::common::*;
    use reqwest::StatusCode;
    use serde_json::json;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const AGENTS: usize = 200;
    /// Requests per second of one well-behaved agent.
    const RATE_PER_AGENT: u64 = 1;
    /// The abusive agent's multiple of that rate.
    const ABUSE_FACTOR: u64 = 10;

    fn rss_kb(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn dir_bytes(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }

    fn p99(samples: &mut [u64]) -> u64 {
        samples.sort_unstable();
        let i = (samples.len() * 99 / 100).min(samples.len().saturating_sub(1));
        samples.get(i).copied().unwrap_or(0)
    }

    #[derive(Default)]
    struct Counts {
        done: AtomicU64,
        denied: AtomicU64,
        pending: AtomicU64,
        other: AtomicU64,
    }

    fn tally(counts: &Counts, reply: &(StatusCode, serde_json::Value)) {
        let counter = match reply.1["status"].as_str() {
            Some("done") => &counts.done,
            Some("denied") => &counts.denied,
            Some("pending_approval") => &counts.pending,
            _ => &counts.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    #[ignore = "a 10-minute soak: run by hand (see the module docs)"]
    fn soak_200_agents_with_one_abusive_agent_stay_stable() {
        let secs: u64 = std::env::var("MAOS_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(600);
        assert!(secs >= 120, "the soak needs at least two minutes");
        let dir = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        init(dir.path());
        std::fs::create_dir_all(dir.path().join("workspace")).unwrap();
        std::fs::write(dir.path().join("workspace/q3.txt"), "quarterly figures").unwrap();
        let allow = ["fs.write=path:/workspace/**", "fs.read=path:/workspace/**", "mail.send=*@example.com"];
        let tokens: Vec<String> = (0..=AGENTS).map(|i| issue(dir.path(), &format!("agent{i}"), &allow)).collect();
        let daemon = Daemon::start(dir.path(), logs.path(), "soak", &[]);
        let pid = daemon.child.id();
        let stop = Arc::new(AtomicBool::new(false));
        let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
        let counts = Arc::new(Counts::default());
        let abusive = Arc::new(Counts::default());
        let mut threads = Vec::new();
        for (i, token) in tokens.iter().enumerate().skip(1) {
            let (base, token, stop) = (daemon.base.clone(), token.clone(), stop.clone());
            let (latencies, counts) = (latencies.clone(), counts.clone());
            threads.push(std::thread::spawn(move || {
                let agent = Agent::open(&base, &token);
                let period = Duration::from_millis(1000 / RATE_PER_AGENT);
                // Spread the agents over the second.
                std::thread::sleep(Duration::from_millis((i as u64 * 997) % 1000));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let intent = match n % 60 {
                        // Once a minute: read internal data, then mail it (escalated, not waited for).
                        0 => json!({ "action": "fs.read", "args": { "path": "/workspace/q3.txt" } }),
                        1 => declassify(&format!("a{i}-{n}"), 0),
                        k if k.is_multiple_of(4) => fs_write("/etc/passwd", "x"),
                        _ => fs_write(&format!("/workspace/a{i}/n{}.txt", n % 8), "load"),
                    };
                    let reply = agent.submit(&intent);
                    latencies.lock().unwrap().push(started.elapsed().as_micros() as u64);
                    tally(&counts, &reply);
                    n += 1;
                    std::thread::sleep(period.saturating_sub(started.elapsed()));
                }
            }));
        }
        {
            let (base, token, stop, counts) = (daemon.base.clone(), tokens[0].clone(), stop.clone(), abusive.clone());
            threads.push(std::thread::spawn(move || {
                let agent = Agent::open(&base, &token);
                let period = Duration::from_millis(1000 / (RATE_PER_AGENT * ABUSE_FACTOR));
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let intent = if n.is_multiple_of(10) {
                        declassify(&format!("abuse-{n}"), 0)
                    } else {
                        fs_write("/etc/passwd", "x")
                    };
                    tally(&counts, &agent.submit(&intent));
                    n += 1;
                    std::thread::sleep(period.saturating_sub(started.elapsed()));
                }
            }));
        }
        let wal = dir.path().join("wal");
        let started = Instant::now();
        let mut rows = Vec::new();
        let mut last_bytes = dir_bytes(&wal);
        for minute in 1..=(secs / 60) {
            let next = Duration::from_secs(minute * 60);
            std::thread::sleep(next.saturating_sub(started.elapsed()));
            let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
            let bytes = dir_bytes(&wal);
            let row = (minute, rss_kb(pid), bytes.saturating_sub(last_bytes), p99(&mut lat), lat.len());
            last_bytes = bytes;
            println!(
                "minute {:>2}: rss {:>7} KiB, log +{:>9} B, well-behaved p99 {:>7} us over {} requests",
                row.0, row.1, row.2, row.3, row.4
            );
            rows.push(row);
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let c = |x: &AtomicU64| x.load(Ordering::Relaxed);
        println!(
            "well-behaved: {} done, {} denied, {} pending, {} other; abusive: {} denied, {} pending, {} other",
            c(&counts.done),
            c(&counts.denied),
            c(&counts.pending),
            c(&counts.other),
            c(&abusive.denied),
            c(&abusive.pending),
            c(&abusive.other)
        );
        let status = ok_json(dir.path(), &["status"]);
        println!("status: {status}");
        drop(daemon);
        assert!(c(&counts.done) > 0 && c(&abusive.denied) > 0);
        // Stable from minute 2 on: RSS, log growth and p99 stay within a band of minute 2's.
        let base = rows.iter().find(|r| r.0 == 2).copied().unwrap();
        for r in rows.iter().filter(|r| r.0 > 2) {
            assert!(
                r.1 <= base.1 + base.1 / 2 + 32 * 1024,
                "RSS grew: minute 2 {} KiB, minute {} {} KiB",
                base.1,
                r.0,
                r.1
            );
            assert!(
                r.2 <= base.2 * 2 + (1 << 20),
                "log growth rose: minute 2 +{} B, minute {} +{} B",
                base.2,
                r.0,
                r.2
            );
            assert!(r.3 <= base.3 * 3 + 50_000, "p99 rose: minute 2 {} us, minute {} {} us", base.3, r.0, r.3);
        }
    }
}
