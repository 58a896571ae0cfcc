//! The DSC's view of the node: rate counters, budgets, session IFC context,
//! revocation epochs, kernel health and every agent's immune standing. It changes **only** through
//! [`DscState::apply`] of a [`StateDelta`], so a kernel rebuilds it exactly by
//! replaying the deltas recorded in the WAL.

use crate::DscError;
use crate::aggregate::{Aggregate, Egress};
use crate::config::DscConfig;
use crate::fingerprint::{FINGERPRINTS_MAX, Finding, Fingerprint, Response, Sample};
use crate::immune::{AnomalyClass, Fever, REPORTS_PER_HOUR_MAX, Report, Signal, SignalCode, Stage, Standing};
use crate::reporters::{Assessment, Outcome as ReportOutcome, Reporter};
use maos_model::{AgentId, DenyCode, IfcLevel, Ring, TokenId, TrustClass, UnixMillis};
use maos_token::RevocationState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Agents tracked: a flood of fresh agent ids cannot grow the state without bound.
pub const STATE_AGENTS_MAX: usize = 1_000_000;
/// Tokens tracked (usage counters).
pub const STATE_TOKENS_MAX: usize = 1_000_000;
/// Text fragments kept per session and trust kind for argument provenance.
/// When exceeded the session is marked overflowed and provenance fails closed.
pub const SESSION_FRAGMENTS_MAX: usize = 64;
/// Bytes per fragment; longer text marks the session overflowed (fail-closed)
/// rather than silently dropping the part an attacker put at the end.
pub const FRAGMENT_BYTES_MAX: usize = 64 * 1024;
/// Revoked ids carried in one delta.
pub const DELTA_REVOKED_MAX: usize = 100_000;
/// Indicators (recipients, domains) the commander has approved as pre-filter
/// blocks from threat patterns.
pub const BLOCKED_MAX: usize = 4096;

/// A recipient or domain check 7 refuses: a threat pattern's indicator the
/// commander approved as a pre-filter extension (signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// The threat pattern's id.
    pub pattern: String,
    /// When it was approved (logged time).
    pub at_ms: u64,
}

/// What the kernel reports about the machinery the rules depend on. Every field
/// defaults to the unsafe answer (`false`), so a state nobody reported on denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KernelHealth {
    /// Security heartbeats arrive on time (Rule 10).
    pub heartbeat_ok: bool,
    /// SHA3-256 of the DSC configuration the kernel loaded at boot (Rule 1).
    #[serde(serialize_with = "crate::decision::hex32", deserialize_with = "crate::decision::unhex32")]
    pub config_hash_loaded: [u8; 32],
    /// The WAL accepts durable writes (Rule 8).
    pub wal_writable: bool,
    /// The audit hash chain verified at its last check (Rule 3).
    pub audit_chain_intact: bool,
    /// The Rollback Zone can take a snapshot (Rule 5).
    pub rollback_available: bool,
    /// A supervising MAOS instance is present (Rule 11).
    pub supervisor_present: bool,
    /// The voter is alive (Rule 6: voter failure is DENY).
    pub voter_ok: bool,
    /// The gateway is the sole path: pods have no direct network (Rule 9).
    pub gateway_enforced: bool,
}

impl KernelHealth {
    /// Everything healthy under the configuration with this hash.
    #[must_use]
    pub const fn healthy(config_hash: [u8; 32]) -> Self {
        Self {
            heartbeat_ok: true,
            config_hash_loaded: config_hash,
            wal_writable: true,
            audit_chain_intact: true,
            rollback_available: true,
            supervisor_present: true,
            voter_ok: true,
            gateway_enforced: true,
        }
    }
}

/// One agent session's IFC context (spec §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Join of every level read.
    pub level: IfcLevel,
    /// Whether anything untrusted was read.
    pub untrusted: bool,
    /// Untrusted text read, indexed for provenance ([`crate::prefilter::provenance_index`]).
    pub untrusted_text: Vec<String>,
    /// Lowercased trusted text read (for provenance).
    pub trusted_text: Vec<String>,
    /// A fragment bound was hit: provenance fails closed for this session.
    pub overflow: bool,
    /// Lowercased untrusted text in which the pre-filter found an injection
    /// (also in `untrusted_text`): a value from it is an attack, not a judgement call.
    pub injected_text: Vec<String>,
    /// Whether any untrusted text this session read carried an injection: a
    /// stronger state than the taint (spec §33.8), kept for the immune system.
    pub injected: bool,
    /// An upstream's catalogue text (resource and prompt listings) the
    /// pre-filter passed, indexed like `untrusted_text`. Recording it does not
    /// taint the session (the listing's descriptor label does that, as for any
    /// read); it is a trusted source for a read (so reading a listed URI is
    /// not escalated), but not for an effect: an address that appears only in
    /// a listing's description is a provenance hit on a send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalogue_text: Vec<String>,
    /// Catalogue text did not fit: provenance fails closed for effects (a
    /// value in no trusted text is a plain hit), never for reads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catalogue_overflow: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self {
            level: IfcLevel::Public,
            untrusted: false,
            untrusted_text: Vec::new(),
            trusted_text: Vec::new(),
            overflow: false,
            injected_text: Vec::new(),
            injected: false,
            catalogue_text: Vec::new(),
            catalogue_overflow: false,
        }
    }
}

impl Session {
    /// Keeps `text` for provenance in the list its source belongs to. A text
    /// that does not fit is not kept and marks the session overflowed (for a
    /// catalogue: `catalogue_overflow`, which fails closed for effects only).
    fn keep(&mut self, text: &str, untrusted: bool, catalogue: bool, injected: bool) {
        if catalogue {
            if text.len() > FRAGMENT_BYTES_MAX {
                self.catalogue_overflow = true;
                return;
            }
            let indexed = crate::prefilter::provenance_index(text);
            // A client lists a server again and again: keep each text once.
            if self.catalogue_text.contains(&indexed) {
                return;
            }
            if self.catalogue_text.len() >= SESSION_FRAGMENTS_MAX {
                self.catalogue_overflow = true;
            } else {
                self.catalogue_text.push(indexed);
            }
            return;
        }
        let list = if untrusted { &mut self.untrusted_text } else { &mut self.trusted_text };
        if list.len() >= SESSION_FRAGMENTS_MAX || text.len() > FRAGMENT_BYTES_MAX {
            self.overflow = true;
            return;
        }
        let indexed = crate::prefilter::provenance_index(text);
        if injected {
            // Bounded by `untrusted_text`'s bound: a subset of it.
            self.injected_text.push(indexed.clone());
        }
        list.push(indexed);
    }
}

