//! The Recovery Priority Chain (spec §38.2, CT-DEG-15), the watched Commit
//! Layer executors and ring-1 components (§16.3), and memory pressure
//! (degraded mode 1, CT-DEG-23), through the kernel.

use crate::common::*;
use maos_kernel::ComponentPet;
use maos_kernel::posture::{CanonicalState, Component, DegradedMode};
use maos_kernel::records::KernelRecord;
use maos_kernel::recovery::{LEVEL_TIMEOUT_MS_DEFAULT, Level, LevelOutcome};
use maos_kernel::tsca::{TscaAction, TscaEvent};
use maos_kernel::{Kernel, KernelHandle, Reply, replay};
use maos_model::{AgentId, Ring, TrustClass};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn tsca_events(world: &World) -> Vec<TscaEvent> {
    tsca_records(world).into_iter().map(|r| r.event).collect()
}

/// A ring-1 component as the MCP upstream supervisor is one: a loop that
/// pets until the one-shot hang drill takes it, or a restart replaces it.
fn petter(pet: ComponentPet) {
    std::thread::spawn(move || {
        while pet.current() {
            if pet.hang_drill() {
                return;
            }
            pet.pet();
            std::thread::sleep(Duration::from_millis(30));
        }
    });
}

/// Supervises a test ring-1 component; returns how often it was restarted.
fn supervised(kernel: &KernelHandle) -> Arc<AtomicUsize> {
    let restarts = Arc::new(AtomicUsize::new(0));
    let counted = restarts.clone();
    let restart = Arc::new(move |pet: ComponentPet| {
        counted.fetch_add(1, Ordering::SeqCst);
        petter(pet);
    });
    petter(kernel.supervise(Component::McpUpstreams, Duration::from_millis(100), restart).unwrap());
    restarts
}

fn position(events: &[TscaEvent], f: impl Fn(&TscaEvent) -> bool) -> usize {
    events.iter().position(f).unwrap_or_else(|| panic!("not logged: {events:#?}"))
}

/// CT-DEG-15: the DSC instance and a ring-1 service hang at once. The chain
/// restores L0 (a new DSC instance) before it begins L7 (a new supervisor),
/// each well within its 10 s, records L5 and L6 as absent, and ends with no
/// failed level; the node is back to YELLOW.
#[test]
fn ct_deg_15_several_failures_are_restored_in_order_l0_before_l7() {
    let world = World::new();
    lifetime(async {
        let config = world.config(world.layer());
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        let restarts = supervised(&kernel);
        wait_state(&kernel, CanonicalState::Yellow).await;
        let err = kernel.supervise(Component::Sequencer, Duration::from_secs(1), Arc::new(|_| {})).unwrap_err();
        assert_eq!(err.code(), "KERNEL-SUPERVISE", "ring 0 is the kernel's own");
        faults.hang_mcp_supervisor.store(true, Ordering::SeqCst);
        faults.hang_dsc_instance.store(true, Ordering::SeqCst);
        until(&kernel, "the supervisor restarted", |_| restarts.load(Ordering::SeqCst) == 1).await;
        wait_state(&kernel, CanonicalState::Yellow).await;
        until(&kernel, "the chain ended", |k| k.tsca().chain.is_none()).await;
        let status = kernel.status();
        assert!(status.components.iter().any(|c| c.component == Component::McpUpstreams && !c.unresponsive));
        assert!(status.components.iter().any(|c| c.component == Component::CommitExecutors && !c.unresponsive));
    });
    let events = tsca_events(&world);
    let started = position(
        &events,
        |e| matches!(e, TscaEvent::ChainStarted { failing, .. } if failing.contains(&Level::L0) && failing.contains(&Level::L7)),
    );
    let dsc_restart = position(&events, |e| {
        matches!(e, TscaEvent::Executed { action: TscaAction::RestartComponent { component: Component::Dsc }, .. })
    });
    let l0 = position(&events, |e| {
        matches!(e, TscaEvent::ChainLevel { level: Level::L0, outcome: LevelOutcome::Passed, .. })
    });
    let supervisor = position(&events, |e| {
        matches!(
            e,
            TscaEvent::Executed { action: TscaAction::RestartComponent { component: Component::McpUpstreams }, .. }
        )
    });
    let l7 = position(&events, |e| {
        matches!(e, TscaEvent::ChainLevel { level: Level::L7, outcome: LevelOutcome::Passed, .. })
    });
    let finished = position(
        &events,
        |e| matches!(e, TscaEvent::ChainFinished { failed, emergency: false, .. } if failed.is_empty()),
    );
    assert!(
        started < dsc_restart && dsc_restart < l0 && l0 < supervisor && supervisor < l7 && l7 < finished,
        "{events:#?}"
    );
    for level in [Level::L5, Level::L6] {
        let absent = |e: &TscaEvent| matches!(e, TscaEvent::ChainLevel { level: l, outcome: LevelOutcome::Absent, .. } if *l == level);
        assert!(events.iter().any(absent), "{level:?} is not on one node: {events:#?}");
    }
    let within = events
        .iter()
        .all(|e| !matches!(e, TscaEvent::ChainLevel { after_ms, .. } if *after_ms > LEVEL_TIMEOUT_MS_DEFAULT));
    assert!(within, "{events:#?}");
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}

