//! The seven-stage commit pipeline (spec §13) and undo.

use crate::abuse::{LockAbuse, LockStanding};
use crate::effector::{Compensable, EffectOutput, Effector, Effectors, ExecContext, Snapshot};
use crate::effectors::mail::{MailEffector, ReleaseOutcome, Released};
use crate::error::{
    AuthorizeError, CommitError, EffectError, FailReason, OpenError, ReleaseError, Rollback, Stage, UndoError,
};
use crate::events::{CommitEvent, EventBus, EventOutcome};
use crate::lock::{LOCK_TIMEOUT_DEFAULT, LockTable};
use crate::proof::{Authorized, LoggedIntent};
use crate::records::{
    self, ExecutingRecord, FailedRecord, IntentRecord, KIND_EXECUTING, KIND_FAILED, KIND_INTENT, KIND_RELEASED,
    KIND_RELEASING, KIND_RESULT, KIND_UNDONE, RECORD_VERSION, ReleasedRecord, ReleasingRecord, ResultRecord,
    UndoneRecord,
};
use crate::zone::{ROLLBACK_ZONE_BYTES_DEFAULT, RollbackZone};
use maos_model::{EffectClass, Intent, IntentId, UnixMillis};
use maos_wal::{Lsn, RecordKind, Wal};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long a stopped execution may take to return after its deadline before
/// the pipeline rolls back without it.
pub const CANCEL_GRACE_DEFAULT: Duration = Duration::from_secs(2);

/// Configuration of a [`CommitLayer`].
#[derive(Debug, Clone)]
pub struct CommitConfig {
    /// Directory of the Rollback Zone.
    pub rollback_zone_dir: PathBuf,
    /// Bound on the zone's total bytes ([`ROLLBACK_ZONE_BYTES_DEFAULT`]).
    pub rollback_zone_bytes_max: u64,
    /// How long a commit may hold its locks, stages 2–5 ([`LOCK_TIMEOUT_DEFAULT`], 30 s).
    pub lock_timeout: Duration,
    /// How long a commit waits for a lock another commit holds.
    pub lock_wait: Duration,
    /// See [`CANCEL_GRACE_DEFAULT`].
    pub cancel_grace: Duration,
    /// The DSC configuration hash in force: a decision made under another one
    /// is stale (CT-CL-02). `None` skips the check.
    pub dsc_config_hash: Option<[u8; 32]>,
}

impl CommitConfig {
    /// Spec defaults with the zone in `rollback_zone_dir`.
    #[must_use]
    pub fn new(rollback_zone_dir: impl Into<PathBuf>) -> Self {
        Self {
            rollback_zone_dir: rollback_zone_dir.into(),
            rollback_zone_bytes_max: ROLLBACK_ZONE_BYTES_DEFAULT,
            lock_timeout: LOCK_TIMEOUT_DEFAULT,
            lock_wait: LOCK_TIMEOUT_DEFAULT,
            cancel_grace: CANCEL_GRACE_DEFAULT,
            dsc_config_hash: None,
        }
    }
}

/// What an injected fault does (tests and the kernel simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The stage fails normally: rollback and a failure record.
    Fail,
    /// The process "dies" here: the pipeline stops without rollback or any
    /// further record, leaving the WAL and the world as a crash would.
    Halt,
}

/// Decides, before each stage, whether to inject a fault.
pub trait FaultHook: Send + Sync + fmt::Debug {
    /// `Some` to inject a fault before `stage` of `intent`.
    fn before(&self, stage: Stage, intent: &Intent) -> Option<Fault>;
}

/// A committed intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The intent.
    pub intent: IntentId,
    /// The class it ran under.
    pub class: EffectClass,
    /// What the effect returned.
    pub output: EffectOutput,
    /// Lsn of the result record.
    pub result_lsn: Lsn,
    /// End of the undo hold period, if a compensable snapshot was taken.
    pub undo_until: Option<UnixMillis>,
}

/// What an undo did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undone {
    /// The intent.
    pub intent: IntentId,
    /// Lsn of the undo record.
    pub lsn: Lsn,
}