/// Usage of one capability token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Operations allowed so far.
    pub ops: u64,
    /// Budget units spent.
    pub spent: u64,
    /// Budget units carved out of this token for derived children (Rule 7):
    /// no longer spendable here, whatever the children do with them.
    pub carved: u64,
    /// GCRA theoretical arrival time, microseconds since the Unix epoch.
    pub tat_us: u64,
}

/// Usage and registration of one agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUsage {
    /// GCRA theoretical arrival time, microseconds.
    pub tat_us: u64,
    /// The ring the agent was onboarded into, if registered (Rule 4 reads
    /// an unregistered agent as ring 3).
    pub ring: Option<Ring>,
    /// The trust class it was registered with (immutable once set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<TrustClass>,
}

impl AgentUsage {
    /// The ring Rule 4 compares a token's with: the registered one, ring 3
    /// for an agent nobody registered.
    #[must_use]
    pub fn ring_or_untrusted(&self) -> Ring {
        self.ring.unwrap_or(Ring::Untrusted)
    }
}

/// One state change. It serializes to the JSON the kernel logs and reads back,
/// so a kernel rebuilds state from its log with exactly these values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum DeltaOp {
    /// An allowed operation: advances rate clocks, counts the op, spends budget.
    Charge {
        /// Agent.
        agent: AgentId,
        /// Capability.
        token: TokenId,
        /// New GCRA time for the token.
        token_tat_us: u64,
        /// New GCRA time for the agent.
        agent_tat_us: u64,
        /// Budget units spent.
        cost: u64,
        /// What left the node with it, for aggregate monitoring (spec §49.11).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        egress: Option<Egress>,
    },
    /// A refused request (denied or escalated): advances the agent's rate clock
    /// only (denies cost the agent, not the disk; nothing is counted or spent).
    ChargeRate {
        /// Agent.
        agent: AgentId,
        /// New GCRA time for the agent.
        agent_tat_us: u64,
    },
    /// The session read something: raises its level, maybe taints it, and keeps
    /// the text for provenance.
    Read {
        /// Agent.
        agent: AgentId,
        /// Level of what was read.
        level: IfcLevel,
        /// Whether it was untrusted.
        untrusted: bool,
        /// The text, if the kernel keeps it for provenance.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// The pre-filter pattern found in untrusted `text` when the delta was
        /// built ([`DscState::record_untrusted_output`]): the session is then
        /// marked injected. Logged with the delta, so the fold (boot, replay)
        /// reproduces the mark without scanning the text again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        injection: Option<String>,
        /// `text` is an upstream's catalogue ([`Session::catalogue_text`]);
        /// then `untrusted` is false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        catalogue: bool,
    },
    /// The kernel's health report.
    Health(KernelHealth),
    /// The node's revocation state.
    Revocation {
        /// Node epoch.
        epoch: u64,
        /// Revoked ids (the full set).
        revoked: Vec<TokenId>,
    },
    /// The global (federation) revocation epoch the node has heard of.
    GlobalEpoch {
        /// The epoch.
        epoch: u64,
    },
    /// Budget carved out of a token for a derived child (Rule 7: the subtree
    /// never holds more than its root).
    Carve {
        /// The token the budget came from.
        parent: TokenId,
        /// The derived token that holds it now.
        child: TokenId,
        /// Units carved.
        budget: u64,
    },
    /// An agent was registered into a ring (the operator's stand-in for
    /// onboarding), or demoted to ring 3.
    RegisterAgent {
        /// Agent.
        agent: AgentId,
        /// Ring.
        ring: Ring,
        /// Trust class; a demotion keeps the registered one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<TrustClass>,
    },
    /// Another agent reported an anomaly in `suspect` (spec §33.7.2).
    Report {
        /// Who reported.
        reporter: AgentId,
        /// About whom.
        suspect: AgentId,
        /// What.
        class: AnomalyClass,
        /// When.
        at_ms: u64,
    },
    /// The commander ended a security fever (spec §37.11.1).
    FeverEnd {
        /// When.
        at_ms: u64,
    },
    /// A danger signal (issue #14): a deny of the agent's own verified
    /// request whose code shows intent, folded into its immune standing.
    Danger {
        /// Agent.
        agent: AgentId,
        /// The deny code.
        code: DenyCode,
        /// Its weight ([`crate::immune::weight`]) when decided.
        weight: u32,
        /// The decision's time.
        at_ms: u64,
    },
    /// The agent reported its own compromise (spec §37.11.2): stage 3 at once.
    Apoptosis {
        /// Agent.
        agent: AgentId,
        /// When.
        at_ms: u64,
    },
    /// The operator released the agent from quarantine.
    Release {
        /// Agent.
        agent: AgentId,
        /// When.
        at_ms: u64,
    },
    /// A confirmed escalation (spec §37.8.2: moving on needs the Security
    /// Agent's or the commander's word): the operator's `quarantine advance`,
    /// or stage 5's lateral-movement check putting a contact in observation.
    /// The agent goes to the higher of its stage and `stage`.
    Advance {
        /// Agent.
        agent: AgentId,
        /// The stage it goes to at least.
        stage: Stage,
        /// When.
        at_ms: u64,
    },
    /// One decision of the agent's own verified request, for its behavioural
    /// fingerprint, with what the DSC found when it decided and what that
    /// set off (spec §41.2, §33.8.7; issue #14 item 7).
    Fingerprint {
        /// Agent.
        agent: AgentId,
        /// The decision's time.
        at_ms: u64,
        /// What the decision adds.
        sample: Sample,
        /// Deviations and drifts found.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        findings: Vec<Finding>,
        /// A danger signal or a pause.
        #[serde(default, skip_serializing_if = "Response::is_none")]
        response: Response,
    },
    /// The commander approved a threat pattern's indicators as pre-filter
    /// blocks (spec §37.8.3: a pattern that would extend the pre-filter is
    /// only a proposal until then).
    Block {
        /// Recipients and domains, lowercased.
        indicators: Vec<String>,
        /// The threat pattern's id.
        pattern: String,
        /// When.
        at_ms: u64,
    },
    /// Stages 4 and 5 (spec §37.8.2): the agent was eliminated (its tokens
    /// are revoked in the same record) and is healed: back to normal with an
    /// empty standing, in ring 3, and only a fresh token serves it again.
    Eliminate {
        /// Agent.
        agent: AgentId,
        /// When.
        at_ms: u64,
    },
}

