//! How an upstream MCP server is configured: the shape users know from MCP client
//! configs (`command` + `args` + `env`, or `url`), plus MAOS's per-tool policy.
//!
//! ```toml
//! [[upstream]]
//! name = "files"
//! command = "npx"
//! args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/share"]
//! env = { NODE_OPTIONS = "--max-old-space-size=256" }
//!
//! [upstream.tools.read_text_file]
//! effect = "observe"
//! output = { level = "internal", untrusted = false }
//! paths = ["path"]
//!
//! [[upstream]]
//! name = "tickets"
//! url = "https://mcp.example.com/mcp"
//! bearer_token_env = "TICKETS_TOKEN"
//! ```

use std::collections::BTreeMap;

use maos_model::{EffectClass, IfcLevel, ReadLabel};
use serde::{Deserialize, Serialize};

use crate::McpError;

/// Longest upstream name, in bytes. The name becomes the `mcp:<name>/<tool>` action prefix.
pub const UPSTREAM_NAME_BYTES_MAX: usize = 64;

/// Environment variables a stdio upstream inherits from the gateway; everything else is
/// cleared so that MAOS's own secrets never reach a tool server. `env` adds to these.
pub const INHERITED_ENV: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"];

/// One upstream MCP server and the policy for its tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Short name (`[A-Za-z0-9_-]`, at most [`UPSTREAM_NAME_BYTES_MAX`] bytes); actions are
    /// `mcp:<name>/<tool>`.
    pub name: String,
    /// Program to start for a stdio server (found on `PATH` when not a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Arguments for `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment for `command`, on top of [`INHERITED_ENV`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Endpoint of a streamable HTTP server: `https://…`, or `http://` to a loopback host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `url`: name of the environment variable holding the bearer token sent to the
    /// upstream (the token itself never goes into the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_env: Option<String>,
    /// Per-tool policy, by the upstream's tool name. Tools not listed get
    /// [`ToolPolicy::default`]: a write with untrusted output.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolPolicy>,
    /// Longest wait for one `tools/call`, ms ([`CALL_TIMEOUT_MS_MIN`]..=
    /// [`crate::CALL_TIMEOUT_MAX`]; unset: the Commit Layer's deadline). A call
    /// past it fails `MCP-UPSTREAM-TIMEOUT` and counts against the upstream's
    /// circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
}

/// The shortest `call_timeout_ms` accepted.
pub const CALL_TIMEOUT_MS_MIN: u64 = 100;

/// How to reach an upstream, from a validated [`UpstreamConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTransport<'a> {
    /// A child process speaking MCP over stdin/stdout.
    Stdio {
        /// Program.
        command: &'a str,
        /// Arguments.
        args: &'a [String],
        /// Extra environment.
        env: &'a BTreeMap<String, String>,
    },
    /// A streamable HTTP endpoint.
    Http {
        /// The endpoint URL.
        url: &'a str,
        /// Environment variable with the bearer token, if any.
        bearer_token_env: Option<&'a str>,
    },
}

/// What MAOS assumes about one upstream tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicy {
    /// What the tool does to the world; a tool whose effect is not configured is a write.
    #[serde(default = "default_effect")]
    pub effect: EffectClass,
    /// Label of the tool's output.
    #[serde(default)]
    pub output: OutputLabel,
    /// Arguments naming message recipients (provenance-checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Arguments naming accounts (IBANs, user ids; provenance-checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// Arguments holding URLs (provenance-checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Arguments holding file paths (provenance-checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Confidentiality level of where a write sends its data (the IFC sink): `public`
    /// for tools that send outside the organisation (mail, chat, HTTP posts),
    /// `internal` for the workspace. Unset: see [`ToolPolicy::sink_level`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<IfcLevel>,
    /// Role arguments that take a JSON array of strings (every element is a
    /// resource); a role argument not listed here must be one string.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<String>,
    /// Budget units one call costs (Rule 7). Unset: 1 for an effect, 0 for an observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u64>,
    /// Whether a call from a session tainted `untrusted` needs a human first
    /// (HACF L2). Unset: see [`ToolPolicy::requires_integrity`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<bool>,
    /// What a role value found only in untrusted text does to a call: `escalate`
    /// (the default: a human confirms, HACF L2, as when paying a bill the user
    /// named) or `deny` (no human can let it through). A value from an output the
    /// pre-filter flagged is denied either way, and Hardened and Isolated deny all.
    #[serde(default, skip_serializing_if = "Provenance::is_escalate")]
    pub provenance: Provenance,
}