/// CT-DEG-15: the DSC silent for good (L0), the sequencer not petting (L3)
/// and the executors hung (L4): each level fails at its deadline (2 s here,
/// 10 s by default, on monotonic time), in order, and three failed levels
/// are an emergency controlled shutdown classified as cascading.
#[test]
fn ct_deg_15_three_failed_levels_are_an_emergency_shutdown() {
    let world = World::new();
    lifetime(async {
        let mut config = world.config(world.layer());
        config.recovery_level_timeout = Duration::from_secs(2);
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        faults.stop_dsc_heartbeat.store(true, Ordering::SeqCst);
        // The DSC seen silent first, so that the chain begins with L0 failing.
        until(&kernel, "the DSC silent", |k| {
            k.status().components.iter().any(|c| c.component == Component::Dsc && c.unresponsive)
        })
        .await;
        faults.stop_heartbeat.store(true, Ordering::SeqCst);
        faults.hang_commit_executors.store(true, Ordering::SeqCst);
        until(&kernel, "a chain at L0", |k| k.tsca().chain.is_some_and(|c| c.level == Some(Level::L0))).await;
        let denied = submit(&kernel, fs_write("w.txt", "x"), &token(100)).await;
        assert!(matches!(denied, Reply::Denied { .. }), "commits are frozen meanwhile: {denied:?}");
        wait_state(&kernel, CanonicalState::SafeHold).await;
        until(&kernel, "the shutdown's report", |k| k.status().ecs.active.is_some()).await;
        let report = kernel.status().ecs.active.unwrap();
        assert!(
            matches!(&report.cause, maos_kernel::ecs::EcsTrigger::ChainFailed { levels, .. } if levels.len() == 3),
            "{report:?}"
        );
        assert_eq!(report.class, maos_kernel::ecs::FailureClass::Cascading);
        faults.hang_commit_executors.store(false, Ordering::SeqCst);
    });
    let events = tsca_events(&world);
    let last = events.iter().rev().find_map(|e| match e {
        TscaEvent::ChainFinished { failed, emergency: true, .. } => Some(failed.clone()),
        _ => None,
    });
    assert_eq!(last, Some(vec![Level::L0, Level::L3, Level::L4]), "in order: {events:#?}");
    let at_deadline = events.iter().filter(|e| {
        matches!(e, TscaEvent::ChainLevel { outcome: LevelOutcome::Failed, after_ms, .. } if (2_000..4_000).contains(after_ms))
    });
    assert!(at_deadline.count() >= 3, "each failed at its 2 s deadline: {events:#?}");
}

/// The Commit Layer's executors are watched (§16.3): a probe that never
/// returns makes them unresponsive, commits freeze (ORANGE, Rule 10), and
/// they come back by themselves once the probe runs again.
#[test]
fn hung_commit_executors_freeze_commits_until_they_answer() {
    let world = World::new();
    let token = token(100);
    lifetime(async {
        let config = world.config(world.layer());
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        faults.hang_commit_executors.store(true, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Orange).await;
        assert!(kernel.status().posture.why.iter().any(|w| w == "commit_executors unresponsive"));
        let reply = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert!(matches!(&reply, Reply::Denied { code, .. } if code.starts_with("DSC-")), "{reply:?}");
        faults.hang_commit_executors.store(false, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Yellow).await;
        assert!(matches!(submit(&kernel, fs_write("w.txt", "x"), &token).await, Reply::Done { .. }));
    });
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}

