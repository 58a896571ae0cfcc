//! What a token says: the holder, its permissions and its limits (spec §9.1, §9.3).
//!
//! Every constructor validates; a `TokenClaims` that exists is within all limits
//! and in canonical order, so it has exactly one encoding.

use crate::TokenError;
use crate::limits::{
    ACTION_BYTES_MAX, CONSTRAINTS_PER_PERMISSION_MAX, DELEGATION_DEPTH_MAX, MISSION_BYTES_MAX, ONE_OF_VALUES_MAX,
    PATTERN_BYTES_MAX, PERMISSIONS_MAX, RATE_PER_HOUR_MAX, SCOPES_PER_PERMISSION_MAX,
};
use crate::pattern::{glob_match, glob_within};
use maos_crypto::KeyId;
use maos_model::{AgentId, IfcLevel, Ring, TokenId, TrustClass, UnixMillis};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// An action pattern: `fs.write`, `mail.send`, `mcp.github.create_issue`, or a
/// trailing wildcard such as `fs.*`, `mcp.github.*` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ActionPattern(String);

impl ActionPattern {
    /// Validates an action pattern.
    ///
    /// # Errors
    /// [`TokenError::InvalidClaims`] if empty, too long, using characters outside
    /// `[a-z0-9._:/_-]`, or with a `*` anywhere but at the end.
    pub fn new(text: &str) -> Result<Self, TokenError> {
        let bad = |why: &str| TokenError::InvalidClaims(format!("action `{}`: {why}", truncate(text)));
        if text.is_empty() || text.len() > ACTION_BYTES_MAX {
            return Err(bad("must be 1 to 128 bytes"));
        }
        let body = text.strip_suffix('*').unwrap_or(text);
        if !body.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._:/-_".contains(&b)) {
            return Err(bad("use a-z, 0-9 and `._:/-_`, with an optional trailing `*`"));
        }
        if text.ends_with('*') && !(body.is_empty() || body.ends_with('.') || body.ends_with('/')) {
            return Err(bad("a wildcard must follow `.` or `/`, as in `fs.*` or `mcp.github.*`"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The pattern text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this pattern allows the concrete `action`.
    #[must_use]
    pub fn matches(&self, action: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix) && !action.contains('*'),
            None => self.0 == action,
        }
    }

    /// Whether every action this pattern allows is also allowed by `parent`.
    #[must_use]
    pub fn within(&self, parent: &Self) -> bool {
        match parent.0.strip_suffix('*') {
            Some(prefix) => self.0.starts_with(prefix),
            None => self.0 == parent.0,
        }
    }

    /// The family an action belongs to, which decides how its scopes are read.
    #[must_use]
    pub fn default_scope_kind(&self) -> ScopeKind {
        default_scope_kind(&self.0)
    }
}

/// How an unqualified scope is read for an action: files get paths, network
/// actions get domains, messaging gets recipients, everything else a generic resource.
#[must_use]
pub fn default_scope_kind(action: &str) -> ScopeKind {
    let family = action.split(['.', ':']).next().unwrap_or_default();
    match family {
        "fs" => ScopeKind::Path,
        "http" | "net" | "web" => ScopeKind::Domain,
        "mail" | "msg" | "message" => ScopeKind::Recipient,
        _ => ScopeKind::Resource,
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The kind of a resource scope; decides how patterns match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    /// Any resource at all.
    Any,
    /// A filesystem path glob: `*` stays within one segment, `**` spans segments.
    Path,
    /// A DNS name, exact or `*.example.com` for subdomains.
    Domain,
    /// A mail or message recipient, exact or `*@example.com`.
    Recipient,
    /// Any other resource name, a glob where `*` matches anything.
    Resource,
}

impl ScopeKind {
    /// Stable code in the encoding.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Any => 0,
            Self::Path => 1,
            Self::Domain => 2,
            Self::Recipient => 3,
            Self::Resource => 4,
        }
    }

    /// The kind for a code.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Any),
            1 => Some(Self::Path),
            2 => Some(Self::Domain),
            3 => Some(Self::Recipient),
            4 => Some(Self::Resource),
            _ => None,
        }
    }

    /// Lowercase name, also the explicit prefix accepted on the command line.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::Path => "path",
            Self::Domain => "domain",
            Self::Recipient => "recipient",
            Self::Resource => "resource",
        }
    }
}

/// One resource scope of a permission.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Scope {
    kind: ScopeKind,
    pattern: String,
}

