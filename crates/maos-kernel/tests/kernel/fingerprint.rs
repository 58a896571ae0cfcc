//! A behavioural fingerprint's pause through the kernel (issue #14 item 7,
//! CT-IMM-12's 4σ rung): a burst far above the agent's baseline puts it in
//! stage 3 pending a human's review; the request that crossed does not run;
//! its outputs are marked; the kernel never eliminates it on its own; a
//! restart folds the same pause and replay re-runs every decision.

use crate::common::*;
use maos_dsc::fingerprint::WINDOW_MS;
use maos_kernel::records::KernelRecord;
use maos_kernel::{CODE_PAUSED, Reply, STATE_SAVE_WINDOW_MS, replay};
use maos_model::{AgentId, IfcLevel, Ring, TrustClass};
use maos_token::{MintRequest, parse_permission};

/// A ring-3 token for `writer` that outlives a baseline of an hour.
fn long_token() -> String {
    let req = MintRequest {
        agent: AgentId::new("writer").unwrap(),
        ring: Ring::Untrusted,
        trust_class: TrustClass::Transparent,
        clearance: IfcLevel::Internal,
        permissions: vec![parse_permission("fs.write=/workspace/**").unwrap()],
        ttl_ms: Some(4 * 3_600_000),
        rate_per_hour: 360_000,
        max_ops: 100_000,
        budget: 100_000,
        mission: Some("Maintain the workspace notes.".into()),
        commander_ack: true,
    };
    maos_token::mint(issuer(), req, NOW, 0, [77; 10]).unwrap().text().to_owned()
}

fn writer() -> AgentId {
    AgentId::new("writer").unwrap()
}

#[test]
fn ct_imm_12_a_4_sigma_burst_pauses_the_agent_pending_review() {
    let world = World::new();
    let t = long_token();
    lifetime(async {
        let (kernel, _) = start(&world).await;
        logged(&kernel, &t).await;
        // 13 windows of two writes: a baseline of mean 2 (σ is the floor, 5).
        for k in 0..13 {
            for i in 0..2 {
                let reply = kernel.submit_and_wait(fs_write(&format!("w{k}-{i}.txt"), "x"), &t).await.unwrap();
                assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
                world.clock.advance_ms(1_000);
            }
            world.clock.advance_ms(WINDOW_MS - 2_000);
        }
        // A burst: 17 calls are 3σ (a danger signal), 22 are 4σ (the pause).
        let mut codes = Vec::new();
        for i in 0..23 {
            let reply = kernel.submit_and_wait(fs_write(&format!("burst-{i}.txt"), "x"), &t).await.unwrap();
            codes.push(reply.code().map(str::to_owned));
            world.clock.advance_ms(100);
        }
        assert!(codes[..21].iter().all(Option::is_none), "{codes:?}");
        assert_eq!(codes[21].as_deref(), Some(CODE_PAUSED), "the crossing request does not run");
        assert_eq!(codes[22].as_deref(), Some("IMM-STAGE-3"));
        let list = kernel.quarantine().await.unwrap();
        let view = list.iter().find(|v| v.agent == writer()).expect("in quarantine");
        assert_eq!((view.stage, view.paused), (3, true), "{view:?}");
        assert_eq!(view.last_signal.as_ref().map(|(c, _)| c.as_str()), Some("IMM-FINGERPRINT"));
        let agents = kernel.agents().await.unwrap();
        let a = agents.agents.iter().find(|a| a.agent == writer()).expect("listed");
        assert!(a.paused);
        let fp = a.fingerprint.as_ref().expect("fingerprinted");
        assert!(fp.alerts.len() >= 2, "the 2σ and later rungs are alerts: {fp:?}");
        assert_eq!(fp.tools, ["tool:fs.write"]);
        // A pause waits for a human: past the state-save window, and after
        // the sweep has run, the agent is still paused, not eliminated.
        world.clock.advance_ms(STATE_SAVE_WINDOW_MS + 20_000);
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        let list = kernel.quarantine().await.unwrap();
        assert_eq!(list.iter().find(|v| v.agent == writer()).map(|v| v.stage), Some(3));
    });
    assert_eq!(world.file("burst-21.txt"), None);
    assert!(world.file("burst-20.txt").is_some());
    let marked = kernel_records(&world)
        .into_iter()
        .filter_map(|r| match r {
            KernelRecord::Immune(i) => i.unverified,
            _ => None,
        })
        .next()
        .expect("stage 3 marks the outputs");
    assert!(marked.decisions.len() >= 21, "its writes of the last 30 minutes: {}", marked.decisions.len());
    let eliminated =
        kernel_records(&world).into_iter().any(|r| matches!(r, KernelRecord::Immune(i) if i.elimination.is_some()));
    assert!(!eliminated, "no automatic elimination of a pause");
    // A restart folds the same pause; the operator's release ends it.
    lifetime(async {
        let (kernel, _) = start(&world).await;
        let list = kernel.quarantine().await.unwrap();
        assert!(list.iter().any(|v| v.agent == writer() && v.stage == 3 && v.paused), "{list:?}");
        kernel.release(writer(), "reviewed: a batch job").await.unwrap();
        let reply = kernel.submit_and_wait(fs_write("after.txt", "x"), &t).await.unwrap();
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    });
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}

/// CT-IMM-17: a step of the wall clock of more than 5 s against the
/// monotonic reference is a Time Integrity Alert (logged with the step and
/// the last check within tolerance); smaller steps add up; the kernel's time
/// never goes back.
#[test]
fn ct_imm_17_a_wall_clock_step_is_a_time_integrity_alert() {
    let world = World::new();
    let t = token(100);
    let time_alerts = |world: &World| -> Vec<maos_kernel::records::TimeIntegrity> {
        kernel_records(world)
            .into_iter()
            .filter_map(|r| match r {
                KernelRecord::Immune(i) => i.time,
                _ => None,
            })
            .collect()
    };
    lifetime(async {
        let (kernel, _) = start(&world).await;
        world.clock.step_wall(4_000);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(kernel.status().wall_clock_offset_ms, 4_000);
        assert!(time_alerts(&world).is_empty(), "4 s is within tolerance");
        world.clock.step_wall(3_600_000);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(kernel.status().wall_clock_offset_ms, 3_604_000);
        // A step back of the clock the kernel reads holds its time.
        world.clock.set(maos_model::UnixMillis(NOW.0 - 60_000));
        let reply = submit(&kernel, fs_write("out.txt", "x"), &t).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    });
    let alerts = time_alerts(&world);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((alerts[0].step_ms, alerts[0].wall_offset_ms), (3_604_000, 3_604_000), "steps add up until an alert");
    let decided = kernel_records(&world).into_iter().find_map(|r| match r {
        KernelRecord::Decision(d) => Some(d.now_ms),
        _ => None,
    });
    assert_eq!(decided, Some(NOW.0), "the kernel's time did not go back with the clock");
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}
