//! The token lifecycle end to end: mint, verify, derive, revoke, and each way a
//! check must fail, named after the conformance cases (CT-CAP-…).

use crate::common::{NOW, fresh, kernel_key, keys, mint_at, other_key, perms, request};
use maos_model::{AgentId, IfcLevel, Ring, TrustClass, UnixMillis};
use maos_token::{
    DeriveRequest, KeyRing, ResourceRef, RevocationState, ScopeKind, TokenError, TokenEvent, TokenIssued,
    TokenRegistry, UnverifiedToken, VerifyCache, derive, limits,
};

fn child_req(agent: &str, list: &[&str], budget: u64) -> DeriveRequest {
    DeriveRequest {
        agent: AgentId::new(agent).expect("agent"),
        ring: None,
        clearance: None,
        permissions: perms(list),
        ttl_ms: None,
        rate_per_hour: None,
        max_ops: None,
        budget,
    }
}

fn registered(reg: &mut TokenRegistry, token: &maos_token::MintedToken) -> maos_token::VerifiedToken {
    reg.apply(&TokenEvent::Issued(TokenIssued::from_minted(token))).expect("apply");
    UnverifiedToken::parse(token.text()).expect("parse").verify(&keys(), NOW, reg.revocations()).expect("verify")
}

#[test]
fn mint_and_verify_round_trip() {
    let token = mint_at(request("a", &["fs.write=/workspace/**"]), NOW, 0);
    let v = UnverifiedToken::parse(token.text()).unwrap().verify(&keys(), NOW, &fresh()).unwrap();
    assert_eq!(v.claims(), token.claims());
    assert_eq!(v.to_text(), token.text());
    let target = [ResourceRef { kind: ScopeKind::Path, value: "/workspace/r.txt" }];
    assert!(v.claims().permission_for("fs.write", &target, &()).is_some());
    assert!(v.claims().permission_for("fs.delete", &target, &()).is_none());
    assert!(token.bytes().len() < limits::TOKEN_BYTES_MAX);
}

#[test]
fn ct_cap_01_unknown_issuer_and_foreign_signature_fail() {
    let token = mint_at(request("a", &["fs.read=/w/*"]), NOW, 0);
    let strangers = KeyRing::with(other_key().verifying_key().clone());
    let err = UnverifiedToken::parse(token.text()).unwrap().verify(&strangers, NOW, &fresh()).unwrap_err();
    assert_eq!(err.code(), "TOKEN-UNKNOWN-ISSUER");
}

#[test]
fn ct_cap_03_expiry_is_exclusive_and_not_before_inclusive() {
    let token = mint_at(request("a", &["fs.read=/w/*"]), NOW, 0);
    let t = UnverifiedToken::parse(token.text()).unwrap();
    let exp = token.claims().expires;
    assert!(t.verify(&keys(), UnixMillis(exp.0 - 1), &fresh()).is_ok(), "one ms before expiry is valid");
    assert_eq!(t.verify(&keys(), exp, &fresh()).unwrap_err().code(), "TOKEN-EXPIRED");
    assert!(t.verify(&keys(), NOW, &fresh()).is_ok(), "valid exactly at not-before");
    assert_eq!(t.verify(&keys(), UnixMillis(NOW.0 - 1), &fresh()).unwrap_err().code(), "TOKEN-NOT-YET-VALID");
}

#[test]
fn epoch_lag_zero_and_one_pass_two_refuses() {
    let token = mint_at(request("a", &["fs.read=/w/*"]), NOW, 5);
    let t = UnverifiedToken::parse(token.text()).unwrap();
    for (verifier_epoch, ok) in [(5, true), (4, true), (3, false), (6, true)] {
        let state = RevocationState::new(verifier_epoch, Default::default());
        let r = t.verify(&keys(), NOW, &state);
        assert_eq!(r.is_ok(), ok, "verifier at epoch {verifier_epoch}: {r:?}");
        if !ok {
            assert_eq!(r.unwrap_err().code(), "TOKEN-EPOCH-STALE");
        }
    }
}

