//! The pipeline: proofs, one test per stage's failure path (CT-CL-08), OCC,
//! lock timeout, observation path, classification, undo of files.

use crate::common::*;
use maos_commit::records::KIND_INTENT;
use maos_commit::{
    AuthorizeError, Authorized, CommitLayer, Compensable, EffectError, EffectOutput, Effector, EventOutcome,
    ExecContext, FailReason, Fault, OutputLabel, Probe, Rollback, Snapshot, Stage, UndoError,
};
use maos_dsc::{DscConfig, DscState, Outcome, decide};
use maos_model::{EffectClass, HacfLevel, Intent, IntentId, Profile, Verdict};
use maos_token::TokenError;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn ct_cl_02_missing_forged_or_stale_approval_is_refused() {
    let world = World::new();
    let write = fs_write("a.txt", "new");

    // A real DSC deny (no token).
    let state = DscState::new(DscConfig::default_for(Profile::Standard).unwrap());
    let none = TokenError::UnknownToken("none".into());
    let denied = decide(&state, &write, Err(&none), T0);
    assert!(matches!(Authorized::new(write.clone(), &denied), Err(AuthorizeError::NotAllow("deny"))));

    // Escalate is not allow either.
    let mut escalate = allow(&write);
    *escalate.parts_mut().verdict = Verdict::Escalate { level: HacfLevel::L2, reason: "irreversible".into() };
    assert_eq!(Authorized::new(write.clone(), &escalate).unwrap_err().code(), "AUTHZ-NOT-ALLOW");

    // A forged Allow over a failing check, a divergent vote, another agent's charge.
    let mut forged = allow(&write);
    forged.parts_mut().checks[3].outcome = Outcome::deny(maos_model::DenyCode::Taint, "x");
    assert_eq!(Authorized::new(write.clone(), &forged).unwrap_err().code(), "AUTHZ-INCONSISTENT");
    let mut divergent = allow(&write);
    *divergent.parts_mut().divergence = true;
    assert_eq!(Authorized::new(write.clone(), &divergent).unwrap_err().code(), "AUTHZ-INCONSISTENT");
    let mut other = write.clone();
    other.agent = maos_model::AgentId::new("someone-else").unwrap();
    assert_eq!(Authorized::new(other, &allow(&write)).unwrap_err().code(), "AUTHZ-MISMATCH");

    // Stale: decided under another DSC configuration.
    let mut config = world.config();
    config.dsc_config_hash = Some([8; 32]);
    let layer = CommitLayer::open(world.wal(), world.effectors(&[]), config).unwrap();
    let err = layer.log_intent(Authorized::new(write.clone(), &allow(&write)).unwrap()).unwrap_err();
    assert!(matches!(err.reason, FailReason::Unauthorized(AuthorizeError::StaleConfig)));
    assert_eq!(err.stage, Stage::WalRecord);

    // Zero executions, nothing logged.
    assert_eq!(world.file("a.txt"), None);
    assert!(records(layer.wal()).is_empty());
}

/// What the test effectors' descriptors say: a write of cost 1 that names nothing.
fn write_descriptor() -> maos_commit::Described {
    maos_commit::Described {
        effect: EffectClass::Write,
        resources: Vec::new(),
        sink_level: maos_model::IfcLevel::Internal,
        reads: Vec::new(),
        cost: 1,
        requires_integrity: false,
        sensitive_args: Vec::new(),
        provenance_deny: false,
    }
}

/// An effector that checks, at execution time, that the intent record is durable.
#[derive(Debug)]
struct WalWitness {
    wal: Arc<maos_wal::Wal>,
    saw_intent_record: AtomicBool,
}

