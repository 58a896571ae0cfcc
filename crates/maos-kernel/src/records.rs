//! Kernel WAL records (kinds `0x0300`–`0x03FF`) and the journal's token events
//! (`0x0110`, `0x0111`) the kernel folds. Payloads are JSON with a fixed field
//! order (no unordered maps); every one carries a version `v`.
//!
//! A decision record holds the presented capability token text so that
//! `replay` can re-verify it; exports must go through [`redact_payload`], which
//! replaces it with its SHA3-256 (style rule 13: never print token bytes).

use crate::mode::Mode;
use maos_dsc::DeltaOp;
use maos_model::{AgentId, EffectClass, HacfLevel, IfcLevel, Intent, IntentId, TokenId, Verdict};
use maos_token::TokenEvent;
use maos_wal::RecordKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Version of every kernel record payload.
pub const RECORD_VERSION: u16 = 1;
/// A DSC decision on one intent (durable before anything executes).
pub const KIND_DECISION: RecordKind = RecordKind(0x0300);
/// A kernel mode transition (Rule 10).
pub const KIND_MODE: RecordKind = RecordKind(0x0301);
/// An observation's output raised the agent's session label (IFC, pipeline stage 5).
pub const KIND_READ: RecordKind = RecordKind(0x0302);
/// An intent refused by the kernel's mode before the DSC ran.
pub const KIND_REFUSED: RecordKind = RecordKind(0x0303);
/// Repeated denies of one agent, action and code in one window, counted
/// instead of logged one by one (`crate::denies`).
pub const KIND_DENIES: RecordKind = RecordKind(0x0304);
/// An operator's immune action on one agent (a quarantine release).
pub const KIND_IMMUNE: RecordKind = RecordKind(0x0305);
/// An agent registered into a ring or demoted to ring 3 ([`AgentRecord`]).
pub const KIND_AGENT: RecordKind = RecordKind(0x0306);
/// The kernel health report the Mandatory Rules read changed ([`HealthRecord`]).
pub const KIND_HEALTH: RecordKind = RecordKind(0x0307);
/// A canonical state transition (spec §38.11, [`StateRecord`]).
pub const KIND_STATE: RecordKind = RecordKind(0x0308);
/// The semantic evaluator's answer about one allowed effect ([`EvaluationRecord`]).
pub const KIND_EVALUATION: RecordKind = RecordKind(0x0309);
/// An emergency controlled shutdown: halted, acknowledged or restarted ([`EcsRecord`]).
pub const KIND_ECS: RecordKind = RecordKind(0x030A);
/// One step of the TSCA's own hash-chained log section ([`TscaRecord`]).
pub const KIND_TSCA: RecordKind = RecordKind(0x030B);
/// An approval packet (HACF level 2+): an escalated intent waits for a human.
pub const KIND_APPROVAL_PACKET: RecordKind = RecordKind(0x0310);
/// The outcome of an approval packet: granted, denied, expired or lapsed.
pub const KIND_APPROVAL_DECISION: RecordKind = RecordKind(0x0311);
/// The journal's token-issued kind (written by the `maos` binary or [`crate::KernelHandle::token_event`]).
pub const KIND_TOKEN_ISSUED: RecordKind = RecordKind(0x0110);
/// The journal's token-revoked kind.
pub const KIND_TOKEN_REVOKED: RecordKind = RecordKind(0x0111);

/// Lowercase hex of 32 bytes.
#[must_use]
pub fn hex32(bytes: &[u8; 32]) -> String {
    maos_crypto::Digest(*bytes).to_hex()
}

/// What replaces the token text in [`redact_payload`] output.
pub const REDACTED: &str = "[redacted]";