#[test]
fn ct_cap_06_default_ttls_and_commander_ack() {
    let mut r2 = request("a", &["fs.read=/w/*"]);
    r2.ring = Ring::Trusted;
    assert_eq!(mint_at(r2.clone(), NOW, 0).ttl_ms(), limits::TTL_RING2_DEFAULT_MS);
    let mut r3 = r2.clone();
    r3.ring = Ring::Untrusted;
    assert_eq!(mint_at(r3.clone(), NOW, 0).ttl_ms(), limits::TTL_RING3_DEFAULT_MS);
    let mut ext = r3.clone();
    ext.trust_class = TrustClass::External;
    assert_eq!(mint_at(ext, NOW, 0).ttl_ms(), limits::TTL_EXTERNAL_DEFAULT_MS);
    // 4x the default is fine, one ms more needs the commander.
    r3.ttl_ms = Some(4 * limits::TTL_RING3_DEFAULT_MS);
    assert!(!mint_at(r3.clone(), NOW, 0).claims().commander_ack);
    r3.ttl_ms = Some(4 * limits::TTL_RING3_DEFAULT_MS + 1);
    let err = maos_token::mint(&kernel_key(), r3.clone(), NOW, 0, [0; 10]).unwrap_err();
    assert_eq!(err.code(), "TOKEN-TTL-ACK");
    r3.commander_ack = true;
    assert!(mint_at(r3, NOW, 0).claims().commander_ack, "the acknowledgement is recorded in the token");
}

#[test]
fn ct_cap_07_derive_attenuates_and_names_widened_field() {
    let mut reg = TokenRegistry::new();
    let root = mint_at(request("root", &["fs.*=/workspace/**", "mail.send=*@example.com"]), NOW, 0);
    let root_v = registered(&mut reg, &root);
    let key = kernel_key();

    let ok =
        derive(&key, &root_v, child_req("child", &["fs.write=/workspace/out/*"], 100), NOW, &reg, [1; 10]).unwrap();
    assert_eq!(ok.claims().depth(), 2);
    assert_eq!(ok.claims().parent(), Some(root.claims().id));
    assert!(ok.claims().expires <= root.claims().expires);
    assert_eq!(ok.claims().mission, root.claims().mission);

    let widen = |req: DeriveRequest| derive(&key, &root_v, req, NOW, &reg, [2; 10]).unwrap_err();
    let e = widen(child_req("c", &["fs.write=/etc/*"], 0));
    assert!(matches!(e, TokenError::Widened { field: "permissions", .. }), "{e}");
    let e = widen(child_req("c", &["http.get=example.com"], 0));
    assert!(matches!(e, TokenError::Widened { field: "permissions", .. }), "{e}");
    let e = widen(child_req("c", &["mail.send=*@evil.com"], 0));
    assert!(matches!(e, TokenError::Widened { field: "permissions", .. }), "{e}");
    let e = widen(child_req("c", &["fs.read=/workspace/*"], 501));
    assert!(matches!(e, TokenError::Widened { field: "budget", .. }), "{e}");
    let mut r = child_req("c", &["fs.read=/workspace/*"], 0);
    r.rate_per_hour = Some(601);
    assert!(matches!(widen(r), TokenError::Widened { field: "rate_per_hour", .. }));
    let mut r = child_req("c", &["fs.read=/workspace/*"], 0);
    r.max_ops = Some(1001);
    assert!(matches!(widen(r), TokenError::Widened { field: "max_ops", .. }));
    let mut r = child_req("c", &["fs.read=/workspace/*"], 0);
    r.clearance = Some(IfcLevel::Restricted);
    assert!(matches!(widen(r), TokenError::Widened { field: "clearance", .. }));
    let mut r = child_req("c", &["fs.read=/workspace/*"], 0);
    r.ttl_ms = Some(limits::TTL_RING2_DEFAULT_MS + 1);
    assert!(matches!(widen(r), TokenError::Widened { field: "expiry", .. }));
}