/// A list of state changes, applied in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDelta {
    /// The changes.
    pub ops: Vec<DeltaOp>,
}

impl StateDelta {
    /// No change.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether there is nothing to apply.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The DSC state.
#[derive(Debug, Clone)]
pub struct DscState {
    config: Arc<DscConfig>,
    sessions: BTreeMap<AgentId, Session>,
    tokens: BTreeMap<TokenId, TokenUsage>,
    agents: BTreeMap<AgentId, AgentUsage>,
    revocation: RevocationState,
    global_epoch: u64,
    health: KernelHealth,
    /// Children whose budget has been carved, so a replayed carve counts once.
    carved_children: BTreeSet<TokenId>,
    /// Immune standing of every agent with a danger signal since its last release.
    immune: BTreeMap<AgentId, Standing>,
    /// Aggregate monitoring counters of every agent that sent anything out.
    aggregates: BTreeMap<AgentId, Aggregate>,
    /// Behavioural fingerprints (at most [`FINGERPRINTS_MAX`]).
    fingerprints: BTreeMap<AgentId, Fingerprint>,
    /// Indicators check 7 refuses (at most [`BLOCKED_MAX`]).
    blocked: BTreeMap<String, Blocked>,
    /// The last security fever, if any (it is on while [`Fever::active_at`]).
    fever: Option<Fever>,
    /// When the commander last ended a fever: from then on only agents whose
    /// stage rises after it count toward a new one.
    fever_ended_ms: Option<u64>,
    /// When each reporting agent made its last reports (at most
    /// [`REPORTS_PER_HOUR_MAX`] kept: the hourly bound needs no more).
    reporters: BTreeMap<AgentId, Vec<u64>>,
    /// Every reporter's reports of the last 30 days and how they turned out
    /// (at most [`crate::reporters::HISTORY_MAX`] each).
    reporter_history: BTreeMap<AgentId, Reporter>,
    /// Agents reports put in observation in the last hour: the quarantine
    /// budget (at most [`crate::reporters::RAISES_PER_HOUR_MAX`]).
    report_raises: Vec<(u64, AgentId)>,
}

/// A [`DscState`] as data, without its configuration and health (which a
/// kernel loads and reports at boot): what a state snapshot carries so that
/// counters, budgets and taint outlive the records they were folded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DscSnapshot {
    sessions: Vec<(AgentId, Session)>,
    tokens: Vec<(TokenId, TokenUsage)>,
    agents: Vec<(AgentId, AgentUsage)>,
    revocation_epoch: u64,
    revoked: Vec<TokenId>,
    global_epoch: u64,
    carved_children: Vec<TokenId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    immune: Vec<(AgentId, Standing)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    aggregates: Vec<(AgentId, Aggregate)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fever: Option<Fever>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fever_ended_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reporters: Vec<(AgentId, Vec<u64>)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    fingerprints: Vec<(AgentId, Fingerprint)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reporter_history: Vec<(AgentId, Reporter)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    report_raises: Vec<(u64, AgentId)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    blocked: Vec<(String, Blocked)>,
    /// The kernel's last health report, when it is not the healthy one a
    /// fresh state starts with (so a fold from a snapshot decides under the
    /// report the live kernel used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health: Option<KernelHealth>,
}

impl DscSnapshot {
    /// The usage of `token` in the snapshot (zero if it has none).
    #[must_use]
    pub fn token_usage(&self, token: &TokenId) -> TokenUsage {
        self.tokens.iter().find(|(t, _)| t == token).map(|(_, u)| *u).unwrap_or_default()
    }
}

impl DscState {
    /// The state as data ([`Self::restore`] gives it back under a configuration).
    #[must_use]
    pub fn snapshot(&self) -> DscSnapshot {
        DscSnapshot {
            sessions: self.sessions.iter().map(|(a, s)| (a.clone(), s.clone())).collect(),
            tokens: self.tokens.iter().map(|(t, u)| (*t, *u)).collect(),
            agents: self.agents.iter().map(|(a, u)| (a.clone(), *u)).collect(),
            revocation_epoch: self.revocation.epoch(),
            revoked: self.revocation.revoked().iter().copied().collect(),
            global_epoch: self.global_epoch,
            carved_children: self.carved_children.iter().copied().collect(),
            immune: self.immune.iter().map(|(a, s)| (a.clone(), s.clone())).collect(),
            aggregates: self.aggregates.iter().map(|(a, s)| (a.clone(), s.clone())).collect(),
            fever: self.fever,
            fever_ended_ms: self.fever_ended_ms,
            reporters: self.reporters.iter().map(|(a, t)| (a.clone(), t.clone())).collect(),
            fingerprints: self.fingerprints.iter().map(|(a, f)| (a.clone(), f.clone())).collect(),
            reporter_history: self.reporter_history.iter().map(|(a, r)| (a.clone(), r.clone())).collect(),
            report_raises: self.report_raises.clone(),
            blocked: self.blocked.iter().map(|(i, b)| (i.clone(), b.clone())).collect(),
            health: Some(self.health).filter(|h| *h != KernelHealth::healthy(self.config.hash())),
        }
    }

