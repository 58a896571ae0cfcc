//! `mcp.*`: tool calls on upstream MCP servers as Commit Layer effects.
//!
//! - The action names the tool (`mcp.<server>.<tool>`, [`super::registry`]);
//!   its effect class comes from the tool's policy (unknown = write).
//!   Resource reads (`mcp.<server>.resources/read`) and prompt fetches
//!   (`mcp.<server>.prompts/get`) are observations.
//! - A disabled tool (changed definition, poisoned description) is refused at
//!   execution too, not only hidden from `tools/list`.
//! - Output: the upstream's `CallToolResult` as JSON, unchanged, labelled
//!   `untrusted` when the tool's policy says so (the session is then tainted).
//! - MCP tool calls cannot be taken back: writes snapshot nothing and are not
//!   compensable (undo is refused); crash recovery never repeats a write whose
//!   outcome is unknown (probe = unknown), and re-runs an observation.
//! - The call runs with the time left before the Commit Layer's deadline.
//! - An upstream that is down or fails is `EFFECT-REMOTE` whose reason starts
//!   with the MCP code (`MCP-UPSTREAM-TRANSPORT: …`); the agent sees
//!   `COMMIT-EFFECT: … (EFFECT-REMOTE): remote error: MCP-UPSTREAM-…`. A
//!   transport failure also starts the upstream's reconnection.

use super::registry::ToolRegistry;
use super::upstreams::Upstreams;
use maos_commit::describe::{self, ROLE_LIST_ELEMENTS_MAX};
use maos_commit::{
    Compensable, DescribeError, Described, EffectError, EffectOutput, Effector, ExecContext, OutputLabel, Probe, Role,
    Snapshot,
};
use maos_model::{ArgValue, EffectClass, IfcLevel, Intent, IntentId, ReadLabel, Resource};
use std::sync::Arc;
use std::time::Instant;

/// Action suffix of a resource read: `mcp.<server>.resources/read`, the MCP
/// method's name (`/` cannot occur in a tool action, so no tool is mistaken
/// for it; `mcp.<server>.*` covers it).
pub const RESOURCE_OP: &str = ".resources/read";
/// Action suffix of a prompt fetch: `mcp.<server>.prompts/get`.
pub const PROMPT_OP: &str = ".prompts/get";
/// Action suffix of a server's resource listing: `mcp.<server>.resources/list`.
pub const RESOURCE_LIST_OP: &str = ".resources/list";
/// Action suffix of a server's prompt listing: `mcp.<server>.prompts/list`.
pub const PROMPT_LIST_OP: &str = ".prompts/list";

/// Whether `action` is one of the server-level observations (not a tool).
fn server_op(action: &str) -> bool {
    [RESOURCE_OP, PROMPT_OP, RESOURCE_LIST_OP, PROMPT_LIST_OP].iter().any(|op| action.ends_with(op))
}

/// The `mcp` effector.
#[derive(Debug, Clone)]
pub struct McpEffector {
    registry: Arc<ToolRegistry>,
    upstreams: Upstreams,
    runtime: tokio::runtime::Handle,
    /// The DSC configuration whose pre-filter screens resource and prompt
    /// listings (as tool definitions are screened when pinned).
    screen: Arc<maos_dsc::DscConfig>,
}

impl McpEffector {
    /// An effector calling `upstreams` for the tools in `registry`, with the
    /// async work done on `runtime`; listings are screened with `screen`'s pre-filter.
    #[must_use]
    pub const fn new(
        registry: Arc<ToolRegistry>,
        upstreams: Upstreams,
        runtime: tokio::runtime::Handle,
        screen: Arc<maos_dsc::DscConfig>,
    ) -> Self {
        Self { registry, upstreams, runtime, screen }
    }
}

fn err(code_why: String) -> EffectError {
    EffectError::Invalid(code_why)
}

/// An upstream's failure: `EFFECT-REMOTE`, with the MCP code first in the reason.
fn remote(e: &maos_mcp::McpError) -> EffectError {
    EffectError::Remote(format!("{}: {e}", e.code()))
}

