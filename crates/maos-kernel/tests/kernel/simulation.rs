//! A seeded simulation of the whole kernel — sequencer, Commit Layer and WAL
//! together — under a random fault schedule, with crashes and restarts
//! (CT-WAL-01..04, CT-CL-05, CT-CL-08, CT-DEG-01, CT-DEG-03, CT-DEG-14).
//!
//! Each seed drives one kernel on an in-memory WAL (`MemStorage`, so storage
//! faults and power cuts can be injected) over a real fs effector root in a
//! temp dir. A schedule of steps submits concurrent fs writes, deletes, reads
//! and approved escalations to a few paths with a few tokens, and injects:
//! - stage failures and crashes: a [`FaultHook`] returns `Fault::Fail` or
//!   `Fault::Halt` before a chosen stage of a chosen intent; after a halt the
//!   kernel is dropped (its runtime with it) and restarted on the same log,
//!   which runs crash recovery;
//! - effector failures before or after the effect lands, and effector
//!   timeouts (sleeping past a 250 ms lock timeout, before or after acting);
//! - WAL append and sync failures (`MemStorage` fault knobs: the n-th write
//!   fails; syncs fail from the next append on; or syncs start failing just
//!   before one intent's intent, executing or result record), followed by a
//!   restart after a power cut that keeps none, some or a garbled part of the
//!   unsynced bytes, or after a process restart that keeps them all;
//! - writers contending for one file while the first fails after its result
//!   (stage 6 or 7);
//! - DSC internal errors (`KernelFaults::fail_dsc`) and plain restarts;
//! - component stalls: the DSC's heartbeat or the sequencer's pets stop until
//!   the watchdog reports it (ORANGE), requests are made, then the fault ends
//!   and the kernel must recover by itself.
//! - breaker storms: writes to a remote (the effector names one for them)
//!   fail as an unavailable server would (`status 503`), one after another,
//!   until the remote's circuit breaker opens; the writes after are answered
//!   `CIRCUIT-OPEN` (spec §38.4, CT-DEG-16).
//!
//! After every step, and after every restart once recovery has run, the log
//! and the world are checked against each other:
//! 1. no effect without a prior durable record: every commit intent record
//!    (`0x0200`) follows an allow decision record (`0x0300`), or an escalation
//!    and a granted approval; every execution began with its intent record at
//!    or below the WAL's acknowledged head; the files equal the fold of the
//!    result records (`0x0202`) in Lsn order, except, before recovery, for the
//!    effect of a logged intent that a crash left unfinished;
//! 2. every failed commit is rolled back: a failure record (`0x0203`) says
//!    the state was restored (or needed nothing), and the files show no trace
//!    of the failed intent (a failure after the result restores the snapshot,
//!    and no other commit's result may have landed in between);
//! 3. no lock is held past its timeout: during a step no lock is older than
//!    the timeout plus the cancel slack, and between steps none is held;
//! 4. after every restart recovery leaves no intent unfinished and
//!    `maos_kernel::replay` over the log is clean;
//! 5. no effect is allowed while the logged health report (`kernel.health`)
//!    refuses effects: none runs in ORANGE, RED or SAFE-HOLD for a component
//!    the watchdog saw fail.
//! 6. an open breaker calls nothing: a commit answered `CIRCUIT-OPEN` was
//!    never executed by the effector, left no trace in the files, and a storm
//!    leaves the remote's breaker not closed.
//! 7. the audit sweep (every 20 ms here, on the one in-memory copy) never
//!    takes the live log for a broken one, whatever the stage, effector,
//!    WAL-write and crash faults did to it.
//!
//! The replies agree with the log: a `Done` has a result record and no
//! failure, a logged `Failed` has a failure record, a denied intent never
//! gets a result record, and nothing commits while the DSC is failing.
//!
//! Seeds: `MAOS_SIM_SEED=<n>` (decimal or `0x…`) runs one seed; otherwise
//! seeds 1..=24 run. A failure names the seed, the step and the recent
//! history in its message. The schedule is a function of the seed; thread
//! timing is not, so a race (see [`KnownBug::LostUpdate`]) may need a rerun.
//!
//! Bugs this simulation found (listed in [`KnownBug`]: a rolled-back commit
//! logged as committed, a rollback over a later commit, an intent answered
//! "denied" that recovery then ran) are fixed; each is still matched precisely
//! and fails the run. `MAOS_SIM_LENIENT=1` only counts them (for bisecting).

use crate::common::*;
use maos_commit::effectors::fs::FsEffector;
use maos_commit::records::CommitRecord;
use maos_commit::{
    CommitConfig, CommitLayer, DescribeError, Described, EffectError, EffectOutput, Effector, Effectors, ExecContext,
    Fault, FaultHook, Probe, Rollback, Snapshot, Stage,
};
use maos_crypto::SignatureDomain;
use maos_kernel::posture::CanonicalState;
use maos_kernel::records::{ApprovalOutcome, KernelRecord};
use maos_kernel::{Kernel, KernelError, KernelFaults, KernelHandle, Mode, Reply, replay};
use maos_model::{
    AgentId, ArgValue, DenyCode, EffectClass, IfcLevel, Intent, IntentId, Profile, ReadLabel, ResourceKind, Verdict,
};
use maos_wal::sim::{CrashMode, MemStorage};
use maos_wal::{Clock, HealthState, LogReader, Wal, WalConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Seeds run when `MAOS_SIM_SEED` is not set.
const SEEDS_DEFAULT: u64 = 24;
/// Steps per seed (each submits 1–3 intents, or restarts).
const STEPS: usize = 14;
/// The files the schedule works on (relative to the fs root).
const PATHS: [&str; 3] = ["a.txt", "b.txt", "c.txt"];
/// The Commit Layer's lock timeout (stages 2–5).
const LOCK_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a cancelled effector may take to return.
const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// How long a commit waits for a lock another one holds.
const LOCK_WAIT: Duration = Duration::from_secs(3);
/// How far past its deadline a slow effector returns.
const SLOW_PAST_DEADLINE: Duration = Duration::from_millis(60);
/// Room, beyond the timeout and the slow effector's overrun, for the
/// rollback and failure record a timed-out commit writes under its lock (and
/// for a loaded machine).
const OVERDUE_SLACK: Duration = Duration::from_millis(1500);
const HEARTBEAT: Duration = Duration::from_millis(200);
/// Longest wait for the watchdog to see a stall, or the kernel to recover.
const STALL_WAIT: Duration = Duration::from_secs(10);
/// History lines kept for a failure message.
const TRACE_MAX: usize = 40;

#[test]
fn ct_wal_02_ct_cl_08_seeded_kernel_faults_never_commit_unlogged_or_leave_a_failure_unrolled() {
    let seeds: Vec<u64> = match std::env::var("MAOS_SIM_SEED") {
        Ok(text) => vec![parse_seed(&text)],
        Err(_) => (1..=SEEDS_DEFAULT).collect(),
    };
    let strict = std::env::var_os("MAOS_SIM_LENIENT").is_none();
    let all = seeds.len() > 1;
    let mut circuit_open = 0;
    for seed in seeds {
        let started = Instant::now();
        match std::panic::catch_unwind(|| Sim::run(seed, strict)) {
            Ok(stats) => {
                eprintln!("MAOS_SIM_SEED={seed}: ok in {:?}: {stats:?}", started.elapsed());
                circuit_open += stats.circuit_open;
            }
            Err(payload) => {
                let why = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "(no message)".to_owned());
                panic!("kernel simulation failed for MAOS_SIM_SEED={seed}: {why}");
            }
        }
    }
    // The storms must have opened breakers somewhere, or invariant 6 checked nothing.
    assert!(!all || circuit_open > 0, "no breaker storm opened a breaker in any seed");
}

