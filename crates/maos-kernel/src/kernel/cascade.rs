//! Quarantine stages 3 to 5 as the kernel carries them out (spec §37.8.2,
//! §24.3, §37.11.2; issue #14): the operator's confirmed escalation
//! (`quarantine advance`), stage 3's marking of the agent's recent outputs,
//! and elimination with healing, which the operator, the commander (Hardened
//! and Isolated), the kernel after the state-save window (Standard) or Fast
//! Apoptosis (Standard) sets off.
//!
//! Guarantees: every transition is one logged `kernel.immune` record whose
//! delta the fold applies, so `maos audit replay` reproduces it; an
//! elimination is logged before anything is revoked, and at boot the kernel
//! revokes whatever the log shows an eliminated agent still holding; in
//! Hardened and Isolated nothing eliminates an agent without the commander's
//! signature over that agent's stage-3 entry.

use super::{KernelHandle, Sequencer};
use crate::activity::ACTIVITY_WINDOW_MS;
use crate::error::KernelError;
use crate::records::{
    ApprovalOutcome, Elimination, EliminationAuthority, HardViolation, ImmuneActor, KIND_IMMUNE, ReclamationStep,
    ThreatPattern, Unverified,
};
use maos_dsc::immune::Stage;
use maos_dsc::{Decision, DeltaOp, DscState, StateDelta};
use maos_model::{AgentId, DenyCode, Intent, Profile, ResourceKind, TokenId, UnixMillis};
use maos_wal::Lsn;
use std::collections::BTreeSet;

/// Standard: how long a stage-3 agent waits for the operator's decision
/// before the kernel eliminates it (the state-save window of spec §49.5
/// Right 4: its executing effects finish, the operator can still release it).
pub const STATE_SAVE_WINDOW_MS: u64 = 5 * 60_000;
/// How often the sequencer looks for stage-3 agents past their window.
pub(super) const ELIMINATION_SWEEP_MS: u64 = 10_000;
/// The longest a commander's elimination approval stays valid.
pub const ELIMINATION_APPROVAL_TTL_MS_MAX: u64 = 15 * 60_000;
/// `KERNEL-QUARANTINE-ADVANCE`: an advance the kernel does not take (a
/// missing, stale or forged commander approval in Hardened and Isolated).
pub const CODE_ADVANCE: &str = "KERNEL-QUARANTINE-ADVANCE";
/// `KERNEL-ELIMINATED`: a request decided before its agent was eliminated
/// (in the same batch) that is refused, not run, after the elimination.
pub const CODE_ELIMINATED: &str = "KERNEL-ELIMINATED";
/// `KERNEL-PAUSED`: an allowed (or escalated) request whose own fingerprint
/// sample put its agent in a quarantine stage that refuses it (a 4σ pause, or
/// a signal that reached stage 2 for an outbound request or stage 3) is not
/// run.
pub const CODE_PAUSED: &str = "KERNEL-PAUSED";
/// Paths one elimination's forensic cleanup marks (each a durable label
/// write on the sequencer's thread).
pub const QUARANTINE_PATHS_MAX: usize = 64;

/// What the commander signs (domain [`maos_crypto::SignatureDomain::QuarantineDecision`])
/// to approve eliminating an agent in Hardened and Isolated: the agent and the
/// time it entered stage 3, so the approval is for this isolation only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EliminationGrant {
    /// The agent.
    pub agent: AgentId,
    /// When it entered stage 3 ([`crate::QuarantineView::since_ms`]).
    pub stage_since_ms: u64,
    /// The approval is void after this, Unix ms.
    pub expires_ms: u64,
}

impl EliminationGrant {
    /// The signed bytes.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        let agent = self.agent.as_str().as_bytes();
        let mut out = Vec::with_capacity(48 + agent.len());
        out.extend_from_slice(b"maos-eliminate/v1\0");
        out.extend_from_slice(&u64::try_from(agent.len()).unwrap_or(u64::MAX).to_le_bytes());
        out.extend_from_slice(agent);
        out.extend_from_slice(&self.stage_since_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        out
    }
}

/// A commander's signed [`EliminationGrant`].
#[derive(Debug, Clone)]
pub struct SignedElimination {
    /// What was approved.
    pub grant: EliminationGrant,
    /// The commander's hybrid signature over [`EliminationGrant::message`].
    pub signature: maos_crypto::Signature,
}