impl McpEffector {
    /// A failed upstream request: a transport failure drops the connection and
    /// starts its reconnection ([`Upstreams::failed`]).
    fn upstream_failed(&self, up: &Arc<maos_mcp::Upstream>, e: &maos_mcp::McpError) -> EffectError {
        self.upstreams.failed(up, e);
        remote(e)
    }

    /// A resource read or prompt fetch on the server of `action_prefix`
    /// (`mcp.<server>`) within the Commit Layer's deadline: the answer as JSON,
    /// and whether it is untrusted (the server's output label).
    fn observe<T, F>(
        &self,
        action_prefix: &str,
        ctx: &ExecContext,
        request: impl FnOnce(Arc<maos_mcp::Upstream>) -> F,
    ) -> Result<(Vec<u8>, bool), EffectError>
    where
        T: serde::Serialize,
        F: std::future::Future<Output = Result<T, maos_mcp::McpError>>,
    {
        let server = action_prefix.strip_prefix("mcp.").unwrap_or(action_prefix);
        // The action is lowercase; the upstream keeps its configured name.
        let server = self.registry.config(server).map_or_else(|| server.to_owned(), |c| c.name);
        let server = server.as_str();
        let up = self.upstreams.get(server).map_err(|e| remote(&e))?;
        let admission = self.upstreams.admit(server).map_err(|e| remote(&e))?;
        let timeout = ctx.deadline().saturating_duration_since(Instant::now());
        // The timer is created inside the runtime: effect threads are plain
        // threads with no runtime context of their own.
        let request = request(up.clone());
        let result = self.runtime.block_on(async move { tokio::time::timeout(timeout, request).await });
        let Ok(result) = result else {
            self.upstreams.record_ok(server, admission, false);
            return Err(EffectError::Cancelled);
        };
        self.upstreams.record(server, admission, result.as_ref().map(drop));
        let result = result.map_err(|e| self.upstream_failed(&up, &e))?;
        let body = serde_json::to_vec(&result).map_err(|e| err(e.to_string()))?;
        // Resources and prompts are text the server chose: untrusted unless configured otherwise.
        Ok((body, self.registry.server_output(server).untrusted))
    }
}

/// The resources one role argument names: a string is one value; a JSON
/// array of strings (kept as `<arg>.json`) only where the tool's policy lists
/// the argument in `lists`; any other type is refused.
fn role_resources(intent: &Intent, arg: &str, role: Role, list: bool) -> Result<Vec<Resource>, DescribeError> {
    let want = if list { "a string or an array of strings" } else { "a string" };
    let wrong = || DescribeError::RoleType { arg: arg.to_owned(), want };
    match intent.args.get(arg) {
        Some(ArgValue::Str(value)) => return Ok(vec![role.resource(arg, value)?]),
        Some(ArgValue::Int(_) | ArgValue::Bool(_)) => return Err(wrong()),
        None => {}
    }
    let Some(json) = intent.args.get(&format!("{arg}.json")) else { return Ok(Vec::new()) };
    let value: serde_json::Value = json.as_str().and_then(|t| serde_json::from_str(t).ok()).ok_or_else(wrong)?;
    match value {
        serde_json::Value::Array(items) if list => {
            if items.len() > ROLE_LIST_ELEMENTS_MAX {
                return Err(DescribeError::RoleValue {
                    arg: arg.to_owned(),
                    why: format!("more than {ROLE_LIST_ELEMENTS_MAX} elements"),
                });
            }
            items.iter().map(|item| item.as_str().ok_or_else(wrong).and_then(|v| role.resource(arg, v))).collect()
        }
        _ => Err(wrong()),
    }
}

impl McpEffector {
    /// A resource read or prompt fetch: an observation of the server's output label.
    /// A listing of the server's resources or prompts: an observation that
    /// names no resource and takes no argument (an argument is refused, so the
    /// log never holds agent text under a listing).
    fn describe_listing(&self, intent: &Intent, prefix: &str) -> Result<Described, DescribeError> {
        self.server_observation(intent, prefix, || match intent.args.keys().next() {
            Some(name) => {
                Err(DescribeError::RoleValue { arg: name.clone(), why: "a listing takes no arguments".into() })
            }
            None => Ok(Vec::new()),
        })
    }

