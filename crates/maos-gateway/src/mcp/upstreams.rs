//! Live connections to the configured upstream MCP servers.
//!
//! Guarantees:
//! - **Pinned before live, on every connection.** Every connection, the first
//!   at `maos up` and every reconnection after, goes through one path
//!   ([`Upstreams::start`] and the reconnect loop share `connect_and_pin`): the
//!   upstream's tools are listed and installed in the [`ToolRegistry`] (pinned
//!   in the log on first sight, a changed definition withheld as
//!   `MCP-TOOL-CHANGED`, a poisoned description as `MCP-TOOL-POISONED`) before
//!   the connection can carry a call. A restarted upstream that changed a tool
//!   (a rug pull through a crash) cannot be reached with the old definition. If
//!   listing or installing fails, the attempt counts as failed.
//! - **A live tool list change is pinned too**: when an upstream sends
//!   `notifications/tools/list_changed`, its tools are listed and installed
//!   again within [`WATCH_INTERVAL`] (a changed definition withheld as on a
//!   reconnection); if that fails the connection is dropped and reconnected.
//!   Until then agents see the definitions pinned before.
//! - A call to an upstream that is down fails at once with a coded error
//!   (`MCP-UPSTREAM-TRANSPORT`; never hangs, never succeeds elsewhere); calls in
//!   flight on a dead connection fail cleanly with the transport error.
//! - **Restarted with backoff**: a connection that fails (a call's transport
//!   error, or the upstream exiting on its own, noticed within
//!   [`WATCH_INTERVAL`]) is dropped and re-established in the background, and
//!   so is an upstream that could not be reached at `maos up` (its tools appear
//!   once it is up). Waits start at [`BACKOFF_MIN`] and double to
//!   [`BACKOFF_MAX`]; a connection that drops within [`BACKOFF_MAX`] of coming
//!   up does not reset the wait, so a crash-looping upstream is restarted at
//!   most once per [`BACKOFF_MAX`].
//! - **A circuit breaker per upstream** (spec §38.4, [`maos_commit::breaker`]):
//!   five calls in a row that time out or lose their transport (or more than
//!   half of the last 30 s, at least ten calls) open it; an open breaker
//!   answers at once with `CIRCUIT-OPEN` and the retry time, instead of making
//!   agents wait on a failing upstream; after the cooldown (10 s, doubling to
//!   5 min) one probe goes through. Every transition is logged
//!   (`circuit.breaker`, [`KIND_BREAKER`]). A call to an upstream that is down
//!   fails at once already and is not counted.
//! - **One supervisor, watched**: a single task looks at every live
//!   connection each [`WATCH_INTERVAL`]; under `maos up` it pets the kernel's
//!   watchdog, and if it stops, the TSCA restarts it ([`Upstreams::supervise`]).
//! - Bounded: one slot per configured upstream, at most one reconnect task per
//!   slot, one supervisor running (a replaced one ends at its next turn).

use super::registry::{ToolEntry, ToolRegistry};
use maos_commit::breaker::{Admission, Breaker, CODE_CIRCUIT_OPEN, Transition};
use maos_mcp::{McpError, Upstream, UpstreamConfig};
use maos_wal::Wal;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// First wait before reconnecting a failed upstream.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest wait between reconnection attempts; also how long a connection must
/// have lived for its failure to reset the wait to [`BACKOFF_MIN`].
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often a live connection is checked for having closed on its own.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
pub use maos_commit::breaker::{BreakerRecord, KIND_BREAKER};

/// What a connection needs before it goes live: the registry its tools are
/// installed in, the log that pins them, and the DSC whose pre-filter checks
/// their descriptions.
#[derive(Clone)]
pub struct Pinning {
    /// The tools offered to agents.
    pub registry: Arc<ToolRegistry>,
    /// The log (`tool.pinned`, `tool.disabled`).
    pub wal: Arc<Wal>,
    /// The DSC configuration (its pre-filter).
    pub dsc: Arc<maos_dsc::DscConfig>,
}

struct Slot {
    config: UpstreamConfig,
    live: Option<Arc<Upstream>>,
    /// When `live` came up.
    live_since: Option<Instant>,
    /// The first wait if `live` drops before [`BACKOFF_MAX`].
    next_wait: Duration,
    reconnecting: bool,
    /// A repin of its tools is under way: the next waits for it (in order,
    /// one at a time, however often the upstream says its tools changed).
    repinning: bool,
    breaker: Breaker,
}