    /// The state a snapshot describes, under `config`, reporting the health
    /// the snapshot holds (the one [`Self::new`] does if it holds none).
    ///
    /// # Errors
    /// [`DscError::StateLimit`] if the snapshot holds more agents or tokens
    /// than the state may.
    pub fn restore(config: Arc<DscConfig>, snapshot: &DscSnapshot) -> Result<Self, DscError> {
        let agents = snapshot.sessions.len().max(snapshot.agents.len()).max(snapshot.immune.len());
        if agents.max(snapshot.aggregates.len()).max(snapshot.reporters.len()) > STATE_AGENTS_MAX {
            return Err(DscError::StateLimit { field: "agents", max: STATE_AGENTS_MAX });
        }
        if snapshot.reporter_history.len() > STATE_AGENTS_MAX
            || snapshot.report_raises.len() > crate::reporters::RAISES_PER_HOUR_MAX
        {
            return Err(DscError::StateLimit { field: "reporters", max: STATE_AGENTS_MAX });
        }
        if snapshot.blocked.len() > BLOCKED_MAX {
            return Err(DscError::StateLimit { field: "blocked indicators", max: BLOCKED_MAX });
        }
        if snapshot.fingerprints.len() > FINGERPRINTS_MAX {
            return Err(DscError::StateLimit { field: "fingerprints", max: FINGERPRINTS_MAX });
        }
        if snapshot.tokens.len() > STATE_TOKENS_MAX {
            return Err(DscError::StateLimit { field: "tokens", max: STATE_TOKENS_MAX });
        }
        let mut state = Self::new(config);
        state.sessions = snapshot.sessions.iter().cloned().collect();
        state.tokens = snapshot.tokens.iter().copied().collect();
        state.agents = snapshot.agents.iter().cloned().collect();
        state.revocation = RevocationState::new(snapshot.revocation_epoch, snapshot.revoked.iter().copied().collect());
        state.global_epoch = snapshot.global_epoch;
        state.carved_children = snapshot.carved_children.iter().copied().collect();
        state.immune = snapshot.immune.iter().cloned().collect();
        state.aggregates = snapshot.aggregates.iter().cloned().collect();
        state.fever = snapshot.fever;
        state.fever_ended_ms = snapshot.fever_ended_ms;
        state.reporters = snapshot.reporters.iter().cloned().collect();
        state.fingerprints = snapshot.fingerprints.iter().cloned().collect();
        state.reporter_history = snapshot.reporter_history.iter().cloned().collect();
        state.report_raises.clone_from(&snapshot.report_raises);
        state.blocked = snapshot.blocked.iter().cloned().collect();
        if let Some(health) = snapshot.health {
            state.health = health;
        }
        Ok(state)
    }

    /// A fresh state under `config`, reporting a healthy kernel that loaded it.
    /// A kernel that has not yet verified its machinery applies a
    /// [`DeltaOp::Health`] with the real report.
    #[must_use]
    pub fn new(config: Arc<DscConfig>) -> Self {
        let health = KernelHealth::healthy(config.hash());
        Self {
            config,
            sessions: BTreeMap::new(),
            tokens: BTreeMap::new(),
            agents: BTreeMap::new(),
            revocation: RevocationState::default(),
            global_epoch: 0,
            health,
            carved_children: BTreeSet::new(),
            immune: BTreeMap::new(),
            aggregates: BTreeMap::new(),
            fingerprints: BTreeMap::new(),
            blocked: BTreeMap::new(),
            fever: None,
            fever_ended_ms: None,
            reporters: BTreeMap::new(),
            reporter_history: BTreeMap::new(),
            report_raises: Vec::new(),
        }
    }

    /// The configuration every decision on this state uses.
    #[must_use]
    pub fn config(&self) -> &Arc<DscConfig> {
        &self.config
    }

    /// Decides from now on under `config`, keeping every counter: for a
    /// replay that reaches decisions made under an earlier logged
    /// configuration of the same profile. Refused (false) for another
    /// profile, whose thresholds the state was folded under.
    pub fn reconfigure(&mut self, config: Arc<DscConfig>) -> bool {
        if config.profile() != self.config.profile() {
            return false;
        }
        // The kernel that made those decisions had loaded that configuration
        // (Rule 1 compares the two).
        if self.health.config_hash_loaded == self.config.hash() {
            self.health.config_hash_loaded = config.hash();
        }
        self.config = config;
        true
    }

    /// The immune standing of an agent with a danger signal since its last release.
    #[must_use]
    pub fn standing(&self, agent: &AgentId) -> Option<&Standing> {
        self.immune.get(agent)
    }

    /// Every agent's immune standing, by agent id.
    pub fn standings(&self) -> impl Iterator<Item = (&AgentId, &Standing)> {
        self.immune.iter()
    }

    /// Every agent with usage or a registration, by agent id.
    pub fn agents(&self) -> impl Iterator<Item = (&AgentId, &AgentUsage)> {
        self.agents.iter()
    }

    /// The aggregate monitoring counters of an agent that sent anything out.
    #[must_use]
    pub fn aggregate(&self, agent: &AgentId) -> Option<&Aggregate> {
        self.aggregates.get(agent)
    }

    /// The behavioural fingerprint of an agent, if it has one.
    #[must_use]
    pub fn fingerprint(&self, agent: &AgentId) -> Option<&Fingerprint> {
        self.fingerprints.get(agent)
    }

    /// Whether check 7 refuses `indicator` (a recipient or domain, in any
    /// case): a commander-approved pre-filter extension.
    #[must_use]
    pub fn blocked(&self, indicator: &str) -> Option<&Blocked> {
        if self.blocked.is_empty() {
            return None;
        }
        self.blocked.get(&indicator.to_ascii_lowercase())
    }

    /// Every blocked indicator, by indicator.
    pub fn blocked_all(&self) -> impl Iterator<Item = (&String, &Blocked)> {
        self.blocked.iter()
    }

    /// Delta constructor: the commander approved `indicators` of threat
    /// pattern `pattern` as pre-filter blocks at `at`.
    #[must_use]
    pub fn block(indicators: &[String], pattern: &str, at: UnixMillis) -> StateDelta {
        StateDelta {
            ops: vec![DeltaOp::Block {
                indicators: indicators.iter().map(|i| i.to_ascii_lowercase()).collect(),
                pattern: pattern.to_owned(),
                at_ms: at.0,
            }],
        }
    }

    /// The quarantine stage of `agent` at `now` (normal without a standing).
    #[must_use]
    pub fn stage_of(&self, agent: &AgentId, now: UnixMillis) -> Stage {
        self.immune.get(agent).map_or(Stage::Normal, |s| s.stage_at(now.0).0)
    }

    /// Whether `agent` is known here: it has usage, a ring on record or a
    /// standing.
    #[must_use]
    pub fn knows_agent(&self, agent: &AgentId) -> bool {
        self.agents.contains_key(agent) || self.immune.contains_key(agent)
    }

    /// How many reports `reporter` made in the hour up to `now`.
    #[must_use]
    pub fn reports_in_hour(&self, reporter: &AgentId, now: UnixMillis) -> usize {
        self.reporters.get(reporter).map_or(0, |times| {
            times.iter().filter(|t| **t <= now.0 && now.0 - **t < crate::immune::SCORE_WINDOW_MS).count()
        })
    }