impl Scope {
    /// The scope that allows any resource.
    #[must_use]
    pub fn any() -> Self {
        Self { kind: ScopeKind::Any, pattern: String::new() }
    }

    /// Validates a scope pattern of the given kind.
    ///
    /// # Errors
    /// [`TokenError::InvalidClaims`] if the pattern is empty, too long, has control
    /// characters, a `..` path segment, or a wildcard where the kind allows none.
    pub fn new(kind: ScopeKind, pattern: &str) -> Result<Self, TokenError> {
        let bad =
            |why: &str| TokenError::InvalidClaims(format!("{} scope `{}`: {why}", kind.name(), truncate(pattern)));
        if kind == ScopeKind::Any {
            return if pattern.is_empty() || pattern == "*" { Ok(Self::any()) } else { Err(bad("takes no pattern")) };
        }
        if pattern.is_empty() || pattern.len() > PATTERN_BYTES_MAX {
            return Err(bad("must be 1 to 255 bytes"));
        }
        if pattern.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
        match kind {
            ScopeKind::Path => {
                if !pattern.starts_with('/') {
                    return Err(bad("paths must be absolute, starting with `/`"));
                }
                if pattern.split('/').any(|seg| seg == "..") {
                    return Err(bad("`..` segments are not allowed"));
                }
            }
            ScopeKind::Domain => {
                let host = pattern.strip_prefix("*.").unwrap_or(pattern);
                if host.is_empty()
                    || host.contains('*')
                    || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                {
                    return Err(bad("use a DNS name, or `*.` before one for its subdomains"));
                }
            }
            ScopeKind::Recipient => {
                let Some((local, domain)) = pattern.rsplit_once('@') else {
                    return Err(bad("use `name@domain` or `*@domain`"));
                };
                if local.is_empty()
                    || domain.is_empty()
                    || domain.contains('*')
                    || (local.contains('*') && local != "*")
                {
                    return Err(bad("use `name@domain` or `*@domain`"));
                }
            }
            ScopeKind::Resource | ScopeKind::Any => {}
        }
        let pattern = if kind == ScopeKind::Domain || kind == ScopeKind::Recipient {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        Ok(Self { kind, pattern })
    }

    /// The kind of resource this scope covers.
    #[must_use]
    pub fn kind(&self) -> ScopeKind {
        self.kind
    }

    /// The pattern (empty for [`ScopeKind::Any`]).
    #[must_use]
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether this scope allows `resource`.
    #[must_use]
    pub fn matches(&self, resource: &ResourceRef<'_>) -> bool {
        if self.kind == ScopeKind::Any {
            return true;
        }
        if self.kind != resource.kind {
            return false;
        }
        let value = resource.value;
        match self.kind {
            ScopeKind::Any => true,
            ScopeKind::Path => {
                value.starts_with('/')
                    && !value.split('/').any(|seg| seg == "..")
                    && !value.contains('\0')
                    && glob_match(&self.pattern, value, Some(b'/'))
            }
            ScopeKind::Domain => {
                let value = value.to_ascii_lowercase();
                let value = value.trim_end_matches('.');
                match self.pattern.strip_prefix("*.") {
                    Some(base) => {
                        value.len() > base.len() && value.ends_with(base) && {
                            let cut = value.len() - base.len();
                            value.as_bytes().get(cut.wrapping_sub(1)) == Some(&b'.')
                        }
                    }
                    None => value == self.pattern,
                }
            }
            ScopeKind::Recipient => {
                let value = value.to_ascii_lowercase();
                match self.pattern.strip_prefix("*@") {
                    Some(domain) => value.rsplit_once('@').is_some_and(|(l, d)| !l.is_empty() && d == domain),
                    None => value == self.pattern,
                }
            }
            ScopeKind::Resource => glob_match(&self.pattern, value, None),
        }
    }

    /// Whether everything this scope allows is also allowed by `parent`.
    #[must_use]
    pub fn within(&self, parent: &Self) -> bool {
        if parent.kind == ScopeKind::Any {
            return true;
        }
        if self.kind != parent.kind {
            return false;
        }
        match self.kind {
            ScopeKind::Any => false,
            ScopeKind::Path => glob_within(&self.pattern, &parent.pattern, Some(b'/')),
            ScopeKind::Resource => glob_within(&self.pattern, &parent.pattern, None),
            ScopeKind::Domain => match (self.pattern.strip_prefix("*."), parent.pattern.strip_prefix("*.")) {
                (_, None) => self.pattern == parent.pattern,
                (Some(child_base), Some(base)) => child_base == base || child_base.ends_with(&format!(".{base}")),
                (None, Some(base)) => self.pattern.ends_with(&format!(".{base}")),
            },
            ScopeKind::Recipient => match parent.pattern.strip_prefix("*@") {
                Some(domain) => self.pattern.rsplit_once('@').is_some_and(|(_, d)| d == domain),
                None => self.pattern == parent.pattern,
            },
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ScopeKind::Any => f.write_str("*"),
            _ => f.write_str(&self.pattern),
        }
    }
}

/// A concrete resource an intent touches, typed like the scopes that may cover it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceRef<'a> {
    /// The kind of resource.
    pub kind: ScopeKind,
    /// The path, domain, recipient or resource name.
    pub value: &'a str,
}

