//! The immune system beyond one agent's standing (issue #14): rings that
//! demote, the security fever (CT-IMM-05) and aggregate monitoring (spec
//! §49.11), all through `decide` and the deltas it returns.

use crate::common::*;
use maos_dsc::{DeltaOp, DscConfig, DscState, decide};
use maos_model::{
    EffectClass, HacfLevel, IfcLevel, Intent, Profile, ResourceKind, Ring, TrustClass, UnixMillis, Verdict,
};
use maos_token::VerifiedToken;

const MIN: u64 = 60_000;

fn at(minute: u64) -> UnixMillis {
    UnixMillis(NOW.0 + minute * MIN)
}

fn ring2_token(agent_id: &str, perms: &[&str], seed: u8) -> VerifiedToken {
    let mut req = request(agent_id, perms);
    req.ring = Ring::Trusted;
    token_from(req, seed)
}

fn escalation(d: &maos_dsc::Decision) -> Option<String> {
    match d.verdict() {
        Verdict::Escalate { level: HacfLevel::L2, reason } => Some(reason.clone()),
        _ => None,
    }
}

/// Puts `agent` in soft isolation with 15 scope probes a minute apart,
/// from `from` minutes on.
fn probe_to_stage_2(s: &mut DscState, agent_id: &str, t: &VerifiedToken, from: u64) {
    let probe = intent(agent_id, "fs.read", ResourceKind::Path, "/srv/reports/q3.txt", EffectClass::Observe);
    for minute in from..from + 15 {
        let d = decide(s, &probe, Ok(t), at(minute));
        assert_eq!(code(&d), Some("DSC-1-SCOPE"));
        s.apply(d.delta()).unwrap();
    }
}

fn mail(agent_id: &str, to: &str) -> Intent {
    let mut i = with_arg(intent(agent_id, "mail.send", ResourceKind::Recipient, to, EffectClass::Write), "to", to);
    i.sink_level = IfcLevel::Internal;
    i
}

/// Mandatory Rule 4 reads the registered ring, ring 3 for an agent nobody
/// registered: a ring-2 token is refused until the agent is registered in
/// ring 2, and the refusal is the operator's doing, not a danger signal.
/// Hard isolation demotes a registered agent to ring 3 for good: a release
/// ends the quarantine, not the demotion.
#[test]
fn rule_4_reads_the_registered_ring_and_hard_isolation_demotes() {
    let mut s = state(Profile::Standard);
    let t2 = ring2_token("writer", &["fs.read=/workspace/**", "fs.write=/workspace/**"], 7);
    let write = fs_write("/workspace/notes.md");
    let d = decide(&s, &write, Ok(&t2), at(0));
    assert_eq!(code(&d), Some("DSC-5-MR-04"), "unregistered agents are ring 3");
    assert!(!d.delta().ops.iter().any(|op| matches!(op, DeltaOp::Danger { .. })), "not the agent's doing");
    let register = DscState::register_agent(&agent("writer"), Ring::Trusted, Some(TrustClass::Transparent));
    s.apply(&register).unwrap();
    assert_eq!(*decide(&s, &write, Ok(&t2), at(0)).verdict(), Verdict::Allow);
    assert_eq!(s.agent_usage(&agent("writer")).class, Some(TrustClass::Transparent));
    // Asking for a more trusted ring is the agent's doing: a signal of weight 10.
    let mut ask = write.clone();
    ask.args.insert("ring".into(), maos_model::ArgValue::Int(1));
    let d = decide(&s, &ask, Ok(&t2), at(0));
    assert_eq!(code(&d), Some("DSC-5-MR-04"));
    assert!(d.delta().ops.iter().any(|op| matches!(op, DeltaOp::Danger { weight: 10, .. })));
    // Apoptosis (stage 3) demotes; after the release the agent is still ring 3.
    s.apply(&DscState::apoptosis(&agent("writer"), at(1))).unwrap();
    assert_eq!(s.agent_usage(&agent("writer")).ring, Some(Ring::Untrusted));
    s.apply(&DscState::release(&agent("writer"), at(2))).unwrap();
    assert_eq!(code(&decide(&s, &write, Ok(&t2), at(3))), Some("DSC-5-MR-04"));
    assert_eq!(s.agent_usage(&agent("writer")).class, Some(TrustClass::Transparent), "the class stays");
    // A ring-3 token of the demoted agent works.
    let t3 = token("writer", &["fs.write=/workspace/**"]);
    assert_eq!(*decide(&s, &write, Ok(&t3), at(3)).verdict(), Verdict::Allow);
}

