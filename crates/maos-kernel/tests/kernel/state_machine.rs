//! CT-SM-05: the canonical-state machine (spec §38.11, §38.8) as a
//! machine-checkable artifact, `docs/state-machines/canonical-states.json`,
//! checked against the kernel's pure derivation for every combination of its
//! atoms: the state, whether a human must act, the degraded modes, and
//! whether effects may run. A change to either side without the other fails.

use maos_kernel::Mode;
use maos_kernel::posture::{Capacity, Component, Conditions, Posture};
use serde_json::Value;
use std::collections::BTreeMap;

fn artifact() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/state-machines/canonical-states.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `a | b & !c` over atoms and derived names (`&` binds tighter; no parentheses).
fn eval(expr: &str, atoms: &BTreeMap<&str, bool>, derived: &BTreeMap<String, String>) -> bool {
    expr.split('|').any(|any| {
        any.split('&').all(|term| {
            let term = term.trim();
            match term.strip_prefix('!') {
                Some(rest) => !eval(rest, atoms, derived),
                None => match term {
                    "true" => true,
                    "false" => false,
                    name => atoms.get(name).copied().unwrap_or_else(|| {
                        let d = derived.get(name).unwrap_or_else(|| panic!("unknown name `{name}` in the artifact"));
                        eval(d, atoms, derived)
                    }),
                },
            }
        })
    })
}

#[test]
fn ct_sm_05_the_canonical_state_artifact_matches_the_kernel_for_every_combination() {
    let a = artifact();
    let derived: BTreeMap<String, String> =
        a["derived"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
    let states = a["states"].as_array().unwrap();
    let modes = a["modes"].as_array().unwrap();
    let mut atom_names: Vec<&str> = a["atoms"].as_object().unwrap().keys().map(String::as_str).collect();
    atom_names.sort_unstable();
    let why = "x".to_owned();
    let kernel_modes = [
        Mode::Normal,
        Mode::RecoveryHold,
        Mode::CommitFreeze { why: why.clone() },
        Mode::ThinkDontCommit { why: why.clone() },
        Mode::Emergency { why },
    ];
    let unresponsive_sets: [&[Component]; 4] =
        [&[], &[Component::Sequencer], &[Component::McpUpstreams], &[Component::Dsc, Component::McpUpstreams]];
    let mut checked = 0u32;
    for mode in &kernel_modes {
        for integrity in [None, Some("config hash")] {
            for disk in [None, Some(80u8), Some(95), Some(99)] {
                for unresponsive in unresponsive_sets {
                    for capacity in [Capacity::Normal, Capacity::Reduced, Capacity::Critical] {
                        for bits in 0u8..32 {
                            let bit = |n: u8| bits & (1 << n) != 0;
                            let c = Conditions {
                                mode,
                                lockdown: bit(0),
                                unresponsive,
                                heartbeats_valid: bit(1),
                                voter_ok: bit(2),
                                rollback_ok: bit(3),
                                disk_used_pct: disk,
                                integrity,
                                evaluator: bit(4),
                                capacity,
                                memory_used_pct: Some(50),
                            };
                            let atoms: BTreeMap<&str, bool> = BTreeMap::from([
                                ("emergency", matches!(mode, Mode::Emergency { .. })),
                                (
                                    "sticky_freeze",
                                    matches!(
                                        mode,
                                        Mode::CommitFreeze { .. }
                                            | Mode::ThinkDontCommit { .. }
                                            | Mode::Emergency { .. }
                                    ),
                                ),
                                ("recovery_hold", *mode == Mode::RecoveryHold),
                                ("integrity", integrity.is_some()),
                                ("disk_95", disk.is_some_and(|d| d >= 95)),
                                ("disk_99", disk.is_some_and(|d| d >= 99)),
                                ("ring0_unresponsive", unresponsive.iter().any(|c| c.ring() == 0)),
                                ("ring1_unresponsive", unresponsive.iter().any(|c| c.ring() == 1)),
                                ("lockdown", bit(0)),
                                ("heartbeats_valid", bit(1)),
                                ("voter_ok", bit(2)),
                                ("rollback_ok", bit(3)),
                                ("evaluator", bit(4)),
                                ("memory_pressure", capacity != Capacity::Normal),
                            ]);
                            assert_eq!(atoms.keys().copied().collect::<Vec<_>>(), atom_names, "the atoms listed");
                            let p = Posture::derive(&c);
                            let expected = states
                                .iter()
                                .find(|s| eval(s["when"].as_str().unwrap(), &atoms, &derived))
                                .unwrap_or_else(|| panic!("no state for {atoms:?}"));
                            let context = format!("{atoms:?} → {p:?}");
                            assert_eq!(p.state.name(), expected["name"], "{context}");
                            let ack = eval(expected["human_ack"].as_str().unwrap(), &atoms, &derived);
                            assert_eq!(p.human_ack, ack, "human_ack: {context}");
                            assert_eq!(p.state.effects_allowed(), expected["effects"], "effects: {context}");
                            let want: Vec<u64> = modes
                                .iter()
                                .filter(|m| eval(m["when"].as_str().unwrap(), &atoms, &derived))
                                .map(|m| m["number"].as_u64().unwrap())
                                .collect();
                            let got: Vec<u64> = p.modes.iter().map(|m| u64::from(m.number())).collect();
                            assert_eq!(got, want, "modes: {context}");
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 5 * 2 * 4 * 4 * 3 * 32);
}

#[test]
fn the_artifact_names_every_state_once() {
    let a = artifact();
    let mut names: Vec<&str> = a["states"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut all = vec!["AMBER", "GREEN", "ORANGE", "PRE-OP", "RECOVERY-HOLD", "RED", "SAFE-HOLD", "YELLOW"];
    all.sort_unstable();
    assert_eq!(names, all);
}
