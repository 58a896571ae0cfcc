//! What an agent asks to do: the [`Intent`], parsed from untrusted JSON under
//! explicit bounds (spec §15.3 Input Sanitizer; design.md pipeline stage 1).
//!
//! An `Intent` that exists has passed [`Intent::validate`]: every string and list
//! is within its `..._MAX`, so the DSC never sees an oversized or malformed field.

use crate::{AgentId, IfcLevel};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Largest intent document in bytes. The sanitizer rejects bigger input before
/// parsing, so a hostile agent cannot make the kernel allocate or scan megabytes.
pub const INTENT_BYTES_MAX: usize = 64 * 1024;
/// Bytes in an action name (same bound as a token's action pattern).
pub const INTENT_ACTION_BYTES_MAX: usize = 128;
/// Resources one intent may touch: bounds the scope checks per decision.
pub const INTENT_RESOURCES_MAX: usize = 16;
/// Bytes in one resource value (a path, domain, recipient or name); longer paths
/// are a classic way to smuggle traversal or hide a suffix past a display.
pub const RESOURCE_VALUE_BYTES_MAX: usize = 1024;
/// Arguments per intent: bounds pre-filter and provenance work per decision.
pub const INTENT_ARGS_MAX: usize = 32;
/// Bytes in an argument name.
pub const ARG_NAME_BYTES_MAX: usize = 64;
/// Bytes in one string argument: the pre-filter scans every byte, so this bounds
/// its cost and stops one argument from carrying a whole injected document.
pub const ARG_VALUE_BYTES_MAX: usize = 8 * 1024;
/// Read labels per intent.
pub const INTENT_READS_MAX: usize = 16;
/// Argument names an intent may mark as provenance-sensitive.
pub const SENSITIVE_ARGS_MAX: usize = 16;

/// An intent id: a UUIDv7 (spec §2.2), so ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IntentId(uuid::Uuid);

impl IntentId {
    /// A fresh id from Unix milliseconds and 10 caller-supplied random bytes.
    #[must_use]
    pub fn new_v7(unix_ms: u64, random: [u8; 10]) -> Self {
        Self(uuid::Builder::from_unix_timestamp_millis(unix_ms, &random).into_uuid())
    }

    /// Parses the hyphenated form.
    ///
    /// # Errors
    /// [`IntentError::Id`] if the text is not a UUIDv7.
    pub fn parse(text: &str) -> Result<Self, IntentError> {
        let bad = || IntentError::Id(text.chars().take(40).collect());
        let id = uuid::Uuid::try_parse(text.trim()).map_err(|_| bad())?;
        if id.get_version_num() == 7 && id.get_variant() == uuid::Variant::RFC4122 { Ok(Self(id)) } else { Err(bad()) }
    }

    /// The 16 bytes of the id.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for IntentId {
    type Error = IntentError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<IntentId> for String {
    fn from(value: IntentId) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntentId({})", self.0)
    }
}

/// What an effect does to the world (design.md: a tool whose side effects are
/// unknown is a write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EffectClass {
    /// Read-only: no external state changes.
    Observe,
    /// Changes state that a Rollback Zone snapshot can restore.
    Write,
    /// Cannot be undone once emitted (send, pay, delete without snapshot).
    Irreversible,
}

impl EffectClass {
    /// Lowercase name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Observe => "observe",
            Self::Write => "write",
            Self::Irreversible => "irreversible",
        }
    }

    /// Whether the effect changes external state.
    #[must_use]
    pub const fn is_effect(self) -> bool {
        match self {
            Self::Observe => false,
            Self::Write | Self::Irreversible => true,
        }
    }
}

/// The kind of a resource, mirroring the token crate's scope kinds without
/// depending on it (the vocabulary crate sits below the token crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// A filesystem path.
    Path,
    /// A DNS name.
    Domain,
    /// A mail or message recipient.
    Recipient,
    /// Any other named resource.
    Resource,
}

impl ResourceKind {
    /// Lowercase name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Domain => "domain",
            Self::Recipient => "recipient",
            Self::Resource => "resource",
        }
    }
}

/// One resource an intent touches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// How the value is read.
    pub kind: ResourceKind,
    /// The path, domain, recipient or name.
    pub value: String,
}

/// An argument value: text, integer or boolean. No floats (no floats in
/// decisions) and no nesting (bounded work, no recursion).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ArgValue {
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A UTF-8 string.
    Str(String),
}

impl ArgValue {
    /// The string, if this is a string argument.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            Self::Int(_) | Self::Bool(_) => None,
        }
    }

    /// The value as text, as token argument constraints read it.
    #[must_use]
    pub fn to_text(&self) -> String {
        match self {
            Self::Str(s) => s.clone(),
            Self::Int(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

impl fmt::Debug for ArgValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Raw tool arguments are never logged in full (style rule 13).
        match self {
            Self::Str(s) => write!(f, "Str({} bytes)", s.len()),
            Self::Int(n) => write!(f, "Int({n})"),
            Self::Bool(b) => write!(f, "Bool({b})"),
        }
    }
}

/// The label of data an intent reads (Observe) or carries into an effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadLabel {
    /// Confidentiality level of the data.
    pub level: IfcLevel,
    /// Whether it came from outside (integrity taint `untrusted`).
    #[serde(default)]
    pub untrusted: bool,
}