/// Kind `0x0300`: one DSC decision. Appended durably before the delta is
/// applied and before anything executes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent as decided.
    pub intent: Intent,
    /// The presented token text, kept so replay can re-verify it: only in the
    /// first decision record with this token since the kernel started (later
    /// ones carry `token_sha3` alone; see `LOGGED_TOKENS_MAX`). A credential:
    /// exports use [`redact_payload`].
    pub token: Option<String>,
    /// SHA3-256 of the presented token text (hex), if any.
    pub token_sha3: Option<String>,
    /// The stable code of the token verification error, if verification failed.
    pub token_error: Option<String>,
    /// The decision time (kernel clock, monotonic), Unix ms.
    pub now_ms: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// The deny code, if denied (also inside `verdict`; here for grep).
    pub deny_code: Option<String>,
    /// The seven check results as the DSC serialized them.
    pub checks: serde_json::Value,
    /// Hex SHA3-256 of the DSC configuration.
    pub config_hash: String,
    /// Hex SHA3-256 of the decision's canonical bytes (approvals bind to it).
    pub decision_sha3: String,
    /// The state delta the kernel applied.
    pub delta: Vec<DeltaOp>,
}

impl fmt::Debug for DecisionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionRecord")
            .field("intent", &self.intent.id)
            .field("token_sha3", &self.token_sha3)
            .field("token_error", &self.token_error)
            .field("now_ms", &self.now_ms)
            .field("verdict", &self.verdict)
            .field("config_hash", &self.config_hash)
            .field("delta", &self.delta)
            .finish_non_exhaustive()
    }
}

/// Kind `0x0301`: a mode transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// What caused it (`start`, `recovery-complete`, `wal-commit-freeze`, …).
    pub trigger: String,
    /// The mode before (`None` at start).
    pub previous: Option<Mode>,
    /// The mode after.
    pub new: Mode,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// Kind `0x0307`: the health report the Mandatory Rules read from now on,
/// built from what the watchdog observed. Logged before any decision made
/// under it, so replay decides under the same report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The report.
    pub health: maos_dsc::KernelHealth,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// Kind `0x0308`: a canonical state transition (spec §38.11, CT-DEG-22).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// What caused it.
    pub trigger: String,
    /// The state before (`None` at start).
    pub previous: Option<crate::posture::CanonicalState>,
    /// The state after.
    pub new: crate::posture::CanonicalState,
    /// Degraded modes active after it.
    pub modes: Vec<crate::posture::DegradedMode>,
    /// Why, one line per cause.
    pub why: Vec<String>,
    /// Whether leaving the new state needs a human.
    pub human_ack: bool,
    /// Hash of the recovery plan or Trusted Decision Packet, where one applies
    /// (none yet: no TSCA plans on one node).
    pub plan_sha3: Option<String>,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// Kind `0x030A`: one step of an emergency controlled shutdown (spec §38.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// What happened.
    #[serde(flatten)]
    pub event: EcsEvent,
}

/// The steps of a shutdown the log records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EcsEvent {
    /// Phases 1 to 3 ran: every request is refused from here on. (A shutdown
    /// whose log failed has no such record: its forensic report is the record.)
    Halted {
        /// `ecs-<at_ms>`.
        id: String,
        /// What started it.
        cause: crate::ecs::EcsTrigger,
        /// Phase 3's class.
        class: crate::ecs::FailureClass,
        /// Approvals that were waiting and are now denied.
        aborted_approvals: u64,
        /// Shutdowns in 24 hours and 7 days, this one included.
        counters: crate::ecs::Counters,
        /// When, Unix ms.
        at_ms: u64,
    },
    /// The commander acknowledged it (found at boot beside its report).
    Acknowledged {
        /// The shutdown.
        id: String,
        /// The commander's key id, hex.
        key_id: String,
        /// The SHA3-256 of the report acknowledged, hex.
        report_sha3: String,
        /// When the boot logged it, Unix ms.
        at_ms: u64,
    },
    /// The first boot after it: observation until `observation_until_ms`.
    Restarted {
        /// The shutdown.
        id: String,
        /// The end of the observation, Unix ms.
        observation_until_ms: u64,
        /// The admission queue during it.
        queue_capacity: usize,
        /// When, Unix ms.
        at_ms: u64,
    },
}

