//! Kernel state as a fold over the WAL (design.md: "all kernel state is a fold
//! over WAL records"), and `replay`, which re-runs the DSC over every logged
//! decision with the state as it was at that point.

use crate::error::KernelError;
use crate::records::{ActionSummary, ApprovalOutcome, ApprovalPacket, DecisionRecord, KernelRecord};
use maos_dsc::{DscConfig, DscState, StateDelta, decide};
use maos_model::{AgentId, Intent, IntentId, UnixMillis, Verdict};
use maos_token::{KeyRing, TokenError, TokenEvent, TokenRegistry, UnverifiedToken, VerifiedToken};
use maos_wal::{LogReader, Lsn, PayloadState, RecordKind};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Divergences kept in a [`ReplayReport`]: a log forged into millions of bad
/// decisions cannot make the report exhaust memory (the count stays exact).
pub const REPLAY_DIVERGENCES_MAX: usize = 10_000;

/// The kernel state rebuilt from the log.
#[derive(Debug, Clone)]
pub(crate) struct KernelState {
    pub dsc: DscState,
    pub registry: TokenRegistry,
    /// Open approval packets (id → packet), as logged.
    pub open_packets: BTreeMap<IntentId, ApprovalPacket>,
    /// Shape of the last granted request per (agent, action).
    pub last_granted: BTreeMap<(AgentId, String), ActionSummary>,
    /// The latest decision time seen (decisions are monotonic).
    pub last_now: UnixMillis,
    /// The last 30 minutes of allowed requests, for the immune system.
    pub activity: crate::activity::Activity,
    /// Tokens an elimination record lists whose `token.revoked` record is not
    /// in the log yet (a crash or a failed append in between): the kernel
    /// revokes them before it serves again.
    pub unrevoked: std::collections::BTreeSet<maos_model::TokenId>,
    /// The immune memory: threat patterns of confirmed incidents, oldest
    /// first, at most [`crate::records::PATTERNS_MAX`].
    pub patterns: std::collections::VecDeque<crate::records::ThreatPattern>,
    /// Emergency shutdowns the log recorded, oldest first, at most
    /// [`crate::ecs::ECS_HISTORY_MAX`] (the boot adds those only the
    /// forensic directory knows).
    pub ecs: std::collections::VecDeque<crate::ecs::EcsEntry>,
    /// The TSCA's state and its log section's chain.
    pub tsca: crate::tsca::Ledger,
}

/// What rebuilding the state from the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoldSummary {
    /// Records read (all kinds).
    pub records: u64,
    /// Decision records folded.
    pub decisions: u64,
    /// Token events folded.
    pub token_events: u64,
    /// Session-label (read) records folded.
    pub reads: u64,
    /// Deltas that could not be applied (a state bound was hit; the kernel
    /// skipped them live too, so the fold matches).
    pub deltas_skipped: u64,
    /// Denies counted in `kernel.denies` records (each changed no state).
    pub denies_aggregated: u64,
    /// Approval packets open at the end of the log.
    pub approvals_open: u64,
    /// The last Lsn read.
    pub last_lsn: Option<Lsn>,
}

impl KernelState {
    pub(crate) fn new(config: Arc<DscConfig>) -> Self {
        let config_profile = config.profile();
        Self {
            dsc: DscState::new(config),
            registry: TokenRegistry::new(),
            open_packets: BTreeMap::new(),
            last_granted: BTreeMap::new(),
            last_now: UnixMillis(0),
            activity: crate::activity::Activity::default(),
            unrevoked: std::collections::BTreeSet::new(),
            patterns: std::collections::VecDeque::new(),
            ecs: std::collections::VecDeque::new(),
            tsca: crate::tsca::Ledger::new(config_profile),
        }
    }