/// The Commit Layer: the only component that makes external effects (spec
/// §13, Invariant 2). Cheap to share behind an `Arc`; every method takes `&self`
/// and commits on different resources run in parallel.
#[derive(Debug)]
pub struct CommitLayer {
    wal: Arc<Wal>,
    effectors: Effectors,
    locks: LockTable,
    zone: RollbackZone,
    events: EventBus,
    config: CommitConfig,
    faults: Option<Arc<dyn FaultHook>>,
    abuse: LockAbuse,
    threads: crate::threads::EffectThreads,
    /// Circuit breakers on the remotes effectors reach.
    remotes: crate::remotes::Remotes,
}

struct Failure {
    stage: Stage,
    reason: FailReason,
}

fn fail(stage: Stage, reason: FailReason) -> Failure {
    Failure { stage, reason }
}

impl CommitLayer {
    /// A Commit Layer over `wal` with `effectors`.
    ///
    /// # Errors
    /// [`OpenError::RollbackZone`] if the Rollback Zone cannot be opened.
    pub fn open(wal: Arc<Wal>, effectors: Effectors, config: CommitConfig) -> Result<Self, OpenError> {
        let zone = RollbackZone::open(&config.rollback_zone_dir, config.rollback_zone_bytes_max)
            .map_err(OpenError::RollbackZone)?;
        Ok(Self {
            wal,
            effectors,
            locks: LockTable::new(),
            zone,
            events: EventBus::new(),
            config,
            faults: None,
            abuse: LockAbuse::default(),
            threads: crate::threads::EffectThreads::default(),
            remotes: crate::remotes::Remotes::default(),
        })
    }

    /// Conservative mode (spec §38.6, the safe restart after an emergency
    /// shutdown): the remotes' breakers start their cooldowns doubled.
    pub fn set_conservative(&self, on: bool) {
        self.remotes.set_conservative(on);
    }

    /// Each remote's circuit breaker (spec §38.4) with how long it has been open.
    #[must_use]
    pub fn remote_breakers(&self) -> Vec<crate::breaker::BreakerView> {
        self.remotes.views()
    }

    /// Installs a fault hook. For tests and the deterministic simulator only:
    /// a production kernel never calls this.
    #[must_use]
    pub fn with_fault_injection(mut self, hook: Arc<dyn FaultHook>) -> Self {
        self.faults = Some(hook);
        self
    }

    /// The stage-6 event bus.
    #[must_use]
    pub const fn events(&self) -> &EventBus {
        &self.events
    }

    /// The lock table.
    #[must_use]
    pub const fn locks(&self) -> &LockTable {
        &self.locks
    }

    /// The Rollback Zone.
    #[must_use]
    pub const fn rollback_zone(&self) -> &RollbackZone {
        &self.zone
    }

    /// The effectors.
    #[must_use]
    pub const fn effectors(&self) -> &Effectors {
        &self.effectors
    }

    /// Whether the Rollback Zone can take a snapshot now (Rule 5).
    #[must_use]
    pub fn rollback_zone_ready(&self) -> bool {
        self.zone.ready()
    }

    /// The WAL.
    #[must_use]
    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    /// The descriptor's facts for an intent (design.md "Facts from descriptors"):
    /// the kernel derives every decision attribute with this.
    ///
    /// # Errors
    /// [`crate::DescribeError`] naming the action or argument.
    pub fn describe(&self, intent: &Intent) -> Result<crate::Described, crate::DescribeError> {
        self.effectors.describe(intent)
    }

    /// Forensic cleanup (spec §33.8.5): every effector marks what
    /// `resources` name as untrusted ([`crate::Effector::quarantine`]).
    #[must_use]
    pub fn quarantine(&self, resources: &[maos_model::Resource]) -> Vec<(&'static str, crate::Quarantined)> {
        self.effectors.quarantine(resources)
    }

    /// The class an intent runs under (CT-CL-10: unknown actions are writes).
    /// The kernel routes observations and writes with it.
    #[must_use]
    pub fn classify(&self, intent: &Intent) -> EffectClass {
        self.effectors.classify(intent)
    }