impl ReadLabel {
    /// Public and trusted: the label of nothing read.
    pub const BOTTOM: Self = Self { level: IfcLevel::Public, untrusted: false };

    /// The least upper bound: the higher level, untrusted if either is.
    #[must_use]
    pub fn join(self, other: Self) -> Self {
        Self { level: self.level.join(other.level), untrusted: self.untrusted || other.untrusted }
    }
}

/// What an agent asks the kernel to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    /// Unique id.
    pub id: IntentId,
    /// The agent instance asking.
    pub agent: AgentId,
    /// The action, e.g. `fs.write`, `mail.send`, `mcp.github.create_issue`.
    pub action: String,
    /// Resources touched; every one must be covered by the token.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Arguments, by name (ordered, so canonical).
    #[serde(default)]
    pub args: BTreeMap<String, ArgValue>,
    /// Effect class.
    pub effect: EffectClass,
    /// Budget units this intent consumes (Rule 7).
    #[serde(default)]
    pub cost: u64,
    /// Classification of the destination the effect writes to.
    pub sink_level: IfcLevel,
    /// Whether the effect needs integrity (payments, new recipients, deletions,
    /// code execution): from an `untrusted` session it escalates.
    #[serde(default)]
    pub requires_integrity: bool,
    /// Labels of the data this intent reads (Observe) or carries (effects).
    #[serde(default)]
    pub reads: Vec<ReadLabel>,
    /// Argument names whose values must have trusted provenance (recipients,
    /// accounts, URLs, paths), in addition to the DSC's default list.
    #[serde(default)]
    pub sensitive_args: Vec<String>,
    /// Whether a value of untrusted provenance denies the effect instead of
    /// asking a human (the tool's `provenance = "deny"`). Absent when false, so
    /// records written before it existed encode the same.
    #[serde(default, skip_serializing_if = "is_false")]
    pub provenance_deny: bool,
    /// Hash of the world state the agent planned against (OCC, Commit stage 2).
    #[serde(default, with = "opt_hex32")]
    pub world_state_hash: Option<[u8; 32]>,
}

/// Why an intent was rejected by the sanitizer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    /// `INTENT-TOO-LARGE`: the document exceeds [`INTENT_BYTES_MAX`].
    #[error("intent is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `INTENT-SYNTAX`: not well-formed JSON of the intent schema.
    #[error("malformed intent: {0}")]
    Syntax(String),
    /// `INTENT-LIMIT`: a field exceeds its bound.
    #[error("`{field}` is over its limit of {max}")]
    Limit {
        /// Which field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// `INTENT-INVALID`: a field has a forbidden value.
    #[error("invalid intent field `{field}`: {why}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        why: &'static str,
    },
    /// `INTENT-ID`: the id is not a UUIDv7.
    #[error("invalid intent id `{0}`: expected a UUIDv7")]
    Id(String),
}

impl IntentError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "INTENT-TOO-LARGE",
            Self::Syntax(_) => "INTENT-SYNTAX",
            Self::Limit { .. } => "INTENT-LIMIT",
            Self::Invalid { .. } => "INTENT-INVALID",
            Self::Id(_) => "INTENT-ID",
        }
    }
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "the signature serde's skip_serializing_if takes")]
const fn is_false(b: &bool) -> bool {
    !*b
}

fn no_controls(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
}

impl Intent {
    /// An intent as a submitter states it: who, the action and its arguments.
    /// Every other decision attribute (effect, resources, sink, reads, cost,
    /// integrity) is the kernel's to derive from the action's descriptor
    /// (design.md "Facts from descriptors"), so they start empty here and
    /// whatever a submitter sets in them is overwritten.
    #[must_use]
    pub const fn request(id: IntentId, agent: AgentId, action: String, args: BTreeMap<String, ArgValue>) -> Self {
        Self {
            id,
            agent,
            action,
            resources: Vec::new(),
            args,
            effect: EffectClass::Write,
            cost: 0,
            sink_level: IfcLevel::Public,
            requires_integrity: false,
            reads: Vec::new(),
            sensitive_args: Vec::new(),
            provenance_deny: false,
            world_state_hash: None,
        }
    }

    /// The bounded sanitizer: parses untrusted JSON bytes into a validated intent.
    ///
    /// # Errors
    /// [`IntentError::TooLarge`] before parsing, [`IntentError::Syntax`] for
    /// malformed JSON, unknown fields, floats or nested values, and the errors of
    /// [`Intent::validate`]. Never panics on any input.
    pub fn from_json(bytes: &[u8]) -> Result<Self, IntentError> {
        if bytes.len() > INTENT_BYTES_MAX {
            return Err(IntentError::TooLarge { len: bytes.len(), max: INTENT_BYTES_MAX });
        }
        let intent: Self = serde_json::from_slice(bytes)
            .map_err(|e| IntentError::Syntax(crate::prefix_within(&e.to_string(), 200).to_owned()))?;
        intent.validate()?;
        Ok(intent)
    }

