//! The [`Effector`] trait: the only code that touches the outside world, and
//! the values it exchanges with the pipeline (spec §13, §26.1; design.md).

use crate::describe::{DescribeError, Described};
use crate::error::EffectError;
use maos_model::{EffectClass, Intent, IntentId, UnixMillis};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Largest effect output kept in memory and handed back to the kernel: a
/// hostile file or web page cannot make the kernel buffer more than this.
pub const OUTPUT_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Largest single snapshot: a write over a huge file cannot exhaust the
/// Rollback Zone in one intent (the zone has its own total bound).
pub const SNAPSHOT_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Resource lock keys one intent may take: bounds lock-table work per intent.
pub const RESOURCE_KEYS_MAX: usize = 16;
/// Effectors one layer may hold (bounds routing work).
pub const EFFECTORS_MAX: usize = 64;

/// Whether an output came from outside and must carry the `untrusted` taint
/// (design.md: web pages, inbound mail and untrusted tool outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputLabel {
    /// Produced inside the trust boundary (a workspace file, a local listing).
    Trusted,
    /// Came from outside (a fetched page): the session gets the taint.
    Untrusted,
    /// An upstream's catalogue (its resource or prompt listing) in which the
    /// pre-filter found nothing: no taint, and a trusted source for reading
    /// what it lists, but not for an effect's target (the kernel records it
    /// as catalogue text for provenance).
    Catalogue,
}

/// What an effect returned.
#[derive(Clone, PartialEq, Eq)]
pub struct EffectOutput {
    /// The bytes returned to the agent (at most [`OUTPUT_BYTES_MAX`]).
    pub body: Vec<u8>,
    /// The integrity label of `body`.
    pub label: OutputLabel,
    /// One line for the log and the operator (no raw content).
    pub summary: String,
}

impl EffectOutput {
    /// An output with no body.
    #[must_use]
    pub fn empty(label: OutputLabel, summary: impl Into<String>) -> Self {
        Self { body: Vec::new(), label, summary: summary.into() }
    }
}

impl fmt::Debug for EffectOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Outputs may hold file or page content: never print them (style rule 13).
        f.debug_struct("EffectOutput")
            .field("body_len", &self.body.len())
            .field("label", &self.label)
            .field("summary", &self.summary)
            .finish()
    }
}

/// What a crash-recovery probe found (spec §14.2: `executing` entries are
/// probed for partial completion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The effect is in place; the output is what the agent would have seen.
    Done(EffectOutput),
    /// The effect did not happen; executing it is safe.
    NotDone,
    /// The effector cannot tell (e.g. an HTTP POST): recovery must not repeat it.
    Unknown,
}

/// The Rollback Zone's copy of what an effect will change (Rule 5). The
/// bytes are the effector's own encoding; only the effector reads them.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// How long undo stays possible, in milliseconds (spec §35).
    pub hold_ms: u64,
    /// Whether `compensate` can restore this state at all.
    pub compensable: Compensable,
    /// The effector-specific encoding of the previous state.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("hold_ms", &self.hold_ms)
            .field("compensable", &self.compensable)
            .field("bytes_len", &self.bytes.len())
            .finish()
    }
}

/// Whether a snapshot can be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compensable {
    /// `compensate` restores it within the hold period.
    Yes,
    /// Nothing can recall the effect (an HTTP POST): undo is refused.
    No,
}

/// Cancellation and deadline for one execution. Effectors call
/// [`ExecContext::checkpoint`] before each step that cannot be taken back, so
/// an execution past its lock timeout stops before it lands (CT-CL-05).
#[derive(Debug, Clone)]
pub struct ExecContext {
    now: UnixMillis,
    deadline: Instant,
    cancelled: Arc<AtomicBool>,
}

impl ExecContext {
    /// A context with wall time `now` (for headers and hold periods) and a
    /// monotonic `deadline`.
    #[must_use]
    pub fn new(now: UnixMillis, deadline: Instant) -> Self {
        Self { now, deadline, cancelled: Arc::new(AtomicBool::new(false)) }
    }

