//! Resilience (spec §15.5, §16, §38): the watchdog's observations become the
//! health report the Mandatory Rules read, and the canonical state; each
//! fault is injected, its deny code and logged transition asserted, and so is
//! the recovery.

use crate::common::*;
use maos_kernel::posture::{CanonicalState, DegradedMode};
use maos_kernel::records::{HealthRecord, KernelRecord, StateRecord};
use maos_kernel::{CODE_BOOT_LOCKDOWN, Kernel, Reply, replay};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn states(world: &World) -> Vec<StateRecord> {
    kernel_records(world)
        .into_iter()
        .filter_map(|r| match r {
            KernelRecord::State(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn health(world: &World) -> Vec<HealthRecord> {
    kernel_records(world)
        .into_iter()
        .filter_map(|r| match r {
            KernelRecord::Health(h) => Some(h),
            _ => None,
        })
        .collect()
}

fn replays_clean(world: &World) {
    let report = replay(&world.wal_reader(), dsc(), &keys()).unwrap();
    assert!(report.divergences.is_empty(), "{:?}", report.divergences);
}

#[test]
fn ct_deg_13_boot_lockdown_refuses_everything_until_three_dsc_heartbeats() {
    let world = World::new();
    let token = token(100);
    world.put("r.txt", "read me");
    lifetime(async {
        let config = world.config(world.layer());
        let faults = config.faults.clone();
        faults.stop_dsc_heartbeat.store(true, Ordering::SeqCst);
        let (kernel, recovering) = Kernel::boot(config).unwrap();
        assert_eq!(kernel.state(), CanonicalState::PreOp);
        let reply = submit(&kernel, fs_read("r.txt"), &token).await;
        assert_eq!(reply.code(), Some(CODE_BOOT_LOCKDOWN), "even an observation waits: {reply:?}");
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some(CODE_BOOT_LOCKDOWN), "{reply:?}");
        assert!(!kernel.lockdown_lifted(Duration::from_millis(300)).await);
        faults.stop_dsc_heartbeat.store(false, Ordering::SeqCst);
        assert!(kernel.lockdown_lifted(Duration::from_secs(10)).await);
        recovering.finish().await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        let reply = submit(&kernel, fs_read("r.txt"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        let status = kernel.status();
        assert_eq!(status.posture.modes, vec![DegradedMode::SecurityReduced]);
        assert!(status.components.iter().all(|c| !c.unresponsive), "{:?}", status.components);
    });
    let states = states(&world);
    assert_eq!(states[0].previous, None);
    assert_eq!(states[0].new, CanonicalState::PreOp);
    let lifted = states.iter().find(|s| s.trigger.contains("boot lockdown lifted")).expect("lockdown lift logged");
    assert_ne!(lifted.new, CanonicalState::PreOp);
    assert_eq!(
        states.last().map(|s| s.new),
        Some(CanonicalState::Yellow),
        "{:?}",
        states.iter().map(|s| (s.new, &s.trigger)).collect::<Vec<_>>()
    );
    replays_clean(&world);
}

#[test]
fn ct_deg_14_a_stalled_sequencer_freezes_commits_until_it_pets_again() {
    let world = World::new();
    let token = token(100);
    world.put("obs.txt", "still readable");
    lifetime(async {
        let config = world.config(world.layer());
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        faults.stop_heartbeat.store(true, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Orange).await;
        let status = kernel.status();
        assert!(status.posture.modes.contains(&DegradedMode::CommitFreeze));
        assert!(!status.posture.human_ack, "a stalled component recovers on its own");
        // Rule 10 now denies effects (decided and logged); observations go on.
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some("DSC-5-MR-10"), "{reply:?}");
        let reply = submit(&kernel, fs_read("obs.txt"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        faults.stop_heartbeat.store(false, Ordering::SeqCst);
        // Any request pets again; the watchdog sees it within a tick.
        let _ = submit(&kernel, fs_read("obs.txt"), &token).await;
        wait_state(&kernel, CanonicalState::Yellow).await;
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    });
    assert_eq!(world.file("w.txt").as_deref(), Some("x"));
    let states = states(&world);
    let orange = states.iter().find(|s| s.new == CanonicalState::Orange).expect("ORANGE logged");
    assert!(orange.trigger.contains("sequencer unresponsive"), "{}", orange.trigger);
    assert_eq!(orange.previous, Some(CanonicalState::Yellow));
    assert!(orange.modes.contains(&DegradedMode::CommitFreeze));
    let back = states.iter().rev().find(|s| s.previous == Some(CanonicalState::Orange)).expect("recovery logged");
    assert_eq!(back.new, CanonicalState::Yellow);
    let reports = health(&world);
    assert!(reports.iter().any(|h| !h.health.heartbeat_ok));
    assert!(reports.last().is_some_and(|h| h.health.heartbeat_ok));
    replays_clean(&world);
}

/// Stops, replays or forges the DSC's heartbeat; effects are denied by the
/// rule named, observations by it only when `all` is set, and the state is
/// `during`. Returns the world after `recover` (clearing the fault) ran.
fn dsc_fault(
    set: impl Fn(&maos_kernel::KernelFaults, bool),
    during: CanonicalState,
    code: &str,
    all: bool,
    recovers: bool,
) -> World {
    let world = World::new();
    let token = token(100);
    world.put("obs.txt", "x");
    lifetime(async {
        let config = world.config(world.layer());
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        set(&faults, true);
        wait_state(&kernel, during).await;
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some(code), "{reply:?}");
        let reply = submit(&kernel, fs_read("obs.txt"), &token).await;
        assert_eq!(reply.code(), if all { Some(code) } else { None }, "{reply:?}");
        set(&faults, false);
        if recovers {
            wait_state(&kernel, CanonicalState::Yellow).await;
            let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
            assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(kernel.state(), during, "sticky");
            assert!(kernel.status().posture.human_ack);
        }
    });
    assert_eq!(world.file("w.txt").is_some(), recovers);
    replays_clean(&world);
    world
}

#[test]
fn ct_deg_03_lost_dsc_heartbeats_freeze_commits_until_valid_ones_return() {
    let world = dsc_fault(
        |f, on| f.stop_dsc_heartbeat.store(on, Ordering::SeqCst),
        CanonicalState::Orange,
        "DSC-5-MR-10",
        false,
        true,
    );
    let orange = states(&world).into_iter().find(|s| s.new == CanonicalState::Orange).unwrap();
    assert!(orange.trigger.contains("dsc unresponsive"), "{}", orange.trigger);
}

#[test]
fn ct_deg_04_a_replayed_heartbeat_is_treated_as_missing() {
    dsc_fault(
        |f, on| f.replay_dsc_heartbeat.store(on, Ordering::SeqCst),
        CanonicalState::Orange,
        "DSC-5-MR-10",
        false,
        true,
    );
}

#[test]
fn ct_deg_05_a_heartbeat_under_another_configuration_is_red_and_rule_1_denies_all() {
    let world = dsc_fault(
        |f, on| f.forge_dsc_config_hash.store(on, Ordering::SeqCst),
        CanonicalState::Red,
        "DSC-5-MR-01",
        true,
        false,
    );
    let red = states(&world).into_iter().find(|s| s.new == CanonicalState::Red).unwrap();
    assert!(red.human_ack);
    assert!(red.trigger.contains("configuration hash"), "{}", red.trigger);
}

#[test]
fn ct_deg_02_a_wrong_known_answer_downs_the_voter_and_rule_6_denies_everything() {
    let world = dsc_fault(
        |f, on| f.wrong_dsc_answer.store(on, Ordering::SeqCst),
        CanonicalState::Orange,
        "DSC-5-MR-06",
        true,
        true,
    );
    let orange = states(&world).into_iter().find(|s| s.new == CanonicalState::Orange).unwrap();
    assert!(orange.why.iter().any(|w| w.contains("voter down")), "{:?}", orange.why);
}

#[test]
fn an_unwritable_rollback_zone_makes_rule_5_deny_effects_until_it_is_writable() {
    use std::os::unix::fs::PermissionsExt;
    let world = World::new();
    let token = token(100);
    world.put("obs.txt", "x");
    let zone = world.dir.path().join("rollback");
    lifetime(async {
        let (kernel, _) = start(&world).await;
        wait_state(&kernel, CanonicalState::Yellow).await;
        std::fs::set_permissions(&zone, std::fs::Permissions::from_mode(0o555)).unwrap();
        wait_state(&kernel, CanonicalState::Orange).await;
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some("DSC-5-MR-05"), "{reply:?}");
        let reply = submit(&kernel, fs_read("obs.txt"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        std::fs::set_permissions(&zone, std::fs::Permissions::from_mode(0o755)).unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    });
    replays_clean(&world);
}

/// A packet decided while healthy is not run by a grant while the DSC is
/// silent: the grant is refused with the rule's code and the packet stays open;
/// once valid heartbeats are back the same grant runs it.
#[test]
fn a_grant_runs_under_the_health_of_now_not_of_the_decision() {
    let world = World::new();
    let token = token(100);
    lifetime(async {
        let config = world.config(world.layer());
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        let intent = declassify("public.txt");
        let id = intent.id;
        let reply = submit(&kernel, intent, &token).await;
        assert!(matches!(reply, Reply::Pending { .. }), "{reply:?}");
        let signed = sign_grant(&kernel, id, commander()).await;
        faults.stop_dsc_heartbeat.store(true, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Orange).await;
        let err = kernel.approve(id, signed.clone()).await.unwrap_err();
        assert_eq!(err.code(), "DSC-5-MR-10", "{err}");
        assert_eq!(kernel.approvals().await.unwrap().len(), 1, "the packet stays open");
        assert_eq!(world.file("public.txt"), None);
        faults.stop_dsc_heartbeat.store(false, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Yellow).await;
        let reply = kernel.approve(id, signed).await.unwrap();
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    });
    replays_clean(&world);
}

/// A snapshot taken while the kernel is unhealthy carries the report: a fold
/// from it decides under what the live kernel used.
#[test]
fn a_snapshot_carries_an_unhealthy_report() {
    let config = dsc();
    let mut state = maos_dsc::DscState::new(config.clone());
    let sick = maos_dsc::KernelHealth { heartbeat_ok: false, ..maos_dsc::KernelHealth::healthy(config.hash()) };
    state.apply(&maos_dsc::DscState::report_health(sick)).unwrap();
    let restored = maos_dsc::DscState::restore(config.clone(), &state.snapshot()).unwrap();
    assert_eq!(*restored.health(), sick);
    let fresh = maos_dsc::DscState::new(config.clone());
    let json = serde_json::to_string(&fresh.snapshot()).unwrap();
    assert!(!json.contains("health"), "a healthy snapshot keeps its old form: {json}");
}

/// CT-DEG-24 (spec §25.2) with the disk reading drilled: at 90 % expired
/// rollback snapshots are purged; at 95 % only essential writes go on (Rule 5
/// denies effects, observations run, ORANGE); at 99 % nothing (Rule 8 denies
/// everything, RED, a human must act); below, the kernel recovers by itself.
#[test]
fn ct_deg_24_disk_thresholds_purge_then_freeze_effects_then_everything() {
    let world = World::new();
    let token = token(100);
    world.put("obs.txt", "x");
    let layer = world.layer();
    lifetime(async {
        let mut config = world.config(layer.clone());
        config.faults = std::sync::Arc::new(maos_kernel::KernelFaults::default());
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        let written = fs_write("old.txt", "x");
        let id = written.id;
        let reply = submit(&kernel, written, &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        assert!(layer.rollback_zone().entry(id).is_some(), "a snapshot was taken");
        faults.disk_used_pct.store(96, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Orange).await;
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some("DSC-5-MR-05"), "{reply:?}");
        let reply = submit(&kernel, fs_read("obs.txt"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");

        faults.disk_used_pct.store(99, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Red).await;
        assert!(kernel.status().posture.human_ack);
        assert_eq!(kernel.status().disk_used_pct, Some(99));
        let reply = submit(&kernel, fs_read("obs.txt"), &token).await;
        assert_eq!(reply.code(), Some("DSC-5-MR-08"), "{reply:?}");

        faults.disk_used_pct.store(50, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Yellow).await;
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");

        // Last (the token expires with it): the first snapshot's undo window (24 h)
        // passes; crossing 90 % the kernel purges it.
        world.clock.advance_ms(25 * 60 * 60 * 1000);
        faults.disk_used_pct.store(91, Ordering::SeqCst);
        for _ in 0..400 {
            if layer.rollback_zone().entry(id).is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(layer.rollback_zone().entry(id).is_none(), "the expired snapshot was purged");
        assert_eq!(kernel.state(), CanonicalState::Yellow, "90 % cleans up, refuses nothing");
    });
    let disk: Vec<String> = states(&world).into_iter().map(|s| s.trigger).filter(|t| t.contains("disk")).collect();
    assert!(disk.iter().any(|t| t.contains("disk 96 % used")), "{disk:?}");
    assert!(disk.iter().any(|t| t.contains("disk 99 % used")), "{disk:?}");
    replays_clean(&world);
}

/// A scripted evaluator for the seat's kernel tests (the HTTP one is tested
/// through the daemon): denies any request whose arguments say `forbidden`;
/// `mode` 0 answers, 1 is unreachable, 2 never answers, 3 answers garbage.
#[derive(Debug, Default)]
struct Scripted {
    mode: std::sync::atomic::AtomicU8,
    asked: std::sync::atomic::AtomicUsize,
}

impl maos_kernel::SemanticEvaluator for Scripted {
    fn evaluate(
        &self,
        request: maos_kernel::EvalRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<maos_kernel::EvalAnswer, maos_kernel::EvalError>> + Send>,
    > {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let mode = self.mode.load(Ordering::SeqCst);
        let args = serde_json::to_string(&request.intent.args).unwrap();
        let forbidden = args.contains("forbidden");
        let escalate = args.contains("ask a human");
        Box::pin(async move {
            match mode {
                1 => Err(maos_kernel::EvalError::Unreachable("the model provider is down".into())),
                2 => std::future::pending().await,
                3 => Err(maos_kernel::EvalError::Invalid("`Deny` is not a verdict".into())),
                _ if forbidden => Ok(serde_json::from_value(serde_json::json!({
                    "verdict": "deny", "reason": "the content says forbidden"
                }))
                .unwrap()),
                _ if escalate => Ok(serde_json::from_value(serde_json::json!({
                    "verdict": "escalate", "reason": "the content asks for a human"
                }))
                .unwrap()),
                _ => Ok(serde_json::from_value(serde_json::json!({ "verdict": "allow" })).unwrap()),
            }
        })
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

fn evaluations(world: &World) -> Vec<maos_kernel::records::EvaluationRecord> {
    kernel_records(world)
        .into_iter()
        .filter_map(|r| match r {
            KernelRecord::Evaluation(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// The seat can take an allowed effect away and never adds one: only effects
/// the DSC allowed are asked about (not observations, not denies); a deny is
/// `SSE-DENY` and nothing runs; every answer is logged; with an evaluator
/// answering the state is GREEN.
#[test]
fn the_evaluator_can_take_an_allowed_effect_away_never_add_one() {
    let world = World::new();
    let token = token(100);
    world.put("obs.txt", "x");
    let seat = std::sync::Arc::new(Scripted::default());
    lifetime(async {
        let mut config = world.config(world.layer());
        config.evaluator = Some(seat.clone());
        let (kernel, _) = Kernel::start(config).await.unwrap();
        // Not GREEN before it has answered once.
        wait_state(&kernel, CanonicalState::Yellow).await;
        assert_eq!(kernel.status().evaluator, Some(("scripted".to_owned(), false)));
        let reply = submit(&kernel, fs_write("ok.txt", "fine"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        wait_state(&kernel, CanonicalState::Green).await;
        assert_eq!(kernel.status().evaluator, Some(("scripted".to_owned(), true)));
        let reply = submit(&kernel, fs_write("no.txt", "forbidden text"), &token).await;
        assert_eq!(reply.code(), Some("SSE-DENY"), "{reply:?}");
        let asked = seat.asked.load(Ordering::SeqCst);
        let reply = submit(&kernel, fs_read("obs.txt"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        // Mail is outside this token's scope: the DSC denies it.
        let reply = submit(&kernel, mail("someone@example.com"), &token).await;
        assert!(reply.code().is_some_and(|c| c.starts_with("DSC-")), "{reply:?}");
        assert_eq!(seat.asked.load(Ordering::SeqCst), asked, "neither a read nor a DSC deny is asked about");
        // A malformed answer is never an allow, whatever the profile.
        seat.mode.store(3, Ordering::SeqCst);
        let reply = submit(&kernel, fs_write("garbage.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some("SSE-INVALID"), "{reply:?}");
    });
    assert_eq!(world.file("garbage.txt"), None);
    assert_eq!(world.file("ok.txt").as_deref(), Some("fine"));
    assert_eq!(world.file("no.txt"), None);
    let logged: Vec<(String, Option<String>)> = evaluations(&world).into_iter().map(|e| (e.outcome, e.code)).collect();
    assert_eq!(
        logged,
        vec![
            ("allow".to_owned(), None),
            ("deny".to_owned(), Some("SSE-DENY".to_owned())),
            ("invalid".to_owned(), Some("SSE-INVALID".to_owned()))
        ]
    );
    replays_clean(&world);
}

/// The seat's other answer (spec §15.5, issue #15 item 7): an escalation
/// sends an effect the DSC allowed to the commander as an approval packet
/// (HACF L2) instead of running it. Only the commander's signed grant runs
/// it (an impostor's is rejected), without asking the evaluator again; a
/// refusal leaves nothing. Logged, and the log replays clean.
#[test]
fn the_evaluator_can_send_an_allowed_effect_to_the_commander() {
    let world = World::new();
    let token = token(100);
    let seat = std::sync::Arc::new(Scripted::default());
    lifetime(async {
        let mut config = world.config(world.layer());
        config.evaluator = Some(seat.clone());
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        let reply = submit(&kernel, fs_write("esc.txt", "ask a human first"), &token).await;
        let Reply::Pending { approval, level, .. } = reply else { panic!("not pending: {reply:?}") };
        assert_eq!(level, maos_model::HacfLevel::L2);
        assert_eq!(world.file("esc.txt"), None, "nothing ran before the commander");
        let packets = kernel.approvals().await.unwrap();
        assert!(packets.iter().any(|p| p.id == approval && p.why.contains("semantic evaluator")), "{packets:?}");
        let asked = seat.asked.load(Ordering::SeqCst);
        let forged = sign_grant(&kernel, approval, impostor()).await;
        let err = kernel.approve(approval, forged).await.unwrap_err();
        assert!(matches!(err, maos_kernel::KernelError::ApprovalRejected { .. }), "{err:?}");
        // The commander's own signature over another decision, or below L2, does not do either.
        let genuine = sign_grant(&kernel, approval, commander()).await.grant;
        for grant in [
            maos_commit::ApprovalGrant { decision_hash: [9; 32], ..genuine },
            maos_commit::ApprovalGrant { level: maos_model::HacfLevel::L1, ..genuine },
        ] {
            let signature = commander().sign(maos_crypto::SignatureDomain::ApprovalDecision, &grant.message()).unwrap();
            let err = kernel.approve(approval, maos_commit::SignedApproval { grant, signature }).await.unwrap_err();
            assert!(matches!(err, maos_kernel::KernelError::ApprovalRejected { .. }), "{err:?}");
        }
        assert_eq!(world.file("esc.txt"), None);
        let grant = sign_grant(&kernel, approval, commander()).await;
        let reply = kernel.approve(approval, grant).await.unwrap();
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        assert_eq!(world.file("esc.txt").as_deref(), Some("ask a human first"));
        assert_eq!(seat.asked.load(Ordering::SeqCst), asked, "a grant is not asked about again");
        let reply = submit(&kernel, fs_write("esc2.txt", "ask a human again"), &token).await;
        let Reply::Pending { approval, .. } = reply else { panic!("not pending: {reply:?}") };
        kernel.deny(approval, "no").await.unwrap();
    });
    assert_eq!(world.file("esc2.txt"), None);
    let logged: Vec<(String, Option<String>)> = evaluations(&world).into_iter().map(|e| (e.outcome, e.code)).collect();
    assert_eq!(logged, vec![("escalate".to_owned(), Some("SSE-ESCALATE".to_owned())); 2]);
    replays_clean(&world);
}

/// CT-DEG-11 in Standard: an evaluator that errors or does not answer in time
/// is rule-based mode (YELLOW, degraded mode 3): the DSC's clearance stands
/// and the effect runs, logged `unavailable`; five failures open its breaker
/// and nobody waits on it (`circuit_open`); after the cooldown one probe to an
/// answering evaluator closes it and the state is GREEN again.
#[test]
fn ct_deg_11_an_evaluator_down_is_rule_based_in_standard_and_comes_back() {
    let world = World::new();
    let token = token(100);
    let seat = std::sync::Arc::new(Scripted::default());
    lifetime(async {
        let mut config = world.config(world.layer());
        config.evaluator = Some(seat.clone());
        config.evaluator_timeout = Duration::from_millis(200);
        let (kernel, _) = Kernel::start(config).await.unwrap();
        let reply = submit(&kernel, fs_write("first.txt", "x"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        wait_state(&kernel, CanonicalState::Green).await;
        seat.mode.store(2, Ordering::SeqCst);
        let reply = submit(&kernel, fs_write("slow.txt", "x"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "rule-based: the DSC's clearance stands: {reply:?}");
        wait_state(&kernel, CanonicalState::Yellow).await;
        assert!(kernel.status().posture.modes.contains(&DegradedMode::SecurityReduced));
        seat.mode.store(1, Ordering::SeqCst);
        // The timeout was the first failure in a row; four errors make five.
        for n in 0..4 {
            let before = seat.asked.load(Ordering::SeqCst);
            let reply = submit(&kernel, fs_write(&format!("e{n}.txt"), "x"), &token).await;
            assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
            assert_eq!(seat.asked.load(Ordering::SeqCst), before + 1, "asked while the breaker is closed");
        }
        let asked = seat.asked.load(Ordering::SeqCst);
        let reply = submit(&kernel, fs_write("open.txt", "x"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        assert_eq!(seat.asked.load(Ordering::SeqCst), asked, "an open breaker asks nobody");
        seat.mode.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(maos_commit::breaker::COOLDOWN_MS + 100)).await;
        let reply = submit(&kernel, fs_write("probe.txt", "x"), &token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        wait_state(&kernel, CanonicalState::Green).await;
    });
    let outcomes: Vec<String> = evaluations(&world).into_iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes.get(1).map(String::as_str), Some("unavailable"));
    assert!(outcomes.contains(&"circuit_open".to_owned()), "{outcomes:?}");
    assert_eq!(outcomes.last().map(String::as_str), Some("allow"));
    let states = states(&world);
    assert!(states.iter().any(|s| s.new == CanonicalState::Yellow && s.trigger.contains("evaluator not answering")));
    replays_clean(&world);
}

/// In Hardened an evaluator that does not answer refuses the effect
/// (`SSE-UNAVAILABLE`): that profile chose to depend on it.
#[test]
fn ct_deg_11_hardened_refuses_an_effect_its_evaluator_could_not_look_at() {
    let world = World::new();
    let token = token(100);
    let seat = std::sync::Arc::new(Scripted::default());
    seat.mode.store(1, Ordering::SeqCst);
    lifetime(async {
        let mut config = world.config(world.layer());
        config.dsc = maos_dsc::DscConfig::default_for(maos_model::Profile::Hardened).unwrap();
        config.evaluator = Some(seat.clone());
        let (kernel, _) = Kernel::start(config).await.unwrap();
        let reply = submit(&kernel, fs_write("h.txt", "x"), &token).await;
        assert_eq!(reply.code(), Some("SSE-UNAVAILABLE"), "{reply:?}");
        assert_eq!(seat.asked.load(Ordering::SeqCst), 1);
    });
    assert_eq!(world.file("h.txt"), None);
}