/// A tool's rule for role values of untrusted provenance (see [`ToolPolicy::provenance`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// A human confirms (HACF L2).
    #[default]
    Escalate,
    /// Refused (`DSC-4-PROVENANCE`).
    Deny,
}

impl Provenance {
    #[expect(clippy::trivially_copy_pass_by_ref, reason = "the signature serde's skip_serializing_if takes")]
    fn is_escalate(&self) -> bool {
        *self == Self::Escalate
    }
}

const fn default_effect() -> EffectClass {
    EffectClass::Write
}

impl Default for ToolPolicy {
    fn default() -> Self {
        Self {
            effect: default_effect(),
            output: OutputLabel::default(),
            recipients: Vec::new(),
            accounts: Vec::new(),
            urls: Vec::new(),
            paths: Vec::new(),
            sink: None,
            lists: Vec::new(),
            cost: None,
            integrity: None,
            provenance: Provenance::Escalate,
        }
    }
}

impl ToolPolicy {
    /// The sink level of the tool's writes: `sink` when configured; else `public` for a
    /// tool with `recipients` or `urls` (it sends somewhere outside), else `internal`.
    #[must_use]
    pub fn sink_level(&self) -> IfcLevel {
        self.sink.unwrap_or(if self.recipients.is_empty() && self.urls.is_empty() {
            IfcLevel::Internal
        } else {
            IfcLevel::Public
        })
    }

    /// Budget units per call: `cost` when configured; else 1 for an effect, 0 for an observation.
    #[must_use]
    pub fn cost(&self) -> u64 {
        self.cost.unwrap_or(if self.effect.is_effect() { 1 } else { 0 })
    }

    /// Whether a call needs integrity: `integrity` when configured; else true for
    /// irreversible tools and for tools with `recipients`, `urls` or `accounts`
    /// roles (payments, messages, requests to addresses), false otherwise.
    #[must_use]
    pub fn requires_integrity(&self) -> bool {
        self.integrity.unwrap_or(
            self.effect == EffectClass::Irreversible
                || !self.recipients.is_empty()
                || !self.urls.is_empty()
                || !self.accounts.is_empty(),
        )
    }

    /// Whether a role value of untrusted provenance denies the call (`provenance = "deny"`).
    #[must_use]
    pub fn provenance_denies(&self) -> bool {
        self.provenance == Provenance::Deny
    }

    /// Whether `arg` is declared list-valued.
    #[must_use]
    pub fn is_list(&self, arg: &str) -> bool {
        self.lists.iter().any(|a| a == arg)
    }

    /// What an observation through this tool reads: its output label. Writes read
    /// nothing the DSC checks in advance (their output taints the session afterwards
    /// when untrusted).
    #[must_use]
    pub fn reads(&self) -> Vec<ReadLabel> {
        if self.effect == EffectClass::Observe { vec![ReadLabel::from(self.output)] } else { Vec::new() }
    }

    /// Every argument name with a role (recipients, accounts, URLs, paths), for
    /// `Intent::sensitive_args`. May repeat a name that has several roles.
    pub fn sensitive_args(&self) -> impl Iterator<Item = &str> {
        self.recipients.iter().chain(&self.accounts).chain(&self.urls).chain(&self.paths).map(String::as_str)
    }
}

