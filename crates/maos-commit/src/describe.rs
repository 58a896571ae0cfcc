//! Descriptors: the operator-side facts of an action (design.md "Facts from
//! descriptors, never from the agent"; spec §11, §15.3).
//!
//! Guarantees:
//! - Every fact the DSC decides on besides the token and the kernel's state —
//!   the effect class, the resources, the sink level, the labels read, the cost
//!   and whether the effect requires integrity — is computed here from the
//!   action, its arguments and the effector's configuration. Whatever an agent
//!   put in those fields of an [`Intent`] is overwritten by [`Described::apply`].
//! - Role arguments (recipients, URLs, paths, accounts) are parsed with
//!   well-kept parsers: URLs by the WHATWG URL standard (`url`, the parser
//!   HTTP clients use, so the host checked is the host connected to), recipients
//!   as exactly one RFC 5322 addr-spec (`lettre`'s `Address`). A value that
//!   could be read two ways is refused, never guessed.
//! - Every refusal names the argument and carries a stable code
//!   ([`DescribeError::code`]).

use maos_model::{ArgValue, EffectClass, IfcLevel, Intent, ReadLabel, Resource, ResourceKind};
use std::str::FromStr as _;

/// Elements one list-valued role argument may carry: bounds the resources and
/// scope checks one intent can cause (the intent's own resource bound is 16).
pub const ROLE_LIST_ELEMENTS_MAX: usize = 16;
/// The virtual root agents see for workspace paths.
pub const WORKSPACE_ROOT: &str = maos_dsc::WORKSPACE_ROOT;

/// What the descriptor of an action says about one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// What the effect does to the world.
    pub effect: EffectClass,
    /// The resources the arguments name (each one is scope-checked).
    pub resources: Vec<Resource>,
    /// Level of the destination a write sends its data to.
    pub sink_level: IfcLevel,
    /// Labels an observation reads (the output's label, joined with the stored
    /// label of the data); empty for effects, whose carried label is the
    /// session's context, which the kernel adds.
    pub reads: Vec<ReadLabel>,
    /// Budget units (Rule 7).
    pub cost: u64,
    /// Whether a tainted session must ask a human first (HACF L2).
    pub requires_integrity: bool,
    /// Argument names whose values must have trusted provenance.
    pub sensitive_args: Vec<String>,
    /// Whether untrusted provenance denies instead of escalating.
    pub provenance_deny: bool,
}

impl Described {
    /// The default costs: 1 per effect, 0 per observation.
    #[must_use]
    pub const fn default_cost(effect: EffectClass) -> u64 {
        if effect.is_effect() { 1 } else { 0 }
    }

    /// Overwrites every descriptor-derived field of `intent`.
    pub fn apply(self, intent: &mut Intent) {
        intent.effect = self.effect;
        intent.resources = self.resources;
        intent.sink_level = self.sink_level;
        intent.reads = self.reads;
        intent.cost = self.cost;
        intent.requires_integrity = self.requires_integrity;
        intent.sensitive_args = self.sensitive_args;
        intent.provenance_deny = self.provenance_deny;
    }
}

/// Why an intent's arguments do not fit its action's descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescribeError {
    /// `INTENT-ACTION-UNKNOWN`: no descriptor covers the action.
    #[error("no descriptor covers action `{0}`")]
    UnknownAction(String),
    /// `INTENT-ARG-MISSING`: a required argument is absent.
    #[error("argument `{0}` is required")]
    Missing(String),
    /// `INTENT-ROLE-TYPE`: a role argument is not of the type its role takes.
    #[error("argument `{arg}` must be {want}")]
    RoleType {
        /// The argument.
        arg: String,
        /// What it must be.
        want: &'static str,
    },
    /// `INTENT-ROLE-VALUE`: a role value is empty, too long or has control characters.
    #[error("argument `{arg}`: {why}")]
    RoleValue {
        /// The argument.
        arg: String,
        /// Why.
        why: String,
    },
    /// `INTENT-URL`: a URL role value does not parse, has no host, or could be read two ways.
    #[error("argument `{arg}` is not an unambiguous URL: {why}")]
    Url {
        /// The argument.
        arg: String,
        /// Why.
        why: String,
    },
    /// `INTENT-RECIPIENT`: a recipient role value is not exactly one addr-spec.
    #[error("argument `{arg}` is not exactly one mail address (user@domain)")]
    Recipient {
        /// The argument.
        arg: String,
    },
    /// `INTENT-PATH`: a path role value escapes with `..` or is not a path.
    #[error("argument `{arg}`: {why}")]
    Path {
        /// The argument.
        arg: String,
        /// Why.
        why: &'static str,
    },
    /// `INTENT-TOOL-WITHHELD`: the tool exists but is withheld (changed or poisoned definition).
    #[error("{code}: {why}")]
    Withheld {
        /// The registry's code (`MCP-TOOL-CHANGED`, `MCP-TOOL-POISONED`).
        code: &'static str,
        /// Why.
        why: String,
    },
    /// `INTENT-LABEL`: the stored label of the data cannot be read (fail closed).
    #[error("the label of `{0}` cannot be read")]
    Label(String),
}

