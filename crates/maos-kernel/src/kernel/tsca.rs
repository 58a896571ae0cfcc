//! The TSCA, the kernel's half (spec §38.7; the rules are in [`crate::tsca`]).
//!
//! Guarantees:
//! - **It runs on a thread of its own**, fed each observation by the
//!   watchdog, for components and the system (a stalled sequencer or runtime
//!   does not stop it; a TSCA waiting on the log does not stop the watchdog;
//!   while the log's writer is stalled its records are refused, so it takes
//!   no action), and in the sequencer's
//!   elimination sweep for agents; both ask the same ledger under one lock,
//!   so the budget is one per incident whoever asks.
//! - **Logged, then done**: every event is a `kernel.tsca` record chained to
//!   the previous one before the ledger takes it; a record the log refuses
//!   is an action not taken.
//! - **What it can do is what it is handed**: a DSC instance restart (the
//!   watchdog starts a new instance), a supervised ring-1 component's restart
//!   (its restart function, e.g. a new MCP upstream supervisor), an agent's
//!   termination (the
//!   sequencer's elimination), a system restart (a request to whoever runs
//!   the kernel; without one, the restart is blocked, never pretended). It
//!   holds no token key, no policy and no way to change the configuration.

use super::{Command, KernelHandle, Shared, watch::Observed};
use crate::ecs::EcsTrigger;
use crate::error::KernelError;
use crate::posture::Component;
use crate::records::KIND_TSCA;
use crate::tsca::{
    self, CODE_TSCA_APPROVAL, COMPONENT_RESTART_AFTER_MS, Incident, Proposal, TscaAction, TscaEvent, TscaMode,
};
use serde::Serialize;
use std::sync::atomic::Ordering;

/// The TSCA for `maos status` and `maos tsca`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TscaView {
    /// A, B or C.
    pub authorization: tsca::Authorization,
    /// Its mode.
    pub mode: TscaMode,
    /// The open incident and what it spent.
    pub incident: Option<Incident>,
    /// Open proposals waiting for the commander.
    pub proposals: Vec<Proposal>,
    /// Records in its log section.
    pub records: u64,
    /// The Recovery Priority Chain, while one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<super::recovery::ChainView>,
}

/// The commander's signed approval of one proposal.
#[derive(Debug, Clone)]
pub struct SignedTscaApproval {
    /// The proposal.
    pub proposal: String,
    /// The hybrid signature over [`tsca::approval_message`].
    pub signature: maos_crypto::Signature,
}

impl Shared {
    /// An emergency controlled shutdown decided on the watchdog's or the TSCA's thread:
    /// halted here, at once; the sequencer writes the report.
    pub(super) fn emergency_from_watchdog(&self, trigger: EcsTrigger) {
        let Some((id, at_ms)) = self.halt(&trigger) else { return };
        let command = Command::Emergency { trigger, id, at_ms, reply: None };
        let sent = self.commands.upgrade().map(|tx| tx.try_send(command));
        if !matches!(sent, Some(Ok(()))) {
            tracing::error!("halted, but the sequencer is not taking the shutdown's report: none is written");
        }
    }

    /// Hands a system restart order to whoever runs the kernel.
    fn order_restart(&self, why: String) {
        let sent = self.restart.lock().ok().and_then(|slot| slot.as_ref().map(|tx| tx.send(why).is_ok()));
        if sent != Some(true) {
            tracing::error!("the TSCA's system restart order reached nobody: the process goes on as it is");
        }
    }

    /// Logs `events` in the TSCA's section and applies each once logged;
    /// returns those applied (a refused append stops there: fail closed).
    pub(super) fn tsca_log(&self, ledger: &mut tsca::Ledger, events: Vec<TscaEvent>) -> Vec<TscaEvent> {
        let mut applied = Vec::with_capacity(events.len());
        if self.log_stalled() {
            tracing::error!("the log's writer is stalled: no TSCA record, so no TSCA action");
            return applied;
        }
        for event in events {
            let record = ledger.record(event);
            // The chain hashes the bytes the log holds.
            let logged = crate::records::encode(&record)
                .and_then(|payload| self.wal.append(KIND_TSCA, &payload).map(|_| payload).map_err(|e| e.to_string()));
            let payload = match logged {
                Ok(payload) => payload,
                Err(e) => {
                    tracing::error!(error = %e, "a TSCA record could not be logged: its action is not taken");
                    break;
                }
            };
            if let Err(e) = ledger.fold(&record, &payload) {
                tracing::error!(error = %e, "the TSCA chain did not take its own record");
                break;
            }
            report(&record.event);
            applied.push(record.event);
        }
        applied
    }