/// The IFC label of a tool's output. Both fields default to the cautious side: a tool
/// output is `internal` and untrusted unless the operator says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputLabel {
    /// Confidentiality level.
    #[serde(default = "default_level")]
    pub level: IfcLevel,
    /// Integrity taint: whether the output may carry attacker-controlled text.
    #[serde(default = "default_untrusted")]
    pub untrusted: bool,
}

const fn default_level() -> IfcLevel {
    IfcLevel::Internal
}

const fn default_untrusted() -> bool {
    true
}

impl Default for OutputLabel {
    fn default() -> Self {
        Self { level: default_level(), untrusted: default_untrusted() }
    }
}

impl From<OutputLabel> for ReadLabel {
    fn from(label: OutputLabel) -> Self {
        Self { level: label.level, untrusted: label.untrusted }
    }
}

impl UpstreamConfig {
    /// A streamable HTTP upstream at `url` with no tool policies (every tool gets the
    /// defaults); [`Self::transport`] checks the URL.
    #[must_use]
    pub fn http(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            url: Some(url.to_owned()),
            bearer_token_env: None,
            tools: BTreeMap::new(),
            call_timeout_ms: None,
        }
    }

    /// The longest wait for one tool call, when configured.
    #[must_use]
    pub fn call_timeout(&self) -> Option<std::time::Duration> {
        self.call_timeout_ms.map(std::time::Duration::from_millis)
    }

    /// The policy for `tool`: the configured one, or the default (write, untrusted output).
    #[must_use]
    pub fn tool_policy(&self, tool: &str) -> ToolPolicy {
        self.tools.get(tool).cloned().unwrap_or_default()
    }

    /// Checks the config and says how to reach the upstream.
    ///
    /// # Errors
    ///
    /// `MCP-CONFIG` when the name is malformed, when not exactly one of `command` and
    /// `url` is set, when stdio-only or HTTP-only fields are mixed, when the URL is not
    /// `https://` (or `http://` to a loopback host) or carries credentials, or when an
    /// environment variable name is malformed.
    pub fn transport(&self) -> Result<UpstreamTransport<'_>, McpError> {
        self.check_name()?;
        let max_ms = u64::try_from(crate::CALL_TIMEOUT_MAX.as_millis()).unwrap_or(u64::MAX);
        if self.call_timeout_ms.is_some_and(|ms| !(CALL_TIMEOUT_MS_MIN..=max_ms).contains(&ms)) {
            return Err(self.invalid(&format!("`call_timeout_ms` must be {CALL_TIMEOUT_MS_MIN}..={max_ms}")));
        }
        for tool in self.tools.keys() {
            if tool.is_empty() {
                return Err(self.invalid("a `tools` entry has an empty name"));
            }
        }
        match (&self.command, &self.url) {
            (Some(command), None) => {
                if command.is_empty() {
                    return Err(self.invalid("`command` is empty"));
                }
                if self.bearer_token_env.is_some() {
                    return Err(self.invalid("`bearer_token_env` is only for `url` upstreams"));
                }
                for name in self.env.keys() {
                    check_env_name(name).map_err(|why| self.invalid(why))?;
                }
                Ok(UpstreamTransport::Stdio { command, args: &self.args, env: &self.env })
            }
            (None, Some(url)) => {
                if !self.args.is_empty() || !self.env.is_empty() {
                    return Err(self.invalid("`args` and `env` are only for `command` upstreams"));
                }
                check_url(url).map_err(|why| self.invalid(why))?;
                if let Some(var) = &self.bearer_token_env {
                    check_env_name(var).map_err(|why| self.invalid(why))?;
                }
                Ok(UpstreamTransport::Http { url, bearer_token_env: self.bearer_token_env.as_deref() })
            }
            (Some(_), Some(_)) => Err(self.invalid("set either `command` or `url`, not both")),
            (None, None) => Err(self.invalid("set `command` (stdio) or `url` (streamable HTTP)")),
        }
    }

    fn check_name(&self) -> Result<(), McpError> {
        let ok = !self.name.is_empty()
            && self.name.len() <= UPSTREAM_NAME_BYTES_MAX
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(())
        } else {
            Err(McpError::Config {
                upstream: None,
                why: format!(
                    "upstream name must be 1 to {UPSTREAM_NAME_BYTES_MAX} bytes of A-Z, a-z, 0-9, `-`, `_` (got {} bytes)",
                    self.name.len()
                ),
            })
        }
    }

    fn invalid(&self, why: &str) -> McpError {
        McpError::Config { upstream: Some(self.name.clone()), why: why.to_owned() }
    }
}

