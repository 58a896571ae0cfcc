//! Redundant DSC (spec §15.7–15.8): instance counts per profile, 2-of-2 and
//! 2-of-3 voting, divergence reported with both verdicts.

use crate::common::*;
use maos_dsc::{Faults, Vote, decide_injecting_faults, vote};
use maos_model::{DenyCode, Profile, Verdict};

#[test]
fn instance_count_follows_the_profile() {
    for (profile, n) in [(Profile::Standard, 1), (Profile::Hardened, 2), (Profile::Isolated, 3)] {
        let d = run(&state(profile), &fs_write("/workspace/a"), &writer());
        assert_eq!(d.votes().len(), n, "{profile}");
        assert_eq!(*d.verdict(), Verdict::Allow, "{profile}");
        assert!(!d.divergence());
    }
}

#[test]
fn hardened_divergence_denies_and_reports_both_verdicts() {
    let s = state(Profile::Hardened);
    let faults = Faults { fail_reference: true, ..Faults::NONE };
    let d = decide_injecting_faults(&s, &fs_write("/workspace/a"), Ok(&writer()), NOW, faults);
    assert_eq!(*d.verdict(), Verdict::deny(DenyCode::Divergence));
    assert!(d.divergence());
    assert_eq!(d.votes()[0].verdict, Verdict::Allow);
    assert_eq!(d.votes()[1].verdict, Verdict::deny(DenyCode::Internal));
}

#[test]
fn isolated_two_of_three_majority() {
    let allow = |i| Vote { instance: i, verdict: Verdict::Allow };
    let deny = |i| Vote { instance: i, verdict: Verdict::deny(DenyCode::Scope) };
    assert_eq!(vote(&[allow("alpha"), allow("beta"), deny("gamma")], 2), (Verdict::Allow, true));
    assert_eq!(vote(&[allow("alpha"), deny("beta"), deny("gamma")], 2), (Verdict::deny(DenyCode::Scope), true));
    let other = Vote { instance: "gamma", verdict: Verdict::deny(DenyCode::Rate) };
    assert_eq!(vote(&[allow("alpha"), deny("beta"), other], 2), (Verdict::deny(DenyCode::Divergence), true));
    assert_eq!(vote(&[allow("alpha"), deny("beta")], 2), (Verdict::deny(DenyCode::Divergence), true));
    let s = state(Profile::Isolated);
    let faults = Faults { fail_reference: true, ..Faults::NONE };
    let d = decide_injecting_faults(&s, &fs_write("/workspace/a"), Ok(&writer()), NOW, faults);
    assert_eq!(*d.verdict(), Verdict::deny(DenyCode::Internal), "beta and gamma outvote alpha, towards deny");
    assert!(d.divergence());
    // A failing instance is never outvoted into an allow: the fault in alpha's
    // check 1 denies although beta and gamma (reference check 1) allow.
    let faults = Faults { fail_check: Some(maos_dsc::CheckId::Token), ..Faults::NONE };
    let d = decide_injecting_faults(&s, &fs_write("/workspace/a"), Ok(&writer()), NOW, faults);
    assert_eq!(d.votes()[1].verdict, Verdict::Allow);
    assert_eq!(*d.verdict(), Verdict::deny(DenyCode::Internal));
}
