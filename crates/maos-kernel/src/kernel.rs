//! The sequencer (design.md "Parallel thinking, serial acting"): one task owns
//! the kernel state and takes requests from a bounded queue; allowed effects
//! run concurrently on blocking threads through the Commit Layer, which
//! serialises them per resource.

mod agents;
mod audit;
mod cascade;
mod emergency;
mod evaluator;
mod immune;
mod proposals;
mod recovery;
mod tsca;
mod watch;
pub use evaluator::{
    CODE_SSE_DENY, CODE_SSE_ESCALATE, CODE_SSE_INVALID, CODE_SSE_UNAVAILABLE, EVALUATIONS_IN_FLIGHT_MAX,
    EVALUATOR_REASON_BYTES_MAX, EVALUATOR_TIMEOUT_DEFAULT, EvalAnswer, EvalError, EvalRequest, EvalVerdict,
    SemanticEvaluator,
};
pub(crate) use immune::signal_code;
pub use watch::{
    BOOT_HEARTBEATS, BeatFault, BeatMonitor, ComponentPet, ComponentView, DISK_CLEANUP_PCT, DISK_EMERGENCY_PCT,
    DISK_ESSENTIAL_PCT, DISK_WARN_PCT, DSC_HEARTBEAT_INTERVAL_DEFAULT, DscBeat, MemoryReader, UNRESPONSIVE_FLOOR,
    disk_used_pct, memory_used_pct,
};

pub use audit::AUDIT_SWEEP_EVERY;
pub use emergency::{
    ECS_REPORT_WAIT, EcsReport, EcsStatus, FORENSIC_DIRS_MAX, forensic_dirs, read_bounded, verify_ack,
};
pub use recovery::ChainView;
pub use tsca::{SignedTscaApproval, TscaView};

pub use agents::{AGENTS_LISTED_MAX, AgentView, AgentsView, CODE_AGENT_REGISTER, CODE_ONBOARDING_NOT_BUILT, FeverView};
pub use cascade::{
    Advanced, CODE_ADVANCE, CODE_ELIMINATED, CODE_PAUSED, ELIMINATION_APPROVAL_TTL_MS_MAX, EliminationGrant,
    STATE_SAVE_WINDOW_MS, SignedElimination,
};
pub use immune::{
    CODE_REPORT_INVALID, CODE_REPORT_RATE, CODE_REPORT_SUSPENDED, QuarantineView, RELEASE_REASON_BYTES_MAX,
    TIME_STEP_ALERT_MS,
};
pub use proposals::{
    BlockedView, CODE_PREFILTER_APPROVAL, PREFILTER_APPROVAL_TTL_MS_MAX, PrefilterGrant, PrefilterProposal,
    SignedPrefilterGrant, pattern_id,
};

use crate::denies::{DenyWindows, Source};
use crate::error::KernelError;
use crate::fold::{FoldSummary, KernelState, rebuild};
use crate::mode::{CODE_FREEZE, Mode};
use crate::posture::{CanonicalState, Conditions, Posture};
use crate::records::{
    self, ActionSummary, ApprovalDecisionRecord, ApprovalOutcome, ApprovalPacket, DecisionRecord, DeniesRecord,
    HealthRecord, JournalEvent, KIND_APPROVAL_DECISION, KIND_APPROVAL_PACKET, KIND_DECISION, KIND_DENIES, KIND_HEALTH,
    KIND_MODE, KIND_READ, KIND_REFUSED, KIND_STATE, ModeRecord, RECORD_VERSION, ReadRecord, RefusedRecord, StateRecord,
};
use maos_commit::{
    ApprovalGrant, Authorized, CommitError, CommitLayer, Committed, FailReason, OutputLabel, RecoveryReport,
    SignedApproval, Undone,
};
use maos_crypto::VerifyingKey;
use maos_dsc::{
    CheckId, Decision, DscConfig, DscState, FRAGMENT_BYTES_MAX, Faults, KernelHealth, Outcome, decide_injecting_faults,
};
use maos_model::{DenyCode, EffectClass, HacfLevel, Intent, IntentId, UnixMillis, Verdict};
use maos_token::limits::TOKEN_TEXT_MAX;
use maos_token::{KeyRing, TokenClaims, TokenError, TokenEvent, VerifiedToken, VerifyCache};
use maos_wal::{
    APPEND_QUEUE_BYTES_MAX, Clock, HealthReport, Lsn, PAYLOAD_BYTES_MAX, RecordKind, Wal, WalError, WallClock,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Largest submission queue: bounds the memory and latency a flood of agent
/// requests can cost; beyond it a submission fails with `KERNEL-BUSY`.
pub const SUBMIT_QUEUE_MAX: usize = 4096;
/// Batches of kernel-revoked token ids buffered for the gateway; a slow
/// gateway misses the oldest (the tokens are revoked anyway, and its sessions
/// are refused at their next request).
const REVOKED_FEED_MAX: usize = 64;
/// Queue bound used by [`KernelConfig::new`].
pub const SUBMIT_QUEUE_DEFAULT: usize = 1024;
/// Open approval packets: an agent escalating in a loop cannot grow the
/// kernel's memory without bound (beyond it escalations deny `KERNEL-APPROVALS-FULL`).
pub const PENDING_APPROVALS_MAX: usize = 4096;
/// Open approval packets of one agent: one agent escalating in a loop fills
/// only its own share, and the commander's queue still has room for the
/// others' requests (beyond it that agent's escalations deny
/// `KERNEL-APPROVALS-PER-AGENT`).
pub const PENDING_APPROVALS_PER_AGENT_MAX: usize = 64;
const _: () = assert!(PENDING_APPROVALS_PER_AGENT_MAX < PENDING_APPROVALS_MAX);
/// Default lifetime of an approval packet (15 minutes).
pub const APPROVAL_TTL_MS_DEFAULT: u64 = 15 * 60 * 1000;
/// Default interval of the internal heartbeat.
pub const HEARTBEAT_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Longest [`Kernel::start`] waits for the boot lockdown to lift before it
/// returns anyway (the kernel then stays in PRE-OP and refuses everything).
pub const BOOT_LOCKDOWN_WAIT: Duration = Duration::from_secs(10);
/// Consecutive decisions with a `DSC-INTERNAL` check before the kernel stops
/// committing (Rule 10: a failing DSC must not be trusted to allow).
pub const DSC_INTERNAL_STREAK_MAX: u32 = 3;
/// Emergency shutdown commands waiting (at most one shutdown runs per
/// process; a second is refused before it is queued).
const URGENT_MAX: usize = 8;
/// Completions (finished commits) waiting for the sequencer.
const COMPLETIONS_MAX: usize = 1024;
/// Decisions whose records share one WAL commit group (one sync): bounds the
/// latency one batch adds to its first request.
pub const DECISION_BATCH_MAX: usize = 64;
const _: () = assert!(DECISION_BATCH_MAX <= maos_wal::APPEND_QUEUE_RECORDS_MAX);
const _: () = assert!(PAYLOAD_BYTES_MAX <= APPEND_QUEUE_BYTES_MAX);
/// Distinct token texts the sequencer remembers having logged since start. A
/// decision record carries the presented token's text only the first time
/// (replay needs it to re-verify); later records carry its SHA3-256 alone, so
/// a 4.7 KB token is not rewritten with every intent. When full the memory is
/// cleared and texts are logged again on next use.
pub const LOGGED_TOKENS_MAX: usize = 16_384;

/// Refusal code for a token text over the token format's bound.
pub const CODE_TOKEN_TOO_LARGE: &str = "KERNEL-TOKEN-TOO-LARGE";
/// Refusal code for a record over the WAL's payload bound.
pub const CODE_RECORD_TOO_LARGE: &str = "KERNEL-RECORD-TOO-LARGE";

/// Refusal code when the approval table is full.
pub const CODE_APPROVALS_FULL: &str = "KERNEL-APPROVALS-FULL";
/// Refusal code when one agent already has its share of open approvals.
pub const CODE_APPROVALS_PER_AGENT: &str = "KERNEL-APPROVALS-PER-AGENT";
/// Refusal code for every request before the DSC has sent its first three
/// valid heartbeats (boot lockdown, CT-DEG-13).
pub const CODE_BOOT_LOCKDOWN: &str = "KERNEL-BOOT-LOCKDOWN";
/// The log writer's interval (spec §16.3: 10 s for components other than the
/// dispatcher and the Commit Layer): a commit group in flight for twice this
/// (20 s: a sync that does not return) makes the writer unresponsive.
pub const WAL_WRITER_INTERVAL_DEFAULT: Duration = Duration::from_secs(10);
/// `KERNEL-SUPERVISE`: a component the kernel does not supervise from outside.
pub const CODE_SUPERVISE: &str = "KERNEL-SUPERVISE";
/// `KERNEL-MEMORY`: memory pressure (degraded mode 1) paused the agent;
/// retry once memory is back under 75 %.
pub const CODE_MEMORY: &str = "KERNEL-MEMORY";
/// Deny code when a delta would exceed a DSC state bound.
pub const CODE_STATE_LIMIT: &str = "KERNEL-STATE-LIMIT";

/// Test and simulation hooks. Each can only make the kernel refuse more,
/// never allow more, so exposing them cannot weaken it.
#[derive(Debug, Default)]
pub struct KernelFaults {
    /// The sequencer stops petting the watchdog (simulates a stalled sequencer).
    pub stop_heartbeat: AtomicBool,
    /// The DSC instance stops sending heartbeats (simulates a dead instance).
    pub stop_dsc_heartbeat: AtomicBool,
    /// The DSC instance resends its last heartbeat instead of a new one (a replay, CT-DEG-04).
    pub replay_dsc_heartbeat: AtomicBool,
    /// The DSC instance's heartbeats carry another configuration hash (CT-DEG-05).
    pub forge_dsc_config_hash: AtomicBool,
    /// The DSC instance's known-answer decision reports a wrong answer (a failed voter, CT-DEG-02).
    pub wrong_dsc_answer: AtomicBool,
    /// When 1..=100, the disk use the watchdog reads instead of measuring (CT-DEG-24).
    pub disk_used_pct: std::sync::atomic::AtomicU8,
    /// Every decision runs with an injected internal error in check 1.
    pub fail_dsc: AtomicBool,
    /// The running DSC instance hangs (stops beating) until it is replaced:
    /// the TSCA's restart brings a new one (CT-DEG-19's component restart).
    pub hang_dsc_instance: AtomicBool,
    /// The watchdog's probe job does not return from its Commit Layer
    /// executor while this is on (executors that hang).
    pub hang_commit_executors: AtomicBool,
    /// The MCP upstream supervisor hangs (one-shot: the TSCA's restart brings a new one).
    pub hang_mcp_supervisor: AtomicBool,
    /// When 1..=100, the least memory use the watchdog reads (CT-DEG-23).
    pub memory_used_pct: std::sync::atomic::AtomicU8,
}

/// Everything the kernel needs to start.
pub struct KernelConfig {
    /// The Commit Layer; its WAL is the kernel's log.
    pub commit: Arc<CommitLayer>,
    /// The DSC configuration (immutable; its hash is in every decision).
    pub dsc: Arc<DscConfig>,
    /// Keys trusted to issue capability tokens.
    pub token_keys: KeyRing,
    /// The commander's public key: approvals must verify under it.
    pub commander: VerifyingKey,
    /// Time source (decisions use `max(previous, now)`, so they are monotonic).
    pub clock: Arc<dyn Clock>,
    /// Submission queue bound, clamped to `1..=`[`SUBMIT_QUEUE_MAX`].
    pub queue_capacity: usize,
    /// Lifetime of an approval packet.
    pub approval_ttl_ms: u64,
    /// Interval of the sequencer's pet and housekeeping tick.
    pub heartbeat_interval: Duration,
    /// Interval of the DSC instance's heartbeat (boot lockdown lasts three).
    pub dsc_heartbeat_interval: Duration,
    /// Fault injection (tests).
    pub faults: Arc<KernelFaults>,
    /// The semantic evaluator consulted after the DSC allows an effect (none:
    /// rule-based mode, YELLOW).
    pub evaluator: Option<Arc<dyn SemanticEvaluator>>,
    /// How long one answer may take.
    pub evaluator_timeout: Duration,
    /// How long the sequencer may be unresponsive (past its limit) before the
    /// TSCA restarts the system ([`crate::tsca::SYSTEM_RESTART_AFTER_MS`]).
    pub system_restart_after: Duration,
    /// How long one commit group of the log may take; twice this and the
    /// log's writer is unresponsive ([`WAL_WRITER_INTERVAL_DEFAULT`]).
    pub wal_writer_interval: Duration,
    /// How often the audit sweep re-verifies one segment of the log on disk
    /// ([`AUDIT_SWEEP_EVERY`]).
    pub audit_sweep_every: Duration,
    /// What reads the memory use (`None`: [`memory_used_pct`], the host's and
    /// the cgroup's); a test injects a fixed reading so the host's does not count.
    pub memory_reader: Option<MemoryReader>,
    /// How long each level of the Recovery Priority Chain has to pass its
    /// health check (spec §38.2: [`crate::recovery::LEVEL_TIMEOUT_MS_DEFAULT`]).
    pub recovery_level_timeout: Duration,
    /// Where emergency shutdowns leave their forensic reports (never cleaned),
    /// and where the boot looks for them and for the commander's
    /// acknowledgements. `None`: a shutdown is recorded in the log only.
    pub forensics_dir: Option<std::path::PathBuf>,
}

impl fmt::Debug for KernelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelConfig")
            .field("dsc", &self.dsc.hash_hex())
            .field("commander", &self.commander.key_id().to_hex())
            .field("queue_capacity", &self.queue_capacity)
            .field("approval_ttl_ms", &self.approval_ttl_ms)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish_non_exhaustive()
    }
}

