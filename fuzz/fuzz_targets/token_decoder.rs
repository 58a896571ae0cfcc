//! Fuzz the token decoder with arbitrary bytes and arbitrary text.
//! Run: `cargo +nightly fuzz run token_decoder` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = maos_token::UnverifiedToken::from_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = maos_token::UnverifiedToken::parse(text);
        let _ = maos_token::parse_permission(text);
    }
});