fn check_env_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok { Ok(()) } else { Err("environment variable names must be non-empty A-Z, a-z, 0-9, `_`") }
}

/// `https://host…`, or `http://` to `localhost`, `127.x.y.z` or `[::1]`; no `user:pass@`.
/// Checks an endpoint URL the way upstream URLs are checked: `https://`, or
/// `http://` to a loopback host only, with a host and no credentials.
///
/// # Errors
/// Why it is refused.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("`url` must start with https:// (or http:// to a loopback host)");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err("`url` has no host");
    }
    if authority.contains('@') {
        return Err("`url` must not carry credentials; use `bearer_token_env`");
    }
    if tls {
        return Ok(());
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host.strip_prefix("127.").is_some_and(|tail| {
            tail.split('.').count() == 3
                && tail.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        });
    if loopback { Ok(()) } else { Err("plain http:// is only allowed to a loopback host; use https://") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UpstreamConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn stdio_config_with_tool_policy() {
        let config = parse(
            r#"
            name = "files"
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]
            env = { A_B = "1" }
            [tools.read_text_file]
            effect = "observe"
            output = { level = "confidential", untrusted = false }
            paths = ["path"]
            [tools.move_file]
            paths = ["source", "destination"]
            "#,
        )
        .unwrap();
        let UpstreamTransport::Stdio { command, args, env } = config.transport().unwrap() else {
            panic!("not stdio");
        };
        assert_eq!((command, args.len(), env.len()), ("npx", 3, 1));

        let read = config.tool_policy("read_text_file");
        assert_eq!(read.effect, EffectClass::Observe);
        assert_eq!(ReadLabel::from(read.output), ReadLabel { level: IfcLevel::Confidential, untrusted: false });
        assert_eq!(read.sensitive_args().collect::<Vec<_>>(), ["path"]);

        // Listed without an effect, or not listed at all: a write with untrusted internal output.
        for policy in [config.tool_policy("move_file"), config.tool_policy("unlisted")] {
            assert_eq!(policy.effect, EffectClass::Write);
            assert_eq!(policy.output, OutputLabel { level: IfcLevel::Internal, untrusted: true });
            assert_eq!(policy.sink_level(), IfcLevel::Internal);
            assert!(policy.reads().is_empty(), "a write declares no reads");
        }
        // An observation reads its output label, so the DSC checks it against the
        // clearance and raises the session's context with it.
        assert_eq!(read.reads(), [ReadLabel { level: IfcLevel::Confidential, untrusted: false }]);
    }

    #[test]
    fn sink_is_public_for_tools_that_send_outside_unless_configured() {
        let config = parse(
            r#"
            name = "mail"
            command = "mailer"
            [tools.send]
            recipients = ["to"]
            [tools.post]
            urls = ["url"]
            [tools.send_internal]
            recipients = ["to"]
            sink = "internal"
            [tools.archive]
            sink = "confidential"
            "#,
        )
        .unwrap();
        assert_eq!(config.tool_policy("send").sink_level(), IfcLevel::Public);
        assert_eq!(config.tool_policy("post").sink_level(), IfcLevel::Public);
        assert_eq!(config.tool_policy("send_internal").sink_level(), IfcLevel::Internal);
        assert_eq!(config.tool_policy("archive").sink_level(), IfcLevel::Confidential);
        // Integrity by default for tools that address someone; cost 1 per effect.
        assert!(config.tool_policy("send").requires_integrity());
        assert!(config.tool_policy("post").requires_integrity());
        assert!(!config.tool_policy("archive").requires_integrity());
        assert_eq!(config.tool_policy("archive").cost(), 1);
        assert!(parse("name = \"a\"\ncommand = \"x\"\n[tools.t]\nsink = \"nowhere\"").is_err());
    }

    #[test]
    fn http_config_and_json_shape() {
        let config: UpstreamConfig = serde_json::from_str(
            r#"{"name": "tickets", "url": "https://mcp.example.com/mcp", "bearer_token_env": "TICKETS_TOKEN",
                "tools": {"create": {"effect": "irreversible", "output": {"level": "public"}, "urls": ["link"]}}}"#,
        )
        .unwrap();
        assert_eq!(
            config.transport().unwrap(),
            UpstreamTransport::Http { url: "https://mcp.example.com/mcp", bearer_token_env: Some("TICKETS_TOKEN") }
        );
        let create = config.tool_policy("create");
        assert_eq!(create.effect, EffectClass::Irreversible);
        // Only the level was given: the output stays untrusted.
        assert_eq!(create.output, OutputLabel { level: IfcLevel::Public, untrusted: true });
    }

    #[test]
    fn unknown_fields_and_values_are_rejected() {
        assert!(parse("name = \"a\"\ncommand = \"x\"\ncwd = \"/\"").is_err());
        assert!(parse("name = \"a\"\ncommand = \"x\"\n[tools.t]\neffect = \"observ\"").is_err());
        assert!(parse("name = \"a\"\ncommand = \"x\"\n[tools.t]\nowner = [\"to\"]").is_err());
        assert!(parse("name = \"a\"\ncommand = \"x\"\n[tools.t]\noutput = { level = \"secret\" }").is_err());
    }

    #[test]
    fn invalid_configs_are_config_errors() {
        let cases = [
            "name = \"a\"",
            "name = \"a\"\ncommand = \"x\"\nurl = \"https://h/\"",
            "name = \"a\"\ncommand = \"x\"\ncall_timeout_ms = 5",
            "name = \"\"\ncommand = \"x\"",
            "name = \"a b\"\ncommand = \"x\"",
            "name = \"a\"\ncommand = \"\"",
            "name = \"a\"\ncommand = \"x\"\nbearer_token_env = \"T\"",
            "name = \"a\"\ncommand = \"x\"\nenv = { \"A=B\" = \"1\" }",
            "name = \"a\"\nurl = \"https://h/\"\nargs = [\"x\"]",
            "name = \"a\"\nurl = \"ftp://h/\"",
            "name = \"a\"\nurl = \"http://example.com/mcp\"",
            "name = \"a\"\nurl = \"http://127.0.0.1.evil.com/mcp\"",
            "name = \"a\"\nurl = \"http://127.a.b.c/mcp\"",
            "name = \"a\"\nurl = \"https://user:pw@h/mcp\"",
            "name = \"a\"\nurl = \"https:///mcp\"",
        ];
        for case in cases {
            let err = parse(case).unwrap().transport().unwrap_err();
            assert_eq!(err.code(), "MCP-CONFIG", "{case}");
        }
        let long = format!("name = \"{}\"\ncommand = \"x\"", "a".repeat(UPSTREAM_NAME_BYTES_MAX + 1));
        assert!(parse(&long).unwrap().transport().is_err());
    }

    #[test]
    fn loopback_http_is_allowed() {
        for url in ["http://localhost:3001/mcp", "http://127.0.0.1/mcp", "http://[::1]:8080/mcp", "http://LOCALHOST"] {
            assert!(check_url(url).is_ok(), "{url}");
        }
    }
}