impl KernelConfig {
    /// Defaults: the [`WallClock`] (wall time, with a monotonic reference for
    /// time integrity), [`SUBMIT_QUEUE_DEFAULT`], [`APPROVAL_TTL_MS_DEFAULT`],
    /// [`HEARTBEAT_INTERVAL_DEFAULT`], [`DSC_HEARTBEAT_INTERVAL_DEFAULT`], no faults.
    #[must_use]
    pub fn new(commit: Arc<CommitLayer>, dsc: Arc<DscConfig>, token_keys: KeyRing, commander: VerifyingKey) -> Self {
        Self {
            commit,
            dsc,
            token_keys,
            commander,
            clock: Arc::new(WallClock::new()),
            queue_capacity: SUBMIT_QUEUE_DEFAULT,
            approval_ttl_ms: APPROVAL_TTL_MS_DEFAULT,
            heartbeat_interval: HEARTBEAT_INTERVAL_DEFAULT,
            dsc_heartbeat_interval: DSC_HEARTBEAT_INTERVAL_DEFAULT,
            evaluator: None,
            evaluator_timeout: EVALUATOR_TIMEOUT_DEFAULT,
            faults: Arc::new(KernelFaults::default()),
            forensics_dir: None,
            system_restart_after: Duration::from_millis(crate::tsca::SYSTEM_RESTART_AFTER_MS),
            recovery_level_timeout: Duration::from_millis(crate::recovery::LEVEL_TIMEOUT_MS_DEFAULT),
            memory_reader: None,
            audit_sweep_every: audit::AUDIT_SWEEP_EVERY,
            wal_writer_interval: WAL_WRITER_INTERVAL_DEFAULT,
        }
    }
}

/// The answer to one submission (or one granted approval).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Allowed and committed.
    Done {
        /// The intent.
        intent: IntentId,
        /// Lsn of the decision record (`None` for an approved escalation, whose
        /// decision record is the escalation's).
        decision_lsn: Option<Lsn>,
        /// What the Commit Layer returned.
        committed: Committed,
        /// Lsn of the session-label record when the output was untrusted.
        taint_lsn: Option<Lsn>,
    },
    /// Refused: by the DSC (a `DSC-…` code), the kernel's mode (`KERNEL-…`),
    /// or the authorization proof (`CL-…`). Nothing executed.
    Denied {
        /// The intent.
        intent: IntentId,
        /// Stable code.
        code: &'static str,
        /// One line for the agent (Agent Right 1).
        explanation: String,
        /// Lsn of the decision record, when one was logged.
        decision_lsn: Option<Lsn>,
    },
    /// Escalated: waits for a human decision.
    Pending {
        /// The intent.
        intent: IntentId,
        /// The approval packet id (the intent id).
        approval: IntentId,
        /// The level required.
        level: HacfLevel,
        /// When the packet expires (then the intent is denied).
        expires: UnixMillis,
        /// Lsn of the decision record.
        decision_lsn: Lsn,
    },
    /// Allowed, but the commit failed and was rolled back (the failure is logged).
    Failed {
        /// The intent.
        intent: IntentId,
        /// Why, with the stage and the rollback.
        error: CommitError,
    },
}

impl Reply {
    /// The intent.
    #[must_use]
    pub const fn intent(&self) -> IntentId {
        match self {
            Self::Done { intent, .. }
            | Self::Denied { intent, .. }
            | Self::Pending { intent, .. }
            | Self::Failed { intent, .. } => *intent,
        }
    }

    /// The stable code of a denial or failure (`None` for done and pending).
    #[must_use]
    pub const fn code(&self) -> Option<&'static str> {
        match self {
            Self::Denied { code, .. } => Some(code),
            Self::Failed { error, .. } => Some(error.code()),
            Self::Done { .. } | Self::Pending { .. } => None,
        }
    }
}

/// What [`Kernel::start`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartReport {
    /// The state rebuilt from the log.
    pub fold: FoldSummary,
    /// Approval packets open at shutdown, denied now (fail-safe).
    pub approvals_lapsed: Vec<IntentId>,
    /// What crash recovery did (`None` if it failed: see `hold`).
    pub recovery: Option<RecoveryReport>,
    /// Why the kernel stays in recovery hold, if it does (recovery failed or
    /// found damaged records).
    pub hold: Option<String>,
}

/// A snapshot for `maos status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelStatus {
    /// The mode (with why).
    pub mode: Mode,
    /// The canonical state, its degraded modes and why (spec §38.11).
    pub posture: Posture,
    /// What the watchdog last saw of each component.
    pub components: Vec<ComponentView>,
    /// Disk use of the data directory's filesystem, percent (`None`: not measured).
    pub disk_used_pct: Option<u8>,
    /// Memory use, percent, the tighter of the host's and the cgroup's
    /// (`None`: not measured); over 85 % is degraded mode 1.
    pub memory_used_pct: Option<u8>,
    /// The semantic evaluator (where it is, and whether it answered last
    /// time); `None` when none is configured.
    pub evaluator: Option<(String, bool)>,
    /// Requests waiting in the queue.
    pub queue_depth: usize,
    /// The queue bound.
    pub queue_capacity: usize,
    /// The last Lsn in the log.
    pub last_lsn: Option<Lsn>,
    /// The WAL's health.
    pub wal: HealthReport,
    /// Open approval packets.
    pub pending_approvals: usize,
    /// How far the wall clock has stepped since the kernel started, against
    /// a monotonic reference, ms (time integrity).
    pub wall_clock_offset_ms: i64,
    /// Emergency shutdowns: one under way, the observation after one, the counters.
    pub ecs: EcsStatus,
    /// The TSCA: level, mode, open incident and its budget spent, proposals.
    pub tsca: TscaView,
}

enum Command {
    Submit {
        intent: Box<Intent>,
        token: String,
        reply: oneshot::Sender<Reply>,
    },
    Approve {
        id: IntentId,
        approval: Box<SignedApproval>,
        reply: oneshot::Sender<Result<Reply, KernelError>>,
    },
    Deny {
        id: IntentId,
        reason: String,
        reply: oneshot::Sender<Result<(), KernelError>>,
    },
    Approvals {
        reply: oneshot::Sender<Vec<ApprovalPacket>>,
    },
    Token {
        event: Box<TokenEvent>,
        reply: oneshot::Sender<Result<Lsn, KernelError>>,
    },
    Verify {
        token: String,
        reply: oneshot::Sender<Result<TokenClaims, TokenError>>,
    },
    Refuse {
        intent: Box<Intent>,
        code: &'static str,
        why: String,
        reply: oneshot::Sender<Reply>,
    },
    CloseDenyWindows {
        reply: oneshot::Sender<u64>,
    },
    Quarantine {
        reply: oneshot::Sender<Vec<QuarantineView>>,
    },
    Proposals {
        reply: oneshot::Sender<(Vec<PrefilterProposal>, Vec<BlockedView>)>,
    },
    ApprovePrefilter {
        approval: Box<SignedPrefilterGrant>,
        reply: oneshot::Sender<Result<Lsn, KernelError>>,
    },
    Release {
        agent: maos_model::AgentId,
        reason: String,
        reply: oneshot::Sender<Result<Lsn, KernelError>>,
    },
    Apoptosis {
        agent: maos_model::AgentId,
        reason: String,
        reply: oneshot::Sender<Result<Lsn, KernelError>>,
    },
    Advance {
        agent: maos_model::AgentId,
        reason: String,
        approval: Option<Box<SignedElimination>>,
        reply: oneshot::Sender<Result<Advanced, KernelError>>,
    },
    Register {
        agent: maos_model::AgentId,
        ring: maos_model::Ring,
        class: maos_model::TrustClass,
        reason: String,
        reply: oneshot::Sender<Result<(Lsn, Vec<maos_model::TokenId>), KernelError>>,
    },
    Demote {
        agent: maos_model::AgentId,
        reason: String,
        reply: oneshot::Sender<Result<(Lsn, Vec<maos_model::TokenId>), KernelError>>,
    },
    Agents {
        reply: oneshot::Sender<AgentsView>,
    },
    Fever {
        reply: oneshot::Sender<Option<FeverView>>,
    },
    EndFever {
        reason: String,
        reply: oneshot::Sender<Result<Lsn, KernelError>>,
    },
    /// Phases 2 to 4 of a shutdown whose halt ([`Shared::halt`]) is done.
    Emergency {
        trigger: crate::ecs::EcsTrigger,
        id: String,
        at_ms: u64,
        reply: Option<oneshot::Sender<Result<EcsReport, KernelError>>>,
    },
    Report {
        reporter: maos_model::AgentId,
        suspect: maos_model::AgentId,
        class: maos_dsc::immune::AnomalyClass,
        evidence: String,
        reply: oneshot::Sender<Result<Lsn, KernelError>>,
    },
}

enum Completion {
    /// An observation returned untrusted output or an upstream's catalogue:
    /// record it in the session (taint, provenance text), then reply.
    Tainted { intent: Box<Intent>, reply: Reply, to: ReplyTo },
    /// The semantic evaluator asked for a human about an allowed effect:
    /// open an approval packet for the commander, answer `Pending`.
    Escalated { intent: Box<Intent>, decision: Box<Decision>, lsn: Lsn, why: String, to: ReplyTo },
}

enum ReplyTo {
    Agent(oneshot::Sender<Reply>),
    Approver(oneshot::Sender<Result<Reply, KernelError>>),
}

impl ReplyTo {
    fn send(self, reply: Reply) {
        // A dropped receiver means the caller stopped waiting; the outcome is in the log.
        let _ = match self {
            Self::Agent(tx) => tx.send(reply).map_err(drop),
            Self::Approver(tx) => tx.send(Ok(reply)).map_err(drop),
        };
    }
}

/// State shared between the handle, the sequencer, the watchdog and recovery.
struct Shared {
    mode: Mutex<Mode>,
    /// The canonical state last derived (and logged).
    posture: Mutex<Posture>,
    /// Serializes deriving and logging state transitions.
    posture_writer: Mutex<()>,
    watch: watch::Watch,
    /// Where the best-effort records (mode and state transitions) go: a
    /// thread of their own appends them, so whoever saw a change (the
    /// watchdog among them) never waits on the log. Unset until the threads
    /// start: then they are appended in place.
    state_log: std::sync::OnceLock<std::sync::mpsc::SyncSender<(maos_wal::RecordKind, Vec<u8>)>>,
    /// Hash of the DSC configuration loaded at boot.
    config_hash: [u8; 32],
    /// Its profile.
    profile: maos_model::Profile,
    /// The semantic evaluator's seat, when one is configured.
    evaluator: Option<evaluator::Seat>,
    /// Emergency shutdowns (spec §38.6).
    ecs: Mutex<EcsStatus>,
    /// Where their forensic reports go.
    forensics: Option<std::path::PathBuf>,
    /// The commander's public key (the TSCA's level-B approvals verify under it).
    commander: VerifyingKey,
    /// The TSCA and its log section (spec §38.7): one writer at a time.
    tsca: Mutex<crate::tsca::Ledger>,
    /// Component restarts the commander approved: the watchdog carries them out.
    restarts_approved: Mutex<Vec<crate::posture::Component>>,
    /// Agents in hard isolation past their window the TSCA did not terminate
    /// (its incident stays open while there are).
    agents_due: AtomicBool,
    /// [`KernelConfig::system_restart_after`], ms.
    system_restart_after_ms: u64,
    /// [`KernelConfig::recovery_level_timeout`], ms.
    recovery_level_timeout_ms: u64,
    /// The Recovery Priority Chain in progress (watchdog thread).
    chain: Mutex<recovery::ChainSlot>,
    /// Where the TSCA's system restart orders go: whoever runs the kernel
    /// (`maos up` re-executes itself on a thread of its own). `None`: nobody
    /// can restart this process, and the TSCA's system restart is blocked.
    restart: Mutex<Option<std::sync::mpsc::Sender<String>>>,
    /// The sequencer's urgent queue, for the watchdog's own commands (the
    /// minimal safe state after an unanswered proposal); weak, so it never
    /// keeps the sequencer alive.
    commands: mpsc::WeakSender<Command>,
    /// The latest emergency shutdown's time: ids never repeat.
    last_ecs_ms: AtomicU64,
    wal: Arc<Wal>,
    clock: Arc<dyn Clock>,
    stopped: AtomicBool,
    pending_approvals: AtomicUsize,
    /// Tokens the kernel revoked on its own (an automatic elimination, Fast
    /// Apoptosis), for the gateway to close their sessions.
    revoked_by_kernel: tokio::sync::broadcast::Sender<Vec<maos_model::TokenId>>,
}