    /// An agent's lock standing (CT-CL-06) for the kernel to act on: flagged
    /// agents are for review, paused ones should be paused.
    #[must_use]
    pub fn lock_standing(&self, agent: &maos_model::AgentId, now: UnixMillis) -> LockStanding {
        self.abuse.agent_standing(agent, now)
    }

    fn fault(&self, stage: Stage, intent: &Intent) -> Option<Fault> {
        self.faults.as_ref().and_then(|h| h.before(stage, intent))
    }

    /// Stage 1: appends the intent record and returns the proof that it is
    /// durable (Rule 8). Nothing is logged when this fails.
    ///
    /// # Errors
    /// [`CommitError`] at stage 1: a stale decision, no effector for the action,
    /// a declared class weaker than the action's, or a WAL error (commit freeze).
    pub fn log_intent(&self, authorized: Authorized) -> Result<LoggedIntent, CommitError> {
        let intent = authorized.intent();
        let refuse = |reason: FailReason| CommitError {
            intent: intent.id,
            stage: Stage::WalRecord,
            reason,
            rollback: Rollback::NotNeeded,
            failure_logged: false,
        };
        if self.config.dsc_config_hash.is_some_and(|h| h != authorized.config_hash()) {
            return Err(refuse(FailReason::Unauthorized(AuthorizeError::StaleConfig)));
        }
        let Some(effector) = self.effectors.route(&intent.action) else {
            return Err(refuse(FailReason::NoEffector(intent.action.clone())));
        };
        let actual = effector.effect_class(intent);
        if actual > intent.effect {
            return Err(refuse(FailReason::ClassMismatch { declared: intent.effect.name(), actual: actual.name() }));
        }
        let class = intent.effect.max(actual);
        if self.fault(Stage::WalRecord, intent).is_some() {
            return Err(refuse(FailReason::Injected));
        }
        let record = IntentRecord {
            v: RECORD_VERSION,
            intent: intent.clone(),
            class,
            decision_hash: records::hex32(&authorized.decision_hash()),
            config_hash: records::hex32(&authorized.config_hash()),
        };
        let payload = records::encode(&record).map_err(|e| refuse(FailReason::Wal(e)))?;
        let logged = self.wal.append(KIND_INTENT, &payload).map_err(|e| refuse(FailReason::Wal(e.to_string())))?;
        Ok(LoggedIntent::new(authorized, logged, class))
    }

    /// Stages 2–7 for a logged intent. Observations skip the lock and the
    /// snapshot but not the records. A failure at any stage restores the
    /// snapshot, logs a failure record, publishes the failure and returns why.
    ///
    /// # Errors
    /// [`CommitError`] naming the stage, the reason and the rollback.
    pub fn commit(&self, logged: LoggedIntent, now: UnixMillis) -> Result<Committed, CommitError> {
        let class = logged.class();
        self.run(logged.intent(), class, now, Origin::Live)
    }

    /// The pipeline proper. Callers hold the stage-1 proof: a [`LoggedIntent`]
    /// or, in recovery, the durable intent record itself.
    pub(crate) fn run(
        &self,
        intent: &Intent,
        class: EffectClass,
        now: UnixMillis,
        origin: Origin,
    ) -> Result<Committed, CommitError> {
        let Some(effector) = self.effectors.route(&intent.action).cloned() else {
            let failure = fail(Stage::Occ, FailReason::NoEffector(intent.action.clone()));
            return Err(self.finish_failure(intent, class, failure, Rollback::NotNeeded, origin));
        };
        match class {
            EffectClass::Observe => self.run_observe(intent, &effector, now, origin),
            EffectClass::Write | EffectClass::Irreversible => self.run_write(intent, class, &effector, now, origin),
        }
    }