    /// A reporter's history of reports, if it made any.
    #[must_use]
    pub fn reporter(&self, reporter: &AgentId) -> Option<&Reporter> {
        self.reporter_history.get(reporter)
    }

    /// What a report by `reporter` about `suspect` of `class` at `at` would
    /// weigh, and why (CT-IMM-06..08). The fold of [`DeltaOp::Report`] takes
    /// exactly this; the kernel logs it with the report.
    #[must_use]
    pub fn assess_report(
        &self,
        reporter: &AgentId,
        suspect: &AgentId,
        class: AnomalyClass,
        at: UnixMillis,
    ) -> Assessment {
        use crate::reporters::{COLLUSION_WINDOW_MS, RAISES_PER_HOUR_MAX, raises_in_hour};
        let at = at.0;
        let standing = self.immune.get(suspect);
        let history = self.reporter_history.get(reporter);
        let suspended = history.is_some_and(|h| h.suspended_at(at));
        let mut held_with: Vec<AgentId> = Vec::new();
        for r in standing.map_or(&[][..], |s| s.reports.as_slice()) {
            let near = r.at_ms <= at && at - r.at_ms < COLLUSION_WINDOW_MS;
            if near && &r.reporter != reporter && !held_with.contains(&r.reporter) {
                held_with.push(r.reporter.clone());
            }
        }
        let down_weighted = history.is_some_and(|h| h.flagged_at(at));
        let mut weight = match (suspended || !held_with.is_empty(), down_weighted) {
            (true, _) => 0,
            (false, true) => class.weight() / 2,
            (false, false) => class.weight(),
        };
        let mut over_budget = false;
        if weight > 0 {
            let thresholds = crate::immune::thresholds(self.config.profile());
            let mut trial = standing.cloned().unwrap_or_default();
            let before = trial.stage_at(at).0;
            trial.report(Report { at_ms: at, reporter: reporter.clone(), class, weight }, thresholds);
            if trial.stage_at(at).0 > before && raises_in_hour(&self.report_raises, at) >= RAISES_PER_HOUR_MAX {
                weight = 0;
                over_budget = true;
            }
        }
        Assessment { weight, held_with, down_weighted, suspended, over_budget }
    }

    /// Marks the reports about `agent` of the hour before `at_ms` confirmed in
    /// their reporters' histories: the agent gave a signal of its own.
    fn confirm_reports(&mut self, agent: &AgentId, at_ms: u64) {
        let Some(standing) = self.immune.get(agent) else { return };
        for r in &standing.reports {
            if r.at_ms <= at_ms
                && at_ms - r.at_ms < crate::reporters::CONFIRM_MS
                && let Some(h) = self.reporter_history.get_mut(&r.reporter)
            {
                h.mark(agent, r.at_ms, true, false);
            }
        }
    }

    /// The security fever on at `now` (spec §37.11.1), if any.
    #[must_use]
    pub fn fever_at(&self, now: UnixMillis) -> Option<&Fever> {
        self.fever.as_ref().filter(|f| f.active_at(now.0))
    }

    /// The session of an agent, if it read anything.
    #[must_use]
    pub fn session(&self, agent: &AgentId) -> Option<&Session> {
        self.sessions.get(agent)
    }

    /// Usage of a token.
    #[must_use]
    pub fn token_usage(&self, token: &TokenId) -> TokenUsage {
        self.tokens.get(token).copied().unwrap_or_default()
    }

    /// Usage of an agent.
    #[must_use]
    pub fn agent_usage(&self, agent: &AgentId) -> AgentUsage {
        self.agents.get(agent).copied().unwrap_or_default()
    }

    /// The node's revocation state.
    #[must_use]
    pub fn revocation(&self) -> &RevocationState {
        &self.revocation
    }

    /// The global revocation epoch.
    #[must_use]
    pub fn global_epoch(&self) -> u64 {
        self.global_epoch
    }

    /// The kernel health report.
    #[must_use]
    pub fn health(&self) -> &KernelHealth {
        &self.health
    }

    /// Delta constructor: the session of `agent` read content at `level`.
    #[must_use]
    pub fn record_read(agent: &AgentId, level: IfcLevel, untrusted: bool, text: Option<&str>) -> StateDelta {
        StateDelta {
            ops: vec![DeltaOp::Read {
                agent: agent.clone(),
                level,
                untrusted,
                text: text.map(str::to_owned),
                injection: None,
                catalogue: false,
            }],
        }
    }

    /// Delta constructor: the session of `agent` read untrusted `text` at
    /// `level` (a tool output, a page). The text is scanned once, here, with
    /// this state's pre-filter; a hit is kept in the delta and marks the session
    /// injected (spec §33.8).
    #[must_use]
    pub fn record_untrusted_output(&self, agent: &AgentId, level: IfcLevel, text: &str) -> StateDelta {
        let injection = self.config.prefilter().scan_text(text).map(|hit| hit.id);
        StateDelta {
            ops: vec![DeltaOp::Read {
                agent: agent.clone(),
                level,
                untrusted: true,
                text: Some(text.to_owned()),
                injection,
                catalogue: false,
            }],
        }
    }

    /// Delta constructor: the session of `agent` read an upstream's catalogue
    /// `text` (a resource or prompt listing the pre-filter passed) at `level`.
    #[must_use]
    pub fn record_catalogue(agent: &AgentId, level: IfcLevel, text: &str) -> StateDelta {
        StateDelta {
            ops: vec![DeltaOp::Read {
                agent: agent.clone(),
                level,
                untrusted: false,
                text: Some(text.to_owned()),
                injection: None,
                catalogue: true,
            }],
        }
    }

    /// Delta constructor: a new kernel health report.
    #[must_use]
    pub fn report_health(health: KernelHealth) -> StateDelta {
        StateDelta { ops: vec![DeltaOp::Health(health)] }
    }

    /// Delta constructor: the node's revocation state changed.
    #[must_use]
    pub fn set_revocation(revocation: &RevocationState) -> StateDelta {
        StateDelta {
            ops: vec![DeltaOp::Revocation {
                epoch: revocation.epoch(),
                revoked: revocation.revoked().iter().copied().collect(),
            }],
        }
    }