/// What an advance did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Advanced {
    /// The agent.
    pub agent: AgentId,
    /// The stage it is in now (0 after an elimination: healed).
    pub stage: u8,
    /// Whether it was eliminated (stages 4 and 5).
    pub eliminated: bool,
    /// The tokens revoked (an elimination).
    pub revoked: Vec<TokenId>,
    /// The agents put in observation (an elimination's contacts).
    pub contacts: Vec<AgentId>,
    /// The `kernel.immune` record.
    pub lsn: u64,
}

impl KernelHandle {
    /// The operator's confirmed escalation of `agent` by one stage (spec
    /// §37.8.2: moving on needs the Security Agent's or commander's word).
    /// From stage 3 it eliminates and heals the agent: at once in Standard,
    /// with `approval` (the commander's signature) in Hardened and Isolated.
    ///
    /// # Errors
    /// `KERNEL-QUARANTINE-ADVANCE`, [`KernelError::Freeze`],
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn advance(
        &self,
        agent: AgentId,
        reason: &str,
        approval: Option<SignedElimination>,
    ) -> Result<Advanced, KernelError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let reason = super::immune::logged_reason(reason);
        self.enqueue(super::Command::Advance { agent, reason, approval: approval.map(Box::new), reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }

    /// Token ids the kernel revoked on its own (an automatic elimination or
    /// Fast Apoptosis), so the gateway closes their sessions.
    #[must_use]
    pub fn kernel_revocations(&self) -> tokio::sync::broadcast::Receiver<Vec<TokenId>> {
        self.shared.revoked_by_kernel.subscribe()
    }
}

impl Sequencer {
    pub(super) fn on_advance(
        &mut self,
        agent: &AgentId,
        reason: String,
        approval: Option<&SignedElimination>,
    ) -> Result<Advanced, KernelError> {
        let now = self.now();
        let refuse = |why: String| KernelError::Refused { code: CODE_ADVANCE, why };
        let (stage, since) = self.state.dsc.standing(agent).map_or((Stage::Normal, 0), |s| s.stage_at(now.0));
        if stage != Stage::HardIsolation {
            if !self.state.dsc.knows_agent(agent) && !self.state.registry.iter().any(|r| &r.issued.agent == agent) {
                return Err(refuse(format!("no agent {agent} is known to this kernel")));
            }
            let next = match stage {
                Stage::Normal => Stage::Observation,
                Stage::Observation => Stage::SoftIsolation,
                Stage::SoftIsolation | Stage::HardIsolation => Stage::HardIsolation,
            };
            let delta = DscState::advance(agent, next, now);
            if self.state.dsc.check(&delta).is_err() {
                return Err(KernelError::Refused {
                    code: super::CODE_STATE_LIMIT,
                    why: "the immune state is full".into(),
                });
            }
            let record = self.immune_record(Some(agent), ImmuneActor::Operator, &delta, reason, now);
            let lsn = self.log(KIND_IMMUNE, &record)?;
            let _ = self.state.apply_delta(&delta);
            tracing::warn!(%agent, stage = next.number(), "quarantine advanced by the operator");
            if next == Stage::HardIsolation {
                self.mark_unverified(agent, now);
            }
            let advanced = Advanced {
                agent: agent.clone(),
                stage: next.number(),
                eliminated: false,
                revoked: Vec::new(),
                contacts: Vec::new(),
                lsn: lsn.0,
            };
            return Ok(advanced);
        }
        let (authority, commander) = match self.state.dsc.config().profile() {
            Profile::Standard => (EliminationAuthority::Operator, None),
            Profile::Hardened | Profile::Isolated => {
                let approval = approval.ok_or_else(|| {
                    refuse(format!(
                        "eliminating {agent} needs the commander's signed approval under the {} profile (HACF L2)",
                        self.state.dsc.config().profile().name()
                    ))
                })?;
                self.check_elimination(agent, since, approval, now).map_err(refuse)?;
                (EliminationAuthority::Commander, Some(self.commander.key_id().to_hex()))
            }
        };
        self.eliminate(agent, authority, commander, None, reason).map(|(lsn, revoked, contacts)| Advanced {
            agent: agent.clone(),
            stage: 0,
            eliminated: true,
            revoked,
            contacts,
            lsn: lsn.0,
        })
    }