impl Shared {
    /// Whether the safe restart after an emergency shutdown is still being
    /// observed (spec §38.6: conservative mode, 10 min).
    fn conservative(&self) -> bool {
        let now = self.clock.now().0;
        self.ecs.lock().is_ok_and(|e| e.observing.is_some() && e.observation_until_ms.is_some_and(|until| now < until))
    }

    /// The component restarts the commander approved since the last turn.
    fn take_approved_restarts(&self) -> Vec<crate::posture::Component> {
        self.restarts_approved.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }

    fn mode(&self) -> Mode {
        self.mode.lock().map_or_else(|_| Mode::CommitFreeze { why: "kernel mode lock poisoned".into() }, |m| m.clone())
    }

    /// Moves to `next` if that is allowed, logging the transition (best
    /// effort: in commit freeze the log cannot take it). Returns whether the
    /// mode changed.
    fn transition(&self, next: Mode, trigger: &str) -> bool {
        let Ok(mut mode) = self.mode.lock() else { return false };
        if !mode.may_become(&next) {
            return false;
        }
        let record = ModeRecord {
            v: RECORD_VERSION,
            trigger: trigger.to_owned(),
            previous: Some(mode.clone()),
            new: next.clone(),
            at_ms: self.clock.now().0,
        };
        if next == Mode::Normal {
            tracing::info!(previous = %*mode, new = %next, trigger, "kernel mode transition");
        } else {
            tracing::warn!(previous = %*mode, new = %next, trigger, "kernel mode transition");
        }
        // The mode changes first and its lock is not held across the append:
        // a log writer that hangs must not hold every reader of the mode.
        *mode = next;
        drop(mode);
        match records::encode(&record) {
            Ok(payload) => self.log_best_effort(KIND_MODE, payload, "mode transition"),
            Err(e) => tracing::error!(error = %e, "mode transition could not be encoded"),
        }
        self.update_posture(trigger);
        true
    }

    /// Appends a best-effort record through the state log's thread (in
    /// place before it runs); a full queue drops it, said in the error log.
    fn log_best_effort(&self, kind: maos_wal::RecordKind, payload: Vec<u8>, what: &str) {
        match self.state_log.get() {
            Some(tx) => {
                if let Err(e) = tx.try_send((kind, payload)) {
                    let why =
                        if matches!(e, std::sync::mpsc::TrySendError::Full(_)) { "queue full" } else { "stopped" };
                    tracing::error!(what, why, "a record could not be queued for the log: not logged");
                }
            }
            None => {
                if let Err(e) = self.wal.append(kind, &payload) {
                    tracing::error!(error = %e, what, "a record could not be logged");
                }
            }
        }
    }

    /// Whether the log's writer has had a commit group in flight past its
    /// limit (a sync that does not return): best-effort records are not
    /// attempted then, so the watchdog and the mode stay live; records that
    /// an action depends on are refused, so the action is not taken.
    fn log_stalled(&self) -> bool {
        let limit = watch::limit_ms(self.watch.wal_interval);
        self.wal.busy_for().is_some_and(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX) > limit)
    }

    /// Derives the canonical state from the mode and what the watchdog saw,
    /// and logs a transition when the state or its modes changed (best effort,
    /// as for modes).
    fn update_posture(&self, trigger: &str) {
        // One writer at a time, deriving from what holds now: transitions are
        // logged in order and a stale derivation never overwrites a newer one.
        // `status()` reads `posture`, which is held only for the swap.
        let Ok(_writer) = self.posture_writer.lock() else { return };
        let mode = self.mode();
        let seen = self.watch.observed();
        let audit = self.watch.audit_broken();
        let next = Posture::derive(&Conditions {
            mode: &mode,
            lockdown: seen.lockdown,
            unresponsive: &seen.unresponsive,
            heartbeats_valid: seen.heartbeat_ok,
            voter_ok: seen.voter_ok,
            rollback_ok: seen.rollback_ok,
            disk_used_pct: seen.disk_used_pct,
            integrity: seen.integrity.as_deref().or(audit.as_deref()),
            evaluator: self.evaluator.as_ref().is_some_and(evaluator::Seat::up),
            capacity: seen.capacity,
            memory_used_pct: seen.memory_used_pct,
        });
        let previous = {
            let Ok(mut posture) = self.posture.lock() else { return };
            if (posture.state, &posture.modes, &posture.why) == (next.state, &next.modes, &next.why) {
                return;
            }
            std::mem::replace(&mut *posture, next.clone())
        };
        let record = StateRecord {
            v: RECORD_VERSION,
            trigger: trigger.to_owned(),
            previous: Some(previous.state),
            new: next.state,
            modes: next.modes,
            why: next.why,
            human_ack: next.human_ack,
            plan_sha3: None,
            at_ms: self.clock.now().0,
        };
        if next.state.effects_allowed() {
            tracing::info!(previous = %previous.state, new = %next.state, trigger, "canonical state");
        } else {
            tracing::warn!(previous = %previous.state, new = %next.state, trigger, why = ?record.why, "canonical state");
        }
        match records::encode(&record) {
            Ok(payload) => self.log_best_effort(KIND_STATE, payload, "state transition"),
            Err(e) => tracing::error!(error = %e, "state transition could not be encoded"),
        }
    }

    /// The health report built from what the watchdog and the log observed.
    fn health(&self) -> KernelHealth {
        let seen = self.watch.health_inputs();
        let disk_at = |pct: u8| seen.disk_used_pct.is_some_and(|p| p >= pct);
        KernelHealth {
            heartbeat_ok: seen.heartbeat_ok,
            // An instance that decided under another configuration makes Rule 1 deny everything.
            config_hash_loaded: if seen.integrity_violated { [0; 32] } else { self.config_hash },
            // At 99 % only the kernel's shutdown may write (spec §25.2): Rule 8 denies all.
            wal_writable: !self.wal.frozen() && !disk_at(DISK_EMERGENCY_PCT),
            // The fold verified the whole chain at boot; the audit sweep
            // re-verifies it on disk while running.
            audit_chain_intact: self.watch.audit_intact(),
            // At 95 % only essential writes: no snapshot for an effect, Rule 5 denies it.
            rollback_available: seen.rollback_ok && !disk_at(DISK_ESSENTIAL_PCT),
            supervisor_present: self.watch.supervisor_present(),
            voter_ok: seen.voter_ok,
            // Nothing on one node confirms an agent has no other path than
            // the gateway (pods, #18): reported as the deployment assumes it.
            gateway_enforced: true,
        }
    }

    fn freeze(&self, why: &str) {
        self.transition(Mode::CommitFreeze { why: why.to_owned() }, "wal-commit-freeze");
    }
}

/// The halves of the Mandatory Rules that read the health report, applied to
/// `h` for a request that runs without a new decision (a grant, an effect
/// after the evaluator's answer).
fn health_refusal_of(h: &KernelHealth, config_hash: [u8; 32], effect: bool) -> Option<(&'static str, String)> {
    let all = [
        (h.config_hash_loaded == config_hash, DenyCode::Mr01),
        (h.audit_chain_intact, DenyCode::Mr03),
        (h.voter_ok, DenyCode::Mr06),
        (h.wal_writable, DenyCode::Mr08),
        (h.gateway_enforced, DenyCode::Mr09),
        (h.supervisor_present, DenyCode::Mr11),
    ];
    let effects = [(h.rollback_available, DenyCode::Mr05), (h.heartbeat_ok, DenyCode::Mr10)];
    let failing = all.iter().chain(effects.iter().filter(|_| effect)).find(|(ok, _)| !ok);
    failing.map(|(_, code)| (code.as_str(), format!("{}: the kernel's health refuses it now", code.explain())))
}

/// A running kernel. Cheap to clone; every clone talks to the same sequencer.
/// The sequencer stops when every handle is dropped.
#[derive(Clone)]
pub struct KernelHandle {
    tx: mpsc::Sender<Command>,
    /// The emergency shutdown's queue ([`URGENT_MAX`]).
    urgent: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    commit: Arc<CommitLayer>,
}

impl fmt::Debug for KernelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelHandle").field("mode", &self.shared.mode()).finish_non_exhaustive()
    }
}

/// A submission in the queue; await [`Submission::outcome`] for the answer.
#[derive(Debug)]
pub struct Submission {
    intent: IntentId,
    rx: oneshot::Receiver<Reply>,
}

impl Submission {
    /// The intent.
    #[must_use]
    pub const fn intent(&self) -> IntentId {
        self.intent
    }

    /// Waits for the answer.
    ///
    /// # Errors
    /// [`KernelError::Stopped`] if the kernel stopped before answering.
    pub async fn outcome(self) -> Result<Reply, KernelError> {
        self.rx.await.map_err(|_| KernelError::Stopped)
    }
}