    /// Asks the TSCA for `action`; whether to execute it now.
    pub(super) fn tsca_request(&self, action: &TscaAction, why: &str, confirmed: Result<(), String>) -> bool {
        let Ok(mut ledger) = self.tsca.lock() else { return false };
        let now = self.clock.now().0;
        let events = ledger.tsca.decide(action, why, confirmed, now);
        let applied = self.tsca_log(&mut ledger, events);
        applied.iter().any(|e| matches!(e, TscaEvent::Executed { action: a, .. } if a == action))
    }

    /// An executed action did not succeed: logged, its charge returned.
    pub(super) fn tsca_failed(&self, action: &TscaAction, why: &str) {
        let Ok(mut ledger) = self.tsca.lock() else { return };
        if let Some(event) = ledger.tsca.failed(action, why, self.clock.now().0) {
            self.tsca_log(&mut ledger, vec![event]);
        }
    }

    /// Closes the open incident once the node is healthy and quiet.
    pub(super) fn tsca_settle(&self, healthy: bool) {
        let Ok(mut ledger) = self.tsca.lock() else { return };
        if let Some(close) = ledger.tsca.close_if_quiet(healthy, self.clock.now().0) {
            self.tsca_log(&mut ledger, vec![close]);
        }
    }
}

fn report(event: &TscaEvent) {
    match event {
        TscaEvent::Executed { action, why, .. } => tracing::warn!(?action, why, "TSCA: executing"),
        TscaEvent::Proposed { proposal, action, .. } => {
            tracing::warn!(proposal, ?action, "TSCA: proposal waiting for the commander");
        }
        TscaEvent::Advised { action, why, .. } => tracing::warn!(?action, why, "TSCA: advice for a human"),
        TscaEvent::Escalated { action, why, .. } => tracing::error!(?action, why, "TSCA: escalated to a human"),
        TscaEvent::Blocked { action, why, .. } => tracing::warn!(?action, why, "TSCA: blocked by the watchdog"),
        TscaEvent::Expired { proposal, .. } => {
            tracing::error!(proposal, "TSCA: proposal unanswered: minimal safe state");
        }
        TscaEvent::Failed { action, why, .. } => tracing::error!(?action, why, "TSCA: the action failed"),
        other => tracing::info!(?other, "TSCA"),
    }
}

/// One turn on the TSCA's thread, after a watchdog observation: the TSCA's
/// mode, component and system restarts, lapsed proposals, the incident's
/// close. Returns the components whose restart it executed.
pub(super) fn tick(shared: &Shared, seen: &Observed) -> Vec<Component> {
    let now = shared.clock.now().0;
    let state = shared.posture.lock().map_or(crate::posture::CanonicalState::Red, |p| p.state);
    let lost = !seen.unresponsive.is_empty();
    if let Ok(mut ledger) = shared.tsca.lock()
        && let Some(change) = ledger.tsca.mode_change(lost, !state.effects_allowed(), now)
    {
        shared.tsca_log(&mut ledger, vec![change]);
    }
    // How long past its limit a component has been silent.
    let down_for = |c: Component| {
        seen.components.iter().find(|v| v.component == c && v.unresponsive).map(|v| {
            let limit = super::watch::limit_ms(std::time::Duration::from_millis(v.interval_ms));
            v.since_pet_ms.unwrap_or(u64::MAX).saturating_sub(limit)
        })
    };
    let confirm = |action: &TscaAction| {
        let supervised = shared.restart.lock().is_ok_and(|r| r.is_some());
        // The watchdog's own latest observation, not the asker's.
        let now_seen = shared.watch.observed();
        tsca::confirm(action, &now_seen.unresponsive, |_| false, supervised)
    };
    // Several levels failing at once: the Recovery Priority Chain orders the
    // restarts; the single-component rules below wait for it.
    let chain = super::recovery::turn(shared, seen);
    let mut restarts = chain.restarts;
    for (component, why) in [
        (Component::Dsc, "the DSC instance stopped beating"),
        (Component::McpUpstreams, "the MCP upstream supervisor stopped petting"),
    ] {
        if !chain.running && down_for(component).is_some_and(|ms| ms >= COMPONENT_RESTART_AFTER_MS) {
            let action = TscaAction::RestartComponent { component };
            if shared.tsca_request(&action, why, confirm(&action)) {
                restarts.push(component);
            }
        }
    }
    let patience = shared.system_restart_after_ms;
    if down_for(Component::Sequencer).is_some_and(|ms| ms >= patience) {
        let action = TscaAction::RestartSystem;
        if shared.tsca_request(&action, "the sequencer is stalled and cannot be restarted alone", confirm(&action)) {
            shared.order_restart(format!("TSCA: the sequencer unresponsive {patience} ms past its limit"));
        }
    }
    if let Ok(mut ledger) = shared.tsca.lock() {
        let stale = ledger.tsca.stale(confirm, now);
        shared.tsca_log(&mut ledger, stale);
    }
    let lapsed = shared.tsca.lock().map(|mut ledger| {
        let expired = ledger.tsca.expired(now);
        shared.tsca_log(&mut ledger, expired)
    });
    for event in lapsed.unwrap_or_default() {
        if let TscaEvent::Expired { proposal, .. } = event {
            // Level B unanswered: the minimal safe state.
            shared.emergency_from_watchdog(EcsTrigger::TscaUnanswered { proposal });
        }
    }
    let healthy = state.effects_allowed() && !lost && !shared.agents_due.load(Ordering::SeqCst);
    shared.tsca_settle(healthy);
    restarts
}

