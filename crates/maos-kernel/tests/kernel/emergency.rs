//! Emergency Controlled Shutdown (spec §38.6): the halt refuses everything
//! at once, the forensic report and the log keep what happened, and the next
//! boot goes ahead only as the abuse limits allow, observed.

use crate::common::*;
use maos_crypto::SigningKey;
use maos_kernel::ecs::{CODE_ECS, CODE_ECS_ACK_REQUIRED, EcsAck, FailureClass, OBSERVATION_MS, ack_message};
use maos_kernel::posture::{CanonicalState, DegradedMode};
use maos_kernel::records::{EcsEvent, KernelRecord};
use maos_kernel::{CODE_FREEZE, Kernel, KernelConfig, SUBMIT_QUEUE_DEFAULT, replay};
use maos_wal::Wal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn forensics(world: &World) -> PathBuf {
    world.dir.path().join("forensics")
}

fn with_forensics(world: &World, mut config: KernelConfig) -> KernelConfig {
    config.forensics_dir = Some(forensics(world));
    config
}

fn ecs_events(world: &World) -> Vec<EcsEvent> {
    kernel_records(world)
        .into_iter()
        .filter_map(|r| match r {
            KernelRecord::Ecs(e) => Some(e.event),
            _ => None,
        })
        .collect()
}

/// Signs `ack.json` for shutdown `id` with `key`, as `maos ecs acknowledge` does.
fn acknowledge(world: &World, id: &str, key: &SigningKey) {
    use base64::Engine as _;
    let dir = forensics(world).join(id);
    let report = std::fs::read(dir.join("report.json")).unwrap_or_default();
    let sha3 = maos_crypto::sha3_256(&report).0;
    let signature = key.sign(maos_crypto::SignatureDomain::EmergencyAcknowledgement, &ack_message(id, &sha3)).unwrap();
    let ack = EcsAck {
        id: id.to_owned(),
        report_sha3: maos_kernel::records::hex32(&sha3),
        key_id: key.verifying_key().key_id().to_hex(),
        signature: base64::engine::general_purpose::STANDARD.encode(signature.as_bytes()),
        at_ms: NOW.0,
    };
    std::fs::write(dir.join("ack.json"), serde_json::to_vec(&ack).unwrap()).unwrap();
}

fn boot_refusal(world: &World) -> String {
    lifetime(async {
        match Kernel::boot(with_forensics(world, world.config(world.layer()))) {
            Ok(_) => panic!("the boot went ahead"),
            Err(e) => {
                assert_eq!(e.code(), CODE_ECS_ACK_REQUIRED, "{e}");
                e.to_string()
            }
        }
    })
}