/// A rule on one argument of a call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule", content = "value")]
pub enum ConstraintRule {
    /// The argument must equal one of these strings.
    OneOf(Vec<String>),
    /// The argument must be an integer no greater than this.
    MaxInt(i64),
    /// The argument must match this glob (`*` matches anything).
    Glob(String),
}

/// A constraint on a named argument; a constrained argument must be present.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ArgConstraint {
    arg: String,
    rule: ConstraintRule,
}

impl ArgConstraint {
    /// Validates a constraint.
    ///
    /// # Errors
    /// [`TokenError::InvalidClaims`] if the name or values break a limit.
    pub fn new(arg: &str, rule: ConstraintRule) -> Result<Self, TokenError> {
        let bad = |why: &str| TokenError::InvalidClaims(format!("constraint on `{}`: {why}", truncate(arg)));
        if arg.is_empty()
            || arg.len() > PATTERN_BYTES_MAX
            || !arg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(bad("argument names use 1 to 255 of a-z, A-Z, 0-9 and `_-.`"));
        }
        let rule = match rule {
            ConstraintRule::OneOf(mut values) => {
                values.sort();
                values.dedup();
                if values.is_empty() || values.len() > ONE_OF_VALUES_MAX {
                    return Err(bad("one-of takes 1 to 16 values"));
                }
                if values.iter().any(|v| v.is_empty() || v.len() > PATTERN_BYTES_MAX || v.chars().any(char::is_control))
                {
                    return Err(bad("values must be 1 to 255 bytes without control characters"));
                }
                ConstraintRule::OneOf(values)
            }
            ConstraintRule::Glob(g) => {
                if g.is_empty() || g.len() > PATTERN_BYTES_MAX || g.chars().any(char::is_control) {
                    return Err(bad("patterns must be 1 to 255 bytes without control characters"));
                }
                ConstraintRule::Glob(g)
            }
            rule @ ConstraintRule::MaxInt(_) => rule,
        };
        Ok(Self { arg: arg.to_owned(), rule })
    }

    /// The argument name.
    #[must_use]
    pub fn arg(&self) -> &str {
        &self.arg
    }

    /// The rule.
    #[must_use]
    pub fn rule(&self) -> &ConstraintRule {
        &self.rule
    }

    /// Whether an argument value satisfies the rule. A missing value never does.
    #[must_use]
    pub fn allows(&self, value: Option<&str>) -> bool {
        let Some(value) = value else { return false };
        match &self.rule {
            ConstraintRule::OneOf(values) => values.iter().any(|v| v == value),
            ConstraintRule::MaxInt(max) => value.trim().parse::<i64>().is_ok_and(|n| n <= *max),
            ConstraintRule::Glob(g) => glob_match(g, value, None),
        }
    }

    /// Whether this constraint is at least as strict as `parent` (same argument).
    #[must_use]
    pub fn at_least_as_strict_as(&self, parent: &Self) -> bool {
        if self.arg != parent.arg {
            return false;
        }
        match (&self.rule, &parent.rule) {
            (ConstraintRule::OneOf(c), ConstraintRule::OneOf(p)) => c.iter().all(|v| p.contains(v)),
            (ConstraintRule::OneOf(c), ConstraintRule::Glob(p)) => c.iter().all(|v| glob_match(p, v, None)),
            (ConstraintRule::OneOf(c), ConstraintRule::MaxInt(p)) => {
                c.iter().all(|v| v.trim().parse::<i64>().is_ok_and(|n| n <= *p))
            }
            (ConstraintRule::MaxInt(c), ConstraintRule::MaxInt(p)) => c <= p,
            (ConstraintRule::Glob(c), ConstraintRule::Glob(p)) => glob_within(c, p, None),
            (ConstraintRule::MaxInt(_), _) | (ConstraintRule::Glob(_), _) => false,
        }
    }
}

