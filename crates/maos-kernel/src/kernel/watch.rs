//! The watchdog and the DSC heartbeat (spec §16.3, §15.5, Rule 10): the kernel
//! health report the Mandatory Rules read is built from what these observe,
//! never assumed.
//!
//! Guarantees:
//! - **Independent of the runtime.** The watchdog and the DSC heartbeat are OS
//!   threads, started before the sequencer: a stalled async runtime or
//!   sequencer is still seen. They hold the kernel only weakly and end when it
//!   is gone.
//! - **A component is unresponsive at twice its interval** (never under
//!   [`UNRESPONSIVE_FLOOR`]: scheduling jitter on a shared machine is not a
//!   failure). The sequencer pets on every loop turn; the DSC instance sends a
//!   heartbeat every [`DSC_HEARTBEAT_INTERVAL_DEFAULT`]: a known-answer
//!   decision (a request without a token must be denied by check 1) run by the
//!   same code under the same configuration, with a counter and the
//!   configuration's hash.
//! - **A heartbeat counts only if it is the next one** (its counter exactly +1,
//!   CT-DEG-04), **under the configuration loaded at boot** (a different hash
//!   is an integrity violation: RED, and Rule 1 denies everything, CT-DEG-05),
//!   **with the right answer** (else the voter is down: Rule 6 denies).
//! - **Boot lockdown** (CT-DEG-13): nothing is decided until the DSC has sent
//!   [`BOOT_HEARTBEATS`] valid heartbeats in a row; after a miss, effects
//!   wait for as many again (Rule 10).
//! - **Every change is logged** as a `kernel.state` transition by whoever saw
//!   it (this thread for components, the sequencer for its modes).

use super::{KernelFaults, Shared};
use crate::posture::{Capacity, Component};
use maos_commit::CommitLayer;
use maos_dsc::{DscConfig, DscState, decide};
use maos_model::{AgentId, EffectClass, IfcLevel, Intent, IntentId, UnixMillis, Verdict};
use maos_token::TokenError;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// How often the DSC instance sends its heartbeat (spec §38: 100 ms).
pub const DSC_HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_millis(100);
/// Valid heartbeats in a row that end the boot lockdown, and that effects
/// wait for after a miss (spec §16: three).
pub const BOOT_HEARTBEATS: u32 = 3;
/// The shortest time without a pet that makes a component unresponsive.
pub const UNRESPONSIVE_FLOOR: Duration = Duration::from_millis(500);
/// Disk use (spec §25.2) at which a warning is logged.
pub const DISK_WARN_PCT: u8 = 80;
/// Disk use at which expired Rollback Zone snapshots are purged.
pub const DISK_CLEANUP_PCT: u8 = 90;
/// Disk use at which only essential writes (the log) go on: Rule 5 denies effects.
pub const DISK_ESSENTIAL_PCT: u8 = 95;
/// Disk use at which nothing but the kernel's own shutdown may write: Rule 8
/// denies everything (RED).
pub const DISK_EMERGENCY_PCT: u8 = 99;
/// A log writer stalled this many times its unresponsive limit is an
/// emergency controlled shutdown.
pub const WAL_STALL_ECS_FACTOR: u64 = 3;
/// How often the disk is measured.
const DISK_PROBE_EVERY_MS: u64 = 1_000;

/// The share of the filesystem holding `dir` that is used, in percent
/// (rounded up), as `df` counts it: blocks free to unprivileged users are free.
#[must_use]
pub fn disk_used_pct(dir: &std::path::Path) -> Option<u8> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let used = s.f_blocks.checked_sub(s.f_bfree)?;
    let total = used.checked_add(s.f_bavail)?;
    if total == 0 {
        return None;
    }
    let pct = used.saturating_mul(100).div_ceil(total);
    u8::try_from(pct.min(100)).ok()
}

/// Heartbeats buffered between the DSC instance and the watchdog; a full
/// buffer drops the beat (the watchdog sees a gap, never a stale beat).
const BEATS_BUFFERED: usize = 8;

/// One DSC heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DscBeat {
    /// Counts from 1; each beat is the previous one's + 1.
    pub seq: u64,
    /// Hash of the configuration the instance decided under.
    pub config_hash: [u8; 32],
    /// Whether the known-answer decision came out as it must.
    pub answered: bool,
}

/// Why a heartbeat did not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatFault {
    /// Its counter was not the previous one's + 1 (a replay or a gap).
    OutOfSequence {
        /// The counter expected.
        expected: u64,
        /// The counter received.
        got: u64,
    },
    /// Decided under another configuration (an integrity violation).
    ConfigHash,
    /// The known-answer decision came out wrong (the voter is down).
    WrongAnswer,
}

/// Checks a stream of DSC heartbeats. Pure: the caller supplies the time.
#[derive(Debug, Clone)]
pub struct BeatMonitor {
    expected_hash: [u8; 32],
    last_seq: u64,
    consecutive: u32,
    last_valid_ms: Option<u64>,
    integrity: bool,
    voter_ok: bool,
}

impl BeatMonitor {
    /// A monitor for an instance that must decide under `expected_hash`.
    #[must_use]
    pub const fn new(expected_hash: [u8; 32]) -> Self {
        Self { expected_hash, last_seq: 0, consecutive: 0, last_valid_ms: None, integrity: false, voter_ok: true }
    }

    /// Takes one beat received at `now_ms`; a run of valid beats broken by a
    /// silence longer than `limit_ms` starts again.
    ///
    /// # Errors
    /// Why it did not count; the run of valid beats starts again.
    pub fn accept(&mut self, beat: &DscBeat, now_ms: u64, limit_ms: u64) -> Result<(), BeatFault> {
        if self.stale(now_ms, limit_ms) {
            self.consecutive = 0;
        }
        let expected = self.last_seq.saturating_add(1);
        if beat.config_hash != self.expected_hash {
            // Sticky: a DSC that decided under another configuration is not
            // trusted again without a restart. Its counter is not trusted
            // either, so it does not move the sequence.
            self.integrity = true;
            self.consecutive = 0;
            return Err(BeatFault::ConfigHash);
        }
        let fault = if beat.seq != expected {
            Some(BeatFault::OutOfSequence { expected, got: beat.seq })
        } else if beat.answered {
            None
        } else {
            self.voter_ok = false;
            Some(BeatFault::WrongAnswer)
        };
        // A replayed (older) counter never moves the sequence back.
        self.last_seq = self.last_seq.max(beat.seq);
        if let Some(fault) = fault {
            self.consecutive = 0;
            return Err(fault);
        }
        self.voter_ok = true;
        self.consecutive = self.consecutive.saturating_add(1);
        self.last_valid_ms = Some(now_ms);
        Ok(())
    }