    fn run_observe(
        &self,
        intent: &Intent,
        effector: &Arc<dyn Effector>,
        now: UnixMillis,
        origin: Origin,
    ) -> Result<Committed, CommitError> {
        let class = EffectClass::Observe;
        let halted = |stage| self.halted(intent, stage);
        match self.fault(Stage::Execute, intent) {
            Some(Fault::Halt) => return Err(halted(Stage::Execute)),
            Some(Fault::Fail) => {
                return Err(self.finish_failure(
                    intent,
                    class,
                    fail(Stage::Execute, FailReason::Injected),
                    Rollback::NotNeeded,
                    origin,
                ));
            }
            None => {}
        }
        // On an effect thread like a write: an observation that never returns
        // (a fifo, a stalled upstream) fails at its deadline instead of holding
        // the caller, and cannot stop the daemon from shutting down.
        let deadline = Instant::now().checked_add(self.config.lock_timeout).unwrap_or_else(Instant::now);
        let output = match self.execute_bounded(intent, effector, now, deadline) {
            Ok(output) => output,
            Err(Exec::Failed(e)) => {
                let failure = fail(Stage::Execute, FailReason::Effect(e));
                return Err(self.finish_failure(intent, class, failure, Rollback::NotNeeded, origin));
            }
            Err(Exec::TimedOut { .. }) => {
                let timeout_ms = u64::try_from(self.config.lock_timeout.as_millis()).unwrap_or(u64::MAX);
                let failure = fail(Stage::Execute, FailReason::LockTimeout { timeout_ms });
                return Err(self.finish_failure(intent, class, failure, Rollback::NotNeeded, origin));
            }
        };
        self.record_and_publish(intent, class, effector, None, output, None, origin)
    }

    fn run_write(
        &self,
        intent: &Intent,
        class: EffectClass,
        effector: &Arc<dyn Effector>,
        now: UnixMillis,
        origin: Origin,
    ) -> Result<Committed, CommitError> {
        let halted = |stage| self.halted(intent, stage);
        let nothing = |failure: Failure| self.finish_failure(intent, class, failure, Rollback::NotNeeded, origin);

        // Stage 2: locks, then OCC under the locks.
        match self.fault(Stage::Occ, intent) {
            Some(Fault::Halt) => return Err(halted(Stage::Occ)),
            Some(Fault::Fail) => return Err(nothing(fail(Stage::Occ, FailReason::Injected))),
            None => {}
        }
        let keys = effector.resource_keys(intent).map_err(|e| nothing(fail(Stage::Occ, FailReason::Effect(e))))?;
        if keys.len() > crate::effector::RESOURCE_KEYS_MAX {
            let e = EffectError::Invalid("too many resource keys".into());
            return Err(nothing(fail(Stage::Occ, FailReason::Effect(e))));
        }
        let wait = match self.abuse.standing(&intent.agent, &keys, now) {
            LockStanding::Normal => self.config.lock_wait,
            // Lower lock priority: a flagged agent does not queue for busy locks.
            LockStanding::Flagged => Duration::ZERO,
            LockStanding::Paused => return Err(nothing(fail(Stage::Occ, FailReason::LockPaused))),
        };
        let guard = self.locks.acquire(intent.id, &keys, wait).map_err(|r| nothing(fail(Stage::Occ, r)))?;
        let locked_at = Instant::now();
        // From here on, a failure is an acquire→rollback cycle (CT-CL-06).
        let cycle = |e: CommitError| {
            self.abuse.record(&intent.agent, &keys, now);
            e
        };
        let locked = || -> Result<Committed, CommitError> {
            if let Some(expected) = intent.world_state_hash {
                let current =
                    effector.world_state(intent).map_err(|e| nothing(fail(Stage::Occ, FailReason::Effect(e))))?;
                if current != expected {
                    return Err(nothing(fail(Stage::Occ, FailReason::OccConflict)));
                }
            }

            // Stage 3: Rollback Zone snapshot (Rule 5), durable before execution.
            match self.fault(Stage::Snapshot, intent) {
                Some(Fault::Halt) => return Err(halted(Stage::Snapshot)),
                Some(Fault::Fail) => return Err(nothing(fail(Stage::Snapshot, FailReason::Injected))),
                None => {}
            }
            let snapshot =
                effector.snapshot(intent).map_err(|e| nothing(fail(Stage::Snapshot, FailReason::Effect(e))))?;
            let entry = self
                .zone
                .put(intent, &snapshot, now)
                .map_err(|e| nothing(fail(Stage::Snapshot, FailReason::RollbackZone(e))))?;
            let executing = ExecutingRecord { v: RECORD_VERSION, intent: intent.id, snapshot: true };
            let appended = records::encode(&executing)
                .and_then(|p| self.wal.append(KIND_EXECUTING, &p).map_err(|e| e.to_string()));
            if let Err(e) = appended {
                return Err(nothing(fail(Stage::Snapshot, FailReason::Wal(e))));
            }

            // Stage 4: execute under the lock timeout.
            let restore = |failure: Failure| {
                let rollback = self.compensate(intent, effector, &snapshot);
                self.finish_failure(intent, class, failure, rollback, origin)
            };
            match self.fault(Stage::Execute, intent) {
                Some(Fault::Halt) => return Err(halted(Stage::Execute)),
                Some(Fault::Fail) => return Err(restore(fail(Stage::Execute, FailReason::Injected))),
                None => {}
            }
            let deadline = locked_at.checked_add(self.config.lock_timeout).unwrap_or(locked_at);
            let output = match self.execute_bounded(intent, effector, now, deadline) {
                Ok(output) => output,
                Err(Exec::Failed(e)) => return Err(restore(fail(Stage::Execute, FailReason::Effect(e)))),
                Err(Exec::TimedOut { stopped }) => {
                    let timeout_ms = u64::try_from(self.config.lock_timeout.as_millis()).unwrap_or(u64::MAX);
                    let mut rollback = self.compensate(intent, effector, &snapshot);
                    if !stopped {
                        rollback = Rollback::Failed {
                            why: format!(
                                "the effector did not stop after its deadline; state after `{rollback}` is unknown"
                            ),
                        };
                    }
                    let failure = fail(Stage::Execute, FailReason::LockTimeout { timeout_ms });
                    return Err(self.finish_failure(intent, class, failure, rollback, origin));
                }
            };

            // Stage 5 onwards: result record, unlock, publish, complete.
            let undo_until = match snapshot.compensable {
                Compensable::Yes => Some(entry.hold_until),
                Compensable::No => None,
            };
            self.record_and_publish(intent, class, effector, Some((&snapshot, guard)), output, undo_until, origin)
        };
        locked().map_err(cycle)
    }