impl Effector for WalWitness {
    fn namespace(&self) -> &'static str {
        "witness"
    }
    fn describe(&self, _: &Intent) -> Result<maos_commit::Described, maos_commit::DescribeError> {
        Ok(write_descriptor())
    }
    fn effect_class(&self, _: &Intent) -> EffectClass {
        EffectClass::Write
    }
    fn resource_keys(&self, _: &Intent) -> Result<Vec<String>, EffectError> {
        Ok(vec!["witness".into()])
    }
    fn world_state(&self, _: &Intent) -> Result<[u8; 32], EffectError> {
        Ok([0; 32])
    }
    fn snapshot(&self, _: &Intent) -> Result<Snapshot, EffectError> {
        Ok(Snapshot { hold_ms: 1000, compensable: Compensable::Yes, bytes: Vec::new() })
    }
    fn execute(&self, intent: &Intent, _: IntentId, _: &ExecContext) -> Result<EffectOutput, EffectError> {
        // A fresh reader sees only what reached the segment files.
        let found = self.wal.reader().records().unwrap().map(|r| r.unwrap()).any(|r| {
            r.kind == KIND_INTENT
                && serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["intent"]["id"]
                    == intent.id.to_string().as_str()
        });
        self.saw_intent_record.store(found, Ordering::SeqCst);
        Ok(EffectOutput::empty(OutputLabel::Trusted, "witnessed"))
    }
    fn probe(&self, _: &Intent) -> Result<Probe, EffectError> {
        Ok(Probe::NotDone)
    }
    fn compensate(&self, _: &Intent, _: &Snapshot) -> Result<(), EffectError> {
        Ok(())
    }
}

#[test]
fn ct_wal_01_intent_record_is_durable_before_execution() {
    let world = World::new();
    let wal = world.wal();
    let witness = Arc::new(WalWitness { wal: wal.clone(), saw_intent_record: AtomicBool::new(false) });
    let as_dyn: Arc<dyn Effector> = witness.clone();
    let layer = CommitLayer::open(wal.clone(), world.effectors(&[as_dyn]), world.config()).unwrap();
    let i = intent("witness.do", EffectClass::Write, &[], &[]);
    let id = i.id;
    run(&layer, i, T0).unwrap();
    assert!(witness.saw_intent_record.load(Ordering::SeqCst));
    assert_eq!(trail(&wal, id), ["intent", "executing", "result"]);
}

#[test]
fn a_write_commits_with_all_records_and_publishes() {
    let world = World::new();
    let layer = world.layer();
    let events = layer.events().subscribe(8).unwrap();
    let w = fs_write("/workspace/notes/a.txt", "hello");
    let id = w.id;
    let done = run(&layer, w, T0).unwrap();
    assert_eq!(done.class, EffectClass::Write);
    assert_eq!(done.undo_until, Some(T0.saturating_add_ms(24 * HOUR_MS)));
    assert_eq!(world.file("notes/a.txt").as_deref(), Some("hello"));
    assert_eq!(trail(layer.wal(), id), ["intent", "executing", "result"]);
    assert_eq!(layer.locks().held(), 0);
    let event = events.try_recv().unwrap();
    assert_eq!(event.intent, id);
    assert!(matches!(event.outcome, EventOutcome::Committed { .. }));
}

/// Runs an `fs.write` over `a.txt` = "old" with a failure injected before `stage`.
fn fail_at(stage: Stage) -> (World, maos_commit::CommitError, Vec<&'static str>) {
    let world = World::new();
    world.put("a.txt", "old");
    let layer = world.layer().with_fault_injection(FaultAt::new(stage, Fault::Fail));
    let events = layer.events().subscribe(8).unwrap();
    let w = fs_write("a.txt", "new");
    let id = w.id;
    let err = run(&layer, w, T0).unwrap_err();
    assert_eq!(err.stage, stage);
    assert_eq!(err.code(), "COMMIT-INJECTED");
    assert_eq!(world.file("a.txt").as_deref(), Some("old"), "state restored after a stage {stage} failure");
    assert_eq!(layer.locks().held(), 0);
    let trail = trail(layer.wal(), id);
    if stage != Stage::WalRecord {
        assert!(err.failure_logged);
        let last = events.try_iter().last().unwrap();
        assert!(matches!(last.outcome, EventOutcome::Failed { stage: s, .. } if s == stage));
        assert!(layer.rollback_zone().entry(id).is_none(), "snapshot dropped after rollback");
    }
    (world, err, trail)
}

#[test]
fn ct_cl_08_stage_1_wal_record_failure_executes_nothing() {
    let (_, err, trail) = fail_at(Stage::WalRecord);
    assert!(!err.failure_logged);
    assert_eq!(err.rollback, Rollback::NotNeeded);
    assert!(trail.is_empty(), "nothing logged, nothing executed: {trail:?}");
}