/// CT-IMM-05: a second agent in soft isolation starts a security fever.
/// During it every rate is halved and every ring-3 effect waits for a human
/// (`IMM-FEVER`), while ring-2 effects and every read go on; a new signal
/// from an agent at stage 2 or more keeps it on (an honest agent's stray scope
/// miss does not); it ends 30 minutes after the last such signal or when the
/// commander ends it. It survives a snapshot.
/// CT-IMM-05's second trigger: one agent whose own signals add up to more
/// than twice the observation threshold within 10 minutes starts a fever,
/// whatever its stage; exactly twice (the steady probing of
/// `probe_to_stage_2`, 20 in any 10 minutes) does not. Reports never count.
#[test]
fn ct_imm_05_a_burst_of_signals_within_10_minutes_starts_a_fever() {
    let mut s = state(Profile::Standard);
    let steady = token("steady", &["fs.read=/workspace/**"]);
    let probe = |id: &str| intent(id, "fs.read", ResourceKind::Path, "/srv/reports/q3.txt", EffectClass::Observe);
    for minute in 0..10 {
        let d = decide(&s, &probe("steady"), Ok(&steady), at(minute));
        s.apply(d.delta()).unwrap();
    }
    assert!(s.fever_at(at(9)).is_none(), "20 in 10 minutes is not more than twice 10");
    let bursty = token("bursty", &["fs.read=/workspace/**"]);
    for second in 0..11u64 {
        let now = UnixMillis(at(20).0 + second * 1_000);
        let d = decide(&s, &probe("bursty"), Ok(&bursty), now);
        assert_eq!(code(&d), Some("DSC-1-SCOPE"));
        s.apply(d.delta()).unwrap();
        let expected = second == 10;
        assert_eq!(s.fever_at(now).is_some(), expected, "second {second}");
    }
    assert_eq!(s.stage_of(&agent("bursty"), at(21)), maos_dsc::immune::Stage::Observation, "stage 1 only (22)");
    assert_eq!(s.fever_at(at(21)).map(|f| f.since_ms), Some(at(20).0 + 10_000));
    assert!(s.fever_at(at(51)).is_none(), "ends 30 quiet minutes after the burst");
}

