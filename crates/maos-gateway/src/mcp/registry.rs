//! The tools MAOS offers agents: every upstream's tools, each pinned by a hash
//! of its name, description and schema (`maos_mcp::tool_pin`), with its policy.
//!
//! Guarantees:
//! - **Pinned on first sight, in the log.** A tool seen for the first time is
//!   recorded (`tool.pinned`, kind `0x0400`) before any agent can list it.
//! - **A changed tool is disabled** (a "rug pull"): if its pin differs from the
//!   last pinned or approved one it is withheld from every `tools/list` and
//!   every call is refused (`MCP-TOOL-CHANGED`) until the operator approves the
//!   new definition (`maos tools approve`, logged as `tool.approved`, `0x0401`).
//! - **Tool poisoning**: a description that trips the DSC pre-filter is
//!   disabled (`MCP-TOOL-POISONED`), logged as `tool.disabled` (`0x0402`).
//! - Actions are `mcp.<server>.<tool>` (lowercase); two tools that map to the
//!   same action are both disabled rather than confused.
//! - Bounded: [`TOOLS_MAX`] tools in all.

use maos_mcp::{ToolPolicy, UpstreamConfig};
use maos_wal::{LogReader, RecordKind, Wal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// `tool.pinned`: a tool's definition seen for the first time.
pub const KIND_TOOL_PINNED: RecordKind = RecordKind(0x0400);
/// `tool.approved`: the operator approved a (changed) definition.
pub const KIND_TOOL_APPROVED: RecordKind = RecordKind(0x0401);
/// `tool.disabled`: a tool withheld (changed definition or poisoned description).
pub const KIND_TOOL_DISABLED: RecordKind = RecordKind(0x0402);
/// Tools across all upstreams at most.
pub const TOOLS_MAX: usize = 4096;

/// The payload of the three tool records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRecord {
    /// Upstream name.
    pub server: String,
    /// Tool name as the upstream gives it.
    pub tool: String,
    /// SHA3-256 pin (hex).
    pub pin: String,
    /// Why (for `tool.disabled`), or who (for `tool.approved`).
    #[serde(default)]
    pub note: String,
}

/// Why a tool is withheld.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disabled {
    /// Stable code.
    pub code: &'static str,
    /// Why, for the operator and the agent.
    pub why: String,
}

/// One tool as MAOS offers it.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    /// Upstream name.
    pub server: String,
    /// The upstream's definition, offered to agents unchanged.
    pub tool: maos_mcp::Tool,
    /// The kernel action (`mcp.<server>.<tool>`).
    pub action: String,
    /// Its pin.
    pub pin: [u8; 32],
    /// Effect class, output label and argument roles.
    pub policy: ToolPolicy,
    /// `Some` when withheld.
    pub disabled: Option<Disabled>,
}

/// The action for a tool: `mcp.<server>.<tool>`, lowercase; `None` if a name
/// has characters actions cannot carry.
#[must_use]
pub fn action_for(server: &str, tool: &str) -> Option<String> {
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
    (ok(server) && ok(tool)).then(|| format!("mcp.{}.{}", server.to_ascii_lowercase(), tool.to_ascii_lowercase()))
}

/// Every tool, by action.
#[derive(Debug, Default)]
pub struct ToolRegistry {
    tools: RwLock<BTreeMap<String, ToolEntry>>,
    configs: RwLock<BTreeMap<String, UpstreamConfig>>,
}

/// The last pin the log vouches for, per (server, tool).
fn pinned_in_log(reader: &LogReader) -> Result<BTreeMap<(String, String), String>, String> {
    let mut pins = BTreeMap::new();
    for record in reader.records().map_err(|e| e.to_string())? {
        let record = record.map_err(|e| e.to_string())?;
        if record.kind == KIND_TOOL_PINNED || record.kind == KIND_TOOL_APPROVED {
            let r: ToolRecord = serde_json::from_slice(&record.payload)
                .map_err(|e| format!("lsn {}: tool record does not decode: {e}", record.lsn))?;
            pins.insert((r.server, r.tool), r.pin);
        }
    }
    Ok(pins)
}

fn append(wal: &Wal, kind: RecordKind, record: &ToolRecord) -> Result<(), String> {
    let payload = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    wal.append(kind, &payload).map(drop).map_err(|e| format!("{e} ({})", e.code()))
}