fn parse_seed(text: &str) -> u64 {
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("MAOS_SIM_SEED={text:?} is not a number: {e}"))
}

/// SplitMix64: small, seeded, good enough for a fault schedule.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let n = u64::try_from(items.len()).unwrap();
        *items.get(usize::try_from(self.below(n)).unwrap()).unwrap()
    }
}

/// What the test effector does to one intent's execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EffectFault {
    /// Fails without acting.
    FailBefore,
    /// Acts, then reports a failure (the pipeline must roll the effect back).
    FailAfter,
    /// Fails without acting as an unavailable remote does (a 5xx: it counts
    /// for the remote's circuit breaker).
    Unavailable,
    /// Sleeps past its deadline, then tries to act (cancelled: it must not land).
    SlowBefore,
    /// Acts, then sleeps past its deadline (timed out: it must be rolled back).
    SlowAfter,
}

/// What the hook does before a stage of an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injection {
    /// The stage fails (`Fault::Fail`) or the process "dies" there (`Fault::Halt`).
    Stage(Fault),
    /// The WAL's syncs start failing just before the stage's record is
    /// appended (stage 1: the intent record; 3: executing; 5: the result):
    /// the record is written but never made durable.
    SyncDies,
}

/// The fault schedule shared by the hook and the effector (across restarts),
/// and what the effector saw.
#[derive(Debug, Default)]
struct Schedule {
    /// One stage injection per intent, fired once.
    stages: Mutex<BTreeMap<IntentId, (Stage, Injection)>>,
    /// One effector fault per intent, fired once.
    effects: Mutex<BTreeMap<IntentId, EffectFault>>,
    /// Every execution: the intent and the WAL's acknowledged head Lsn when it began.
    executed: Mutex<Vec<(IntentId, u64)>>,
    /// Intents whose execution reaches the remote [`REMOTE`] (breaker storms).
    remote: Mutex<BTreeSet<IntentId>>,
}

#[derive(Debug)]
struct Hook {
    schedule: Arc<Schedule>,
    storage: MemStorage,
}

impl FaultHook for Hook {
    fn before(&self, stage: Stage, intent: &Intent) -> Option<Fault> {
        let mut stages = self.schedule.stages.lock().unwrap();
        let injection = match stages.get(&intent.id) {
            Some((at, injection)) if *at == stage => *injection,
            _ => return None,
        };
        stages.remove(&intent.id);
        match injection {
            Injection::Stage(fault) => Some(fault),
            Injection::SyncDies => {
                self.storage.faults().fail_syncs.store(true, Ordering::SeqCst);
                None
            }
        }
    }
}

/// The remote a breaker storm's writes reach (its circuit breaker is the Commit Layer's).
const REMOTE: &str = "sim:flaky";

/// The real fs effector, with scheduled failures and timeouts, recording the
/// WAL head at every execution.
#[derive(Debug)]
struct SimFs {
    inner: FsEffector,
    schedule: Arc<Schedule>,
    wal: Arc<Wal>,
}

fn sleep_past_deadline(ctx: &ExecContext) {
    let until = ctx.deadline().checked_add(SLOW_PAST_DEADLINE).unwrap_or_else(Instant::now);
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
}

impl Effector for SimFs {
    fn namespace(&self) -> &'static str {
        "fs"
    }
    /// The fs descriptor; a write with the argument `publish` is this test
    /// descriptor's publishing write (sink public, carries internal data), which
    /// Standard escalates to a declassification approval.
    fn describe(&self, intent: &Intent) -> Result<Described, DescribeError> {
        let mut d = self.inner.describe(intent)?;
        if intent.args.contains_key("publish") {
            d.sink_level = IfcLevel::Public;
            d.reads = vec![ReadLabel { level: IfcLevel::Internal, untrusted: false }];
        }
        Ok(d)
    }
    fn effect_class(&self, intent: &Intent) -> EffectClass {
        self.inner.effect_class(intent)
    }
    fn resource_keys(&self, intent: &Intent) -> Result<Vec<String>, EffectError> {
        self.inner.resource_keys(intent)
    }
    fn world_state(&self, intent: &Intent) -> Result<[u8; 32], EffectError> {
        self.inner.world_state(intent)
    }
    fn snapshot(&self, intent: &Intent) -> Result<Snapshot, EffectError> {
        self.inner.snapshot(intent)
    }
    fn execute(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        let head = self.wal.head().map_or(0, |(lsn, _)| lsn.0);
        self.schedule.executed.lock().unwrap().push((intent.id, head));
        let fault = self.schedule.effects.lock().unwrap().remove(&intent.id);
        match fault {
            None => self.inner.execute(intent, key, ctx),
            Some(EffectFault::FailBefore) => Err(EffectError::Injected("effector failed before acting".into())),
            Some(EffectFault::Unavailable) => {
                Err(EffectError::Remote("status 503: the remote is down (simulated)".into()))
            }
            Some(EffectFault::FailAfter) => {
                self.inner.execute(intent, key, ctx)?;
                Err(EffectError::Injected("effector failed after acting".into()))
            }
            Some(EffectFault::SlowBefore) => {
                sleep_past_deadline(ctx);
                self.inner.execute(intent, key, ctx)
            }
            Some(EffectFault::SlowAfter) => {
                let output = self.inner.execute(intent, key, ctx)?;
                sleep_past_deadline(ctx);
                Ok(output)
            }
        }
    }
    fn remote(&self, intent: &Intent) -> Option<String> {
        self.schedule.remote.lock().unwrap().contains(&intent.id).then(|| REMOTE.to_owned())
    }
    fn probe(&self, intent: &Intent) -> Result<Probe, EffectError> {
        self.inner.probe(intent)
    }
    fn compensate(&self, intent: &Intent, snapshot: &Snapshot) -> Result<(), EffectError> {
        self.inner.compensate(intent, snapshot)
    }
}

/// Agents and their tokens: full rights, another agent, a tiny budget, read
/// only, and none at all.
fn tokens() -> &'static [(&'static str, String)] {
    static TOKENS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let all = ["fs.write=/workspace/**", "fs.delete=/workspace/**", "fs.read=/workspace/**"];
        vec![
            ("writer", token_for("writer", &all, 100_000, 0x11)),
            ("helper", token_for("helper", &all, 100_000, 0x12)),
            ("writer", token_for("writer", &all, 4, 0x13)),
            ("writer", token_for("writer", &["fs.read=/workspace/**"], 100_000, 0x14)),
            ("writer", String::new()),
        ]
    })
}
const TOKEN_FULL: usize = 0;