    /// Valid beats in a row.
    #[must_use]
    pub const fn consecutive(&self) -> u32 {
        self.consecutive
    }

    /// Whether the last valid beat is older than `limit_ms` (or there was none).
    #[must_use]
    pub fn stale(&self, now_ms: u64, limit_ms: u64) -> bool {
        self.last_valid_ms.is_none_or(|at| now_ms.saturating_sub(at) > limit_ms)
    }

    /// Whether a beat came under another configuration (sticky).
    #[must_use]
    pub const fn integrity_violated(&self) -> bool {
        self.integrity
    }

    /// Whether the last beat's known answer was right.
    #[must_use]
    pub const fn voter_ok(&self) -> bool {
        self.voter_ok
    }
}

/// One watched component, for `maos status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentView {
    /// Which.
    pub component: Component,
    /// Its pet interval, ms.
    pub interval_ms: u64,
    /// Time since its last valid pet, ms (`None`: never petted).
    pub since_pet_ms: Option<u64>,
    /// Past twice its interval.
    pub unresponsive: bool,
}

/// The part of [`Observed`] the health report is built from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthInputs {
    pub heartbeat_ok: bool,
    pub voter_ok: bool,
    pub rollback_ok: bool,
    pub integrity_violated: bool,
    pub disk_used_pct: Option<u8>,
}

/// What the watchdog last concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observed {
    pub unresponsive: Vec<Component>,
    pub integrity: Option<String>,
    pub lockdown: bool,
    /// Every component responsive and [`BOOT_HEARTBEATS`] valid DSC beats in a row.
    pub heartbeat_ok: bool,
    /// [`BOOT_HEARTBEATS`] valid DSC beats in a row under the boot configuration.
    pub dsc_beats_valid: bool,
    pub voter_ok: bool,
    /// The Rollback Zone's directory is there and writable (Rule 5).
    pub rollback_ok: bool,
    /// Disk use of the data directory's filesystem, percent (`None`: not measured).
    pub disk_used_pct: Option<u8>,
    /// Memory use, percent (`None`: not measured).
    pub memory_used_pct: Option<u8>,
    /// Memory pressure after hysteresis (degraded mode 1).
    pub capacity: Capacity,
    pub components: Vec<ComponentView>,
}

/// A ring-1 component supervised from outside the kernel (the MCP upstream
/// supervisor): it pets through a [`ComponentPet`]; the TSCA restarts it by
/// calling `restart` with a new pet, which ends the old one's turn.
struct External {
    component: Component,
    interval: Duration,
    pet_ms: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    restart: Arc<dyn Fn(ComponentPet) + Send + Sync>,
}

/// What a supervised component holds: its pet, and whether it is still the
/// running instance (a restart replaces it).
#[derive(Clone)]
pub struct ComponentPet {
    component: Component,
    epoch: Instant,
    pet_ms: Arc<AtomicU64>,
    generation: Arc<AtomicU64>,
    mine: u64,
    faults: Arc<KernelFaults>,
}

impl std::fmt::Debug for ComponentPet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentPet").field("component", &self.component).field("generation", &self.mine).finish()
    }
}

impl ComponentPet {
    /// Tells the watchdog this instance is alive.
    pub fn pet(&self) {
        if self.current() {
            self.pet_ms.store(ms_since(self.epoch), Ordering::SeqCst);
        }
    }

    /// Whether this is still the running instance; a replaced one must end.
    #[must_use]
    pub fn current(&self) -> bool {
        self.generation.load(Ordering::SeqCst) == self.mine
    }

    /// The one-shot drill (`KernelFaults::hang_mcp_supervisor`): whether this
    /// instance must hang now (it is consumed; a restarted instance runs).
    #[must_use]
    pub fn hang_drill(&self) -> bool {
        self.component == Component::McpUpstreams && self.faults.hang_mcp_supervisor.swap(false, Ordering::SeqCst)
    }
}

/// Monotonic ms since `epoch`, never 0 (0 means never petted).
fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The watchdog's side of the kernel's shared state.
pub(crate) struct Watch {
    epoch: Instant,
    sequencer_pet_ms: AtomicU64,
    watchdog_pet_ms: AtomicU64,
    /// The last probe job that ran on a Commit Layer executor.
    commit_pet_ms: Arc<AtomicU64>,
    /// Supervised ring-1 components, one per [`Component`] at most.
    external: Mutex<Vec<External>>,
    /// [`Observed::capacity`] for the request path, without the lock.
    capacity: AtomicU8,
    faults: Arc<KernelFaults>,
    memory_reader: MemoryReader,
    /// Why the audit sweep found the chain broken (sticky: Rule 3).
    audit_broken: Mutex<Option<String>>,
    /// `audit_broken` is set: read on every health report without the lock.
    audit_failed: AtomicBool,
    pub sequencer_interval: Duration,
    pub dsc_interval: Duration,
    /// How long one commit group may take before the log's writer is
    /// unresponsive (twice this).
    pub wal_interval: Duration,
    pub observed: Mutex<Observed>,
    /// `observed.lockdown` for the request path, without the lock.
    lockdown: AtomicBool,
    pub lockdown_lifted: tokio::sync::watch::Sender<bool>,
}

impl Watch {
    pub(crate) fn new(
        sequencer_interval: Duration,
        dsc_interval: Duration,
        faults: Arc<KernelFaults>,
        memory_reader: MemoryReader,
        wal_interval: Duration,
    ) -> Self {
        Self {
            epoch: Instant::now(),
            // A pet at 1 ms: the sequencer is given its full interval from now.
            sequencer_pet_ms: AtomicU64::new(1),
            watchdog_pet_ms: AtomicU64::new(1),
            commit_pet_ms: Arc::new(AtomicU64::new(1)),
            external: Mutex::new(Vec::new()),
            capacity: AtomicU8::new(0),
            faults,
            memory_reader,
            audit_broken: Mutex::new(None),
            audit_failed: AtomicBool::new(false),
            sequencer_interval,
            dsc_interval,
            wal_interval,
            observed: Mutex::new(Observed {
                unresponsive: Vec::new(),
                integrity: None,
                lockdown: true,
                heartbeat_ok: false,
                dsc_beats_valid: false,
                voter_ok: true,
                rollback_ok: true,
                disk_used_pct: None,
                memory_used_pct: None,
                capacity: Capacity::Normal,
                components: Vec::new(),
            }),
            lockdown: AtomicBool::new(true),
            lockdown_lifted: tokio::sync::watch::channel(false).0,
        }
    }