#[test]
fn ct_imm_05_two_agents_in_soft_isolation_start_a_fever_that_ends_after_30_quiet_minutes() {
    let mut s = state(Profile::Standard);
    let bad1 = token("bad-1", &["fs.read=/workspace/**"]);
    let bad2 = token("bad-2", &["fs.read=/workspace/**"]);
    probe_to_stage_2(&mut s, "bad-1", &bad1, 0);
    assert!(s.fever_at(at(15)).is_none(), "one agent in soft isolation is no fever");
    probe_to_stage_2(&mut s, "bad-2", &bad2, 1);
    let fever = *s.fever_at(at(15)).expect("fever");
    assert_eq!(fever.since_ms, at(15).0, "the signal that put the second agent in stage 2");
    // Ring 3 effects escalate, ring 2 effects and reads do not.
    let honest3 = token("honest-3", &["fs.write=/workspace/**", "fs.read=/workspace/**"]);
    let w3 = intent("honest-3", "fs.write", ResourceKind::Path, "/workspace/a.md", EffectClass::Write);
    let reason = escalation(&decide(&s, &w3, Ok(&honest3), at(16))).expect("escalated");
    assert!(reason.starts_with("IMM-FEVER"), "{reason}");
    let r3 = intent("honest-3", "fs.read", ResourceKind::Path, "/workspace/a.md", EffectClass::Observe);
    assert_eq!(*decide(&s, &r3, Ok(&honest3), at(16)).verdict(), Verdict::Allow);
    s.apply(&DscState::register_agent(&agent("honest-2"), Ring::Trusted, Some(TrustClass::Transparent))).unwrap();
    let honest2 = ring2_token("honest-2", &["fs.write=/workspace/**"], 9);
    let w2 = intent("honest-2", "fs.write", ResourceKind::Path, "/workspace/b.md", EffectClass::Write);
    assert_eq!(*decide(&s, &w2, Ok(&honest2), at(16)).verdict(), Verdict::Allow);
    // Rates halved: a 2-per-hour token gets one call where it had two.
    let mut slow = request("honest-2", &["fs.write=/workspace/**"]);
    slow.ring = Ring::Trusted;
    slow.rate_per_hour = 2;
    let slow = token_from(slow, 11);
    let d = decide(&s, &w2, Ok(&slow), at(16));
    assert_eq!(*d.verdict(), Verdict::Allow);
    s.apply(d.delta()).unwrap();
    let d = decide(&s, &w2, Ok(&slow), at(16));
    assert_eq!(code(&d), Some("DSC-2-RATE"));
    assert!(format!("{:?}", d.checks()).contains("halved: security fever"));
    // Another signal from an isolated agent keeps it on; an honest agent's
    // stray scope miss (stage 0) does not; 30 minutes after the last it ends.
    let probe = intent("bad-1", "fs.read", ResourceKind::Path, "/srv/x", EffectClass::Observe);
    let d = decide(&s, &probe, Ok(&bad1), at(20));
    s.apply(d.delta()).unwrap();
    let stray = intent("honest-3", "fs.read", ResourceKind::Path, "/srv/handbook.md", EffectClass::Observe);
    let d = decide(&s, &stray, Ok(&honest3), at(40));
    assert_eq!(code(&d), Some("DSC-1-SCOPE"));
    s.apply(d.delta()).unwrap();
    assert!(s.fever_at(at(49)).is_some());
    assert!(s.fever_at(at(50)).is_none(), "30 quiet minutes after minute 20");
    assert_eq!(*decide(&s, &w3, Ok(&honest3), at(50)).verdict(), Verdict::Allow);
    // Snapshot, then the commander ends it early.
    let restored = DscState::restore(s.config().clone(), &s.snapshot()).unwrap();
    assert_eq!(restored.fever_at(at(30)), s.fever_at(at(30)));
    s.apply(&DscState::end_fever(at(31))).unwrap();
    assert!(s.fever_at(at(31)).is_none());
    // The end holds: another deny of an agent still in soft isolation (its
    // stage does not rise) starts no new fever...
    let d = decide(&s, &probe, Ok(&bad1), at(32));
    s.apply(d.delta()).unwrap();
    assert!(s.fever_at(at(32)).is_none());
    // ...but two agents whose stage rises after it do.
    for (name, seed) in [("bad-3", 21u8), ("bad-4", 22)] {
        let mut req = request(name, &["fs.read=/workspace/**"]);
        req.ttl_ms = Some(RING3_TEST_TTL_MS);
        let t = token_from(req, seed);
        probe_to_stage_2(&mut s, name, &t, 33);
    }
    assert!(s.fever_at(at(47)).is_some(), "new evidence after the end");
}

/// Aggregate monitoring (spec §49.11): mail to 50 unique recipients in a week
/// is allowed, each within every per-call limit; the 51st new recipient
/// waits for a human (`AGG-RECIPIENTS`), a known one does not. The counters
/// come from the logged charge and survive a snapshot.
#[test]
fn aggregate_monitor_escalates_the_51st_new_recipient_in_a_week() {
    let mut s = state(Profile::Standard);
    let mut req = request("mailer", &["mail.send=*@example.com"]);
    req.rate_per_hour = 3600;
    let t = token_from(req, 5);
    for i in 0..50u64 {
        let d = decide(&s, &mail("mailer", &format!("r{i}@example.com")), Ok(&t), at(i));
        assert_eq!(*d.verdict(), Verdict::Allow, "mail {i}");
        s.apply(d.delta()).unwrap();
    }
    let totals = s.aggregate(&agent("mailer")).unwrap().totals_at(at(50).0);
    assert_eq!((totals.recipients, totals.external_calls), (50, 50));
    let d = decide(&s, &mail("mailer", "r50@example.com"), Ok(&t), at(50));
    let reason = escalation(&d).expect("escalated");
    assert!(reason.starts_with("AGG-RECIPIENTS: 50 unique recipients in 7 days"), "{reason}");
    assert_eq!(*decide(&s, &mail("mailer", "r7@example.com"), Ok(&t), at(50)).verdict(), Verdict::Allow);
    let restored = DscState::restore(s.config().clone(), &s.snapshot()).unwrap();
    assert!(escalation(&decide(&restored, &mail("mailer", "new@example.com"), Ok(&t), at(51))).is_some());
}