    fn check_elimination(
        &self,
        agent: &AgentId,
        since: u64,
        approval: &SignedElimination,
        now: UnixMillis,
    ) -> Result<(), String> {
        let g = &approval.grant;
        if &g.agent != agent || g.stage_since_ms != since {
            return Err(format!(
                "the approval is for {} in stage 3 since {}; {agent} is in stage 3 since {since}",
                g.agent, g.stage_since_ms
            ));
        }
        if g.expires_ms <= now.0 || g.expires_ms > now.0.saturating_add(ELIMINATION_APPROVAL_TTL_MS_MAX) {
            return Err(format!(
                "the approval expires at {} ms: it must lie within {} minutes after now ({})",
                g.expires_ms,
                ELIMINATION_APPROVAL_TTL_MS_MAX / 60_000,
                now.0
            ));
        }
        self.commander
            .verify(maos_crypto::SignatureDomain::QuarantineDecision, &g.message(), &approval.signature)
            .map_err(|e| format!("the commander's signature does not verify: {e}"))
    }

    /// Stages 4 and 5 (spec §37.8.2, §24.3): the agent's waiting approvals
    /// are closed denied, then one `kernel.immune` record logs the
    /// elimination with the seven reclamation steps and the healing (the
    /// agent back to normal in ring 3; the agents that read what it wrote in
    /// the last 30 minutes to observation), then every live token of it is
    /// revoked (`token.revoked` records). Answers the record, the revoked ids
    /// and the contacts.
    pub(super) fn eliminate(
        &mut self,
        agent: &AgentId,
        authority: EliminationAuthority,
        commander: Option<String>,
        violation: Option<HardViolation>,
        reason: String,
    ) -> Result<(Lsn, Vec<TokenId>, Vec<AgentId>), KernelError> {
        let now = self.now();
        let contacts: Vec<AgentId> =
            self.state.activity.contacts(agent, now.0).into_iter().filter(|c| c != agent).collect();
        let delta = DscState::eliminate(agent, &contacts, now);
        if self.state.dsc.check(&delta).is_err() {
            return Err(KernelError::Refused { code: super::CODE_STATE_LIMIT, why: "the immune state is full".into() });
        }
        // Step 2: nothing it submitted may be granted after it is gone.
        let waiting: Vec<maos_model::IntentId> =
            self.pending.values().filter(|p| &p.intent.agent == agent).map(|p| p.packet.id).collect();
        for id in &waiting {
            self.close(*id, ApprovalOutcome::Denied, None, "originator eliminated (quarantine stage 4)")?;
        }
        let roots = self.live_roots(agent, now);
        let tokens = self.live_tokens(agent, now);
        let pattern = self.threat_pattern(agent, authority, violation.as_ref(), &reason, now);
        let workspace = self.quarantine_outputs(agent, now);
        let reclamation = reclamation_steps(&waiting, &tokens, &contacts, workspace);
        let mut record = self.immune_record(
            Some(agent),
            if authority == EliminationAuthority::Operator || authority == EliminationAuthority::Commander {
                ImmuneActor::Operator
            } else {
                ImmuneActor::Kernel
            },
            &delta,
            reason,
            now,
        );
        record.elimination = Some(Box::new(Elimination {
            authority,
            commander,
            violation,
            revoked: tokens,
            reclamation,
            contacts: contacts.clone(),
            pattern: pattern.clone(),
        }));
        let lsn = self.log(KIND_IMMUNE, &record)?;
        let _ = self.state.apply_delta(&delta);
        // As the fold does: listed, not yet revoked (a failure below leaves
        // them for the next sweep or boot).
        if let Some(e) = &record.elimination {
            self.state.unrevoked.extend(e.revoked.iter().copied());
        }
        if let Some(p) = pattern {
            self.state.remember(p);
        }
        let revoked = self.revoke_roots(&roots, now)?;
        tracing::warn!(%agent, ?authority, revoked = revoked.len(), contacts = contacts.len(), "agent eliminated and healed (quarantine stages 4 and 5)");
        Ok((lsn, revoked, contacts))
    }

