//! The agent registry through the kernel (issue #14 item 1): registration is
//! logged before Rule 4 reads it, rings only move outward at run time, a
//! demotion revokes the agent's wider tokens, and the fold reproduces it all.

use crate::common::*;
use maos_kernel::{KernelError, Reply, replay};
use maos_model::{AgentId, IfcLevel, Ring, TrustClass};
use maos_token::{MintRequest, parse_permission};

fn ring2_token(nonce: u8) -> String {
    let req = MintRequest {
        agent: AgentId::new("writer").unwrap(),
        ring: Ring::Trusted,
        trust_class: TrustClass::Transparent,
        clearance: IfcLevel::Internal,
        permissions: vec![parse_permission("fs.write=/workspace/**").unwrap()],
        ttl_ms: None,
        rate_per_hour: 3600,
        max_ops: 1000,
        budget: 100,
        mission: None,
        commander_ack: false,
    };
    maos_token::mint(issuer(), req, NOW, 0, [nonce; 10]).unwrap().text().to_owned()
}

fn writer() -> AgentId {
    AgentId::new("writer").unwrap()
}

#[test]
fn the_registered_ring_is_what_rule_4_reads_and_a_demotion_revokes_wider_tokens() {
    let world = World::new();
    let ring2 = ring2_token(41);
    lifetime(async {
        let (kernel, _) = start(&world).await;
        // A ring-2 token for an agent nobody registered is refused when issued.
        let err = kernel.token_event(issued(&ring2)).await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-TOKEN-EVENT");
        assert!(err.to_string().contains("ring 3"), "{err}");
        kernel.register_agent(writer(), Ring::Trusted, TrustClass::Transparent, "onboarded").await.unwrap();
        kernel.token_event(issued(&ring2)).await.unwrap();
        let reply = kernel.submit_and_wait(fs_write("a.txt", "x"), &ring2).await.unwrap();
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
        // A class never changes; external agents are not registered here.
        let err = kernel.register_agent(writer(), Ring::Trusted, TrustClass::Opaque, "x").await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-AGENT-REGISTER", "{err}");
        let other = AgentId::new("peer").unwrap();
        let err = kernel.register_agent(other, Ring::Untrusted, TrustClass::External, "x").await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-AGENT-REGISTER", "{err}");
        // Demotion: at once, and the ring-2 token is revoked.
        let (_, revoked) = kernel.demote_agent(writer(), "suspicious").await.unwrap();
        assert_eq!(revoked.len(), 1);
        let reply = kernel.submit_and_wait(fs_write("b.txt", "x"), &ring2).await.unwrap();
        assert_eq!(reply.code(), Some("DSC-1-REVOKED"), "{reply:?}");
        // Back inward needs the re-onboarding, which is not built.
        let err = kernel.register_agent(writer(), Ring::Trusted, TrustClass::Transparent, "back").await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-ONBOARDING-NOT-BUILT", "{err}");
        let view = kernel.agents().await.unwrap();
        let w = view.agents.iter().find(|a| a.agent == writer()).unwrap();
        assert_eq!((w.ring, w.registered, w.class), (3, true, Some(TrustClass::Transparent)));
        assert!(view.fever.is_none());
        assert!(matches!(kernel.end_fever("none").await, Err(KernelError::NoFever)));
        // Its ring-3 token still works.
        let reply = submit(&kernel, fs_write("c.txt", "x"), &token(100)).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    });
    assert_eq!(world.file("b.txt"), None);
    // The fold reproduces the demotion after a restart, and replay is clean.
    lifetime(async {
        let (kernel, _) = start(&world).await;
        let view = kernel.agents().await.unwrap();
        let w = view.agents.iter().find(|a| a.agent == writer()).unwrap();
        assert_eq!((w.ring, w.registered), (3, true));
        let err = kernel.register_agent(writer(), Ring::Trusted, TrustClass::Transparent, "back").await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-ONBOARDING-NOT-BUILT");
    });
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}