/// Kind `0x030B`: one step of the TSCA (spec §38.7.4). Its records form a
/// chain of their own inside the log: `prev_sha3` is the SHA3-256 of the
/// previous TSCA record's payload, `seq` counts them from 1, so the section
/// can be exported and checked alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TscaRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// 1, 2, 3… over the whole log.
    pub seq: u64,
    /// SHA3-256 of the previous TSCA record's payload, hex (zeros for the first).
    pub prev_sha3: String,
    /// What happened.
    #[serde(flatten)]
    pub event: crate::tsca::TscaEvent,
}

/// Kind `0x0309`: the evaluator's answer about one allowed effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent.
    pub intent: maos_model::IntentId,
    /// Its agent.
    pub agent: maos_model::AgentId,
    /// Its action.
    pub action: String,
    /// `allow`, `deny`, `escalate`, `unavailable` (an error or a timeout) or
    /// `circuit_open` (not asked).
    pub outcome: String,
    /// The refusal code when the effect was refused.
    pub code: Option<String>,
    /// The evaluator's reason, or the error.
    pub reason: String,
    /// How long the answer took, ms.
    pub latency_ms: u64,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// Kind `0x0302`: an observation returned untrusted output; the session label rises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The observation.
    pub intent: IntentId,
    /// The delta applied (a `read` op).
    pub delta: Vec<DeltaOp>,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// Who changed an agent's immune standing outside a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImmuneActor {
    /// The operator (`maos quarantine release`).
    Operator,
    /// The agent itself (apoptosis).
    Agent,
    /// Another agent's report (the record's `reporter`).
    Peer,
    /// The kernel itself: stage 3's marking of outputs, an automatic
    /// elimination in Standard, Fast Apoptosis.
    Kernel,
}

/// Threat patterns the immune memory keeps; the oldest falls out first.
pub const PATTERNS_MAX: usize = 256;
/// How long a threat pattern matches (an address or domain changes hands;
/// the operator can always isolate by hand).
pub const PATTERN_TTL_MS: u64 = 30 * 24 * 60 * 60_000;

/// Who authorized an elimination (spec §37.8.2 stage 4; the audit class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EliminationAuthority {
    /// Standard: the operator's `quarantine advance` (authorization level A).
    Operator,
    /// Hardened and Isolated: the commander's signed approval (HACF L2).
    Commander,
    /// Standard: the kernel, once the state-save window after stage 3 passed
    /// with no decision by the operator (the TSCA's level A, rule-based).
    Automatic,
    /// Standard: one of the three hard violations of spec §37.11.2.
    FastApoptosis,
}

/// One step of the resource reclamation of spec §24.3, as done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReclamationStep {
    /// 1–7 in the spec's order.
    pub step: u8,
    /// The spec's name for it.
    pub name: String,
    /// What was done, or why there was nothing to do.
    pub done: String,
}

/// Stages 4 and 5 of an agent, logged as one record (spec §37.8.2, §24.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elimination {
    /// Who authorized it.
    pub authority: EliminationAuthority,
    /// The commander key that signed the approval (Hardened and Isolated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commander: Option<String>,
    /// For Fast Apoptosis: the hard violation and the decision that showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<HardViolation>,
    /// Every live token of the agent, revoked right after this record (one
    /// `token.revoked` record per root, descendants included; at boot the
    /// kernel revokes any the log does not show revoked yet): the
    /// replacement needs a fresh token.
    pub revoked: Vec<maos_model::TokenId>,
    /// The seven reclamation steps.
    pub reclamation: Vec<ReclamationStep>,
    /// Stage 5's lateral-movement check: the agents that read what the
    /// eliminated agent wrote in the last 30 minutes, now in observation.
    pub contacts: Vec<AgentId>,
    /// The threat pattern this incident writes to the immune memory (spec
    /// §37.8.3), when its signals named a target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<ThreatPattern>,
}