    /// Forensic cleanup (spec §33.8.5, CT-IMM-11, in part): the files the
    /// agent wrote in the last 30 minutes are marked untrusted in the
    /// effectors that keep them, before the elimination is logged (marking
    /// more is the safe side), so their readers' sessions are tainted from
    /// now on. Answers what step 6 of the reclamation says.
    fn quarantine_outputs(&self, agent: &AgentId, now: UnixMillis) -> String {
        let (mut written, complete) = self.state.activity.written(agent, now.0);
        // Each mark is a durable label write on the sequencer's thread: a
        // bound keeps an agent that wrote thousands of files from stalling it.
        let over = written.len().saturating_sub(QUARANTINE_PATHS_MAX);
        written.truncate(QUARANTINE_PATHS_MAX);
        let (mut marked, mut failed, mut failures) = (0usize, 0usize, Vec::new());
        for (ns, done) in self.commit.quarantine(&written) {
            marked = marked.saturating_add(done.marked);
            failed = failed.saturating_add(done.failed);
            failures.extend(done.failures.into_iter().map(|f| format!("{ns}: {f}")));
        }
        let mut done = format!(
            "{marked} path(s) it wrote through the fs effector in the last 30 minutes marked untrusted: their readers' sessions are tainted from now on"
        );
        if !complete {
            done.push_str("; the activity window did not reach back 30 minutes, so earlier writes are not marked");
        }
        if over > 0 {
            done.push_str(&format!("; {over} more path(s) over the bound of {QUARANTINE_PATHS_MAX} not marked"));
        }
        if failed > 0 {
            tracing::warn!(%agent, failed, ?failures, "forensic cleanup could not mark every path");
            done.push_str(&format!("; {failed} not marked: {}", failures.join("; ")));
        }
        done
    }

    /// The threat pattern of an incident (spec §37.8.3): the codes of the
    /// agent's signals of the last 30 minutes (and its hard violation) and
    /// the recipients and domains they aimed at. None when they named no
    /// target: a pattern without an indicator would match nothing.
    fn threat_pattern(
        &self,
        agent: &AgentId,
        authority: EliminationAuthority,
        violation: Option<&HardViolation>,
        reason: &str,
        now: UnixMillis,
    ) -> Option<ThreatPattern> {
        let (codes, indicators) = self.state.activity.signals(agent, now.0);
        let mut vector: Vec<String> = codes.iter().map(|c| c.as_str().to_owned()).collect();
        // A hard violation joins the vector; its domain (a scope miss) is no
        // indicator: only targets of attack-grade signals are.
        if let Some(v) = violation
            && !vector.contains(&v.code)
        {
            vector.push(v.code.clone());
        }
        if indicators.is_empty() {
            return None;
        }
        let (stage, since) = self.state.dsc.standing(agent).map_or((Stage::Normal, now.0), |s| s.stage_at(now.0));
        let containment = format!(
            "stage {} ({}) for {} s, then eliminated ({})",
            stage.number(),
            stage.name(),
            now.0.saturating_sub(since) / 1000,
            serde_json::to_value(authority).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
        );
        Some(ThreatPattern {
            vector,
            indicators,
            containment,
            root_cause: super::immune::logged_reason(reason),
            stage: Stage::HardIsolation.number(),
            at_ms: now.0,
        })
    }

    /// Immune memory (spec §37.8.3): an attack-grade danger signal (weight
    /// [`crate::activity::INDICATOR_WEIGHT_MIN`] or more) aimed at a target of
    /// an incident of the last 30 days skips the agent to the stage that
    /// incident ended in (one `kernel.immune` record by the
    /// kernel naming the pattern). Answers whether it matched.
    fn recall(&mut self, intent: &Intent, decision: &Decision, now: UnixMillis) -> bool {
        let Some((code, weight)) = super::signal_code(&intent.agent, &decision.delta().ops) else { return false };
        // Only an attack-grade signal of its own matches: an honest agent's
        // scope miss or flow mistake naming a remembered address does not.
        if weight < crate::activity::INDICATOR_WEIGHT_MIN {
            return false;
        }
        if self.state.dsc.stage_of(&intent.agent, now) >= Stage::HardIsolation {
            return false;
        }
        let same = |a: &maos_model::Resource, b: &maos_model::Resource| {
            a.kind == b.kind && a.value.eq_ignore_ascii_case(&b.value)
        };
        let live = |p: &&ThreatPattern| now.0.saturating_sub(p.at_ms) < crate::records::PATTERN_TTL_MS;
        let matched = self.state.patterns.iter().rev().filter(live).find_map(|p| {
            let hit = intent.resources.iter().find(|r| p.indicators.iter().any(|i| same(i, r)))?;
            Some((p.root_cause.clone(), hit.value.clone(), p.stage))
        });
        let Some((cause, target, stage)) = matched else { return false };
        let stage = if stage >= 3 { Stage::HardIsolation } else { Stage::SoftIsolation };
        let delta = DscState::advance(&intent.agent, stage, now);
        if self.state.dsc.check(&delta).is_err() {
            return false;
        }
        let reason = super::immune::logged_reason(&format!(
            "immune memory: {} aims at {target}, a target of an earlier confirmed incident ({cause})",
            code.as_str()
        ));
        let record = self.immune_record(Some(&intent.agent), ImmuneActor::Kernel, &delta, reason, now);
        if let Err(e) = self.log(KIND_IMMUNE, &record) {
            tracing::warn!(agent = %intent.agent, error = %e, "immune memory match not logged");
            return false;
        }
        let _ = self.state.apply_delta(&delta);
        tracing::warn!(agent = %intent.agent, %target, "immune memory: a known threat pattern; stage {}", stage.number());
        if stage == Stage::HardIsolation {
            self.mark_unverified(&intent.agent, now);
        }
        true
    }