    /// Folds one step of an emergency shutdown.
    pub(crate) fn fold_ecs(&mut self, event: &crate::records::EcsEvent) {
        use crate::records::EcsEvent;
        match event {
            EcsEvent::Halted { id, class, at_ms, .. } => {
                if self.ecs.iter().any(|e| &e.id == id) {
                    return;
                }
                if self.ecs.len() >= crate::ecs::ECS_HISTORY_MAX {
                    self.ecs.pop_front();
                }
                self.ecs.push_back(crate::ecs::EcsEntry {
                    id: id.clone(),
                    at_ms: *at_ms,
                    class: *class,
                    acknowledged: false,
                    restarted: false,
                });
            }
            EcsEvent::Acknowledged { id, .. } => {
                self.ecs.iter_mut().filter(|e| &e.id == id).for_each(|e| e.acknowledged = true);
            }
            EcsEvent::Restarted { id, .. } => {
                self.ecs.iter_mut().filter(|e| &e.id == id).for_each(|e| e.restarted = true);
            }
        }
    }

    /// Keeps a threat pattern; the oldest falls out at the bound.
    pub(crate) fn remember(&mut self, pattern: crate::records::ThreatPattern) {
        if self.patterns.len() >= crate::records::PATTERNS_MAX {
            self.patterns.pop_front();
        }
        self.patterns.push_back(pattern);
    }

    /// Applies a delta the way the live kernel does: all-or-nothing, and a
    /// delta over a state bound is skipped (the kernel then refuses the effect).
    pub(crate) fn apply_delta(&mut self, delta: &StateDelta) -> bool {
        self.dsc.apply(delta).is_ok()
    }

    /// Applies a token event and mirrors the revocation state into the DSC.
    pub(crate) fn apply_token(&mut self, event: &TokenEvent) -> Result<(), TokenError> {
        self.registry.apply(event)?;
        // A derived token's budget leaves its parent for good (Rule 7).
        if let TokenEvent::Issued(issued) = event
            && let Some(parent) = issued.parent
        {
            self.dsc
                .apply(&DscState::record_carve(parent, issued.id, issued.budget))
                .map_err(|e| TokenError::UnknownToken(format!("budget carve does not apply: {e}")))?;
        }
        if let TokenEvent::Revoked(r) = event {
            for id in &r.ids {
                self.unrevoked.remove(id);
            }
            // Cannot exceed bounds the registry itself accepted; a failure is
            // still surfaced, never ignored.
            self.dsc
                .apply(&DscState::set_revocation(self.registry.revocations()))
                .map_err(|e| TokenError::UnknownToken(format!("revocation state does not apply: {e}")))?;
        }
        Ok(())
    }

    /// Folds one record (not a decision's re-evaluation: see [`replay`]).
    fn fold(
        &mut self,
        lsn: Lsn,
        record: &KernelRecord,
        payload: &[u8],
        summary: &mut FoldSummary,
    ) -> Result<(), String> {
        match record {
            KernelRecord::Decision(d) => {
                summary.decisions = summary.decisions.saturating_add(1);
                self.last_now = self.last_now.max(UnixMillis(d.now_ms));
                let delta = StateDelta { ops: d.delta.clone() };
                if !self.apply_delta(&delta) {
                    summary.deltas_skipped = summary.deltas_skipped.saturating_add(1);
                } else if d.verdict == Verdict::Allow {
                    // As live: an allow whose delta did not apply never ran.
                    self.activity.record(&d.intent, lsn.0, d.now_ms);
                } else if let Some(code) = crate::kernel::signal_code(&d.intent.agent, &d.delta) {
                    self.activity.signal(&d.intent, code, lsn.0, d.now_ms);
                }
            }
            KernelRecord::Read(r) => {
                summary.reads = summary.reads.saturating_add(1);
                let delta = StateDelta { ops: r.delta.clone() };
                if !self.apply_delta(&delta) {
                    summary.deltas_skipped = summary.deltas_skipped.saturating_add(1);
                }
            }
            KernelRecord::Immune(r) => {
                if let Some(e) = &r.elimination {
                    self.unrevoked.extend(e.revoked.iter().copied());
                    if let Some(p) = &e.pattern {
                        self.remember(p.clone());
                    }
                }
                if !self.apply_delta(&StateDelta { ops: r.delta.clone() }) {
                    summary.deltas_skipped = summary.deltas_skipped.saturating_add(1);
                }
            }
            KernelRecord::Agent(r) => {
                if !self.apply_delta(&StateDelta { ops: r.delta.clone() }) {
                    summary.deltas_skipped = summary.deltas_skipped.saturating_add(1);
                }
            }
            KernelRecord::Token(event) => {
                summary.token_events = summary.token_events.saturating_add(1);
                self.apply_token(event).map_err(|e| e.to_string())?;
            }
            KernelRecord::ApprovalPacket(p) => {
                self.open_packets.insert(p.id, (**p).clone());
            }
            KernelRecord::ApprovalDecision(d) => {
                self.open_packets.remove(&d.id);
                if d.outcome == ApprovalOutcome::Granted {
                    self.last_granted.insert((d.agent.clone(), d.action.clone()), d.summary.clone());
                }
            }
            KernelRecord::Denies(d) => {
                summary.denies_aggregated = summary.denies_aggregated.saturating_add(d.count);
            }
            KernelRecord::Health(h) => {
                // A report is always within bounds: it replaces the last one.
                if !self.apply_delta(&DscState::report_health(h.health)) {
                    summary.deltas_skipped = summary.deltas_skipped.saturating_add(1);
                }
            }
            KernelRecord::Ecs(r) => self.fold_ecs(&r.event),
            KernelRecord::Tsca(r) => self.tsca.fold(r, payload)?,
            // The evaluator's answers change no state: they only refused effects.
            KernelRecord::Mode(_) | KernelRecord::State(_) | KernelRecord::Evaluation(_) | KernelRecord::Refused(_) => {
            }
        }
        Ok(())
    }
}