impl KernelHandle {
    fn enqueue(&self, command: Command) -> Result<(), KernelError> {
        self.tx.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => KernelError::Busy { capacity: self.tx.max_capacity() },
            mpsc::error::TrySendError::Closed(_) => KernelError::Stopped,
        })
    }

    /// Queues an intent with the capability token text the agent presented
    /// (empty: none). Never blocks.
    ///
    /// # Errors
    /// [`KernelError::Busy`] when the queue is full, [`KernelError::Stopped`].
    pub fn submit(&self, intent: Intent, token_text: impl Into<String>) -> Result<Submission, KernelError> {
        let (reply, rx) = oneshot::channel();
        let id = intent.id;
        self.enqueue(Command::Submit { intent: Box::new(intent), token: token_text.into(), reply })?;
        Ok(Submission { intent: id, rx })
    }

    /// Logs a refusal the gateway made before the kernel could decide (a
    /// malformed request, a field the agent may not set), so every refusal is
    /// in the audit log, and answers it as a denial with `code`.
    ///
    /// # Errors
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn refuse(&self, intent: Intent, code: &'static str, why: String) -> Result<Reply, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Refuse { intent: Box::new(intent), code, why, reply })?;
        rx.await.map_err(|_| KernelError::Stopped)
    }

    /// [`Self::submit`] and wait for the answer.
    ///
    /// # Errors
    /// As [`Self::submit`] and [`Submission::outcome`].
    pub async fn submit_and_wait(&self, intent: Intent, token_text: impl Into<String>) -> Result<Reply, KernelError> {
        self.submit(intent, token_text)?.outcome().await
    }

    /// Open approval packets, oldest first.
    ///
    /// # Errors
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn approvals(&self) -> Result<Vec<ApprovalPacket>, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Approvals { reply })?;
        rx.await.map_err(|_| KernelError::Stopped)
    }

    /// The grant the commander signs for a packet: sign
    /// [`ApprovalGrant::message`] with the commander key in the
    /// `ApprovalDecision` domain and pass the result to [`Self::approve`].
    #[must_use]
    pub fn grant_for(packet: &ApprovalPacket) -> Option<ApprovalGrant> {
        let hash = hex_to_32(&packet.decision_sha3)?;
        Some(ApprovalGrant {
            intent: packet.id,
            decision_hash: hash,
            level: packet.level,
            expires: UnixMillis(packet.expires_ms),
        })
    }

    /// Grants an approval packet with a commander-signed decision; the intent
    /// then goes through the Commit Layer and its result is returned.
    ///
    /// # Errors
    /// [`KernelError::UnknownApproval`], [`KernelError::ApprovalExpired`] (the
    /// intent is denied), [`KernelError::ApprovalRejected`] (bad signature or
    /// mismatch; the packet stays open), [`KernelError::Refused`] (the mode
    /// refuses effects; the packet stays open), [`KernelError::Freeze`],
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn approve(&self, id: IntentId, approval: SignedApproval) -> Result<Reply, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Approve { id, approval: Box::new(approval), reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }

    /// Denies an approval packet (no signature needed: refusing is always safe).
    ///
    /// # Errors
    /// [`KernelError::UnknownApproval`], [`KernelError::Freeze`],
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn deny(&self, id: IntentId, reason: &str) -> Result<(), KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Deny { id, reason: reason.to_owned(), reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }

    /// Closes every open deny window now and logs its `kernel.denies` record
    /// (the daemon calls it when it stops, so no count is lost on a clean
    /// stop). Returns how many denies those records count.
    ///
    /// # Errors
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn close_deny_windows(&self) -> Result<u64, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::CloseDenyWindows { reply })?;
        rx.await.map_err(|_| KernelError::Stopped)
    }

    /// Logs a token event in the journal's format (kinds `0x0110`/`0x0111`)
    /// and applies it (revocations take effect on the next decision).
    ///
    /// # Errors
    /// [`KernelError::TokenEvent`] if it does not apply, [`KernelError::Freeze`],
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn token_event(&self, event: TokenEvent) -> Result<Lsn, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Token { event: Box::new(event), reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }

    /// Verifies a capability token as the sequencer would for an intent
    /// (signature, issuer, time window, revocation) without deciding anything:
    /// gateways use it to open a session and learn the holder. Every intent is
    /// verified again when it is decided.
    ///
    /// # Errors
    /// [`KernelError::Busy`], [`KernelError::Stopped`]; the inner error is the
    /// token's refusal.
    pub async fn verify_token(
        &self,
        token_text: impl Into<String>,
    ) -> Result<Result<TokenClaims, TokenError>, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Verify { token: token_text.into(), reply })?;
        rx.await.map_err(|_| KernelError::Stopped)
    }

    /// Undoes a committed intent inside its hold period (spec §35), on a
    /// blocking thread: the Commit Layer compensates from the Rollback Zone
    /// under the resource locks and logs an undo record. Refused in commit
    /// freeze, where the undo could not be logged.
    ///
    /// # Errors
    /// [`KernelError::Undo`] with the Commit Layer's code, [`KernelError::Freeze`].
    pub async fn undo(&self, intent: IntentId) -> Result<Undone, KernelError> {
        match self.shared.mode() {
            Mode::CommitFreeze { why } => return Err(KernelError::Freeze(why)),
            // The Rollback Zone is evidence now: it stays as it was.
            Mode::Emergency { why } => return Err(KernelError::Refused { code: crate::ecs::CODE_ECS, why }),
            _ => {}
        }
        let commit = self.commit.clone();
        let now = self.shared.clock.now();
        tokio::task::spawn_blocking(move || commit.undo(intent, now))
            .await
            .map_err(|e| KernelError::Freeze(format!("undo task failed: {e}")))?
            .map_err(|e| KernelError::Undo { code: e.code(), why: e.to_string() })
    }

    /// Releases held mail past its hold period, only in a mode that permits
    /// effects (Rule 10: a message leaving the outbox is the effect itself),
    /// each release logged before the message leaves. In recovery hold,
    /// commit freeze or think-but-don't-commit nothing leaves.
    ///
    /// # Errors
    /// [`KernelError::Refused`] with the mode's code; [`KernelError::Refused`]
    /// with the Commit Layer's `RELEASE-…` code if the Maildir or the log failed.
    pub async fn release_mail(
        &self,
        mail: Arc<maos_commit::effectors::mail::MailEffector>,
    ) -> Result<Vec<maos_commit::effectors::mail::Released>, KernelError> {
        let mode = self.shared.mode();
        if let Some(code) = mode.effect_refusal() {
            return Err(KernelError::Refused { code, why: mode.why().unwrap_or_default().to_owned() });
        }
        let commit = self.commit.clone();
        let now = self.shared.clock.now();
        let name = mode.name();
        tokio::task::spawn_blocking(move || commit.release_mail(&mail, now, name))
            .await
            .map_err(|e| KernelError::Refused { code: "RELEASE-EFFECT", why: format!("release task failed: {e}") })?
            .map_err(|e| KernelError::Refused { code: e.code(), why: e.to_string() })
    }

    /// Waits up to `within` for the boot lockdown to lift; whether it did.
    pub async fn lockdown_lifted(&self, within: Duration) -> bool {
        let mut lifted = self.shared.watch.lockdown_lifted.subscribe();
        tokio::time::timeout(within, lifted.wait_for(|l| *l)).await.is_ok_and(|r| r.is_ok())
    }

    /// Whether conservative mode holds (the observation window after an
    /// emergency shutdown): whoever runs breakers outside the kernel (the MCP
    /// upstreams) doubles their cooldowns while it does.
    #[must_use]
    pub fn conservative(&self) -> bool {
        self.shared.conservative()
    }

    /// The circuit breakers of the remotes effectors reach and of the
    /// semantic evaluator (spec §38.4).
    #[must_use]
    pub fn remote_breakers(&self) -> Vec<maos_commit::breaker::BreakerView> {
        let mut all = self.commit.remote_breakers();
        if let Some(seat) = &self.shared.evaluator {
            all.extend(seat.breaker_view());
        }
        all
    }

    /// The canonical state last logged.
    #[must_use]
    pub fn state(&self) -> CanonicalState {
        self.shared.posture.lock().map_or(CanonicalState::Red, |p| p.state)
    }

    /// The current mode.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Puts a ring-1 component (the MCP upstream supervisor) under the
    /// watchdog: it must [`ComponentPet::pet`] every `interval` (unresponsive
    /// at twice that, never under 500 ms); when it stops, the TSCA restarts it
    /// by calling `restart` with a new pet, from the TSCA's thread (so
    /// `restart` must not block: spawn and return). A replaced instance, or
    /// one of a replaced registration, sees [`ComponentPet::current`] false
    /// and must end.
    ///
    /// # Errors
    /// [`KernelError::Refused`] `KERNEL-SUPERVISE` for a ring-0 component (the
    /// kernel watches those itself) or a poisoned registry.
    pub fn supervise(
        &self,
        component: crate::posture::Component,
        interval: Duration,
        restart: Arc<dyn Fn(ComponentPet) + Send + Sync>,
    ) -> Result<ComponentPet, KernelError> {
        let refuse = |why: &str| KernelError::Refused { code: CODE_SUPERVISE, why: why.to_owned() };
        if component.ring() == 0 {
            return Err(refuse("ring-0 components are watched by the kernel itself"));
        }
        self.shared
            .watch
            .supervise(component, interval, restart)
            .ok_or_else(|| refuse("the watchdog's registry lock is poisoned"))
    }

    /// Mode, queue depth, last Lsn, WAL health, open approvals.
    #[must_use]
    pub fn status(&self) -> KernelStatus {
        let capacity = self.tx.max_capacity();
        KernelStatus {
            mode: self.shared.mode(),
            posture: self.shared.posture.lock().map_or_else(
                |_| Posture {
                    state: CanonicalState::Red,
                    modes: vec![],
                    why: vec!["state lock poisoned".into()],
                    human_ack: true,
                },
                |p| p.clone(),
            ),
            components: self.shared.watch.observed().components,
            disk_used_pct: self.shared.watch.observed().disk_used_pct,
            memory_used_pct: self.shared.watch.observed().memory_used_pct,
            evaluator: self.shared.evaluator.as_ref().map(|e| (e.describe(), e.up())),
            queue_depth: capacity.saturating_sub(self.tx.capacity()),
            queue_capacity: capacity,
            last_lsn: self.shared.wal.head().ok().map(|(lsn, _)| lsn),
            wal: self.shared.wal.health(),
            pending_approvals: self.shared.pending_approvals.load(Ordering::SeqCst),
            wall_clock_offset_ms: self.shared.clock.wall_offset_ms(),
            ecs: self.ecs(),
            tsca: self.tsca(),
        }
    }
}