#[test]
fn ct_cl_08_stage_2_occ_failure_executes_nothing() {
    let (_, err, trail) = fail_at(Stage::Occ);
    assert_eq!(err.rollback, Rollback::NotNeeded);
    assert_eq!(trail, ["intent", "failed"]);
}

#[test]
fn ct_cl_08_stage_3_snapshot_failure_executes_nothing() {
    let (_, err, trail) = fail_at(Stage::Snapshot);
    assert_eq!(err.rollback, Rollback::NotNeeded);
    assert_eq!(trail, ["intent", "failed"]);
}

#[test]
fn ct_cl_08_stage_4_execute_failure_restores_the_snapshot() {
    let (_, err, trail) = fail_at(Stage::Execute);
    assert_eq!(err.rollback, Rollback::Restored);
    assert_eq!(trail, ["intent", "executing", "failed"]);
}

#[test]
fn ct_cl_08_stage_5_record_failure_restores_the_snapshot() {
    let (_, err, trail) = fail_at(Stage::Record);
    assert_eq!(err.rollback, Rollback::Restored);
    assert_eq!(trail, ["intent", "executing", "failed"]);
}

#[test]
fn ct_cl_08_stage_6_publish_failure_restores_the_snapshot() {
    let (_, err, trail) = fail_at(Stage::Publish);
    assert_eq!(err.rollback, Rollback::Restored);
    assert_eq!(trail, ["intent", "executing", "result", "failed"]);
}

#[test]
fn ct_cl_08_stage_7_complete_failure_restores_the_snapshot() {
    let (_, err, trail) = fail_at(Stage::Complete);
    assert_eq!(err.rollback, Rollback::Restored);
    assert_eq!(trail, ["intent", "executing", "result", "failed"]);
}

#[test]
fn ct_cl_08_real_effect_error_restores_and_is_recorded() {
    let world = World::new();
    let layer = world.layer();
    let d = fs_delete("missing.txt");
    let id = d.id;
    let err = run(&layer, d, T0).unwrap_err();
    assert_eq!((err.stage, err.code()), (Stage::Execute, "COMMIT-EFFECT"));
    assert!(matches!(err.reason, FailReason::Effect(EffectError::NotFound(_))));
    assert_eq!(err.rollback, Rollback::Restored);
    assert_eq!(trail(layer.wal(), id), ["intent", "executing", "failed"]);
    assert_eq!(world.file("missing.txt"), None);

    // A write onto a directory cannot even be snapshotted: refused at stage 3.
    std::fs::create_dir_all(world.root().join("dir")).unwrap();
    let err = run(&layer, fs_write("dir", "x"), T0).unwrap_err();
    assert_eq!((err.stage, err.code()), (Stage::Snapshot, "COMMIT-EFFECT"));
    assert!(world.root().join("dir").is_dir());
}

#[test]
fn ct_cl_08_stage_5_real_wal_failure_defers_to_recovery() {
    // The WAL itself fails at stage 5: whether the result record reached the
    // disk is unknown, so the effect is left in place (rolling back could
    // contradict a record that did land) and recovery settles it at restart.
    let world = World::new();
    world.put("a.txt", "old");
    let storage = maos_wal::sim::MemStorage::new();
    let open = |s: &maos_wal::sim::MemStorage| {
        Arc::new(
            maos_wal::Wal::open(maos_wal::WalConfig::with_storage(Profile::Standard, Arc::new(s.clone()))).unwrap().0,
        )
    };
    let fault = FaultAt::new(Stage::Record, Fault::Fail);
    let faults = storage.clone();
    *fault.hook.lock().unwrap() = Some(Box::new(move || faults.faults().fail_writes.store(true, Ordering::SeqCst)));
    let intent = fs_write("a.txt", "new");
    let id = intent.id;
    {
        let layer = CommitLayer::open(open(&storage), world.effectors(&[]), world.config())
            .unwrap()
            .with_fault_injection(fault);
        let err = run(&layer, intent, T0).unwrap_err();
        assert_eq!((err.stage, err.code()), (Stage::Record, "COMMIT-WAL"));
        assert!(matches!(err.rollback, Rollback::Deferred { .. }), "{:?}", err.rollback);
        assert!(!err.failure_logged);
        assert_eq!(world.file("a.txt").as_deref(), Some("new"));
    }
    // Restart with a working log: recovery probes the effect and records it.
    storage.faults().fail_writes.store(false, Ordering::SeqCst);
    let layer = CommitLayer::open(open(&storage), world.effectors(&[]), world.config()).unwrap();
    let report = layer.recover(T0).unwrap();
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    assert_eq!(world.file("a.txt").as_deref(), Some("new"));
    assert_eq!(trail(layer.wal(), id).last(), Some(&"result"));
}

