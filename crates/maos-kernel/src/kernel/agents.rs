//! The agent registry (issue #14 item 1; spec §7, §41.5) and the commander's
//! end of a security fever (spec §37.11.1).
//!
//! Guarantees: the ring Mandatory Rule 4 compares a token's with is the one
//! registered here, logged as a `kernel.agent` record before it counts (ring 3
//! for an agent nobody registered). Rings only move outward at run time:
//! demotion to ring 3 is instant and revokes the agent's live tokens for a
//! more trusted ring; a move inward needs the five-stage re-onboarding, which
//! is not built, so it is refused (`KERNEL-ONBOARDING-NOT-BUILT`). A trust
//! class is immutable once registered.

use super::{Command, KernelHandle, Sequencer};
use crate::error::KernelError;
use crate::records::{AgentAction, AgentRecord, ImmuneActor, KIND_AGENT, KIND_IMMUNE, RECORD_VERSION};
use maos_dsc::DscState;
use maos_dsc::aggregate::AggregateTotals;
use maos_dsc::immune::Stage;
use maos_model::{AgentId, Profile, Ring, TokenId, TrustClass, UnixMillis};
use maos_wal::Lsn;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// `KERNEL-ONBOARDING-NOT-BUILT`: a move to a more trusted ring needs the
/// five-stage re-onboarding of spec §7.6, which this node does not have.
pub const CODE_ONBOARDING_NOT_BUILT: &str = "KERNEL-ONBOARDING-NOT-BUILT";
/// `KERNEL-AGENT-REGISTER`: a registration the spec does not allow (a ring
/// other than 2 or 3, a changed or external class, a class the profile keeps
/// out of ring 2).
pub const CODE_AGENT_REGISTER: &str = "KERNEL-AGENT-REGISTER";
/// Agents listed by one `maos agents` answer.
pub const AGENTS_LISTED_MAX: usize = 10_000;

/// One agent as the operator sees it, at the time asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// The agent.
    pub agent: AgentId,
    /// The ring Rule 4 holds it to (3 when unregistered).
    pub ring: u8,
    /// Whether its ring is on record: the operator registered it, or it was
    /// demoted (by the operator or by hard isolation).
    pub registered: bool,
    /// Its trust class, if registered with one.
    pub class: Option<TrustClass>,
    /// Quarantine stage 0–3 now.
    pub stage: u8,
    /// Danger score now.
    pub score: u32,
    /// Aggregate monitoring counters in their windows now.
    pub aggregate: AggregateTotals,
    /// Its behavioural fingerprint; `None` when it has made no decision yet,
    /// or the node's fingerprint table was full when it made its first.
    #[serde(default)]
    pub fingerprint: Option<maos_dsc::fingerprint::Summary>,
    /// Stage 3 is a fingerprint's pause waiting for a human's review.
    #[serde(default)]
    pub paused: bool,
}

/// The security fever, while it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeverView {
    /// When it began, Unix ms.
    pub since_ms: u64,
    /// When it ends if no danger signal comes, Unix ms.
    pub ends_ms: u64,
}

/// What `maos agents` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentsView {
    /// Every agent the kernel knows (registered, charged, or with a standing), by id.
    pub agents: Vec<AgentView>,
    /// Whether the list stopped at [`AGENTS_LISTED_MAX`].
    pub truncated: bool,
    /// The security fever, if on.
    pub fever: Option<FeverView>,
    /// The aggregate monitor's thresholds in force.
    pub aggregate_limits: maos_dsc::aggregate::AggregateLimits,
    /// Whether it escalates or only counts (calibration, Standard only).
    pub aggregate_mode: maos_dsc::aggregate::AggregateMode,
}