/// The monitor's thresholds are the deployment's (spec §49.11 gives the
/// defaults): a lower recipients threshold escalates sooner; Standard may
/// count without escalating to calibrate them, Hardened and Isolated may not
/// turn the monitor off, and no threshold may be 0 or beyond what the
/// monitor can count. The default configuration keeps its hash.
#[test]
fn aggregate_thresholds_are_configurable_and_calibration_is_standard_only() {
    use maos_dsc::aggregate::{AggregateLimits, AggregateMode};
    let limits = AggregateLimits { recipients: 3, ..AggregateLimits::DEFAULT };
    let mut req = request("mailer", &["mail.send=*@example.com"]);
    req.rate_per_hour = 3600;
    let t = token_from(req, 6);
    for (mode, escalates) in [(AggregateMode::Enforce, true), (AggregateMode::Calibrate, false)] {
        let config = DscConfig::builder(Profile::Standard).aggregate(limits, mode).build().unwrap();
        assert_ne!(config.hash(), DscConfig::default_for(Profile::Standard).unwrap().hash());
        let mut s = DscState::new(config);
        for i in 0..3u64 {
            let d = decide(&s, &mail("mailer", &format!("r{i}@example.com")), Ok(&t), at(i));
            assert_eq!(*d.verdict(), Verdict::Allow, "mail {i}");
            s.apply(d.delta()).unwrap();
        }
        let d = decide(&s, &mail("mailer", "r3@example.com"), Ok(&t), at(3));
        assert_eq!(escalation(&d).is_some(), escalates, "{mode:?}");
        // Calibration still counts.
        assert_eq!(s.aggregate(&agent("mailer")).unwrap().totals_at(at(3).0).recipients, 3);
    }
    for profile in [Profile::Hardened, Profile::Isolated] {
        let refused = DscConfig::builder(profile).aggregate(AggregateLimits::DEFAULT, AggregateMode::Calibrate).build();
        assert_eq!(refused.unwrap_err().code(), "DSC-CONFIG", "{profile:?}");
        // Only tightening: a looser threshold would turn it off in effect.
        let looser = AggregateLimits { external_calls: 501, ..AggregateLimits::DEFAULT };
        let refused = DscConfig::builder(profile).aggregate(looser, AggregateMode::Enforce).build();
        assert_eq!(refused.unwrap_err().code(), "DSC-CONFIG", "{profile:?}");
        let tighter = AggregateLimits { external_calls: 100, ..AggregateLimits::DEFAULT };
        assert!(DscConfig::builder(profile).aggregate(tighter, AggregateMode::Enforce).build().is_ok());
    }
    for bad in [
        AggregateLimits { recipients: 0, ..AggregateLimits::DEFAULT },
        AggregateLimits { recipients: 257, ..AggregateLimits::DEFAULT },
        AggregateLimits { external_calls: 0, ..AggregateLimits::DEFAULT },
        AggregateLimits { outbound_bytes: 0, ..AggregateLimits::DEFAULT },
    ] {
        let refused = DscConfig::builder(Profile::Standard).aggregate(bad, AggregateMode::Enforce).build();
        assert_eq!(refused.unwrap_err().code(), "DSC-CONFIG", "{bad:?}");
    }
    let same = DscConfig::builder(Profile::Standard).aggregate(AggregateLimits::DEFAULT, AggregateMode::Enforce);
    assert_eq!(same.build().unwrap().hash(), DscConfig::default_for(Profile::Standard).unwrap().hash());
}