#[test]
fn ct_cl_03_occ_conflict_rejects_the_second_writer() {
    let world = World::new();
    world.put("shared.txt", "v0");
    let layer = world.layer();
    let mut first = fs_write("shared.txt", "agent-1");
    let mut second = fs_write("shared.txt", "agent-2");
    let planned = world.fs.world_state(&first).unwrap();
    first.world_state_hash = Some(planned);
    second.world_state_hash = Some(planned);
    run(&layer, first, T0).unwrap();
    let second_id = second.id;
    let err = run(&layer, second, T0).unwrap_err();
    assert_eq!((err.stage, err.code()), (Stage::Occ, "COMMIT-OCC-CONFLICT"));
    assert_eq!(world.file("shared.txt").as_deref(), Some("agent-1"));
    assert_eq!(trail(layer.wal(), second_id), ["intent", "failed"]);
}

/// An effector whose execution runs until cancelled, recording compensation.
#[derive(Debug, Default)]
struct Hang {
    state: Mutex<String>,
    compensated: AtomicUsize,
}

impl Effector for Hang {
    fn namespace(&self) -> &'static str {
        "hang"
    }
    fn describe(&self, _: &Intent) -> Result<maos_commit::Described, maos_commit::DescribeError> {
        Ok(write_descriptor())
    }
    fn effect_class(&self, _: &Intent) -> EffectClass {
        EffectClass::Write
    }
    fn resource_keys(&self, _: &Intent) -> Result<Vec<String>, EffectError> {
        Ok(vec!["hang:resource".into()])
    }
    fn world_state(&self, _: &Intent) -> Result<[u8; 32], EffectError> {
        Ok([0; 32])
    }
    fn snapshot(&self, _: &Intent) -> Result<Snapshot, EffectError> {
        let bytes = self.state.lock().unwrap().clone().into_bytes();
        Ok(Snapshot { hold_ms: 1000, compensable: Compensable::Yes, bytes })
    }
    fn execute(&self, intent: &Intent, _: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        *self.state.lock().unwrap() = "partial".into();
        if intent.action == "hang.quick" {
            return Ok(EffectOutput::empty(OutputLabel::Trusted, "quick"));
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            ctx.checkpoint()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(EffectOutput::empty(OutputLabel::Trusted, "too late"))
    }
    fn probe(&self, _: &Intent) -> Result<Probe, EffectError> {
        Ok(Probe::Unknown)
    }
    fn compensate(&self, _: &Intent, snapshot: &Snapshot) -> Result<(), EffectError> {
        *self.state.lock().unwrap() = String::from_utf8(snapshot.bytes.clone()).unwrap();
        self.compensated.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn ct_cl_05_lock_timeout_releases_and_rolls_back() {
    let world = World::new();
    let hang = Arc::new(Hang::default());
    *hang.state.lock().unwrap() = "original".into();
    let mut config = world.config();
    config.lock_timeout = Duration::from_millis(200);
    config.lock_wait = Duration::from_secs(5);
    let as_dyn: Arc<dyn Effector> = hang.clone();
    let layer = Arc::new(CommitLayer::open(world.wal(), world.effectors(&[as_dyn]), config).unwrap());

    // A second commit on the same resource waits, then runs after the timeout.
    let slow = intent("hang.slow", EffectClass::Write, &[], &[]);
    let slow_id = slow.id;
    let started = Instant::now();
    let l2 = layer.clone();
    let waiter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        run(&l2, intent("hang.quick", EffectClass::Write, &[], &[]), T0)
    });
    let err = run(&layer, slow, T0).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((err.stage, err.code()), (Stage::Execute, "COMMIT-LOCK-TIMEOUT"));
    assert_eq!(err.rollback, Rollback::Restored);
    assert_eq!(hang.compensated.load(Ordering::SeqCst), 1);
    assert_eq!(trail(layer.wal(), slow_id), ["intent", "executing", "failed"]);
    assert!(waiter.join().unwrap().is_ok(), "the lock was released for the next commit");
    assert_eq!(layer.locks().held(), 0);
}

