//! Behavioural fingerprints through the real DSC (issue #14 item 7): the σ
//! ladder (CT-IMM-12), the sustained output rate (CT-IMM-13) and gradual
//! drift against the fixed baseline (CT-IMM-14). Logged time only: every
//! decision is made at a chosen time and its delta applied as the kernel
//! applies it.

use crate::common::*;
use maos_dsc::fingerprint::{FIXED_WINDOWS, Finding, Fingerprint, Metric, Response, Sample, WINDOW_MS};
use maos_dsc::immune::{SignalCode, Stage};
use maos_dsc::{DeltaOp, DscState, decide};
use maos_model::{UnixMillis, Verdict};
use maos_token::VerifiedToken;

fn long_writer() -> VerifiedToken {
    let mut req = request("writer", &["fs.write=/workspace/**", "fs.read=/workspace/**"]);
    req.ttl_ms = Some(24 * 3_600_000);
    req.commander_ack = true;
    req.max_ops = 1_000_000;
    req.budget = 1_000_000;
    token_from(req, 7)
}

/// The start of the `k`-th window after the one `NOW` is in.
fn window_ms(k: u64) -> u64 {
    (NOW.0 / WINDOW_MS + k) * WINDOW_MS
}

fn fingerprint_op(d: &maos_dsc::Decision) -> Option<(Vec<Finding>, Response)> {
    d.delta().ops.iter().find_map(|op| match op {
        DeltaOp::Fingerprint { findings, response, .. } => Some((findings.clone(), *response)),
        _ => None,
    })
}

/// `calls` workspace writes with `body`, one a second from the start of
/// window `k`; the fingerprint op of each decision.
fn window(s: &mut DscState, t: &VerifiedToken, k: u64, calls: u64, body: &str) -> Vec<(Vec<Finding>, Response)> {
    (0..calls)
        .map(|i| {
            let intent = with_arg(fs_write("/workspace/a.md"), "body", body);
            let d = decide(s, &intent, Ok(t), UnixMillis(window_ms(k) + i * 1000));
            assert_eq!(*d.verdict(), Verdict::Allow, "window {k} call {i}");
            s.apply(d.delta()).expect("applies");
            fingerprint_op(&d).expect("every decision of its own token is sampled")
        })
        .collect()
}