    /// Delta constructor: the global epoch advanced.
    #[must_use]
    pub fn set_global_epoch(epoch: u64) -> StateDelta {
        StateDelta { ops: vec![DeltaOp::GlobalEpoch { epoch }] }
    }

    /// Delta constructor: `child` was derived from `parent` with `budget` carved
    /// out of the parent's (the kernel applies it for every derived token).
    #[must_use]
    pub fn record_carve(parent: TokenId, child: TokenId, budget: u64) -> StateDelta {
        StateDelta { ops: vec![DeltaOp::Carve { parent, child, budget }] }
    }

    /// Delta constructor: an agent was registered into a ring with a class
    /// (`None` keeps the class it has: a demotion).
    #[must_use]
    pub fn register_agent(agent: &AgentId, ring: Ring, class: Option<TrustClass>) -> StateDelta {
        StateDelta { ops: vec![DeltaOp::RegisterAgent { agent: agent.clone(), ring, class }] }
    }

    /// Delta constructor: `reporter` reported `class` about `suspect` at `at`.
    #[must_use]
    pub fn report(reporter: &AgentId, suspect: &AgentId, class: AnomalyClass, at: UnixMillis) -> StateDelta {
        StateDelta {
            ops: vec![DeltaOp::Report { reporter: reporter.clone(), suspect: suspect.clone(), class, at_ms: at.0 }],
        }
    }

    /// Delta constructor: the commander ended the security fever at `at`.
    #[must_use]
    pub fn end_fever(at: UnixMillis) -> StateDelta {
        StateDelta { ops: vec![DeltaOp::FeverEnd { at_ms: at.0 }] }
    }

    /// Delta constructor: `agent` reported its own compromise at `at`.
    #[must_use]
    pub fn apoptosis(agent: &AgentId, at: UnixMillis) -> StateDelta {
        StateDelta { ops: vec![DeltaOp::Apoptosis { agent: agent.clone(), at_ms: at.0 }] }
    }

    /// Delta constructor: `agent` goes to `stage` at least at `at`.
    #[must_use]
    pub fn advance(agent: &AgentId, stage: Stage, at: UnixMillis) -> StateDelta {
        StateDelta { ops: vec![DeltaOp::Advance { agent: agent.clone(), stage, at_ms: at.0 }] }
    }

    /// Delta constructor: `agent` was eliminated and healed at `at`; each of
    /// `contacts` goes to observation (stage 5's lateral-movement check).
    #[must_use]
    pub fn eliminate(agent: &AgentId, contacts: &[AgentId], at: UnixMillis) -> StateDelta {
        let mut ops = vec![DeltaOp::Eliminate { agent: agent.clone(), at_ms: at.0 }];
        ops.extend(contacts.iter().map(|c| DeltaOp::Advance {
            agent: c.clone(),
            stage: Stage::Observation,
            at_ms: at.0,
        }));
        StateDelta { ops }
    }

    /// Delta constructor: the operator released `agent` from quarantine at `at`.
    #[must_use]
    pub fn release(agent: &AgentId, at: UnixMillis) -> StateDelta {
        StateDelta { ops: vec![DeltaOp::Release { agent: agent.clone(), at_ms: at.0 }] }
    }

    /// Applies a delta. All-or-nothing: on error the state is unchanged.
    ///
    /// # Errors
    /// [`DscError::StateLimit`] if a bound would be exceeded.
    pub fn apply(&mut self, delta: &StateDelta) -> Result<(), DscError> {
        self.check(delta)?;
        for op in &delta.ops {
            self.apply_op(op);
        }
        Ok(())
    }

    /// Whether [`Self::apply`] would take `delta`, without applying it (so a
    /// kernel can refuse a change before it logs it).
    ///
    /// # Errors
    /// [`DscError::StateLimit`] if a bound would be exceeded.
    pub fn check(&self, delta: &StateDelta) -> Result<(), DscError> {
        // Validate every bound first, counting keys this delta would add, so a
        // failing delta leaves the state untouched without cloning it.
        let mut new_tokens = BTreeSet::new();
        let mut new_agents = BTreeSet::new();
        let mut new_sessions = BTreeSet::new();
        let mut new_immune = BTreeSet::new();
        let mut new_aggregates = BTreeSet::new();
        let mut new_reporters = BTreeSet::new();
        for op in &delta.ops {
            match op {
                DeltaOp::Charge { agent, token, egress, .. } => {
                    if !self.tokens.contains_key(token) {
                        new_tokens.insert(*token);
                    }
                    if !self.agents.contains_key(agent) {
                        new_agents.insert(agent);
                    }
                    if egress.is_some() && !self.aggregates.contains_key(agent) {
                        new_aggregates.insert(agent);
                    }
                }
                DeltaOp::ChargeRate { agent, .. } => {
                    if !self.agents.contains_key(agent) {
                        new_agents.insert(agent);
                    }
                }
                DeltaOp::Read { agent, .. } => {
                    if !self.sessions.contains_key(agent) {
                        new_sessions.insert(agent);
                    }
                }
                DeltaOp::RegisterAgent { agent, .. } => {
                    if !self.agents.contains_key(agent) {
                        new_agents.insert(agent);
                    }
                }
                DeltaOp::Danger { agent, .. } | DeltaOp::Apoptosis { agent, .. } | DeltaOp::Advance { agent, .. } => {
                    if !self.immune.contains_key(agent) {
                        new_immune.insert(agent);
                    }
                    // Hard isolation records the agent's demotion.
                    if !self.agents.contains_key(agent) {
                        new_agents.insert(agent);
                    }
                }
                DeltaOp::Report { reporter, suspect, .. } => {
                    if !self.immune.contains_key(suspect) {
                        new_immune.insert(suspect);
                    }
                    if !self.reporters.contains_key(reporter) || !self.reporter_history.contains_key(reporter) {
                        new_reporters.insert(reporter);
                    }
                }
                // The fingerprint table evicts its stalest entry when full.
                DeltaOp::Fingerprint { agent, response, .. } => {
                    if (response.pause || response.signal > 0) && !self.immune.contains_key(agent) {
                        new_immune.insert(agent);
                    }
                    if (response.pause || response.signal > 0) && !self.agents.contains_key(agent) {
                        new_agents.insert(agent);
                    }
                }
                DeltaOp::Release { .. } => {}
                DeltaOp::Block { indicators, .. } => {
                    let fresh = indicators.iter().filter(|i| !self.blocked.contains_key(i.as_str())).count();
                    if self.blocked.len().saturating_add(fresh) > BLOCKED_MAX {
                        return Err(DscError::StateLimit { field: "blocked indicators", max: BLOCKED_MAX });
                    }
                }
                DeltaOp::Eliminate { agent, .. } => {
                    if !self.agents.contains_key(agent) {
                        new_agents.insert(agent);
                    }
                }
                DeltaOp::Revocation { revoked, .. } => {
                    if revoked.len() > DELTA_REVOKED_MAX {
                        return Err(DscError::StateLimit { field: "revoked", max: DELTA_REVOKED_MAX });
                    }
                }
                DeltaOp::Carve { parent, .. } => {
                    if !self.tokens.contains_key(parent) {
                        new_tokens.insert(*parent);
                    }
                    if self.carved_children.len() >= STATE_TOKENS_MAX {
                        return Err(DscError::StateLimit { field: "carved children", max: STATE_TOKENS_MAX });
                    }
                }
                DeltaOp::Health(_) | DeltaOp::GlobalEpoch { .. } | DeltaOp::FeverEnd { .. } => {}
            }
        }
        let over = |len: usize, added: usize, max: usize| len.saturating_add(added) > max;
        if over(self.tokens.len(), new_tokens.len(), STATE_TOKENS_MAX) {
            return Err(DscError::StateLimit { field: "tokens", max: STATE_TOKENS_MAX });
        }
        if over(self.agents.len(), new_agents.len(), STATE_AGENTS_MAX) {
            return Err(DscError::StateLimit { field: "agents", max: STATE_AGENTS_MAX });
        }
        if over(self.sessions.len(), new_sessions.len(), STATE_AGENTS_MAX) {
            return Err(DscError::StateLimit { field: "sessions", max: STATE_AGENTS_MAX });
        }
        if over(self.immune.len(), new_immune.len(), STATE_AGENTS_MAX) {
            return Err(DscError::StateLimit { field: "immune standings", max: STATE_AGENTS_MAX });
        }
        if over(self.aggregates.len(), new_aggregates.len(), STATE_AGENTS_MAX) {
            return Err(DscError::StateLimit { field: "aggregate counters", max: STATE_AGENTS_MAX });
        }
        if over(self.reporters.len().max(self.reporter_history.len()), new_reporters.len(), STATE_AGENTS_MAX) {
            return Err(DscError::StateLimit { field: "reporters", max: STATE_AGENTS_MAX });
        }
        Ok(())
    }