/// The kernel's part of a state snapshot (`"kernel"` beside `"tokens"`):
/// what [`KernelState`] holds beyond the token registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KernelSnapshot {
    dsc: maos_dsc::DscSnapshot,
    open_packets: Vec<ApprovalPacket>,
    last_granted: Vec<(AgentId, String, ActionSummary)>,
    last_now_ms: u64,
    /// Tokens an elimination listed that are not revoked yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unrevoked: Vec<maos_model::TokenId>,
    /// The immune memory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    patterns: Vec<crate::records::ThreatPattern>,
    /// Emergency shutdowns (the boot's abuse counter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ecs: Vec<crate::ecs::EcsEntry>,
    /// The TSCA's state and chain head.
    #[serde(default)]
    tsca: Option<crate::tsca::Ledger>,
}

/// The sections of a state snapshot payload the kernel reads (the payload is
/// a JSON object; other sections belong to other folds).
#[derive(serde::Deserialize)]
struct SnapshotSections {
    tokens: maos_token::RegistrySnapshot,
    kernel: KernelSnapshot,
}

impl KernelState {
    fn snapshot(&self) -> (maos_token::RegistrySnapshot, KernelSnapshot) {
        let kernel = KernelSnapshot {
            dsc: self.dsc.snapshot(),
            open_packets: self.open_packets.values().cloned().collect(),
            last_granted: self.last_granted.iter().map(|((a, act), s)| (a.clone(), act.clone(), s.clone())).collect(),
            last_now_ms: self.last_now.0,
            unrevoked: self.unrevoked.iter().copied().collect(),
            patterns: self.patterns.iter().cloned().collect(),
            ecs: self.ecs.iter().cloned().collect(),
            tsca: Some(self.tsca.clone()),
        };
        (self.registry.snapshot(), kernel)
    }