    /// Whether the boot lockdown still holds.
    pub(crate) fn lockdown(&self) -> bool {
        self.lockdown.load(Ordering::SeqCst)
    }

    /// Monotonic ms since the kernel started, never 0 (0 means never petted).
    pub(crate) fn now_ms(&self) -> u64 {
        ms_since(self.epoch)
    }

    /// Why the audit chain is broken on disk, once the sweep found it so.
    pub(crate) fn audit_broken(&self) -> Option<String> {
        if !self.audit_failed.load(Ordering::SeqCst) {
            return None;
        }
        Some(
            self.audit_broken
                .lock()
                .ok()
                .and_then(|b| b.clone())
                .unwrap_or_else(|| "the audit chain is broken".to_owned()),
        )
    }

    /// Whether the audit sweep found the chain broken (the health report's
    /// Rule 3 input, read before every batch: no lock, no allocation).
    pub(crate) fn audit_intact(&self) -> bool {
        !self.audit_failed.load(Ordering::SeqCst)
    }

    pub(crate) fn set_audit_broken(&self, why: String) {
        if let Ok(mut broken) = self.audit_broken.lock() {
            broken.get_or_insert(why);
        }
        // Set even if the lock is poisoned: fail closed.
        self.audit_failed.store(true, Ordering::SeqCst);
    }

    /// Memory pressure now, for the request path.
    pub(crate) fn capacity(&self) -> Capacity {
        match self.capacity.load(Ordering::SeqCst) {
            0 => Capacity::Normal,
            1 => Capacity::Reduced,
            _ => Capacity::Critical,
        }
    }

    /// Supervises a ring-1 `component` petting every `interval`; the TSCA's
    /// restart calls `restart` with a fresh pet. A second registration of
    /// the same component replaces the first.
    pub(crate) fn supervise(
        &self,
        component: Component,
        interval: Duration,
        restart: Arc<dyn Fn(ComponentPet) + Send + Sync>,
    ) -> Option<ComponentPet> {
        let mut external = self.external.lock().ok()?;
        external.retain(|e| {
            // A replaced registration's pets are no longer current.
            let replaced = e.component == component;
            if replaced {
                e.generation.fetch_add(1, Ordering::SeqCst);
            }
            !replaced
        });
        let pet_ms = Arc::new(AtomicU64::new(self.now_ms()));
        let generation = Arc::new(AtomicU64::new(1));
        let pet = ComponentPet {
            component,
            epoch: self.epoch,
            pet_ms: pet_ms.clone(),
            generation: generation.clone(),
            mine: 1,
            faults: self.faults.clone(),
        };
        external.push(External { component, interval, pet_ms, generation, restart });
        Some(pet)
    }

    /// Restarts a supervised component: a new generation, given its full
    /// interval, handed to its restart function. Whether one was supervised.
    pub(crate) fn restart_external(&self, component: Component) -> bool {
        let found = self.external.lock().ok().and_then(|external| {
            external.iter().find(|e| e.component == component).map(|e| {
                let mine = e.generation.fetch_add(1, Ordering::SeqCst).saturating_add(1);
                e.pet_ms.store(self.now_ms(), Ordering::SeqCst);
                let pet = ComponentPet {
                    component,
                    epoch: self.epoch,
                    pet_ms: e.pet_ms.clone(),
                    generation: e.generation.clone(),
                    mine,
                    faults: self.faults.clone(),
                };
                (e.restart.clone(), pet)
            })
        });
        // Called outside the lock: the restart may register or pet.
        found.map(|(restart, pet)| restart(pet)).is_some()
    }

    pub(crate) fn pet_sequencer(&self) {
        self.sequencer_pet_ms.store(self.now_ms(), Ordering::SeqCst);
    }

    /// Whether the watchdog itself is alive: Rule 11's supervising instance on one node.
    pub(crate) fn supervisor_present(&self) -> bool {
        let last = self.watchdog_pet_ms.load(Ordering::SeqCst);
        self.now_ms().saturating_sub(last) <= limit_ms(self.tick())
    }

    fn tick(&self) -> Duration {
        (self.sequencer_interval.min(self.dsc_interval) / 2).max(Duration::from_millis(5))
    }

    /// What the health report needs from the last observation, copied under
    /// the lock (the sequencer reads it before every batch: no allocation).
    pub(crate) fn health_inputs(&self) -> HealthInputs {
        self.observed.lock().map_or(
            // A poisoned lock reads as everything failed.
            HealthInputs {
                heartbeat_ok: false,
                voter_ok: false,
                rollback_ok: false,
                integrity_violated: true,
                disk_used_pct: Some(100),
            },
            |o| HealthInputs {
                heartbeat_ok: o.heartbeat_ok,
                voter_ok: o.voter_ok,
                rollback_ok: o.rollback_ok,
                integrity_violated: o.integrity.is_some(),
                disk_used_pct: o.disk_used_pct,
            },
        )
    }

    pub(crate) fn observed(&self) -> Observed {
        self.observed.lock().map_or_else(
            |_| Observed {
                unresponsive: vec![Component::Sequencer, Component::Dsc],
                integrity: Some("watchdog state lock poisoned".into()),
                lockdown: true,
                heartbeat_ok: false,
                dsc_beats_valid: false,
                voter_ok: false,
                rollback_ok: false,
                disk_used_pct: Some(100),
                memory_used_pct: Some(100),
                capacity: Capacity::Critical,
                components: Vec::new(),
            },
            |o| o.clone(),
        )
    }
}

pub(crate) fn limit_ms(interval: Duration) -> u64 {
    u64::try_from((interval * 2).max(UNRESPONSIVE_FLOOR).as_millis()).unwrap_or(u64::MAX)
}

/// The watchdog thread; dropping this stops and joins it (the sequencer owns
/// it, so a kernel that is gone leaves no thread holding its log open). DSC
/// instances are not joined: they hold no log, end at their next turn once
/// stopped or replaced, and one truly stuck must not hang the kernel's end.
pub(super) struct WatchThreads {
    stop: Arc<Stop>,
    watchdog: Option<std::thread::JoinHandle<()>>,
    tsca: Option<std::thread::JoinHandle<()>>,
    audit: Option<std::thread::JoinHandle<()>>,
    state_log: Option<std::thread::JoinHandle<()>>,
    /// Set once the others are joined: the state log drains and ends.
    log_stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    /// Sleeps up to `d`; whether the threads must stop.
    fn sleep(&self, d: Duration) -> bool {
        let Ok(guard) = self.stopped.lock() else { return true };
        match self.wake.wait_timeout_while(guard, d, |stopped| !*stopped) {
            Ok((stopped, _)) => *stopped,
            Err(_) => true,
        }
    }

