//! DSC decision latency and throughput on one core, warm token.
//!
//! Run: `cargo bench -p maos-dsc --bench dsc`
//!
//! Realistic configuration: 50 agents, each with its own action; 200 extra
//! Cedar policies (4 per action) on top of the profile defaults, sliced per
//! action; sessions with reads. Prints p50/p99 of N single decisions (timed
//! with `Instant`, sorted), decisions per second, the cost split per check,
//! and `cedar-policy` alone on the same sliced set, then runs criterion.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark harness: a failure here is a failed run")]

#[path = "common/workload.rs"]
mod workload;

use criterion::{Criterion, criterion_group, criterion_main};
use maos_dsc::checks::{
    CheckInput, check_1_token, check_2_rate, check_3_budget, check_4_ifc, check_5_rules, check_6_epoch,
    check_7_prefilter, mac_request,
};
use maos_dsc::decide;
use maos_model::Profile;
use std::hint::black_box;
use std::time::{Duration, Instant};
use workload::{AGENTS, NOW, action, fixture};

const SAMPLES: usize = 20_000;

fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)]
}

fn time_each(n: usize, mut f: impl FnMut(usize)) -> (Duration, Duration, Duration) {
    for i in 0..1000 {
        f(i);
    }
    let mut samples = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        f(i);
        samples.push(t.elapsed());
    }
    let total = start.elapsed();
    samples.sort();
    (percentile(&samples, 50), percentile(&samples, 99), total / u32::try_from(n).unwrap())
}

fn report(profile: Profile) {
    let fx = fixture(profile);
    let idx = |i: usize| i % AGENTS;
    let decision = decide(&fx.state, &fx.intents[0], Ok(&fx.tokens[0]), NOW);
    let verdict = decision.verdict();
    assert!(verdict.is_allow(), "bench intent must be allowed (full path): {verdict:?}");
    let start = Instant::now();
    let (p50, p99, mean) = time_each(SAMPLES, |i| {
        black_box(decide(&fx.state, &fx.intents[idx(i)], Ok(&fx.tokens[idx(i)]), NOW));
    });
    let elapsed = start.elapsed();
    let per_sec = u128::from(u32::try_from(SAMPLES + 1000).unwrap()) * 1_000_000_000 / elapsed.as_nanos().max(1);
    println!(
        "\n== {profile}: {AGENTS} agents, {} policies, slice {} (evaluated after load-time pruning: {}) ==",
        fx.state.config().mac().policy_count(),
        fx.state.config().mac().slice_len(&action(0)),
        fx.state.config().mac().evaluated_len(&action(0))
    );
    println!("decide (all 7 checks): p50 {p50:?}  p99 {p99:?}  mean {mean:?}  ~{per_sec} decisions/s (1 core)");
    if profile != Profile::Standard {
        return;
    }
    type CheckFn = fn(&CheckInput<'_>) -> maos_dsc::Outcome;
    let checks: [(&str, CheckFn); 7] = [
        ("1 token", check_1_token),
        ("2 rate", check_2_rate),
        ("3 budget", check_3_budget),
        ("4 ifc", check_4_ifc),
        ("5 rules+MAC", check_5_rules),
        ("6 epoch", check_6_epoch),
        ("7 prefilter", check_7_prefilter),
    ];
    for (name, check) in checks {
        let (p50, p99, mean) = time_each(SAMPLES, |i| {
            let input = CheckInput::new(&fx.state, &fx.intents[idx(i)], Ok(&fx.tokens[idx(i)]), NOW);
            black_box(check(&input));
        });
        println!("  check {name:<12} p50 {p50:?}  p99 {p99:?}  mean {mean:?}");
    }
    let mac = fx.state.config().mac();
    let (p50, p99, mean) = time_each(SAMPLES, |i| {
        let input = CheckInput::new(&fx.state, &fx.intents[idx(i)], Ok(&fx.tokens[idx(i)]), NOW);
        black_box(mac.evaluate(&mac_request(&input)));
    });
    println!("  MAC incl. request/context building   p50 {p50:?}  p99 {p99:?}  mean {mean:?}");
    let requests: Vec<cedar_policy::Request> = (0..AGENTS)
        .map(|i| {
            let input = CheckInput::new(&fx.state, &fx.intents[i], Ok(&fx.tokens[i]), NOW);
            mac.build_request(&mac_request(&input)).unwrap()
        })
        .collect();
    let (p50, p99, mean) = time_each(SAMPLES, |i| {
        black_box(mac.authorize(&requests[idx(i)], &fx.intents[idx(i)].action));
    });
    println!(
        "  cedar-policy alone (sliced set, {} evaluated)   p50 {p50:?}  p99 {p99:?}  mean {mean:?}",
        mac.evaluated_len(&action(0))
    );
    // Requests for an unlisted action, built with the fields its (defaults) slice reads.
    let unlisted: Vec<cedar_policy::Request> = (0..AGENTS)
        .map(|i| {
            let input = CheckInput::new(&fx.state, &fx.intents[i], Ok(&fx.tokens[i]), NOW);
            mac.build_request(&maos_dsc::mac::MacRequest { action: "unlisted.action", ..mac_request(&input) }).unwrap()
        })
        .collect();
    let (p50, p99, mean) = time_each(SAMPLES, |i| {
        black_box(mac.authorize(&unlisted[idx(i)], "unlisted.action"));
    });
    println!(
        "  cedar-policy alone, defaults slice ({} evaluated)   p50 {p50:?}  p99 {p99:?}  mean {mean:?}",
        mac.evaluated_len("unlisted.action")
    );
    let (p50, p99, mean) = time_each(SAMPLES, |i| {
        let input = CheckInput::new(&fx.state, &fx.intents[idx(i)], Ok(&fx.tokens[idx(i)]), NOW);
        black_box(mac.build_request(&mac_request(&input)).is_ok());
    });
    println!("  request/context building only        p50 {p50:?}  p99 {p99:?}  mean {mean:?}");
}

fn benches(c: &mut Criterion) {
    report(Profile::Standard);
    report(Profile::Hardened);
    report(Profile::Isolated);
    let fx = fixture(Profile::Standard);
    c.bench_function("decide_standard_warm_token", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % AGENTS;
            black_box(decide(&fx.state, &fx.intents[i], Ok(&fx.tokens[i]), NOW))
        });
    });
    let mac = fx.state.config().mac();
    let input = CheckInput::new(&fx.state, &fx.intents[0], Ok(&fx.tokens[0]), NOW);
    let request = mac.build_request(&mac_request(&input)).unwrap();
    c.bench_function("cedar_alone_sliced", |b| b.iter(|| black_box(mac.authorize(&request, &fx.intents[0].action))));
}

criterion_group! {
    name = dsc;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(dsc);