/// The highest σ found for `metric`, live (`closed` false) or over a closed window.
fn sigma(ops: &[(Vec<Finding>, Response)], metric: &Metric, closed: bool) -> u8 {
    ops.iter()
        .flat_map(|(f, _)| f)
        .filter_map(|f| match f {
            Finding::Deviation { metric: m, sigma, closed: c, .. } if m == metric && *c == closed => Some(*sigma),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// 14 windows alternating 10 and 30 calls: mean 20, σ 10 (above the floor).
fn baseline(t: &VerifiedToken) -> DscState {
    let mut s = state(maos_model::Profile::Standard);
    for k in 0..14 {
        let ops = window(&mut s, t, k, if k % 2 == 0 { 10 } else { 30 }, "");
        assert!(ops.iter().all(|(_, r)| *r == Response::default()), "a baseline is learned, never judged early");
    }
    s
}

/// CT-IMM-12: synthetic deviations of 1, 2, 3 and 4σ are logged, alert,
/// signal (observation) and pause (stage 3 pending review).
#[test]
fn ct_imm_12_fingerprint_sigma_ladder() {
    let t = long_writer();
    let base = baseline(&t);
    let writer = agent("writer");
    for (level, calls) in [(1u8, 30u64), (2, 40), (3, 50), (4, 60)] {
        let mut s = base.clone();
        let mut ops = window(&mut s, &t, 14, calls, "");
        let live = sigma(&ops, &Metric::Calls, false);
        assert_eq!(live, level, "{calls} calls against mean 20, sigma 10");
        assert_eq!(sigma(&ops, &Metric::Tool("fs.write".into()), false), level, "calls per tool too");
        let stage = s.stage_of(&writer, UnixMillis(window_ms(15)));
        let summary = s.fingerprint(&writer).expect("fingerprinted").summary(window_ms(15));
        match level {
            1 => {
                assert_eq!(stage, Stage::Normal, "1 sigma is only logged");
                assert!(summary.alerts.is_empty());
            }
            2 => {
                assert_eq!(stage, Stage::Normal, "2 sigma alerts, no signal");
                assert!(summary.alerts.iter().any(|a| a.finding.is_alert()), "{summary:?}");
            }
            3 => {
                assert_eq!(stage, Stage::Observation, "3 sigma is a danger signal");
                let standing = s.standing(&writer).expect("standing");
                assert_eq!(standing.last_code(), Some(SignalCode::Fingerprint));
                assert_eq!(standing.score_at(window_ms(15)), maos_dsc::fingerprint::SIGNAL_3_SIGMA);
                assert_eq!(ops.iter().filter(|(_, r)| r.signal > 0).count(), 1, "one signal per window");
            }
            _ => {
                assert_eq!(stage, Stage::HardIsolation, "4 sigma pauses");
                assert!(s.standing(&writer).is_some_and(|st| st.paused));
                let d = decide(&s, &fs_write("/workspace/a.md"), Ok(&t), UnixMillis(window_ms(15)));
                assert_eq!(code(&d), Some("IMM-STAGE-3"));
                let detail = format!("{:?}", d.check(maos_dsc::CheckId::MandatoryRules).outcome);
                assert!(detail.contains("its behaviour alone"), "the agent is told why: {detail}");
                assert!(fingerprint_op(&d).is_none(), "a frozen agent's fingerprint stands still");
                continue;
            }
        }
        // The next window closes this one: judged whole, the same level,
        // which the open window reported already: nothing new, no second response.
        ops = window(&mut s, &t, 15, 1, "");
        assert_eq!(sigma(&ops, &Metric::Calls, true), 0, "closed window: nothing new");
        assert!(ops.iter().all(|(_, r)| *r == Response::default()), "no second response to the same window");
    }
}

/// CT-IMM-13: an output rate more than 2σ above the baseline sustained over
/// a whole window is a low-priority danger signal; 2σ part-way is not.
#[test]
fn ct_imm_13_sustained_output_rate_is_a_low_priority_signal() {
    let t = long_writer();
    let mut s = state(maos_model::Profile::Standard);
    // 10 calls a window of 400 or 600 bytes each: 4,000 / 6,000 bytes, mean
    // 5,000, σ 1,000 (floored at a quarter of the mean: 1,250).
    for k in 0..14 {
        window(&mut s, &t, k, 10, &"x".repeat(if k % 2 == 0 { 400 } else { 600 }));
    }
    let ops = window(&mut s, &t, 14, 10, &"x".repeat(800));
    assert_eq!(sigma(&ops, &Metric::OutputBytes, false), 2, "8,000 bytes: 2.4 sigma");
    assert!(ops.iter().all(|(_, r)| *r == Response::default()), "part-way is not sustained");
    let close = window(&mut s, &t, 15, 1, "");
    assert_eq!(sigma(&close, &Metric::OutputBytes, true), 2);
    assert_eq!(close[0].1.signal, maos_dsc::fingerprint::SIGNAL_OUTPUT_RATE);
    let standing = s.standing(&agent("writer")).expect("signalled");
    assert_eq!(standing.score_at(window_ms(15)), 2, "low priority: weight 2");
    assert_eq!(s.stage_of(&agent("writer"), UnixMillis(window_ms(15))), Stage::Normal);
    assert_eq!(standing.last_code().map(SignalCode::as_str), Some("IMM-FINGERPRINT"));
}

/// Denies and new recipients count; fewer calls never alert (an idle or
/// short window says nothing).
#[test]
fn denies_count_and_fewer_calls_never_alert() {
    let t = long_writer();
    let base = baseline(&t);
    let mut s = base.clone();
    let ops = window(&mut s, &t, 14, 1, "");
    let close = window(&mut s, &t, 15, 1, "");
    assert_eq!(sigma(&ops, &Metric::Calls, false) + sigma(&close, &Metric::Calls, true), 0, "one call: fewer");
    // Scope probes in one window against a baseline of no denies (σ is the
    // floor, 2): the sixth is 3σ (a signal), the eighth 4σ (a pause), while
    // the probes' own signals (2 each) stay below soft isolation.
    let mut s = base;
    let mut paused = false;
    for i in 0..9 {
        let d = decide(&s, &fs_write("/srv/shared/notes.md"), Ok(&t), UnixMillis(window_ms(14) + i * 1000));
        assert!(d.verdict().deny_code().is_some());
        paused |= fingerprint_op(&d).is_some_and(|(_, r)| r.pause);
        s.apply(d.delta()).expect("applies");
    }
    assert!(paused, "8 denies in a window with a baseline of 0 are 4 sigma");
    let standing = s.standing(&agent("writer")).expect("standing");
    assert!(!standing.paused, "its own denies are evidence: an ordinary stage 3, not a pause awaiting review");
    assert_eq!(s.stage_of(&agent("writer"), UnixMillis(window_ms(14) + 9_000)), Stage::HardIsolation);
    let d = decide(&s, &fs_write("/workspace/a.md"), Ok(&t), UnixMillis(window_ms(14) + 9_000));
    assert_eq!(code(&d), Some("IMM-STAGE-3"));
}

/// CT-IMM-14: a drift of more than 15 % from the fixed baseline over 30
/// days, each window within the adaptive baseline's spread, raises a
/// Gradual Drift Alert (at the fingerprint itself: the fold the DSC runs).
#[test]
fn ct_imm_14_gradual_drift_alert() {
    let mut fp = Fingerprint::default();
    let sample = Sample { tool: "fs.write".into(), denied: false, output_bytes: 0, egress_bytes: 0, new_recipients: 0 };
    let feed = |fp: &mut Fingerprint, start_ms: u64, calls: u64| -> Vec<(u64, Finding)> {
        let mut found = Vec::new();
        for i in 0..calls {
            let at = start_ms + i * 1000;
            let (findings, response) = fp.judge(&sample, at);
            assert_eq!(response, Response::default(), "a slow drift never signals or pauses");
            found.extend(findings.iter().cloned().map(|f| (at, f)));
            fp.fold(&sample, at, &findings, response);
        }
        found
    };
    // One day of activity in every window: the fixed baseline, 18 or 22 calls.
    let day0 = window_ms(0);
    for k in 0..u64::from(FIXED_WINDOWS) {
        feed(&mut fp, day0 + k * WINDOW_MS, if k % 2 == 0 { 18 } else { 22 });
    }
    // Then one active window an hour for 30 days, the mean rising from 20
    // to 26 (30 %) in steps of at most a tenth of a call a window.
    let start = day0 + u64::from(FIXED_WINDOWS) * WINDOW_MS;
    let mut drift_at = None;
    let mut highest = 0u8;
    for h in 0..30 * 24u64 {
        let mean = 20 + h * 6 / (30 * 24);
        let calls = if h % 2 == 0 { mean - 2 } else { mean + 2 };
        for (at, f) in feed(&mut fp, start + h * 3_600_000, calls) {
            match f {
                Finding::Deviation { sigma, .. } => highest = highest.max(sigma),
                Finding::Drift { metric: Metric::Calls, drifting: true, .. } => {
                    drift_at.get_or_insert(at);
                }
                Finding::Drift { .. } => {}
            }
        }
    }
    let days = drift_at.map(|at| (at - start) / 86_400_000);
    println!("gradual drift alert after {days:?} days; highest deviation {highest} sigma");
    assert!(highest <= 1, "each window within the adaptive baseline: {highest} sigma");
    assert!(days.is_some_and(|d| d < 30), "drift alert within 30 days: {days:?}");
    let summary = fp.summary(start + 30 * 86_400_000);
    assert!(summary.drifting.contains(&"calls".to_owned()), "{summary:?}");
    assert!(summary.alerts.iter().any(|a| matches!(a.finding, Finding::Drift { .. })));
}

/// A deny that can mean a node fault or bookkeeping (over its rate, out of
/// budget) is a call, not a deny, for the fingerprint: only denies that are
/// danger signals count (an unhealthy node must not pause busy agents).
#[test]
fn bookkeeping_denies_are_not_counted_as_denies() {
    let config = maos_dsc::DscConfig::builder(maos_model::Profile::Standard)
        .rates(maos_dsc::RateTable { ring2_per_hour: 1, ring3_per_hour: 1 })
        .build()
        .unwrap();
    let mut s = DscState::new(config);
    let t = long_writer();
    let d = decide(&s, &fs_write("/workspace/a.md"), Ok(&t), NOW);
    s.apply(d.delta()).unwrap();
    let over = decide(&s, &fs_write("/workspace/a.md"), Ok(&t), NOW);
    assert_eq!(code(&over), Some("DSC-2-RATE"));
    let sample = over.delta().ops.iter().find_map(|op| match op {
        DeltaOp::Fingerprint { sample, .. } => Some(sample.clone()),
        _ => None,
    });
    assert_eq!(sample.map(|s| s.denied), Some(false), "a call, not a deny");
}

/// The table of fingerprints is bounded: past it the agent idle longest
/// makes room, so new agents are always seen.
#[test]
fn the_fingerprint_table_evicts_the_stalest_agent() {
    use maos_dsc::fingerprint::FINGERPRINTS_MAX;
    let mut s = state(maos_model::Profile::Standard);
    let sample = Sample { tool: "fs.write".into(), denied: false, output_bytes: 1, egress_bytes: 0, new_recipients: 0 };
    let op = |id: String, at: u64| maos_dsc::StateDelta {
        ops: vec![DeltaOp::Fingerprint {
            agent: agent(&id),
            at_ms: at,
            sample: sample.clone(),
            findings: Vec::new(),
            response: Response::default(),
        }],
    };
    for i in 0..=FINGERPRINTS_MAX as u64 {
        // agent-0 acted first and never again: the stalest.
        s.apply(&op(format!("agent-{i}"), NOW.0 + i)).unwrap();
    }
    assert!(s.fingerprint(&agent("agent-0")).is_none(), "evicted");
    assert!(s.fingerprint(&agent("agent-1")).is_some());
    assert!(s.fingerprint(&agent(&format!("agent-{FINGERPRINTS_MAX}"))).is_some(), "the newest is seen");
}
