//! The canonical, versioned binary encoding of a token and its text form.
//!
//! Layout (all integers big-endian; `docs/token-format.md` has the full table):
//! ```text
//! "MAOS" | 'T' | version=1 | suite | body_len:u32 | body | signature
//! ```
//! The signature covers everything before it. Decoding is strict: every length
//! is checked against what remains and against the limits, enums must be known,
//! lists must be in canonical order, and there may be no trailing bytes. So a
//! token has exactly one encoding, and re-encoding decoded claims gives the same
//! bytes.

use crate::TokenError;
use crate::claims::{ActionPattern, ArgConstraint, ConstraintRule, Permission, Scope, ScopeKind, TokenClaims};
use crate::limits::{
    CONSTRAINTS_PER_PERMISSION_MAX, DELEGATION_DEPTH_MAX, ONE_OF_VALUES_MAX, PERMISSIONS_MAX,
    SCOPES_PER_PERMISSION_MAX, TOKEN_BYTES_MAX, TOKEN_TEXT_MAX,
};
use base64::Engine as _;
use maos_crypto::{KeyId, SIGNATURE_LEN, Signature, SuiteId};
use maos_model::{AgentId, IfcLevel, Ring, TokenId, TrustClass, UnixMillis};

/// Prefix of the text form; the digit is the text-form version.
pub const TEXT_PREFIX: &str = "maos1.";
/// Magic bytes opening every encoded token.
pub const MAGIC: &[u8; 5] = b"MAOST";
/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes before the body: magic, version, suite, body length.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 1 + 4;

const FLAG_COMMANDER_ACK: u8 = 0b0000_0001;
const FLAG_HAS_MISSION: u8 = 0b0000_0010;
const FLAGS_KNOWN: u8 = FLAG_COMMANDER_ACK | FLAG_HAS_MISSION;
const RULE_ONE_OF: u8 = 1;
const RULE_MAX_INT: u8 = 2;
const RULE_GLOB: u8 = 3;