/// A threat pattern (spec §37.8.3): what a confirmed incident looked like,
/// so a later danger signal aimed at the same target skips to the stage the
/// incident ended in. By itself it never denies anything: it only raises the
/// stage of an agent whose own request was already denied as a signal, so an
/// attacker cannot teach it to block the innocent. Its indicators block at
/// check 7 only once the commander signs them (`maos quarantine block`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatPattern {
    /// The attack vector: the deny codes of the agent's signals (or its
    /// hard violation), in order.
    pub vector: Vec<String>,
    /// The detection indicators: the recipients and domains they aimed at.
    pub indicators: Vec<maos_model::Resource>,
    /// The containment protocol: the stages used and for how long.
    pub containment: String,
    /// The root cause as the authority stated it.
    pub root_cause: String,
    /// The stage a match skips to.
    pub stage: u8,
    /// When it was written (logged time); it matches for
    /// [`PATTERN_TTL_MS`] after.
    pub at_ms: u64,
}

/// A hard violation of spec §37.11.2 that qualifies for Fast Apoptosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardViolation {
    /// `a` (a domain not on the token's list) or `c` (check 7's hard block).
    pub condition: String,
    /// The decision record that showed it.
    pub decision_lsn: u64,
    /// Its deny code.
    pub code: String,
    /// The resource or pattern, as evidence.
    pub evidence: String,
}

/// Stage 3's marking (spec §37.8.2): the agent's outputs of the last 30
/// minutes are unverified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unverified {
    /// The window's start, Unix ms (the record's `at_ms` ends it).
    pub since_ms: u64,
    /// The decision records of the agent's allowed effects in the window.
    pub decisions: Vec<u64>,
    /// False when the kernel's activity window did not reach back that far
    /// (a restart, or more activity than it keeps): every effect of the
    /// agent logged in the window is unverified, listed or not.
    pub complete: bool,
}

/// Kind `0x0305`: an operator's release, an agent's apoptosis, or the
/// commander ending a security fever (no agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImmuneRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The agent, if the change is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    /// Who acted.
    pub by: ImmuneActor,
    /// The reporting agent, for a peer report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<AgentId>,
    /// The delta applied (a `release` or `apoptosis` op).
    pub delta: Vec<DeltaOp>,
    /// The stage the agent was in (0–3) and its danger score, as evidence.
    pub stage_before: u8,
    /// Danger score before.
    pub score_before: u32,
    /// The reason given.
    pub reason: String,
    /// When, Unix ms.
    pub at_ms: u64,
    /// Stages 4 and 5, when the record eliminates the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elimination: Option<Box<Elimination>>,
    /// Stage 3's marking of the agent's recent outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverified: Option<Unverified>,
    /// A Time Integrity Alert (no agent, by `kernel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeIntegrity>,
    /// A peer report's weight and why (held, down-weighted, over budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<maos_dsc::reporters::Assessment>,
}

/// A Time Integrity Alert (spec CT-IMM-17): the wall clock stepped against a
/// monotonic reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeIntegrity {
    /// How far the wall clock moved against the monotonic reference since
    /// boot or the last alert, ms (negative: back): smaller steps add up.
    pub step_ms: i64,
    /// How far the wall clock has moved since the kernel started, ms.
    pub wall_offset_ms: i64,
    /// The kernel time of the last check within tolerance (every
    /// heartbeat): the step that crossed it came after; smaller steps before
    /// it add up.
    pub since_ms: u64,
}

/// What a [`AgentRecord`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAction {
    /// `maos agent register`.
    Register,
    /// `maos agent demote` (or a ring-3 registration of a ring-2 agent).
    Demote,
}