fn hex_to_32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (dst, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *dst = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Crash recovery running in the background; [`Recovering::finish`] waits for it.
#[derive(Debug)]
pub struct Recovering {
    rx: oneshot::Receiver<(Option<RecoveryReport>, Option<String>)>,
    lockdown_lifted: tokio::sync::watch::Receiver<bool>,
    fold: FoldSummary,
    approvals_lapsed: Vec<IntentId>,
}

impl Recovering {
    /// Waits for crash recovery and returns the start report. The kernel leaves
    /// recovery hold when recovery completes cleanly.
    ///
    /// # Errors
    /// [`KernelError::Stopped`] if the recovery task died.
    pub async fn finish(self) -> Result<StartReport, KernelError> {
        let (recovery, hold) = self.rx.await.map_err(|_| KernelError::Stopped)?;
        // Then the boot lockdown; past the wait the kernel stays in PRE-OP and
        // refuses everything, which `maos status` shows with why.
        let mut lifted = self.lockdown_lifted;
        let waited = tokio::time::timeout(BOOT_LOCKDOWN_WAIT, lifted.wait_for(|l| *l)).await;
        if !waited.is_ok_and(|r| r.is_ok()) {
            tracing::error!("the boot lockdown did not lift: the DSC sent no {BOOT_HEARTBEATS} valid heartbeats");
        }
        Ok(StartReport { fold: self.fold, approvals_lapsed: self.approvals_lapsed, recovery, hold })
    }
}

/// The kernel entry points.
#[derive(Debug)]
pub struct Kernel;

impl Kernel {
    /// Rebuilds the state from the log, starts the sequencer and watchdog,
    /// runs crash recovery and returns once it completed. Must run inside a
    /// tokio runtime.
    ///
    /// # Errors
    /// [`KernelError::LogRead`] or [`KernelError::LogCorrupt`] if the log
    /// cannot be folded, [`KernelError::Freeze`] if the start records cannot
    /// be logged.
    pub async fn start(config: KernelConfig) -> Result<(KernelHandle, StartReport), KernelError> {
        let (handle, recovering) = Self::boot(config)?;
        let report = recovering.finish().await?;
        Ok((handle, report))
    }

    /// [`Self::start`] without waiting for crash recovery: the handle works at
    /// once, in recovery hold (observations run, effects are refused with
    /// `KERNEL-RECOVERY-HOLD`) until recovery completes.
    ///
    /// # Errors
    /// As [`Self::start`].
    pub fn boot(config: KernelConfig) -> Result<(KernelHandle, Recovering), KernelError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| KernelError::NoRuntime)?;
        let wal = config.commit.wal().clone();
        let (mut state, fold) = rebuild(&wal.reader(), config.dsc.clone())?;
        // Phase 5 of an emergency shutdown: the abuse limits decide whether
        // this boot may go ahead at all, before anything is logged. The
        // forensic directory must exist first: a shutdown that cannot leave
        // its report would go uncounted.
        if let Some(root) = &config.forensics_dir {
            emergency::create_private_dir(root).map_err(|e| KernelError::Refused {
                code: crate::ecs::CODE_FORENSICS,
                why: format!("the forensic directory {} cannot be created: {e}", root.display()),
            })?;
        }
        let boot_now = config.clock.now().max(state.last_now);
        let history =
            emergency::boot_history(&state.ecs, config.forensics_dir.as_deref(), &config.commander, boot_now.0);
        let (observe, counters) = match crate::ecs::boot_gate(&history.entries, boot_now.0, config.dsc.profile()) {
            crate::ecs::Gate::NeedsAck { id, why } => {
                return Err(KernelError::Refused {
                    code: crate::ecs::CODE_ECS_ACK_REQUIRED,
                    why: format!(
                        "emergency shutdown {id} needs the commander's acknowledgement before the next boot: {why} \
                         (read its forensic report, then `maos ecs acknowledge {id}`)"
                    ),
                });
            }
            crate::ecs::Gate::Clear { observe, counters } => (observe, counters),
        };
        if counters.flagged() {
            tracing::error!(
                in_7d = counters.in_7d,
                "more than {} emergency shutdowns in 7 days: possibly deliberate exploitation",
                crate::ecs::ECS_IN_7D_FLAG
            );
        }
        let queue_capacity = config.queue_capacity.clamp(1, SUBMIT_QUEUE_MAX);
        let queue_capacity =
            if observe.is_some() { crate::ecs::conservative_queue(queue_capacity) } else { queue_capacity };
        let observation_until = observe.as_ref().map(|_| boot_now.0.saturating_add(crate::ecs::OBSERVATION_MS));
        let (tx, rx) = mpsc::channel(queue_capacity);
        // The emergency shutdown's own queue, read before all else: agents
        // filling the submission queue cannot delay or drop it.
        let (urgent_tx, urgent_rx) = mpsc::channel(URGENT_MAX);
        let interval = config.heartbeat_interval.max(Duration::from_millis(1));
        let dsc_interval = config.dsc_heartbeat_interval.max(Duration::from_millis(1));
        let boot_posture = Posture::derive(&Conditions {
            mode: &Mode::RecoveryHold,
            lockdown: true,
            unresponsive: &[],
            heartbeats_valid: false,
            voter_ok: true,
            rollback_ok: true,
            disk_used_pct: None,
            integrity: None,
            // GREEN only once the evaluator has answered.
            evaluator: false,
            capacity: crate::posture::Capacity::Normal,
            memory_used_pct: None,
        });
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::RecoveryHold),
            posture: Mutex::new(boot_posture.clone()),
            posture_writer: Mutex::new(()),
            watch: watch::Watch::new(
                interval,
                dsc_interval,
                config.faults.clone(),
                config.memory_reader.clone().unwrap_or_else(|| Arc::new(memory_used_pct)),
                config.wal_writer_interval.max(Duration::from_millis(1)),
            ),
            config_hash: config.dsc.hash(),
            profile: config.dsc.profile(),
            evaluator: config.evaluator.clone().map(|e| evaluator::Seat::new(e, config.evaluator_timeout)),
            ecs: Mutex::new(EcsStatus {
                active: None,
                observing: observe.clone(),
                observation_until_ms: observation_until,
                counters: Some(counters),
                flagged: counters.flagged(),
            }),
            forensics: config.forensics_dir.clone(),
            tsca: Mutex::new(std::mem::replace(&mut state.tsca, crate::tsca::Ledger::new(config.dsc.profile()))),
            commander: config.commander.clone(),
            restarts_approved: Mutex::new(Vec::new()),
            state_log: std::sync::OnceLock::new(),
            agents_due: AtomicBool::new(false),
            restart: Mutex::new(None),
            system_restart_after_ms: u64::try_from(config.system_restart_after.as_millis()).unwrap_or(u64::MAX),
            recovery_level_timeout_ms: u64::try_from(config.recovery_level_timeout.as_millis()).unwrap_or(u64::MAX),
            chain: Mutex::new(recovery::ChainSlot::default()),
            commands: urgent_tx.downgrade(),
            last_ecs_ms: AtomicU64::new(history.entries.iter().map(|e| e.at_ms).max().unwrap_or(0)),
            wal: wal.clone(),
            clock: config.clock.clone(),
            stopped: AtomicBool::new(false),
            pending_approvals: AtomicUsize::new(0),
            revoked_by_kernel: tokio::sync::broadcast::channel(REVOKED_FEED_MAX).0,
        });
        let now = config.clock.now().max(state.last_now);
        let start = ModeRecord {
            v: RECORD_VERSION,
            trigger: "start".into(),
            previous: None,
            new: Mode::RecoveryHold,
            at_ms: now.0,
        };
        append(&wal, KIND_MODE, &start).map_err(KernelError::Freeze)?;
        let state_start = StateRecord {
            v: RECORD_VERSION,
            trigger: "start".into(),
            previous: None,
            new: boot_posture.state,
            modes: boot_posture.modes,
            why: boot_posture.why,
            human_ack: boot_posture.human_ack,
            plan_sha3: None,
            at_ms: now.0,
        };
        append(&wal, KIND_STATE, &state_start).map_err(KernelError::Freeze)?;
        let mut ecs_events = history.to_log;
        if let (Some(id), Some(until)) = (observe, observation_until) {
            tracing::warn!(%id, until_ms = until, queue_capacity, "safe restart after an emergency shutdown: observation");
            ecs_events.push(records::EcsEvent::Restarted {
                id,
                observation_until_ms: until,
                queue_capacity,
                at_ms: now.0,
            });
        }
        for event in &ecs_events {
            state.fold_ecs(event);
        }
        emergency::log_boot_events(&wal, ecs_events)?;
        // Packets open at shutdown lost their waiting agent and their decision
        // object: deny them (fail-safe) rather than approve blind.
        let open: Vec<ApprovalPacket> = std::mem::take(&mut state.open_packets).into_values().collect();
        let mut approvals_lapsed = Vec::with_capacity(open.len());
        for packet in open {
            let record = outcome_record(&packet, ApprovalOutcome::Lapsed, None, "kernel restarted", now);
            append(&wal, KIND_APPROVAL_DECISION, &record).map_err(KernelError::Freeze)?;
            approvals_lapsed.push(packet.id);
        }
        let (done_tx, done_rx) = mpsc::channel(COMPLETIONS_MAX);
        // The watchdog first: it sees the sequencer from its first turn.
        let sweep_every = config.audit_sweep_every.max(Duration::from_millis(10));
        let watch_threads =
            watch::spawn(&shared, config.dsc.clone(), &config.commit, config.faults.clone(), sweep_every)
                .map_err(|e| KernelError::Freeze(format!("the watchdog thread could not start: {e}")))?;
        let mut sequencer = Sequencer {
            _watch_threads: watch_threads,
            conservative: false,
            state,
            cache: VerifyCache::new(),
            keys: config.token_keys,
            commander: config.commander,
            commit: config.commit.clone(),
            shared: shared.clone(),
            faults: config.faults.clone(),
            approval_ttl_ms: config.approval_ttl_ms,
            pending: BTreeMap::new(),
            dsc_streak: 0,
            last_now: now,
            done_tx,
            logged_tokens: std::collections::BTreeSet::new(),
            denies: DenyWindows::default(),
            next_elimination_sweep_ms: 0,
            wall_offset_ms: shared.clock.wall_offset_ms(),
            wall_checked_ms: now.0,
        };
        // An elimination cut short by a crash is finished before anything runs.
        let finished = sequencer.finish_eliminations().map_err(|e| KernelError::Freeze(e.to_string()))?;
        if !finished.is_empty() {
            tracing::warn!(revoked = finished.len(), "finished an elimination cut short by a restart");
        }
        runtime.spawn(sequencer.run(rx, urgent_rx, done_rx, interval));
        let (rec_tx, rec_rx) = oneshot::channel();
        let commit = config.commit.clone();
        let rec_shared = shared.clone();
        runtime.spawn(async move {
            let result = tokio::task::spawn_blocking(move || commit.recover(now)).await;
            let (report, hold) = match result {
                Ok(Ok(report)) if report.damaged.is_empty() => (Some(report), None),
                Ok(Ok(report)) => {
                    let why = format!("recovery found {} damaged commit records", report.damaged.len());
                    (Some(report), Some(why))
                }
                Ok(Err(e)) => (None, Some(format!("recovery failed ({}): {e}", e.code()))),
                Err(e) => (None, Some(format!("recovery task failed: {e}"))),
            };
            if hold.is_none() {
                rec_shared.transition(Mode::Normal, "recovery-complete");
            }
            let _ = rec_tx.send((report, hold));
        });
        let handle = KernelHandle { tx, urgent: urgent_tx, shared, commit: config.commit.clone() };
        let lockdown_lifted = handle.shared.watch.lockdown_lifted.subscribe();
        Ok((handle, Recovering { rx: rec_rx, lockdown_lifted, fold, approvals_lapsed }))
    }
}

fn append<T: Serialize>(wal: &Wal, kind: RecordKind, record: &T) -> Result<Lsn, String> {
    let payload = records::encode(record)?;
    wal.append(kind, &payload).map(|l| l.lsn()).map_err(|e| format!("{} ({})", e, e.code()))
}

fn outcome_record(
    packet: &ApprovalPacket,
    outcome: ApprovalOutcome,
    signed_by: Option<String>,
    reason: &str,
    now: UnixMillis,
) -> ApprovalDecisionRecord {
    ApprovalDecisionRecord {
        v: RECORD_VERSION,
        id: packet.id,
        agent: packet.agent.clone(),
        action: packet.action.clone(),
        outcome,
        signed_by,
        summary: packet.summary.clone(),
        reason: reason.to_owned(),
        at_ms: now.0,
    }
}

/// A decided submission waiting for its decision record to be durable.
struct Staged {
    intent: Intent,
    decision: Decision,
    /// For a deny: a domain the token lists for no permission of the action
    /// (Fast Apoptosis's hard violation (a)).
    off_list: Option<String>,
    /// The verified token it was decided with: revoked by the time it acts
    /// (an elimination earlier in the batch), the request does not run.
    token: Option<maos_model::TokenId>,
    class: EffectClass,
    payload: Vec<u8>,
    applied: bool,
    now: UnixMillis,
    reply: oneshot::Sender<Reply>,
}

/// Who asked for a human, at which level, and why.
#[derive(Clone, Copy)]
struct Asked<'a> {
    level: HacfLevel,
    reason: &'a str,
    by_evaluator: bool,
}

struct PendingApproval {
    packet: ApprovalPacket,
    intent: Intent,
    decision: Decision,
    /// The DSC allowed it and the semantic evaluator sent it to a human: the
    /// grant is checked against the allow (`Authorized::allowed_and_granted`).
    by_evaluator: bool,
}

struct Sequencer {
    /// Stopped and joined when the sequencer is dropped (its task ended or
    /// its runtime went away).
    _watch_threads: watch::WatchThreads,
    /// Whether conservative mode was last applied.
    conservative: bool,
    state: KernelState,
    cache: VerifyCache,
    keys: KeyRing,
    commander: VerifyingKey,
    commit: Arc<CommitLayer>,
    shared: Arc<Shared>,
    faults: Arc<KernelFaults>,
    approval_ttl_ms: u64,
    pending: BTreeMap<IntentId, PendingApproval>,
    dsc_streak: u32,
    last_now: UnixMillis,
    done_tx: mpsc::Sender<Completion>,
    logged_tokens: std::collections::BTreeSet<[u8; 32]>,
    /// Repeated denies counted instead of logged one by one.
    denies: DenyWindows,
    /// When the sequencer next looks for stage-3 agents past their window.
    next_elimination_sweep_ms: u64,
    /// How far the wall clock was from the kernel's clock at the last check
    /// (time integrity, CT-IMM-17), and when that check was.
    wall_offset_ms: i64,
    wall_checked_ms: u64,
}

fn explain(decision: &Decision, code: DenyCode) -> String {
    let detail = decision.checks().iter().find_map(|c| match &c.outcome {
        Outcome::Deny { code: c_code, detail } if *c_code == code => Some(detail.clone()),
        Outcome::Deny { .. } | Outcome::Pass | Outcome::NotApplicable { .. } | Outcome::Escalate { .. } => None,
    });
    match detail {
        Some(d) => format!("{}: {d}", code.explain()),
        None => code.explain().to_owned(),
    }
}

fn denied(intent: IntentId, code: &'static str, explanation: impl Into<String>, lsn: Option<Lsn>) -> Reply {
    Reply::Denied { intent, code, explanation: explanation.into(), decision_lsn: lsn }
}