impl DescribeError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::UnknownAction(_) => "INTENT-ACTION-UNKNOWN",
            Self::Missing(_) => "INTENT-ARG-MISSING",
            Self::RoleType { .. } => "INTENT-ROLE-TYPE",
            Self::RoleValue { .. } => "INTENT-ROLE-VALUE",
            Self::Url { .. } => "INTENT-URL",
            Self::Recipient { .. } => "INTENT-RECIPIENT",
            Self::Path { .. } => "INTENT-PATH",
            Self::Withheld { code, .. } => code,
            Self::Label(_) => "INTENT-LABEL",
        }
    }
}

/// How a role argument's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A mail or message recipient: exactly one addr-spec.
    Recipient,
    /// A URL (or a bare host): its host is a `domain` resource.
    Url,
    /// A file path: a `path` resource, no `..`.
    Path,
    /// An account, IBAN or user id: a `resource`.
    Account,
}

impl Role {
    /// The resource one value of this role names.
    ///
    /// # Errors
    /// The [`DescribeError`] naming `arg`.
    pub fn resource(self, arg: &str, value: &str) -> Result<Resource, DescribeError> {
        check_value(arg, value)?;
        match self {
            Self::Recipient => Ok(Resource { kind: ResourceKind::Recipient, value: recipient(arg, value)? }),
            Self::Url => Ok(Resource { kind: ResourceKind::Domain, value: url_host(arg, value)? }),
            Self::Path => Ok(Resource { kind: ResourceKind::Path, value: path(arg, value)? }),
            Self::Account => Ok(Resource { kind: ResourceKind::Resource, value: value.to_owned() }),
        }
    }
}

fn check_value(arg: &str, value: &str) -> Result<(), DescribeError> {
    let bad = |why: &str| Err(DescribeError::RoleValue { arg: arg.to_owned(), why: why.to_owned() });
    if value.is_empty() {
        return bad("is empty");
    }
    if value.len() > maos_model::RESOURCE_VALUE_BYTES_MAX {
        return bad(&format!("is over {} bytes", maos_model::RESOURCE_VALUE_BYTES_MAX));
    }
    if value.chars().any(char::is_control) {
        // A newline in a recipient or URL is how headers and requests are split.
        return bad("has a control character (newline, tab, ...)");
    }
    if value.trim() != value {
        return bad("has leading or trailing space");
    }
    Ok(())
}

/// Exactly one RFC 5322 addr-spec, lowercased (`a@x,b@y`, display names and
/// quoted local parts are refused).
///
/// # Errors
/// [`DescribeError::Recipient`].
pub fn recipient(arg: &str, value: &str) -> Result<String, DescribeError> {
    let bad = || DescribeError::Recipient { arg: arg.to_owned() };
    // Quoted local parts are valid RFC 5322 but read as two addresses by any
    // tool that splits on `,` or `;`: refused, as are display-name brackets.
    if value.contains(['"', ',', ';', '<', '>', '(', ')']) {
        return Err(bad());
    }
    let address = lettre::Address::from_str(value).map_err(|_| bad())?;
    let text = address.to_string();
    // The parsed address must be the whole value: nothing dropped or added.
    if !text.eq_ignore_ascii_case(value) || !value.is_ascii() {
        return Err(bad());
    }
    Ok(text.to_ascii_lowercase())
}