impl ToolRegistry {
    /// Installs the tools `server` offers now: pins new ones, disables changed
    /// or poisoned ones, logging each. Replaces that server's previous entries.
    ///
    /// # Errors
    /// A message if the log cannot be read or written (the server's tools are
    /// then not offered at all).
    pub fn install(
        &self,
        config: &UpstreamConfig,
        tools: Vec<maos_mcp::Tool>,
        wal: &Wal,
        prefilter: Option<&maos_dsc::prefilter::Prefilter>,
    ) -> Result<Vec<ToolEntry>, String> {
        let pins = pinned_in_log(&wal.reader())?;
        let mut installed = Vec::new();
        for tool in tools {
            let name = tool.name.to_string();
            let pin = maos_mcp::tool_pin(&tool);
            let pin_hex = maos_mcp::pin_hex(&pin);
            let Some(action) = action_for(&config.name, &name) else {
                tracing::warn!(server = %config.name, tool = %name, "tool name unusable as an action; not offered");
                continue;
            };
            let record = ToolRecord {
                server: config.name.clone(),
                tool: name.clone(),
                pin: pin_hex.clone(),
                note: String::new(),
            };
            let mut disabled = None;
            match pins.get(&(config.name.clone(), name.clone())) {
                None => append(wal, KIND_TOOL_PINNED, &record)?,
                Some(p) if *p == pin_hex => {}
                Some(p) => {
                    disabled = Some(Disabled {
                        code: "MCP-TOOL-CHANGED",
                        why: format!(
                            "tool `{}/{name}` changed since it was pinned ({}… now {}…); the operator must run `maos tools approve {}/{name}`",
                            config.name,
                            p.get(..12).unwrap_or(p),
                            pin_hex.get(..12).unwrap_or(&pin_hex),
                            config.name
                        ),
                    });
                }
            }
            let description = tool.description.as_deref().unwrap_or_default();
            if disabled.is_none()
                && let Some(hit) = prefilter.and_then(|p| p.scan_text(description))
            {
                disabled = Some(Disabled {
                    code: "MCP-TOOL-POISONED",
                    why: format!("the description of `{}/{name}` trips the pre-filter ({})", config.name, hit.id),
                });
            }
            if let Some(d) = &disabled {
                tracing::warn!(server = %config.name, tool = %name, code = d.code, "tool withheld: {}", d.why);
                append(wal, KIND_TOOL_DISABLED, &ToolRecord { note: format!("{}: {}", d.code, d.why), ..record })?;
            }
            installed.push(ToolEntry {
                server: config.name.clone(),
                policy: config.tool_policy(&name),
                tool,
                action,
                pin,
                disabled,
            });
        }
        let mut map = self.tools.write().map_err(|_| "tool registry poisoned".to_owned())?;
        map.retain(|_, e| e.server != config.name);
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for e in &installed {
            *seen.entry(e.action.clone()).or_default() += 1;
        }
        for mut entry in installed.clone() {
            if seen.get(&entry.action).copied().unwrap_or(0) > 1 {
                entry.disabled = Some(Disabled {
                    code: "MCP-TOOL-AMBIGUOUS",
                    why: format!("two tools of `{}` map to `{}`", entry.server, entry.action),
                });
            }
            if map.len() >= TOOLS_MAX {
                return Err(format!("more than {TOOLS_MAX} tools"));
            }
            map.insert(entry.action.clone(), entry);
        }
        if let Ok(mut configs) = self.configs.write() {
            configs.insert(config.name.clone(), config.clone());
        }
        Ok(installed)
    }

    /// The operator approves the current definition of `server/tool`: logged,
    /// then enabled.
    ///
    /// # Errors
    /// No such tool, or the log refused the record.
    pub fn approve(&self, server: &str, tool: &str, wal: &Wal) -> Result<ToolEntry, String> {
        let action = action_for(server, tool).ok_or_else(|| format!("`{server}/{tool}` is not a tool name"))?;
        let mut map = self.tools.write().map_err(|_| "tool registry poisoned".to_owned())?;
        let entry = map
            .get_mut(&action)
            .ok_or_else(|| format!("no tool `{server}/{tool}` is offered by a configured upstream"))?;
        let record = ToolRecord {
            server: entry.server.clone(),
            tool: entry.tool.name.to_string(),
            pin: maos_mcp::pin_hex(&entry.pin),
            note: "approved by the operator".into(),
        };
        append(wal, KIND_TOOL_APPROVED, &record)?;
        entry.disabled = None;
        Ok(entry.clone())
    }

    /// The entry for an action.
    #[must_use]
    pub fn get(&self, action: &str) -> Option<ToolEntry> {
        self.tools.read().ok().and_then(|m| m.get(action).cloned())
    }

    /// Every entry, in action order.
    #[must_use]
    pub fn all(&self) -> Vec<ToolEntry> {
        self.tools.read().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// The upstream configuration of `server`.
    #[must_use]
    pub fn config(&self, server: &str) -> Option<UpstreamConfig> {
        self.configs.read().ok().and_then(|c| c.get(server).cloned())
    }
}
