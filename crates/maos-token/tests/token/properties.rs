//! Property tests (CT-INV-04 no privilege escalation through delegation, CT-CAP-01
//! signature integrity, CT-DEG-10 input sanitizer) on stable Rust; `fuzz/` holds
//! the nightly fuzz target for the same decoder.

use crate::common::{NOW, fresh, kernel_key, keys, mint_at, other_key, perms, request};
use maos_crypto::{MLDSA65_SIGNATURE_LEN, Signature};
use maos_model::{AgentId, IfcLevel, UnixMillis};
use maos_token::{
    DeriveRequest, MintedToken, ResourceRef, ScopeKind, TokenEvent, TokenIssued, TokenRegistry, UnverifiedToken, derive,
};
use proptest::prelude::*;
use std::sync::OnceLock;

fn sample_token() -> &'static MintedToken {
    static TOKEN: OnceLock<MintedToken> = OnceLock::new();
    TOKEN.get_or_init(|| mint_at(request("sample", &["fs.write=/workspace/**", "mail.send=*@example.com"]), NOW, 0))
}

const PARENT_PERMS: &[&str] = &[
    "fs.*=/workspace/**",
    "fs.read=/data/*",
    "mail.send=*@example.com",
    "http.get=*.example.org",
    "mcp:bank/*;amount<=100",
];
const CHILD_PERMS: &[&str] = &[
    "fs.write=/workspace/out/**",
    "fs.write=/workspace/*",
    "fs.read=/data/a.csv",
    "fs.read=/data/**",
    "fs.delete=/**",
    "mail.send=bob@example.com",
    "mail.send=*@evil.com",
    "http.get=api.example.org",
    "http.get=example.org",
    "mcp:bank/transfer;amount<=50",
    "mcp:bank/transfer",
    "mcp:bank/transfer;amount<=500",
    "net.connect=*",
];
const PROBES: &[(&str, ScopeKind, &str, Option<&str>)] = &[
    ("fs.write", ScopeKind::Path, "/workspace/out/a", None),
    ("fs.write", ScopeKind::Path, "/workspace/a", None),
    ("fs.read", ScopeKind::Path, "/data/a.csv", None),
    ("fs.read", ScopeKind::Path, "/data/x/y", None),
    ("fs.delete", ScopeKind::Path, "/etc/passwd", None),
    ("mail.send", ScopeKind::Recipient, "bob@example.com", None),
    ("mail.send", ScopeKind::Recipient, "eve@evil.com", None),
    ("http.get", ScopeKind::Domain, "api.example.org", None),
    ("http.get", ScopeKind::Domain, "example.org", None),
    ("mcp:bank/transfer", ScopeKind::Resource, "acct-1", Some("40")),
    ("mcp:bank/transfer", ScopeKind::Resource, "acct-1", Some("400")),
    ("net.connect", ScopeKind::Domain, "evil.com", None),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever a child is asked to hold, a successful derive never lets it do
    /// anything its parent could not, and never raises a number.
    #[test]
    fn derive_never_widens(
        parent_mask in 1u32..(1 << PARENT_PERMS.len()),
        child_picks in proptest::collection::vec(0..CHILD_PERMS.len(), 1..4),
        rate in 1u32..1200, max_ops in 1u64..2000, budget in 0u64..800,
        clearance in 0u8..4, ttl in proptest::option::of(1u64..8_000_000),
    ) {
        let parent_list: Vec<&str> =
            PARENT_PERMS.iter().enumerate().filter(|(i, _)| parent_mask & (1 << i) != 0).map(|(_, p)| *p).collect();
        let mut reg = TokenRegistry::new();
        let root = mint_at(request("root", &parent_list), NOW, 0);
        reg.apply(&TokenEvent::Issued(TokenIssued::from_minted(&root))).unwrap();
        let root_v = UnverifiedToken::parse(root.text()).unwrap().verify(&keys(), NOW, &fresh()).unwrap();
        let child_list: Vec<&str> = child_picks.iter().map(|i| CHILD_PERMS[*i]).collect();
        let req = DeriveRequest {
            agent: AgentId::new("child").unwrap(),
            ring: None,
            clearance: IfcLevel::from_code(clearance),
            permissions: perms(&child_list),
            ttl_ms: ttl,
            rate_per_hour: Some(rate),
            max_ops: Some(max_ops),
            budget,
        };
        if let Ok(child) = derive(&kernel_key(), &root_v, req, NOW, &reg, [3; 10]) {
            let (c, p) = (child.claims(), root.claims());
            prop_assert!(c.rate_per_hour <= p.rate_per_hour);
            prop_assert!(c.max_ops <= p.max_ops);
            prop_assert!(c.budget <= p.budget);
            prop_assert!(c.clearance <= p.clearance);
            prop_assert!(c.expires <= p.expires);
            prop_assert!(c.ring.code() >= p.ring.code());
            for (action, kind, value, amount) in PROBES {
                let args: std::collections::BTreeMap<String, String> =
                    amount.iter().map(|a| ("amount".to_owned(), (*a).to_owned())).collect();
                let r = [ResourceRef { kind: *kind, value }];
                if c.permission_for(action, &r, &args).is_some() {
                    prop_assert!(p.permission_for(action, &r, &args).is_some(),
                        "child may {action} {value} but parent may not");
                }
            }
        }
    }

    /// Flipping any bits of any single byte breaks the token.
    #[test]
    fn any_single_byte_change_fails_verification(index in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = sample_token().bytes().to_vec();
        let i = index.index(bytes.len());
        bytes[i] ^= flip;
        let result = UnverifiedToken::from_bytes(&bytes).and_then(|t| t.verify(&keys(), NOW, &fresh()));
        prop_assert!(result.is_err(), "byte {i} ^ {flip:#x} still verified");
    }

    /// The decoder never panics on arbitrary bytes, and only accepts what re-encodes identically.
    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
        let _ = UnverifiedToken::from_bytes(&bytes);
    }

    /// Arbitrary text never panics the parser.
    #[test]
    fn parser_never_panics_on_arbitrary_text(text in ".{0,300}") {
        let _ = UnverifiedToken::parse(&text);
        let _ = UnverifiedToken::parse(&format!("maos1.{text}"));
        let _ = maos_token::parse_permission(&text);
    }

    /// Structure-aware mutation: truncations and splices of a real token never panic
    /// and never verify.
    #[test]
    fn truncated_or_spliced_tokens_fail(cut in any::<prop::sample::Index>(), junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let bytes = sample_token().bytes();
        let at = cut.index(bytes.len());
        let mut spliced = bytes[..at].to_vec();
        spliced.extend_from_slice(&junk);
        if spliced != bytes {
            let result = UnverifiedToken::from_bytes(&spliced).and_then(|t| t.verify(&keys(), NOW, &fresh()));
            prop_assert!(result.is_err());
        }
    }

    /// Verification at any time inside the window succeeds, outside fails.
    #[test]
    fn validity_window_is_exact(offset in 0u64..(2 * 60 * 60 * 1000)) {
        let t = UnverifiedToken::from_bytes(sample_token().bytes()).unwrap();
        let exp = sample_token().claims().expires;
        let now = UnixMillis(NOW.0 + offset);
        prop_assert_eq!(t.verify(&keys(), now, &fresh()).is_ok(), now < exp);
    }
}