#[test]
fn ring_can_only_move_outward() {
    let mut reg = TokenRegistry::new();
    let mut req = request("root", &["fs.read=/w/**"]);
    req.ring = Ring::Untrusted;
    let root = mint_at(req, NOW, 0);
    let root_v = registered(&mut reg, &root);
    let mut r = child_req("c", &["fs.read=/w/*"], 0);
    r.ring = Some(Ring::Trusted);
    let e = derive(&kernel_key(), &root_v, r, NOW, &reg, [3; 10]).unwrap_err();
    assert!(matches!(e, TokenError::Widened { field: "ring", .. }));
}

#[test]
fn budget_is_carved_and_children_and_depth_are_bounded() {
    let mut reg = TokenRegistry::new();
    let root = mint_at(request("root", &["fs.read=/w/**"]), NOW, 0);
    let root_v = registered(&mut reg, &root);
    let key = kernel_key();
    let mut children = Vec::new();
    for i in 0..limits::LIVE_CHILDREN_MAX {
        let c = derive(&key, &root_v, child_req(&format!("c{i}"), &["fs.read=/w/*"], 100), NOW, &reg, [i as u8; 10])
            .unwrap();
        registered(&mut reg, &c);
        children.push(c);
    }
    // 5 x 100 carved out of 500: nothing left, and no sixth child either.
    let e = derive(&key, &root_v, child_req("c6", &["fs.read=/w/*"], 0), NOW, &reg, [9; 10]).unwrap_err();
    assert_eq!(e.code(), "TOKEN-CHILDREN");
    assert_eq!(reg.carved_budget(&root.claims().id), 500);

    // Depth: root(1) -> child(2) -> grandchild(3) -> refused.
    let child_v = UnverifiedToken::parse(children[0].text()).unwrap().verify(&keys(), NOW, reg.revocations()).unwrap();
    let e = derive(&key, &child_v, child_req("g", &["fs.read=/w/*"], 101), NOW, &reg, [7; 10]).unwrap_err();
    assert!(matches!(e, TokenError::Widened { field: "budget", .. }));
    let g = derive(&key, &child_v, child_req("g", &["fs.read=/w/*"], 50), NOW, &reg, [7; 10]).unwrap();
    let g_v = registered(&mut reg, &g);
    assert_eq!(g_v.claims().depth(), 3);
    let e = derive(&key, &g_v, child_req("gg", &["fs.read=/w/*"], 0), NOW, &reg, [8; 10]).unwrap_err();
    assert_eq!(e.code(), "TOKEN-DEPTH");
}