    fn restore(config: Arc<DscConfig>, payload: &[u8]) -> Result<Self, String> {
        let profile = config.profile();
        let sections: SnapshotSections =
            serde_json::from_slice(payload).map_err(|e| format!("state snapshot does not decode: {e}"))?;
        let registry = TokenRegistry::restore(&sections.tokens).map_err(|e| format!("state snapshot tokens: {e}"))?;
        let k = sections.kernel;
        let dsc = DscState::restore(config, &k.dsc).map_err(|e| format!("state snapshot counters: {e}"))?;
        if dsc.revocation() != registry.revocations() {
            return Err("state snapshot: the counters and the token ledger disagree on revocations".into());
        }
        // A snapshot carries no activity: the window before it is unknown.
        let mut activity = crate::activity::Activity::default();
        activity.lost_before(k.last_now_ms);
        Ok(Self {
            dsc,
            registry,
            open_packets: k.open_packets.into_iter().map(|p| (p.id, p)).collect(),
            last_granted: k.last_granted.into_iter().map(|(a, act, s)| ((a, act), s)).collect(),
            last_now: UnixMillis(k.last_now_ms),
            activity,
            unrevoked: k.unrevoked.into_iter().collect(),
            patterns: {
                // The newest, as `remember` keeps them.
                let extra = k.patterns.len().saturating_sub(crate::records::PATTERNS_MAX);
                k.patterns.into_iter().skip(extra).collect()
            },
            ecs: {
                let extra = k.ecs.len().saturating_sub(crate::ecs::ECS_HISTORY_MAX);
                k.ecs.into_iter().skip(extra).collect()
            },
            tsca: k.tsca.map_or_else(
                || crate::tsca::Ledger::new(profile),
                |mut l| {
                    // The level is the profile's, whatever the snapshot says.
                    l.tsca.authorization = crate::tsca::Authorization::of(profile);
                    l
                },
            ),
        })
    }
}

/// One step of a fold: the state snapshot a cut log starts from, or a record.
enum Step<'a> {
    Snapshot(&'a [u8]),
    /// A decoded record and its payload bytes (the TSCA chain hashes those).
    Record(&'a KernelRecord, &'a [u8]),
}

/// Reads `reader` in fold order ([`LogReader::fold_records`]) and calls `each`
/// on the snapshot a cut log starts from and on every record the kernel folds.
fn scan(
    reader: &LogReader,
    mut each: impl FnMut(Lsn, Step<'_>) -> Result<(), String>,
) -> Result<(u64, Option<Lsn>), KernelError> {
    let mut count = 0u64;
    let mut last = None;
    for record in reader.fold_records().map_err(|e| KernelError::LogRead(e.to_string()))? {
        let record = record.map_err(|e| KernelError::LogRead(e.to_string()))?;
        count = count.saturating_add(1);
        last = Some(record.lsn);
        if record.kind == RecordKind::STATE_SNAPSHOT {
            each(record.lsn, Step::Snapshot(&record.payload))
                .map_err(|why| KernelError::LogCorrupt { lsn: record.lsn.0, why })?;
            continue;
        }
        if record.kind.is_reserved() {
            continue;
        }
        let Some(decoded) = KernelRecord::decode(record.kind, &record.payload) else { continue };
        if record.payload_state == PayloadState::Sealed {
            return Err(KernelError::LogCorrupt {
                lsn: record.lsn.0,
                why: "payload is encrypted and the reader has no key".into(),
            });
        }
        let decoded = decoded.map_err(|why| KernelError::LogCorrupt { lsn: record.lsn.0, why })?;
        each(record.lsn, Step::Record(&decoded, &record.payload))
            .map_err(|why| KernelError::LogCorrupt { lsn: record.lsn.0, why })?;
    }
    Ok((count, last))
}

/// The token registry and kernel state folded from the whole log, as the
/// `"tokens"` and `"kernel"` sections of a state snapshot (retention writes
/// one before it cuts segments).
///
/// # Errors
/// As [`replay`].
pub fn snapshot_sections(
    reader: &LogReader,
    config: Arc<DscConfig>,
) -> Result<(maos_token::RegistrySnapshot, KernelSnapshot), KernelError> {
    let (state, _) = rebuild(reader, config)?;
    Ok(state.snapshot())
}

/// Rebuilds the kernel state from the log.
pub(crate) fn rebuild(reader: &LogReader, config: Arc<DscConfig>) -> Result<(KernelState, FoldSummary), KernelError> {
    let mut state = KernelState::new(config.clone());
    let mut summary = FoldSummary::default();
    let (records, last) = scan(reader, |lsn, step| match step {
        Step::Snapshot(payload) => {
            state = KernelState::restore(config.clone(), payload)?;
            Ok(())
        }
        Step::Record(r, payload) => state.fold(lsn, r, payload, &mut summary),
    })?;
    summary.records = records;
    summary.last_lsn = last;
    summary.approvals_open = u64::try_from(state.open_packets.len()).unwrap_or(u64::MAX);
    Ok((state, summary))
}

/// One logged decision that the DSC does not reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The decision record.
    pub lsn: Lsn,
    /// The intent.
    pub intent: IntentId,
    /// The verdict in the log.
    pub recorded: Verdict,
    /// The verdict the DSC gives now, on the state as it was.
    pub replayed: Verdict,
    /// What differs: `verdict`, `delta` or `config`.
    pub what: &'static str,
}