impl Sequencer {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut urgent_rx: mpsc::Receiver<Command>,
        mut done_rx: mpsc::Receiver<Completion>,
        interval: Duration,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Every turn is a pet: a busy sequencer is not a stalled one.
            self.pet();
            tokio::select! {
                biased;
                Some(urgent) = urgent_rx.recv() => self.on_command(urgent),
                Some(done) = done_rx.recv() => self.on_completion(done),
                command = rx.recv() => match command {
                    Some(command) => self.on_commands(command, &mut rx),
                    None => break,
                },
                _ = tick.tick() => {
                    // Every copy of the log failed: commit freeze, then the
                    // emergency shutdown (CT-WAL-07).
                    if self.shared.wal.frozen() && !matches!(self.shared.mode(), Mode::Emergency { .. }) {
                        self.shared.freeze("the write-ahead log reports commit freeze");
                        let why = self.shared.wal.health().events.last().map_or_else(
                            || "no copy of the log can make a record durable".to_owned(),
                            |e| format!("{e:?}"),
                        );
                        let trigger = crate::ecs::EcsTrigger::WalFailed { why };
                        if let Some((id, at_ms)) = self.shared.halt(&trigger) {
                            self.on_emergency(trigger, id, at_ms, None);
                        }
                    }
                    self.sync_health();
                    let now = self.now();
                    self.check_time(now);
                    self.sync_conservative();
                    self.sweep(now);
                    if now.0 >= self.next_elimination_sweep_ms {
                        self.next_elimination_sweep_ms = now.0.saturating_add(cascade::ELIMINATION_SWEEP_MS);
                        self.sweep_eliminations(now);
                    }
                    let due = self.denies.due(now);
                    self.log_denies(&due);
                }
            }
        }
        self.close_deny_windows();
        self.shared.stopped.store(true, Ordering::SeqCst);
    }

    /// Closes every open deny window and logs its record; returns the denies counted.
    fn close_deny_windows(&mut self) -> u64 {
        let open = self.denies.drain();
        self.log_denies(&open);
        open.iter().map(|r| r.count).fold(0u64, u64::saturating_add)
    }

    /// Logs closed deny windows (best effort: in commit freeze nothing is logged).
    fn log_denies(&self, records: &[DeniesRecord]) {
        for record in records {
            if let Err(e) = self.log(KIND_DENIES, record) {
                tracing::warn!(error = %e, agent = %record.agent, count = record.count, "aggregated denies not logged");
            }
        }
    }

    fn pet(&self) {
        if !self.faults.stop_heartbeat.load(Ordering::SeqCst) {
            self.shared.watch.pet_sequencer();
        }
    }

    /// Conservative mode (spec §38.6) follows the observation window of a
    /// safe restart after an emergency shutdown: the Commit Layer's and the
    /// evaluator's breakers start their cooldowns doubled while it lasts.
    fn sync_conservative(&mut self) {
        let on = self.shared.conservative();
        if on != self.conservative {
            self.conservative = on;
            self.commit.set_conservative(on);
            if let Some(seat) = &self.shared.evaluator {
                seat.set_conservative(on);
            }
            tracing::info!(on, "conservative mode: breaker cooldowns doubled while observing");
        }
    }

    /// Logs the health report when it differs from the one the DSC holds, and
    /// hands it to the DSC: every decision after is made (and replayed) under it.
    fn sync_health(&mut self) {
        let health = self.shared.health();
        if health == *self.state.dsc.health() {
            return;
        }
        let now = self.now();
        let record = HealthRecord { v: RECORD_VERSION, health, at_ms: now.0 };
        let applied = match self.log(KIND_HEALTH, &record) {
            Ok(_) => self.state.apply_delta(&DscState::report_health(health)),
            Err(e) => {
                tracing::error!(error = %e, "health report not logged");
                false
            }
        };
        if applied {
            tracing::info!(?health, "kernel health report changed");
        } else {
            // Deciding under a report the kernel knows is stale would be an
            // allow the rules never saw: stop committing instead.
            self.shared.transition(
                Mode::CommitFreeze { why: "a changed health report could not be logged".into() },
                "health-report-unlogged",
            );
        }
    }

    /// What the health report the DSC holds refuses now (the halves of the
    /// Mandatory Rules that read it), for a request that runs without a new
    /// decision: a granted approval.
    fn health_refusal(&self, effect: bool) -> Option<(&'static str, String)> {
        if self.shared.watch.lockdown() {
            return Some((CODE_BOOT_LOCKDOWN, "boot lockdown".into()));
        }
        health_refusal_of(self.state.dsc.health(), self.shared.config_hash, effect)
    }

    fn now(&mut self) -> UnixMillis {
        self.last_now = self.last_now.max(self.shared.clock.now());
        self.last_now
    }

    fn publish_pending(&self) {
        self.shared.pending_approvals.store(self.pending.len(), Ordering::SeqCst);
    }

    /// Handles `first` and, while they are submissions, whatever else is
    /// already queued (up to [`DECISION_BATCH_MAX`] records and a byte bound):
    /// their decision records share one WAL sync.
    fn on_commands(&mut self, first: Command, rx: &mut mpsc::Receiver<Command>) {
        self.sync_health();
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        // Counts refused submissions too, so a flood of them cannot keep the
        // sequencer here and starve completions and the heartbeat.
        let mut taken = 0usize;
        let mut next = Some(first);
        while let Some(command) = next.take() {
            // Each command may cost a sync (a refusal's record): pet for each.
            self.pet();
            taken = taken.saturating_add(1);
            match command {
                Command::Submit { intent, token, reply } => {
                    if let Some(staged) = self.stage(*intent, &token, reply) {
                        bytes = bytes.saturating_add(staged.payload.len());
                        batch.push(staged);
                    }
                    let room =
                        taken < DECISION_BATCH_MAX && bytes.saturating_add(PAYLOAD_BYTES_MAX) <= APPEND_QUEUE_BYTES_MAX;
                    if room {
                        next = rx.try_recv().ok();
                    }
                }
                other => {
                    self.flush(std::mem::take(&mut batch));
                    self.on_command(other);
                }
            }
        }
        self.flush(batch);
    }

    fn on_command(&mut self, command: Command) {
        self.pet();
        let Some(command) = self.unless_shut_down(command) else { return };
        match command {
            Command::Submit { intent, token, reply } => {
                let staged = self.stage(*intent, &token, reply);
                self.flush(staged.into_iter().collect());
            }
            Command::Approve { id, approval, reply } => self.on_approve(id, &approval, reply),
            Command::Deny { id, reason, reply } => {
                let _ = reply.send(self.on_deny(id, &reason));
            }
            Command::Approvals { reply } => {
                let now = self.now();
                self.sweep(now);
                let _ = reply.send(self.pending.values().map(|p| p.packet.clone()).collect());
            }
            Command::Token { event, reply } => {
                let _ = reply.send(self.on_token(&event));
            }
            Command::Refuse { intent, code, why, reply } => {
                let now = self.now();
                let _ = reply.send(self.refuse(&intent, code, &why, now));
            }
            Command::CloseDenyWindows { reply } => {
                let _ = reply.send(self.close_deny_windows());
            }
            Command::Quarantine { reply } => {
                let _ = reply.send(self.quarantine_views());
            }
            Command::Proposals { reply } => {
                let _ = reply.send((self.proposals(), self.blocked()));
            }
            Command::ApprovePrefilter { approval, reply } => {
                let _ = reply.send(self.on_approve_prefilter(&approval));
            }
            Command::Release { agent, reason, reply } => {
                let _ = reply.send(self.on_release(&agent, reason));
            }
            Command::Apoptosis { agent, reason, reply } => {
                let _ = reply.send(self.on_apoptosis(&agent, reason));
            }
            Command::Advance { agent, reason, approval, reply } => {
                let _ = reply.send(self.on_advance(&agent, reason, approval.as_deref()));
            }
            Command::Register { agent, ring, class, reason, reply } => {
                let _ = reply.send(self.on_register(&agent, ring, class, reason));
            }
            Command::Demote { agent, reason, reply } => {
                let _ = reply.send(self.on_demote(&agent, reason));
            }
            Command::Agents { reply } => {
                let _ = reply.send(self.agents_view());
            }
            Command::Fever { reply } => {
                let _ = reply.send(self.fever_view());
            }
            Command::EndFever { reason, reply } => {
                let _ = reply.send(self.on_end_fever(reason));
            }
            Command::Emergency { trigger, id, at_ms, reply } => self.on_emergency(trigger, id, at_ms, reply),
            Command::Report { reporter, suspect, class, evidence, reply } => {
                let _ = reply.send(self.on_report(&reporter, &suspect, class, evidence));
            }
            Command::Verify { token, reply } => {
                let now = self.now();
                let text = token.trim();
                let verified = if text.len() > TOKEN_TEXT_MAX {
                    Err(TokenError::UnknownToken(format!("over {TOKEN_TEXT_MAX} bytes")))
                } else {
                    self.verify_text(text, now)
                };
                let _ = reply.send(verified.map(|v| v.claims().clone()));
            }
        }
    }

    /// In SAFE-HOLD (an emergency shutdown) nothing widens or moves on: token
    /// issuance, releases, registrations, the end of a fever, pre-filter
    /// approvals and agents' reports are refused `KERNEL-ECS` (the state is
    /// evidence). What only restricts (a revocation, a demotion, an
    /// elimination, an agent's apoptosis) and what only reads still runs.
    /// Returns the command when it may run.
    fn unless_shut_down(&self, command: Command) -> Option<Command> {
        let Mode::Emergency { why } = self.shared.mode() else { return Some(command) };
        let refused = || KernelError::Refused { code: crate::ecs::CODE_ECS, why: why.clone() };
        match command {
            Command::Token { event, reply } if matches!(*event, TokenEvent::Issued(_)) => {
                let _ = reply.send(Err(refused()));
            }
            Command::ApprovePrefilter { reply, .. }
            | Command::Release { reply, .. }
            | Command::EndFever { reply, .. }
            | Command::Report { reply, .. } => {
                let _ = reply.send(Err(refused()));
            }
            Command::Register { reply, .. } => {
                let _ = reply.send(Err(refused()));
            }
            other => return Some(other),
        }
        None
    }

    /// Appends a record. A record over the WAL's size bounds is refused on
    /// its own (`KERNEL-RECORD-TOO-LARGE`); any other failure freezes commits.
    fn log<T: Serialize>(&self, kind: RecordKind, record: &T) -> Result<Lsn, KernelError> {
        let payload = records::encode(record).map_err(KernelError::RecordTooLarge)?;
        self.shared.wal.append(kind, &payload).map(|l| l.lsn()).map_err(|e| self.wal_failed(&e))
    }

    /// Maps a WAL error to the kernel's answer, freezing on a storage failure.
    fn wal_failed(&self, e: &WalError) -> KernelError {
        let why = format!("{e} ({})", e.code());
        match e {
            WalError::TooLarge { .. } | WalError::Limit { .. } => KernelError::RecordTooLarge(why),
            _ => {
                self.shared.freeze(&why);
                KernelError::Freeze(why)
            }
        }
    }

    fn refuse(&mut self, intent: &Intent, code: &'static str, why: &str, now: UnixMillis) -> Reply {
        // A repeat within its window is counted, not logged again.
        if self.denies.absorb(&intent.agent, Source::Refusal, code, now).is_some() {
            return denied(intent.id, code, why, None);
        }
        let record = RefusedRecord {
            v: RECORD_VERSION,
            intent: intent.id,
            agent: intent.agent.clone(),
            action: intent.action.clone(),
            code: code.to_owned(),
            why: why.to_owned(),
            at_ms: now.0,
        };
        // Best effort: in commit freeze the refusal itself cannot be logged.
        let lsn = append(&self.shared.wal, KIND_REFUSED, &record).ok();
        if let Some(closed) = self.denies.opened(&intent.agent, Source::Refusal, code, lsn, now) {
            self.log_denies(&[closed]);
        }
        denied(intent.id, code, why, None)
    }

    fn class_of(&self, intent: &Intent) -> EffectClass {
        self.commit.classify(intent).max(intent.effect)
    }

    /// Degraded mode 1 (§38.8, CT-DEG-23): over 85 % memory, ring-3 agents
    /// (the least trusted, and every agent nobody registered) are paused;
    /// over 95 %, every agent's request waits.
    fn capacity_refusal(&self, intent: &Intent) -> Option<String> {
        match self.shared.watch.capacity() {
            crate::posture::Capacity::Normal => None,
            crate::posture::Capacity::Reduced => {
                let ring = self.state.dsc.agent_usage(&intent.agent).ring_or_untrusted();
                (ring == maos_model::Ring::Untrusted).then(|| {
                    "memory over 85 %: ring-3 agents are paused until it is under 75 % (degraded mode 1)".to_owned()
                })
            }
            crate::posture::Capacity::Critical => {
                Some("memory over 95 %: every agent request is refused until it is under 95 %".to_owned())
            }
        }
    }

    fn mode_refusal(&self) -> Option<(&'static str, String)> {
        if self.shared.wal.frozen() {
            self.shared.freeze("the write-ahead log reports commit freeze");
        }
        let mode = self.shared.mode();
        mode.effect_refusal().map(|code| (code, format!("effects are refused: kernel is in {mode}")))
    }

    /// Sanitizes, gates, verifies, decides and applies the delta in memory;
    /// the decision record is appended by [`Self::flush`] with the rest of the
    /// batch before anything acts on it. Returns `None` when already answered.
    fn stage(&mut self, intent: Intent, token_text: &str, reply: oneshot::Sender<Reply>) -> Option<Staged> {
        let now = self.now();
        let mut intent = intent;
        if let Err((code, why)) = self.derive(&mut intent) {
            let _ = reply.send(self.refuse(&intent, code, &why, now));
            return None;
        }
        if self.shared.watch.lockdown() {
            let why = format!("boot lockdown: the DSC has not yet sent {BOOT_HEARTBEATS} valid heartbeats");
            let _ = reply.send(self.refuse(&intent, CODE_BOOT_LOCKDOWN, &why, now));
            return None;
        }
        if let Some(why) = self.capacity_refusal(&intent) {
            let _ = reply.send(self.refuse(&intent, CODE_MEMORY, &why, now));
            return None;
        }
        let class = self.class_of(&intent);
        let refusal = self.mode_refusal();
        // In commit freeze nothing can be recorded, so nothing is decided
        // (observations included); in the other modes observations continue.
        let frozen = self.shared.mode().refuses_everything();
        if (class.is_effect() || frozen)
            && let Some((code, why)) = refusal
        {
            let _ = reply.send(self.refuse(&intent, code, &why, now));
            return None;
        }
        let text = token_text.trim();
        if text.len() > TOKEN_TEXT_MAX {
            let why = format!("the presented token is over {TOKEN_TEXT_MAX} bytes");
            let _ = reply.send(self.refuse(&intent, CODE_TOKEN_TOO_LARGE, &why, now));
            return None;
        }
        let verified = self.verify_text(text, now);
        let faults = if self.faults.fail_dsc.load(Ordering::SeqCst) {
            Faults { fail_check: Some(CheckId::Token), ..Faults::NONE }
        } else {
            Faults::NONE
        };
        let decision = decide_injecting_faults(&self.state.dsc, &intent, verified.as_ref(), now, faults);
        self.track_dsc_health(&decision);
        // A repeat of a deny logged in full in this window: counted, and its
        // delta dropped (the fold never sees it either).
        if let Verdict::Deny { code } = decision.verdict()
            && !immune::signals(&decision)
            && let Some(first) = self.denies.absorb(&intent.agent, Source::Decision(&intent.action), code.as_str(), now)
        {
            let _ = reply.send(denied(intent.id, code.as_str(), explain(&decision, *code), Some(first)));
            return None;
        }
        let token_sha3 = (!text.is_empty()).then(|| self.cache.text_sha3(text));
        // INVARIANT: a text is marked logged only with the record that holds
        // it; if that batch fails the kernel freezes, so no later record can
        // refer to a text that is not in the log.
        let log_text = token_sha3.is_some_and(|h| {
            if self.logged_tokens.len() >= LOGGED_TOKENS_MAX {
                self.logged_tokens.clear();
            }
            self.logged_tokens.insert(h.0)
        });
        let record = DecisionRecord {
            v: RECORD_VERSION,
            intent: intent.clone(),
            token: log_text.then(|| text.to_owned()),
            token_sha3: token_sha3.map(|h| h.to_hex()),
            token_error: verified.as_ref().err().map(|e| e.code().to_owned()),
            now_ms: now.0,
            verdict: decision.verdict().clone(),
            deny_code: decision.verdict().deny_code().map(|c| c.as_str().to_owned()),
            checks: serde_json::to_value(decision.checks()).unwrap_or(serde_json::Value::Null),
            config_hash: records::hex32(&decision.config_hash()),
            decision_sha3: maos_crypto::sha3_256(&decision.canonical_bytes()).to_hex(),
            delta: decision.delta().ops.clone(),
        };
        let payload = match records::encode(&record) {
            Ok(p) if p.len() <= PAYLOAD_BYTES_MAX => p,
            Ok(_) | Err(_) => {
                // The text did not reach the log after all: log it next time.
                if let (true, Some(h)) = (log_text, token_sha3) {
                    self.logged_tokens.remove(&h.0);
                }
                let why = format!("the decision record is over {PAYLOAD_BYTES_MAX} bytes");
                let _ = reply.send(self.refuse(&intent, CODE_RECORD_TOO_LARGE, &why, now));
                return None;
            }
        };
        // INVARIANT: nothing acts on this delta before the batch holding its
        // record is durable; if the batch fails the kernel freezes (sticky),
        // so an unlogged delta never influences an allowed effect.
        let applied = self.state.apply_delta(decision.delta());
        let off_list = cascade::domain_off_list(&intent, &decision, verified.as_ref().ok());
        let token = verified.as_ref().ok().map(|t| t.claims().id);
        Some(Staged { intent, decision, off_list, token, class, payload, applied, now, reply })
    }

    /// Stage 1, sanitize (design.md "Facts from descriptors, never from the
    /// agent"): the bounds, then every decision attribute — effect, resources,
    /// sink level, labels read, cost, integrity — from the action's descriptor
    /// and the arguments, and for an effect the label it carries: the session's
    /// context (kernel state). What the submitter put in those fields is
    /// overwritten. A refusal names its code and is logged by the caller.
    fn derive(&self, intent: &mut Intent) -> Result<(), (&'static str, String)> {
        // What the submitter declared is neither checked nor kept.
        intent.resources.clear();
        intent.reads.clear();
        intent.sensitive_args.clear();
        intent.validate().map_err(|e| (e.code(), e.to_string()))?;
        self.commit.describe(intent).map_err(|e| (e.code(), e.to_string()))?.apply(intent);
        if intent.effect.is_effect()
            && let Some(session) = self.state.dsc.session(&intent.agent)
        {
            let carried = maos_model::ReadLabel { level: session.level, untrusted: session.untrusted };
            if carried != maos_model::ReadLabel::BOTTOM {
                intent.reads.push(carried);
            }
        }
        intent.validate().map_err(|e| (e.code(), e.to_string()))
    }

    /// Verifies a presented token text (empty: none presented) against the
    /// trusted keys and the revocations in the kernel's state.
    fn verify_text(&mut self, text: &str, now: UnixMillis) -> Result<VerifiedToken, TokenError> {
        if text.is_empty() {
            return Err(TokenError::UnknownToken("none presented".into()));
        }
        let token = self.cache.verify(text, &self.keys, now, self.state.registry.revocations())?;
        // A valid signature is not enough: the kernel accepts only tokens it
        // logged issuing (a copy of a rotated-out key mints nothing it will take).
        self.state.registry.check_logged(&token)?;
        Ok(token)
    }

    /// Appends the batch's decision records in one commit group, then acts on each.
    fn flush(&mut self, batch: Vec<Staged>) {
        self.pet();
        if batch.is_empty() {
            return;
        }
        let records: Vec<(RecordKind, &[u8])> = batch.iter().map(|s| (KIND_DECISION, s.payload.as_slice())).collect();
        let result = self.shared.wal.append_batch(&records);
        drop(records);
        match result {
            Ok(logged) if logged.len() == batch.len() => {
                for (staged, logged) in batch.into_iter().zip(logged) {
                    self.act(staged, logged.lsn());
                }
            }
            Ok(_) => {
                let why = "the log acknowledged a different number of records";
                self.shared.freeze(why);
                for staged in batch {
                    let _ = staged.reply.send(denied(staged.intent.id, CODE_FREEZE, why, None));
                }
            }
            Err(e) => {
                // Per-record sizes and the batch bounds were checked when
                // staging, so any error here is a storage failure.
                let why = format!("{e} ({})", e.code());
                self.shared.freeze(&why);
                for staged in batch {
                    let _ = staged.reply.send(denied(staged.intent.id, CODE_FREEZE, why.clone(), None));
                }
            }
        }
    }

    fn act(&mut self, staged: Staged, lsn: Lsn) {
        let Staged { intent, decision, off_list, token, class, applied, now, reply, .. } = staged;
        if !applied {
            let _ = reply.send(denied(intent.id, CODE_STATE_LIMIT, "a kernel state bound was reached", Some(lsn)));
            return;
        }
        // An earlier request of the same batch eliminated the agent (Fast
        // Apoptosis) and revoked this token: what was decided before that
        // does not run.
        let revoked_since = token.is_some_and(|id| self.state.registry.get(&id).is_some_and(|r| r.revoked));
        if *decision.verdict() == Verdict::Allow {
            // Before the guard below, as the fold does for every logged allow
            // (the safe side: a refused one is marked with the rest).
            self.state.activity.record(&intent, lsn.0, now.0);
        }
        if decision.verdict().deny_code().is_none() && revoked_since {
            let why = "the agent was eliminated (quarantine stage 4) before this request could run; a fresh token serves its replacement";
            let _ = reply.send(denied(intent.id, CODE_ELIMINATED, why, Some(lsn)));
            return;
        }
        match decision.verdict().clone() {
            Verdict::Allow => {
                // A fingerprint's signal or pause can come with an allow (the
                // request was decided on the state before its own sample):
                // if the stage it reached refuses the request, it does not
                // run; stage 3's outputs are marked as always.
                let paused = self.refused_by_own_sample(&intent, &decision, now);
                if self.entered_stage_3(&intent.agent, &decision, now) {
                    self.mark_unverified(&intent.agent, now);
                }
                if let Some(why) = paused {
                    let _ = reply.send(denied(intent.id, CODE_PAUSED, why, Some(lsn)));
                    return;
                }
                self.on_allow(intent, &decision, class, lsn, reply);
            }
            Verdict::Deny { code } => {
                if let Some(signal) = signal_code(&intent.agent, &decision.delta().ops) {
                    self.state.activity.signal(&intent, signal, lsn.0, now.0);
                }
                let mut why = explain(&decision, code);
                if let Some(note) = self.immune_note(&intent.agent, &decision, now) {
                    why.push_str(&note);
                }
                let _ = reply.send(denied(intent.id, code.as_str(), why, Some(lsn)));
                let source = Source::Decision(&intent.action);
                if let Some(closed) = self.denies.opened(&intent.agent, source, code.as_str(), Some(lsn), now) {
                    self.log_denies(&[closed]);
                }
                if !revoked_since {
                    self.after_deny(&intent, &decision, lsn, now, off_list.as_deref());
                }
            }
            Verdict::Escalate { level, reason } => {
                if self.entered_stage_3(&intent.agent, &decision, now) {
                    self.mark_unverified(&intent.agent, now);
                }
                if let Some(why) = self.refused_by_own_sample(&intent, &decision, now) {
                    let _ = reply.send(denied(intent.id, CODE_PAUSED, why, Some(lsn)));
                    return;
                }
                let asked = Asked { level, reason: &reason, by_evaluator: false };
                let answer = self.escalate(intent, decision, &asked, class, lsn, now);
                let _ = reply.send(answer);
            }
        }
    }

    fn track_dsc_health(&mut self, decision: &Decision) {
        let internal =
            decision.checks().iter().any(|c| matches!(&c.outcome, Outcome::Deny { code: DenyCode::Internal, .. }));
        if internal {
            self.dsc_streak = self.dsc_streak.saturating_add(1);
            if self.dsc_streak >= DSC_INTERNAL_STREAK_MAX {
                self.shared.transition(
                    Mode::ThinkDontCommit { why: format!("{} consecutive DSC internal errors", self.dsc_streak) },
                    "dsc-internal-errors",
                );
            }
        } else {
            self.dsc_streak = 0;
        }
    }

    fn on_allow(
        &self,
        intent: Intent,
        decision: &Decision,
        class: EffectClass,
        lsn: Lsn,
        reply: oneshot::Sender<Reply>,
    ) {
        let id = intent.id;
        if class.is_effect()
            && let Some((code, why)) = self.mode_refusal()
        {
            let _ = reply.send(denied(id, code, why, Some(lsn)));
            return;
        }
        let authorized = match Authorized::new(intent, decision) {
            Ok(a) => a,
            Err(e) => {
                let _ = reply.send(denied(id, e.code(), e.to_string(), Some(lsn)));
                return;
            }
        };
        // The semantic evaluator may take an allowed effect away, or send it
        // to a human, never add one.
        let evaluate = class.is_effect().then(|| Box::new(decision.clone()));
        self.run_commit(authorized, Some(lsn), ReplyTo::Agent(reply), evaluate);
    }

    /// Stage 1 here (durable intent record), stages 2–7 on a blocking thread.
    /// With `evaluate` (the allowed decision), the semantic evaluator is asked
    /// first: a deny refuses it, an escalation hands it back to the sequencer
    /// as an approval packet for the commander.
    fn run_commit(
        &self,
        authorized: Authorized,
        decision_lsn: Option<Lsn>,
        to: ReplyTo,
        evaluate: Option<Box<Decision>>,
    ) {
        let id = authorized.id();
        let intent = authorized.intent().clone();
        let commit = self.commit.clone();
        let shared = self.shared.clone();
        let done_tx = self.done_tx.clone();
        let now = self.last_now;
        // Stage 1 (the durable intent record) runs on the blocking thread too,
        // so concurrent commits share one WAL sync (group commit) and the
        // sequencer only waits for its own decision records.
        tokio::spawn(async move {
            let mut now = now;
            if let (Some(decision), Some(lsn)) = (evaluate, decision_lsn) {
                match evaluator::check(&shared, &intent, lsn.0).await {
                    Err((code, why)) if code == evaluator::CODE_SSE_ESCALATE => {
                        let done = Completion::Escalated { intent: Box::new(intent), decision, lsn, why, to };
                        // If the sequencer is gone the agent gets no answer: fail-safe.
                        let _ = done_tx.send(done).await;
                        return;
                    }
                    Err((code, why)) => {
                        to.send(denied(id, code, why, decision_lsn));
                        return;
                    }
                    Ok(()) => {}
                }
                // The answer took time: what stops effects now stops this one.
                let refusal = shared
                    .mode()
                    .effect_refusal()
                    .map(|code| (code, format!("effects are refused: kernel is in {}", shared.mode())))
                    .or_else(|| health_refusal_of(&shared.health(), shared.config_hash, true));
                if let Some((code, why)) = refusal {
                    to.send(denied(id, code, why, decision_lsn));
                    return;
                }
                now = now.max(shared.clock.now());
            }
            let result = tokio::task::spawn_blocking(move || match commit.log_intent(authorized) {
                Ok(logged) => commit.commit(logged, now).map_err(|e| (true, e)),
                Err(e) => Err((false, e)),
            })
            .await;
            let reply = match result {
                Ok(Ok(committed)) => {
                    let recorded = committed.output.label != OutputLabel::Trusted;
                    let reply = Reply::Done { intent: id, decision_lsn, committed, taint_lsn: None };
                    if recorded {
                        let done = Completion::Tainted { intent: Box::new(intent), reply, to };
                        // If the sequencer is gone the agent gets no answer: fail-safe.
                        let _ = done_tx.send(done).await;
                        return;
                    }
                    reply
                }
                Ok(Err((logged, error))) => {
                    if matches!(error.reason, FailReason::Wal(_)) {
                        shared.freeze(&error.to_string());
                    }
                    if logged || matches!(error.reason, FailReason::Wal(_)) {
                        // A failed WAL write at stage 1 may still have reached the
                        // disk: then crash recovery runs the (allowed) intent at the
                        // next start. The agent is told the outcome is unsettled,
                        // not that it was refused.
                        Reply::Failed { intent: id, error }
                    } else {
                        // Refused at stage 1 before the log: nothing was logged or ran.
                        denied(id, error.code(), error.to_string(), decision_lsn)
                    }
                }
                Err(e) => denied(id, "KERNEL-COMMIT-TASK", format!("commit task failed: {e}"), decision_lsn),
            };
            to.send(reply);
        });
    }

    fn on_completion(&mut self, done: Completion) {
        match done {
            Completion::Escalated { intent, decision, lsn, why, to } => {
                let now = self.now();
                let id = intent.id;
                // What stops effects now stops a packet for one too.
                if let Some((code, why)) = self.mode_refusal() {
                    to.send(denied(id, code, why, Some(lsn)));
                    return;
                }
                let class = self.class_of(&intent);
                // `why` is "the semantic evaluator: <its reason>".
                let reason = format!("asked for a human by {why}");
                // An irreversible action is at least L2 (HACF): a human approves before it runs.
                let asked = Asked { level: HacfLevel::L2, reason: &reason, by_evaluator: true };
                let reply = self.escalate(*intent, *decision, &asked, class, lsn, now);
                to.send(reply);
            }
            Completion::Tainted { intent, reply, to } => {
                let now = self.now();
                let Reply::Done { intent: id, decision_lsn, committed, .. } = reply else {
                    to.send(reply);
                    return;
                };
                let text = String::from_utf8_lossy(&committed.output.body);
                // A longer text marks the session overflowed in the DSC
                // (provenance then fails closed) without logging megabytes.
                let cut = text.char_indices().map(|(i, _)| i).find(|i| *i > FRAGMENT_BYTES_MAX);
                let text = cut.and_then(|i| text.get(..i)).unwrap_or(&text);
                let level = intent.read_level().unwrap_or(maos_model::IfcLevel::Public);
                // Scanned once, into the delta: a hit marks the session injected,
                // and the `kernel.read` record names the pattern. A catalogue was
                // scanned by its effector (a hit made it untrusted).
                let delta = if committed.output.label == OutputLabel::Catalogue {
                    maos_dsc::DscState::record_catalogue(&intent.agent, level, text)
                } else {
                    self.state.dsc.record_untrusted_output(&intent.agent, level, text)
                };
                if let Some(maos_dsc::DeltaOp::Read { injection: Some(pattern), .. }) = delta.ops.first() {
                    tracing::warn!(agent = %intent.agent, %pattern, "untrusted output carries an injection; session marked");
                }
                let record = ReadRecord { v: RECORD_VERSION, intent: id, delta: delta.ops.clone(), at_ms: now.0 };
                match self.log(KIND_READ, &record) {
                    Ok(lsn) => {
                        let taint_lsn = self.state.apply_delta(&delta).then_some(lsn);
                        to.send(Reply::Done { intent: id, decision_lsn, committed, taint_lsn });
                    }
                    Err(e) => {
                        // The label could not be raised durably: withhold the
                        // untrusted output rather than hand it over untracked.
                        to.send(denied(id, e.code(), e.to_string(), decision_lsn));
                    }
                }
            }
        }
    }

    fn escalate(
        &mut self,
        intent: Intent,
        decision: Decision,
        asked: &Asked<'_>,
        class: EffectClass,
        lsn: Lsn,
        now: UnixMillis,
    ) -> Reply {
        let Asked { level, reason, by_evaluator } = *asked;
        let id = intent.id;
        if self.pending.len() >= PENDING_APPROVALS_MAX || self.pending.contains_key(&id) {
            return denied(id, CODE_APPROVALS_FULL, "no room for another approval packet", Some(lsn));
        }
        let open_for_agent = self.pending.values().filter(|p| p.packet.agent == intent.agent).count();
        if open_for_agent >= PENDING_APPROVALS_PER_AGENT_MAX {
            return denied(
                id,
                CODE_APPROVALS_PER_AGENT,
                format!(
                    "agent `{}` already has {PENDING_APPROVALS_PER_AGENT_MAX} approvals waiting for the commander",
                    intent.agent
                ),
                Some(lsn),
            );
        }
        let summary = ActionSummary::of(&intent);
        let changed =
            summary.changes_since(self.state.last_granted.get(&(intent.agent.clone(), intent.action.clone())));
        let expires = now.saturating_add_ms(self.approval_ttl_ms);
        let packet = ApprovalPacket {
            v: RECORD_VERSION,
            id,
            agent: intent.agent.clone(),
            action: intent.action.clone(),
            intent: intent.clone(),
            level,
            risk: class,
            summary,
            why: reason.to_owned(),
            changed,
            decision_sha3: maos_crypto::sha3_256(&decision.canonical_bytes()).to_hex(),
            created_ms: now.0,
            expires_ms: expires.0,
        };
        if let Err(e) = self.log(KIND_APPROVAL_PACKET, &packet) {
            return denied(id, e.code(), e.to_string(), Some(lsn));
        }
        self.pending.insert(id, PendingApproval { packet, intent, decision, by_evaluator });
        self.publish_pending();
        Reply::Pending { intent: id, approval: id, level, expires, decision_lsn: lsn }
    }

    /// Closes a packet with `outcome`, logging it.
    fn close(
        &mut self,
        id: IntentId,
        outcome: ApprovalOutcome,
        signed_by: Option<String>,
        reason: &str,
    ) -> Result<PendingApproval, KernelError> {
        let now = self.now();
        let pending = self.pending.remove(&id).ok_or(KernelError::UnknownApproval(id))?;
        self.publish_pending();
        let record = outcome_record(&pending.packet, outcome, signed_by, reason, now);
        self.log(KIND_APPROVAL_DECISION, &record)?;
        if outcome == ApprovalOutcome::Granted {
            self.state
                .last_granted
                .insert((pending.packet.agent.clone(), pending.packet.action.clone()), pending.packet.summary.clone());
        }
        Ok(pending)
    }

    fn sweep(&mut self, now: UnixMillis) {
        let expired: Vec<IntentId> =
            self.pending.values().filter(|p| now.0 >= p.packet.expires_ms).map(|p| p.packet.id).collect();
        for id in expired {
            let _ = self.close(id, ApprovalOutcome::Expired, None, "no decision before expiry");
        }
    }

    fn on_approve(
        &mut self,
        id: IntentId,
        approval: &SignedApproval,
        reply: oneshot::Sender<Result<Reply, KernelError>>,
    ) {
        let now = self.now();
        if self.pending.get(&id).is_some_and(|p| now.0 >= p.packet.expires_ms) {
            let answer = match self.close(id, ApprovalOutcome::Expired, None, "no decision before expiry") {
                Ok(_) => KernelError::ApprovalExpired(id),
                Err(e) => e,
            };
            let _ = reply.send(Err(answer));
            return;
        }
        self.sweep(now);
        let Some(pending) = self.pending.get(&id) else {
            let _ = reply.send(Err(KernelError::UnknownApproval(id)));
            return;
        };
        let verified = if pending.by_evaluator {
            let level = pending.packet.level;
            Authorized::allowed_and_granted(
                pending.intent.clone(),
                &pending.decision,
                level,
                approval,
                &self.commander,
                now,
            )
        } else {
            Authorized::approved(pending.intent.clone(), &pending.decision, approval, &self.commander, now)
        };
        let authorized = match verified {
            Ok(a) => a,
            Err(e) => {
                let _ = reply.send(Err(KernelError::ApprovalRejected { code: e.code(), why: e.to_string() }));
                return;
            }
        };
        if pending.packet.risk.is_effect()
            && let Some((code, why)) = self.mode_refusal()
        {
            let _ = reply.send(Err(KernelError::Refused { code, why }));
            return;
        }
        // A grant runs under the health the kernel has now, not the one the
        // packet was decided under; the packet stays open for a later grant.
        let effect = pending.packet.risk.is_effect();
        self.sync_health();
        if let Some((code, why)) = self.health_refusal(effect) {
            let _ = reply.send(Err(KernelError::Refused { code, why }));
            return;
        }
        let Some(pending) = self.pending.get(&id) else {
            let _ = reply.send(Err(KernelError::UnknownApproval(id)));
            return;
        };
        // The agent entered quarantine while its packet waited: a grant does
        // not get past what the DSC would refuse now.
        if let Some((code, why)) = self.quarantine_refusal(&pending.intent, now) {
            let answer = match self.close(id, ApprovalOutcome::Denied, None, &format!("{code}: {why}")) {
                Ok(_) => KernelError::Refused { code, why },
                Err(e) => e,
            };
            let _ = reply.send(Err(answer));
            return;
        }
        let signer = self.commander.key_id().to_hex();
        match self.close(id, ApprovalOutcome::Granted, Some(signer), "granted by the commander") {
            Ok(_) => self.run_commit(authorized, None, ReplyTo::Approver(reply), None),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn on_deny(&mut self, id: IntentId, reason: &str) -> Result<(), KernelError> {
        let now = self.now();
        self.sweep(now);
        self.close(id, ApprovalOutcome::Denied, None, reason).map(drop)
    }

    fn on_token(&mut self, event: &TokenEvent) -> Result<Lsn, KernelError> {
        // A token for a ring the agent is not registered in would only be
        // refused by Rule 4 at every use: say so when it is issued (before
        // the registry is copied for the trial below).
        if let TokenEvent::Issued(issued) = event {
            let registered = self.state.dsc.agent_usage(&issued.agent).ring_or_untrusted();
            if issued.ring.code() < registered.code() {
                return Err(KernelError::TokenEvent(format!(
                    "{} is in ring {} (unregistered and demoted agents are ring 3): a ring-{} token would be refused by Mandatory Rule 4; register it first (`maos agent register`)",
                    issued.agent,
                    registered.code(),
                    issued.ring.code()
                )));
            }
        }
        // Check it applies before logging it, so the log never holds an event
        // the fold would reject.
        let mut trial = self.state.registry.clone();
        trial.apply(event).map_err(|e| KernelError::TokenEvent(e.to_string()))?;
        // Rule 7: a child's budget comes out of what its parent has left, spent
        // included (the token crate sees only what earlier children carved).
        if let TokenEvent::Issued(issued) = event
            && let Some(parent) = issued.parent
            && let Some(record) = self.state.registry.get(&parent)
        {
            let usage = self.state.dsc.token_usage(&parent);
            let remaining = record.issued.budget.saturating_sub(usage.spent).saturating_sub(usage.carved);
            if issued.budget > remaining {
                return Err(KernelError::TokenEvent(format!(
                    "budget {} is above the parent's remaining {remaining} ({} of {} spent, {} carved for children)",
                    issued.budget, usage.spent, record.issued.budget, usage.carved
                )));
            }
        }
        let lsn = self.log(records::token_event_kind(event), &JournalEvent::Token(event.clone()))?;
        self.state.apply_token(event).map_err(|e| KernelError::TokenEvent(e.to_string()))?;
        Ok(lsn)
    }
}