impl fmt::Display for ArgConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            ConstraintRule::OneOf(v) => write!(f, "{}={}", self.arg, v.join("|")),
            ConstraintRule::MaxInt(n) => write!(f, "{}<={n}", self.arg),
            ConstraintRule::Glob(g) => write!(f, "{}~{g}", self.arg),
        }
    }
}

/// Arguments of a call, as the token's constraints see them.
pub trait ArgSource {
    /// The argument's value as text, if present.
    fn arg_text(&self, name: &str) -> Option<Cow<'_, str>>;
}

impl ArgSource for BTreeMap<String, String> {
    fn arg_text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.get(name).map(|v| Cow::Borrowed(v.as_str()))
    }
}

impl ArgSource for () {
    fn arg_text(&self, _name: &str) -> Option<Cow<'_, str>> {
        None
    }
}

/// One permission: an action pattern, the resources it may touch, and rules on
/// its arguments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Permission {
    action: ActionPattern,
    // INVARIANT: sorted, deduplicated, 1..=SCOPES_PER_PERMISSION_MAX entries; if
    // it contains `Any` it contains nothing else.
    scopes: Vec<Scope>,
    // INVARIANT: sorted by argument, one constraint per argument.
    constraints: Vec<ArgConstraint>,
}

impl Permission {
    /// Builds a permission in canonical form.
    ///
    /// # Errors
    /// [`TokenError::InvalidClaims`] for no scopes, too many scopes or constraints,
    /// or two constraints on one argument.
    pub fn new(
        action: ActionPattern,
        mut scopes: Vec<Scope>,
        mut constraints: Vec<ArgConstraint>,
    ) -> Result<Self, TokenError> {
        let bad = |why: String| TokenError::InvalidClaims(format!("permission `{}`: {why}", action.as_str()));
        if scopes.is_empty() {
            return Err(bad("needs at least one scope (use `*` for any resource)".into()));
        }
        if scopes.iter().any(|s| s.kind == ScopeKind::Any) {
            scopes = vec![Scope::any()];
        }
        scopes.sort();
        scopes.dedup();
        if scopes.len() > SCOPES_PER_PERMISSION_MAX {
            return Err(bad(format!("at most {SCOPES_PER_PERMISSION_MAX} scopes")));
        }
        constraints.sort();
        if constraints.len() > CONSTRAINTS_PER_PERMISSION_MAX {
            return Err(bad(format!("at most {CONSTRAINTS_PER_PERMISSION_MAX} argument constraints")));
        }
        if constraints.windows(2).any(|w| matches!(w, [a, b] if a.arg == b.arg)) {
            return Err(bad("one constraint per argument".into()));
        }
        Ok(Self { action, scopes, constraints })
    }

    /// The action pattern.
    #[must_use]
    pub fn action(&self) -> &ActionPattern {
        &self.action
    }

    /// The resource scopes, sorted.
    #[must_use]
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// The argument constraints, sorted by argument.
    #[must_use]
    pub fn constraints(&self) -> &[ArgConstraint] {
        &self.constraints
    }

    /// Whether this permission allows `action` on every one of `resources` with `args`.
    #[must_use]
    pub fn covers(&self, action: &str, resources: &[ResourceRef<'_>], args: &dyn ArgSource) -> bool {
        self.action.matches(action)
            && resources.iter().all(|r| self.scopes.iter().any(|s| s.matches(r)))
            && self.constraints.iter().all(|c| c.allows(args.arg_text(&c.arg).as_deref()))
    }

    /// Whether this permission allows nothing that `parent` does not.
    #[must_use]
    pub fn within(&self, parent: &Self) -> bool {
        self.action.within(&parent.action)
            && self.scopes.iter().all(|c| parent.scopes.iter().any(|p| c.within(p)))
            && parent.constraints.iter().all(|p| self.constraints.iter().any(|c| c.at_least_as_strict_as(p)))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.action.as_str())?;
        let scopes: Vec<String> = self.scopes.iter().map(ToString::to_string).collect();
        write!(f, "={}", scopes.join(","))?;
        for c in &self.constraints {
            write!(f, ";{c}")?;
        }
        Ok(())
    }
}