impl KernelHandle {
    /// The TSCA's level, mode, open incident and proposals.
    #[must_use]
    pub fn tsca(&self) -> TscaView {
        // Read before the ledger's lock: the chain's turn takes them the other way round.
        let chain = super::recovery::view(&self.shared);
        self.shared.tsca.lock().map_or_else(
            |_| TscaView {
                authorization: tsca::Authorization::C,
                mode: TscaMode::Observer,
                incident: None,
                proposals: Vec::new(),
                records: 0,
                chain: None,
            },
            |l| TscaView {
                authorization: l.tsca.authorization,
                mode: l.tsca.mode,
                incident: l.tsca.incident.clone(),
                proposals: l.tsca.proposals.clone(),
                records: l.seq,
                chain,
            },
        )
    }

    /// System restarts the TSCA orders, for whoever runs the kernel: it must
    /// restart the process (crash recovery runs at its boot), from a thread
    /// of its own (the order comes when the sequencer, perhaps the runtime,
    /// is stalled). Until this is called, the TSCA's system restart is
    /// blocked; a second call replaces the first receiver.
    #[must_use]
    pub fn restart_orders(&self) -> std::sync::mpsc::Receiver<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Ok(mut slot) = self.shared.restart.lock() {
            *slot = Some(tx);
        }
        rx
    }

    /// The commander's approval of a Hardened proposal: verified, logged
    /// (approved, executed), then done.
    ///
    /// # Errors
    /// [`KernelError::Refused`] `TSCA-APPROVAL`: no such open proposal, it
    /// lapsed, the signature does not verify, or the log refused.
    pub fn approve_tsca(&self, approval: &SignedTscaApproval) -> Result<TscaAction, KernelError> {
        let refuse = |why: String| KernelError::Refused { code: CODE_TSCA_APPROVAL, why };
        if let crate::mode::Mode::Emergency { why } = self.shared.mode() {
            return Err(KernelError::Refused { code: crate::ecs::CODE_ECS, why });
        }
        let mut ledger = self.shared.tsca.lock().map_err(|_| refuse("the TSCA ledger lock is poisoned".into()))?;
        let action = ledger
            .tsca
            .proposals
            .iter()
            .find(|p| p.id == approval.proposal)
            .map(|p| p.action.clone())
            .ok_or_else(|| refuse(format!("no open proposal {}", approval.proposal)))?;
        // What the commander approved must still be needed: the watchdog confirms it again.
        let supervised = self.shared.restart.lock().is_ok_and(|r| r.is_some());
        let seen = self.shared.watch.observed();
        if let Err(why) = tsca::confirm(&action, &seen.unresponsive, |_| false, supervised) {
            let withdrawn = TscaEvent::Withdrawn {
                proposal: approval.proposal.clone(),
                why: why.clone(),
                at_ms: self.shared.clock.now().0,
            };
            self.shared.tsca_log(&mut ledger, vec![withdrawn]);
            return Err(refuse(format!("no longer needed, withdrawn: {why}")));
        }
        let commander = &self.shared.commander;
        commander
            .verify(
                maos_crypto::SignatureDomain::TscaPlan,
                &tsca::approval_message(&approval.proposal, &action),
                &approval.signature,
            )
            .map_err(|e| refuse(format!("the commander's signature does not verify: {e}")))?;
        let events = ledger
            .tsca
            .approve(&approval.proposal, &commander.key_id().to_hex(), self.shared.clock.now().0)
            .map_err(refuse)?;
        let wanted = events.len();
        if self.shared.tsca_log(&mut ledger, events).len() != wanted {
            return Err(refuse("the log refused the approval: nothing was done".into()));
        }
        drop(ledger);
        match &action {
            TscaAction::RestartComponent { component } => {
                if let Ok(mut approved) = self.shared.restarts_approved.lock()
                    && !approved.contains(component)
                {
                    approved.push(*component);
                }
            }
            TscaAction::RestartSystem => {
                self.shared.order_restart(format!("TSCA proposal {} approved", approval.proposal));
            }
            // Terminations are proposed by no rule under level B: the
            // commander's elimination approval takes that path (§37.8.2).
            TscaAction::TerminateAgent { .. } => {}
        }
        Ok(action)
    }
}