    fn is_set(&self) -> bool {
        self.stopped.lock().map_or(true, |s| *s)
    }
}

impl Drop for WatchThreads {
    fn drop(&mut self) {
        if let Ok(mut stopped) = self.stop.stopped.lock() {
            *stopped = true;
        }
        self.stop.wake.notify_all();
        for handle in [self.watchdog.take(), self.tsca.take(), self.audit.take()].into_iter().flatten() {
            let _ = handle.join();
        }
        // The state log last: it drains what the others queued.
        self.log_stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.state_log.take() {
            let _ = handle.join();
        }
    }
}

/// Starts DSC instances: the first at boot, a new one whenever the TSCA
/// restarts it. An instance runs while the generation is its own; its
/// counter continues the last one's, so the watchdog's sequence holds.
pub(super) struct DscInstances {
    shared: Weak<Shared>,
    stop: Arc<Stop>,
    config: Arc<DscConfig>,
    interval: Duration,
    faults: Arc<KernelFaults>,
    tx: SyncSender<DscBeat>,
    generation: Arc<AtomicU64>,
    seq: Arc<AtomicU64>,
}

impl DscInstances {
    /// Starts a new instance; the running one ends at its next turn.
    pub(super) fn start(&self) -> std::io::Result<()> {
        let mine = self.generation.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        let instance = Instance { generation: self.generation.clone(), mine, seq: self.seq.clone() };
        let (weak, stop, config, interval, faults, tx) = (
            self.shared.clone(),
            self.stop.clone(),
            self.config.clone(),
            self.interval,
            self.faults.clone(),
            self.tx.clone(),
        );
        // Detached (see `WatchThreads`).
        std::thread::Builder::new()
            .name(format!("maos-dsc-heartbeat-{mine}"))
            .spawn(move || dsc_heartbeat(&weak, &stop, &config, interval, &faults, &tx, &instance))?;
        Ok(())
    }
}

/// One DSC instance's identity.
struct Instance {
    generation: Arc<AtomicU64>,
    mine: u64,
    seq: Arc<AtomicU64>,
}

impl Instance {
    fn current(&self) -> bool {
        self.generation.load(Ordering::SeqCst) == self.mine
    }
}

/// Starts the watchdog and the first DSC instance.
pub(super) fn spawn(
    shared: &Arc<Shared>,
    config: Arc<DscConfig>,
    commit: &Arc<CommitLayer>,
    faults: Arc<KernelFaults>,
    audit_sweep_every: Duration,
) -> std::io::Result<WatchThreads> {
    let (tx, rx) = sync_channel(BEATS_BUFFERED);
    let mut threads = WatchThreads {
        stop: Arc::new(Stop::default()),
        watchdog: None,
        tsca: None,
        audit: None,
        state_log: None,
        log_stop: Arc::new(AtomicBool::new(false)),
    };
    let hash = config.hash();
    let instances = DscInstances {
        shared: Arc::downgrade(shared),
        stop: threads.stop.clone(),
        config,
        interval: shared.watch.dsc_interval,
        faults: faults.clone(),
        tx,
        generation: Arc::new(AtomicU64::new(0)),
        seq: Arc::new(AtomicU64::new(0)),
    };
    let (weak, stop, commit) = (Arc::downgrade(shared), threads.stop.clone(), Arc::downgrade(commit));
    instances.start()?;
    let (tsca_tx, tsca_rx) = sync_channel::<Observed>(1);
    threads.watchdog = Some(
        std::thread::Builder::new()
            .name("maos-watchdog".into())
            .spawn(move || watchdog(&weak, &stop, &rx, hash, &commit, &faults, &tsca_tx))?,
    );
    let (log_tx, log_rx) = sync_channel::<(maos_wal::RecordKind, Vec<u8>)>(STATE_LOG_QUEUE);
    if shared.state_log.set(log_tx).is_ok() {
        let (wal, stop) = (shared.wal.clone(), threads.log_stop.clone());
        threads.state_log = Some(
            std::thread::Builder::new().name("maos-state-log".into()).spawn(move || state_log(&wal, &stop, &log_rx))?,
        );
    }
    let (weak, stop) = (Arc::downgrade(shared), threads.stop.clone());
    threads.tsca = Some(
        std::thread::Builder::new()
            .name("maos-tsca".into())
            .spawn(move || tsca_loop(&weak, &stop, &tsca_rx, &instances))?,
    );
    let (weak, stop) = (Arc::downgrade(shared), threads.stop.clone());
    threads.audit = Some(
        std::thread::Builder::new()
            .name("maos-audit-sweep".into())
            .spawn(move || super::audit::run(&weak, audit_sweep_every, |d| stop.sleep(d)))?,
    );
    Ok(threads)
}

/// The request every heartbeat decides: no token, so check 1 must deny it.
fn canary() -> Option<Intent> {
    Some(Intent {
        id: IntentId::new_v7(1, [0; 10]),
        agent: AgentId::new("maos-dsc-heartbeat").ok()?,
        action: "dsc.heartbeat".into(),
        resources: vec![],
        args: std::collections::BTreeMap::new(),
        effect: EffectClass::Observe,
        cost: 0,
        sink_level: IfcLevel::Public,
        requires_integrity: false,
        reads: vec![],
        sensitive_args: vec![],
        provenance_deny: false,
        world_state_hash: None,
    })
}

fn dsc_heartbeat(
    shared: &Weak<Shared>,
    stop: &Stop,
    config: &Arc<DscConfig>,
    interval: Duration,
    faults: &KernelFaults,
    tx: &SyncSender<DscBeat>,
    instance: &Instance,
) {
    let canary = canary();
    let missing = TokenError::UnknownToken("none presented".into());
    let mut last: Option<DscBeat> = None;
    let mut hung = false;
    loop {
        if stop.is_set() || !instance.current() || shared.upgrade().is_none_or(|s| s.stopped.load(Ordering::SeqCst)) {
            return;
        }
        // A hang takes this instance only: a restarted one beats again.
        hung = hung || faults.hang_dsc_instance.swap(false, Ordering::SeqCst);
        let beat = if hung || faults.stop_dsc_heartbeat.load(Ordering::SeqCst) {
            None
        } else if let Some(old) = last.filter(|_| faults.replay_dsc_heartbeat.load(Ordering::SeqCst)) {
            Some(old)
        } else {
            let next = instance.seq.load(Ordering::SeqCst).saturating_add(1);
            let answered = canary.as_ref().is_some_and(|intent| {
                let state = DscState::new(config.clone());
                let decision = decide(&state, intent, Err(&missing), UnixMillis(next));
                matches!(decision.verdict(), Verdict::Deny { code } if code.check() == 1)
            }) && !faults.wrong_dsc_answer.load(Ordering::SeqCst);
            let forged = faults.forge_dsc_config_hash.load(Ordering::SeqCst);
            let config_hash = if forged { [0xff; 32] } else { config.hash() };
            Some(DscBeat { seq: next, config_hash, answered })
        };
        if let Some(beat) = beat {
            match tx.try_send(beat) {
                Ok(()) => {
                    instance.seq.fetch_max(beat.seq, Ordering::SeqCst);
                    last = Some(beat);
                }
                // A watchdog too busy to read: the counter is not spent, so
                // the next beat is still the next one (no false gap).
                Err(std::sync::mpsc::TrySendError::Full(_)) => {}
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
            }
        }
        if stop.sleep(interval) {
            return;
        }
    }
}