    /// An observation of the server of `prefix` (`mcp.<server>`) as a whole:
    /// it reads the label of the server's unconfigured tools, costs nothing
    /// and names the `resources` given.
    fn server_observation(
        &self,
        intent: &Intent,
        prefix: &str,
        resources: impl FnOnce() -> Result<Vec<Resource>, DescribeError>,
    ) -> Result<Described, DescribeError> {
        let server = prefix.strip_prefix("mcp.").unwrap_or(prefix);
        if self.registry.config(server).is_none() {
            return Err(DescribeError::UnknownAction(intent.action.clone()));
        }
        Ok(Described {
            effect: EffectClass::Observe,
            resources: resources()?,
            sink_level: IfcLevel::Internal,
            reads: vec![ReadLabel::from(self.registry.server_output(server))],
            cost: 0,
            requires_integrity: false,
            sensitive_args: Vec::new(),
            provenance_deny: false,
        })
    }

    /// The label of a listing: the server's catalogue (the session's taint
    /// follows the server's output label in the descriptor, as for any read).
    /// It vouches for reading a URI it lists, but an address in its
    /// text is not a trusted target for an effect (the kernel keeps it as
    /// catalogue text for provenance). If the pre-filter finds an injection in
    /// it, it is untrusted, and the kernel marks the session injected.
    fn listing(&self, body: Vec<u8>, summary: String) -> EffectOutput {
        let poisoned = self.screen.prefilter().scan_text(&String::from_utf8_lossy(&body)).is_some();
        let label = if poisoned { OutputLabel::Untrusted } else { OutputLabel::Catalogue };
        EffectOutput { body, label, summary }
    }

    fn describe_observation(&self, intent: &Intent, prefix: &str, arg: &str) -> Result<Described, DescribeError> {
        // The URI or prompt name: a `resource`, checked like any role value.
        self.server_observation(intent, prefix, || {
            Ok(vec![Role::Account.resource(arg, describe::str_arg(intent, arg)?)?])
        })
    }
}