/// Kind `0x0306`: the operator registered an agent into a ring or demoted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The agent.
    pub agent: AgentId,
    /// What was done.
    pub action: AgentAction,
    /// The delta applied (a `register_agent` op).
    pub delta: Vec<DeltaOp>,
    /// Root tokens a demotion revokes (each gets its own `token.revoked`
    /// record, descendants included, right after this one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<TokenId>,
    /// The reason given.
    pub reason: String,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// Kind `0x0303`: refused by the kernel's mode (no DSC decision was made).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The intent.
    pub intent: IntentId,
    /// The agent.
    pub agent: AgentId,
    /// The action.
    pub action: String,
    /// Stable code.
    pub code: String,
    /// Why.
    pub why: String,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// Kind `0x0304`: the denies of one agent for one action and code within one
/// window after the first (which is logged in full at `first_lsn`). None of
/// them changed any state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeniesRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The agent.
    pub agent: AgentId,
    /// The action (`*` for refusals before the DSC, whatever action they named).
    pub action: String,
    /// The stable deny or refusal code.
    pub code: String,
    /// Denies counted (the first, logged in full, not included).
    pub count: u64,
    /// Lsn of the window's first deny, logged in full.
    pub first_lsn: Option<u64>,
    /// When the window opened, Unix ms.
    pub first_ms: u64,
    /// The last counted deny, Unix ms.
    pub last_ms: u64,
    /// The window's length.
    pub window_ms: u64,
}

/// The approval-relevant shape of an action, to tell the human what changed
/// since the last approval for the same agent and action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSummary {
    /// Effect class.
    pub effect: EffectClass,
    /// Sink level.
    pub sink_level: IfcLevel,
    /// `kind:value` of every resource.
    pub resources: Vec<String>,
    /// Argument names (values are not repeated here).
    pub args: Vec<String>,
    /// Labels of what the intent reads or carries (`level` or `level+untrusted`).
    pub labels: Vec<String>,
}

impl ActionSummary {
    /// The summary of an intent.
    #[must_use]
    pub fn of(intent: &Intent) -> Self {
        Self {
            effect: intent.effect,
            sink_level: intent.sink_level,
            resources: intent.resources.iter().map(|r| format!("{}:{}", r.kind.name(), r.value)).collect(),
            args: intent.args.keys().cloned().collect(),
            labels: intent
                .reads
                .iter()
                .map(|r| if r.untrusted { format!("{}+untrusted", r.level) } else { r.level.to_string() })
                .collect(),
        }
    }

    /// One line naming what differs from `before`.
    #[must_use]
    pub fn changes_since(&self, before: Option<&Self>) -> String {
        let Some(before) = before else {
            return "first approval request for this agent and action".to_owned();
        };
        let mut parts = Vec::new();
        if self.effect != before.effect {
            parts.push(format!("effect {} -> {}", before.effect.name(), self.effect.name()));
        }
        if self.sink_level != before.sink_level {
            parts.push(format!("sink {} -> {}", before.sink_level, self.sink_level));
        }
        if self.resources != before.resources {
            parts.push(format!("resources {:?} -> {:?}", before.resources, self.resources));
        }
        if self.args != before.args {
            parts.push(format!("arguments {:?} -> {:?}", before.args, self.args));
        }
        if self.labels != before.labels {
            parts.push(format!("labels {:?} -> {:?}", before.labels, self.labels));
        }
        if parts.is_empty() { "same shape as the last approved request".to_owned() } else { parts.join("; ") }
    }
}

/// Kind `0x0310`: the trusted decision packet a human sees (HACF level 2+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPacket {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// Approval id: the escalated intent's id (one packet per intent).
    pub id: IntentId,
    /// The agent asking.
    pub agent: AgentId,
    /// The requested action.
    pub action: String,
    /// The requested intent in full.
    pub intent: Intent,
    /// The HACF level required.
    pub level: HacfLevel,
    /// Risk in one word: the effect class the Commit Layer will run it under.
    pub risk: EffectClass,
    /// Labels and shape of the request.
    pub summary: ActionSummary,
    /// Why the DSC escalated.
    pub why: String,
    /// What changed since the last approval for the same agent and action.
    pub changed: String,
    /// Hex SHA3-256 of the escalated decision (what the commander signs, with
    /// the intent id, level and expiry: [`maos_commit::ApprovalGrant::message`]).
    pub decision_sha3: String,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Expires (an expired packet denies), Unix ms.
    pub expires_ms: u64,
}