fn watchdog(
    shared: &Weak<Shared>,
    stop: &Stop,
    rx: &Receiver<DscBeat>,
    config_hash: [u8; 32],
    commit: &Weak<CommitLayer>,
    drills: &Arc<KernelFaults>,
    tsca: &SyncSender<Observed>,
) {
    let mut monitor = BeatMonitor::new(config_hash);
    let mut disk = Disk::default();
    let mut memory = Memory::default();
    let mut probe = Probe::default();
    loop {
        if stop.is_set() {
            return;
        }
        let tick = match shared.upgrade() {
            Some(s) if !s.stopped.load(Ordering::SeqCst) => s.watch.tick(),
            _ => return,
        };
        let mut beats = Vec::new();
        match rx.recv_timeout(tick) {
            Ok(beat) => beats.push(beat),
            // The instances' starter holds a sender: a dead instance shows as
            // silence (stale beats), never as a closed channel.
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        while let Ok(beat) = rx.try_recv() {
            beats.push(beat);
        }
        // Stopping: the heartbeat thread ends first, which is not a failure.
        if stop.is_set() {
            return;
        }
        let (Some(shared), Some(commit)) = (shared.upgrade(), commit.upgrade()) else { return };
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let watch = &shared.watch;
        let now = watch.now_ms();
        watch.watchdog_pet_ms.store(now, Ordering::SeqCst);
        let mut faults = Vec::new();
        let dsc_limit = limit_ms(watch.dsc_interval);
        for beat in &beats {
            if let Err(fault) = monitor.accept(beat, now, dsc_limit) {
                faults.push(fault);
            }
        }
        let disk_pct = disk.measure(now, &commit, drills, &shared);
        let memory_pct = memory.measure(now, drills, &watch.memory_reader);
        probe.send(now, watch, &commit, drills);
        let commit_down = probe.down(now, limit_ms(watch.sequencer_interval));
        let wal_busy_ms = shared.wal.busy_for().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let readings =
            Readings { rollback_ok: commit.rollback_zone_ready(), disk_pct, memory_pct, commit_down, wal_busy_ms };
        let next = observe(watch, &monitor, now, readings);
        watch.capacity.store(next.capacity as u8, Ordering::SeqCst);
        let previous = watch.observed();
        if let Ok(mut o) = watch.observed.lock() {
            o.clone_from(&next);
        }
        if previous.lockdown && !next.lockdown {
            watch.lockdown.store(false, Ordering::SeqCst);
            watch.lockdown_lifted.send_replace(true);
        }
        for fault in &faults {
            tracing::warn!(?fault, "DSC heartbeat did not count");
        }
        if changed(&previous, &next) {
            shared.update_posture(&trigger(&previous, &next, &faults));
            // Logging may have waited on a sync: the watchdog is still alive.
            watch.watchdog_pet_ms.store(watch.now_ms(), Ordering::SeqCst);
        }
        // The TSCA acts on what the watchdog just confirmed (its own thread:
        // a stalled sequencer does not stop it).
        // A log writer stalled three times past its limit (a minute by
        // default) will not come back by itself: the emergency shutdown's
        // halt needs no log; its report waits for the sequencer.
        let stalled_ms = wal_busy_ms.unwrap_or(0);
        if stalled_ms > limit_ms(watch.wal_interval).saturating_mul(WAL_STALL_ECS_FACTOR) {
            let why = format!("the log's writer has had one commit group in flight for {stalled_ms} ms");
            shared.emergency_from_watchdog(crate::ecs::EcsTrigger::WalFailed { why });
        }
        // The TSCA acts on its own thread: its records must be durable before
        // it acts, and a log that hangs must not stop this one from watching.
        // A TSCA still busy with the last turn skips this one.
        let _ = tsca.try_send(next);
        drop((shared, commit));
    }
}

/// Mode and state transitions queued for the log, at most.
const STATE_LOG_QUEUE: usize = 1024;

/// The state log's thread: appends what is queued, in order; once the
/// kernel stops, drains the queue and ends.
fn state_log(wal: &maos_wal::Wal, stop: &AtomicBool, rx: &Receiver<(maos_wal::RecordKind, Vec<u8>)>) {
    let append = |(kind, payload): (maos_wal::RecordKind, Vec<u8>)| {
        if let Err(e) = wal.append(kind, &payload) {
            tracing::error!(error = %e, "a mode or state transition could not be logged");
        }
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(record) => append(record),
            Err(RecvTimeoutError::Timeout) if stop.load(Ordering::SeqCst) => {
                while let Ok(record) = rx.try_recv() {
                    append(record);
                }
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The TSCA's thread: each observation the watchdog hands over, the TSCA's
/// turn (its mode, the recovery chain, component and system restarts,
/// lapsed proposals), then the restarts it executed or the commander
/// approved.
fn tsca_loop(shared: &Weak<Shared>, stop: &Stop, rx: &Receiver<Observed>, instances: &DscInstances) {
    loop {
        let seen = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(seen) => seen,
            Err(RecvTimeoutError::Timeout) => {
                if stop.is_set() {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if stop.is_set() {
            return;
        }
        let Some(shared) = shared.upgrade() else { return };
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let mut restarts = super::tsca::tick(&shared, &seen);
        restarts.extend(shared.take_approved_restarts());
        for component in restarts {
            restart(component, &shared, instances);
        }
    }
}

/// Restarts one component the TSCA executed a restart of: a new DSC
/// instance, or a supervised ring-1 component's restart function. A failure
/// returns the TSCA's charge.
fn restart(component: Component, shared: &Shared, instances: &DscInstances) {
    let action = crate::tsca::TscaAction::RestartComponent { component };
    let failed = match component {
        Component::Dsc => instances.start().err().map(|e| format!("the DSC instance could not start: {e}")),
        other => (!shared.watch.restart_external(other)).then(|| format!("nothing supervises the {}", other.name())),
    };
    if let Some(why) = failed {
        tracing::error!(component = component.name(), why, "a component restart failed");
        shared.tsca_failed(&action, &why);
    }
}

/// The Commit Layer's liveness probe (spec §16.3, its 5 s pet): every
/// interval, a job that only pets is handed to the executors the way an
/// execution is handed over. The executors are unresponsive when a probe
/// handed over has not run within the limit, or when they have refused
/// probes (all hung at the thread cap, or a system refusing threads) for that
/// long; a watchdog that was itself slow to send one is not their failure.
#[derive(Default)]
struct Probe {
    next_ms: u64,
    in_flight: Arc<AtomicBool>,
    sent_ms: u64,
    refused_since: Option<u64>,
}

impl Probe {
    fn send(&mut self, now: u64, watch: &Watch, commit: &CommitLayer, faults: &Arc<KernelFaults>) {
        if now < self.next_ms || self.in_flight.swap(true, Ordering::SeqCst) {
            return;
        }
        self.next_ms = now.saturating_add(u64::try_from(watch.sequencer_interval.as_millis()).unwrap_or(u64::MAX));
        let (pet, in_flight, epoch, faults) =
            (watch.commit_pet_ms.clone(), self.in_flight.clone(), watch.epoch, faults.clone());
        let sent = commit.probe_executors(Box::new(move || {
            // The drill: an executor that does not return while it is on.
            while faults.hang_commit_executors.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            pet.store(ms_since(epoch), Ordering::SeqCst);
            in_flight.store(false, Ordering::SeqCst);
        }));
        match sent {
            Ok(()) => {
                self.sent_ms = now;
                self.refused_since = None;
            }
            Err(e) => {
                self.in_flight.store(false, Ordering::SeqCst);
                if self.refused_since.is_none() {
                    tracing::error!(error = %e, "the Commit Layer's executors took no probe");
                }
                self.refused_since.get_or_insert(now);
            }
        }
    }

    /// Whether the executors are unresponsive at `now` for `limit_ms`.
    fn down(&self, now: u64, limit_ms: u64) -> bool {
        let overdue = self.in_flight.load(Ordering::SeqCst) && now.saturating_sub(self.sent_ms) > limit_ms;
        overdue || self.refused_since.is_some_and(|t| now.saturating_sub(t) > limit_ms)
    }
}

/// What reads the memory use ([`memory_used_pct`] unless a test injects one).
pub type MemoryReader = Arc<dyn Fn() -> Option<u8> + Send + Sync>;

/// The memory probe: measured every [`DISK_PROBE_EVERY_MS`], worsened by the drill's value.
#[derive(Default)]
struct Memory {
    next_ms: u64,
    last: Option<u8>,
}

impl Memory {
    fn measure(&mut self, now: u64, faults: &KernelFaults, read: &MemoryReader) -> Option<u8> {
        if now < self.next_ms {
            return self.last;
        }
        self.next_ms = now.saturating_add(DISK_PROBE_EVERY_MS);
        let measured = read();
        let drill = faults.memory_used_pct.load(Ordering::SeqCst).min(100);
        let pct = if drill > 0 { Some(measured.map_or(drill, |m| m.max(drill))) } else { measured };
        if pct.is_none() && self.last.is_some() {
            tracing::error!("the memory use cannot be measured");
        }
        self.last = pct;
        pct
    }
}

/// Memory in use, percent (rounded up): the tighter of the host's
/// (`MemTotal − MemAvailable`, `/proc/meminfo`) and this process's cgroup v2
/// limit (`memory.current / memory.max`, when one is set).
#[must_use]
pub fn memory_used_pct() -> Option<u8> {
    let host = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| meminfo_used_pct(&t));
    let cgroup = cgroup_used_pct();
    match (host, cgroup) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn percent(used: u64, total: u64) -> Option<u8> {
    if total == 0 {
        return None;
    }
    u8::try_from(used.min(total).saturating_mul(100).div_ceil(total)).ok()
}

/// `/proc/meminfo`'s use: `MemTotal − MemAvailable` over `MemTotal`.
fn meminfo_used_pct(text: &str) -> Option<u8> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    let (total, available) = (field("MemTotal")?, field("MemAvailable")?);
    percent(total.saturating_sub(available), total)
}

/// The cgroup's working set over its limit: `memory.current` counts the page
/// cache too (the log's writes fill it, and it is reclaimed only near the
/// limit), so the inactive file pages are taken off, as kubelet does.
fn cgroup_used_pct() -> Option<u8> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let base = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |f: &str| std::fs::read_to_string(base.join(f)).ok();
    // `max` (no limit) does not parse: the host's reading alone counts.
    let limit = read("memory.max")?.trim().parse::<u64>().ok()?;
    let current = read("memory.current")?.trim().parse::<u64>().ok()?;
    let inactive = read("memory.stat").and_then(|t| stat_field(&t, "inactive_file")).unwrap_or(0);
    percent(current.saturating_sub(inactive), limit)
}

/// A `name value` line of a cgroup stat file.
fn stat_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next() == Some(name)).then(|| parts.next().and_then(|v| v.parse().ok())).flatten()
    })
}

