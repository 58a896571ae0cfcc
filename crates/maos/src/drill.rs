//! Fault drills: with `MAOS_DRILL_DIR` set, `maos up` watches that directory
//! and turns a fault on while a file of its name exists there, so an operator
//! (or a test) can see what the kernel does when a part of it fails, through
//! the real daemon: the canonical state, the deny codes, the logged
//! transitions and the recovery (`docs/resilience.md`).
//!
//! Every drill can only make the kernel refuse more, never allow more
//! (`KernelFaults`, `DrillStorage`); enabling them is announced at start-up.
//! Without the variable nothing is watched. Because a drill can stop the
//! kernel's commits, the directory must belong to the data directory's owner
//! and be writable by nobody else, and drills are refused in Hardened and
//! Isolated (`MAOS-CONFIG`).

use maos_kernel::KernelFaults;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The environment variable naming the drill directory.
pub const DRILL_DIR_ENV: &str = "MAOS_DRILL_DIR";
/// How often the directory is looked at.
const POLL: Duration = Duration::from_millis(100);

/// The switches the drills flip.
#[derive(Debug, Clone, Default)]
pub struct Switches {
    pub kernel: Arc<KernelFaults>,
    /// The log's syncs fail (a disk refusing durable writes).
    pub wal_sync: Arc<AtomicBool>,
}

/// Which switch a drill flips.
type Switch = fn(&Switches) -> &AtomicBool;

/// The drill files and what each turns on.
const DRILLS: [(&str, Switch); 8] = [
    ("stall-sequencer", |s| &s.kernel.stop_heartbeat),
    ("stop-dsc-heartbeat", |s| &s.kernel.stop_dsc_heartbeat),
    ("replay-dsc-heartbeat", |s| &s.kernel.replay_dsc_heartbeat),
    ("forge-dsc-config-hash", |s| &s.kernel.forge_dsc_config_hash),
    ("wrong-dsc-answer", |s| &s.kernel.wrong_dsc_answer),
    ("fail-dsc", |s| &s.kernel.fail_dsc),
    ("fail-wal-sync", |s| &s.wal_sync),
    ("hang-commit-executors", |s| &s.kernel.hang_commit_executors),
];

/// The drill directory and fresh switches, when `MAOS_DRILL_DIR` is set.
///
/// # Errors
/// `MAOS-CONFIG` when the profile is not Standard, or the directory is not a
/// directory of the data directory's owner that only that owner may write.
pub fn from_env(
    data_root: &std::path::Path,
    profile: maos_model::Profile,
) -> anyhow::Result<Option<(PathBuf, Switches)>> {
    use std::os::unix::fs::MetadataExt as _;
    let Some(dir) = std::env::var_os(DRILL_DIR_ENV).filter(|d| !d.is_empty()) else { return Ok(None) };
    let dir = PathBuf::from(dir);
    let refuse = |why: String| crate::output::coded("MAOS-CONFIG", format!("{DRILL_DIR_ENV}: {why}"), 1);
    if profile != maos_model::Profile::Standard {
        return Err(refuse(format!("fault drills are for Standard only, not {profile:?}")));
    }
    let meta = std::fs::metadata(&dir).map_err(|e| refuse(format!("`{}`: {e}", dir.display())))?;
    let owner = std::fs::metadata(data_root).map_err(|e| refuse(format!("`{}`: {e}", data_root.display())))?.uid();
    if !meta.is_dir() || meta.uid() != owner || meta.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "`{}` must be a directory of the data directory's owner that nobody else may write (mode 0700 or 0755)",
            dir.display()
        )));
    }
    Ok(Some((dir, Switches::default())))
}