struct Inner {
    /// Monotonic time for the breakers.
    epoch: Instant,
    /// The running supervisor's generation: an older one ends at its next turn.
    supervisor: AtomicU64,
    slots: Mutex<BTreeMap<String, Slot>>,
    pinning: Pinning,
    runtime: tokio::runtime::Handle,
}

/// The upstreams, by name.
#[derive(Clone)]
pub struct Upstreams {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.inner.slots.lock().map(|s| s.keys().cloned().collect()).unwrap_or_default();
        f.debug_struct("Upstreams").field("names", &names).finish()
    }
}

impl Upstreams {
    /// No upstreams yet; connections pin their tools with `pinning`, and
    /// background reconnections run on `runtime`.
    #[must_use]
    pub fn new(pinning: Pinning, runtime: tokio::runtime::Handle) -> Self {
        let inner = Inner {
            epoch: Instant::now(),
            supervisor: AtomicU64::new(0),
            slots: Mutex::new(BTreeMap::new()),
            pinning,
            runtime,
        };
        let upstreams = Self { inner: Arc::new(inner) };
        upstreams.spawn_supervisor(None);
        upstreams
    }

    /// Puts the supervisor under the kernel's watchdog (spec §16.3, a ring-1
    /// component): it pets every [`WATCH_INTERVAL`], and when it stops, the
    /// TSCA restarts it (a new supervisor task replaces the old one).
    ///
    /// # Errors
    /// The kernel's refusal (`KERNEL-SUPERVISE`).
    pub fn supervise(&self, kernel: &maos_kernel::KernelHandle) -> Result<(), maos_kernel::KernelError> {
        let me = self.clone();
        let restart = Arc::new(move |pet: maos_kernel::ComponentPet| {
            tracing::warn!("the MCP upstream supervisor is restarted");
            me.spawn_supervisor(Some(pet));
        });
        let pet = kernel.supervise(maos_kernel::posture::Component::McpUpstreams, WATCH_INTERVAL, restart)?;
        self.spawn_supervisor(Some(pet));
        Ok(())
    }

    /// Starts a supervisor; the one running ends at its next turn.
    fn spawn_supervisor(&self, pet: Option<maos_kernel::ComponentPet>) {
        let mine = self.inner.supervisor.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        self.inner.runtime.spawn(self.clone().supervise_loop(mine, pet));
    }

    /// Adds an upstream and connects it: lists its tools, installs them in the
    /// registry, then makes the connection live. If that fails the upstream is
    /// still added, and reconnected in the background with backoff. Called once
    /// per configured upstream (at `maos up`).
    ///
    /// # Errors
    /// Why the first connection failed (`CODE: reason` for an MCP error); a
    /// reconnection is then under way.
    pub async fn start(&self, config: UpstreamConfig) -> Result<Vec<ToolEntry>, String> {
        let name = config.name.clone();
        if let Ok(mut slots) = self.inner.slots.lock() {
            slots.insert(
                name.clone(),
                Slot {
                    config: config.clone(),
                    live: None,
                    live_since: None,
                    next_wait: BACKOFF_MIN,
                    reconnecting: false,
                    repinning: false,
                    breaker: Breaker::default(),
                },
            );
        }
        match self.connect_and_pin(&config).await {
            Ok((up, entries)) => {
                self.go_live(up, BACKOFF_MIN);
                Ok(entries)
            }
            Err(e) => {
                self.spawn_reconnect(&name, BACKOFF_MIN);
                Err(e)
            }
        }
    }

    /// Every configured upstream's name, up or down, in order.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.inner.slots.lock().map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    /// The live connection to `name`.
    ///
    /// # Errors
    /// `MCP-UPSTREAM-TRANSPORT` when it is down (a reconnection is under way).
    pub fn get(&self, name: &str) -> Result<Arc<Upstream>, McpError> {
        self.slot(name, |s| s.live.clone())
            .flatten()
            .ok_or_else(|| down(name, "the upstream is down; MAOS is restarting it"))
    }