/// The disk probe: measured every [`DISK_PROBE_EVERY_MS`] on the Rollback
/// Zone's filesystem (inside the data directory), worsened by the drill's value.
#[derive(Default)]
struct Disk {
    next_ms: u64,
    next_purge_ms: u64,
    last: Option<u8>,
    purging: Arc<AtomicBool>,
}

/// How often the clean-up runs again while the disk stays at 90 % or more.
const DISK_PURGE_EVERY_MS: u64 = 60_000;

impl Disk {
    fn measure(&mut self, now: u64, commit: &Arc<CommitLayer>, faults: &KernelFaults, shared: &Shared) -> Option<u8> {
        if now < self.next_ms {
            return self.last;
        }
        self.next_ms = now.saturating_add(DISK_PROBE_EVERY_MS);
        let measured = disk_used_pct(commit.rollback_zone().dir());
        // A drill can only make the reading worse, never hide a full disk.
        let drill = faults.disk_used_pct.load(Ordering::SeqCst).min(100);
        let pct = if drill > 0 { Some(measured.map_or(drill, |m| m.max(drill))) } else { measured };
        if pct.is_none_or(|p| p < DISK_CLEANUP_PCT) {
            // Below 90 %: the next crossing cleans up at once.
            self.next_purge_ms = 0;
        }
        if let Some(p) = pct.filter(|p| *p >= DISK_CLEANUP_PCT)
            && now >= self.next_purge_ms
        {
            // At 90 % and over, what the kernel may delete it deletes (snapshots
            // past their undo window), off this thread, again every minute.
            self.next_purge_ms = now.saturating_add(DISK_PURGE_EVERY_MS);
            self.purge(p, commit, shared);
        }
        if pct.is_none() && self.last.is_some() {
            tracing::error!("the disk use of the data directory cannot be measured");
        }
        self.last = pct;
        pct
    }

