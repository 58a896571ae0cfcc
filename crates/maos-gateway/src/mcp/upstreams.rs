//! Live connections to the configured upstream MCP servers.
//!
//! Guarantees: a call to an upstream that is down fails at once with a coded
//! error (never hangs, never succeeds elsewhere); a connection that fails is
//! dropped and re-established in the background with exponential backoff
//! ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]); calls in flight on a dead
//! connection fail cleanly with the transport error.

use maos_mcp::{McpError, Upstream, UpstreamConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First wait before reconnecting a failed upstream.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

struct Slot {
    config: UpstreamConfig,
    live: Option<Arc<Upstream>>,
    reconnecting: bool,
}

/// The upstreams, by name.
#[derive(Clone, Default)]
pub struct Upstreams {
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.slots.lock().map(|s| s.keys().cloned().collect()).unwrap_or_default();
        f.debug_struct("Upstreams").field("names", &names).finish()
    }
}

impl Upstreams {
    /// Adds a connected upstream.
    pub fn insert(&self, config: UpstreamConfig, live: Option<Arc<Upstream>>) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(config.name.clone(), Slot { config, live, reconnecting: false });
        }
    }

    /// The live connection to `name`.
    ///
    /// # Errors
    /// `MCP-UPSTREAM-TRANSPORT` when it is down (a reconnection is under way).
    pub fn get(&self, name: &str) -> Result<Arc<Upstream>, McpError> {
        let slots = self.slots.lock().map_err(|_| down(name, "upstream table poisoned"))?;
        slots
            .get(name)
            .and_then(|s| s.live.clone())
            .ok_or_else(|| down(name, "the upstream is down; MAOS is restarting it"))
    }

    /// Reports a failed call: a transport failure drops the connection and
    /// starts reconnecting in the background (on `runtime`).
    pub fn failed(&self, name: &str, error: &McpError, runtime: &tokio::runtime::Handle) {
        if !matches!(error.code(), "MCP-UPSTREAM-TRANSPORT") {
            return;
        }
        let config = {
            let Ok(mut slots) = self.slots.lock() else { return };
            let Some(slot) = slots.get_mut(name) else { return };
            slot.live = None;
            if slot.reconnecting {
                return;
            }
            slot.reconnecting = true;
            slot.config.clone()
        };
        tracing::warn!(upstream = name, error = %error, "upstream failed; reconnecting with backoff");
        let this = self.clone();
        runtime.spawn(async move { this.reconnect(config).await });
    }

    async fn reconnect(self, config: UpstreamConfig) {
        let mut wait = BACKOFF_MIN;
        loop {
            tokio::time::sleep(wait).await;
            match Upstream::connect(&config).await {
                Ok(up) => {
                    if let Ok(mut slots) = self.slots.lock()
                        && let Some(slot) = slots.get_mut(&config.name)
                    {
                        slot.live = Some(Arc::new(up));
                        slot.reconnecting = false;
                    }
                    tracing::info!(upstream = %config.name, "upstream reconnected");
                    return;
                }
                Err(e) => {
                    tracing::warn!(upstream = %config.name, error = %e, ?wait, "upstream reconnection failed");
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

fn down(name: &str, why: &str) -> McpError {
    McpError::Transport { upstream: name.to_owned(), operation: "call", why: why.to_owned() }
}