    /// The agent's live tokens whose parent is not also one of its live
    /// tokens: revoking them (descendants included) revokes all of its own.
    fn live_roots(&self, agent: &AgentId, now: UnixMillis) -> Vec<TokenId> {
        let live: BTreeSet<TokenId> = self.live_tokens(agent, now).into_iter().collect();
        self.state
            .registry
            .iter()
            .filter(|r| live.contains(&r.issued.id) && r.issued.parent.is_none_or(|p| !live.contains(&p)))
            .map(|r| r.issued.id)
            .collect()
    }

    fn live_tokens(&self, agent: &AgentId, now: UnixMillis) -> Vec<TokenId> {
        self.state
            .registry
            .iter()
            .filter(|r| &r.issued.agent == agent && !r.revoked && r.issued.expires_ms > now.0)
            .map(|r| r.issued.id)
            .collect()
    }

    /// Revokes each root (one `token.revoked` record each); answers every id
    /// revoked, descendants included.
    fn revoke_roots(&mut self, roots: &[TokenId], now: UnixMillis) -> Result<Vec<TokenId>, KernelError> {
        let mut revoked = Vec::new();
        for id in roots {
            let event = self
                .state
                .registry
                .plan_revoke(*id, now, "agent eliminated (quarantine stage 4)")
                .map_err(|e| KernelError::TokenEvent(e.to_string()))?;
            if let maos_token::TokenEvent::Revoked(r) = &event {
                revoked.extend(r.ids.iter().copied());
            }
            self.on_token(&event)?;
        }
        Ok(revoked)
    }

    /// An elimination whose revocations did not all reach the log (a crash
    /// or a failed append after its record) is finished: every token its
    /// record lists that is still live is revoked now. At boot, before
    /// anything runs, and at every sweep.
    pub(super) fn finish_eliminations(&mut self) -> Result<Vec<TokenId>, KernelError> {
        if self.state.unrevoked.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let live: BTreeSet<TokenId> = self
            .state
            .unrevoked
            .iter()
            .copied()
            .filter(|id| self.state.registry.get(id).is_some_and(|r| !r.revoked))
            .collect();
        // Listed ids revoked some other way (or unknown) are done.
        self.state.unrevoked.retain(|id| live.contains(id));
        let roots: Vec<TokenId> = live
            .iter()
            .copied()
            .filter(|id| self.state.registry.get(id).and_then(|r| r.issued.parent).is_none_or(|p| !live.contains(&p)))
            .collect();
        if !roots.is_empty() {
            tracing::warn!(tokens = live.len(), "finishing an elimination cut short: revoking its tokens");
        }
        self.revoke_roots(&roots, now)
    }