    fn purge(&self, pct: u8, commit: &Arc<CommitLayer>, shared: &Shared) {
        if self.purging.swap(true, Ordering::SeqCst) {
            return;
        }
        let (commit, clock, purging) = (commit.clone(), shared.clock.clone(), self.purging.clone());
        let spawned = std::thread::Builder::new().name("maos-disk-cleanup".into()).spawn(move || {
            match commit.rollback_zone().purge_expired(clock.now()) {
                Ok(n) => tracing::warn!(
                    used_pct = pct,
                    purged = n,
                    "disk at 90 % or more: expired rollback snapshots purged"
                ),
                Err(e) => {
                    tracing::error!(used_pct = pct, error = %e, "disk at 90 % or more: the rollback zone purge failed")
                }
            }
            purging.store(false, Ordering::SeqCst);
        });
        if let Err(e) = spawned {
            self.purging.store(false, Ordering::SeqCst);
            tracing::error!(error = %e, "the disk clean-up thread could not start");
        }
    }
}

/// What the probes read this turn.
struct Readings {
    rollback_ok: bool,
    disk_pct: Option<u8>,
    memory_pct: Option<u8>,
    /// The executors' probe is overdue or refused past the limit.
    commit_down: bool,
    /// How long the log's commit group in flight has taken (`None`: idle).
    wal_busy_ms: Option<u64>,
}

fn observe(watch: &Watch, monitor: &BeatMonitor, now: u64, readings: Readings) -> Observed {
    let Readings { rollback_ok, disk_pct: disk_used_pct, memory_pct, commit_down, wal_busy_ms } = readings;
    let seq_last = watch.sequencer_pet_ms.load(Ordering::SeqCst);
    let seq_since = now.saturating_sub(seq_last);
    let seq_down = seq_since > limit_ms(watch.sequencer_interval);
    let dsc_limit = limit_ms(watch.dsc_interval);
    // Before its first limit has passed, a DSC that has not beaten yet is the
    // boot lockdown's business.
    let dsc_down = monitor.stale(now, dsc_limit) && now > dsc_limit;
    let mut unresponsive = Vec::new();
    if seq_down {
        unresponsive.push(Component::Sequencer);
    }
    if dsc_down {
        unresponsive.push(Component::Dsc);
    }
    let commit_since = now.saturating_sub(watch.commit_pet_ms.load(Ordering::SeqCst));
    if commit_down {
        unresponsive.push(Component::CommitExecutors);
    }
    let wal_down = wal_busy_ms.is_some_and(|ms| ms > limit_ms(watch.wal_interval));
    if wal_down {
        unresponsive.push(Component::WalWriter);
    }
    let in_a_row = monitor.consecutive() >= BOOT_HEARTBEATS;
    let previous = watch.observed();
    let mut components = vec![
        ComponentView {
            component: Component::Sequencer,
            interval_ms: u64::try_from(watch.sequencer_interval.as_millis()).unwrap_or(u64::MAX),
            since_pet_ms: Some(seq_since),
            unresponsive: seq_down,
        },
        ComponentView {
            component: Component::Dsc,
            interval_ms: u64::try_from(watch.dsc_interval.as_millis()).unwrap_or(u64::MAX),
            since_pet_ms: monitor.last_valid_ms.map(|at| now.saturating_sub(at)),
            unresponsive: dsc_down,
        },
        ComponentView {
            component: Component::CommitExecutors,
            interval_ms: u64::try_from(watch.sequencer_interval.as_millis()).unwrap_or(u64::MAX),
            since_pet_ms: Some(commit_since),
            unresponsive: commit_down,
        },
        // An idle writer is as good as a fresh pet; a busy one has gone
        // without one for as long as its commit group has taken.
        ComponentView {
            component: Component::WalWriter,
            interval_ms: u64::try_from(watch.wal_interval.as_millis()).unwrap_or(u64::MAX),
            since_pet_ms: Some(wal_busy_ms.unwrap_or(0)),
            unresponsive: wal_down,
        },
    ];
    if let Ok(external) = watch.external.lock() {
        for e in external.iter() {
            let since = now.saturating_sub(e.pet_ms.load(Ordering::SeqCst));
            let down = since > limit_ms(e.interval);
            if down {
                unresponsive.push(e.component);
            }
            components.push(ComponentView {
                component: e.component,
                interval_ms: u64::try_from(e.interval.as_millis()).unwrap_or(u64::MAX),
                since_pet_ms: Some(since),
                unresponsive: down,
            });
        }
    }
    unresponsive.sort_unstable();
    let ring0_down = unresponsive.iter().any(|c| c.ring() == 0);
    Observed {
        heartbeat_ok: !ring0_down && in_a_row && !monitor.integrity_violated(),
        dsc_beats_valid: in_a_row && !monitor.integrity_violated(),
        unresponsive,
        integrity: monitor
            .integrity_violated()
            .then(|| "a DSC heartbeat came under another configuration hash".to_owned()),
        // Lifted once; a later miss is Rule 10's business, not a new boot.
        lockdown: previous.lockdown && !in_a_row,
        voter_ok: monitor.voter_ok(),
        rollback_ok,
        disk_used_pct,
        memory_used_pct: memory_pct,
        capacity: previous.capacity.next(memory_pct),
        components,
    }
}

/// A change worth a transition: everything but the pet ages.
fn changed(a: &Observed, b: &Observed) -> bool {
    let key =
        |o: &Observed| (o.lockdown, o.heartbeat_ok, o.voter_ok, o.rollback_ok, disk_band(o.disk_used_pct), o.capacity);
    (&a.unresponsive, &a.integrity, key(a)) != (&b.unresponsive, &b.integrity, key(b))
}

/// Which threshold band a disk reading is in (0: under 80 %, 4: 99 % or more).
fn disk_band(pct: Option<u8>) -> u8 {
    let p = pct.unwrap_or(0);
    [DISK_WARN_PCT, DISK_CLEANUP_PCT, DISK_ESSENTIAL_PCT, DISK_EMERGENCY_PCT].iter().map(|t| u8::from(p >= *t)).sum()
}