/// Encodes the signed part (header and body) of a token.
///
/// # Errors
/// [`TokenError::TooLarge`] if the result would exceed [`TOKEN_BYTES_MAX`] once
/// signed, or the claims' own validation error.
pub fn encode_signed_part(claims: &TokenClaims) -> Result<Vec<u8>, TokenError> {
    claims.validate()?;
    let mut body = Vec::with_capacity(512);
    body.extend_from_slice(claims.id.as_bytes());
    put_str8(&mut body, claims.agent.as_str());
    body.push(claims.ring.code());
    body.push(claims.trust_class.code());
    body.push(claims.clearance.code());
    let mut flags = 0u8;
    if claims.commander_ack {
        flags |= FLAG_COMMANDER_ACK;
    }
    if claims.mission.is_some() {
        flags |= FLAG_HAS_MISSION;
    }
    body.push(flags);
    body.extend_from_slice(&claims.rate_per_hour.to_be_bytes());
    body.extend_from_slice(&claims.max_ops.to_be_bytes());
    body.extend_from_slice(&claims.budget.to_be_bytes());
    body.extend_from_slice(&claims.not_before.0.to_be_bytes());
    body.extend_from_slice(&claims.expires.0.to_be_bytes());
    body.extend_from_slice(&claims.epoch.to_be_bytes());
    body.extend_from_slice(&claims.issuer.0);
    put_len8(&mut body, claims.lineage.len())?;
    for id in &claims.lineage {
        body.extend_from_slice(id.as_bytes());
    }
    if let Some(m) = &claims.mission {
        put_len16(&mut body, m.len())?;
        body.extend_from_slice(m.as_bytes());
    }
    put_len8(&mut body, claims.permissions.len())?;
    for p in &claims.permissions {
        put_str8(&mut body, p.action().as_str());
        put_len8(&mut body, p.scopes().len())?;
        for s in p.scopes() {
            body.push(s.kind().code());
            if s.kind() != ScopeKind::Any {
                put_str8(&mut body, s.pattern());
            }
        }
        put_len8(&mut body, p.constraints().len())?;
        for c in p.constraints() {
            put_str8(&mut body, c.arg());
            match c.rule() {
                ConstraintRule::OneOf(values) => {
                    body.push(RULE_ONE_OF);
                    put_len8(&mut body, values.len())?;
                    for v in values {
                        put_str8(&mut body, v);
                    }
                }
                ConstraintRule::MaxInt(n) => {
                    body.push(RULE_MAX_INT);
                    body.extend_from_slice(&n.to_be_bytes());
                }
                ConstraintRule::Glob(g) => {
                    body.push(RULE_GLOB);
                    put_str8(&mut body, g);
                }
            }
        }
    }
    let total = HEADER_LEN + body.len() + SIGNATURE_LEN;
    if total > TOKEN_BYTES_MAX {
        return Err(TokenError::TooLarge { len: total, max: TOKEN_BYTES_MAX });
    }
    let body_len = u32::try_from(body.len()).map_err(|_| TokenError::TooLarge { len: total, max: TOKEN_BYTES_MAX })?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(SuiteId::MlDsa65Ed25519.code());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn put_len8(out: &mut Vec<u8>, len: usize) -> Result<(), TokenError> {
    out.push(u8::try_from(len).map_err(|_| TokenError::LimitExceeded { field: "list length", max: 255 })?);
    Ok(())
}

fn put_len16(out: &mut Vec<u8>, len: usize) -> Result<(), TokenError> {
    let n = u16::try_from(len).map_err(|_| TokenError::LimitExceeded { field: "string length", max: 65_535 })?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_str8(out: &mut Vec<u8>, s: &str) {
    // Every string written here was validated to at most 255 bytes.
    let len = u8::try_from(s.len()).unwrap_or(u8::MAX);
    out.push(len);
    out.extend_from_slice(s.as_bytes().get(..usize::from(len)).unwrap_or_default());
}

/// The result of decoding: claims, the signature, and where the signed part ends.
pub(crate) struct Decoded {
    pub claims: TokenClaims,
    pub signature: Signature,
    pub signed_len: usize,
}

/// Decodes token bytes without verifying the signature.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, TokenError> {
    if bytes.len() > TOKEN_BYTES_MAX {
        return Err(TokenError::TooLarge { len: bytes.len(), max: TOKEN_BYTES_MAX });
    }
    let mut r = Reader { bytes, pos: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(TokenError::Encoding("not a MAOS token (bad magic)".into()));
    }
    let version = r.u8()?;
    if version != FORMAT_VERSION {
        return Err(TokenError::UnsupportedVersion(version));
    }
    let suite = r.u8()?;
    SuiteId::from_code(suite).map_err(|_| TokenError::Encoding(format!("unknown signature suite {suite}")))?;
    let body_len = usize::try_from(r.u32()?).map_err(|_| TokenError::Encoding("body length".into()))?;
    let signed_len = HEADER_LEN
        .checked_add(body_len)
        .filter(|n| n.checked_add(SIGNATURE_LEN) == Some(bytes.len()))
        .ok_or_else(|| TokenError::Encoding("length fields do not match the token size".into()))?;

    let id = TokenId::from_bytes(r.array::<16>()?).map_err(|e| TokenError::Encoding(e.to_string()))?;
    let agent = AgentId::new(r.str8()?).map_err(|e| TokenError::Encoding(e.to_string()))?;
    let ring = Ring::from_code(r.u8()?).ok_or_else(|| TokenError::Encoding("unknown ring".into()))?;
    let trust_class =
        TrustClass::from_code(r.u8()?).ok_or_else(|| TokenError::Encoding("unknown trust class".into()))?;
    let clearance = IfcLevel::from_code(r.u8()?).ok_or_else(|| TokenError::Encoding("unknown IFC level".into()))?;
    let flags = r.u8()?;
    if flags & !FLAGS_KNOWN != 0 {
        return Err(TokenError::Encoding("unknown flag bits".into()));
    }
    let rate_per_hour = r.u32()?;
    let max_ops = r.u64()?;
    let budget = r.u64()?;
    let not_before = UnixMillis(r.u64()?);
    let expires = UnixMillis(r.u64()?);
    let epoch = r.u64()?;
    let issuer = KeyId(r.array::<32>()?);
    let lineage_len = r.count(DELEGATION_DEPTH_MAX - 1, "lineage")?;
    let mut lineage = Vec::with_capacity(lineage_len);
    for _ in 0..lineage_len {
        lineage.push(TokenId::from_bytes(r.array::<16>()?).map_err(|e| TokenError::Encoding(e.to_string()))?);
    }
    let mission = if flags & FLAG_HAS_MISSION != 0 {
        let len = usize::from(r.u16()?);
        let text =
            std::str::from_utf8(r.take(len)?).map_err(|_| TokenError::Encoding("mission is not UTF-8".into()))?;
        Some(text.to_owned())
    } else {
        None
    };
    let perm_count = r.count(PERMISSIONS_MAX, "permissions")?;
    let mut permissions = Vec::with_capacity(perm_count);
    for _ in 0..perm_count {
        permissions.push(decode_permission(&mut r)?);
    }
    if r.pos != signed_len {
        return Err(TokenError::Encoding("body length does not match its contents".into()));
    }
    let signature = Signature::from_bytes(r.take(SIGNATURE_LEN)?).map_err(|e| TokenError::Encoding(e.to_string()))?;
    let claims = TokenClaims {
        id,
        agent,
        ring,
        trust_class,
        clearance,
        permissions,
        rate_per_hour,
        max_ops,
        budget,
        not_before,
        expires,
        epoch,
        lineage,
        issuer,
        commander_ack: flags & FLAG_COMMANDER_ACK != 0,
        mission,
    };
    claims.validate().map_err(|e| TokenError::Encoding(format!("claims out of bounds: {e}")))?;
    // Canonical form: the claims must re-encode to exactly the signed bytes.
    // This rejects, e.g., unsorted lists or duplicate scopes that the
    // constructors above normalised.
    let again = encode_signed_part(&claims)?;
    if bytes.get(..signed_len) != Some(again.as_slice()) {
        return Err(TokenError::Encoding("not in canonical form".into()));
    }
    Ok(Decoded { claims, signature, signed_len })
}

fn decode_permission(r: &mut Reader<'_>) -> Result<Permission, TokenError> {
    let action = ActionPattern::new(r.str8()?)?;
    let scope_count = r.count(SCOPES_PER_PERMISSION_MAX, "scopes")?;
    let mut scopes = Vec::with_capacity(scope_count);
    for _ in 0..scope_count {
        let kind = ScopeKind::from_code(r.u8()?).ok_or_else(|| TokenError::Encoding("unknown scope kind".into()))?;
        let pattern = if kind == ScopeKind::Any { "" } else { r.str8()? };
        scopes.push(Scope::new(kind, pattern)?);
    }
    let constraint_count = r.count(CONSTRAINTS_PER_PERMISSION_MAX, "constraints")?;
    let mut constraints = Vec::with_capacity(constraint_count);
    for _ in 0..constraint_count {
        let arg = r.str8()?.to_owned();
        let rule = match r.u8()? {
            RULE_ONE_OF => {
                let n = r.count(ONE_OF_VALUES_MAX, "one-of values")?;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(r.str8()?.to_owned());
                }
                ConstraintRule::OneOf(values)
            }
            RULE_MAX_INT => ConstraintRule::MaxInt(i64::from_be_bytes(r.array::<8>()?)),
            RULE_GLOB => ConstraintRule::Glob(r.str8()?.to_owned()),
            other => return Err(TokenError::Encoding(format!("unknown constraint rule {other}"))),
        };
        constraints.push(ArgConstraint::new(&arg, rule)?);
    }
    Permission::new(action, scopes, constraints)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        let end = self.pos.checked_add(n).ok_or_else(|| TokenError::Encoding("length overflow".into()))?;
        let out = self.bytes.get(self.pos..end).ok_or_else(|| TokenError::Encoding("truncated token".into()))?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TokenError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(u8::from_be_bytes(self.array::<1>()?))
    }

    fn u16(&mut self) -> Result<u16, TokenError> {
        Ok(u16::from_be_bytes(self.array::<2>()?))
    }

    fn u32(&mut self) -> Result<u32, TokenError> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }

    fn u64(&mut self) -> Result<u64, TokenError> {
        Ok(u64::from_be_bytes(self.array::<8>()?))
    }

    fn count(&mut self, max: usize, field: &'static str) -> Result<usize, TokenError> {
        let n = usize::from(self.u8()?);
        if n > max {
            return Err(TokenError::LimitExceeded { field, max: max as u64 });
        }
        Ok(n)
    }

    fn str8(&mut self) -> Result<&'a str, TokenError> {
        let len = usize::from(self.u8()?);
        std::str::from_utf8(self.take(len)?).map_err(|_| TokenError::Encoding("string is not UTF-8".into()))
    }
}

/// The text form: `maos1.` followed by unpadded base64url of the bytes.
#[must_use]
pub fn to_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(TEXT_PREFIX.len() + bytes.len().div_ceil(3) * 4);
    out.push_str(TEXT_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
    out
}

/// Decodes the text form into bytes, checking the size before decoding.
pub(crate) fn from_text(text: &str) -> Result<Vec<u8>, TokenError> {
    let text = text.trim();
    if text.len() > TOKEN_TEXT_MAX {
        return Err(TokenError::TooLarge { len: text.len(), max: TOKEN_TEXT_MAX });
    }
    let Some(b64) = text.strip_prefix(TEXT_PREFIX) else {
        return match text.split_once('.') {
            Some((p, _)) if p.starts_with("maos") => Err(TokenError::UnsupportedVersion(0)),
            _ => Err(TokenError::Encoding(format!("a token starts with `{TEXT_PREFIX}`"))),
        };
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| TokenError::Encoding("token text is not base64url".into()))
}