    #[expect(clippy::too_many_arguments, reason = "internal; shared by the observe and write paths")]
    fn record_and_publish(
        &self,
        intent: &Intent,
        class: EffectClass,
        effector: &Arc<dyn Effector>,
        held: Option<(&Snapshot, crate::lock::LockGuard)>,
        output: EffectOutput,
        undo_until: Option<UnixMillis>,
        origin: Origin,
    ) -> Result<Committed, CommitError> {
        let (snapshot, guard) = match held {
            Some((s, g)) => (Some(s), Some(g)),
            None => (None, None),
        };
        let restore = |failure: Failure| {
            let rollback = snapshot.map_or(Rollback::NotNeeded, |s| self.compensate(intent, effector, s));
            self.finish_failure(intent, class, failure, rollback, origin)
        };
        // Stage 5.
        match self.fault(Stage::Record, intent) {
            Some(Fault::Halt) => return Err(self.halted(intent, Stage::Record)),
            Some(Fault::Fail) => return Err(restore(fail(Stage::Record, FailReason::Injected))),
            None => {}
        }
        let result = ResultRecord {
            v: RECORD_VERSION,
            intent: intent.id,
            output_hash: records::hex32(&maos_crypto::sha3_256(&output.body).0),
            output_len: u64::try_from(output.body.len()).unwrap_or(u64::MAX),
            label: output.label,
            summary: output.summary.clone(),
            recovered: origin == Origin::Recovery,
        };
        let logged = records::encode(&result).and_then(|p| self.wal.append(KIND_RESULT, &p).map_err(|e| e.to_string()));
        let result_lsn = match logged {
            Ok(l) => l.lsn(),
            Err(e) => {
                // The record may have reached the disk even though the sync
                // failed: leave the effect and its marker for recovery to probe.
                let rollback = snapshot.map_or(Rollback::NotNeeded, |_| Rollback::Deferred {
                    why: "the log failed while recording the result".into(),
                });
                return Err(self.finish_failure(
                    intent,
                    class,
                    fail(Stage::Record, FailReason::Wal(e)),
                    rollback,
                    origin,
                ));
            }
        };

        // Stages 6 and 7: the locks are still held, so a rollback here cannot
        // undo a later commit on the same resource (a lost update).
        let held_restore = |stage: Stage| {
            let rollback = snapshot.map_or(Rollback::NotNeeded, |s| self.compensate(intent, effector, s));
            self.finish_failure(intent, class, fail(stage, FailReason::Injected), rollback, origin)
        };
        match self.fault(Stage::Publish, intent) {
            Some(Fault::Halt) => return Err(self.halted(intent, Stage::Publish)),
            Some(Fault::Fail) => return Err(held_restore(Stage::Publish)),
            None => {}
        }
        self.events.publish(&CommitEvent {
            intent: intent.id,
            agent: intent.agent.clone(),
            action: intent.action.clone(),
            class,
            outcome: EventOutcome::Committed { label: output.label, summary: output.summary.clone() },
        });
        match self.fault(Stage::Complete, intent) {
            Some(Fault::Halt) => return Err(self.halted(intent, Stage::Complete)),
            Some(Fault::Fail) => return Err(held_restore(Stage::Complete)),
            None => {}
        }
        drop(guard);
        tracing::debug!(intent = %intent.id, action = %intent.action, class = class.name(), "committed");
        Ok(Committed { intent: intent.id, class, output, result_lsn, undo_until })
    }