/// CT-DEG-23: memory over 85 % is degraded mode 1 (AMBER): ring-3 agents
/// are paused (`KERNEL-MEMORY`) while ring 2 goes on; over 95 % every agent
/// waits; at 80 % nothing changes (hysteresis); under 75 % all resume.
#[test]
fn ct_deg_23_memory_pressure_pauses_ring_3_and_resumes_under_75() {
    let world = World::new();
    let token = token(100);
    lifetime(async {
        let config = world.config(world.layer());
        let faults = config.faults.clone();
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        faults.memory_used_pct.store(86, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Amber).await;
        assert!(kernel.status().posture.modes.contains(&DegradedMode::ReducedAgentCapacity));
        let paused = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert!(matches!(&paused, Reply::Denied { code, .. } if *code == "KERNEL-MEMORY"), "{paused:?}");
        let writer = AgentId::new("writer").unwrap();
        kernel.register_agent(writer, Ring::Trusted, TrustClass::Transparent, "onboarded").await.unwrap();
        let ring2 = submit(&kernel, fs_write("w.txt", "x"), &token).await;
        assert!(matches!(ring2, Reply::Done { .. }), "ring 2 goes on: {ring2:?}");
        faults.memory_used_pct.store(96, Ordering::SeqCst);
        until(&kernel, "every agent paused", |k| k.status().posture.why.iter().any(|w| w.contains("every agent")))
            .await;
        let refused = submit(&kernel, fs_write("w.txt", "y"), &token).await;
        assert!(matches!(&refused, Reply::Denied { code, .. } if *code == "KERNEL-MEMORY"), "{refused:?}");
        faults.memory_used_pct.store(80, Ordering::SeqCst);
        until(&kernel, "back to ring 3 paused", |k| k.status().posture.why.iter().any(|w| w.contains("ring-3"))).await;
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        assert_eq!(kernel.state(), CanonicalState::Amber, "80 % is not under 75 %");
        faults.memory_used_pct.store(74, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Yellow).await;
        assert!(matches!(submit(&kernel, fs_write("w.txt", "z"), &token).await, Reply::Done { .. }));
    });
    let states: Vec<CanonicalState> = kernel_records(&world)
        .into_iter()
        .filter_map(|r| match r {
            KernelRecord::State(s) => Some(s.new),
            _ => None,
        })
        .collect();
    assert!(states.windows(2).any(|w| w == [CanonicalState::Yellow, CanonicalState::Amber]), "{states:?}");
    assert!(states.windows(2).any(|w| w == [CanonicalState::Amber, CanonicalState::Yellow]), "{states:?}");
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}

/// The log's writer is watched (§16.3): a commit group whose sync takes
/// longer than twice the writer's interval makes it unresponsive (ring 0:
/// ORANGE, commits frozen), and it is responsive again once the sync returns;
/// the watchdog is not held by the hung log (its transitions go through the
/// state log's thread, logged once the sync returns). A sync three times past
/// the limit halts the node into an emergency shutdown.
#[test]
fn a_log_sync_that_does_not_return_makes_the_wal_writer_unresponsive() {
    let world = World::new();
    let storage = maos_wal::sim::MemStorage::new();
    let token = token(100);
    lifetime(async {
        let wal_config = maos_wal::WalConfig::with_storage(maos_model::Profile::Standard, Arc::new(storage.clone()))
            .clock(world.clock.clone());
        let wal = maos_wal::Wal::open(wal_config).unwrap().0;
        let mut config = world.config(world.layer_on(wal, &[], None));
        config.wal_writer_interval = Duration::from_millis(100);
        let (kernel, _) = Kernel::start(config).await.unwrap();
        wait_state(&kernel, CanonicalState::Yellow).await;
        assert!(matches!(submit(&kernel, fs_write("a.txt", "x"), &token).await, Reply::Done { .. }));
        // Past its limit (500 ms here), short of three times it.
        storage.faults().sync_delay_us.store(1_200_000, Ordering::SeqCst);
        let reply = submit(&kernel, fs_write("b.txt", "x"), &token).await;
        storage.faults().sync_delay_us.store(0, Ordering::SeqCst);
        wait_state(&kernel, CanonicalState::Yellow).await;
        let _ = reply;
        assert!(matches!(submit(&kernel, fs_write("c.txt", "x"), &token).await, Reply::Done { .. }));
        // Three times past it: the watchdog halts the node, without the log.
        storage.faults().sync_delay_us.store(2_500_000, Ordering::SeqCst);
        let k = kernel.clone();
        let t = token.clone();
        let stuck = tokio::spawn(async move { submit(&k, fs_write("d.txt", "x"), &t).await });
        wait_state(&kernel, CanonicalState::SafeHold).await;
        let why = kernel.status().posture.why.join("; ");
        assert!(why.contains("commit group in flight"), "{why}");
        storage.faults().sync_delay_us.store(0, Ordering::SeqCst);
        stuck.abort();
        let states: Vec<String> = maos_wal::LogReader::new(Arc::new(storage.clone()))
            .records()
            .unwrap()
            .filter_map(|r| {
                let r = r.unwrap();
                match maos_kernel::records::KernelRecord::decode(r.kind, &r.payload) {
                    Some(Ok(KernelRecord::State(s))) => Some(s.trigger),
                    _ => None,
                }
            })
            .collect();
        assert!(states.iter().any(|t| t.contains("wal_writer unresponsive")), "{states:?}");
        assert!(states.iter().any(|t| t.contains("wal_writer responsive again")), "{states:?}");
    });
}
