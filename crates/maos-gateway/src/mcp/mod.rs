//! The MCP side of the Sentry (spec §9; issue #6): upstream tool servers as
//! Commit Layer effects, their tools pinned in the log, and the kernel-backed
//! mediator the agent-facing MCP server (`maos_mcp::server`) calls.

pub mod args;
pub mod effector;
pub mod mediator;
pub mod registry;
pub mod upstreams;

pub use effector::McpEffector;
pub use mediator::{APPROVAL_WAIT_DEFAULT, CONCURRENT_CALLS_MAX, KernelMediator, McpAgent, Refused};
pub use registry::{
    KIND_TOOL_APPROVED, KIND_TOOL_DISABLED, KIND_TOOL_PINNED, ToolEntry, ToolRecord, ToolRegistry, action_for,
    vouched_records,
};
pub use upstreams::{Pinning, Upstreams};
