//! Profiling target: runs `decide()` on the benchmark's workload in a loop
//! (for `valgrind --tool=callgrind`). Same fixture as `benches/dsc.rs`.
//!
//! Run: `cargo build --profile bench -p maos-dsc --example decide_loop` then
//! `valgrind --tool=callgrind target/release/examples/decide_loop 2000`.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "profiling harness: a failure here is a failed run")]

#[path = "../benches/common/workload.rs"]
mod workload;

use maos_dsc::decide;
use maos_model::Profile;
use std::hint::black_box;
use workload::{AGENTS, NOW, fixture};

fn main() {
    let n: usize = std::env::args().nth(1).map_or(2000, |s| s.parse().unwrap());
    let fx = fixture(Profile::Standard);
    let mut allowed = 0usize;
    for i in 0..n {
        let j = i % AGENTS;
        if black_box(decide(&fx.state, &fx.intents[j], Ok(&fx.tokens[j]), NOW)).verdict().is_allow() {
            allowed += 1;
        }
    }
    println!("{allowed} of {n} allowed");
}