    fn apply_op(&mut self, op: &DeltaOp) {
        match op {
            DeltaOp::Charge { agent, token, token_tat_us, agent_tat_us, cost, egress } => {
                let t = self.tokens.entry(*token).or_default();
                t.ops = t.ops.saturating_add(1);
                t.spent = t.spent.saturating_add(*cost);
                t.tat_us = t.tat_us.max(*token_tat_us);
                let a = self.agents.entry(agent.clone()).or_default();
                a.tat_us = a.tat_us.max(*agent_tat_us);
                if let Some(egress) = egress {
                    self.aggregates.entry(agent.clone()).or_default().record(egress);
                }
            }
            DeltaOp::ChargeRate { agent, agent_tat_us } => {
                let a = self.agents.entry(agent.clone()).or_default();
                a.tat_us = a.tat_us.max(*agent_tat_us);
            }
            DeltaOp::Read { agent, level, untrusted, text, injection, catalogue } => {
                let injected = *untrusted && injection.is_some();
                let s = self.sessions.entry(agent.clone()).or_default();
                s.level = s.level.join(*level);
                s.untrusted |= *untrusted;
                s.injected |= injected;
                if let Some(text) = text {
                    s.keep(text, *untrusted, *catalogue && !*untrusted, injected);
                }
            }
            DeltaOp::Health(h) => self.health = *h,
            DeltaOp::Revocation { epoch, revoked } => {
                let set: BTreeSet<TokenId> = revoked.iter().copied().collect();
                self.revocation = RevocationState::new(*epoch, set);
            }
            DeltaOp::GlobalEpoch { epoch } => self.global_epoch = self.global_epoch.max(*epoch),
            DeltaOp::Carve { parent, child, budget } => {
                if self.carved_children.insert(*child) {
                    let t = self.tokens.entry(*parent).or_default();
                    t.carved = t.carved.saturating_add(*budget);
                }
            }
            DeltaOp::Danger { agent, code, weight, at_ms } => {
                let thresholds = crate::immune::thresholds(self.config.profile());
                let signal = Signal { at_ms: *at_ms, code: SignalCode::Deny(*code), weight: *weight };
                let standing = self.immune.entry(agent.clone()).or_default();
                standing.signal(signal, thresholds);
                let stage = standing.stage;
                self.confirm_reports(agent, *at_ms);
                self.after_signal(agent, stage, *at_ms);
            }
            DeltaOp::Apoptosis { agent, at_ms } => {
                self.confirm_reports(agent, *at_ms);
                self.immune.entry(agent.clone()).or_default().apoptosis(*at_ms);
                self.after_signal(agent, Stage::HardIsolation, *at_ms);
            }
            DeltaOp::Report { reporter, suspect, class, at_ms } => {
                let assessment = self.assess_report(reporter, suspect, *class, UnixMillis(*at_ms));
                let times = self.reporters.entry(reporter.clone()).or_default();
                times.push(*at_ms);
                if times.len() > REPORTS_PER_HOUR_MAX {
                    times.remove(0);
                }
                let held = !assessment.held_with.is_empty();
                for partner in &assessment.held_with {
                    if let Some(h) = self.reporter_history.get_mut(partner) {
                        h.flag_near(suspect, *at_ms);
                    }
                }
                // About an agent the node has isolated already: the node's own
                // evidence confirms it (it gives no further signals).
                let isolated = self.stage_of(suspect, UnixMillis(*at_ms)) >= Stage::SoftIsolation;
                let outcome =
                    ReportOutcome { at_ms: *at_ms, suspect: suspect.clone(), confirmed: isolated, flagged: held };
                self.reporter_history.entry(reporter.clone()).or_default().push(outcome);
                let thresholds = crate::immune::thresholds(self.config.profile());
                let report =
                    Report { at_ms: *at_ms, reporter: reporter.clone(), class: *class, weight: assessment.weight };
                // No fever or demotion: reports reach observation at most
                // and never keep a fever on.
                let standing = self.immune.entry(suspect.clone()).or_default();
                let before = standing.stage_at(*at_ms).0;
                standing.report(report, thresholds);
                if standing.stage_at(*at_ms).0 > before {
                    crate::reporters::record_raise(&mut self.report_raises, suspect, *at_ms);
                }
            }
            DeltaOp::FeverEnd { at_ms } => {
                self.fever = None;
                self.fever_ended_ms = Some(self.fever_ended_ms.unwrap_or(0).max(*at_ms));
            }
            DeltaOp::Fingerprint { agent, at_ms, sample, findings, response } => {
                if !self.fingerprints.contains_key(agent) && self.fingerprints.len() >= FINGERPRINTS_MAX {
                    // The table is full: the agent idle longest makes room
                    // (ties: the first by id), so the newest agents are seen.
                    let stalest = self.fingerprints.iter().min_by_key(|(_, f)| f.last_ms()).map(|(a, _)| a.clone());
                    if let Some(stalest) = stalest {
                        self.fingerprints.remove(&stalest);
                    }
                }
                self.fingerprints.entry(agent.clone()).or_default().fold(sample, *at_ms, findings, *response);
                if response.pause {
                    self.immune.entry(agent.clone()).or_default().pause(*at_ms);
                    self.confirm_reports(agent, *at_ms);
                    self.after_signal(agent, Stage::HardIsolation, *at_ms);
                } else if response.signal > 0 {
                    let thresholds = crate::immune::thresholds(self.config.profile());
                    let signal = Signal { at_ms: *at_ms, code: SignalCode::Fingerprint, weight: response.signal };
                    let standing = self.immune.entry(agent.clone()).or_default();
                    let before = standing.stage_at(*at_ms).0;
                    standing.signal(signal, thresholds);
                    // Stage 3 from behaviour alone is a pause too.
                    if before < Stage::HardIsolation && standing.stage == Stage::HardIsolation {
                        standing.paused = !standing.deny_evidence_at(*at_ms);
                    }
                    let stage = standing.stage;
                    self.confirm_reports(agent, *at_ms);
                    self.after_signal(agent, stage, *at_ms);
                }
            }
            DeltaOp::Block { indicators, pattern, at_ms } => {
                // The first approval of an indicator stands (another pattern
                // naming it later does not take it over).
                for indicator in indicators {
                    let blocked = Blocked { pattern: pattern.clone(), at_ms: *at_ms };
                    self.blocked.entry(indicator.to_ascii_lowercase()).or_insert(blocked);
                }
            }
            DeltaOp::Release { agent, .. } => {
                // The evidence stays in the log; the state forgets it.
                self.immune.remove(agent);
                if let Some(f) = self.fingerprints.get_mut(agent) {
                    f.forget_window();
                }
            }
            DeltaOp::Advance { agent, stage, at_ms } => {
                self.confirm_reports(agent, *at_ms);
                let standing = self.immune.entry(agent.clone()).or_default();
                standing.advance(*stage, *at_ms);
                let stage = standing.stage;
                self.after_signal(agent, stage, *at_ms);
            }
            DeltaOp::Eliminate { agent, at_ms } => {
                self.confirm_reports(agent, *at_ms);
                // Healed: the replacement starts clean, in ring 3 for good
                // (inward needs re-onboarding); the evidence stays in the log.
                self.immune.remove(agent);
                // Its baselines learnt the compromised behaviour: the
                // replacement builds new ones.
                self.fingerprints.remove(agent);
                self.agents.entry(agent.clone()).or_default().ring = Some(Ring::Untrusted);
            }
            DeltaOp::RegisterAgent { agent, ring, class } => {
                let a = self.agents.entry(agent.clone()).or_default();
                a.ring = Some(*ring);
                a.class = class.or(a.class);
            }
        }
    }

