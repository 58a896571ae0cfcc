//! The built-in effectors, so the embedded default works with nothing installed.

pub mod fs;
pub mod http;
pub mod mail;
pub mod noop;

/// SHA3-256 of `parts` joined with a NUL separator (world-state hashes).
pub(crate) fn state_hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut data = Vec::new();
    for part in parts {
        data.extend_from_slice(part);
        data.push(0);
    }
    maos_crypto::sha3_256(&data).0
}

/// The single string argument `name`, or an error naming it.
pub(crate) fn str_arg<'a>(intent: &'a maos_model::Intent, name: &str) -> Result<&'a str, crate::EffectError> {
    intent
        .args
        .get(name)
        .and_then(maos_model::ArgValue::as_str)
        .ok_or_else(|| crate::EffectError::Invalid(format!("missing string argument `{name}`")))
}
