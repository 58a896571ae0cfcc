//! Crash recovery (CT-WAL-03, CT-WAL-04): a crash between stages, then a
//! restart; no effect is lost or repeated, checked on the files and Maildir.

use crate::common::*;
use crate::effectors_http::{Server, http_effector, post};
use maos_commit::{CommitLayer, Fault, RecoveryAction, Rollback, Stage};
use maos_model::Intent;
use std::sync::Arc;

/// Commits `intent` with a crash ("halt") before `stage`, restarts, recovers.
fn crash_then_recover(
    world: &World,
    intent: Intent,
    stage: Stage,
    extra: &[Arc<dyn maos_commit::Effector>],
) -> RecoveryAction {
    let id = intent.id;
    {
        let layer = CommitLayer::open(world.wal(), world.effectors(extra), world.config())
            .unwrap()
            .with_fault_injection(FaultAt::new(stage, Fault::Halt));
        let err = run(&layer, intent, T0).unwrap_err();
        assert!(!err.failure_logged);
    } // the process "dies": the WAL and the layer are dropped
    let layer = CommitLayer::open(world.wal(), world.effectors(extra), world.config()).unwrap();
    let report = layer.recover(T0).unwrap();
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    assert!(report.damaged.is_empty());
    let (rid, action) = report.recovered[0].clone();
    assert_eq!(rid, id);
    // A second recovery finds nothing left to do.
    let again = layer.recover(T0).unwrap();
    assert!(again.recovered.is_empty(), "{again:?}");
    let t = trail(layer.wal(), id);
    assert!(matches!(t.last(), Some(&"result" | &"failed")), "{t:?}");
    action
}

#[test]
fn ct_wal_03_written_intent_is_executed_once() {
    let world = World::new();
    let action = crash_then_recover(&world, fs_write("w.txt", "data"), Stage::Occ, &[]);
    assert_eq!(action, RecoveryAction::Executed);
    assert_eq!(world.file("w.txt").as_deref(), Some("data"));
}

#[test]
fn ct_wal_04_executing_but_not_done_is_probed_then_executed() {
    let world = World::new();
    let action = crash_then_recover(&world, mail_send("bob@example.com", "s", "b"), Stage::Execute, &[]);
    assert_eq!(action, RecoveryAction::ProbedNotDoneExecuted);
    assert_eq!(world.maildir_count("outbox/new"), 1);
}

#[test]
fn ct_wal_03_crash_after_execute_before_record_sends_one_mail() {
    let world = World::new();
    let action = crash_then_recover(&world, mail_send("bob@example.com", "s", "b"), Stage::Record, &[]);
    assert_eq!(action, RecoveryAction::ProbedDone);
    assert_eq!(world.maildir_count("outbox/new"), 1, "one message, not two");
}

#[test]
fn ct_wal_03_crash_after_execute_before_record_writes_the_file_once() {
    let world = World::new();
    world.put("f.txt", "old");
    let action = crash_then_recover(&world, fs_write("f.txt", "new"), Stage::Record, &[]);
    assert_eq!(action, RecoveryAction::ProbedDone);
    assert_eq!(world.file("f.txt").as_deref(), Some("new"));
}

#[test]
fn ct_wal_04_unknown_outcome_is_never_repeated() {
    let server = Server::start();
    let world = World::new();
    let http: Arc<dyn maos_commit::Effector> = http_effector();
    let action = crash_then_recover(&world, post(&server.url("/post")), Stage::Record, &[http]);
    assert!(matches!(action, RecoveryAction::RolledBack(Rollback::NotPossible { .. })), "{action:?}");
    assert_eq!(server.posts.lock().unwrap().len(), 1, "the POST was not repeated");
}

#[test]
fn interrupted_observations_are_closed_not_repeated() {
    let world = World::new();
    world.put("r.txt", "x");
    let action = crash_then_recover(&world, fs_read("r.txt"), Stage::Execute, &[]);
    assert_eq!(action, RecoveryAction::ObservationAbandoned);
}

#[test]
fn completed_intents_are_left_alone() {
    let world = World::new();
    {
        let layer = world.layer();
        run(&layer, fs_write("done.txt", "1"), T0).unwrap();
        let _ = run(&layer, fs_delete("missing.txt"), T0).unwrap_err();
    }
    let layer = world.layer();
    let report = layer.recover(T0).unwrap();
    assert!(report.recovered.is_empty());
    assert_eq!(report.already_terminal, 2);
}

/// Measures crash recovery of many logged-but-unstarted intents (spec target:
/// 10,000 in ≤ 30 s). Not a pass/fail timing test: run it by hand,
/// `cargo test --release -p maos-commit --test commit recovery_time -- --ignored --nocapture`
/// (`MAOS_RECOVERY_INTENTS` sets the count).
#[test]
#[ignore = "a measurement, run by hand"]
fn recovery_time_of_10k_unfinished_intents() {
    let n: usize = std::env::var("MAOS_RECOVERY_INTENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let world = World::new();
    {
        let layer = CommitLayer::open(world.wal(), world.effectors(&[]), world.config())
            .unwrap()
            .with_fault_injection(FaultAt::new(Stage::Occ, Fault::Halt));
        for i in 0..n {
            let mut intent = fs_write(&format!("r/{i}.txt"), "recovered");
            intent.id = maos_model::IntentId::new_v7(T0.0, (i as u128).to_be_bytes()[6..].try_into().unwrap());
            assert!(run(&layer, intent, T0).is_err());
        }
    }
    let layer = CommitLayer::open(world.wal(), world.effectors(&[]), world.config()).unwrap();
    let started = std::time::Instant::now();
    let report = layer.recover(T0).unwrap();
    let took = started.elapsed();
    assert_eq!(report.recovered.len(), n);
    assert_eq!(world.file("r/0.txt").as_deref(), Some("recovered"));
    eprintln!("recovered {n} unfinished intents (fs writes) in {took:?}: {:.0}/s", n as f64 / took.as_secs_f64());
}