/// The outcome of [`replay`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records read.
    pub records: u64,
    /// Decisions re-run.
    pub decisions: u64,
    /// Divergences found (the first [`REPLAY_DIVERGENCES_MAX`]).
    pub divergences: Vec<Divergence>,
    /// Total divergences (may exceed `divergences.len()`).
    pub divergence_count: u64,
}

impl ReplayReport {
    /// Whether every logged decision was reproduced.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.divergence_count == 0
    }
}

/// Token texts replay remembers by SHA3-256 (decision records after the first
/// with a token carry only its hash). Beyond this the memory is cleared; a
/// record whose text is then unknown is reported as a divergence, never
/// passed.
pub const REPLAY_TOKENS_MAX: usize = 65_536;

/// The token texts seen so far in the log, by SHA3-256 hex.
#[derive(Default)]
struct TokenTexts(std::collections::BTreeMap<String, String>);

impl TokenTexts {
    /// The text a record presented, remembering it if the record carries it.
    /// `Ok(None)`: no token presented; `Err`: the hash names an unseen text.
    fn resolve(&mut self, record: &DecisionRecord) -> Result<Option<String>, ()> {
        match (&record.token, &record.token_sha3) {
            (Some(text), Some(hash)) => {
                if self.0.len() >= REPLAY_TOKENS_MAX {
                    self.0.clear();
                }
                self.0.insert(hash.clone(), text.clone());
                Ok(Some(text.clone()))
            }
            (Some(text), None) => Ok(Some(text.clone())),
            (None, Some(hash)) => self.0.get(hash).cloned().map(Some).ok_or(()),
            (None, None) => Ok(None),
        }
    }
}

fn reverify(
    text: Option<&str>,
    record: &DecisionRecord,
    keys: &KeyRing,
    state: &KernelState,
) -> Result<VerifiedToken, TokenError> {
    match text {
        Some(text) => {
            let token =
                UnverifiedToken::parse(text)?.verify(keys, UnixMillis(record.now_ms), state.registry.revocations())?;
            // As the kernel did: only tokens in the ledger at that point count.
            state.registry.check_logged(&token)?;
            Ok(token)
        }
        None => Err(TokenError::UnknownToken("none presented".into())),
    }
}

fn compare(
    record: &DecisionRecord,
    intent: &Intent,
    config_hash: &str,
    state: &KernelState,
    keys: &KeyRing,
    texts: &mut TokenTexts,
) -> Option<(Verdict, &'static str)> {
    let Ok(text) = texts.resolve(record) else {
        return Some((Verdict::Deny { code: maos_model::DenyCode::Signature }, "token text not in the log"));
    };
    let token = reverify(text.as_deref(), record, keys, state);
    let decision = decide(&state.dsc, intent, token.as_ref(), UnixMillis(record.now_ms));
    if record.config_hash != config_hash {
        return Some((decision.verdict().clone(), "config"));
    }
    if *decision.verdict() != record.verdict {
        return Some((decision.verdict().clone(), "verdict"));
    }
    if decision.delta().ops != record.delta {
        return Some((decision.verdict().clone(), "delta"));
    }
    None
}