#[test]
fn observations_skip_lock_and_snapshot_but_not_the_log() {
    let world = World::new();
    world.put("r.txt", "content");
    let layer = world.layer();
    let r = fs_read("r.txt");
    let id = r.id;
    let done = run(&layer, r, T0).unwrap();
    assert_eq!(done.output.body, b"content");
    assert_eq!(done.output.label, OutputLabel::Trusted);
    assert_eq!(done.undo_until, None);
    assert_eq!(trail(layer.wal(), id), ["intent", "result"]);
    assert!(layer.rollback_zone().entry(id).is_none());
    assert!(matches!(layer.undo(id, T0), Err(UndoError::NotFound(_))));
}

#[test]
fn ct_cl_10_unknown_or_ambiguous_actions_are_writes() {
    let world = World::new();
    let layer = world.layer();
    let chmod = intent("fs.chmod", EffectClass::Observe, &[(maos_model::ResourceKind::Path, "a")], &[]);
    assert_eq!(layer.classify(&chmod), EffectClass::Write);
    let crm = intent("crm.update", EffectClass::Observe, &[], &[]);
    assert_eq!(layer.classify(&crm), EffectClass::Write);
    let mail_peek = intent("mail.peek", EffectClass::Observe, &[], &[]);
    assert_eq!(layer.classify(&mail_peek), EffectClass::Write);

    // Declared as a read, it cannot take the read path.
    let err = layer.log_intent(Authorized::new(chmod.clone(), &allow(&chmod)).unwrap()).unwrap_err();
    assert_eq!((err.stage, err.code()), (Stage::WalRecord, "COMMIT-CLASS-MISMATCH"));
    // Declared a write, it goes through the write path and fails at execution.
    let mut chmod_w = chmod;
    chmod_w.effect = EffectClass::Write;
    let err = run(&layer, chmod_w, T0).unwrap_err();
    assert_eq!(err.stage, Stage::Execute);
    assert!(matches!(err.reason, FailReason::Effect(EffectError::UnknownAction(_))));
    // No effector at all: refused before anything is logged.
    let err = layer.log_intent(Authorized::new(crm.clone(), &allow(&crm)).unwrap()).unwrap_err();
    assert_eq!(err.code(), "COMMIT-NO-EFFECTOR");
}

#[test]
fn ct_cl_07_file_undo_inside_the_hold_period_and_refused_after() {
    let world = World::new();
    world.put("doc.txt", "v1");
    let layer = world.layer();

    let overwrite = run(&layer, fs_write("doc.txt", "v2"), T0).unwrap();
    assert_eq!(world.file("doc.txt").as_deref(), Some("v2"));
    let undone = layer.undo(overwrite.intent, T0.saturating_add_ms(23 * HOUR_MS)).unwrap();
    assert_eq!(undone.intent, overwrite.intent);
    assert_eq!(world.file("doc.txt").as_deref(), Some("v1"));
    assert!(matches!(layer.undo(overwrite.intent, T0), Err(UndoError::AlreadyUndone(_))));
    assert_eq!(trail(layer.wal(), overwrite.intent), ["intent", "executing", "result", "undone"]);

    let delete = run(&layer, fs_delete("doc.txt"), T0).unwrap();
    assert_eq!(world.file("doc.txt"), None);
    let err = layer.undo(delete.intent, T0.saturating_add_ms(24 * HOUR_MS)).unwrap_err();
    assert_eq!(err.code(), "UNDO-HOLD-EXPIRED");
    assert_eq!(world.file("doc.txt"), None);
    layer.undo(delete.intent, T0.saturating_add_ms(HOUR_MS)).unwrap();
    assert_eq!(world.file("doc.txt").as_deref(), Some("v1"));

    let create = run(&layer, fs_write("fresh/new.txt", "x"), T0).unwrap();
    layer.undo(create.intent, T0).unwrap();
    assert_eq!(world.file("fresh/new.txt"), None, "undo of a create removes the file");

    // The zone forgets snapshots after their hold.
    assert_eq!(layer.rollback_zone().purge_expired(T0.saturating_add_ms(25 * HOUR_MS)).unwrap(), 3);
    assert!(matches!(layer.undo(create.intent, T0), Err(UndoError::NotFound(_))));
}