    /// Standard: eliminates every stage-3 agent whose state-save window has
    /// passed without the operator's decision (the TSCA's authorization
    /// level A, rule-based). Hardened and Isolated wait for the commander.
    pub(super) fn sweep_eliminations(&mut self, now: UnixMillis) {
        match self.finish_eliminations() {
            Ok(revoked) => self.announce(revoked),
            Err(e) => tracing::warn!(error = %e, "an unfinished elimination is still unfinished; retrying"),
        }
        if self.state.dsc.config().profile() != Profile::Standard {
            return;
        }
        let due: Vec<AgentId> = self
            .state
            .dsc
            .standings()
            .filter(|(_, s)| {
                let (stage, since) = s.stage_at(now.0);
                // A fingerprint's pause waits for a human: no deny shows
                // what the agent tried.
                stage == Stage::HardIsolation && !s.paused && now.0.saturating_sub(since) >= STATE_SAVE_WINDOW_MS
            })
            .map(|(a, _)| a.clone())
            .collect();
        let mut left = false;
        for agent in due {
            let reason = format!(
                "stage 3 for {} minutes with no decision by the operator (Standard: automatic)",
                STATE_SAVE_WINDOW_MS / 60_000
            );
            // The TSCA's level A, within its budget; the watchdog's
            // confirmation is the agent's standing as the kernel holds it.
            let action = crate::tsca::TscaAction::TerminateAgent { agent: agent.clone() };
            let isolated =
                |a: &AgentId| self.state.dsc.standing(a).is_some_and(|s| s.stage_at(now.0).0 == Stage::HardIsolation);
            let confirmed = crate::tsca::confirm(&action, &[], isolated, false);
            if !self.shared.tsca_request(&action, &reason, confirmed) {
                left = true;
                continue;
            }
            match self.eliminate(&agent, EliminationAuthority::Automatic, None, None, reason) {
                Ok((_, revoked, _)) => self.announce(revoked),
                Err(e) => {
                    // Its charge is returned and a human decides: a failing
                    // elimination does not spend the incident's budget.
                    left = true;
                    tracing::warn!(%agent, error = %e, "automatic elimination failed: left to a human");
                    self.shared.tsca_failed(&action, &e.to_string());
                }
            }
        }
        self.shared.agents_due.store(left, std::sync::atomic::Ordering::SeqCst);
    }

    fn announce(&self, revoked: Vec<TokenId>) {
        if !revoked.is_empty() {
            // No subscriber (no gateway) is fine: the tokens are revoked anyway.
            let _ = self.shared.revoked_by_kernel.send(revoked);
        }
    }

    /// Stage 3's marking: the agent's allowed effects of the 30 minutes before
    /// it entered stage 3 are unverified (one `kernel.immune` record by the
    /// kernel). Best effort after the transition is durable: if the log
    /// refuses, the kernel is frozen anyway.
    pub(super) fn mark_unverified(&mut self, agent: &AgentId, now: UnixMillis) {
        let Some((Stage::HardIsolation, since)) = self.state.dsc.standing(agent).map(|s| s.stage_at(now.0)) else {
            return;
        };
        let outputs = self.state.activity.outputs(agent, since);
        let reason = format!(
            "stage 3: its outputs of the {} minutes before are unverified; consumers must re-verify them",
            ACTIVITY_WINDOW_MS / 60_000
        );
        let mut record = self.immune_record(Some(agent), ImmuneActor::Kernel, &StateDelta::default(), reason, now);
        record.unverified =
            Some(Unverified { since_ms: outputs.since_ms, decisions: outputs.decisions, complete: outputs.complete });
        if let Err(e) = self.log(KIND_IMMUNE, &record) {
            tracing::warn!(%agent, error = %e, "stage-3 marking of outputs not logged");
        }
    }

    /// Whether `decision` put `agent` in stage 3 just now: a danger signal
    /// of a deny or of its fingerprint, or a fingerprint's pause.
    pub(super) fn entered_stage_3(&self, agent: &AgentId, decision: &Decision, now: UnixMillis) -> bool {
        let raised = decision.delta().ops.iter().any(|op| match op {
            DeltaOp::Danger { agent: a, .. } => a == agent,
            DeltaOp::Fingerprint { agent: a, response, .. } => a == agent && (response.pause || response.signal > 0),
            _ => false,
        });
        raised && self.state.dsc.standing(agent).is_some_and(|s| s.stage_at(now.0) == (Stage::HardIsolation, now.0))
    }

    /// Whether `intent`'s own fingerprint sample put its agent in a
    /// quarantine stage that refuses it (it was decided on the state before
    /// the sample): then it does not run, and the why.
    pub(super) fn refused_by_own_sample(
        &self,
        intent: &Intent,
        decision: &Decision,
        now: UnixMillis,
    ) -> Option<String> {
        let responded = decision.delta().ops.iter().any(|op| {
            matches!(op, DeltaOp::Fingerprint { agent, response, .. } if agent == &intent.agent && !response.is_none())
        });
        let (code, detail) = self.quarantine_refusal(intent, now).filter(|_| responded)?;
        Some(format!(
            "this request's own behaviour sample (its fingerprint) put the agent in quarantine: {code}: {detail}; the request does not run"
        ))
    }