#[test]
fn ct_deg_17_a_manual_shutdown_halts_preserves_and_holds_the_next_boot() {
    let world = World::new();
    let token = token(100);
    world.put("r.txt", "read me");
    let id = lifetime(async {
        let (kernel, _) = Kernel::start(with_forensics(&world, world.config(world.layer()))).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        let report = kernel.emergency_shutdown("drill: the operator pulls the cord").await.unwrap();
        // Phase 1: SAFE-HOLD at once, every request refused, observations too.
        assert_eq!(kernel.state(), CanonicalState::SafeHold);
        let status = kernel.status();
        assert!(status.posture.modes.contains(&DegradedMode::MinimalSafeState), "{:?}", status.posture);
        assert!(status.posture.human_ack);
        for intent in [fs_read("r.txt"), fs_write("w.txt", "x")] {
            let reply = submit(&kernel, intent, &token).await;
            assert_eq!(reply.code(), Some(CODE_ECS), "{reply:?}");
        }
        let again = kernel.emergency_shutdown("twice").await.unwrap_err();
        assert_eq!(again.code(), CODE_ECS, "one shutdown at a time: {again}");
        // Nothing widens in SAFE-HOLD: no new token, no release, no end of fever;
        // what only restricts (a revocation) still runs.
        let fresh = token_for("late", &["fs.read=/workspace/**"], 10, 0x7e);
        assert_eq!(kernel.token_event(issued(&fresh)).await.unwrap_err().code(), CODE_ECS);
        let agent = maos_model::AgentId::new("late").unwrap();
        assert_eq!(kernel.release(agent.clone(), "no").await.unwrap_err().code(), CODE_ECS);
        assert_eq!(kernel.end_fever("no").await.unwrap_err().code(), CODE_ECS);
        assert!(kernel.demote_agent(agent, "restricting is fine").await.is_ok());
        // Phase 3: a manual shutdown has no known cause, so no automated repair.
        assert_eq!(
            (report.class, report.human_review, report.repaired.as_deref()),
            (FailureClass::Unknown, true, None)
        );
        assert_eq!(status.ecs.active.as_ref().map(|r| &r.id), Some(&report.id));
        assert!(report.logged_lsn.is_some(), "the log could take it");
        report.id
    });
    assert_eq!(world.file("w.txt"), None);
    // Phase 2: the report on disk, the record in the log, the log replays clean.
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(forensics(&world).join(&id).join("report.json")).unwrap()).unwrap();
    assert_eq!((on_disk["id"].as_str(), on_disk["class"].as_str()), (Some(id.as_str()), Some("unknown")));
    assert_eq!(on_disk["cause"]["reason"], "drill: the operator pulls the cord");
    let events = ecs_events(&world);
    assert!(matches!(&events[..], [EcsEvent::Halted { id: i, class: FailureClass::Unknown, .. }] if *i == id));
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().divergences.is_empty());
    // Phase 5: no boot without the commander; an impostor's signature is none.
    assert!(boot_refusal(&world).contains(&format!("maos ecs acknowledge {id}")));
    acknowledge(&world, &id, impostor());
    boot_refusal(&world);
    acknowledge(&world, &id, commander());
    lifetime(async {
        let (kernel, _) = Kernel::start(with_forensics(&world, world.config(world.layer()))).await.unwrap();
        let status = kernel.status();
        assert_eq!(status.ecs.observing.as_deref(), Some(id.as_str()));
        assert_eq!(status.ecs.observation_until_ms, Some(NOW.0 + OBSERVATION_MS));
        assert_eq!(status.queue_capacity, maos_kernel::ecs::conservative_queue(SUBMIT_QUEUE_DEFAULT));
        wait_state(&kernel, CanonicalState::Yellow).await;
        assert!(matches!(submit(&kernel, fs_read("r.txt"), &token).await, maos_kernel::Reply::Done { .. }));
        // Conservative mode (breaker cooldowns doubled) lasts the observation window.
        assert!(kernel.conservative());
        world.clock.advance_ms(OBSERVATION_MS);
        until(&kernel, "conservative mode over", |k| !k.conservative()).await;
    });
    let events = ecs_events(&world);
    assert!(matches!(events.get(1), Some(EcsEvent::Acknowledged { id: i, .. }) if *i == id), "{events:?}");
    assert!(matches!(events.get(2), Some(EcsEvent::Restarted { id: i, .. }) if *i == id), "{events:?}");
    // Only the first boot after it is observed; the acknowledgement is logged once.
    lifetime(async {
        let (kernel, _) = Kernel::start(with_forensics(&world, world.config(world.layer()))).await.unwrap();
        let status = kernel.status();
        assert_eq!((status.ecs.observing, status.queue_capacity), (None, SUBMIT_QUEUE_DEFAULT));
    });
    assert_eq!(ecs_events(&world).len(), 3);
}

fn forge(world: &World, at_ms: u64) -> String {
    let forged = format!("ecs-{at_ms}");
    let dir = forensics(world).join(&forged);
    std::fs::create_dir_all(&dir).unwrap();
    let report = serde_json::json!({ "id": forged, "at_ms": at_ms,
        "cause": { "trigger": "wal_failed", "why": "forged" }, "class": "resource_exhaustion",
        "counters": { "in_24h": 1, "in_7d": 1 } });
    std::fs::write(dir.join("report.json"), report.to_string()).unwrap();
    forged
}

/// A forensic directory the log does not know claims a repairable class:
/// its report is not signed, so it counts as unknown and holds the boot;
/// and three hundred newer ones (acknowledged, even) cannot push a real
/// unacknowledged shutdown out of the gate.
#[test]
fn ct_deg_18_forged_forensic_directories_do_not_clear_the_gate() {
    let world = World::new();
    std::fs::create_dir_all(forensics(&world)).unwrap();
    let forged = forge(&world, NOW.0 - 1_000);
    assert!(boot_refusal(&world).contains(&forged));
    acknowledge(&world, &forged, commander());
    let real = lifetime(async {
        let (kernel, _) = Kernel::start(with_forensics(&world, world.config(world.layer()))).await.unwrap();
        kernel.emergency_shutdown("real").await.unwrap().id
    });
    for n in 1..=300u64 {
        let newer = forge(&world, NOW.0 + 10_000 + n);
        acknowledge(&world, &newer, commander());
    }
    assert!(boot_refusal(&world).contains(&real));
    // A report that is not a regular file reads as none, never blocks or fills memory.
    let odd = forensics(&world).join(&real).join("report.json");
    std::fs::remove_file(&odd).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &odd).unwrap();
    assert!(boot_refusal(&world).contains(&real));
}

#[test]
fn ct_deg_17_an_edited_report_loses_its_acknowledgement() {
    let world = World::new();
    let id = lifetime(async {
        let (kernel, _) = Kernel::start(with_forensics(&world, world.config(world.layer()))).await.unwrap();
        kernel.emergency_shutdown("drill").await.unwrap().id
    });
    acknowledge(&world, &id, commander());
    let path = forensics(&world).join(&id).join("report.json");
    let edited = std::fs::read_to_string(&path).unwrap().replace("drill", "nothing to see");
    std::fs::write(&path, edited).unwrap();
    boot_refusal(&world);
}