#[derive(Debug, Clone)]
enum Action {
    Write(String),
    Delete,
    Read,
    /// A write that Standard escalates (declassification); the commander approves it.
    Escalated(String),
}

#[derive(Debug, Clone)]
struct Op {
    action: Action,
    path: &'static str,
    token: usize,
    stage: Option<(Stage, Injection)>,
    effect: Option<EffectFault>,
}

/// What the kernel answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Done,
    Denied(String),
    Failed { code: &'static str, logged: bool, stage: Stage },
}

/// The log, decoded.
#[derive(Debug, Default)]
struct LogView {
    decisions: BTreeMap<IntentId, (u64, Verdict)>,
    granted: BTreeMap<IntentId, u64>,
    commits: Vec<(u64, CommitRecord)>,
    /// Effects allowed while the logged health report refused effects
    /// (invariant 5: none may be).
    allowed_unhealthy: Vec<(u64, IntentId)>,
}

/// The world the log implies.
#[derive(Debug, Default)]
struct Folded {
    files: BTreeMap<String, Option<String>>,
    intents: BTreeMap<IntentId, (u64, Intent)>,
    results: BTreeMap<IntentId, u64>,
    failed: BTreeMap<IntentId, u64>,
    /// Results that crash recovery wrote.
    recovered: BTreeSet<IntentId>,
    /// Each file's content before each result on it.
    before: BTreeMap<IntentId, Option<String>>,
    /// The last result on each file.
    last_result: BTreeMap<String, (u64, IntentId)>,
    /// Rollbacks after a result that restored a snapshot over another
    /// commit's result (see [`KnownBug::LostUpdate`]).
    lost_updates: Vec<(IntentId, String, String)>,
}

impl Folded {
    fn open(&self) -> Vec<IntentId> {
        self.intents
            .keys()
            .filter(|id| !self.results.contains_key(id) && !self.failed.contains_key(id))
            .copied()
            .collect()
    }
}

fn file_of(intent: &Intent) -> Option<String> {
    intent.resources.first().and_then(|r| r.value.strip_prefix("/workspace/")).map(str::to_owned)
}

/// The change an intent makes: its file and the content after (`None`: deleted).
fn effect_of(intent: &Intent) -> Option<(String, Option<String>)> {
    let file = file_of(intent)?;
    match intent.action.as_str() {
        "fs.write" => match intent.args.get("content") {
            Some(ArgValue::Str(text)) => Some((file, Some(text.clone()))),
            _ => None,
        },
        "fs.delete" => Some((file, None)),
        _ => None,
    }
}

/// Invariant violations found by this simulation in the code under test
/// (now fixed). They fail the run like any other violation; with
/// `MAOS_SIM_LENIENT` set they are only counted and reported on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KnownBug {
    /// A commit whose effect landed but whose result record (stage 5) the
    /// WAL could not sync is rolled back by the pipeline, and its failure
    /// record cannot be logged (commit freeze). After the restart the log
    /// says it committed while the file holds the rolled-back state: a power
    /// cut drops the unsynced result and recovery's fs probe trusts the
    /// idempotency marker compensation left behind ("done"), or a process
    /// restart keeps the unsynced result record and `Wal::open` accepts it.
    RolledBackLoggedCommitted,
    /// A failure at stage 6 or 7 (after the result record and the unlock)
    /// re-locks and restores the stage-3 snapshot; a commit on the same file
    /// that took the lock in between loses its committed effect.
    LostUpdate,
    /// The intent record's sync fails at stage 1: the kernel answers denied
    /// ("nothing was logged or ran"), but a process restart keeps the
    /// unsynced record, `Wal::open` accepts it, and recovery executes the
    /// intent the agent was told was refused.
    DeniedButExecuted,
}

#[derive(Debug, Default)]
struct Stats {
    steps: usize,
    lifetimes: u32,
    intents: u32,
    done: u32,
    /// Escalations approved by the commander and committed.
    approved_done: u32,
    denied: u32,
    failed: u32,
    halts: u32,
    wal_faults: u32,
    dsc_faults: u32,
    /// Steps run with the DSC heartbeat or the sequencer's pets stopped.
    stalls: u32,
    /// Breaker storms, and the commits an open breaker answered at once.
    storms: u32,
    circuit_open: u32,
    recovered: usize,
    known_bugs: BTreeMap<KnownBug, u32>,
    codes: BTreeMap<String, u32>,
}

struct Sim {
    seed: u64,
    rng: Rng,
    world: World,
    storage: MemStorage,
    schedule: Arc<Schedule>,
    initial: BTreeMap<String, Option<String>>,
    /// The files as the log implied at the last check.
    model: BTreeMap<String, Option<String>>,
    ids: u32,
    step: usize,
    replies: BTreeMap<IntentId, Seen>,
    /// Intents submitted while the DSC was failing: none may commit.
    dsc_faulted: BTreeSet<IntentId>,
    /// Results of the known bug (see [`Sim::known_rollback_after_result_bug`]): not in the world.
    voided: BTreeSet<IntentId>,
    /// Known bugs fail too.
    strict: bool,
    known_seen: BTreeSet<(KnownBug, IntentId)>,
    stats: Stats,
    trace: Vec<String>,
}

impl Sim {
    fn run(seed: u64, strict: bool) -> Stats {
        let mut rng = Rng(seed ^ 0x6D61_6F73_2D73_696D);
        let world = World::new();
        let mut initial = BTreeMap::new();
        for path in PATHS {
            let content = rng.chance(50).then(|| format!("initial {path}"));
            if let Some(c) = &content {
                world.put(path, c);
            }
            initial.insert(path.to_owned(), content);
        }
        let mut sim = Self {
            seed,
            rng,
            world,
            storage: MemStorage::new(),
            schedule: Arc::default(),
            model: initial.clone(),
            initial,
            ids: 0,
            step: 0,
            replies: BTreeMap::new(),
            dsc_faulted: BTreeSet::new(),
            voided: BTreeSet::new(),
            strict,
            known_seen: BTreeSet::new(),
            stats: Stats::default(),
            trace: Vec::new(),
        };
        while sim.step < STEPS {
            lifetime(sim.lifetime(false));
            sim.crash();
        }
        lifetime(sim.lifetime(true));
        sim.stats.steps = sim.step;
        // A schedule in which nothing commits checks nothing (every token was
        // refused as unlogged once the kernel required its ledger, and the
        // run still passed): fail loudly instead.
        if sim.stats.done == 0 {
            sim.fail("no intent committed in this seed: the simulation exercised nothing");
        }
        sim.stats
    }

    fn note(&mut self, line: String) {
        if self.trace.len() >= TRACE_MAX {
            self.trace.remove(0);
        }
        self.trace.push(line);
    }

