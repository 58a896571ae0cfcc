//! A seeded simulation of the pipeline under a random fault schedule: failures
//! and crashes ("halts") at every stage, restarts with recovery. Invariants:
//! the files always equal a model that applies exactly the commits that
//! completed (none twice, none lost), no lock is left held, every effect has a
//! prior intent record, and no intent is left unfinished after recovery.

use crate::common::*;
use maos_commit::records::CommitRecord;
use maos_commit::{CommitLayer, Fault, Stage};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy)]
enum Injected {
    None,
    Fail(Stage),
    Halt(Stage),
}

fn injected() -> impl Strategy<Value = Injected> {
    let stage = prop::sample::select(Stage::ALL.to_vec());
    prop_oneof![
        3 => Just(Injected::None),
        2 => stage.clone().prop_map(Injected::Fail),
        2 => stage.prop_map(Injected::Halt),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prop_faults_and_crashes_never_lose_or_repeat_an_effect(
        ops in prop::collection::vec((0..3usize, 0..4usize, injected()), 1..10),
    ) {
        let world = World::new();
        let mut model: BTreeMap<String, String> = BTreeMap::new();
        let mut layer = Some(world.layer());
        for (step, (file, content, fault)) in ops.into_iter().enumerate() {
            let path = format!("f{file}.txt");
            let text = format!("content {content} at step {step}");
            let w = fs_write(&path, &text);
            let current = layer.take().unwrap();
            match fault {
                Injected::None => {
                    run(&current, w, T0).unwrap();
                    model.insert(path, text);
                    layer = Some(current);
                }
                Injected::Fail(stage) => {
                    let l = current.with_fault_injection(FaultAt::new(stage, Fault::Fail));
                    let err = run(&l, w, T0).unwrap_err();
                    prop_assert_eq!(err.stage, stage);
                    prop_assert_eq!(l.locks().held(), 0);
                    layer = Some(CommitLayer::open(l.wal().clone(), world.effectors(&[]), world.config()).unwrap());
                }
                Injected::Halt(stage) => {
                    let l = current.with_fault_injection(FaultAt::new(stage, Fault::Halt));
                    prop_assert!(run(&l, w, T0).is_err());
                    drop(l); // crash
                    let restarted = world.layer();
                    let report = restarted.recover(T0).unwrap();
                    if stage == Stage::WalRecord {
                        prop_assert!(report.recovered.is_empty(), "nothing was logged");
                    } else {
                        // Logged before the crash: recovery finishes it exactly once.
                        model.insert(path, text);
                    }
                    prop_assert!(restarted.recover(T0).unwrap().recovered.is_empty());
                    layer = Some(restarted);
                }
            }
            for f in 0..3 {
                let name = format!("f{f}.txt");
                prop_assert_eq!(world.file(&name), model.get(&name).cloned(), "after step {} ({:?})", step, fault);
            }
        }
        // Every effect (result) follows its intent record; nothing is left open.
        let layer = layer.unwrap();
        let mut logged = BTreeSet::new();
        let mut open = BTreeSet::new();
        for record in records(layer.wal()) {
            match &record {
                CommitRecord::Intent(r) => {
                    logged.insert(r.intent.id);
                    open.insert(r.intent.id);
                }
                CommitRecord::Executing(r) => prop_assert!(logged.contains(&r.intent)),
                CommitRecord::Result(r) => {
                    prop_assert!(logged.contains(&r.intent));
                    open.remove(&r.intent);
                }
                CommitRecord::Failed(r) => {
                    open.remove(&r.intent);
                }
                CommitRecord::Undone(_) | CommitRecord::Released(_) | CommitRecord::Releasing(_) => {}
            }
        }
        prop_assert!(open.is_empty(), "unfinished intents: {:?}", open);
    }
}