/// Stops the watcher when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Watches `dir`: each switch follows whether its file exists.
pub fn watch(dir: PathBuf, switches: Switches) -> Watcher {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let spawned = std::thread::Builder::new().name("maos-drills".into()).spawn(move || {
        while !stopped.load(Ordering::SeqCst) {
            apply(&dir, &switches);
            std::thread::sleep(POLL);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the fault drill watcher could not start: no drill will apply");
    }
    Watcher { stop }
}

/// The one-shot drills: the running instance hangs (the file is consumed;
/// the TSCA's restart brings a new instance).
const ONE_SHOTS: [(&str, Switch); 2] = [
    ("hang-dsc-instance", |s| &s.kernel.hang_dsc_instance),
    ("hang-mcp-supervisor", |s| &s.kernel.hang_mcp_supervisor),
];

/// The drill files whose content (1 to 100) is the least disk or memory use
/// the kernel reads.
/// Which percentage a drill sets.
type Percent = fn(&Switches) -> &std::sync::atomic::AtomicU8;

const PERCENT_DRILLS: [(&str, Percent); 2] =
    [("disk-used-percent", |s| &s.kernel.disk_used_pct), ("memory-used-percent", |s| &s.kernel.memory_used_pct)];

fn apply(dir: &std::path::Path, switches: &Switches) {
    for (name, value) in PERCENT_DRILLS {
        let pct = std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|t| t.trim().parse::<u8>().ok())
            .filter(|p| (1..=100).contains(p))
            .unwrap_or(0);
        if value(switches).swap(pct, Ordering::SeqCst) != pct {
            tracing::warn!(drill = name, used_pct = pct, "fault drill: use (0: measured)");
        }
    }
    for (name, switch) in ONE_SHOTS {
        let file = dir.join(name);
        if file.exists() {
            match std::fs::remove_file(&file) {
                Ok(()) => {
                    switch(switches).store(true, Ordering::SeqCst);
                    tracing::warn!(drill = name, "fault drill: the running instance hangs");
                }
                Err(e) => tracing::error!(drill = name, error = %e, "the one-shot drill could not be consumed"),
            }
        }
    }
    for (name, switch) in DRILLS {
        let on = dir.join(name).exists();
        if switch(switches).swap(on, Ordering::SeqCst) != on {
            if on {
                tracing::warn!(drill = name, "fault drill on");
            } else {
                tracing::warn!(drill = name, "fault drill off");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_follows_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Switches::default();
        apply(dir.path(), &s);
        assert!(!s.kernel.stop_dsc_heartbeat.load(Ordering::SeqCst));
        std::fs::write(dir.path().join("stop-dsc-heartbeat"), "").unwrap();
        std::fs::write(dir.path().join("fail-wal-sync"), "").unwrap();
        apply(dir.path(), &s);
        assert!(s.kernel.stop_dsc_heartbeat.load(Ordering::SeqCst));
        assert!(s.wal_sync.load(Ordering::SeqCst));
        std::fs::remove_file(dir.path().join("stop-dsc-heartbeat")).unwrap();
        apply(dir.path(), &s);
        assert!(!s.kernel.stop_dsc_heartbeat.load(Ordering::SeqCst));
        assert!(!s.kernel.stop_heartbeat.load(Ordering::SeqCst));
        std::fs::write(dir.path().join("disk-used-percent"), "96\n").unwrap();
        apply(dir.path(), &s);
        assert_eq!(s.kernel.disk_used_pct.load(Ordering::SeqCst), 96);
        std::fs::write(dir.path().join("disk-used-percent"), "lots").unwrap();
        apply(dir.path(), &s);
        assert_eq!(s.kernel.disk_used_pct.load(Ordering::SeqCst), 0, "not a number: measured");
        std::fs::write(dir.path().join("hang-dsc-instance"), "").unwrap();
        apply(dir.path(), &s);
        assert!(s.kernel.hang_dsc_instance.load(Ordering::SeqCst));
        assert!(!dir.path().join("hang-dsc-instance").exists(), "one shot: consumed");
        std::fs::write(dir.path().join("memory-used-percent"), "86").unwrap();
        std::fs::write(dir.path().join("hang-mcp-supervisor"), "").unwrap();
        std::fs::write(dir.path().join("hang-commit-executors"), "").unwrap();
        apply(dir.path(), &s);
        assert_eq!(s.kernel.memory_used_pct.load(Ordering::SeqCst), 86);
        assert!(s.kernel.hang_mcp_supervisor.load(Ordering::SeqCst));
        assert!(s.kernel.hang_commit_executors.load(Ordering::SeqCst));
    }
}
