//! How far a reporting agent's word goes (CT-IMM-06..08): colluding reports
//! are held, a reporter whose reports keep proving false is suspended, and
//! reports put at most five agents in observation an hour. Logged time only.

use crate::common::*;
use maos_dsc::DscState;
use maos_dsc::immune::{AnomalyClass, Stage};
use maos_dsc::reporters::{CONFIRM_MS, RAISES_PER_HOUR_MAX};
use maos_model::{EffectClass, Profile, ResourceKind, UnixMillis};

const SEC: u64 = 1_000;
const HOUR: u64 = 3_600_000;

fn at(ms: u64) -> UnixMillis {
    UnixMillis(NOW.0 + ms)
}

fn report(
    s: &mut DscState,
    reporter: &str,
    suspect: &str,
    class: AnomalyClass,
    when: UnixMillis,
) -> maos_dsc::reporters::Assessment {
    let assessment = s.assess_report(&agent(reporter), &agent(suspect), class, when);
    s.apply(&DscState::report(&agent(reporter), &agent(suspect), class, when)).unwrap();
    assessment
}

/// CT-IMM-06: a second reporter about the same healthy target within 60 s
/// is held (weighs nothing), both reporters are flagged, and a flagged
/// reporter's next report weighs half; no escalation follows from the held
/// one. A report a minute later by someone else is not held.
#[test]
fn ct_imm_06_colluding_reports_are_held_and_the_reporters_down_weighted() {
    let mut s = state(Profile::Standard);
    let se = AnomalyClass::SocialEngineering;
    assert_eq!(report(&mut s, "a", "target", se, at(0)).weight, 4);
    let held = report(&mut s, "b", "target", se, at(30 * SEC));
    assert_eq!((held.weight, held.held_with.clone()), (0, vec![agent("a")]), "{held:?}");
    let standing = s.standing(&agent("target")).unwrap();
    assert_eq!((standing.score_at(at(31 * SEC).0), standing.stage_at(at(31 * SEC).0).0), (4, Stage::Normal));
    for who in ["a", "b"] {
        assert!(s.reporter(&agent(who)).unwrap().flagged_at(at(HOUR).0), "{who} flagged");
    }
    // A flagged reporter weighs half for a day, about anyone.
    let later = report(&mut s, "a", "other", se, at(2 * HOUR));
    assert_eq!((later.weight, later.down_weighted), (2, true));
    // Two minutes apart is no collusion.
    let mut s = state(Profile::Standard);
    report(&mut s, "a", "target", se, at(0));
    assert!(report(&mut s, "c", "target", se, at(61 * SEC)).held_with.is_empty());
}

/// CT-IMM-07: a reporter whose resolved reports of the last 30 days were
/// more than 80 % unconfirmed is suspended; reports its suspects confirm
/// with a deny of their own keep a reporter in good standing.
#[test]
fn ct_imm_07_a_reporter_of_false_alarms_is_suspended() {
    let mut s = state(Profile::Standard);
    let class = AnomalyClass::OutputQualityDegradation;
    for i in 0..5u64 {
        report(&mut s, "crier", &format!("healthy-{i}"), class, at(i * 2 * HOUR));
    }
    let when = at(8 * HOUR + CONFIRM_MS);
    let crier = s.reporter(&agent("crier")).unwrap();
    assert_eq!(crier.false_alarms_at(when.0), (5, 5));
    assert!(crier.suspended_at(when.0));
    let sixth = s.assess_report(&agent("crier"), &agent("healthy-9"), class, when);
    assert!(sixth.suspended && sixth.weight == 0, "{sixth:?}");
    // A reporter whose suspects were caught by their own denies.
    let probe = |id: &str| intent(id, "fs.read", ResourceKind::Path, "/srv/q3.txt", EffectClass::Observe);
    for i in 0..5u64 {
        let suspect = format!("prober-{i}");
        report(&mut s, "watcher", &suspect, class, at(i * 2 * HOUR));
        let mut req = request(&suspect, &["fs.read=/workspace/**"]);
        req.ttl_ms = Some(24 * HOUR);
        req.commander_ack = true;
        let t = token_from(req, 40 + i as u8);
        let d = maos_dsc::decide(&s, &probe(&suspect), Ok(&t), at(i * 2 * HOUR + 10 * SEC));
        assert_eq!(code(&d), Some("DSC-1-SCOPE"));
        s.apply(d.delta()).unwrap();
    }
    let watcher = s.reporter(&agent("watcher")).unwrap();
    assert_eq!(watcher.false_alarms_at(when.0), (5, 0));
    assert!(!watcher.suspended_at(when.0));
}

/// CT-IMM-08: reports put at most five agents in observation an hour on the
/// node (the quarantine budget); past it a report is logged, weighs nothing,
/// and says so; the budget comes back an hour later.
#[test]
fn ct_imm_08_reports_have_a_quarantine_budget() {
    let mut s = state(Profile::Standard);
    let se = AnomalyClass::SocialEngineering;
    let mut raised = 0;
    for i in 0..=RAISES_PER_HOUR_MAX as u64 {
        let suspect = format!("s{i}");
        // Three reporters each, two minutes apart (no collusion hold): 12, observation.
        let mut last = at(0);
        for k in 0..3u64 {
            last = at((i * 10 + k * 2) * 60 * SEC);
            let a = report(&mut s, &format!("r{i}-{k}"), &suspect, se, last);
            if k == 2 && i == RAISES_PER_HOUR_MAX as u64 {
                assert!(a.over_budget && a.weight == 0, "the sixth raise: {a:?}");
            }
        }
        if s.stage_of(&agent(&suspect), last) == Stage::Observation {
            raised += 1;
        }
    }
    assert_eq!(raised, RAISES_PER_HOUR_MAX);
    // An hour after the first raise the budget has room again.
    let a = report(&mut s, "r4", "s5", se, at(HOUR + 30 * 60 * SEC));
    assert!(!a.over_budget && a.weight == 4, "{a:?}");
    assert_eq!(s.stage_of(&agent("s5"), at(HOUR + 30 * 60 * SEC)), Stage::Observation);
}