    /// Checks every bound and character rule.
    ///
    /// # Errors
    /// [`IntentError::Limit`] or [`IntentError::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), IntentError> {
        let limit = |field, max| Err(IntentError::Limit { field, max });
        let invalid = |field, why| Err(IntentError::Invalid { field, why });
        if self.action.is_empty() || self.action.len() > INTENT_ACTION_BYTES_MAX {
            return limit("action", INTENT_ACTION_BYTES_MAX);
        }
        if !self.action.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:/-_".contains(&b)) {
            return invalid("action", "use a-z, 0-9 and `._:/-_`");
        }
        if self.resources.len() > INTENT_RESOURCES_MAX {
            return limit("resources", INTENT_RESOURCES_MAX);
        }
        for r in &self.resources {
            if r.value.is_empty() || r.value.len() > RESOURCE_VALUE_BYTES_MAX {
                return limit("resources.value", RESOURCE_VALUE_BYTES_MAX);
            }
            if r.value.chars().any(char::is_control) {
                return invalid("resources.value", "control characters are not allowed");
            }
        }
        if self.args.len() > INTENT_ARGS_MAX {
            return limit("args", INTENT_ARGS_MAX);
        }
        for (name, value) in &self.args {
            if name.is_empty() || name.len() > ARG_NAME_BYTES_MAX {
                return limit("args.name", ARG_NAME_BYTES_MAX);
            }
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
                return invalid("args.name", "use a-z, A-Z, 0-9 and `_-.`");
            }
            if let ArgValue::Str(s) = value {
                if s.len() > ARG_VALUE_BYTES_MAX {
                    return limit("args.value", ARG_VALUE_BYTES_MAX);
                }
                if !no_controls(s) {
                    return invalid("args.value", "control characters other than tab and newline are not allowed");
                }
            }
        }
        if self.reads.len() > INTENT_READS_MAX {
            return limit("reads", INTENT_READS_MAX);
        }
        if self.sensitive_args.len() > SENSITIVE_ARGS_MAX {
            return limit("sensitive_args", SENSITIVE_ARGS_MAX);
        }
        if self.sensitive_args.iter().any(|s| s.is_empty() || s.len() > ARG_NAME_BYTES_MAX) {
            return limit("sensitive_args.name", ARG_NAME_BYTES_MAX);
        }
        Ok(())
    }

    /// The join of the labels this intent reads or carries.
    #[must_use]
    pub fn read_level(&self) -> Option<IfcLevel> {
        self.reads.iter().map(|r| r.level).max()
    }

    /// Whether any read label carries the `untrusted` taint.
    #[must_use]
    pub fn reads_untrusted(&self) -> bool {
        self.reads.iter().any(|r| r.untrusted)
    }
}

mod opt_hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => {
                let mut out = String::with_capacity(64);
                for b in bytes {
                    out.push_str(&format!("{b:02x}"));
                }
                s.serialize_some(&out)
            }
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 32]>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        let Some(text) = text else { return Ok(None) };
        let bad = || serde::de::Error::custom("world_state_hash must be 64 hex characters");
        if text.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            let pair = text.get(i * 2..i * 2 + 2).ok_or_else(bad)?;
            *slot = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        r#"{"id":"0190a5f0-0000-7000-8000-000000000000","agent":"mailer","action":"mail.send",
            "resources":[{"kind":"recipient","value":"bob@example.com"}],
            "args":{"to":"bob@example.com","n":3,"urgent":true},
            "effect":"irreversible","cost":2,"sink_level":"public"}"#
            .to_owned()
    }

    #[test]
    fn a_syntax_error_quoting_multibyte_input_is_cut_on_a_character_boundary() {
        // serde quotes the unknown field; 200 bytes falls inside an `é`.
        let json = format!(r#"{{"{}": 1}}"#, "é".repeat(150));
        assert!(matches!(Intent::from_json(json.as_bytes()), Err(IntentError::Syntax(_))));
    }

    #[test]
    fn parses_a_valid_intent() {
        let intent = Intent::from_json(sample().as_bytes());
        assert!(matches!(intent, Ok(ref i) if i.args.get("n") == Some(&ArgValue::Int(3))));
    }

    #[test]
    fn rejects_floats_nesting_unknown_fields_and_oversize() {
        for bad in [
            sample().replace("\"n\":3", "\"n\":3.5"),
            sample().replace("\"n\":3", "\"n\":{\"x\":1}"),
            sample().replace("\"cost\":2", "\"cost\":2,\"extra\":1"),
            sample().replace("mail.send", "MAIL.send"),
        ] {
            assert!(Intent::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
        let huge = vec![b' '; INTENT_BYTES_MAX + 1];
        assert!(matches!(Intent::from_json(&huge), Err(IntentError::TooLarge { .. })));
    }
}