/// Everything a capability token asserts. Field meanings follow spec §9.1/§9.3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenClaims {
    /// Unique token id (UUIDv7).
    pub id: TokenId,
    /// The agent instance that holds the token; tokens are not transferable.
    pub agent: AgentId,
    /// The holder's ring (2 or 3).
    pub ring: Ring,
    /// The holder's trust class.
    pub trust_class: TrustClass,
    /// IFC clearance: the highest level the holder may read.
    pub clearance: IfcLevel,
    /// Permissions, sorted and deduplicated.
    pub permissions: Vec<Permission>,
    /// Operations per hour this capability allows.
    pub rate_per_hour: u32,
    /// Operations over the token's life; used up, it is exhausted.
    pub max_ops: u64,
    /// Budget in integer units (Rule 7).
    pub budget: u64,
    /// Valid from (inclusive).
    pub not_before: UnixMillis,
    /// Valid until (exclusive): at `expires` the token is already dead.
    pub expires: UnixMillis,
    /// Revocation epoch when issued.
    pub epoch: u64,
    /// Ancestors, root first; empty for a root token.
    pub lineage: Vec<TokenId>,
    /// Key id of the kernel key that signed the token.
    #[serde(serialize_with = "key_id_hex")]
    pub issuer: KeyId,
    /// Whether a commander acknowledged a lifetime beyond 4× the default.
    pub commander_ack: bool,
    /// The human-authored task text, a trusted source for argument provenance.
    pub mission: Option<String>,
}