    /// Runs `job` on an effect executor the way an execution runs: the
    /// watchdog's liveness probe of the executors (spec §16.3). A pool whose
    /// threads are all hung refuses it, as it would an execution.
    ///
    /// # Errors
    /// [`EffectError::Busy`] at the thread cap; [`EffectError::Io`] if the
    /// system refuses a thread.
    pub fn probe_executors(&self, job: Box<dyn FnOnce() + Send + 'static>) -> Result<(), EffectError> {
        self.threads.run(job)
    }

    /// Runs `execute` on its own thread so a hung effect cannot hold the lock
    /// past the timeout (CT-CL-05).
    fn execute_bounded(
        &self,
        intent: &Intent,
        effector: &Arc<dyn Effector>,
        now: UnixMillis,
        deadline: Instant,
    ) -> Result<EffectOutput, Exec> {
        // A remote whose breaker is open is not called (nothing ran: the
        // caller rolls back as for any failed effect).
        let remote = effector.remote(intent);
        let admission = match &remote {
            Some(r) => self.remotes.admit(r, &self.wal).map_err(Exec::Failed)?,
            None => None,
        };
        let result = self
            .execute_unbounded_output(intent, effector, now, deadline)
            .and_then(|output| bounded_output(output).map_err(Exec::Failed));
        if let (Some(r), Some(a)) = (&remote, admission) {
            let ok = match &result {
                Ok(_) => true,
                Err(Exec::TimedOut { .. }) => false,
                Err(Exec::Failed(e)) => !e.unavailable(),
            };
            self.remotes.record(r, a, ok, &self.wal);
        }
        result
    }