impl KernelHandle {
    /// Registers `agent` in `ring` with `class` (the operator's stand-in for
    /// onboarding), logged as `kernel.agent`. A ring-3 registration of an
    /// agent in ring 2 is a demotion ([`Self::demote_agent`]): the answer then
    /// lists the revoked token ids (else it is empty).
    ///
    /// # Errors
    /// `KERNEL-ONBOARDING-NOT-BUILT` for a move inward, `KERNEL-AGENT-REGISTER`
    /// for what the spec does not allow, [`KernelError::Freeze`],
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn register_agent(
        &self,
        agent: AgentId,
        ring: Ring,
        class: TrustClass,
        reason: &str,
    ) -> Result<(Lsn, Vec<TokenId>), KernelError> {
        let (reply, rx) = oneshot::channel();
        let reason = super::immune::logged_reason(reason);
        self.enqueue(Command::Register { agent, ring, class, reason, reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }

    /// Demotes `agent` to ring 3 at once and revokes its live tokens for a
    /// more trusted ring; returns the record's LSN and the revoked ids.
    ///
    /// # Errors
    /// [`KernelError::Freeze`], [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn demote_agent(&self, agent: AgentId, reason: &str) -> Result<(Lsn, Vec<TokenId>), KernelError> {
        let (reply, rx) = oneshot::channel();
        let reason = super::immune::logged_reason(reason);
        self.enqueue(Command::Demote { agent, reason, reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }

    /// Every agent the kernel knows, with ring, class, stage, score and
    /// aggregate counters, and the fever if one is on.
    ///
    /// # Errors
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn agents(&self) -> Result<AgentsView, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Agents { reply })?;
        rx.await.map_err(|_| KernelError::Stopped)
    }

    /// The security fever, if one is on.
    ///
    /// # Errors
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn fever(&self) -> Result<Option<FeverView>, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Fever { reply })?;
        rx.await.map_err(|_| KernelError::Stopped)
    }

    /// The commander ends the security fever (logged as `kernel.immune`).
    ///
    /// # Errors
    /// [`KernelError::NoFever`], [`KernelError::Freeze`], [`KernelError::Busy`],
    /// [`KernelError::Stopped`].
    pub async fn end_fever(&self, reason: &str) -> Result<Lsn, KernelError> {
        let (reply, rx) = oneshot::channel();
        let reason = super::immune::logged_reason(reason);
        self.enqueue(Command::EndFever { reason, reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }
}

/// Whether the spec lets `class` into `ring` under `profile` (spec §41.5:
/// class C reaches ring 2 only in Standard, class B not in Isolated).
fn class_allows(profile: Profile, ring: Ring, class: TrustClass) -> Result<(), String> {
    match (ring, class, profile) {
        (_, TrustClass::External, _) => {
            Err("external agents are not registered here (they reach MAOS over A2A)".into())
        }
        (Ring::Kernel | Ring::System, ..) => Err("agents are registered in ring 2 or 3".into()),
        (Ring::Trusted, TrustClass::Opaque, Profile::Hardened | Profile::Isolated) => {
            Err(format!("class c (opaque) stays in ring 3 under the {} profile", profile.name()))
        }
        (Ring::Trusted, TrustClass::Inspectable, Profile::Isolated) => {
            Err("class b (inspectable) stays in ring 3 under the isolated profile".into())
        }
        _ => Ok(()),
    }
}

impl Sequencer {
    pub(super) fn on_register(
        &mut self,
        agent: &AgentId,
        ring: Ring,
        class: TrustClass,
        reason: String,
    ) -> Result<(Lsn, Vec<TokenId>), KernelError> {
        let now = self.now();
        let refuse = |code, why: String| KernelError::Refused { code, why };
        class_allows(self.state.dsc.config().profile(), ring, class).map_err(|why| refuse(CODE_AGENT_REGISTER, why))?;
        let usage = self.state.dsc.agent_usage(agent);
        let stage = self.state.dsc.stage_of(agent, now).number();
        if ring == Ring::Trusted && stage >= 2 {
            return Err(refuse(
                CODE_AGENT_REGISTER,
                format!("{agent} is in quarantine stage {stage}: no ring 2 for it"),
            ));
        }
        if let Some(registered) = usage.class
            && registered != class
        {
            let why = format!("{agent} is registered as class {}; a class never changes", registered.name());
            return Err(refuse(CODE_AGENT_REGISTER, why));
        }
        match usage.ring {
            Some(current) if ring.code() < current.code() => {
                let why = format!(
                    "{agent} is in ring {}: moving inward needs the five-stage re-onboarding (spec §7.6), which is not built",
                    current.code()
                );
                Err(refuse(CODE_ONBOARDING_NOT_BUILT, why))
            }
            Some(current) if ring.code() > current.code() => self.on_demote(agent, reason),
            _ => {
                let delta = DscState::register_agent(agent, ring, Some(class));
                self.log_agent(agent, AgentAction::Register, &delta, Vec::new(), reason, now)
                    .map(|lsn| (lsn, Vec::new()))
            }
        }
    }

    /// Demotion: the `kernel.agent` record moves the agent to ring 3 first
    /// (from then on Rule 4 refuses every ring-2 token of it), then its live
    /// root tokens for ring 2 are revoked as cleanup (each a `token.revoked`
    /// record, descendants included). Answers every revoked id, so the
    /// gateway can close their sessions.
    pub(super) fn on_demote(&mut self, agent: &AgentId, reason: String) -> Result<(Lsn, Vec<TokenId>), KernelError> {
        let now = self.now();
        let roots: Vec<TokenId> = self
            .state
            .registry
            .iter()
            .filter(|r| {
                &r.issued.agent == agent
                    && r.issued.ring.code() < Ring::Untrusted.code()
                    && r.issued.parent.is_none()
                    && !r.revoked
                    && r.issued.expires_ms > now.0
            })
            .map(|r| r.issued.id)
            .collect();
        let delta = DscState::register_agent(agent, Ring::Untrusted, None);
        let why = format!("agent demoted to ring 3: {reason}");
        let lsn = self.log_agent(agent, AgentAction::Demote, &delta, roots.clone(), reason, now)?;
        let mut revoked = Vec::new();
        for id in roots {
            let event =
                self.state.registry.plan_revoke(id, now, &why).map_err(|e| KernelError::TokenEvent(e.to_string()))?;
            if let maos_token::TokenEvent::Revoked(r) = &event {
                revoked.extend(r.ids.iter().copied());
            }
            self.on_token(&event)?;
        }
        tracing::warn!(%agent, revoked = revoked.len(), "agent demoted to ring 3");
        Ok((lsn, revoked))
    }

    fn log_agent(
        &mut self,
        agent: &AgentId,
        action: AgentAction,
        delta: &maos_dsc::StateDelta,
        revoked: Vec<TokenId>,
        reason: String,
        now: UnixMillis,
    ) -> Result<Lsn, KernelError> {
        let record = AgentRecord {
            v: RECORD_VERSION,
            agent: agent.clone(),
            action,
            delta: delta.ops.clone(),
            revoked,
            reason,
            at_ms: now.0,
        };
        // Checked before it is logged, so the log never holds a registration
        // the fold would skip (the agents bound).
        if self.state.dsc.check(delta).is_err() {
            let why = "the agent table is full".to_owned();
            return Err(KernelError::Refused { code: super::CODE_STATE_LIMIT, why });
        }
        let lsn = self.log(KIND_AGENT, &record)?;
        let _ = self.state.apply_delta(delta);
        Ok(lsn)
    }

    pub(super) fn agents_view(&mut self) -> AgentsView {
        let now = self.now();
        let dsc = &self.state.dsc;
        // Registered or charged agents, then those known only by a standing.
        let mut ids: std::collections::BTreeSet<&AgentId> = dsc.agents().map(|(a, _)| a).collect();
        ids.extend(dsc.standings().map(|(a, _)| a));
        let truncated = ids.len() > AGENTS_LISTED_MAX;
        let agents = ids
            .into_iter()
            .take(AGENTS_LISTED_MAX)
            .map(|agent| {
                let usage = dsc.agent_usage(agent);
                let standing = dsc.standing(agent);
                AgentView {
                    agent: agent.clone(),
                    ring: usage.ring_or_untrusted().code(),
                    registered: usage.ring.is_some(),
                    class: usage.class,
                    stage: standing.map_or(0, |s| s.stage_at(now.0).0.number()),
                    score: standing.map_or(0, |s| s.score_at(now.0)),
                    aggregate: dsc.aggregate(agent).map(|a| a.totals_at(now.0)).unwrap_or_default(),
                    fingerprint: dsc.fingerprint(agent).map(|f| f.summary(now.0)),
                    paused: standing.is_some_and(|s| s.paused && s.stage_at(now.0).0 == Stage::HardIsolation),
                }
            })
            .collect();
        let (aggregate_limits, aggregate_mode) = self.state.dsc.config().aggregate();
        AgentsView { agents, truncated, fever: self.fever_view(), aggregate_limits, aggregate_mode }
    }

    pub(super) fn fever_view(&mut self) -> Option<FeverView> {
        let now = self.now();
        self.state.dsc.fever_at(now).map(|f| FeverView { since_ms: f.since_ms, ends_ms: f.ends_ms() })
    }

    pub(super) fn on_end_fever(&mut self, reason: String) -> Result<Lsn, KernelError> {
        let now = self.now();
        if self.state.dsc.fever_at(now).is_none() {
            return Err(KernelError::NoFever);
        }
        let delta = DscState::end_fever(now);
        let record = self.immune_record(None, ImmuneActor::Operator, &delta, reason, now);
        let lsn = self.log(KIND_IMMUNE, &record)?;
        let _ = self.state.apply_delta(&delta);
        tracing::info!("security fever ended by the commander");
        Ok(lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §41.5: class A reaches ring 2 in every profile, class B not in
    /// Isolated, class C only in Standard; external agents and rings 0–1 never.
    #[test]
    fn the_profile_decides_which_classes_reach_ring_2() {
        use Profile::{Hardened, Isolated, Standard};
        use TrustClass::{External, Inspectable, Opaque, Transparent};
        let ok = |p, r, c| class_allows(p, r, c).is_ok();
        for p in [Standard, Hardened, Isolated] {
            assert!(ok(p, Ring::Trusted, Transparent));
            assert!(ok(p, Ring::Untrusted, Opaque));
            assert!(!ok(p, Ring::Untrusted, External));
            assert!(!ok(p, Ring::System, Transparent));
        }
        assert!(ok(Standard, Ring::Trusted, Opaque));
        assert!(!ok(Hardened, Ring::Trusted, Opaque));
        assert!(ok(Hardened, Ring::Trusted, Inspectable));
        assert!(!ok(Isolated, Ring::Trusted, Inspectable));
    }
}