    fn fail(&self, what: &str) -> ! {
        let mut history = String::new();
        for line in &self.trace {
            let _ = writeln!(history, "    {line}");
        }
        panic!(
            "seed {} step {}: INVARIANT VIOLATED: {what}\n  recent history:\n{history}  \
             reproduce: {}MAOS_SIM_SEED={} cargo test -p maos-kernel --test kernel simulation -- --nocapture",
            self.seed,
            self.step,
            if self.strict { "" } else { "MAOS_SIM_LENIENT=1 " },
            self.seed
        );
    }

    fn new_id(&mut self) -> IntentId {
        self.ids += 1;
        let [s0, s1, s2, s3] = u32::try_from(self.seed & 0xFFFF_FFFF).unwrap().to_be_bytes();
        let [n0, n1, n2, n3] = self.ids.to_be_bytes();
        IntentId::new_v7(self.world.clock.now().0, [0x51, s0, s1, s2, s3, 0, n0, n1, n2, n3])
    }

    fn build(&mut self, op: &Op) -> Intent {
        let target = format!("/workspace/{}", op.path);
        let mut intent = match &op.action {
            Action::Write(content) | Action::Escalated(content) => {
                let mut i = intent("fs.write", EffectClass::Write, ResourceKind::Path, &target);
                i.args.insert("content".into(), ArgValue::Str(content.clone()));
                i
            }
            Action::Delete => intent("fs.delete", EffectClass::Write, ResourceKind::Path, &target),
            Action::Read => intent("fs.read", EffectClass::Observe, ResourceKind::Path, &target),
        };
        if matches!(op.action, Action::Escalated(_)) {
            intent.args.insert("publish".into(), ArgValue::Bool(true));
        }
        intent.id = self.new_id();
        let (agent, _) = tokens().get(op.token).unwrap();
        intent.agent = AgentId::new(agent).unwrap();
        if let Some(fault) = op.stage {
            self.schedule.stages.lock().unwrap().insert(intent.id, fault);
        }
        if let Some(fault) = op.effect {
            self.schedule.effects.lock().unwrap().insert(intent.id, fault);
        }
        intent
    }

    fn random_op(&mut self, faults: bool) -> Op {
        let path = self.rng.pick(&PATHS);
        let content = format!("s{}-{}", self.step, self.rng.below(1000));
        let action = match self.rng.below(100) {
            0..45 => Action::Write(content),
            45..65 => Action::Delete,
            65..90 => Action::Read,
            _ => Action::Escalated(content),
        };
        let token = match (&action, self.rng.below(100)) {
            (Action::Escalated(_), _) | (_, 0..70) => TOKEN_FULL,
            (_, 70..80) => 1,
            (_, 80..88) => 2,
            (_, 88..94) => 3,
            _ => 4,
        };
        let mut op = Op { action, path, token, stage: None, effect: None };
        if faults && self.rng.chance(30) {
            if self.rng.chance(50) {
                op.stage = Some((self.rng.pick(&Stage::ALL), Injection::Stage(Fault::Fail)));
            } else {
                let writes = !matches!(op.action, Action::Read);
                op.effect = Some(match self.rng.below(100) {
                    0..30 => EffectFault::FailBefore,
                    30..60 if writes => EffectFault::FailAfter,
                    60..80 if writes => EffectFault::SlowBefore,
                    80..100 if writes => EffectFault::SlowAfter,
                    _ => EffectFault::FailBefore,
                });
            }
        }
        op
    }

    /// One kernel lifetime: start (crash recovery), check, then steps until a
    /// crash or restart is due (`last`: only start and check).
    async fn lifetime(&mut self, last: bool) {
        self.stats.lifetimes += 1;
        let config =
            WalConfig::with_storage(Profile::Standard, Arc::new(self.storage.clone())).clock(self.world.clock.clone());
        let wal = match Wal::open(config) {
            Ok((wal, _)) => Arc::new(wal),
            Err(e) => self.fail(&format!("the WAL does not reopen after the crash: {e} ({})", e.code())),
        };
        let fs = SimFs {
            inner: FsEffector::new(self.world.root(), self.world.dir.path().join("state/fs")).unwrap(),
            schedule: self.schedule.clone(),
            wal: wal.clone(),
        };
        let mut cc = CommitConfig::new(self.world.dir.path().join("rollback"));
        cc.lock_timeout = LOCK_TIMEOUT;
        cc.lock_wait = LOCK_WAIT;
        cc.cancel_grace = CANCEL_GRACE;
        let layer = CommitLayer::open(wal.clone(), Effectors::new().with(Arc::new(fs)).unwrap(), cc).unwrap();
        let hook = Hook { schedule: self.schedule.clone(), storage: self.storage.clone() };
        let commit = Arc::new(layer.with_fault_injection(Arc::new(hook)));
        let mut config = self.world.config(commit.clone());
        config.heartbeat_interval = HEARTBEAT;
        // The audit sweep runs all along, through the faults and the torn
        // tails they leave: it must never take a live log for a broken one.
        config.audit_sweep_every = Duration::from_millis(20);
        let kernel_faults = config.faults.clone();
        let (kernel, report) = match Kernel::start(config).await {
            Ok(started) => started,
            Err(e) => self.fail(&format!("the kernel does not restart: {e} ({})", e.code())),
        };
        if let Some(hold) = &report.hold {
            self.fail(&format!("the kernel stays in recovery hold after a restart: {hold}"));
        }
        // The kernel takes only tokens in its ledger: issue them (a repeat on
        // a later lifetime is refused by the ledger and changes nothing).
        for (_, token) in tokens() {
            if !token.is_empty() {
                logged(&kernel, token).await;
            }
        }
        let recovered = report.recovery.map(|r| r.recovered).unwrap_or_default();
        self.stats.recovered += recovered.len();
        self.note(format!("start #{}: recovery {recovered:?}", self.stats.lifetimes));
        self.check(&commit, true, "after restart and recovery");
        self.check_replay();
        if last {
            return;
        }
        while self.step < STEPS {
            let restart = self.run_step(&kernel, &commit, &kernel_faults, &wal).await;
            let posture = kernel.status().posture;
            if posture.why.iter().any(|w| w.contains("audit chain") || w.contains("cannot be read to verify")) {
                self.fail(&format!("the audit sweep took the live log for a broken one: {:?}", posture.why));
            }
            self.step += 1;
            if restart {
                return;
            }
        }
    }

    /// A crash between lifetimes: a power cut that keeps none, some or a
    /// garbled part of what was never synced, or a process restart that keeps
    /// it all (the page cache survives).
    fn crash(&mut self) {
        let faults = self.storage.faults();
        faults.fail_writes.store(false, Ordering::SeqCst);
        faults.fail_syncs.store(false, Ordering::SeqCst);
        faults.writes_until_failure.store(u64::MAX, Ordering::SeqCst);
        let mode = match self.rng.below(4) {
            0 => None,
            1 => Some(CrashMode::DropUnsynced),
            2 => Some(CrashMode::KeepRandomPrefix),
            _ => Some(CrashMode::Garble),
        };
        if let Some(mode) = mode {
            let seed = self.rng.next();
            self.storage.crash(mode, seed);
        }
        self.note(format!("crash: {}", mode.map_or_else(|| "process restart".to_owned(), |m| format!("{m:?}"))));
    }