    /// After a deny's record is durable: whether its danger signal put the
    /// agent in stage 3 (then its outputs are marked), and in Standard
    /// whether it is one of the three hard violations (then Fast Apoptosis).
    pub(super) fn after_deny(
        &mut self,
        intent: &Intent,
        decision: &Decision,
        lsn: Lsn,
        now: UnixMillis,
        off_list: Option<&str>,
    ) {
        if self.entered_stage_3(&intent.agent, decision, now) {
            self.mark_unverified(&intent.agent, now);
        } else {
            self.recall(intent, decision, now);
        }
        if self.state.dsc.config().profile() != Profile::Standard {
            return;
        }
        let Some(violation) = hard_violation(intent, decision, lsn, off_list) else { return };
        let reason = format!("fast_apoptosis: hard violation ({}) {}", violation.condition, violation.evidence);
        match self.eliminate(&intent.agent, EliminationAuthority::FastApoptosis, None, Some(violation), reason) {
            Ok((_, revoked, _)) => self.announce(revoked),
            Err(e) => tracing::warn!(agent = %intent.agent, error = %e, "fast apoptosis failed"),
        }
    }
}

/// The three hard violations of spec §37.11.2 that qualify for Fast
/// Apoptosis, exactly: (a) a domain the token does not cover, (b) code run
/// outside the workspace (no code-execution effector exists, so never), (c)
/// check 7's hard block. Only a danger signal counts: a deny of the agent's
/// own request with its own verified token (a forged or borrowed token
/// proves nothing about the agent it names).
fn hard_violation(intent: &Intent, decision: &Decision, lsn: Lsn, off_list: Option<&str>) -> Option<HardViolation> {
    // A signal of the agent's own, whatever code weighed most (a tie or a
    // heavier code on top does not hide the violation).
    super::signal_code(&intent.agent, &decision.delta().ops)?;
    let denied = |code: DenyCode| {
        decision.checks().iter().find_map(|c| match &c.outcome {
            maos_dsc::Outcome::Deny { code: d, detail } if *d == code => Some(detail.as_str()),
            maos_dsc::Outcome::Deny { .. }
            | maos_dsc::Outcome::Pass
            | maos_dsc::Outcome::NotApplicable { .. }
            | maos_dsc::Outcome::Escalate { .. } => None,
        })
    };
    // A blocked indicator (a commander-approved extension) is not an
    // injection in the agent's own arguments: it goes through the stages.
    if let Some(detail) = denied(DenyCode::Prefilter).filter(|d| !d.starts_with(maos_dsc::checks::BLOCKED_PREFIX)) {
        return Some(HardViolation {
            condition: "c".into(),
            decision_lsn: lsn.0,
            code: DenyCode::Prefilter.as_str().into(),
            evidence: maos_model::prefix_within(detail, 512).to_owned(),
        });
    }
    // (a): a domain the token lists for no permission of this action, in a
    // request whose scope check failed.
    let domain = off_list.filter(|_| denied(DenyCode::Scope).is_some())?;
    Some(HardViolation {
        condition: "a".into(),
        decision_lsn: lsn.0,
        code: DenyCode::Scope.as_str().into(),
        evidence: format!("domain {}", maos_model::prefix_within(domain, 256)),
    })
}

/// For a scope deny: the first domain the intent names that no permission of
/// the verified token covers for its action (hard violation (a)).
pub(super) fn domain_off_list(
    intent: &Intent,
    decision: &Decision,
    token: Option<&maos_token::VerifiedToken>,
) -> Option<String> {
    decision.verdict().deny_code()?;
    let claims = token?.claims();
    // The action and the scopes only: a listed domain whose argument
    // constraint failed is a scope miss, not traffic off the list.
    intent
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::Domain)
        .find(|r| {
            let one = maos_token::ResourceRef { kind: maos_token::ScopeKind::Domain, value: r.value.as_str() };
            !claims
                .permissions
                .iter()
                .any(|p| p.action().matches(&intent.action) && p.scopes().iter().any(|s| s.matches(&one)))
        })
        .map(|r| r.value.clone())
}