#[test]
fn undo_survives_a_restart() {
    let world = World::new();
    world.put("doc.txt", "v1");
    let id = {
        let layer = world.layer();
        run(&layer, fs_write("doc.txt", "v2"), T0).unwrap().intent
    };
    let layer = world.layer();
    layer.undo(id, T0.saturating_add_ms(MINUTE_MS)).unwrap();
    assert_eq!(world.file("doc.txt").as_deref(), Some("v1"));
}

#[test]
fn a_full_rollback_zone_refuses_destructive_commits() {
    let world = World::new();
    world.put("big.txt", &"x".repeat(4096));
    let mut config = world.config();
    config.rollback_zone_bytes_max = 1024;
    let layer = CommitLayer::open(world.wal(), world.effectors(&[]), config).unwrap();
    let err = run(&layer, fs_delete("big.txt"), T0).unwrap_err();
    assert_eq!((err.stage, err.code()), (Stage::Snapshot, "COMMIT-ROLLBACK-ZONE"));
    assert!(world.file("big.txt").is_some(), "no destructive action without a snapshot (Rule 5)");
}

#[test]
fn ct_cl_04_concurrent_writers_on_shared_files_never_corrupt_them() {
    let world = World::new();
    let layer = Arc::new(world.layer());
    let mut handles = Vec::new();
    for t in 0..4u8 {
        let layer = layer.clone();
        handles.push(std::thread::spawn(move || {
            let mut ids = Vec::new();
            for n in 0..8u8 {
                let path = format!("shared-{}.txt", n % 2);
                let content = format!("thread {t} write {n} ").repeat(200);
                let w = fs_write(&path, &content);
                ids.push(w.id);
                run(&layer, w, T0).unwrap();
            }
            ids
        }));
    }
    let ids: Vec<IntentId> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    for id in &ids {
        assert_eq!(trail(layer.wal(), *id), ["intent", "executing", "result"]);
    }
    for n in 0..2 {
        let content = world.file(&format!("shared-{n}.txt")).unwrap();
        let unit = content.get(..content.len() / 200).unwrap();
        assert_eq!(content, unit.repeat(200), "a whole write, never a mix");
    }
    let names: Vec<_> = std::fs::read_dir(world.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "no temp files: {names:?}");
    assert_eq!(layer.locks().held(), 0);
}

#[test]
fn ct_cl_06_repeated_lock_and_rollback_flags_then_pauses_the_agent() {
    use maos_commit::LockStanding;
    let world = World::new();
    world.put("hot.txt", "v0");
    let layer = world.layer();
    let agent = maos_model::AgentId::new("tester").unwrap();
    let stale = |n: u64| {
        let mut w = fs_write("hot.txt", "mine");
        w.world_state_hash = Some([0xAB; 32]); // never matches: an OCC rollback
        (w, T0.saturating_add_ms(n * MINUTE_MS))
    };
    for n in 0..4 {
        let (w, now) = stale(n);
        assert_eq!(run(&layer, w, now).unwrap_err().code(), "COMMIT-OCC-CONFLICT");
    }
    assert_eq!(layer.lock_standing(&agent, T0.saturating_add_ms(4 * MINUTE_MS)), LockStanding::Flagged);
    let (w, now) = stale(4);
    assert_eq!(run(&layer, w, now).unwrap_err().code(), "COMMIT-OCC-CONFLICT");
    assert_eq!(layer.lock_standing(&agent, now), LockStanding::Paused);

    // Paused on that resource: even a valid write is refused before locking.
    let err = run(&layer, fs_write("hot.txt", "valid"), now).unwrap_err();
    assert_eq!((err.stage, err.code()), (Stage::Occ, "COMMIT-LOCK-PAUSED"));
    // Other resources and other agents are unaffected.
    run(&layer, fs_write("cold.txt", "fine"), now).unwrap();
    let mut other = fs_write("hot.txt", "theirs");
    other.agent = maos_model::AgentId::new("other-agent").unwrap();
    run(&layer, other, now).unwrap();
    // The window slides: ten minutes after the cycles, the agent is back to normal.
    let later = T0.saturating_add_ms(15 * MINUTE_MS);
    assert_eq!(layer.lock_standing(&agent, later), LockStanding::Normal);
    run(&layer, fs_write("hot.txt", "mine at last"), later).unwrap();
    assert_eq!(world.file("hot.txt").as_deref(), Some("mine at last"));
}

