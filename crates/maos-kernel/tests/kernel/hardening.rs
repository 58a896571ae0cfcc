//! Integrity and exhaustion (issue #12) at the kernel: attacks that need a
//! failing disk or a manual clock, which the daemon tests cannot arrange.
//! Each test is named after the attack it pins.

use crate::common::*;
use maos_commit::effectors::mail::MailEffector;
use maos_commit::records::{CommitRecord, KIND_RELEASED, KIND_RELEASING};
use maos_kernel::{CODE_FREEZE, Kernel, Mode, Reply};
use maos_wal::{Clock as _, Wal};
use std::sync::Arc;
use std::sync::atomic::Ordering;

const HOUR_MS: u64 = 60 * 60 * 1000;

fn held(world: &World, sub: &str) -> usize {
    std::fs::read_dir(world.dir.path().join("mail").join(sub)).map_or(0, Iterator::count)
}

/// CT-DEG: the log failing after a message was held must not let the
/// message leave: housekeeping goes through the kernel, which refuses every
/// release outside a mode that permits effects, and logs a release before
/// the message leaves.
#[test]
fn ct_deg_attack_held_mail_is_not_released_when_the_log_fails() {
    let world = World::new();
    let token = token_for("writer", &["mail.send=*@example.com", "fs.write=/workspace/**"], 100, 0x51);
    let storage = maos_wal::sim::MemStorage::new();
    let outbox = Arc::new(MailEffector::new(world.dir.path().join("mail"), "writer@example.com").unwrap());
    lifetime(async {
        let config = maos_wal::WalConfig::with_storage(maos_model::Profile::Standard, Arc::new(storage.clone()))
            .clock(world.clock.clone());
        let layer = world.layer_on(Wal::open(config).unwrap().0, &[], None);
        let (kernel, _) = Kernel::start(world.config(layer)).await.unwrap();
        for to in ["bob@example.com", "carol@example.com"] {
            assert!(matches!(submit(&kernel, mail(to), &token).await, Reply::Done { .. }));
        }
        assert_eq!(held(&world, "outbox/new"), 2);
        world.clock.advance_ms(2 * HOUR_MS);
        // The disk fails: the next effect freezes the kernel.
        storage.faults().fail_writes.store(true, Ordering::SeqCst);
        let reply = submit(&kernel, fs_write("x.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some(CODE_FREEZE), "{reply:?}");
        // Frozen, and on the next tick shut down (CT-WAL-07): nothing leaves either way.
        let frozen_or_shut = |code: &str| [CODE_FREEZE, maos_kernel::ecs::CODE_ECS].contains(&code);
        let refused = kernel.release_mail(outbox.clone()).await.unwrap_err();
        assert!(frozen_or_shut(refused.code()), "{refused}");
        // Even with the disk back, the freeze is sticky: nothing leaves.
        storage.faults().fail_writes.store(false, Ordering::SeqCst);
        assert!(frozen_or_shut(kernel.release_mail(outbox.clone()).await.unwrap_err().code()));
        assert!(matches!(kernel.mode(), Mode::CommitFreeze { .. } | Mode::Emergency { .. }));
    });
    assert_eq!(held(&world, "outbox/new"), 2, "both messages are still held");
    assert_eq!(held(&world, "sent/new"), 0);
}

/// Holds one message to bob on a kernel over `storage`, past its hold period.
fn one_held_message(world: &World, storage: &maos_wal::sim::MemStorage) -> Arc<maos_commit::CommitLayer> {
    let token = token_for("writer", &["mail.send=*@example.com"], 100, 0x52);
    let layer = lifetime(async {
        let config = maos_wal::WalConfig::with_storage(maos_model::Profile::Standard, Arc::new(storage.clone()))
            .clock(world.clock.clone());
        let layer = world.layer_on(Wal::open(config).unwrap().0, &[], None);
        let (kernel, _) = Kernel::start(world.config(layer.clone())).await.unwrap();
        assert!(matches!(submit(&kernel, mail("bob@example.com"), &token).await, Reply::Done { .. }));
        layer
    });
    world.clock.advance_ms(2 * HOUR_MS);
    layer
}

/// A release whose record cannot be logged does not happen; one that is
/// logged is logged before it leaves (0x0206 precedes 0x0205).
#[test]
fn ct_deg_attack_a_release_the_log_refuses_leaves_the_message_held() {
    let world = World::new();
    let storage = maos_wal::sim::MemStorage::new();
    let layer = one_held_message(&world, &storage);
    let mail = MailEffector::new(world.dir.path().join("mail"), "writer@example.com").unwrap();
    storage.faults().fail_writes.store(true, Ordering::SeqCst);
    let refused = layer.release_mail(&mail, world.clock.now(), "normal").unwrap_err();
    assert_eq!(refused.code(), "RELEASE-WAL", "{refused}");
    assert_eq!(held(&world, "outbox/new"), 1, "not released without its record");
    assert_eq!(held(&world, "sent/new"), 0);

    let world = World::new();
    let storage = maos_wal::sim::MemStorage::new();
    let layer = one_held_message(&world, &storage);
    let mail = MailEffector::new(world.dir.path().join("mail"), "writer@example.com").unwrap();
    assert_eq!(layer.release_mail(&mail, world.clock.now(), "normal").unwrap().len(), 1);
    assert_eq!(held(&world, "sent/new"), 1);
    let reader = layer.wal().reader();
    let kinds: Vec<_> = reader
        .records()
        .unwrap()
        .filter_map(Result::ok)
        .filter(|r| r.kind == KIND_RELEASING || r.kind == KIND_RELEASED)
        .inspect(|r| assert!(matches!(CommitRecord::decode(r.kind, &r.payload), Some(Ok(_)))))
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, vec![KIND_RELEASING, KIND_RELEASED], "logged before it left, outcome after");
}

/// An agent repeating denied requests in a loop (28,635 denies in 20 s grew
/// the log by 293 MB): every deny is answered with its code, but the log holds
/// the first of each (action, code) in full and one `kernel.denies` record
/// counting the rest of the window; a second agent is still served, and replay
/// is clean (the counted denies changed no state). Scope probes are danger
/// signals (issue #14), logged in full until the agent reaches stage 3 (30
/// probes of weight 2 reach the threshold of 60); from then on they are counted
/// like any repeated deny.
#[test]
fn attack_repeated_denies_are_counted_not_logged_one_by_one() {
    use maos_kernel::records::KernelRecord;
    let world = World::new();
    let greedy = token_for("writer", &["fs.write=/workspace/**"], 100, 0x61);
    let polite = token_for("polite", &["fs.read=/workspace/**"], 100, 0x62);
    lifetime(async {
        let (kernel, _) = start(&world).await;
        for _ in 0..300 {
            let reply = submit(&kernel, mail("attacker@evil.example"), &greedy).await;
            assert_eq!(reply.code(), Some("DSC-1-SCOPE"), "{reply:?}");
        }
        // Refusals before the DSC (a malformed recipient) are counted the same way.
        for _ in 0..50 {
            let reply = submit(&kernel, mail("not an address"), &greedy).await;
            assert!(reply.code().is_some_and(|c| c.starts_with("INTENT-")), "{reply:?}");
        }
        // The burst of signals started a security fever (ring-3 effects wait
        // for a human): the second agent's read is served at once.
        let mut served = fs_read("polite.txt");
        served.agent = maos_model::AgentId::new("polite").unwrap();
        let reply = submit(&kernel, served, &polite).await;
        // Run (the file is not there: the effector says so), not refused.
        assert!(matches!(reply, Reply::Done { .. } | Reply::Failed { .. }), "{reply:?}");
        // The window closes: the next deny is logged in full again.
        world.clock.advance_ms(maos_kernel::DENY_WINDOW_MS);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let reply = submit(&kernel, mail("attacker@evil.example"), &greedy).await;
        assert_eq!(reply.code(), Some("DSC-1-SCOPE"));
        assert_eq!(kernel.close_deny_windows().await.unwrap(), 0, "the ended windows were logged by the tick");
    });
    let records = kernel_records(&world);
    let full = records
        .iter()
        .filter(|r| match r {
            KernelRecord::Decision(d) => d.intent.agent.as_str() == "writer" && d.deny_code.is_some(),
            KernelRecord::Refused(r) => r.agent.as_str() == "writer",
            _ => false,
        })
        .count();
    let signals = (maos_dsc::immune::thresholds(maos_model::Profile::Standard)[2]
        / maos_dsc::immune::weight(maos_model::DenyCode::Scope)) as usize;
    assert_eq!(signals, 30);
    assert_eq!(full, signals + 2, "the signalling scope denies, the first refusal and the first of the next window");
    let mut counted: Vec<(String, u64)> = records
        .iter()
        .filter_map(|r| match r {
            KernelRecord::Denies(d) => Some((d.code.clone(), d.count)),
            _ => None,
        })
        .collect();
    counted.sort();
    assert_eq!(counted.len(), 2, "{counted:?}");
    assert_eq!(counted.iter().map(|(_, n)| n).sum::<u64>(), 300 - 30 + 49, "{counted:?}");
    assert!(counted.iter().any(|(c, n)| c == "DSC-1-SCOPE" && *n == 300 - 30));
    let report = maos_kernel::replay(&world.wal_reader(), dsc(), &keys()).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// The log with small segments and a checkpoint signer, so retention can cut.
fn cuttable(world: &World) -> maos_wal::WalConfig {
    let key = Arc::new(maos_crypto::SigningKey::from_seeds(&[9; 64]).unwrap());
    world.wal_config().segment_bytes_target(4096).signer(key, Arc::new(maos_wal::StateDigest::default))
}

async fn start_cuttable(world: &World) -> (maos_kernel::KernelHandle, maos_kernel::StartReport) {
    let layer = world.layer_on(Wal::open(cuttable(world)).unwrap().0, &[], None);
    Kernel::start(world.config(layer)).await.unwrap()
}

/// Retention breaking the fold: budgets spent and tokens revoked
/// in segments that retention later cuts stay spent and revoked, because the
/// cut is preceded by a state snapshot that the next start folds from; the
/// cut log still replays clean.
#[test]
fn attack_retention_cannot_refill_a_budget_or_lift_a_revocation() {
    use maos_token::{TokenEvent, TokenRevoked};
    let world = World::new();
    let spender = token(2);
    let other = token_for("other", &["fs.write=/workspace/**"], 10, 2);
    let TokenEvent::Issued(other_issued) = issued(&other) else { unreachable!() };
    let other_id = other_issued.id;
    lifetime(async {
        let (kernel, _) = start_cuttable(&world).await;
        for n in 0..2 {
            let reply = submit(&kernel, fs_write(&format!("b{n}.txt"), "x"), &spender).await;
            assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        }
        let reply = submit(&kernel, fs_write("b2.txt", "x"), &spender).await;
        assert!(reply.code().unwrap().starts_with("DSC-3"), "{reply:?}");
        logged(&kernel, &other).await;
        let revoke =
            TokenRevoked { root: other_id, ids: vec![other_id], epoch: 1, at_ms: NOW.0, reason: "test".into() };
        kernel.token_event(TokenEvent::Revoked(revoke)).await.unwrap();
    });
    // Thirty-one days on by the log's clock (the tokens' clock stays, so they
    // have not expired), retention cuts every segment but the active one.
    {
        let (wal, _) = Wal::open(cuttable(&world)).unwrap();
        wal.checkpoint(maos_wal::StateDigest::default()).unwrap();
        drop(wal);
        let later = Arc::new(maos_wal::ManualClock::new(world.clock.now()));
        later.advance_ms(31 * 24 * HOUR_MS);
        let (wal, _) = Wal::open(cuttable(&world).clock(later)).unwrap();
        let reader = wal.reader();
        let report = wal
            .apply_retention(|_| {
                let (tokens, kernel) = maos_kernel::snapshot_sections(&reader, dsc()).map_err(|e| e.to_string())?;
                serde_json::to_vec(&serde_json::json!({ "tokens": tokens, "kernel": kernel }))
                    .map_err(|e| e.to_string())
            })
            .unwrap();
        let (_, last) = report.deleted.expect("retention cut segments");
        let first = world.wal_reader().records().unwrap().next().unwrap().unwrap().lsn;
        assert_eq!(first.0, last.0 + 1);
        let decisions_left = kernel_records(&world)
            .iter()
            .filter(|r| matches!(r, maos_kernel::records::KernelRecord::Decision(_)))
            .count();
        assert!(decisions_left < 3, "decisions were cut: {decisions_left} left");
    }
    lifetime(async {
        let (kernel, _) = start_cuttable(&world).await;
        let reply = submit(&kernel, fs_write("b3.txt", "x"), &spender).await;
        assert!(reply.code().unwrap().starts_with("DSC-3"), "still spent after the cut: {reply:?}");
        let reply = kernel.submit_and_wait(fs_write("o.txt", "x"), &other).await.unwrap();
        assert!(!matches!(reply, Reply::Done { .. }), "still revoked after the cut: {reply:?}");
        assert!(reply.code().unwrap().contains("REVOKED"), "{reply:?}");
    });
    assert_eq!((world.file("b2.txt"), world.file("b3.txt"), world.file("o.txt")), (None, None, None));
    let report = maos_kernel::replay(&world.wal_reader(), dsc(), &keys()).unwrap();
    assert!(report.is_clean(), "{report:?}");
}