/// How an approval packet ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// The commander signed a grant; the intent went to the Commit Layer.
    Granted,
    /// The commander refused.
    Denied,
    /// The packet expired before a decision.
    Expired,
    /// The kernel restarted with the packet open: fail-safe deny.
    Lapsed,
}

impl ApprovalOutcome {
    /// Stable name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Granted => "granted",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Lapsed => "lapsed",
        }
    }
}

/// Kind `0x0311`: the outcome of an approval packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecisionRecord {
    /// [`RECORD_VERSION`].
    pub v: u16,
    /// The packet id.
    pub id: IntentId,
    /// The agent.
    pub agent: AgentId,
    /// The action.
    pub action: String,
    /// The outcome.
    pub outcome: ApprovalOutcome,
    /// Key id (hex) of the commander key that signed a grant.
    pub signed_by: Option<String>,
    /// The request's shape (for the next packet's "what changed").
    pub summary: ActionSummary,
    /// Free text from the approver, or why it expired or lapsed.
    pub reason: String,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// The journal's security-event envelope, for the token events only
/// (`{"type":"token","event":"issued"|"revoked",…}`, as `crates/maos/src/journal.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum JournalEvent {
    /// A token event.
    Token(TokenEvent),
}

/// The journal kind for a token event.
#[must_use]
pub const fn token_event_kind(event: &TokenEvent) -> RecordKind {
    match event {
        TokenEvent::Issued(_) => KIND_TOKEN_ISSUED,
        TokenEvent::Revoked(_) => KIND_TOKEN_REVOKED,
    }
}

/// A decoded record the kernel folds.
#[derive(Debug, Clone)]
pub enum KernelRecord {
    /// `0x0300`.
    Decision(Box<DecisionRecord>),
    /// `0x0301`.
    Mode(ModeRecord),
    /// `0x0302`.
    Read(ReadRecord),
    /// `0x0303`.
    Refused(RefusedRecord),
    /// `0x0304`.
    Denies(DeniesRecord),
    /// `0x0305`.
    Immune(ImmuneRecord),
    /// `0x0306`.
    Agent(AgentRecord),
    /// `0x0307`.
    Health(HealthRecord),
    /// `0x0308`.
    State(StateRecord),
    /// `0x0309`.
    Evaluation(EvaluationRecord),
    /// `0x030A`.
    Ecs(EcsRecord),
    /// `0x030B`.
    Tsca(Box<TscaRecord>),
    /// `0x0310`.
    ApprovalPacket(Box<ApprovalPacket>),
    /// `0x0311`.
    ApprovalDecision(Box<ApprovalDecisionRecord>),
    /// `0x0110` / `0x0111`.
    Token(TokenEvent),
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| format!("payload does not decode: {e}"))
}

