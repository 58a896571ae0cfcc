//! Fuzz the intent parser (the DSC's input sanitizer) and, for every intent it
//! accepts, the full decision: neither may panic, and a decision without a
//! token must never allow.
//! Run: `cargo +nightly fuzz run intent_parser` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn state() -> &'static maos_dsc::DscState {
    static STATE: OnceLock<maos_dsc::DscState> = OnceLock::new();
    STATE.get_or_init(|| {
        let config = maos_dsc::DscConfig::default_for(maos_model::Profile::Standard).expect("default config");
        maos_dsc::DscState::new(config)
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(intent) = maos_model::Intent::from_json(data) {
        let none = maos_token::TokenError::UnknownToken("fuzz".into());
        let decision = maos_dsc::decide(state(), &intent, Err(&none), maos_model::UnixMillis(1_767_225_600_000));
        assert!(!decision.verdict().is_allow(), "no token must never allow");
    }
});
