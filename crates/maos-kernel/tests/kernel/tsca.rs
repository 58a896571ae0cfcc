//! The TSCA through the kernel (spec §38.7): its budget per incident, the
//! watchdog's confirmation, authorization by profile, and its own chained
//! log section, which replay folds.

use crate::common::*;
use maos_kernel::posture::{CanonicalState, Component};
use maos_kernel::tsca::{PROPOSAL_TTL_MS, RESTART_SETTLE_MS, TERMINATIONS_MAX, TscaAction, TscaEvent, TscaMode};
use maos_kernel::{Kernel, STATE_SAVE_WINDOW_MS, SignedTscaApproval, replay};
use maos_model::{AgentId, Profile};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn count(world: &World, f: impl Fn(&TscaEvent) -> bool) -> usize {
    tsca_records(world).iter().filter(|r| f(&r.event)).count()
}

/// CT-DEG-19: eleven agents in hard isolation past their state-save window
/// in one incident: the TSCA terminates ten, escalates the eleventh to a
/// human (it stays in stage 3), and its log section is a chain that replay
/// folds clean.
#[test]
fn ct_deg_19_an_incident_needing_eleven_terminations_gets_ten() {
    let world = World::new();
    lifetime(async {
        let (kernel, _) = start(&world).await;
        for n in 0..=TERMINATIONS_MAX {
            let agent = AgentId::new(&format!("agent-{n}")).unwrap();
            kernel.apoptosis(agent, "compromised").await.unwrap();
        }
        world.clock.advance_ms(STATE_SAVE_WINDOW_MS + 20_000);
        until(&kernel, "ten terminated", |k| k.status().tsca.incident.is_some_and(|i| i.terminations == 10)).await;
        until(&kernel, "the eleventh escalated", |k| k.status().tsca.incident.is_some_and(|i| i.escalated.len() == 1))
            .await;
        let left = kernel.quarantine().await.unwrap();
        assert_eq!(left.len(), 1, "one left for a human: {left:?}");
        assert_eq!(left[0].stage, 3);
        // The incident stays open while the eleventh waits, whatever the time.
        world.clock.advance_ms(10 * 60_000);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(kernel.status().tsca.incident.is_some());
    });
    let executed =
        count(&world, |e| matches!(e, TscaEvent::Executed { action: TscaAction::TerminateAgent { .. }, .. }));
    assert_eq!(executed, 10);
    assert_eq!(count(&world, |e| matches!(e, TscaEvent::Escalated { .. })), 1, "escalated once");
    let records = tsca_records(&world);
    assert!(records.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1), "numbered 1, 2, 3…");
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
    // The budget is a fold: after a restart the incident and its ten are still there.
    lifetime(async {
        let (kernel, _) = start(&world).await;
        let incident = kernel.tsca().incident.expect("still open");
        assert_eq!(incident.terminations, 10);
    });
}

/// CT-DEG-19 (restarts) and CT-DEG-03: a DSC instance that hangs is
/// restarted by the TSCA (Standard, level A) once the watchdog confirmed it
/// unresponsive; the TSCA was in autonomous recovery meanwhile; one that
/// stays silent is restarted five times in the incident, then escalated.
#[test]
fn ct_deg_19_a_hung_dsc_instance_is_restarted_and_a_dead_one_escalates_after_five() {
    let world = World::new();
    let token = token(100);
    lifetime(async {
        let config = world.config(world.layer());
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        faults.hang_dsc_instance.store(true, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Orange).await;
        until(&kernel, "autonomous recovery", |k| k.tsca().mode == TscaMode::AutonomousRecovery).await;
        wait_state(&kernel, CanonicalState::Yellow).await;
        assert_eq!(kernel.tsca().incident.map(|i| i.component_restarts), Some(1));
        assert!(matches!(submit(&kernel, fs_write("w.txt", "x"), &token).await, maos_kernel::Reply::Done { .. }));
        // Dead for good: every restart is silent too; five, then a human.
        faults.stop_dsc_heartbeat.store(true, Ordering::SeqCst);
        for n in 2..=5 {
            world.clock.advance_ms(RESTART_SETTLE_MS);
            until(&kernel, "the next restart", |k| k.tsca().incident.is_some_and(|i| i.component_restarts == n)).await;
        }
        world.clock.advance_ms(RESTART_SETTLE_MS);
        until(&kernel, "escalated", |k| k.tsca().incident.is_some_and(|i| !i.escalated.is_empty())).await;
        assert_eq!(kernel.state(), CanonicalState::Orange);
        faults.stop_dsc_heartbeat.store(false, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Yellow).await;
    });
    let restarts = count(&world, |e| {
        matches!(e, TscaEvent::Executed { action: TscaAction::RestartComponent { component: Component::Dsc }, .. })
    });
    assert_eq!(restarts, 5);
    assert!(count(&world, |e| matches!(e, TscaEvent::Mode { mode: TscaMode::AutonomousRecovery, .. })) >= 1);
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}