#[test]
fn ct_wal_07_every_copy_of_the_log_failing_freezes_then_shuts_down() {
    let world = World::new();
    let token = token(100);
    let storage = maos_wal::sim::MemStorage::new();
    let open = |world: &World| {
        let config = maos_wal::WalConfig::with_storage(maos_model::Profile::Standard, Arc::new(storage.clone()))
            .clock(world.clock.clone());
        with_forensics(world, world.config(world.layer_on(Wal::open(config).unwrap().0, &[], None)))
    };
    let id = lifetime(async {
        let (kernel, _) = Kernel::start(open(&world)).await.unwrap();
        assert!(matches!(submit(&kernel, fs_write("before.txt", "x"), &token).await, maos_kernel::Reply::Done { .. }));
        storage.faults().fail_syncs.store(true, Ordering::SeqCst);
        let reply = submit(&kernel, fs_write("after.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some(CODE_FREEZE), "{reply:?}");
        // The freeze, then the shutdown on the sequencer's next tick.
        wait_state(&kernel, CanonicalState::SafeHold).await;
        let reply = submit(&kernel, fs_read("before.txt"), &token).await;
        assert_eq!(reply.code(), Some(CODE_ECS), "{reply:?}");
        until(&kernel, "the shutdown's report", |k| k.status().ecs.active.is_some()).await;
        let report = kernel.status().ecs.active.expect("the shutdown's report");
        assert_eq!(report.class, FailureClass::DataCorruption);
        assert_eq!(report.logged_lsn, None, "the log could not take it: the forensic report is the record");
        report.id
    });
    assert_eq!(world.file("after.txt"), None, "no effect after the freeze");
    storage.faults().fail_syncs.store(false, Ordering::SeqCst);
    // Only the forensic directory knows of it, and that is enough to hold the boot.
    let held = lifetime(async {
        match Kernel::boot(open(&world)) {
            Ok(_) => panic!("the boot went ahead"),
            Err(e) => e,
        }
    });
    assert_eq!(held.code(), CODE_ECS_ACK_REQUIRED, "{held}");
    acknowledge(&world, &id, commander());
    lifetime(async {
        let (kernel, _) = Kernel::start(open(&world)).await.unwrap();
        assert_eq!(kernel.status().ecs.observing.as_deref(), Some(id.as_str()));
    });
}

/// Rule 3 while running (spec §38.6: "a broken audit chain"): a byte of a
/// logged record changed on disk behind the kernel's back is found by the
/// audit sweep; Rule 3 then denies everything and the node shuts down in an
/// emergency (data corruption: the next boot needs the commander).
#[test]
fn a_record_changed_on_disk_while_running_is_an_emergency_shutdown() {
    let world = World::new();
    let token = token(100);
    lifetime(async {
        let mut config = with_forensics(&world, world.config(world.layer()));
        config.audit_sweep_every = std::time::Duration::from_millis(100);
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        for n in 0..6 {
            let reply = submit(&kernel, fs_write(&format!("f{n}.txt"), "x"), &token).await;
            assert!(matches!(reply, maos_kernel::Reply::Done { .. }), "{reply:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(kernel.state(), CanonicalState::Yellow, "an intact log passes the sweep");
        // A byte in the middle of the log, later groups after it: damage, not a torn tail.
        let mut segments: Vec<PathBuf> = std::fs::read_dir(world.dir.path().join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        let path = segments.last().unwrap().clone();
        let bytes = std::fs::read(&path).unwrap();
        let offsets: Vec<usize> = maos_wal::scan_segment(&bytes).records.iter().map(|(off, _)| *off).collect();
        let off = offsets[offsets.len() / 2] + 50;
        // One byte, in place: the writer's appends after it are left alone.
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.seek(SeekFrom::Start(off as u64)).unwrap();
            file.write_all(&[bytes[off] ^ 0x01]).unwrap();
            file.sync_all().unwrap();
        }
        wait_state(&kernel, CanonicalState::SafeHold).await;
        until(&kernel, "the shutdown's report", |k| k.status().ecs.active.is_some()).await;
        let report = kernel.status().ecs.active.unwrap();
        let cause = format!("{:?}", report.cause);
        assert!(cause.starts_with("AuditChainBroken") && cause.contains("crc mismatch"), "{report:?}");
        assert_eq!(report.class, FailureClass::DataCorruption);
        assert!(
            kernel.status().posture.why.iter().any(|w| w.contains("audit chain is broken")),
            "{:?}",
            kernel.status().posture
        );
        let refused = submit(&kernel, fs_write("after.txt", "x"), &token).await;
        assert_eq!(refused.code(), Some(CODE_ECS), "{refused:?}");
    });
    assert_eq!(world.file("after.txt"), None);
    let reports = std::fs::read_dir(forensics(&world)).unwrap().count();
    assert_eq!(reports, 1, "the forensic report is kept");
    // And the next boot's log recovery refuses the damaged log itself.
    let reopened = Wal::open(world.wal_config());
    assert!(reopened.is_err(), "a damaged log does not open");
}
