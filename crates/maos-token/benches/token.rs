//! Token benchmarks, with the floor and the real alternative in the same run:
//! - issue (mint + sign);
//! - cold parse + verify (+ authorize: find the covering permission);
//! - warm verify through the cache (keyed by token tail and epoch);
//! - the floor: one ML-DSA-65 verify + one Ed25519 verify on the same bytes;
//! - biscuit-auth: parse + verify + authorize an equivalent single-permission token.
//!
//! Run: `cargo bench -p maos-token --bench token`. Results: docs/benchmarks.md.

#![expect(clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark setup: a failure is a broken benchmark")]

use aws_lc_rs::signature::{ED25519, ML_DSA_65, ParsedPublicKey};
use biscuit_auth::macros::{authorizer, biscuit};
use criterion::{Criterion, criterion_group, criterion_main};
use maos_crypto::{SignatureDomain, SigningKey};
use maos_model::{AgentId, IfcLevel, Ring, TrustClass, UnixMillis};
use maos_token::{
    KeyRing, MintRequest, ResourceRef, RevocationState, ScopeKind, UnverifiedToken, VerifyCache, mint, parse_permission,
};
use std::hint::black_box;

const NOW: UnixMillis = UnixMillis(1_767_225_600_000);

fn request() -> MintRequest {
    MintRequest {
        agent: AgentId::new("bench-agent").unwrap(),
        ring: Ring::Trusted,
        trust_class: TrustClass::Transparent,
        clearance: IfcLevel::Internal,
        permissions: vec![parse_permission("fs.write=/workspace/**").unwrap()],
        ttl_ms: None,
        rate_per_hour: 600,
        max_ops: 1000,
        budget: 100,
        mission: None,
        commander_ack: false,
    }
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_seeds(&[7; 64]).unwrap();
    let keys = KeyRing::with(key.verifying_key().clone());
    let state = RevocationState::default();
    let token = mint(&key, request(), NOW, 0, [1; 10]).unwrap();
    let text = token.text().to_owned();
    let target = [ResourceRef { kind: ScopeKind::Path, value: "/workspace/report.txt" }];
    eprintln!("token size: {} bytes binary, {} bytes text", token.bytes().len(), text.len());

    let mut g = c.benchmark_group("token");
    g.sample_size(60);
    g.bench_function("issue", |b| b.iter(|| mint(&key, request(), NOW, 0, [2; 10]).unwrap()));
    g.bench_function("parse_verify_cold", |b| {
        b.iter(|| UnverifiedToken::parse(black_box(&text)).unwrap().verify(&keys, NOW, &state).unwrap())
    });
    g.bench_function("parse_verify_authorize_cold", |b| {
        b.iter(|| {
            let v = UnverifiedToken::parse(black_box(&text)).unwrap().verify(&keys, NOW, &state).unwrap();
            assert!(v.claims().permission_for("fs.write", &target, &()).is_some());
        })
    });
    let mut cache = VerifyCache::new();
    cache.verify(&text, &keys, NOW, &state).unwrap();
    g.bench_function("verify_warm_cached", |b| b.iter(|| cache.verify(black_box(&text), &keys, NOW, &state).unwrap()));
    g.bench_function("verify_warm_cached_authorize", |b| {
        b.iter(|| {
            let v = cache.verify(black_box(&text), &keys, NOW, &state).unwrap();
            assert!(v.claims().permission_for("fs.write", &target, &()).is_some());
        })
    });

    // The floor: the two signature verifications alone, keys pre-parsed, on the
    // same signed bytes the token verify checks.
    let bytes = token.bytes();
    let sig_at = bytes.len() - maos_crypto::SIGNATURE_LEN;
    let signed = SignatureDomain::CapabilityToken.signed_bytes(&bytes[..sig_at]);
    let public = key.verifying_key().public_key();
    let ml = ParsedPublicKey::new(&ML_DSA_65, public.mldsa_part()).unwrap();
    let ed = ParsedPublicKey::new(&ED25519, public.ed25519_part()).unwrap();
    let (ml_sig, ed_sig) = bytes[sig_at..].split_at(maos_crypto::MLDSA65_SIGNATURE_LEN);
    g.bench_function("floor_mldsa65_plus_ed25519_verify", |b| {
        b.iter(|| {
            ml.verify_sig(black_box(&signed), ml_sig).unwrap();
            ed.verify_sig(black_box(&signed), ed_sig).unwrap();
        })
    });

    // biscuit-auth: an equivalent single-permission token.
    let root = biscuit_auth::KeyPair::new();
    let biscuit_bytes =
        biscuit!(r#"right("/workspace/", "fs.write"); agent("bench-agent");"#).build(&root).unwrap().to_vec().unwrap();
    eprintln!("biscuit size: {} bytes", biscuit_bytes.len());
    g.bench_function("biscuit_parse_verify_authorize", |b| {
        b.iter(|| {
            let token = biscuit_auth::Biscuit::from(black_box(&biscuit_bytes), root.public()).unwrap();
            let mut authorizer = authorizer!(
                r#"resource("/workspace/report.txt"); operation("fs.write");
                   allow if right($p, $op), resource($r), operation($op), $r.starts_with($p);"#
            )
            .build(&token)
            .unwrap();
            authorizer.authorize().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
