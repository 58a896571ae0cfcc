//! The TSCA, the kernel's half (spec §38.7; the rules are in [`crate::tsca`]).
//!
//! Guarantees:
//! - **It runs on the watchdog's thread** for components and the system (a
//!   stalled sequencer or runtime does not stop it) and in the sequencer's
//!   elimination sweep for agents; both ask the same ledger under one lock,
//!   so the budget is one per incident whoever asks.
//! - **Logged, then done**: every event is a `kernel.tsca` record chained to
//!   the previous one before the ledger takes it; a record the log refuses
//!   is an action not taken.
//! - **What it can do is what it is handed**: a DSC instance restart (the
//!   watchdog starts a new instance), an agent's termination (the
//!   sequencer's elimination), a system restart (a request to whoever runs
//!   the kernel; without one, the restart is blocked, never pretended). It
//!   holds no token key, no policy and no way to change the configuration.

use super::{Command, KernelHandle, Shared, append, watch::Observed};
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
    /// Logs `events` in the TSCA's section and applies each once logged;
    /// returns those applied (a refused append stops there: fail closed).
    fn tsca_log(&self, ledger: &mut tsca::Ledger, events: Vec<TscaEvent>) -> Vec<TscaEvent> {
        let mut applied = Vec::with_capacity(events.len());
        for event in events {
            let record = ledger.record(event);
            if let Err(e) = append(&self.wal, KIND_TSCA, &record) {
                tracing::error!(error = %e, "a TSCA record could not be logged: its action is not taken");
                break;
            }
            if let Err(e) = ledger.fold(&record) {
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
        other => tracing::info!(?other, "TSCA"),
    }
}

/// One turn on the watchdog's thread, after its observation: the TSCA's
/// mode, component and system restarts, lapsed proposals, the incident's
/// close. Returns whether a new DSC instance must start.
pub(super) fn tick(shared: &Shared, seen: &Observed) -> bool {
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
        let supervised = shared.restart.receiver_count() > 0;
        // The watchdog's own latest observation, not the asker's.
        let now_seen = shared.watch.observed();
        tsca::confirm(action, &now_seen.unresponsive, |_| false, supervised)
    };
    let mut restart_dsc = false;
    if down_for(Component::Dsc).is_some_and(|ms| ms >= COMPONENT_RESTART_AFTER_MS) {
        let action = TscaAction::RestartComponent { component: Component::Dsc };
        restart_dsc = shared.tsca_request(&action, "the DSC instance stopped beating", confirm(&action));
    }
    let patience = shared.system_restart_after_ms;
    if down_for(Component::Sequencer).is_some_and(|ms| ms >= patience) {
        let action = TscaAction::RestartSystem;
        if shared.tsca_request(&action, "the sequencer is stalled and cannot be restarted alone", confirm(&action)) {
            shared.restart.send_replace(Some(format!("TSCA: the sequencer unresponsive {patience} ms past its limit")));
        }
    }
    let lapsed = shared.tsca.lock().map(|mut ledger| {
        let expired = ledger.tsca.expired(now);
        shared.tsca_log(&mut ledger, expired)
    });
    for event in lapsed.unwrap_or_default() {
        if let TscaEvent::Expired { proposal, .. } = event {
            // Level B unanswered: the minimal safe state (an emergency shutdown).
            let trigger = EcsTrigger::TscaUnanswered { proposal };
            let sent = shared.commands.upgrade().map(|tx| tx.try_send(Command::Emergency { trigger, reply: None }));
            if !matches!(sent, Some(Ok(()))) {
                tracing::error!("the minimal safe state could not be requested: the sequencer is not taking commands");
            }
        }
    }
    let healthy = state.effects_allowed() && !lost && !shared.agents_due.load(Ordering::SeqCst);
    shared.tsca_settle(healthy);
    restart_dsc
}

impl KernelHandle {
    /// The TSCA's level, mode, open incident and proposals.
    #[must_use]
    pub fn tsca(&self) -> TscaView {
        self.shared.tsca.lock().map_or_else(
            |_| TscaView {
                authorization: tsca::Authorization::C,
                mode: TscaMode::Observer,
                incident: None,
                proposals: Vec::new(),
                records: 0,
            },
            |l| TscaView {
                authorization: l.tsca.authorization,
                mode: l.tsca.mode,
                incident: l.tsca.incident.clone(),
                proposals: l.tsca.proposals.clone(),
                records: l.seq,
            },
        )
    }

    /// System restarts the TSCA orders: whoever runs the kernel re-executes
    /// the process (crash recovery runs at its boot). While nobody listens,
    /// the TSCA's system restart is blocked.
    #[must_use]
    pub fn restart_requests(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.shared.restart.subscribe()
    }

    /// The commander's approval of a Hardened proposal: verified, logged
    /// (approved, executed), then done.
    ///
    /// # Errors
    /// [`KernelError::Refused`] `TSCA-APPROVAL`: no such open proposal, it
    /// lapsed, the signature does not verify, or the log refused.
    pub fn approve_tsca(&self, approval: &SignedTscaApproval) -> Result<TscaAction, KernelError> {
        let refuse = |why: String| KernelError::Refused { code: CODE_TSCA_APPROVAL, why };
        let mut ledger = self.shared.tsca.lock().map_err(|_| refuse("the TSCA ledger lock is poisoned".into()))?;
        let action = ledger
            .tsca
            .proposals
            .iter()
            .find(|p| p.id == approval.proposal)
            .map(|p| p.action.clone())
            .ok_or_else(|| refuse(format!("no open proposal {}", approval.proposal)))?;
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
            TscaAction::RestartComponent { component: Component::Dsc } => {
                self.shared.dsc_restart_approved.store(true, Ordering::SeqCst);
            }
            TscaAction::RestartSystem => {
                self.shared.restart.send_replace(Some(format!("TSCA proposal {} approved", approval.proposal)));
            }
            // Terminations are proposed by no rule under level B: the
            // commander's elimination approval takes that path (§37.8.2).
            TscaAction::TerminateAgent { .. } | TscaAction::RestartComponent { .. } => {}
        }
        Ok(action)
    }
}