#[test]
fn escalated_intents_run_only_with_a_valid_unexpired_commander_approval() {
    use maos_commit::{ApprovalGrant, SignedApproval};
    use maos_crypto::{SignatureDomain, SigningKey};
    let world = World::new();
    let layer = world.layer();
    let commander = SigningKey::from_seeds(&[3; 64]).unwrap();
    let agent_key = SigningKey::from_seeds(&[4; 64]).unwrap();
    let w = fs_write("approved.txt", "after approval");
    let mut escalated = allow(&w);
    escalated.parts_mut().checks[3].outcome = Outcome::escalate(HacfLevel::L2, "untrusted session");
    *escalated.parts_mut().verdict = Verdict::Escalate { level: HacfLevel::L2, reason: "untrusted session".into() };
    escalated.parts_mut().votes[0].verdict = escalated.verdict().clone();
    let sign = |grant: ApprovalGrant, key: &SigningKey| SignedApproval {
        grant,
        signature: key.sign(SignatureDomain::ApprovalDecision, &grant.message()).unwrap(),
    };
    let expires = T0.saturating_add_ms(15 * MINUTE_MS);
    let good = sign(ApprovalGrant::new(&w, &escalated, HacfLevel::L2, expires), &commander);
    let key = commander.verifying_key();
    let code = |r: Result<Authorized, AuthorizeError>| r.map(|_| ()).unwrap_err().code();

    // Forged by another key, expired, too low a level, for another intent, not an escalation.
    let forged = sign(good.grant, &agent_key);
    assert_eq!(code(Authorized::approved(w.clone(), &escalated, &forged, key, T0)), "AUTHZ-APPROVAL-SIGNATURE");
    assert_eq!(code(Authorized::approved(w.clone(), &escalated, &good, key, expires)), "AUTHZ-APPROVAL-EXPIRED");
    let low = sign(ApprovalGrant::new(&w, &escalated, HacfLevel::L1, expires), &commander);
    assert_eq!(code(Authorized::approved(w.clone(), &escalated, &low, key, T0)), "AUTHZ-MISMATCH");
    let other = fs_write("approved.txt", "something else");
    let elsewhere = sign(ApprovalGrant::new(&other, &escalated, HacfLevel::L2, expires), &commander);
    assert_eq!(code(Authorized::approved(w.clone(), &escalated, &elsewhere, key, T0)), "AUTHZ-MISMATCH");
    assert_eq!(code(Authorized::approved(w.clone(), &allow(&w), &good, key, T0)), "AUTHZ-NOT-ESCALATED");
    let mut denied = escalated.clone();
    denied.parts_mut().checks[0].outcome = Outcome::deny(maos_model::DenyCode::Scope, "x");
    assert_eq!(code(Authorized::approved(w.clone(), &denied, &good, key, T0)), "AUTHZ-INCONSISTENT");
    assert_eq!(world.file("approved.txt"), None);

    // The real approval commits.
    let authorized = Authorized::approved(w, &escalated, &good, key, T0).unwrap();
    layer.commit(layer.log_intent(authorized).unwrap(), T0).unwrap();
    assert_eq!(world.file("approved.txt").as_deref(), Some("after approval"));
}

#[test]
fn the_layer_and_its_effectors_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CommitLayer>();
    assert_send_sync::<maos_commit::effectors::fs::FsEffector>();
    assert_send_sync::<maos_commit::effectors::mail::MailEffector>();
    assert_send_sync::<maos_commit::effectors::http::HttpEffector>();
}