fn key_id_hex<S: serde::Serializer>(id: &KeyId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

impl TokenClaims {
    /// Delegation depth: 1 for a root token, 2 for its child, 3 for a grandchild.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.lineage.len() + 1
    }

    /// The direct parent, if any.
    #[must_use]
    pub fn parent(&self) -> Option<TokenId> {
        self.lineage.last().copied()
    }

    /// Checks every limit and the canonical order. Encoding and decoding both call it.
    ///
    /// # Errors
    /// [`TokenError::InvalidClaims`] or [`TokenError::LimitExceeded`] naming the field.
    pub fn validate(&self) -> Result<(), TokenError> {
        let bad = |why: &str| Err(TokenError::InvalidClaims(why.to_owned()));
        if self.permissions.is_empty() {
            return bad("a token needs at least one permission");
        }
        if self.permissions.len() > PERMISSIONS_MAX {
            return Err(TokenError::LimitExceeded { field: "permissions", max: PERMISSIONS_MAX as u64 });
        }
        if !self.permissions.windows(2).all(|w| matches!(w, [a, b] if a < b)) {
            return bad("permissions must be sorted and unique");
        }
        if self.lineage.len() >= DELEGATION_DEPTH_MAX {
            return Err(TokenError::LimitExceeded { field: "delegation depth", max: DELEGATION_DEPTH_MAX as u64 });
        }
        if !matches!(self.ring, Ring::Trusted | Ring::Untrusted) {
            return bad("agent tokens are for ring 2 or ring 3");
        }
        if self.rate_per_hour == 0 || self.rate_per_hour > RATE_PER_HOUR_MAX {
            return Err(TokenError::LimitExceeded { field: "rate_per_hour", max: u64::from(RATE_PER_HOUR_MAX) });
        }
        if self.max_ops == 0 {
            return bad("max_ops must be at least 1");
        }
        if self.expires <= self.not_before {
            return bad("expiry must be after not-before");
        }
        if let Some(m) = &self.mission {
            if m.is_empty() {
                return bad("an empty mission statement must be absent instead");
            }
            if m.len() > MISSION_BYTES_MAX {
                return Err(TokenError::LimitExceeded { field: "mission", max: MISSION_BYTES_MAX as u64 });
            }
        }
        Ok(())
    }

    /// The first permission that allows this call, if any.
    #[must_use]
    pub fn permission_for(
        &self,
        action: &str,
        resources: &[ResourceRef<'_>],
        args: &dyn ArgSource,
    ) -> Option<&Permission> {
        self.permissions.iter().find(|p| p.covers(action, resources, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(action: &str, kind: ScopeKind, scopes: &[&str]) -> Permission {
        let scopes = scopes.iter().filter_map(|s| Scope::new(kind, s).ok()).collect();
        match ActionPattern::new(action).and_then(|a| Permission::new(a, scopes, vec![])) {
            Ok(p) => p,
            Err(e) => unreachable!("test permission invalid: {e}"),
        }
    }

    #[test]
    fn actions_match_and_nest() -> Result<(), TokenError> {
        let fs_all = ActionPattern::new("fs.*")?;
        assert!(fs_all.matches("fs.write"));
        assert!(!fs_all.matches("mail.send"));
        assert!(ActionPattern::new("fs.write")?.within(&fs_all));
        assert!(!fs_all.within(&ActionPattern::new("fs.write")?));
        assert!(ActionPattern::new("mcp:github/*")?.matches("mcp:github/create_issue"));
        assert!(ActionPattern::new("fs*").is_err());
        assert!(ActionPattern::new("FS.write").is_err());
        assert!(ActionPattern::new("").is_err());
        Ok(())
    }

    #[test]
    fn scopes_match_by_kind() -> Result<(), TokenError> {
        let p = Scope::new(ScopeKind::Path, "/workspace/**")?;
        assert!(p.matches(&ResourceRef { kind: ScopeKind::Path, value: "/workspace/a/b" }));
        assert!(!p.matches(&ResourceRef { kind: ScopeKind::Path, value: "/workspace/../etc/passwd" }));
        assert!(!p.matches(&ResourceRef { kind: ScopeKind::Domain, value: "/workspace/a" }));
        let d = Scope::new(ScopeKind::Domain, "*.example.com")?;
        assert!(d.matches(&ResourceRef { kind: ScopeKind::Domain, value: "api.example.com" }));
        assert!(!d.matches(&ResourceRef { kind: ScopeKind::Domain, value: "example.com" }));
        assert!(!d.matches(&ResourceRef { kind: ScopeKind::Domain, value: "evilexample.com" }));
        let r = Scope::new(ScopeKind::Recipient, "*@Example.com")?;
        assert!(r.matches(&ResourceRef { kind: ScopeKind::Recipient, value: "bob@example.com" }));
        assert!(!r.matches(&ResourceRef { kind: ScopeKind::Recipient, value: "bob@attacker.com" }));
        assert!(Scope::new(ScopeKind::Path, "relative/path").is_err());
        assert!(Scope::new(ScopeKind::Path, "/a/../b").is_err());
        assert!(Scope::new(ScopeKind::Domain, "ex*ample.com").is_err());
        Ok(())
    }

    #[test]
    fn ct_cap_02_scope_outside_token_is_not_covered() {
        let p = perm("fs.write", ScopeKind::Path, &["/workspace/*"]);
        let inside = [ResourceRef { kind: ScopeKind::Path, value: "/workspace/x.txt" }];
        let outside = [ResourceRef { kind: ScopeKind::Path, value: "/shared/x.txt" }];
        assert!(p.covers("fs.write", &inside, &()));
        assert!(!p.covers("fs.write", &outside, &()));
        assert!(!p.covers("fs.delete", &inside, &()));
        let h = perm("http.get", ScopeKind::Domain, &["api.gmail.com"]);
        assert!(!h.covers("http.get", &[ResourceRef { kind: ScopeKind::Domain, value: "evil.com" }], &()));
    }

    #[test]
    fn constraints_gate_arguments() -> Result<(), TokenError> {
        let c = ArgConstraint::new("amount", ConstraintRule::MaxInt(100))?;
        assert!(c.allows(Some("100")));
        assert!(!c.allows(Some("101")));
        assert!(!c.allows(Some("lots")));
        assert!(!c.allows(None));
        let c = ArgConstraint::new("currency", ConstraintRule::OneOf(vec!["USD".into(), "EUR".into()]))?;
        assert!(c.allows(Some("EUR")));
        assert!(!c.allows(Some("BTC")));
        let tighter = ArgConstraint::new("currency", ConstraintRule::OneOf(vec!["EUR".into()]))?;
        assert!(tighter.at_least_as_strict_as(&c));
        assert!(!c.at_least_as_strict_as(&tighter));
        Ok(())
    }

    #[test]
    fn permission_containment() {
        let parent = perm("fs.*", ScopeKind::Path, &["/workspace/**"]);
        assert!(perm("fs.write", ScopeKind::Path, &["/workspace/out/*"]).within(&parent));
        assert!(!perm("fs.write", ScopeKind::Path, &["/etc/*"]).within(&parent));
        assert!(!perm("mail.send", ScopeKind::Path, &["/workspace/x"]).within(&parent));
    }
}
