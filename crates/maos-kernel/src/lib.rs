//! The MAOS kernel sequencer: joins the Deterministic Security Core, the
//! write-ahead log and the Commit Layer into one path for every effect
//! (design.md "The pipeline"; spec §5, §6, §13, §14.2, §50).
//!
//! Guarantees:
//! - **One owner.** A single task owns the kernel state (DSC state, token
//!   registry, verify cache, approval packets) and takes requests from a
//!   bounded queue; a full queue is `KERNEL-BUSY`, never unbounded growth.
//! - **Logged before acted.** Every decision is a durable WAL record (kind
//!   `0x0300`) before its delta is applied and before anything executes; an
//!   allowed intent then passes through [`maos_commit::CommitLayer`], whose
//!   effects run concurrently on blocking threads, serialised per resource.
//! - **A WAL error is a deny** (`KERNEL-FREEZE`), never an allow.
//! - **State is a fold over the log.** On start, token events and decision
//!   deltas are replayed in Lsn order, so rate counters, budgets, revocations
//!   and session labels survive a restart; [`replay`] re-runs the DSC over
//!   every logged decision and reports any that differs.
//! - **Fail-safe modes** (Rule 10): recovery hold at start, commit freeze on a
//!   WAL failure, think-but-don't-commit on a DSC error streak; effects are
//!   refused with a stable code, observations continue.
//! - **Observed health** (spec §16, §38): a watchdog thread and a DSC
//!   heartbeat build the health report the Mandatory Rules read; it is logged
//!   before any decision made under it; boot lockdown until three valid DSC
//!   heartbeats; canonical states with every transition logged
//!   ([`posture`], `docs/resilience.md`).
//! - **Approvals** (HACF level 2): an escalation becomes a logged packet that a
//!   commander-signed decision grants; an expired packet denies.
//!
//! ```no_run
//! use maos_kernel::{Kernel, KernelConfig, Reply};
//! # async fn run(commit: std::sync::Arc<maos_commit::CommitLayer>, dsc: std::sync::Arc<maos_dsc::DscConfig>,
//! #   keys: maos_token::KeyRing, commander: maos_crypto::VerifyingKey, intent: maos_model::Intent, token: String)
//! #   -> Result<(), maos_kernel::KernelError> {
//! let (kernel, report) = Kernel::start(KernelConfig::new(commit, dsc, keys, commander)).await?;
//! println!("recovered: {:?}", report.recovery);
//! match kernel.submit(intent, token)?.outcome().await? {
//!     Reply::Done { committed, .. } => println!("done: {}", committed.output.summary),
//!     Reply::Denied { code, explanation, .. } => println!("{code}: {explanation}"),
//!     Reply::Pending { approval, .. } => println!("waiting for approval {approval}"),
//!     Reply::Failed { error, .. } => println!("{}: {error}", error.code()),
//! }
//! println!("{:?}", kernel.status().mode);
//! # Ok(()) }
//! ```
//!
//! Record kinds, payloads, codes and modes: `docs/kernel.md`.

#![forbid(unsafe_code)]

mod activity;
mod denies;
pub mod ecs;
mod error;
mod fold;
mod kernel;
mod mode;
pub mod posture;
pub mod records;
pub mod recovery;
pub mod tsca;

pub use denies::{DENY_WINDOW_MS, DENY_WINDOWS_MAX};
pub use error::KernelError;
pub use fold::{
    Divergence, FoldSummary, KernelSnapshot, REPLAY_DIVERGENCES_MAX, REPLAY_TOKENS_MAX, ReplayReport, replay,
    replay_under, snapshot_sections, spent_by,
};
pub use kernel::{
    AGENTS_LISTED_MAX, APPROVAL_TTL_MS_DEFAULT, AUDIT_SWEEP_EVERY, Advanced, AgentView, AgentsView, BOOT_HEARTBEATS,
    BOOT_LOCKDOWN_WAIT, BeatFault, BeatMonitor, BlockedView, CODE_ADVANCE, CODE_AGENT_REGISTER, CODE_APPROVALS_FULL,
    CODE_APPROVALS_PER_AGENT, CODE_BOOT_LOCKDOWN, CODE_ELIMINATED, CODE_MEMORY, CODE_ONBOARDING_NOT_BUILT, CODE_PAUSED,
    CODE_PREFILTER_APPROVAL, CODE_RECORD_TOO_LARGE, CODE_REPORT_INVALID, CODE_REPORT_RATE, CODE_REPORT_SUSPENDED,
    CODE_SSE_DENY, CODE_SSE_ESCALATE, CODE_SSE_INVALID, CODE_SSE_UNAVAILABLE, CODE_STATE_LIMIT, CODE_SUPERVISE,
    CODE_TOKEN_TOO_LARGE, ChainView, ComponentPet, ComponentView, DECISION_BATCH_MAX, DISK_CLEANUP_PCT,
    DISK_EMERGENCY_PCT, DISK_ESSENTIAL_PCT, DISK_WARN_PCT, DSC_HEARTBEAT_INTERVAL_DEFAULT, DSC_INTERNAL_STREAK_MAX,
    DscBeat, ECS_REPORT_WAIT, ELIMINATION_APPROVAL_TTL_MS_MAX, EVALUATIONS_IN_FLIGHT_MAX, EVALUATOR_REASON_BYTES_MAX,
    EVALUATOR_TIMEOUT_DEFAULT, EcsReport, EcsStatus, EliminationGrant, EvalAnswer, EvalError, EvalRequest, EvalVerdict,
    FORENSIC_DIRS_MAX, FeverView, HEARTBEAT_INTERVAL_DEFAULT, Kernel, KernelConfig, KernelFaults, KernelHandle,
    KernelStatus, LOGGED_TOKENS_MAX, MemoryReader, PENDING_APPROVALS_MAX, PENDING_APPROVALS_PER_AGENT_MAX,
    PREFILTER_APPROVAL_TTL_MS_MAX, PrefilterGrant, PrefilterProposal, QuarantineView, RELEASE_REASON_BYTES_MAX,
    Recovering, Reply, STATE_SAVE_WINDOW_MS, SUBMIT_QUEUE_DEFAULT, SUBMIT_QUEUE_MAX, SemanticEvaluator,
    SignedElimination, SignedPrefilterGrant, SignedTscaApproval, StartReport, Submission, TIME_STEP_ALERT_MS, TscaView,
    UNRESPONSIVE_FLOOR, WAL_WRITER_INTERVAL_DEFAULT, disk_used_pct, forensic_dirs, memory_used_pct, pattern_id,
    read_bounded, verify_ack,
};
pub use mode::{CODE_FREEZE, CODE_RECOVERY_HOLD, CODE_THINK_ONLY, Mode};
pub use records::{ApprovalPacket, redact_payload};