    /// What a danger signal at `at_ms` that left `agent` at `stage` sets
    /// off beyond its own standing: hard isolation demotes the agent to ring 3
    /// for good, registered or not (spec §7: outward is instant, inward needs
    /// re-onboarding, so a later ring-2 registration is refused);
    /// a second agent at stage 2 or more starts a security fever (spec
    /// §37.11.1), and a signal that leaves its agent at stage 2 or more keeps
    /// it on. The spec says any new signal; but honest agents' occasional
    /// scope mistakes are signals too, and the population simulation showed
    /// them keeping a fever on for good (every step after the trigger).
    ///
    /// The second trigger: one agent's own signals of the last 10 minutes
    /// add up to more than twice the observation threshold (a burst, whatever
    /// its stage) start a fever, or keep one on.
    fn after_signal(&mut self, agent: &AgentId, stage: Stage, at_ms: u64) {
        // A pause waits for a human's review: it does not demote for good.
        let paused = self.immune.get(agent).is_some_and(|s| s.paused);
        if stage == Stage::HardIsolation && !paused {
            self.agents.entry(agent.clone()).or_default().ring = Some(Ring::Untrusted);
        }
        let watch = crate::immune::thresholds(self.config.profile())[0];
        let ended = self.fever_ended_ms;
        let burst = self.immune.get(agent).is_some_and(|s| s.burst_at(at_ms, ended) > watch.saturating_mul(2));
        if stage < Stage::SoftIsolation && !burst {
            return;
        }
        if let Some(fever) = self.fever.as_mut().filter(|f| f.active_at(at_ms)) {
            fever.last_signal_ms = fever.last_signal_ms.max(at_ms);
            return;
        }
        // After the commander ended a fever, only agents whose stage rose
        // since (a new deny took them higher: new evidence) start a new one;
        // the end holds against the agents in the state it was about.
        let ended = self.fever_ended_ms;
        let hot = self
            .immune
            .values()
            .map(|s| s.stage_at(at_ms))
            .filter(|(stage, since)| *stage >= Stage::SoftIsolation && ended.is_none_or(|e| *since > e))
            .take(crate::immune::FEVER_AGENTS)
            .count();
        if burst || hot >= crate::immune::FEVER_AGENTS {
            self.fever = Some(Fever { since_ms: at_ms, last_signal_ms: at_ms });
        }
    }
}