impl KernelRecord {
    /// Decodes a record of a kind the kernel folds; `None` for other kinds.
    ///
    /// # Errors
    /// A message if the payload of one of our kinds does not decode, has
    /// another version, or a token event sits under the wrong kind.
    pub fn decode(kind: RecordKind, payload: &[u8]) -> Option<Result<Self, String>> {
        let decoded = match kind {
            KIND_DECISION => parse::<DecisionRecord>(payload).map(|r| Self::Decision(Box::new(r))),
            KIND_MODE => parse(payload).map(Self::Mode),
            KIND_READ => parse(payload).map(Self::Read),
            KIND_REFUSED => parse(payload).map(Self::Refused),
            KIND_DENIES => parse(payload).map(Self::Denies),
            KIND_IMMUNE => parse(payload).map(Self::Immune),
            KIND_AGENT => parse(payload).map(Self::Agent),
            KIND_HEALTH => parse(payload).map(Self::Health),
            KIND_STATE => parse(payload).map(Self::State),
            KIND_EVALUATION => parse(payload).map(Self::Evaluation),
            KIND_ECS => parse(payload).map(Self::Ecs),
            KIND_TSCA => parse::<TscaRecord>(payload).map(|r| Self::Tsca(Box::new(r))),
            KIND_APPROVAL_PACKET => parse::<ApprovalPacket>(payload).map(|r| Self::ApprovalPacket(Box::new(r))),
            KIND_APPROVAL_DECISION => {
                parse::<ApprovalDecisionRecord>(payload).map(|r| Self::ApprovalDecision(Box::new(r)))
            }
            KIND_TOKEN_ISSUED | KIND_TOKEN_REVOKED => parse::<JournalEvent>(payload).and_then(|e| {
                let JournalEvent::Token(event) = e;
                if token_event_kind(&event) == kind {
                    Ok(Self::Token(event))
                } else {
                    Err("token event does not match its record kind".to_owned())
                }
            }),
            _ => return None,
        };
        Some(decoded.and_then(|r| {
            let v = r.version();
            if v == RECORD_VERSION { Ok(r) } else { Err(format!("unsupported record version {v}")) }
        }))
    }

    const fn version(&self) -> u16 {
        match self {
            Self::Decision(r) => r.v,
            Self::Mode(r) => r.v,
            Self::Read(r) => r.v,
            Self::Refused(r) => r.v,
            Self::Denies(r) => r.v,
            Self::Immune(r) => r.v,
            Self::Agent(r) => r.v,
            Self::Health(r) => r.v,
            Self::State(r) => r.v,
            Self::Evaluation(r) => r.v,
            Self::Ecs(r) => r.v,
            Self::Tsca(r) => r.v,
            Self::ApprovalPacket(r) => r.v,
            Self::ApprovalDecision(r) => r.v,
            Self::Token(_) => RECORD_VERSION,
        }
    }
}

/// A payload safe to print or export: for a decision record the token text
/// is replaced by [`REDACTED`] (its SHA3-256 stays in `token_sha3`); other
/// kinds are returned unchanged. A decision payload that does not parse is
/// replaced whole, so a damaged record cannot leak a token either.
#[must_use]
pub fn redact_payload(kind: RecordKind, payload: &[u8]) -> Vec<u8> {
    if kind != KIND_DECISION {
        return payload.to_vec();
    }
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(mut value) => {
            if let Some(token) = value.get_mut("token")
                && !token.is_null()
            {
                *token = serde_json::Value::String(REDACTED.to_owned());
            }
            serde_json::to_vec(&value).unwrap_or_else(|_| REDACTED.as_bytes().to_vec())
        }
        Err(_) => REDACTED.as_bytes().to_vec(),
    }
}

