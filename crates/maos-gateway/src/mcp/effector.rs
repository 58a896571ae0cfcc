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
use maos_commit::{Compensable, EffectError, EffectOutput, Effector, ExecContext, OutputLabel, Probe, Snapshot};
use maos_model::{EffectClass, Intent, IntentId};
use std::sync::Arc;
use std::time::Instant;

/// Action suffix of a resource read: `mcp.<server>.resources/read`, the MCP
/// method's name (`/` cannot occur in a tool action, so no tool is mistaken
/// for it; `mcp.<server>.*` covers it).
pub const RESOURCE_OP: &str = ".resources/read";
/// Action suffix of a prompt fetch: `mcp.<server>.prompts/get`.
pub const PROMPT_OP: &str = ".prompts/get";

/// The `mcp` effector.
#[derive(Debug, Clone)]
pub struct McpEffector {
    registry: Arc<ToolRegistry>,
    upstreams: Upstreams,
    runtime: tokio::runtime::Handle,
}

impl McpEffector {
    /// An effector calling `upstreams` for the tools in `registry`, with the
    /// async work done on `runtime`.
    #[must_use]
    pub const fn new(registry: Arc<ToolRegistry>, upstreams: Upstreams, runtime: tokio::runtime::Handle) -> Self {
        Self { registry, upstreams, runtime }
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
        let up = self.upstreams.get(server).map_err(|e| remote(&e))?;
        let timeout = ctx.deadline().saturating_duration_since(Instant::now());
        let result = self.runtime.block_on(tokio::time::timeout(timeout, request(up.clone())));
        let result = result.map_err(|_| EffectError::Cancelled)?.map_err(|e| self.upstream_failed(&up, &e))?;
        let body = serde_json::to_vec(&result).map_err(|e| err(e.to_string()))?;
        // Resources and prompts are text the server chose: untrusted unless configured otherwise.
        Ok((body, self.registry.server_output(server).untrusted))
    }
}

impl Effector for McpEffector {
    fn namespace(&self) -> &'static str {
        "mcp"
    }

    fn effect_class(&self, intent: &Intent) -> EffectClass {
        if intent.action.ends_with(RESOURCE_OP) || intent.action.ends_with(PROMPT_OP) {
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
            let timeout = ctx.deadline().saturating_duration_since(Instant::now());
            let name = entry.tool.name.to_string();
            let result = self
                .runtime
                .block_on(up.call_tool(&name, arguments, timeout))
                .map_err(|e| self.upstream_failed(&up, &e))?;
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