fn trigger(a: &Observed, b: &Observed, faults: &[BeatFault]) -> String {
    let mut parts = Vec::new();
    for c in b.unresponsive.iter().filter(|c| !a.unresponsive.contains(c)) {
        parts.push(format!("{} unresponsive", c.name()));
    }
    for c in a.unresponsive.iter().filter(|c| !b.unresponsive.contains(c)) {
        parts.push(format!("{} responsive again", c.name()));
    }
    if a.lockdown && !b.lockdown {
        parts.push(format!("boot lockdown lifted after {BOOT_HEARTBEATS} DSC heartbeats"));
    }
    if b.integrity.is_some() && a.integrity.is_none() {
        parts.push("DSC configuration hash mismatch".to_owned());
    }
    if a.voter_ok != b.voter_ok {
        parts.push(if b.voter_ok { "voter answering again" } else { "voter answered wrong" }.to_owned());
    }
    if disk_band(a.disk_used_pct) != disk_band(b.disk_used_pct) {
        parts.push(format!("disk {} % used", b.disk_used_pct.unwrap_or(0)));
    }
    if a.capacity != b.capacity {
        parts.push(format!("memory {} % used: capacity {:?}", b.memory_used_pct.unwrap_or(0), b.capacity));
    }
    if a.rollback_ok != b.rollback_ok {
        parts
            .push(if b.rollback_ok { "rollback zone writable again" } else { "rollback zone not writable" }.to_owned());
    }
    if a.heartbeat_ok != b.heartbeat_ok && parts.is_empty() {
        parts.push(if b.heartbeat_ok { "heartbeats valid again" } else { "heartbeats not valid" }.to_owned());
    }
    if let Some(f) = faults.first() {
        parts.push(format!("heartbeat fault {f:?}"));
    }
    format!("watchdog: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: [u8; 32] = [4; 32];

    fn beat(seq: u64) -> DscBeat {
        DscBeat { seq, config_hash: HASH, answered: true }
    }

    #[test]
    fn three_beats_in_a_row_and_a_replay_starts_the_run_again() {
        let mut m = BeatMonitor::new(HASH);
        for seq in 1..=3 {
            assert_eq!(m.accept(&beat(seq), seq * 100, 1_000), Ok(()));
        }
        assert_eq!(m.consecutive(), BOOT_HEARTBEATS);
        // CT-DEG-04: an old heartbeat replayed does not count, and the run restarts.
        assert_eq!(m.accept(&beat(2), 400, 1_000), Err(BeatFault::OutOfSequence { expected: 4, got: 2 }));
        assert_eq!(m.consecutive(), 0);
        assert_eq!(m.accept(&beat(4), 500, 1_000), Ok(()));
        assert!(!m.stale(500, 200));
        assert!(m.stale(800, 200));
    }

    #[test]
    fn a_silence_longer_than_the_limit_starts_the_run_again() {
        let mut m = BeatMonitor::new(HASH);
        for seq in 1..=3 {
            assert_eq!(m.accept(&beat(seq), seq * 10, 500), Ok(()));
        }
        assert_eq!(m.consecutive(), 3);
        // The next beat, in sequence, but after a stall: one beat is not three.
        assert_eq!(m.accept(&beat(4), 2_000, 500), Ok(()));
        assert_eq!(m.consecutive(), 1);
    }

    #[test]
    fn a_forged_counter_under_another_hash_does_not_move_the_sequence() {
        let mut m = BeatMonitor::new(HASH);
        assert_eq!(m.accept(&beat(1), 1, 1_000), Ok(()));
        let forged = DscBeat { seq: u64::MAX, config_hash: [5; 32], answered: true };
        assert_eq!(m.accept(&forged, 2, 1_000), Err(BeatFault::ConfigHash));
        assert_eq!(m.accept(&beat(2), 3, 1_000), Ok(()), "the next genuine beat still counts");
    }

    #[test]
    fn another_configuration_hash_is_a_sticky_integrity_violation() {
        let mut m = BeatMonitor::new(HASH);
        assert_eq!(m.accept(&beat(1), 1, 1_000), Ok(()));
        let forged = DscBeat { config_hash: [5; 32], ..beat(2) };
        assert_eq!(m.accept(&forged, 2, 1_000), Err(BeatFault::ConfigHash));
        assert!(m.integrity_violated());
        assert_eq!(m.accept(&beat(2), 3, 1_000), Ok(()));
        assert!(m.integrity_violated(), "a good beat after does not clear it");
    }

    #[test]
    fn a_wrong_answer_downs_the_voter_until_a_right_one() {
        let mut m = BeatMonitor::new(HASH);
        let wrong = DscBeat { answered: false, ..beat(1) };
        assert_eq!(m.accept(&wrong, 1, 1_000), Err(BeatFault::WrongAnswer));
        assert!(!m.voter_ok());
        assert_eq!(m.accept(&beat(2), 2, 1_000), Ok(()));
        assert!(m.voter_ok());
    }

    #[test]
    fn the_disk_of_a_real_directory_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let pct = disk_used_pct(dir.path()).expect("statvfs on a temp dir");
        assert!(pct <= 100);
        assert_eq!(disk_used_pct(&dir.path().join("missing")), None);
        assert_eq!(disk_band(Some(79)), 0);
        assert_eq!(disk_band(Some(95)), 3);
        assert_eq!(disk_band(Some(100)), 4);
    }

    #[test]
    fn memory_use_is_read_from_meminfo_and_measured_here() {
        let text = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    140 kB\n";
        assert_eq!(meminfo_used_pct(text), Some(86));
        assert_eq!(meminfo_used_pct("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
        assert_eq!(meminfo_used_pct("MemFree: 5 kB\n"), None, "no total: not measured");
        assert_eq!(percent(10, 5), Some(100), "never over 100");
        assert_eq!(stat_field("anon 5\ninactive_file 300\nactive_file 7\n", "inactive_file"), Some(300));
        assert_eq!(stat_field("anon 5\n", "inactive_file"), None);
        let here = memory_used_pct().expect("/proc/meminfo on Linux");
        assert!((1..=100).contains(&here), "{here}");
    }

    #[test]
    fn the_canary_is_denied_by_check_1() {
        let config = DscConfig::default_for(maos_model::Profile::Standard).unwrap();
        let state = DscState::new(config);
        let intent = canary().unwrap();
        let decision = decide(&state, &intent, Err(&TokenError::UnknownToken("x".into())), UnixMillis(1));
        assert!(matches!(decision.verdict(), Verdict::Deny { code } if code.check() == 1), "{:?}", decision.verdict());
    }
}