#[test]
fn ct_cap_01_stripping_or_swapping_either_half_fails() {
    let token = sample_token();
    let bytes = token.bytes();
    let sig_at = bytes.len() - maos_crypto::SIGNATURE_LEN;
    let ours = Signature::from_bytes(&bytes[sig_at..]).unwrap();
    let foreign = other_key().sign(maos_crypto::SignatureDomain::CapabilityToken, &bytes[..sig_at]).unwrap();
    let zero_ml = vec![0u8; MLDSA65_SIGNATURE_LEN];
    let zero_ed = [0u8; 64];
    let variants = [
        Signature::from_parts(&zero_ml, ours.ed25519_part()).unwrap(),
        Signature::from_parts(ours.mldsa_part(), &zero_ed).unwrap(),
        Signature::from_parts(foreign.mldsa_part(), ours.ed25519_part()).unwrap(),
        Signature::from_parts(ours.mldsa_part(), foreign.ed25519_part()).unwrap(),
        Signature::from_parts(
            ours.ed25519_part().repeat(52).get(..MLDSA65_SIGNATURE_LEN).unwrap(),
            ours.ed25519_part(),
        )
        .unwrap(),
    ];
    for (i, sig) in variants.iter().enumerate() {
        let mut forged = bytes[..sig_at].to_vec();
        forged.extend_from_slice(sig.as_bytes());
        let err = UnverifiedToken::from_bytes(&forged).unwrap().verify(&keys(), NOW, &fresh()).unwrap_err();
        assert_eq!(err.code(), "TOKEN-SIGNATURE", "variant {i}");
    }
    // A token re-signed by a key we do not trust, under our issuer id, also fails.
    let mut forged = bytes[..sig_at].to_vec();
    forged.extend_from_slice(foreign.as_bytes());
    assert!(UnverifiedToken::from_bytes(&forged).unwrap().verify(&keys(), NOW, &fresh()).is_err());
}

#[test]
fn unknown_version_is_a_typed_error() {
    let mut bytes = sample_token().bytes().to_vec();
    bytes[maos_token::MAGIC.len()] = 2;
    assert_eq!(UnverifiedToken::from_bytes(&bytes).unwrap_err().code(), "TOKEN-VERSION");
    assert_eq!(UnverifiedToken::parse("maos2.AAAA").unwrap_err().code(), "TOKEN-VERSION");
    let huge = format!("maos1.{}", "A".repeat(maos_token::limits::TOKEN_TEXT_MAX));
    assert_eq!(UnverifiedToken::parse(&huge).unwrap_err().code(), "TOKEN-TOO-LARGE");
}

#[test]
fn maximum_size_claims_are_refused_with_a_typed_error() {
    let many: Vec<String> = (0..maos_token::limits::PERMISSIONS_MAX)
        .map(|i| {
            format!(
                "mcp:server{i}/{}={}",
                "t".repeat(100),
                (0..16).map(|j| format!("r{j}-{}", "x".repeat(200))).collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    let list: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = maos_token::mint(&kernel_key(), request("big", &list), NOW, 0, [0; 10]).unwrap_err();
    assert_eq!(err.code(), "TOKEN-TOO-LARGE");
}