    /// Asks `name`'s breaker for a call.
    ///
    /// # Errors
    /// `CIRCUIT-OPEN` (as an MCP transport error whose reason starts with the
    /// code) while the breaker is open or its probe is out.
    pub fn admit(&self, name: &str) -> Result<Admission, McpError> {
        let now = self.now_ms();
        let (admitted, transition) = {
            let Ok(mut slots) = self.inner.slots.lock() else {
                return Err(down(name, &format!("{CODE_CIRCUIT_OPEN}: the upstream table is poisoned")));
            };
            let Some(slot) = slots.get_mut(name) else { return Err(down(name, "no such upstream")) };
            slot.breaker.admit(now)
        };
        if let Some(t) = transition {
            self.log_transition(name, &t);
        }
        admitted.map_err(|r| {
            let when = if r.retry_in_ms == 0 {
                "a probe is in flight".to_owned()
            } else {
                format!("retry in {} s", r.retry_in_ms.div_ceil(1000))
            };
            down(
                name,
                &format!("{CODE_CIRCUIT_OPEN}: the upstream failed repeatedly; its circuit breaker is open ({when})"),
            )
        })
    }

    /// Records the outcome of an admitted call: only a timeout or a lost
    /// transport counts as a failure (an error answer is still an answer).
    pub fn record(&self, name: &str, admission: Admission, outcome: Result<(), &McpError>) {
        let ok = !matches!(outcome, Err(e) if matches!(e.code(), "MCP-UPSTREAM-TIMEOUT" | "MCP-UPSTREAM-TRANSPORT"));
        self.record_ok(name, admission, ok);
    }

    /// Records whether an admitted call succeeded.
    pub fn record_ok(&self, name: &str, admission: Admission, ok: bool) {
        let now = self.now_ms();
        let transition = self
            .inner
            .slots
            .lock()
            .ok()
            .and_then(|mut slots| slots.get_mut(name).and_then(|slot| slot.breaker.record(now, admission, ok)));
        if let Some(t) = transition {
            self.log_transition(name, &t);
        }
    }

    /// Conservative mode (spec §38.6, the safe restart after an emergency
    /// shutdown): every upstream's breaker starts its cooldowns doubled.
    pub fn set_conservative(&self, on: bool) {
        if let Ok(mut slots) = self.inner.slots.lock() {
            slots.values_mut().for_each(|s| s.breaker.set_conservative(on));
        }
    }