/// The budget units `token` has spent, from the decision records of the log
/// (Rule 7: what a derived child may take is the parent's budget less what it
/// spent and carved). For `maos token derive` without a running kernel, which
/// otherwise sees only the carves.
///
/// # Errors
/// As [`replay`].
pub fn spent_by(reader: &LogReader, token: maos_model::TokenId) -> Result<u64, KernelError> {
    let mut spent = 0u64;
    scan(reader, |_, step| {
        let record = match step {
            Step::Snapshot(payload) => {
                let sections: SnapshotSections =
                    serde_json::from_slice(payload).map_err(|e| format!("state snapshot does not decode: {e}"))?;
                spent = sections.kernel.dsc.token_usage(&token).spent;
                return Ok(());
            }
            Step::Record(r, _) => r,
        };
        if let KernelRecord::Decision(d) = record {
            for op in &d.delta {
                if let maos_dsc::DeltaOp::Charge { token: t, cost, .. } = op
                    && *t == token
                {
                    spent = spent.saturating_add(*cost);
                }
            }
        }
        Ok(())
    })?;
    Ok(spent)
}

/// Re-runs the DSC (`config`, token keys `keys`) over every decision record in
/// the log, each on the state folded from the records before it, and reports
/// every record whose verdict, delta or configuration hash differs. The token
/// text in each record is re-verified at the record's time against the
/// revocations logged before it.
///
/// # Errors
/// [`KernelError::LogRead`] if the log cannot be read,
/// [`KernelError::LogCorrupt`] if a kernel or token record does not decode.
pub fn replay(reader: &LogReader, config: Arc<DscConfig>, keys: &KeyRing) -> Result<ReplayReport, KernelError> {
    replay_under(reader, &[], config, keys)
}

/// [`replay`] over a log whose runs were made under several configurations
/// (a policy or threshold change between runs): `configs` are the logged
/// ones with the Lsn of the record that logged each, in log order; every
/// decision is re-run under the one in force at its position (the last
/// logged before it), the counters carried over, and diverges as `config`
/// when its record names another. Decisions before the first logged one, or
/// with none logged, run under `fallback`.
///
/// # Errors
/// As [`replay`].
pub fn replay_under(
    reader: &LogReader,
    configs: &[(Lsn, Arc<DscConfig>)],
    fallback: Arc<DscConfig>,
    keys: &KeyRing,
) -> Result<ReplayReport, KernelError> {
    let mut config = fallback;
    let mut config_hash = crate::records::hex32(&config.hash());
    let mut next = 0usize;
    let mut state = KernelState::new(config.clone());
    let mut summary = FoldSummary::default();
    let mut report = ReplayReport::default();
    let mut texts = TokenTexts::default();
    // On a cut log, replay starts from the snapshot: the decisions it folds
    // are not re-run (their records may be gone), every later one is.
    let (records, _) = scan(reader, |lsn, step| {
        // The configurations logged before this record: the last is in force.
        while let Some((at, logged)) = configs.get(next)
            && at.0 < lsn.0
        {
            next = next.saturating_add(1);
            config = logged.clone();
            // Another profile's counters were folded under other thresholds:
            // every decision after it diverges as `config`.
            config_hash = if state.dsc.reconfigure(logged.clone()) {
                crate::records::hex32(&logged.hash())
            } else {
                "another profile".to_owned()
            };
        }
        let record = match step {
            Step::Snapshot(payload) => {
                state = KernelState::restore(config.clone(), payload)?;
                config_hash = crate::records::hex32(&config.hash());
                return Ok(());
            }
            Step::Record(r, payload) => (r, payload),
        };
        let (record, payload) = record;
        if let KernelRecord::Decision(d) = record
            && let Some((replayed, what)) = compare(d, &d.intent, &config_hash, &state, keys, &mut texts)
        {
            report.divergence_count = report.divergence_count.saturating_add(1);
            if report.divergences.len() < REPLAY_DIVERGENCES_MAX {
                report.divergences.push(Divergence {
                    lsn,
                    intent: d.intent.id,
                    recorded: d.verdict.clone(),
                    replayed,
                    what,
                });
            }
        }
        state.fold(lsn, record, payload, &mut summary)
    })?;
    report.records = records;
    report.decisions = summary.decisions;
    Ok(report)
}