    /// Runs one step; returns whether the kernel must restart.
    async fn run_step(
        &mut self,
        kernel: &KernelHandle,
        commit: &Arc<CommitLayer>,
        kernel_faults: &Arc<KernelFaults>,
        wal: &Arc<Wal>,
    ) -> bool {
        self.world.clock.advance_ms(1000 + self.rng.below(2000));
        let roll = self.rng.below(100);
        let mut ops = Vec::new();
        let mut label = "normal";
        let mut dsc_fault = false;
        let mut stalled: Option<&std::sync::atomic::AtomicBool> = None;
        let mut storm = false;
        match roll {
            0..8 => {
                label = "halt";
                self.stats.halts += 1;
                let mut op = self.random_op(false);
                if matches!(op.action, Action::Escalated(_)) {
                    op.action = Action::Delete;
                }
                op.token = TOKEN_FULL;
                op.stage = Some((self.rng.pick(&Stage::ALL), Injection::Stage(Fault::Halt)));
                ops.push(op);
            }
            8..16 => {
                label = "wal-fault";
                self.stats.wal_faults += 1;
                let n = 1 + self.rng.below(2);
                for _ in 0..n {
                    ops.push(self.random_op(false));
                }
                let faults = self.storage.faults();
                match self.rng.below(3) {
                    0 => {
                        let k = self.rng.below(6);
                        faults.writes_until_failure.store(k, Ordering::SeqCst);
                        self.note(format!("wal: writes fail after {k} more"));
                    }
                    1 => {
                        faults.fail_syncs.store(true, Ordering::SeqCst);
                        self.note("wal: syncs fail".to_owned());
                    }
                    _ => {
                        // The sync of one of the first op's records fails.
                        let stage = self.rng.pick(&[Stage::WalRecord, Stage::Snapshot, Stage::Record, Stage::Record]);
                        if let Some(op) = ops.first_mut() {
                            if matches!(op.action, Action::Escalated(_) | Action::Read) {
                                op.action = Action::Write(format!("s{}-dies", self.step));
                            }
                            op.token = TOKEN_FULL;
                            op.stage = Some((stage, Injection::SyncDies));
                        }
                    }
                }
            }
            16..21 => {
                label = "dsc-fault";
                self.stats.dsc_faults += 1;
                dsc_fault = true;
                kernel_faults.fail_dsc.store(true, Ordering::SeqCst);
                let n = 1 + self.rng.below(3);
                for _ in 0..n {
                    ops.push(self.random_op(false));
                }
            }
            21..26 => {
                self.note(format!("step {}: restart", self.step));
                return true;
            }
            34..40 => {
                // A component stalls (the DSC's heartbeat or the sequencer's
                // pets stop) until the watchdog says so; requests made then
                // may observe but never commit an effect (invariant 5).
                label = "stall";
                self.stats.stalls += 1;
                let fault =
                    if self.rng.chance(50) { &kernel_faults.stop_dsc_heartbeat } else { &kernel_faults.stop_heartbeat };
                fault.store(true, Ordering::SeqCst);
                stalled = Some(fault);
                let started = Instant::now();
                while kernel.state() != CanonicalState::Orange && kernel.mode() == Mode::Normal {
                    if started.elapsed() > STALL_WAIT {
                        self.fail("a stalled component was not seen within the wait");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let n = 1 + self.rng.below(3);
                for _ in 0..n {
                    ops.push(self.random_op(false));
                }
            }
            40..46 => {
                // A breaker storm: writes to one remote fail as a server that
                // is down does, one after another, until its breaker opens;
                // the writes after it are answered at once (invariant 6).
                label = "storm";
                storm = true;
                self.stats.storms += 1;
                let failing = 5 + self.rng.below(2);
                let after = 1 + self.rng.below(2);
                for k in 0..failing + after {
                    let mut op = self.random_op(false);
                    op.token = TOKEN_FULL;
                    op.action = Action::Write(format!("s{}-storm{k}", self.step));
                    if k < failing {
                        op.effect = Some(EffectFault::Unavailable);
                    }
                    ops.push(op);
                }
            }
            26..34 => {
                // Writers contend for one file; the first fails after its
                // result (stage 6 or 7) and rolls back under a fresh lock.
                label = "contend";
                let path = self.rng.pick(&PATHS);
                let n = 2 + self.rng.below(2);
                for k in 0..n {
                    let mut op = self.random_op(false);
                    op.path = path;
                    op.token = TOKEN_FULL;
                    if !matches!(op.action, Action::Write(_) | Action::Delete) {
                        op.action = Action::Write(format!("s{}-{k}", self.step));
                    }
                    if k == 0 {
                        let stage = self.rng.pick(&[Stage::Publish, Stage::Complete]);
                        op.stage = Some((stage, Injection::Stage(Fault::Fail)));
                    }
                    ops.push(op);
                }
            }
            _ => {
                let n = 1 + self.rng.below(3);
                for _ in 0..n {
                    ops.push(self.random_op(true));
                }
            }
        }
        let before = self.model.clone();
        let intents: Vec<Intent> = ops.iter().map(|op| self.build(op)).collect();
        let desc: Vec<String> = ops
            .iter()
            .zip(&intents)
            .map(|(op, i)| {
                format!("{} {:?} {} tok{} {:?} {:?}", short(i.id), op.action, op.path, op.token, op.stage, op.effect)
            })
            .collect();
        self.note(format!("step {} [{label}]: {}", self.step, desc.join("; ")));
        self.stats.intents += u32::try_from(intents.len()).unwrap();

        // Submit concurrently; the Commit Layer runs them in parallel. A
        // storm's go one after another, each to the remote.
        let mut waiting: Vec<(IntentId, JoinHandle<Result<Reply, KernelError>>)> = Vec::new();
        let mut answers = Vec::new();
        for (op, intent) in ops.iter().zip(&intents) {
            let (_, token) = tokens().get(op.token).unwrap();
            if storm {
                self.schedule.remote.lock().unwrap().insert(intent.id);
            }
            let submission = kernel.submit(intent.clone(), token.as_str()).unwrap();
            waiting.push((intent.id, tokio::spawn(submission.outcome())));
            if storm {
                answers.extend(self.wait(commit, std::mem::take(&mut waiting)).await);
            }
        }
        answers.extend(self.wait(commit, waiting).await);

        // Escalations: the commander approves most, denies some.
        let mut approvals = Vec::new();
        for (id, reply) in &answers {
            if let Reply::Pending { .. } = reply {
                if self.rng.chance(15) {
                    // Fails only when the log cannot take it (commit freeze): it lapses at restart then.
                    let denied = kernel.deny(*id, "not now").await;
                    self.note(format!("  commander denies {}: {:?}", short(*id), denied.map_err(|e| e.code())));
                    continue;
                }
                let packets = kernel.approvals().await.unwrap();
                let Some(packet) = packets.iter().find(|p| p.id == *id) else { continue };
                let grant = KernelHandle::grant_for(packet).unwrap();
                let signature = commander().sign(SignatureDomain::ApprovalDecision, &grant.message()).unwrap();
                let signed = maos_commit::SignedApproval { grant, signature };
                let k = kernel.clone();
                let id = *id;
                approvals.push((id, tokio::spawn(async move { k.approve(id, signed).await })));
            }
        }
        let approved = self.wait(commit, approvals).await;
        for (id, reply) in approved {
            if matches!(reply, Reply::Done { .. }) {
                self.stats.approved_done += 1;
            }
            if let Some(slot) = answers.iter_mut().find(|(i, _)| *i == id) {
                slot.1 = reply;
            }
        }

        if dsc_fault {
            kernel_faults.fail_dsc.store(false, Ordering::SeqCst);
            self.dsc_faulted.extend(intents.iter().map(|i| i.id));
        }
        if let Some(fault) = stalled {
            fault.store(false, Ordering::SeqCst);
            // The sequencer's tick pets again; the kernel recovers by itself
            // unless a sticky mode came with it.
            let started = Instant::now();
            while !kernel.state().effects_allowed() && kernel.mode() == Mode::Normal {
                if started.elapsed() > STALL_WAIT {
                    self.fail(&format!("no recovery from a stall: {:?}", kernel.status().posture));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for ((id, reply), (op, intent)) in answers.iter().zip(ops.iter().zip(&intents)) {
            let seen = match reply {
                Reply::Done { committed, .. } => {
                    self.stats.done += 1;
                    // A read alone on its file in this step sees the file as the log left it.
                    let alone = ops.iter().filter(|o| o.path == op.path).count() == 1;
                    if matches!(op.action, Action::Read) && alone {
                        let expected = before.get(op.path).cloned().flatten();
                        let body = String::from_utf8(committed.output.body.clone()).ok();
                        if body != expected {
                            self.fail(&format!(
                                "read {} of {} returned {body:?}, the log implies {expected:?}",
                                short(*id),
                                op.path
                            ));
                        }
                    }
                    Seen::Done
                }
                Reply::Denied { code, .. } => {
                    self.stats.denied += 1;
                    *self.stats.codes.entry((*code).to_owned()).or_default() += 1;
                    Seen::Denied((*code).to_owned())
                }
                Reply::Pending { .. } => {
                    self.stats.denied += 1;
                    Seen::Denied("pending (lapses)".to_owned())
                }
                Reply::Failed { error, .. } => {
                    self.stats.failed += 1;
                    *self.stats.codes.entry(error.code().to_owned()).or_default() += 1;
                    Seen::Failed { code: error.code(), logged: error.failure_logged, stage: error.stage }
                }
            };
            self.note(format!("  {} -> {seen:?}", short(intent.id)));
            if matches!(&seen, Seen::Failed { .. }) && reply_mentions(reply, "CIRCUIT-OPEN") {
                self.stats.circuit_open += 1;
                let ran = self.schedule.executed.lock().unwrap().iter().any(|(i, _)| i == id);
                if ran {
                    self.fail(&format!("{} was answered CIRCUIT-OPEN but its effector ran", short(*id)));
                }
            }
            self.replies.insert(*id, seen);
        }
        if storm {
            // The breaker counts only calls that reached the remote and failed
            // as an unavailable one does (a lock pause or a freeze is not one).
            let failed_in_a_row = answers.iter().take_while(|(_, r)| reply_mentions(r, "status 503")).count();
            let breaker = commit.remote_breakers().into_iter().find(|b| b.interface == REMOTE);
            if failed_in_a_row >= 5 && breaker.as_ref().is_none_or(|b| b.state == "closed") {
                self.fail(&format!("{failed_in_a_row} remote 503s in a row left the breaker closed: {breaker:?}"));
            }
        }

        let faults = self.storage.faults();
        faults.fail_writes.store(false, Ordering::SeqCst);
        faults.fail_syncs.store(false, Ordering::SeqCst);
        faults.writes_until_failure.store(u64::MAX, Ordering::SeqCst);
        let frozen =
            wal.health().state == HealthState::CommitFreeze || matches!(kernel.mode(), Mode::CommitFreeze { .. });
        if frozen {
            // The visible log may hold records that were never made durable:
            // only the locks are checked now; the rest after the restart.
            self.check_locks(commit);
            self.note(format!("  frozen: {}", kernel.mode()));
        } else {
            self.check(commit, false, "after the step");
        }
        let mode = kernel.mode();
        // After a halt the process is dead: drop it and restart (recovery).
        let restart = label == "halt" || frozen || mode != Mode::Normal;
        if restart && !frozen && mode != Mode::Normal {
            self.note(format!("  mode {mode}: restart"));
        }
        restart
    }

    /// Waits for every answer, checking meanwhile that no lock outlives its
    /// timeout (plus the slow effector's overrun and the rollback slack).
    async fn wait(
        &self,
        commit: &CommitLayer,
        waiting: Vec<(IntentId, JoinHandle<Result<Reply, KernelError>>)>,
    ) -> Vec<(IntentId, Reply)> {
        let bound = LOCK_TIMEOUT + SLOW_PAST_DEADLINE + OVERDUE_SLACK;
        let started = Instant::now();
        while !waiting.iter().all(|(_, h)| h.is_finished()) {
            let overdue = commit.locks().overdue(bound);
            if !overdue.is_empty() {
                self.fail(&format!("locks held past {bound:?} (timeout {LOCK_TIMEOUT:?}): {overdue:?}"));
            }
            if started.elapsed() > Duration::from_secs(60) {
                self.fail("a step did not finish within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let mut answers = Vec::with_capacity(waiting.len());
        for (id, handle) in waiting {
            match handle.await.unwrap() {
                Ok(reply) => answers.push((id, reply)),
                Err(e) => answers.push((
                    id,
                    Reply::Denied { intent: id, code: e.code(), explanation: e.to_string(), decision_lsn: None },
                )),
            }
        }
        answers
    }

    fn check_locks(&self, commit: &CommitLayer) {
        let overdue = commit.locks().overdue(LOCK_TIMEOUT);
        if !overdue.is_empty() {
            self.fail(&format!("locks still held past the timeout between steps: {overdue:?}"));
        }
        let held = commit.locks().held();
        if held != 0 {
            self.fail(&format!("{held} locks held at quiescence"));
        }
    }

    fn read_log(&self) -> LogView {
        let reader = LogReader::new(Arc::new(self.storage.clone()));
        let mut log = LogView::default();
        // A fresh state's report is healthy; each kernel.health record replaces it.
        let mut effects_healthy = true;
        let records = reader.records().unwrap_or_else(|e| self.fail(&format!("the log cannot be read: {e}")));
        for record in records {
            let record = record.unwrap_or_else(|e| self.fail(&format!("the log cannot be read: {e}")));
            let lsn = record.lsn.0;
            if let Some(decoded) = KernelRecord::decode(record.kind, &record.payload) {
                match decoded {
                    Ok(KernelRecord::Decision(d)) => {
                        if d.verdict == Verdict::Allow && d.intent.effect.is_effect() && !effects_healthy {
                            log.allowed_unhealthy.push((lsn, d.intent.id));
                        }
                        log.decisions.entry(d.intent.id).or_insert((lsn, d.verdict.clone()));
                    }
                    Ok(KernelRecord::Health(h)) => {
                        let k = &h.health;
                        effects_healthy = k.heartbeat_ok
                            && k.voter_ok
                            && k.rollback_available
                            && k.wal_writable
                            && k.supervisor_present
                            && k.audit_chain_intact
                            && k.gateway_enforced;
                    }
                    Ok(KernelRecord::ApprovalDecision(a)) if a.outcome == ApprovalOutcome::Granted => {
                        log.granted.entry(a.id).or_insert(lsn);
                    }
                    Ok(_) => {}
                    Err(e) => self.fail(&format!("kernel record at Lsn {lsn} does not decode: {e}")),
                }
            } else if let Some(decoded) = CommitRecord::decode(record.kind, &record.payload) {
                match decoded {
                    Ok(c) => log.commits.push((lsn, c)),
                    Err(e) => self.fail(&format!("commit record at Lsn {lsn} does not decode: {e}")),
                }
            }
        }
        log
    }

    /// Folds the commit records into the files they imply, checking the
    /// record order (invariant 1) and every rollback (invariant 2) on the way.
    fn fold(&self, log: &LogView) -> Folded {
        let mut out = Folded { files: self.initial.clone(), ..Folded::default() };
        for (lsn, record) in &log.commits {
            let lsn = *lsn;
            let id = record.intent_id();
            let known = out.intents.get(&id).map(|(_, i)| i.clone());
            match record {
                CommitRecord::Intent(r) => {
                    if out.intents.contains_key(&id) {
                        self.fail(&format!("two intent records for {id} (second at Lsn {lsn})"));
                    }
                    let decision = log.decisions.get(&id);
                    let granted = log.granted.get(&id).copied();
                    let ok = match decision {
                        Some((d, Verdict::Allow)) => *d < lsn,
                        Some((d, Verdict::Escalate { .. })) => *d < lsn && granted.is_some_and(|g| g < lsn),
                        _ => false,
                    };
                    if !ok {
                        self.fail(&format!(
                            "intent record for {id} at Lsn {lsn} has no earlier allow decision \
                             (decision: {decision:?}, grant at: {granted:?})"
                        ));
                    }
                    out.intents.insert(id, (lsn, r.intent.clone()));
                }
                CommitRecord::Executing(_) => {
                    if known.is_none() {
                        self.fail(&format!("executing record at Lsn {lsn} for {id} without an intent record"));
                    }
                }
                CommitRecord::Result(r) => {
                    let Some(intent) = known else {
                        self.fail(&format!("result record at Lsn {lsn} for {id} without an intent record"))
                    };
                    if let Some(first) = out.results.insert(id, lsn) {
                        self.fail(&format!("two result records for {id} (Lsn {first} and {lsn})"));
                    }
                    if let Some(f) = out.failed.get(&id) {
                        self.fail(&format!("result record for {id} at Lsn {lsn} after its failure at Lsn {f}"));
                    }
                    if r.recovered {
                        out.recovered.insert(id);
                    }
                    if let Some((file, after)) = effect_of(&intent)
                        && !self.voided.contains(&id)
                    {
                        out.before.insert(id, out.files.get(&file).cloned().flatten());
                        out.files.insert(file.clone(), after);
                        out.last_result.insert(file, (lsn, id));
                    }
                }
                CommitRecord::Failed(r) => {
                    let Some(intent) = known else {
                        self.fail(&format!("failure record at Lsn {lsn} for {id} without an intent record"))
                    };
                    if let Some(first) = out.failed.insert(id, lsn) {
                        self.fail(&format!("two failure records for {id} (Lsn {first} and {lsn})"));
                    }
                    if !matches!(r.rollback, Rollback::Restored | Rollback::NotNeeded) {
                        self.fail(&format!(
                            "failed commit {id} (Lsn {lsn}, stage {:?}, {}) was not rolled back: {}",
                            r.stage, r.code, r.rollback
                        ));
                    }
                    if out.results.contains_key(&id)
                        && let Some((file, _)) = effect_of(&intent)
                    {
                        // Failed after its result (stages 6–7): the snapshot is restored.
                        if let Some((other_lsn, other)) = out.last_result.get(&file)
                            && *other != id
                        {
                            out.lost_updates.push((
                                id,
                                file.clone(),
                                format!(
                                    "rollback of {id} (failure at Lsn {lsn}, stage {:?}) restored its snapshot of \
                                     {file} over the committed result of {other} (Lsn {other_lsn}): a committed \
                                     effect is lost",
                                    r.stage
                                ),
                            ));
                        }
                        out.files.insert(file, out.before.get(&id).cloned().flatten());
                    }
                }
                CommitRecord::Undone(_) | CommitRecord::Released(_) | CommitRecord::Releasing(_) => {
                    self.fail(&format!("unexpected undo/release record at Lsn {lsn} for {id}"));
                }
            }
        }
        out
    }

    /// The commit records of every intent on `file`, for a failure message.
    fn trail(log: &LogView, folded: &Folded, file: &str) -> String {
        let mut text = String::new();
        for (lsn, record) in &log.commits {
            let id = record.intent_id();
            let Some((_, intent)) = folded.intents.get(&id) else { continue };
            if file_of(intent).as_deref() != Some(file) {
                continue;
            }
            let what = match record {
                CommitRecord::Intent(r) => format!("intent {} {:?}", r.intent.action, effect_of(&r.intent)),
                CommitRecord::Executing(_) => "executing".to_owned(),
                CommitRecord::Result(r) => format!("result (recovered: {})", r.recovered),
                CommitRecord::Failed(r) => {
                    format!("failed {:?} {} rollback {} (recovered: {})", r.stage, r.code, r.rollback, r.recovered)
                }
                CommitRecord::Undone(_) => "undone".to_owned(),
                CommitRecord::Released(_) => "released".to_owned(),
                CommitRecord::Releasing(_) => "releasing".to_owned(),
            };
            let decision = log.decisions.get(&id).map(|(l, _)| *l);
            let _ = write!(text, "\n      Lsn {lsn}: {} {what} (decision at Lsn {decision:?})", short(id));
        }
        text
    }

    /// Every invariant, against the log and the files (`settled`: after
    /// recovery, when nothing may be left unfinished).
    fn check(&mut self, commit: &CommitLayer, settled: bool, when: &str) {
        self.check_locks(commit);
        let log = self.read_log();
        let folded = self.fold(&log);
        for (id, file, what) in &folded.lost_updates {
            let what = format!("{what}; its commit records:{}", Self::trail(&log, &folded, file));
            self.known(KnownBug::LostUpdate, *id, &what);
        }
        let open = folded.open();
        if settled && !open.is_empty() {
            self.fail(&format!("{when}: intents left unfinished by recovery: {open:?}"));
        }
        // Invariant 5: no effect is allowed while the logged health report
        // refuses effects (a stalled component, a silent DSC, a full disk).
        if let Some((lsn, id)) = log.allowed_unhealthy.first() {
            self.fail(&format!("{id} was allowed at Lsn {lsn} while the health report refused effects"));
        }
        // Invariant 1: execution only after a durable intent record.
        for (id, head) in self.schedule.executed.lock().unwrap().iter() {
            match folded.intents.get(id) {
                Some((lsn, _)) if lsn <= head => {}
                Some((lsn, _)) => self.fail(&format!(
                    "{id} executed when the WAL head was Lsn {head}, before its intent record (Lsn {lsn}) was durable"
                )),
                None => self.fail(&format!("{id} executed but the log has no intent record for it")),
            }
        }
        // Invariants 1 and 2: the files are what the log says, give or take
        // the effect of a logged intent a crash left unfinished.
        for path in PATHS {
            let disk = self.world.file(path);
            let logged = folded.files.get(path).cloned().flatten();
            if disk == logged {
                continue;
            }
            let explained = !settled
                && open.iter().any(|id| {
                    folded.intents.get(id).and_then(|(_, i)| effect_of(i)) == Some((path.to_owned(), disk.clone()))
                });
            if !explained && self.known_rollback_after_result_bug(&log, &folded, path, disk.as_ref()) {
                // Fold again without the void result.
                return self.check(commit, settled, when);
            }
            if !explained {
                self.fail(&format!(
                    "{when}: {path} holds {disk:?} but the log implies {logged:?}; its commit records:{}",
                    Self::trail(&log, &folded, path)
                ));
            }
        }
        // The replies agree with the log.
        let mut denied_then_run = Vec::new();
        for (id, seen) in &self.replies {
            let result = folded.results.get(id);
            let failed = folded.failed.get(id);
            match seen {
                Seen::Denied(code) if result.is_some() && code == "COMMIT-WAL" => {
                    denied_then_run.push((*id, result.copied()));
                }
                Seen::Done if result.is_none() || failed.is_some() => self.fail(&format!(
                    "{when}: {id} was answered done but the log has result {result:?}, failure {failed:?}"
                )),
                Seen::Failed { code, logged: true, .. } if failed.is_none() => {
                    self.fail(&format!("{when}: {id} was answered failed ({code}) but the log has no failure record"))
                }
                Seen::Denied(code) if result.is_some() => self.fail(&format!(
                    "{when}: {id} was denied ({code}) but the log has a result record for it at Lsn {result:?}{}",
                    folded
                        .intents
                        .get(id)
                        .and_then(|(_, i)| file_of(i))
                        .map(|f| Self::trail(&log, &folded, &f))
                        .unwrap_or_default()
                )),
                _ => {}
            }
        }
        for (id, result) in denied_then_run {
            let what = format!(
                "{id} was denied because its intent record failed to sync (COMMIT-WAL: \"nothing was logged or \
                 ran\"), yet the record survived the restart and recovery executed it (result at Lsn {result:?})"
            );
            self.known(KnownBug::DeniedButExecuted, id, &what);
        }
        for id in &self.dsc_faulted {
            if let Some((lsn, _)) = folded.intents.get(id) {
                self.fail(&format!("{id} reached the Commit Layer (Lsn {lsn}) while the DSC was failing"));
            }
        }
        self.model = folded.files;
    }

    /// Whether `path` diverges from the log by [`KnownBug::RolledBackLoggedCommitted`]
    /// exactly: the last result on it belongs to an intent answered failed at
    /// stage 5 with the failure unlogged, and the file holds what it held
    /// before that intent. If so (and not strict) the result is void from now on.
    fn known_rollback_after_result_bug(
        &mut self,
        log: &LogView,
        folded: &Folded,
        path: &str,
        disk: Option<&String>,
    ) -> bool {
        let Some((lsn, id)) = folded.last_result.get(path).copied() else { return false };
        let rolled_back_unlogged = matches!(
            self.replies.get(&id),
            Some(Seen::Failed { code: "COMMIT-WAL", logged: false, stage: Stage::Record })
        );
        let matches = rolled_back_unlogged && folded.before.get(&id).map(Option::as_ref) == Some(disk);
        if matches {
            let route = if folded.recovered.contains(&id) {
                "recovery probed the marker compensation left behind"
            } else {
                "the unsynced result record survived the restart"
            };
            self.known(
                KnownBug::RolledBackLoggedCommitted,
                id,
                &format!(
                    "{id} was rolled back after its result record failed to sync, yet the log holds its result \
                     at Lsn {lsn} ({route}); {path} holds {disk:?}; its commit records:{}",
                    Self::trail(log, folded, path)
                ),
            );
            self.voided.insert(id);
        }
        matches
    }

    /// A known bug: fails the run, or under `MAOS_SIM_LENIENT` is reported once and counted.
    fn known(&mut self, bug: KnownBug, id: IntentId, what: &str) {
        if self.strict {
            self.fail(&format!("{what} [known bug {bug:?}]"));
        }
        if self.known_seen.insert((bug, id)) {
            *self.stats.known_bugs.entry(bug).or_default() += 1;
            self.note(format!("  KNOWN BUG {bug:?}: {what}"));
            eprintln!("MAOS_SIM_SEED={} step {}: known bug {bug:?}: {what}", self.seed, self.step);
        }
    }

    fn check_replay(&self) {
        let reader = LogReader::new(Arc::new(self.storage.clone()));
        let report = replay(&reader, dsc(), &keys()).unwrap_or_else(|e| self.fail(&format!("replay failed: {e}")));
        // The decisions taken while the DSC was failing are the only ones
        // replay may flag: it re-runs them without the injected fault.
        let injected = |d: &maos_kernel::Divergence| {
            self.dsc_faulted.contains(&d.intent)
                && d.recorded == Verdict::Deny { code: DenyCode::Internal }
                && d.what == "verdict"
        };
        let unexplained: Vec<_> = report.divergences.iter().filter(|d| !injected(d)).collect();
        if !unexplained.is_empty() || report.divergence_count != report.divergences.len() as u64 {
            self.fail(&format!("replay after restart diverges ({} in all): {unexplained:?}", report.divergence_count));
        }
    }
}

/// Whether a failed reply's error names `code` (the Commit Layer reports an
/// effector's refusal inside its stage error).
fn reply_mentions(reply: &Reply, code: &str) -> bool {
    matches!(reply, Reply::Failed { error, .. } if error.code() == code || error.to_string().contains(code))
}

fn short(id: IntentId) -> String {
    let text = id.to_string();
    text.get(text.len().saturating_sub(6)..).unwrap_or(&text).to_owned()
}