/// Encodes a record payload.
pub(crate) fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(record).map_err(|e| format!("record does not encode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use maos_dsc::{KernelHealth, StateDelta};
    use maos_model::{Ring, TrustClass, UnixMillis};

    fn agent() -> AgentId {
        AgentId::new("writer").unwrap()
    }

    #[test]
    fn every_delta_op_round_trips_in_the_dsc_json_shape() {
        let token = TokenId::new_v7(1, [2; 10]);
        let delta = StateDelta {
            ops: vec![
                DeltaOp::Charge {
                    agent: agent(),
                    token,
                    token_tat_us: 5,
                    agent_tat_us: 6,
                    cost: 7,
                    egress: Some(maos_dsc::aggregate::Egress {
                        at_ms: 8,
                        bytes: 9,
                        recipients: vec!["bob@example.com".into()],
                    }),
                },
                DeltaOp::Read {
                    agent: agent(),
                    level: IfcLevel::Confidential,
                    untrusted: true,
                    text: Some("x".into()),
                    injection: Some("PF-INJ-OVERRIDE".into()),
                    catalogue: false,
                },
                DeltaOp::Read {
                    agent: agent(),
                    level: IfcLevel::Internal,
                    untrusted: false,
                    text: Some("listing".into()),
                    injection: None,
                    catalogue: true,
                },
                DeltaOp::Read {
                    agent: agent(),
                    level: IfcLevel::Public,
                    untrusted: false,
                    text: None,
                    injection: None,
                    catalogue: false,
                },
                DeltaOp::Health(KernelHealth::healthy([9; 32])),
                DeltaOp::Revocation { epoch: 3, revoked: vec![token] },
                DeltaOp::GlobalEpoch { epoch: 4 },
                DeltaOp::RegisterAgent { agent: agent(), ring: Ring::Trusted, class: Some(TrustClass::Transparent) },
                DeltaOp::FeverEnd { at_ms: 9 },
            ],
        };
        // The logged form is the DSC's own serialization, and reads back exactly.
        let logged = serde_json::to_vec(&delta.ops).unwrap();
        let back: Vec<DeltaOp> = serde_json::from_slice(&logged).unwrap();
        assert_eq!(StateDelta { ops: back }, delta);
    }

    #[test]
    fn a_bad_health_hash_does_not_decode() {
        let health = maos_dsc::DscState::report_health(KernelHealth::healthy([1; 32]));
        let mut json = serde_json::to_value(&health.ops).unwrap();
        json[0]["config_hash_loaded"] = serde_json::Value::String("zz".into());
        assert!(serde_json::from_value::<Vec<DeltaOp>>(json).is_err());
    }

    #[test]
    fn decode_rejects_other_versions_and_mismatched_token_kinds() {
        let record = ModeRecord { v: 2, trigger: "start".into(), previous: None, new: Mode::Normal, at_ms: 0 };
        let payload = encode(&record).unwrap();
        assert!(KernelRecord::decode(KIND_MODE, &payload).unwrap().is_err());
        let revoked = TokenEvent::Revoked(maos_token::TokenRevoked {
            root: TokenId::new_v7(1, [1; 10]),
            ids: vec![TokenId::new_v7(1, [1; 10])],
            epoch: 1,
            at_ms: UnixMillis(1).0,
            reason: "test".into(),
        });
        let payload = encode(&JournalEvent::Token(revoked)).unwrap();
        assert!(KernelRecord::decode(KIND_TOKEN_REVOKED, &payload).unwrap().is_ok());
        assert!(KernelRecord::decode(KIND_TOKEN_ISSUED, &payload).unwrap().is_err());
        assert!(KernelRecord::decode(RecordKind(0x0204), &payload).is_none());
    }

    #[test]
    fn redaction_never_leaks_a_token_even_from_a_damaged_record() {
        assert_eq!(redact_payload(KIND_DECISION, b"{\"token\":\"maos1.secret\""), REDACTED.as_bytes());
        let ok = redact_payload(KIND_DECISION, br#"{"token":"maos1.secret","v":1}"#);
        assert_eq!(ok, br#"{"token":"[redacted]","v":1}"#);
        let none = redact_payload(KIND_DECISION, br#"{"token":null}"#);
        assert_eq!(none, br#"{"token":null}"#);
        assert_eq!(redact_payload(KIND_MODE, b"abc"), b"abc");
    }

    #[test]
    fn changes_since_names_what_differs() {
        let mut a = ActionSummary {
            effect: EffectClass::Write,
            sink_level: IfcLevel::Public,
            resources: vec!["path:/workspace/a".into()],
            args: vec!["content".into()],
            labels: vec![],
        };
        assert_eq!(a.changes_since(Some(&a.clone())), "same shape as the last approved request");
        let before = a.clone();
        a.sink_level = IfcLevel::Internal;
        a.labels.push("internal+untrusted".into());
        let text = a.changes_since(Some(&before));
        assert!(text.contains("sink public -> internal"), "{text}");
        assert!(text.contains("labels"), "{text}");
        assert!(a.changes_since(None).starts_with("first"));
    }
}
