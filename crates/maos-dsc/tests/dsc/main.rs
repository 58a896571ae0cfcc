//! Integration tests of maos-dsc: one test per check (CT ids where they
//! match), the redundant DSC, the pre-filter corpus, and property tests
//! (determinism, fail-closed, monotonicity, boundaries, differential, no panic).
//! One binary with modules, so fixtures (keys, tokens) are built once.

#[cfg(test)]
mod checks;
#[cfg(test)]
mod common;
#[cfg(test)]
mod corpus;
#[cfg(test)]
mod fingerprint;
#[cfg(test)]
mod immune;
#[cfg(test)]
mod immune_sim;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod redundancy;
#[cfg(test)]
mod reporters;