    /// Injected wall time of this execution.
    #[must_use]
    pub const fn now(&self) -> UnixMillis {
        self.now
    }

    /// The monotonic deadline.
    #[must_use]
    pub const fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Asks the execution to stop at its next checkpoint.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether the execution may go on.
    ///
    /// # Errors
    /// [`EffectError::Cancelled`] after [`ExecContext::cancel`] or past the deadline.
    pub fn checkpoint(&self) -> Result<(), EffectError> {
        if self.cancelled.load(Ordering::SeqCst) || Instant::now() >= self.deadline {
            return Err(EffectError::Cancelled);
        }
        Ok(())
    }
}

/// One kind of external effect (a namespace of actions such as `fs.*`).
///
/// Synchronous on purpose: the kernel runs effectors on blocking threads, and
/// the built-in ones do blocking file and socket I/O. Every method must be
/// safe to call again after a crash: `execute` is idempotent by `key`.
pub trait Effector: Send + Sync + fmt::Debug {
    /// The namespace this effector serves: actions `NAME.*` route here.
    fn namespace(&self) -> &'static str;

    /// The operator-side descriptor's facts for this intent's action and
    /// arguments: effect class, resources, sink level, labels read, cost and
    /// integrity (design.md "Facts from descriptors"). The kernel overwrites the
    /// intent's own values with these before the DSC decides, so nothing an
    /// agent declares in those fields counts. Only `action` and `args` may be read.
    ///
    /// # Errors
    /// A [`DescribeError`] naming the argument that does not fit.
    fn describe(&self, intent: &Intent) -> Result<Described, DescribeError>;

    /// The side-effect class of the intent's action. An unknown or ambiguous
    /// action must be [`EffectClass::Write`] or stronger, never Observe (CT-CL-10).
    fn effect_class(&self, intent: &Intent) -> EffectClass;

    /// The lock keys this intent needs (at most [`RESOURCE_KEYS_MAX`]).
    ///
    /// # Errors
    /// [`EffectError`] if the intent does not name a valid target.
    fn resource_keys(&self, intent: &Intent) -> Result<Vec<String>, EffectError>;

    /// SHA3-256 of the target's current state, compared with
    /// `intent.world_state_hash` at stage 2 (OCC).
    ///
    /// # Errors
    /// [`EffectError`] if the state cannot be read.
    fn world_state(&self, intent: &Intent) -> Result<[u8; 32], EffectError>;

    /// The Rollback Zone snapshot taken at stage 3 (Rule 5).
    ///
    /// # Errors
    /// [`EffectError`] if the previous state cannot be captured.
    fn snapshot(&self, intent: &Intent) -> Result<Snapshot, EffectError>;

    /// Performs the effect. `key` (the intent id) is the idempotency key: a
    /// second call with the same key must not repeat the effect.
    ///
    /// # Errors
    /// [`EffectError`] naming why; the pipeline then compensates.
    fn execute(&self, intent: &Intent, key: IntentId, ctx: &ExecContext) -> Result<EffectOutput, EffectError>;

    /// Whether the effect of `intent` is in place (crash recovery).
    ///
    /// # Errors
    /// [`EffectError`] if the effector cannot look.
    fn probe(&self, intent: &Intent) -> Result<Probe, EffectError>;

    /// Restores the state in `snapshot` (rollback and undo). Must be idempotent.
    ///
    /// # Errors
    /// [`EffectError`] if the state cannot be restored (e.g. already released).
    fn compensate(&self, intent: &Intent, snapshot: &Snapshot) -> Result<(), EffectError>;

    /// The remote this intent's execution reaches, for its circuit breaker
    /// (spec §38.4): e.g. `http:<host>`. `None` (the default): nothing
    /// remote, or the effector keeps its own breaker (MCP upstreams).
    fn remote(&self, intent: &Intent) -> Option<String> {
        let _ = intent;
        None
    }

