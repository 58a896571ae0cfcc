//! The MAOS Deterministic Security Core (spec §15): pure code that makes the
//! allow / deny / escalate decision for every agent intent.
//!
//! Guarantees:
//! - **Pure and deterministic.** [`decide`] is a function of (state, intent,
//!   token verification result, injected time): no I/O, no clock, no
//!   randomness, no hash-map iteration in outputs. The same inputs give the same
//!   [`Decision`], byte for byte ([`Decision::canonical_bytes`]).
//! - **All seven checks always run** and the verdict is their AND; the deny
//!   code is the first failing check's; every check's result is recorded.
//! - **Fail-closed.** An internal error in a check denies it (`DSC-INTERNAL`);
//!   a panic anywhere in the evaluation denies the whole decision.
//! - **The eleven Mandatory Rules are Rust** ([`rules`]); the profile MAC
//!   ([`mac`], Cedar) runs after them and can only add denies.
//! - **Immutable configuration.** [`DscConfig`] is built once, hashed with
//!   SHA3-256 and shared read-only; its hash is in every decision.
//! - **State changes only by deltas.** [`DscState::apply`] of a
//!   [`StateDelta`]; a kernel rebuilds the state by replaying the deltas.
//! - **Redundancy by profile.** Standard runs one instance, Hardened two
//!   (2-of-2), Isolated three (2-of-3); instances beta and gamma use the
//!   independent [`reference`](mod@crate::reference) model for checks 1 and 4.
//!
//! ```
//! use maos_dsc::{DscConfig, DscState, decide};
//! use maos_model::{Intent, Profile, UnixMillis};
//! use maos_token::TokenError;
//!
//! let config = DscConfig::default_for(Profile::Standard).unwrap();
//! let state = DscState::new(config);
//! let intent = Intent::from_json(br#"{"id":"0190a5f0-0000-7000-8000-000000000000",
//!     "agent":"mailer","action":"mail.send","effect":"irreversible","sink_level":"public",
//!     "resources":[{"kind":"recipient","value":"bob@example.com"}]}"#).unwrap();
//! let none = TokenError::UnknownToken("none presented".into());
//! let decision = decide(&state, &intent, Err(&none), UnixMillis(1_767_225_600_000));
//! assert_eq!(decision.verdict().deny_code().map(|c| c.as_str()), Some("DSC-1-NO-TOKEN"));
//! ```

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod checks;
mod config;
mod decision;
mod engine;
mod error;
pub mod fingerprint;
pub mod immune;
pub mod mac;
pub mod prefilter;
pub mod reference;
pub mod reporters;
pub mod rules;
mod state;

pub use config::{CHECK_DEFINITIONS_VERSION, DscConfig, DscConfigBuilder, RateTable, WORKSPACE_ROOT};
#[cfg(feature = "test-support")]
pub use decision::DecisionPartsMut;
pub use decision::{CheckId, CheckResult, Decision, Outcome, Vote, combine};
pub use engine::{Faults, decide, decide_injecting_faults, vote};
pub use error::DscError;
pub use state::{
    AgentUsage, BLOCKED_MAX, Blocked, DELTA_REVOKED_MAX, DeltaOp, DscSnapshot, DscState, FRAGMENT_BYTES_MAX,
    KernelHealth, SESSION_FRAGMENTS_MAX, STATE_AGENTS_MAX, STATE_TOKENS_MAX, Session, StateDelta, TokenUsage,
};
