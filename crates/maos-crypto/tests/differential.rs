//! Differential test of the AWS-LC backend against independent implementations:
//! RustCrypto `ml-dsa` and `ed25519-dalek`. Each side verifies the other's
//! signatures and both derive the same public keys from the same seeds, so a
//! backend bug cannot pass silently (design.md: no ML-DSA crate is audited yet).

use ed25519_dalek::{Signer as _, Verifier as _};
use maos_crypto::{MLDSA65_SIGNATURE_LEN, Signature, SignatureDomain, SigningKey};
use ml_dsa::{MlDsa65, Seed};

fn seeds(n: u8) -> [u8; 64] {
    let mut s = [0u8; 64];
    for (i, b) in s.iter_mut().enumerate() {
        *b = n.wrapping_mul(31).wrapping_add(i as u8);
    }
    s
}

fn split(s: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    a.copy_from_slice(&s[..32]);
    b.copy_from_slice(&s[32..]);
    (a, b)
}

#[test]
fn keygen_agrees_with_rustcrypto() -> Result<(), Box<dyn std::error::Error>> {
    for n in 0..4 {
        let s = seeds(n);
        let (ml_seed, ed_seed) = split(&s);
        let ours = SigningKey::from_seeds(&s)?;
        let theirs_ml = ml_dsa::SigningKey::<MlDsa65>::from_seed(&Seed::from(ml_seed));
        let theirs_ed = ed25519_dalek::SigningKey::from_bytes(&ed_seed);
        let public = ours.verifying_key().public_key();
        assert_eq!(public.mldsa_part(), theirs_ml.expanded_key().verifying_key().encode().as_slice());
        assert_eq!(public.ed25519_part(), theirs_ed.verifying_key().as_bytes());
    }
    Ok(())
}

#[test]
fn rustcrypto_verifies_our_signatures() -> Result<(), Box<dyn std::error::Error>> {
    let s = seeds(7);
    let (ml_seed, ed_seed) = split(&s);
    let ours = SigningKey::from_seeds(&s)?;
    let ml_vk = ml_dsa::SigningKey::<MlDsa65>::from_seed(&Seed::from(ml_seed)).expanded_key().verifying_key();
    let ed_vk = ed25519_dalek::SigningKey::from_bytes(&ed_seed).verifying_key();
    for msg in [&b""[..], b"a token body", &[0xAB; 5000][..]] {
        let sig = ours.sign(SignatureDomain::CapabilityToken, msg)?;
        let signed = SignatureDomain::CapabilityToken.signed_bytes(msg);
        let ml_sig = ml_dsa::Signature::<MlDsa65>::try_from(sig.mldsa_part())?;
        assert!(ml_vk.verify_with_context(&signed, b"", &ml_sig), "ml-dsa-65 half rejected by RustCrypto");
        let ed_sig = ed25519_dalek::Signature::from_slice(sig.ed25519_part())?;
        ed_vk.verify_strict(&signed, &ed_sig)?;
        // And a different message fails on their side too.
        let other = SignatureDomain::CapabilityToken.signed_bytes(b"tampered");
        assert!(!ml_vk.verify_with_context(&other, b"", &ml_sig));
        assert!(ed_vk.verify(&other, &ed_sig).is_err());
    }
    Ok(())
}

#[test]
fn we_verify_rustcrypto_signatures() -> Result<(), Box<dyn std::error::Error>> {
    let s = seeds(9);
    let (ml_seed, ed_seed) = split(&s);
    let ours = SigningKey::from_seeds(&s)?;
    let ml_sk = ml_dsa::SigningKey::<MlDsa65>::from_seed(&Seed::from(ml_seed));
    let ed_sk = ed25519_dalek::SigningKey::from_bytes(&ed_seed);
    let msg = b"checkpoint head";
    let signed = SignatureDomain::WalCheckpoint.signed_bytes(msg);
    let ml_sig = ml_sk.expanded_key().sign_deterministic(&signed, b"")?.encode();
    assert_eq!(ml_sig.len(), MLDSA65_SIGNATURE_LEN);
    let ed_sig = ed_sk.sign(&signed).to_bytes();
    let hybrid = Signature::from_parts(ml_sig.as_slice(), &ed_sig)?;
    ours.verifying_key().verify(SignatureDomain::WalCheckpoint, msg, &hybrid)?;
    assert!(ours.verifying_key().verify(SignatureDomain::WalCheckpoint, b"other", &hybrid).is_err());
    Ok(())
}