/// CT-DEG-20: the same hung instance under Hardened is a proposal the
/// commander approves (a forged approval is refused), and a proposal left
/// unanswered for 15 minutes sends the node to the minimal safe state;
/// under Isolated it is advice only and nothing is restarted.
#[test]
fn ct_deg_20_hardened_proposes_and_waits_isolated_only_advises() {
    let world = World::new();
    lifetime(async {
        let mut config = world.config(world.layer());
        config.dsc = maos_dsc::DscConfig::default_for(Profile::Hardened).unwrap();
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        faults.hang_dsc_instance.store(true, Ordering::SeqCst);
        until(&kernel, "a proposal", |k| !k.tsca().proposals.is_empty()).await;
        let proposal = kernel.tsca().proposals[0].clone();
        let message = maos_kernel::tsca::approval_message(&proposal.id, &proposal.action);
        let sign = |key: &maos_crypto::SigningKey| SignedTscaApproval {
            proposal: proposal.id.clone(),
            signature: key.sign(maos_crypto::SignatureDomain::TscaPlan, &message).unwrap(),
        };
        assert_eq!(kernel.state(), CanonicalState::Orange, "nothing restarted without the commander");
        let forged = kernel.approve_tsca(&sign(impostor())).unwrap_err();
        assert_eq!(forged.code(), "TSCA-APPROVAL");
        assert_eq!(kernel.approve_tsca(&sign(commander())).unwrap(), proposal.action);
        wait_state(&kernel, CanonicalState::Yellow).await;
        // A silence that ends by itself: its proposal is withdrawn, never
        // left to lapse into the minimal safe state.
        world.clock.advance_ms(RESTART_SETTLE_MS);
        faults.stop_dsc_heartbeat.store(true, Ordering::SeqCst);
        until(&kernel, "a proposal for the silence", |k| !k.tsca().proposals.is_empty()).await;
        faults.stop_dsc_heartbeat.store(false, Ordering::SeqCst);
        until(&kernel, "withdrawn", |k| k.tsca().proposals.is_empty()).await;
        wait_state(&kernel, CanonicalState::Yellow).await;
        // Again, and nobody answers: 15 minutes later, the minimal safe state.
        world.clock.advance_ms(RESTART_SETTLE_MS);
        faults.hang_dsc_instance.store(true, Ordering::SeqCst);
        until(&kernel, "a second proposal", |k| !k.tsca().proposals.is_empty()).await;
        world.clock.advance_ms(PROPOSAL_TTL_MS);
        wait_state(&kernel, CanonicalState::SafeHold).await;
        until(&kernel, "the shutdown's report", |k| k.status().ecs.active.is_some()).await;
        let ecs = kernel.status().ecs.active.map(|r| r.cause);
        assert!(matches!(ecs, Some(maos_kernel::ecs::EcsTrigger::TscaUnanswered { .. })), "{ecs:?}");
    });
    assert_eq!(count(&world, |e| matches!(e, TscaEvent::Approved { .. })), 1);
    assert_eq!(count(&world, |e| matches!(e, TscaEvent::Withdrawn { .. })), 1);
    assert_eq!(count(&world, |e| matches!(e, TscaEvent::Expired { .. })), 1);

    let world = World::new();
    lifetime(async {
        let mut config = world.config(world.layer());
        config.dsc = maos_dsc::DscConfig::default_for(Profile::Isolated).unwrap();
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        faults.hang_dsc_instance.store(true, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Orange).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(kernel.state(), CanonicalState::Orange, "advice restarts nothing");
        assert!(kernel.tsca().proposals.is_empty());
    });
    assert_eq!(count(&world, |e| matches!(e, TscaEvent::Advised { .. })), 1);
    assert_eq!(count(&world, |e| matches!(e, TscaEvent::Executed { .. })), 0);
}

/// No daemon supervises a kernel in a test: the TSCA's system restart for a
/// stalled sequencer is blocked by the watchdog, never pretended.
#[test]
fn a_system_restart_without_a_supervisor_is_blocked() {
    let world = World::new();
    lifetime(async {
        let mut config = world.config(world.layer());
        config.system_restart_after = Duration::from_millis(300);
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        faults.stop_heartbeat.store(true, Ordering::SeqCst);
        until(&kernel, "blocked", |k| k.tsca().incident.is_some_and(|i| !i.escalated.is_empty())).await;
        faults.stop_heartbeat.store(false, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Yellow).await;
    });
    let blocked = count(&world, |e| matches!(e, TscaEvent::Blocked { action: TscaAction::RestartSystem, .. }));
    assert_eq!(blocked, 1, "{:?}", tsca_records(&world));
    assert_eq!(count(&world, |e| matches!(e, TscaEvent::Executed { .. })), 0);
}