impl Effector for McpEffector {
    fn namespace(&self) -> &'static str {
        "mcp"
    }

    /// The tool's `[upstream.tools.<name>]` policy and the call's arguments:
    /// the roles' values are the resources (`paths`, `recipients`, `accounts`,
    /// and the host of each `urls` value), the policy gives effect, sink,
    /// output label, cost and integrity. Resource reads name the `uri`, prompt
    /// fetches the `name`. An unknown or withheld tool is refused here, before
    /// any decision, with its code.
    fn describe(&self, intent: &Intent) -> Result<Described, DescribeError> {
        if let Some(prefix) =
            intent.action.strip_suffix(RESOURCE_LIST_OP).or_else(|| intent.action.strip_suffix(PROMPT_LIST_OP))
        {
            return self.describe_listing(intent, prefix);
        }
        if let Some(prefix) = intent.action.strip_suffix(RESOURCE_OP) {
            return self.describe_observation(intent, prefix, "uri");
        }
        if let Some(prefix) = intent.action.strip_suffix(PROMPT_OP) {
            return self.describe_observation(intent, prefix, "name");
        }
        let entry =
            self.registry.get(&intent.action).ok_or_else(|| DescribeError::UnknownAction(intent.action.clone()))?;
        if let Some(d) = &entry.disabled {
            return Err(DescribeError::Withheld { code: d.code, why: d.why.clone() });
        }
        let p = &entry.policy;
        let mut resources = Vec::new();
        for (names, role) in [
            (&p.paths, Role::Path),
            (&p.recipients, Role::Recipient),
            (&p.accounts, Role::Account),
            (&p.urls, Role::Url),
        ] {
            for name in names {
                resources.extend(role_resources(intent, name, role, p.is_list(name))?);
            }
        }
        Ok(Described {
            effect: p.effect,
            resources,
            sink_level: p.sink_level(),
            reads: p.reads(),
            cost: p.cost(),
            requires_integrity: p.requires_integrity(),
            sensitive_args: p.sensitive_args().map(str::to_owned).collect(),
            provenance_deny: p.provenance_denies(),
        })
    }

    fn effect_class(&self, intent: &Intent) -> EffectClass {
        if server_op(&intent.action) {
            return EffectClass::Observe;
        }
        self.registry.get(&intent.action).map_or(EffectClass::Write, |e| e.policy.effect)
    }

    fn resource_keys(&self, intent: &Intent) -> Result<Vec<String>, EffectError> {
        Ok(vec![intent.action.clone()])
    }

    fn world_state(&self, _intent: &Intent) -> Result<[u8; 32], EffectError> {
        Ok([0; 32])
    }

    fn snapshot(&self, _intent: &Intent) -> Result<Snapshot, EffectError> {
        Ok(Snapshot { hold_ms: 0, compensable: Compensable::No, bytes: Vec::new() })
    }

    fn execute(&self, intent: &Intent, _key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError> {
        ctx.checkpoint()?;
        if let Some(prefix) = intent.action.strip_suffix(RESOURCE_LIST_OP) {
            let (body, _) = self.observe(prefix, ctx, |up| async move { up.list_resources().await })?;
            return Ok(self.listing(body, format!("{prefix}: resource listing")));
        }
        if let Some(prefix) = intent.action.strip_suffix(PROMPT_LIST_OP) {
            let (body, _) = self.observe(prefix, ctx, |up| async move { up.list_prompts().await })?;
            return Ok(self.listing(body, format!("{prefix}: prompt listing")));
        }
        let (body, untrusted, summary) = if let Some(prefix) = intent.action.strip_suffix(PROMPT_OP) {
            let name = intent.resources.first().map(|r| r.value.clone()).ok_or_else(|| err("no prompt name".into()))?;
            let arguments = match super::args::from_intent(&intent.args).map_err(err)?.remove("arguments") {
                Some(serde_json::Value::Object(map)) => Some(map),
                _ => None,
            };
            let summary = format!("prompt {name}");
            let (body, untrusted) =
                self.observe(prefix, ctx, |up| async move { up.get_prompt(&name, arguments).await })?;
            (body, untrusted, summary)
        } else if let Some(prefix) = intent.action.strip_suffix(RESOURCE_OP) {
            let uri = intent.resources.first().map(|r| r.value.clone()).ok_or_else(|| err("no resource uri".into()))?;
            let summary = format!("read resource {uri}");
            let (body, untrusted) = self.observe(prefix, ctx, |up| async move { up.read_resource(&uri).await })?;
            (body, untrusted, summary)
        } else {
            let entry = self
                .registry
                .get(&intent.action)
                .ok_or_else(|| err(format!("MCP-TOOL-UNKNOWN: no tool for `{}`", intent.action)))?;
            if let Some(d) = &entry.disabled {
                return Err(err(format!("{}: {}", d.code, d.why)));
            }
            let arguments = super::args::from_intent(&intent.args).map_err(err)?;
            let up = self.upstreams.get(&entry.server).map_err(|e| remote(&e))?;
            let admission = self.upstreams.admit(&entry.server).map_err(|e| remote(&e))?;
            let timeout = ctx.deadline().saturating_duration_since(Instant::now());
            let name = entry.tool.name.to_string();
            let result = self.runtime.block_on(up.call_tool(&name, arguments, timeout));
            self.upstreams.record(&entry.server, admission, result.as_ref().map(drop));
            let result = result.map_err(|e| self.upstream_failed(&up, &e))?;
            let is_error = result.is_error.unwrap_or(false);
            let body = serde_json::to_vec(&result).map_err(|e| err(e.to_string()))?;
            let summary = format!(
                "{}/{name}: {} content item(s){}",
                entry.server,
                result.content.len(),
                if is_error { ", tool error" } else { "" }
            );
            (body, entry.policy.output.untrusted, summary)
        };
        Ok(EffectOutput { body, label: if untrusted { OutputLabel::Untrusted } else { OutputLabel::Trusted }, summary })
    }

    fn probe(&self, intent: &Intent) -> Result<Probe, EffectError> {
        // Observations are safe to run again; a write's outcome upstream is unknowable.
        Ok(if self.effect_class(intent) == EffectClass::Observe { Probe::NotDone } else { Probe::Unknown })
    }

    fn compensate(&self, _intent: &Intent, _snapshot: &Snapshot) -> Result<(), EffectError> {
        Err(EffectError::Invalid("an MCP tool call cannot be taken back".into()))
    }
}