    fn execute_unbounded_output(
        &self,
        intent: &Intent,
        effector: &Arc<dyn Effector>,
        now: UnixMillis,
        deadline: Instant,
    ) -> Result<EffectOutput, Exec> {
        let ctx = ExecContext::new(now, deadline);
        let (tx, rx) = channel();
        let worker_ctx = ctx.clone();
        let worker_effector = Arc::clone(effector);
        let worker_intent = intent.clone();
        let spawned = self.threads.run(Box::new(move || {
            let result = worker_effector.execute(&worker_intent, worker_intent.id, &worker_ctx);
            // The receiver may have given up after the timeout; that is fine.
            let _ = tx.send(result);
        }));
        if let Err(e) = spawned {
            return Err(Exec::Failed(e));
        }
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(EffectError::Cancelled)) => Err(Exec::TimedOut { stopped: true }),
            Ok(Err(e)) => Err(Exec::Failed(e)),
            // The worker always sends unless the effector panicked: a failure,
            // not a timeout (the effect's state is then as unknown as after one).
            Err(RecvTimeoutError::Disconnected) => {
                Err(Exec::Failed(EffectError::Io("the effector panicked while executing".into())))
            }
            Err(RecvTimeoutError::Timeout) => {
                ctx.cancel();
                // Wait for the effector to notice; its result no longer counts.
                let stopped = rx.recv_timeout(self.config.cancel_grace).is_ok();
                Err(Exec::TimedOut { stopped })
            }
        }
    }

    fn compensate(&self, intent: &Intent, effector: &Arc<dyn Effector>, snapshot: &Snapshot) -> Rollback {
        match snapshot.compensable {
            Compensable::No => Rollback::NotPossible { why: "the effect is irreversible".into() },
            Compensable::Yes => match effector.compensate(intent, snapshot) {
                Ok(()) => Rollback::Restored,
                Err(e) => Rollback::Failed { why: format!("{}: {e}", e.code()) },
            },
        }
    }

    fn halted(&self, intent: &Intent, stage: Stage) -> CommitError {
        tracing::warn!(intent = %intent.id, stage = stage.name(), "injected halt: pipeline stopped as if crashed");
        CommitError {
            intent: intent.id,
            stage,
            reason: FailReason::Injected,
            rollback: Rollback::NotNeeded,
            failure_logged: false,
        }
    }

    /// Logs the failure record, drops a restored snapshot and publishes the failure.
    fn finish_failure(
        &self,
        intent: &Intent,
        class: EffectClass,
        failure: Failure,
        rollback: Rollback,
        origin: Origin,
    ) -> CommitError {
        let record = FailedRecord {
            v: RECORD_VERSION,
            intent: intent.id,
            stage: failure.stage,
            code: failure.reason.code().to_owned(),
            reason: failure.reason.to_string(),
            rollback: rollback.clone(),
            recovered: origin == Origin::Recovery,
        };
        let failure_logged =
            records::encode(&record).and_then(|p| self.wal.append(KIND_FAILED, &p).map_err(|e| e.to_string())).is_ok();
        if failure_logged && matches!(rollback, Rollback::Restored | Rollback::NotNeeded) {
            // The intent is terminal and its state restored: the snapshot has no
            // further use. Kept otherwise, for the operator.
            if let Err(e) = self.zone.remove(intent.id) {
                tracing::warn!(intent = %intent.id, error = %e, "could not drop a rolled-back snapshot");
            }
        }
        self.events.publish(&CommitEvent {
            intent: intent.id,
            agent: intent.agent.clone(),
            action: intent.action.clone(),
            class,
            outcome: EventOutcome::Failed { stage: failure.stage, code: failure.reason.code() },
        });
        tracing::info!(intent = %intent.id, stage = failure.stage.name(), code = failure.reason.code(), %rollback, "commit failed");
        CommitError { intent: intent.id, stage: failure.stage, reason: failure.reason, rollback, failure_logged }
    }

    /// Undoes a committed intent inside its hold period (spec §35): compensates
    /// from the Rollback Zone snapshot under the resource locks, then logs it.
    ///
    /// # Errors
    /// [`UndoError`]: no snapshot, hold period over, already undone,
    /// irreversible, or the effector/WAL/lock failed.
    pub fn undo(&self, intent_id: IntentId, now: UnixMillis) -> Result<Undone, UndoError> {
        let entry = self.zone.entry(intent_id).ok_or(UndoError::NotFound(intent_id))?;
        if entry.undone {
            return Err(UndoError::AlreadyUndone(intent_id));
        }
        if entry.compensable == Compensable::No {
            return Err(UndoError::NotCompensable(intent_id));
        }
        if now >= entry.hold_until {
            return Err(UndoError::HoldExpired { intent: intent_id, hold_until: entry.hold_until });
        }
        let (intent, snapshot, _) = self.zone.load(intent_id)?.ok_or(UndoError::NotFound(intent_id))?;
        let effector = self.effectors.route(&intent.action).ok_or(UndoError::NotCommitted(intent_id))?;
        let keys = effector.resource_keys(&intent).map_err(UndoError::Effect)?;
        let guard =
            self.locks.acquire(intent_id, &keys, self.config.lock_wait).map_err(|e| UndoError::Lock(e.to_string()))?;
        // Re-read under the lock: a concurrent undo may have won.
        if self.zone.entry(intent_id).is_some_and(|e| e.undone) {
            return Err(UndoError::AlreadyUndone(intent_id));
        }
        effector.compensate(&intent, &snapshot).map_err(UndoError::Effect)?;
        let record = UndoneRecord { v: RECORD_VERSION, intent: intent_id, at_ms: now.0 };
        let logged = records::encode(&record)
            .and_then(|p| self.wal.append(KIND_UNDONE, &p).map_err(|e| e.to_string()))
            .map_err(|e| UndoError::Wal(format!("the effect was compensated but the undo record failed: {e}")))?;
        self.zone.mark_undone(intent_id)?;
        drop(guard);
        self.events.publish(&CommitEvent {
            intent: intent_id,
            agent: intent.agent.clone(),
            action: intent.action.clone(),
            class: intent.effect,
            outcome: EventOutcome::Undone,
        });
        Ok(Undone { intent: intent_id, lsn: logged.lsn() })
    }

    /// Releases held mail past its hold period: each message's release is
    /// logged (`0x0206`, durable) before it leaves and its outcome (`0x0205`)
    /// after. `mode` names the kernel mode that permits the release; the
    /// kernel calls this only in a mode that permits effects. Deferred
    /// messages (relay down) are not logged as released; they are retried.
    ///
    /// # Errors
    /// [`ReleaseError::Wal`] if a record could not be logged: when it is the
    /// record before a release, that message and the rest stay held.
    /// [`ReleaseError::Effect`] if the Maildir fails.
    pub fn release_mail(
        &self,
        mail: &MailEffector,
        now: UnixMillis,
        mode: &str,
    ) -> Result<Vec<Released>, ReleaseError> {
        let mut unlogged = None;
        let mut before = |intent: IntentId| -> Result<(), EffectError> {
            let record = ReleasingRecord { v: RECORD_VERSION, intent, mode: mode.to_owned(), at_ms: now.0 };
            records::encode(&record)
                .and_then(|p| self.wal.append(KIND_RELEASING, &p).map_err(|e| e.to_string()))
                .map_err(|e| {
                    unlogged = Some(e.clone());
                    EffectError::Io(format!("logging the release: {e}"))
                })?;
            Ok(())
        };
        let released = match mail.release_due(now, &mut before) {
            Ok(released) => released,
            Err(e) => return Err(unlogged.map_or(ReleaseError::Effect(e), ReleaseError::Wal)),
        };
        for r in &released {
            let outcome = match r.outcome {
                ReleaseOutcome::Delivered => "delivered",
                ReleaseOutcome::Relayed => "relayed",
                ReleaseOutcome::Uncertain => "uncertain",
                ReleaseOutcome::Deferred(_) => continue,
            };
            let record = ReleasedRecord { v: RECORD_VERSION, intent: r.intent, outcome: outcome.into(), at_ms: now.0 };
            records::encode(&record)
                .and_then(|p| self.wal.append(KIND_RELEASED, &p).map_err(|e| e.to_string()))
                .map_err(ReleaseError::Wal)?;
        }
        Ok(released)
    }

    /// Appends a caller record kind in the commit range (used by recovery).
    pub(crate) fn append(&self, kind: RecordKind, payload: &[u8]) -> Result<Lsn, String> {
        self.wal.append(kind, payload).map(|l| l.lsn()).map_err(|e| e.to_string())
    }
}

impl From<String> for UndoError {
    fn from(value: String) -> Self {
        Self::Zone(value)
    }
}

/// An effector (custom ones included) cannot hand the kernel more than
/// [`OUTPUT_BYTES_MAX`](crate::OUTPUT_BYTES_MAX).
fn bounded_output(output: EffectOutput) -> Result<EffectOutput, EffectError> {
    if output.body.len() > crate::effector::OUTPUT_BYTES_MAX {
        return Err(EffectError::TooLarge { what: "effect output", max: crate::effector::OUTPUT_BYTES_MAX });
    }
    Ok(output)
}

enum Exec {
    Failed(EffectError),
    TimedOut { stopped: bool },
}

/// Who runs the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Live,
    Recovery,
}
