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
