//! The kernel's side of the immune system (issue #14): the operator's view of
//! every agent's quarantine standing and the logged release. The standing
//! itself is DSC state ([`maos_dsc::immune`]), changed by the danger signals
//! in decision deltas and by the `kernel.immune` records written here.

use super::{Command, KernelHandle, Sequencer};
use crate::error::KernelError;
use crate::records::{ImmuneActor, ImmuneRecord, KIND_IMMUNE, RECORD_VERSION, TimeIntegrity};
use maos_dsc::{Decision, DeltaOp, DscState, StateDelta};
use maos_model::{AgentId, UnixMillis};
use maos_wal::Lsn;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Longest release reason kept in the log.
pub const RELEASE_REASON_BYTES_MAX: usize = 1024;
/// A reason (or a report's evidence) as it is logged: at most
/// [`RELEASE_REASON_BYTES_MAX`] bytes, cut at a character boundary.
pub(super) fn logged_reason(reason: &str) -> String {
    maos_model::prefix_within(reason, RELEASE_REASON_BYTES_MAX).to_owned()
}

/// A wall-clock step larger than this against the kernel's monotonic
/// reference raises a Time Integrity Alert (spec CT-IMM-17: more than 5 s).
pub const TIME_STEP_ALERT_MS: u64 = 5_000;

/// `KERNEL-REPORT-RATE`: a reporter's sixth report in an hour (spec §33.7.2).
pub const CODE_REPORT_RATE: &str = "KERNEL-REPORT-RATE";
/// `KERNEL-REPORT-SUSPENDED`: a reporter whose reports of the last 30 days
/// were false alarms more than 80 % of the time (CT-IMM-07).
pub const CODE_REPORT_SUSPENDED: &str = "KERNEL-REPORT-SUSPENDED";
/// `KERNEL-REPORT-INVALID`: a report the protocol does not allow (about the
/// reporter itself, about an agent nobody knows, or by a reporter in
/// quarantine stage 2 or more).
pub const CODE_REPORT_INVALID: &str = "KERNEL-REPORT-INVALID";

/// One agent's quarantine standing as the operator sees it, at the time asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineView {
    /// The agent.
    pub agent: AgentId,
    /// Stage 0–3 now.
    pub stage: u8,
    /// The stage's name (`observation`, `soft isolation`, …).
    pub stage_name: String,
    /// When the agent entered that stage, Unix ms.
    pub since_ms: u64,
    /// Danger score now (signals of the last hour).
    pub score: u32,
    /// Signals kept since the last release.
    pub signals: usize,
    /// The last signal's code (a deny code, or `IMM-FINGERPRINT`) and time.
    pub last_signal: Option<(String, u64)>,
    /// Stage 3 is a fingerprint's pause waiting for a human's review (the
    /// kernel never eliminates it on its own).
    #[serde(default)]
    pub paused: bool,
}