/// CT-IMM-07: an agent may report five anomalies an hour; the sixth is
/// refused `KERNEL-REPORT-RATE`. A report about itself (that is apoptosis),
/// about an agent nobody knows, or by an agent in isolation is refused
/// `KERNEL-REPORT-INVALID`. Reports are logged with the reporter and
/// evidence, raise the suspect to stage 1 and, on their own, never further.
#[test]
fn ct_imm_07_the_sixth_report_in_an_hour_is_refused_and_reports_alone_do_not_isolate() {
    use maos_dsc::immune::AnomalyClass;
    let world = World::new();
    lifetime(async {
        let (kernel, _) = start(&world).await;
        let suspect = writer();
        let reporter = |n: u8| AgentId::new(&format!("peer-{n}")).unwrap();
        let nobody = AgentId::new("nobody").unwrap();
        let err = kernel.report(reporter(1), nobody, AnomalyClass::SocialEngineering, "x").await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-REPORT-INVALID", "{err}");
        // The suspect holds a logged token (a signature differs per mint: one text).
        let suspect_token = token(100);
        kernel.token_event(issued(&suspect_token)).await.unwrap();
        for _ in 0..5 {
            kernel
                .report(reporter(1), suspect.clone(), AnomalyClass::SocialEngineering, "asked for the keys")
                .await
                .unwrap();
        }
        let err =
            kernel.report(reporter(1), suspect.clone(), AnomalyClass::SocialEngineering, "again").await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-REPORT-RATE", "{err}");
        let err =
            kernel.report(suspect.clone(), suspect.clone(), AnomalyClass::IncoherentResponses, "me").await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-REPORT-INVALID", "{err}");
        // Other reporters, each more than a minute after the last (within a
        // minute they would be held as possible collusion, CT-IMM-06).
        for n in 2..6 {
            world.clock.advance_ms(61_000);
            kernel.report(reporter(n), suspect.clone(), AnomalyClass::SocialEngineering, "same").await.unwrap();
        }
        kernel.apoptosis(reporter(9), "I was injected").await.unwrap();
        let err = kernel.report(reporter(9), suspect.clone(), AnomalyClass::SocialEngineering, "x").await.unwrap_err();
        assert_eq!(err.code(), "KERNEL-REPORT-INVALID", "{err}");
        let standing = kernel.quarantine().await.unwrap();
        let w = standing.iter().find(|s| s.agent == writer()).unwrap();
        assert_eq!((w.stage, w.score), (1, 29), "{standing:?}");
        // The suspect's own writes go on: observation restricts nothing.
        let reply = submit(&kernel, fs_write("ok.txt", "x"), &suspect_token).await;
        assert!(matches!(reply, Reply::Done { .. }), "{reply:?}");
    });
    let peer_records = kernel_records(&world)
        .into_iter()
        .filter(|r| matches!(r, maos_kernel::records::KernelRecord::Immune(i) if i.reporter.is_some()))
        .count();
    assert_eq!(peer_records, 9);
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}

/// CT-IMM-07 through the kernel: a reporter whose five resolved reports were
/// never confirmed by their suspects' own signals is refused
/// `KERNEL-REPORT-SUSPENDED`; CT-IMM-06: a second reporter within a minute is
/// logged with its hold.
#[test]
fn ct_imm_07_a_reporter_of_false_alarms_is_suspended_by_the_kernel() {
    use maos_dsc::immune::AnomalyClass;
    let world = World::new();
    lifetime(async {
        let (kernel, _) = start(&world).await;
        let crier = AgentId::new("crier").unwrap();
        for i in 0..6u8 {
            let id = format!("healthy-{i}");
            kernel.token_event(issued(&token_for(&id, &["fs.read=/workspace/**"], 10, 80 + i))).await.unwrap();
        }
        for i in 0..5u8 {
            let suspect = AgentId::new(&format!("healthy-{i}")).unwrap();
            kernel.report(crier.clone(), suspect, AnomalyClass::OutputQualityDegradation, "slow").await.unwrap();
            world.clock.advance_ms(2 * 3_600_000);
        }
        let sixth = AgentId::new("healthy-5").unwrap();
        let err = kernel.report(crier.clone(), sixth.clone(), AnomalyClass::OutputQualityDegradation, "slow").await;
        assert_eq!(err.unwrap_err().code(), "KERNEL-REPORT-SUSPENDED");
        // Another reporter, then a third within a minute: held.
        let a = AgentId::new("peer-a").unwrap();
        let b = AgentId::new("peer-b").unwrap();
        kernel.report(a.clone(), sixth.clone(), AnomalyClass::SocialEngineering, "x").await.unwrap();
        world.clock.advance_ms(10_000);
        kernel.report(b, sixth, AnomalyClass::SocialEngineering, "x").await.unwrap();
    });
    let assessments: Vec<_> = kernel_records(&world)
        .into_iter()
        .filter_map(|r| match r {
            maos_kernel::records::KernelRecord::Immune(i) => i.report,
            _ => None,
        })
        .collect();
    assert_eq!(assessments.len(), 7, "the suspended report is not logged");
    let last = assessments.last().unwrap();
    assert_eq!((last.weight, last.held_with.clone()), (0, vec![AgentId::new("peer-a").unwrap()]));
    assert!(replay(&world.wal_reader(), dsc(), &keys()).unwrap().is_clean());
}