#[test]
fn ct_cap_05_revoking_a_parent_kills_the_subtree_and_bumps_the_epoch() {
    let mut reg = TokenRegistry::new();
    let root = mint_at(request("root", &["fs.read=/w/**"]), NOW, 0);
    let root_v = registered(&mut reg, &root);
    let child = derive(&kernel_key(), &root_v, child_req("c", &["fs.read=/w/*"], 10), NOW, &reg, [4; 10]).unwrap();
    let child_v = registered(&mut reg, &child);
    let grandchild = derive(&kernel_key(), &child_v, child_req("g", &["fs.read=/w/*"], 5), NOW, &reg, [5; 10]).unwrap();
    registered(&mut reg, &grandchild);

    let event = reg.plan_revoke(child.claims().id, NOW, "test").unwrap();
    reg.apply(&event).unwrap();
    assert_eq!(reg.revocations().epoch(), 1);
    let verify =
        |t: &maos_token::MintedToken| UnverifiedToken::parse(t.text()).unwrap().verify(&keys(), NOW, reg.revocations());
    assert!(verify(&root).is_ok(), "the parent of a revoked token lives on");
    assert_eq!(verify(&child).unwrap_err().code(), "TOKEN-REVOKED");
    assert_eq!(verify(&grandchild).unwrap_err().code(), "TOKEN-REVOKED");

    // Replaying the same events rebuilds the same state.
    let mut replayed = TokenRegistry::new();
    for t in [&root, &child, &grandchild] {
        replayed.apply(&TokenEvent::Issued(TokenIssued::from_minted(t))).unwrap();
    }
    replayed.apply(&event).unwrap();
    assert_eq!(replayed.revocations(), reg.revocations());
    // An out-of-order epoch is corruption, not something to paper over.
    assert!(replayed.apply(&event).is_err());

    // Retention: the registry restored from its snapshot (what survives a
    // retention cut) is the same tree, revocations and epoch, and goes on
    // folding: the next revocation is epoch 2.
    let json = serde_json::to_vec(&reg.snapshot()).unwrap();
    let restored = TokenRegistry::restore(&serde_json::from_slice(&json).unwrap()).unwrap();
    assert_eq!(restored.snapshot(), reg.snapshot());
    assert_eq!(restored.revocations(), reg.revocations());
    assert!(restored.get(&grandchild.claims().id).unwrap().revoked);
    assert!(!restored.get(&root.claims().id).unwrap().revoked);
    let next = restored.plan_revoke(root.claims().id, NOW, "after the cut").unwrap();
    let mut restored = restored;
    restored.apply(&next).unwrap();
    assert_eq!(restored.revocations().epoch(), 2);
    // A snapshot naming a child before its parent is refused, never guessed at.
    let mut broken = reg.snapshot();
    broken.issued.reverse();
    assert!(TokenRegistry::restore(&broken).is_err());
}

#[test]
fn warm_cache_is_as_strict_as_verify() {
    let mut reg = TokenRegistry::new();
    let token = mint_at(request("a", &["fs.read=/w/*"]), NOW, 0);
    registered(&mut reg, &token);
    let mut cache = VerifyCache::new();
    assert!(cache.verify(token.text(), &keys(), NOW, reg.revocations()).is_ok());
    assert!(cache.verify(token.text(), &keys(), NOW, reg.revocations()).is_ok());
    assert_eq!(cache.len(), 1);
    // The text's hash comes from the entry, and equals a fresh hash; another text is hashed itself.
    assert_eq!(cache.text_sha3(token.text()), maos_crypto::sha3_256(token.text().as_bytes()));
    let other = format!("{}x", token.text());
    assert_eq!(cache.text_sha3(&other), maos_crypto::sha3_256(other.as_bytes()));
    // Expiry is rechecked on a hit.
    let exp = token.claims().expires;
    assert_eq!(cache.verify(token.text(), &keys(), exp, reg.revocations()).unwrap_err().code(), "TOKEN-EXPIRED");
    // Revocation bumps the epoch, which misses the cache and fails the full verify.
    let event = reg.plan_revoke(token.claims().id, NOW, "test").unwrap();
    reg.apply(&event).unwrap();
    assert_eq!(cache.verify(token.text(), &keys(), NOW, reg.revocations()).unwrap_err().code(), "TOKEN-REVOKED");
    // A key ring that no longer trusts the issuer gets no hit.
    let strangers = KeyRing::with(other_key().verifying_key().clone());
    let token2 = mint_at(request("b", &["fs.read=/w/*"]), UnixMillis(NOW.0 + 1), 1);
    let later = UnixMillis(NOW.0 + 1);
    assert!(cache.verify(token2.text(), &keys(), later, reg.revocations()).is_ok());
    assert_eq!(
        cache.verify(token2.text(), &strangers, later, reg.revocations()).unwrap_err().code(),
        "TOKEN-UNKNOWN-ISSUER"
    );
    // A same-tail but altered token does not hit.
    let mut bent = token.text().to_owned().into_bytes();
    bent[20] = if bent[20] == b'A' { b'B' } else { b'A' };
    let bent = String::from_utf8(bent).unwrap();
    assert!(cache.verify(&bent, &keys(), NOW, &fresh()).is_err());
}