impl KernelHandle {
    /// Every agent with a danger signal since its last release, by agent id.
    ///
    /// # Errors
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn quarantine(&self) -> Result<Vec<QuarantineView>, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Quarantine { reply })?;
        rx.await.map_err(|_| KernelError::Stopped)
    }

    /// The agent's own report that it is compromised (apoptosis, spec
    /// §37.11.2): always accepted; the agent goes to stage 3 at once.
    ///
    /// # Errors
    /// [`KernelError::Freeze`], [`KernelError::Refused`] (`KERNEL-STATE-LIMIT`),
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn apoptosis(&self, agent: AgentId, reason: &str) -> Result<Lsn, KernelError> {
        let (reply, rx) = oneshot::channel();
        let reason = logged_reason(reason);
        self.enqueue(Command::Apoptosis { agent, reason, reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }

    /// Another agent's report of an anomaly in `suspect` (a Danger Signal,
    /// spec §33.7.2): at most [`maos_dsc::immune::REPORTS_PER_HOUR_MAX`] an
    /// hour per reporter; logged as `kernel.immune` with the evidence; weighs
    /// what [`maos_dsc::immune::AnomalyClass::weight`] says, and reports alone
    /// never reach soft isolation.
    ///
    /// # Errors
    /// `KERNEL-REPORT-RATE` (the sixth in an hour), `KERNEL-REPORT-INVALID`
    /// (about itself: that is apoptosis), [`KernelError::Freeze`],
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn report(
        &self,
        reporter: AgentId,
        suspect: AgentId,
        class: maos_dsc::immune::AnomalyClass,
        evidence: &str,
    ) -> Result<Lsn, KernelError> {
        let (reply, rx) = oneshot::channel();
        let evidence = logged_reason(evidence);
        self.enqueue(Command::Report { reporter, suspect, class, evidence, reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }

    /// Releases `agent` from quarantine: a `kernel.immune` record with its
    /// standing as evidence, then stage 0 with no signals.
    ///
    /// # Errors
    /// [`KernelError::NotQuarantined`], [`KernelError::Freeze`],
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn release(&self, agent: AgentId, reason: &str) -> Result<Lsn, KernelError> {
        let (reply, rx) = oneshot::channel();
        let reason = logged_reason(reason);
        self.enqueue(Command::Release { agent, reason, reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }
}

impl Sequencer {
    pub(super) fn quarantine_views(&mut self) -> Vec<QuarantineView> {
        let now = self.now().0;
        self.state
            .dsc
            .standings()
            .map(|(agent, s)| {
                let (stage, since_ms) = s.stage_at(now);
                QuarantineView {
                    agent: agent.clone(),
                    stage: stage.number(),
                    stage_name: stage.name().to_owned(),
                    since_ms,
                    score: s.score_at(now),
                    signals: s.signals.len(),
                    last_signal: s.signals.last().map(|l| (l.code.as_str().to_owned(), l.at_ms)),
                    paused: s.paused && stage == maos_dsc::immune::Stage::HardIsolation,
                }
            })
            .collect()
    }

    /// The `kernel.immune` record of `by` changing `agent`'s standing with
    /// `delta`, with the standing before as evidence.
    pub(super) fn immune_record(
        &self,
        agent: Option<&AgentId>,
        by: ImmuneActor,
        delta: &StateDelta,
        reason: String,
        now: UnixMillis,
    ) -> ImmuneRecord {
        let (stage_before, score_before) = agent
            .and_then(|a| self.state.dsc.standing(a))
            .map_or((0, 0), |s| (s.stage_at(now.0).0.number(), s.score_at(now.0)));
        ImmuneRecord {
            v: RECORD_VERSION,
            agent: agent.cloned(),
            by,
            reporter: None,
            delta: delta.ops.clone(),
            stage_before,
            score_before,
            reason,
            at_ms: now.0,
            elimination: None,
            unverified: None,
            time: None,
            report: None,
        }
    }

    /// Time integrity (spec CT-IMM-17), at every heartbeat: when the wall
    /// clock has stepped more than [`TIME_STEP_ALERT_MS`] against a
    /// monotonic reference since boot or the last alert (smaller steps add
    /// up), a Time Integrity Alert is logged (a `kernel.immune` record by
    /// `kernel` with `time`). The kernel decides on wall time (tokens are
    /// stamped in it) and never goes back: a step back holds its time until
    /// the wall catches up; a step forward moves it, and the security timers
    /// with it: the alert flags the decisions since the last check.
    pub(super) fn check_time(&mut self, now: UnixMillis) {
        let offset = self.shared.clock.wall_offset_ms();
        let step = offset.saturating_sub(self.wall_offset_ms);
        let since_ms = self.wall_checked_ms;
        if step.unsigned_abs() <= TIME_STEP_ALERT_MS {
            self.wall_checked_ms = now.0;
            return;
        }
        let reason = format!(
            "time integrity alert: the wall clock stepped {step:+} ms against the monotonic clock since {since_ms} ms (now {offset:+} ms since the kernel started); the times of the records logged around the step, and the security timers running then, are off by up to that much"
        );
        tracing::warn!(step_ms = step, wall_offset_ms = offset, "time integrity alert");
        let mut record = self.immune_record(None, ImmuneActor::Kernel, &StateDelta::default(), reason, now);
        record.time = Some(TimeIntegrity { step_ms: step, wall_offset_ms: offset, since_ms });
        // Kept until logged: a failed append is retried at the next heartbeat.
        match self.log(KIND_IMMUNE, &record) {
            Ok(_) => {
                self.wall_offset_ms = offset;
                self.wall_checked_ms = now.0;
            }
            Err(e) => tracing::warn!(error = %e, "time integrity alert not logged; retrying"),
        }
    }

    pub(super) fn on_release(&mut self, agent: &AgentId, reason: String) -> Result<Lsn, KernelError> {
        let now = self.now();
        if self.state.dsc.standing(agent).is_none() {
            return Err(KernelError::NotQuarantined(agent.clone()));
        }
        let delta = DscState::release(agent, now);
        let record = self.immune_record(Some(agent), ImmuneActor::Operator, &delta, reason, now);
        // Logged before it loosens anything; a release removes an entry, so
        // it cannot hit a bound.
        let lsn = self.log(KIND_IMMUNE, &record)?;
        let _ = self.state.apply_delta(&delta);
        tracing::info!(%agent, stage = record.stage_before, "released from quarantine");
        Ok(lsn)
    }

    /// Apoptosis (spec §37.11.2): always accepted, whatever the agent's
    /// stage, rate or token use; stage 3 at once, logged with the reason.
    pub(super) fn on_apoptosis(&mut self, agent: &AgentId, reason: String) -> Result<Lsn, KernelError> {
        let now = self.now();
        let delta = DscState::apoptosis(agent, now);
        let record = self.immune_record(Some(agent), ImmuneActor::Agent, &delta, reason, now);
        // A delta over a state bound is refused before anything is logged
        // (the fold would skip it); applied once it is durable.
        if self.state.dsc.check(&delta).is_err() {
            let why = "the immune state is full".to_owned();
            return Err(KernelError::Refused { code: super::CODE_STATE_LIMIT, why });
        }
        let before = self.state.dsc.stage_of(agent, now);
        let lsn = self.log(KIND_IMMUNE, &record)?;
        let _ = self.state.apply_delta(&delta);
        tracing::warn!(%agent, "apoptosis: the agent reported its own compromise; stage 3");
        if before != maos_dsc::immune::Stage::HardIsolation {
            self.mark_unverified(agent, now);
        }
        Ok(lsn)
    }

    pub(super) fn on_report(
        &mut self,
        reporter: &AgentId,
        suspect: &AgentId,
        class: maos_dsc::immune::AnomalyClass,
        evidence: String,
    ) -> Result<Lsn, KernelError> {
        let now = self.now();
        let refuse = |code, why: String| KernelError::Refused { code, why };
        if reporter == suspect {
            let why = "an agent reports its own compromise with apoptosis, not a report".to_owned();
            return Err(refuse(CODE_REPORT_INVALID, why));
        }
        // A report about an agent nobody knows would only grow the standings.
        let known =
            self.state.dsc.knows_agent(suspect) || self.state.registry.iter().any(|r| &r.issued.agent == suspect);
        if !known {
            return Err(refuse(CODE_REPORT_INVALID, format!("no agent {suspect} is known to this kernel")));
        }
        // An isolated agent may be the compromised one: it does not smear others.
        let stage = self.state.dsc.stage_of(reporter, now);
        if stage >= maos_dsc::immune::Stage::SoftIsolation {
            let why = format!("{reporter} is in quarantine stage {}: its reports are not taken", stage.number());
            return Err(refuse(CODE_REPORT_INVALID, why));
        }
        let max = maos_dsc::immune::REPORTS_PER_HOUR_MAX;
        if self.state.dsc.reports_in_hour(reporter, now) >= max {
            return Err(refuse(CODE_REPORT_RATE, format!("{reporter} made {max} reports in the last hour")));
        }
        let assessment = self.state.dsc.assess_report(reporter, suspect, class, now);
        if assessment.suspended {
            let (resolved, false_) = self.state.dsc.reporter(reporter).map_or((0, 0), |r| r.false_alarms_at(now.0));
            let why = format!(
                "{reporter}'s reports are suspended: {false_} of its {resolved} reports of the last 30 days were not confirmed by their suspect's own signals (more than {} %)",
                maos_dsc::reporters::FALSE_ALARM_PERCENT_MAX
            );
            return Err(refuse(CODE_REPORT_SUSPENDED, why));
        }
        let delta = DscState::report(reporter, suspect, class, now);
        let mut record = self.immune_record(Some(suspect), ImmuneActor::Peer, &delta, evidence, now);
        record.reporter = Some(reporter.clone());
        record.report = Some(assessment);
        if self.state.dsc.check(&delta).is_err() {
            let why = "the immune state is full".to_owned();
            return Err(refuse(super::CODE_STATE_LIMIT, why));
        }
        let lsn = self.log(KIND_IMMUNE, &record)?;
        let _ = self.state.apply_delta(&delta);
        tracing::info!(%reporter, %suspect, class = class.name(), "danger signal reported by an agent");
        Ok(lsn)
    }

    /// The quarantine refusal of `intent` at `now` (the DSC's own gate), for
    /// an approval granted after its agent entered quarantine.
    pub(super) fn quarantine_refusal(
        &self,
        intent: &maos_model::Intent,
        now: UnixMillis,
    ) -> Option<(&'static str, String)> {
        match maos_dsc::checks::quarantine(&self.state.dsc, intent, now)? {
            maos_dsc::Outcome::Deny { code, detail } => Some((code.as_str(), detail)),
            maos_dsc::Outcome::Pass | maos_dsc::Outcome::NotApplicable { .. } | maos_dsc::Outcome::Escalate { .. } => {
                None
            }
        }
    }

    /// What a deny that was a danger signal adds to the agent's explanation:
    /// the stage it is in now (the delta is applied already).
    pub(super) fn immune_note(&self, agent: &AgentId, decision: &Decision, now: UnixMillis) -> Option<String> {
        let standing = self.state.dsc.standing(agent).filter(|_| signals(decision))?;
        let (stage, _) = standing.stage_at(now.0);
        Some(format!(
            "; danger signal recorded: quarantine stage {} ({}), danger score {}",
            stage.number(),
            stage.name(),
            standing.score_at(now.0)
        ))
    }
}

/// Whether a decision's delta carries a danger signal: such a deny is logged
/// in full, never folded into a deny window.
pub(super) fn signals(decision: &Decision) -> bool {
    decision.delta().ops.iter().any(|op| match op {
        DeltaOp::Danger { .. } => true,
        DeltaOp::Fingerprint { response, .. } => response.pause || response.signal > 0,
        _ => false,
    })
}

/// The danger signal (code and weight) a decision's delta records for `agent`, if any.
pub(crate) fn signal_code(agent: &AgentId, ops: &[DeltaOp]) -> Option<(maos_model::DenyCode, u32)> {
    ops.iter().find_map(|op| match op {
        DeltaOp::Danger { agent: a, code, weight, .. } if a == agent => Some((*code, *weight)),
        _ => None,
    })
}