/// The host of a URL role value, as the WHATWG URL standard reads it; a
/// value without a scheme (`example.com/x`) is read as `http://` plus the value.
/// Userinfo, backslashes and hostless URLs are refused: they are where two
/// parsers disagree about the host.
///
/// # Errors
/// [`DescribeError::Url`].
pub fn url_host(arg: &str, value: &str) -> Result<String, DescribeError> {
    let bad = |why: &str| DescribeError::Url { arg: arg.to_owned(), why: why.to_owned() };
    if value.contains('\\') {
        return Err(bad("a backslash is read as `/` by some parsers and as data by others"));
    }
    if value.chars().any(char::is_whitespace) {
        return Err(bad("whitespace"));
    }
    // `example.com:8080/x` would parse as the scheme `example.com`: without
    // `://` the value is a host, not a URL.
    let text = if value.contains("://") { value.to_owned() } else { format!("http://{value}") };
    let parsed = url::Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() || authority_has_at(value) {
        return Err(bad("credentials (`user@`) in the authority"));
    }
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("no host"))?;
    Ok(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Whether the raw authority (between `//` and the next `/`, `?` or `#`) has an
/// `@`: refused even where the parser would drop an empty userinfo.
fn authority_has_at(value: &str) -> bool {
    let rest = value.split_once("//").map_or(value, |(_, r)| r);
    rest.split(['/', '?', '#']).next().is_some_and(|a| a.contains('@'))
}

/// A path role value: NUL, control characters and `..` segments refused;
/// `.` segments and repeated slashes dropped, so the scope check sees the path
/// the tool will open.
///
/// # Errors
/// [`DescribeError::Path`].
pub fn path(arg: &str, value: &str) -> Result<String, DescribeError> {
    let bad = |why| DescribeError::Path { arg: arg.to_owned(), why };
    if value.split(['/', '\\']).any(|s| s == "..") {
        return Err(bad("`..` is not allowed in a path"));
    }
    let absolute = value.starts_with('/');
    let parts: Vec<&str> = value.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let joined = parts.join("/");
    Ok(if absolute { format!("/{joined}") } else { joined })
}

/// A workspace path (`fs.*`): relative paths are under [`WORKSPACE_ROOT`].
///
/// # Errors
/// [`DescribeError::Path`].
pub fn workspace_path(arg: &str, value: &str) -> Result<String, DescribeError> {
    check_value(arg, value)?;
    let clean = path(arg, value)?;
    let bare = WORKSPACE_ROOT.trim_end_matches('/');
    if clean.starts_with('/') {
        if clean == bare || clean.starts_with(WORKSPACE_ROOT) {
            return Ok(clean);
        }
        return Err(DescribeError::Path { arg: arg.to_owned(), why: "absolute paths must be under /workspace/" });
    }
    Ok(if clean.is_empty() { bare.to_owned() } else { format!("{WORKSPACE_ROOT}{clean}") })
}

/// The string argument `arg`, or the error naming it.
///
/// # Errors
/// [`DescribeError::Missing`] or [`DescribeError::RoleType`].
pub fn str_arg<'a>(intent: &'a Intent, arg: &str) -> Result<&'a str, DescribeError> {
    match intent.args.get(arg) {
        Some(ArgValue::Str(s)) => Ok(s),
        Some(ArgValue::Int(_) | ArgValue::Bool(_)) => {
            Err(DescribeError::RoleType { arg: arg.to_owned(), want: "a string" })
        }
        None => Err(DescribeError::Missing(arg.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_one_address_each() {
        assert_eq!(recipient("to", "Bob@Example.com").unwrap(), "bob@example.com");
        for bad in [
            "attacker@evil.example,bob@example.com",
            "Bob <bob@example.com>",
            "\"a,b\"@example.com",
            "bob@example.com ",
            "bob",
            "bob@",
            "@example.com",
            "bob@exa mple.com",
        ] {
            assert!(Role::Recipient.resource("to", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_hosts_are_what_a_whatwg_client_connects_to() {
        assert_eq!(url_host("url", "https://API.example.com:8443/x?y#z").unwrap(), "api.example.com");
        assert_eq!(url_host("url", "example.com/path").unwrap(), "example.com");
        assert_eq!(url_host("url", "example.com:8080/path").unwrap(), "example.com");
        assert_eq!(url_host("url", "http://[::1]:80/").unwrap(), "[::1]");
        assert_eq!(url_host("url", "http://example.com./").unwrap(), "example.com");
        for bad in [
            "http://127.0.0.1:8765\\@allowed.example/x",
            "http://user:pw@allowed.example/",
            "http://@allowed.example/",
            "http://evil.example@allowed.example/",
            "mailto:bob@example.com",
            "file:///etc/passwd",
            "http://exa mple.com/",
            "",
        ] {
            assert!(Role::Url.resource("url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_never_climb() {
        assert_eq!(path("p", "/srv/./share//a.txt").unwrap(), "/srv/share/a.txt");
        assert!(path("p", "/srv/share/../../etc/passwd").is_err());
        assert!(path("p", "a\\..\\b").is_err());
        assert_eq!(workspace_path("path", "notes/a.md").unwrap(), "/workspace/notes/a.md");
        assert_eq!(workspace_path("path", "/workspace").unwrap(), "/workspace");
        assert!(workspace_path("path", "/etc/passwd").is_err());
        assert!(workspace_path("path", "/workspacex/a").is_err());
    }

    #[test]
    fn newlines_name_the_argument() {
        let e = Role::Recipient.resource("to", "bob@example.com\nBcc: eve@evil.example").unwrap_err();
        assert_eq!(e.code(), "INTENT-ROLE-VALUE");
        assert!(e.to_string().contains("`to`"), "{e}");
    }
}