    /// Forensic cleanup of an eliminated agent's outputs (spec §33.8.5): what
    /// `resources` name in this effector's keeping is untrusted from now on,
    /// so a later read hands it out as untrusted output (the reader's session
    /// is tainted; provenance applies). Answers what it marked and what it
    /// could not. An effector that keeps no data marks nothing.
    fn quarantine(&self, resources: &[maos_model::Resource]) -> Quarantined {
        let _ = resources;
        Quarantined::default()
    }
}

/// What one effector's [`Effector::quarantine`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quarantined {
    /// Resources marked untrusted.
    pub marked: usize,
    /// Resources that could not be marked, and why (at most
    /// [`QUARANTINE_FAILURES_LISTED_MAX`] listed; `failed` counts all).
    pub failures: Vec<String>,
    /// How many could not be marked.
    pub failed: usize,
}

/// Failures one [`Quarantined`] lists.
pub const QUARANTINE_FAILURES_LISTED_MAX: usize = 8;

impl Quarantined {
    /// Counts a failure, listing it while there is room.
    pub fn fail(&mut self, why: String) {
        self.failed = self.failed.saturating_add(1);
        if self.failures.len() < QUARANTINE_FAILURES_LISTED_MAX {
            self.failures.push(why);
        }
    }
}

/// The namespace of an action: the text before the first `.` (`fs.write` → `fs`).
#[must_use]
pub fn namespace_of(action: &str) -> &str {
    action.split_once('.').map_or(action, |(ns, _)| ns)
}

/// The effectors a Commit Layer routes to, by namespace.
#[derive(Debug, Clone, Default)]
pub struct Effectors {
    by_namespace: BTreeMap<&'static str, Arc<dyn Effector>>,
}

impl Effectors {
    /// No effectors.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an effector; a later one for the same namespace replaces the earlier.
    ///
    /// # Errors
    /// [`EffectError::Invalid`] past [`EFFECTORS_MAX`].
    pub fn insert(&mut self, effector: Arc<dyn Effector>) -> Result<(), EffectError> {
        let ns = effector.namespace();
        if !self.by_namespace.contains_key(ns) && self.by_namespace.len() >= EFFECTORS_MAX {
            return Err(EffectError::Invalid("too many effectors".into()));
        }
        self.by_namespace.insert(ns, effector);
        Ok(())
    }

    /// Builder form of [`Effectors::insert`].
    ///
    /// # Errors
    /// As [`Effectors::insert`].
    pub fn with(mut self, effector: Arc<dyn Effector>) -> Result<Self, EffectError> {
        self.insert(effector)?;
        Ok(self)
    }

    /// Every effector's [`Effector::quarantine`] of `resources`: how many
    /// each marked, or why it could not.
    #[must_use]
    pub fn quarantine(&self, resources: &[maos_model::Resource]) -> Vec<(&'static str, Quarantined)> {
        self.by_namespace.iter().map(|(ns, e)| (*ns, e.quarantine(resources))).collect()
    }

    /// The effector for an action, if any.
    #[must_use]
    pub fn route(&self, action: &str) -> Option<&Arc<dyn Effector>> {
        self.by_namespace.get(namespace_of(action))
    }

    /// The descriptor's facts for an intent ([`Effector::describe`]).
    ///
    /// # Errors
    /// [`DescribeError::UnknownAction`] when no effector serves the action.
    pub fn describe(&self, intent: &Intent) -> Result<Described, DescribeError> {
        self.route(&intent.action).ok_or_else(|| DescribeError::UnknownAction(intent.action.clone()))?.describe(intent)
    }

    /// The side-effect class of an intent: the effector's classification, or
    /// [`EffectClass::Write`] when no effector knows the action (CT-CL-10: an
    /// unknown side effect is a write, never an observation).
    #[must_use]
    pub fn classify(&self, intent: &Intent) -> EffectClass {
        self.route(&intent.action).map_or(EffectClass::Write, |e| e.effect_class(intent))
    }
}