    /// Each upstream's breaker with how long it has been open.
    pub fn breaker_views(&self) -> Vec<maos_commit::breaker::BreakerView> {
        let now = self.now_ms();
        self.inner
            .slots
            .lock()
            .map(|s| s.iter().map(|(n, slot)| slot.breaker.view(n, now)).collect())
            .unwrap_or_default()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn log_transition(&self, name: &str, t: &Transition) {
        maos_commit::breaker::log_transition(&self.inner.pinning.wal, name, t);
    }

    /// Reports a failed call on `up`: a transport failure drops that connection
    /// (if it is still the live one) and starts reconnecting in the background.
    pub fn failed(&self, up: &Arc<Upstream>, error: &McpError) {
        if matches!(error.code(), "MCP-UPSTREAM-TRANSPORT") {
            self.drop_connection(up, &error.to_string());
        }
    }

    /// Drops `up` if it is still the live connection of its upstream, and starts
    /// the reconnect loop unless one runs.
    fn drop_connection(&self, up: &Arc<Upstream>, why: &str) {
        let wait = {
            let Ok(mut slots) = self.inner.slots.lock() else { return };
            let Some(slot) = slots.get_mut(up.name()) else { return };
            if !slot.live.as_ref().is_some_and(|live| Arc::ptr_eq(live, up)) {
                return;
            }
            slot.live = None;
            let stable = slot.live_since.take().is_some_and(|t| t.elapsed() >= BACKOFF_MAX);
            if stable { BACKOFF_MIN } else { slot.next_wait }
        };
        tracing::warn!(upstream = %up.name(), why, ?wait, "upstream connection lost; reconnecting with backoff");
        self.spawn_reconnect(up.name(), wait);
    }

    /// Starts the reconnect loop of `name` with a first wait of `wait`, unless one runs.
    fn spawn_reconnect(&self, name: &str, wait: Duration) {
        let config = {
            let Ok(mut slots) = self.inner.slots.lock() else { return };
            let Some(slot) = slots.get_mut(name) else { return };
            if slot.reconnecting {
                return;
            }
            slot.reconnecting = true;
            slot.config.clone()
        };
        self.inner.runtime.spawn(self.clone().reconnect(config, wait));
    }

    /// `f` of the slot of `name`; `None` when there is none (or the table is poisoned).
    fn slot<T>(&self, name: &str, f: impl FnOnce(&Slot) -> T) -> Option<T> {
        self.inner.slots.lock().ok().and_then(|s| s.get(name).map(f))
    }

    /// Connects, lists the tools and installs them (pins, withholds changed or
    /// poisoned ones). The connection is not live yet.
    async fn connect_and_pin(&self, config: &UpstreamConfig) -> Result<(Arc<Upstream>, Vec<ToolEntry>), String> {
        let up = Upstream::connect(config).await.map_err(|e| format!("{}: {e}", e.code()))?;
        let entries = self.pin(config, &up).await?;
        Ok((Arc::new(up), entries))
    }

    /// Lists `up`'s tools and installs them: pinned on first sight, a changed or
    /// poisoned definition withheld.
    async fn pin(&self, config: &UpstreamConfig, up: &Upstream) -> Result<Vec<ToolEntry>, String> {
        let tools = up.list_tools().await.map_err(|e| format!("{}: {e}", e.code()))?;
        let Pinning { registry, wal, dsc } = self.inner.pinning.clone();
        let cfg = config.clone();
        let entries = tokio::task::spawn_blocking(move || registry.install(&cfg, tools, &wal, Some(dsc.prefilter())))
            .await
            .map_err(|e| format!("the tools could not be pinned: {e}"))?
            .map_err(|e| format!("the tools could not be pinned: {e}"))?;
        let withheld = entries.iter().filter(|e| e.disabled.is_some()).count();
        tracing::info!(upstream = %config.name, tools = entries.len(), withheld, "tools pinned");
        Ok(entries)
    }

    /// The live upstream said its tool list changed: pin the tools again, as on a
    /// reconnection (a changed definition is withheld until approved).
    async fn repin(&self, up: &Upstream) -> Result<(), String> {
        let config = self.slot(up.name(), |s| s.config.clone()).ok_or_else(|| "no such upstream".to_owned())?;
        self.pin(&config, up).await.map(drop)
    }

    /// Makes `up` the live connection of its upstream and watches it.
    fn go_live(&self, up: Arc<Upstream>, next_wait: Duration) {
        if let Ok(mut slots) = self.inner.slots.lock()
            && let Some(slot) = slots.get_mut(up.name())
        {
            slot.live = Some(up.clone());
            slot.live_since = Some(Instant::now());
            slot.next_wait = next_wait;
            slot.reconnecting = false;
        }
    }

    /// The supervisor: every [`WATCH_INTERVAL`] it pets the watchdog and looks
    /// at every live connection; one that closed on its own (the upstream
    /// exited) is dropped and reconnected, one whose tools changed is pinned
    /// again (on a task of its own, so a slow upstream does not stall the
    /// others). Ends when a newer supervisor starts.
    async fn supervise_loop(self, mine: u64, pet: Option<maos_kernel::ComponentPet>) {
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            if self.inner.supervisor.load(Ordering::SeqCst) != mine || pet.as_ref().is_some_and(|p| !p.current()) {
                return;
            }
            if pet.as_ref().is_some_and(maos_kernel::ComponentPet::hang_drill) {
                tracing::warn!("fault drill: the MCP upstream supervisor hangs");
                std::future::pending::<()>().await;
            }
            if let Some(p) = &pet {
                p.pet();
            }
            let live: Vec<(Arc<Upstream>, bool)> = self
                .inner
                .slots
                .lock()
                .map(|slots| slots.values().filter_map(|s| s.live.clone().map(|up| (up, s.repinning))).collect())
                .unwrap_or_default();
            for (up, repinning) in live {
                if up.is_closed() {
                    self.drop_connection(&up, "the connection closed (the upstream exited)");
                } else if !repinning && up.take_tools_changed() {
                    self.set_repinning(up.name(), true);
                    let me = self.clone();
                    self.inner.runtime.spawn(async move {
                        if let Err(why) = me.repin(&up).await {
                            // Unpinned definitions are not offered: drop it, the reconnection pins them.
                            let why = format!("its tool list changed and could not be pinned again: {why}");
                            me.drop_connection(&up, &why);
                        }
                        me.set_repinning(up.name(), false);
                    });
                }
            }
        }
    }

    fn set_repinning(&self, name: &str, on: bool) {
        if let Ok(mut slots) = self.inner.slots.lock()
            && let Some(slot) = slots.get_mut(name)
        {
            slot.repinning = on;
        }
    }

    async fn reconnect(self, config: UpstreamConfig, first_wait: Duration) {
        let mut wait = first_wait;
        loop {
            tokio::time::sleep(wait).await;
            match self.connect_and_pin(&config).await {
                Ok((up, _)) => {
                    tracing::info!(upstream = %config.name, "upstream reconnected");
                    self.go_live(up, (wait * 2).min(BACKOFF_MAX));
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
