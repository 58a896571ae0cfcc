//! Golden vectors in `samples/` pin the encoding: fixed keys, ids and time give
//! fixed signed bytes, and a stored token keeps verifying forever. Regenerate
//! only on a deliberate format change: `MAOS_REGENERATE_GOLDEN=1 cargo test -p maos-token golden`.

use crate::common::{NOW, kernel_key, keys, mint_at, request};
use maos_model::UnixMillis;
use maos_token::{RevocationState, UnverifiedToken, encode_signed_part};
use std::path::PathBuf;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples")
}

fn golden_token() -> maos_token::MintedToken {
    let mut req = request(
        "golden-agent",
        &[
            "fs.write=/workspace/**",
            "mail.send=*@example.com,boss@corp.example",
            "mcp:bank/transfer;amount<=100;currency=EUR|USD",
            "http.get=*.example.org",
        ],
    );
    req.mission = Some("Pay the approved invoice INV-7 to ACME.".into());
    mint_at(req, NOW, 3)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn golden_signed_part_is_stable() {
    let token = golden_token();
    let signed = encode_signed_part(token.claims()).expect("encode");
    let path = samples().join("token-v1-signed-part.hex");
    if std::env::var_os("MAOS_REGENERATE_GOLDEN").is_some() {
        std::fs::write(&path, hex(&signed) + "\n").expect("write golden");
        std::fs::write(samples().join("token-v1.txt"), format!("{}\n", token.text())).expect("write golden");
    }
    let expected = std::fs::read_to_string(&path).expect("golden file present");
    assert_eq!(hex(&signed), expected.trim(), "token encoding changed: bump FORMAT_VERSION, do not edit the vector");
}

#[test]
fn golden_token_still_verifies_and_decodes() {
    let text = std::fs::read_to_string(samples().join("token-v1.txt")).expect("golden token present");
    let token = UnverifiedToken::parse(&text).expect("golden token parses");
    let verified = token.verify(&keys(), UnixMillis(NOW.0 + 1), &RevocationState::new(3, Default::default()));
    let verified = verified.expect("golden token verifies with the fixed kernel key");
    assert_eq!(verified.claims(), golden_token().claims());
    assert_eq!(verified.claims().issuer, kernel_key().key_id());
    let expected = std::fs::read_to_string(samples().join("token-v1-signed-part.hex")).expect("golden");
    assert_eq!(hex(&token.as_bytes()[..expected.trim().len() / 2]), expected.trim());
}