/// The seven steps of spec §24.3 as this node does them.
fn reclamation_steps(
    waiting: &[maos_model::IntentId],
    tokens: &[TokenId],
    contacts: &[AgentId],
    workspace: String,
) -> Vec<ReclamationStep> {
    let step = |n: u8, name: &str, done: String| ReclamationStep { step: n, name: name.into(), done };
    vec![
        step(1, "release locks", "its executing effects keep their commit locks until they finish (the state-save window); it can start no new one".into()),
        step(
            2,
            "cancel submitted intents",
            format!("{} waiting approval(s) closed denied, originator eliminated", waiting.len()),
        ),
        step(3, "inbox to dead-letter", "nothing to move: no message gateway is built (issue #19)".into()),
        step(4, "free hot memory", "its HTTP and MCP sessions are closed with its tokens".into()),
        step(5, "revoke tokens", format!("{} live token(s) revoked", tokens.len())),
        step(6, "release VFS locks, orphan the workspace", workspace),
        step(
            7,
            "notify dependants",
            format!("{} agent(s) that read what it wrote in the last 30 minutes put in observation", contacts.len()),
        ),
    ]
}

#[cfg(test)]
mod hard_violations {
    use super::*;
    use maos_model::{EffectClass, IfcLevel, Resource, Ring, TrustClass};

    const NOW: UnixMillis = UnixMillis(1_767_225_600_000);

    fn http_get(domain: &str) -> Intent {
        let resource = Resource { kind: ResourceKind::Domain, value: domain.into() };
        let mut i = crate::activity::test_intent("fetcher", "http.get", EffectClass::Observe, resource);
        i.args.insert("url".to_owned(), maos_model::ArgValue::Str(format!("https://{domain}/x")));
        i
    }

    /// Fast Apoptosis's condition (a), exactly: a scope deny of the agent's
    /// own request naming a domain its token lists for no permission of the
    /// action. A listed domain, or a scope miss on a path, is not one.
    #[test]
    fn condition_a_is_a_domain_off_the_tokens_list() {
        let key = maos_crypto::SigningKey::from_seeds(&[0x5A; 64]).unwrap();
        let req = maos_token::MintRequest {
            agent: AgentId::new("fetcher").unwrap(),
            ring: Ring::Untrusted,
            trust_class: TrustClass::Transparent,
            clearance: IfcLevel::Internal,
            permissions: vec![maos_token::parse_permission("http.get=domain:api.example.com").unwrap()],
            ttl_ms: Some(60_000),
            rate_per_hour: 3600,
            max_ops: 100,
            budget: 10,
            mission: None,
            commander_ack: false,
        };
        let text = maos_token::mint(&key, req, NOW, 0, [3; 10]).unwrap().text().to_owned();
        let keys = maos_token::KeyRing::with(key.verifying_key().clone());
        let token = maos_token::UnverifiedToken::parse(&text)
            .unwrap()
            .verify(&keys, NOW, &maos_token::RevocationState::default())
            .unwrap();
        let state = DscState::new(maos_dsc::DscConfig::default_for(Profile::Standard).unwrap());
        let off = http_get("evil.example");
        let decision = maos_dsc::decide(&state, &off, Ok(&token), NOW);
        assert_eq!(decision.verdict().deny_code(), Some(DenyCode::Scope));
        let domain = domain_off_list(&off, &decision, Some(&token));
        assert_eq!(domain.as_deref(), Some("evil.example"));
        let v = hard_violation(&off, &decision, Lsn(9), domain.as_deref()).unwrap();
        assert_eq!((v.condition.as_str(), v.decision_lsn, v.code.as_str()), ("a", 9, "DSC-1-SCOPE"));
        // A listed domain is allowed: nothing to find.
        let listed = http_get("api.example.com");
        let decision = maos_dsc::decide(&state, &listed, Ok(&token), NOW);
        assert_eq!(decision.verdict().deny_code(), None);
        assert_eq!(domain_off_list(&listed, &decision, Some(&token)), None);
        // Without the token's verification (a forged or foreign token) there
        // is no signal and so no violation.
        let forged = maos_dsc::decide(&state, &off, Err(&maos_token::TokenError::UnknownToken("x".into())), NOW);
        assert_eq!(hard_violation(&off, &forged, Lsn(10), Some("evil.example")), None);
    }
}
