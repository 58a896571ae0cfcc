//! Intents over HTTP: the request body an agent sends, the view it gets back,
//! and the bounded table of outcomes that `GET /v1/intents/{id}` reads.
//!
//! Guarantees:
//! - The agent never names itself or the intent id: both come from the session
//!   and the server (a UUIDv7), so one agent cannot act or poll as another.
//! - Unknown fields are refused; every bound of `maos_model::Intent` applies.
//! - The outcome table holds at most [`RESULTS_MAX`] intents; when full the
//!   oldest finished outcome is dropped (it stays in the audit log), and if
//!   every slot is still running new intents are refused with `API-BUSY`.
//! - A final outcome handed to its owner leaves the table [`DELIVERED_KEEP`]
//!   later; one never collected stays until the table is full.
//! - Output bodies are held only until the owning agent has them: a final view
//!   handed to its owner drops the body from the table, and the bodies not yet
//!   fetched hold at most [`RESULT_BODY_BYTES_MAX`] bytes in all (the oldest is
//!   dropped first). The view then says why (`body_dropped`).

use crate::error::ApiError;
use base64::Engine as _;
use maos_commit::OutputLabel;
use maos_kernel::Reply;
use maos_model::{AgentId, ArgValue, Intent, IntentId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Outcomes kept for polling.
pub const RESULTS_MAX: usize = 65_536;
/// Output body bytes the outcome table holds in all for agents that have not
/// fetched them yet: one agent reading large files without collecting the
/// answers cannot grow the daemon's memory (100 reads of 4 MB held 309 MB).
pub const RESULT_BODY_BYTES_MAX: usize = 64 << 20;
/// How long a final outcome stays after its owner received it (a repeated
/// poll still finds it); undelivered outcomes stay until the table is full.
/// Bounds the table by the request rate times this, not by [`RESULTS_MAX`],
/// for agents that collect their answers (the usual case).
pub const DELIVERED_KEEP: std::time::Duration = std::time::Duration::from_secs(60);
/// Default time `POST /v1/intents` waits for the outcome before answering 202.
pub const WAIT_MS_DEFAULT: u64 = 10_000;
/// Longest wait a request may ask for.
pub const WAIT_MS_MAX: u64 = 60_000;
/// [`WAIT_MS_MAX`] as a duration.
pub const WAIT_MS_MAX_DURATION: std::time::Duration = std::time::Duration::from_millis(WAIT_MS_MAX);

/// The body of `POST /v1/intents`: the action and its arguments. Everything
/// the DSC decides on besides them (effect, resources, sink level, labels read,
/// cost, integrity) the kernel derives from the action's descriptor; a request
/// that sets one of those fields is refused with `API-FIELD-DERIVED` (and the
/// refusal is logged), so a client written against the older API learns why.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentRequest {
    /// The action (`fs.write`, `mail.send`, `http.get`, `mcp.<server>.<tool>`, ...).
    pub action: String,
    /// Arguments.
    #[serde(default)]
    pub args: BTreeMap<String, ArgValue>,
    /// Optimistic-concurrency hash of the target's state (hex).
    #[serde(default)]
    pub world_state_hash: Option<String>,
    /// How long to wait for the outcome (ms, at most [`WAIT_MS_MAX`]; 0 answers at once).
    #[serde(default)]
    pub wait_ms: Option<u64>,
    #[serde(default)]
    resources: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    effect: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    cost: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    sink_level: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    requires_integrity: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    reads: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    sensitive_args: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    provenance_deny: Option<serde::de::IgnoredAny>,
}

/// Code of a request that sets a field the kernel derives.
pub const CODE_FIELD_DERIVED: &str = "API-FIELD-DERIVED";

impl IntentRequest {
    /// The fields the request sets that only the kernel may set.
    fn derived_fields(&self) -> Vec<&'static str> {
        [
            ("resources", self.resources.is_some()),
            ("effect", self.effect.is_some()),
            ("cost", self.cost.is_some()),
            ("sink_level", self.sink_level.is_some()),
            ("requires_integrity", self.requires_integrity.is_some()),
            ("reads", self.reads.is_some()),
            ("sensitive_args", self.sensitive_args.is_some()),
            ("provenance_deny", self.provenance_deny.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// The kernel's intent, with the server's id and the session's agent, and
    /// the refusal (code, why) if the request set a kernel-derived field. The
    /// kernel checks the bounds and derives the rest.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] for a malformed `world_state_hash`.
    pub fn into_intent(self, id: IntentId, agent: AgentId) -> Result<(Intent, Option<String>), ApiError> {
        let derived = self.derived_fields();
        let refusal = (!derived.is_empty()).then(|| {
            let names: Vec<String> = derived.iter().map(|f| format!("`{f}`")).collect();
            format!(
                "{} {} derived by the kernel from the action's descriptor, never taken from the request: remove {}",
                names.join(", "),
                if derived.len() == 1 { "is" } else { "are" },
                if derived.len() == 1 { "it" } else { "them" },
            )
        });
        let world_state_hash = match self.world_state_hash.as_deref() {
            None => None,
            Some(text) => Some(
                parse_hex32(text)
                    .ok_or_else(|| ApiError::BadRequest("`world_state_hash` must be 64 hex digits".into()))?,
            ),
        };
        let mut intent = Intent::request(id, agent, self.action, self.args);
        intent.world_state_hash = world_state_hash;
        Ok((intent, refusal))
    }
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
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

/// Where an intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted; the kernel has not answered yet.
    Queued,
    /// Allowed and committed.
    Done,
    /// Refused; nothing executed.
    Denied,
    /// Escalated; waits for a human decision.
    PendingApproval,
    /// Allowed, but the commit failed and was rolled back.
    Failed,
    /// Done, then taken back by the operator's undo.
    Undone,
}

/// What an effect returned, as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputView {
    /// One line (no raw content).
    pub summary: String,
    /// `trusted` or `untrusted` (the session is tainted by the latter).
    pub label: OutputLabel,
    /// The body, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The body, base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Why the body is no longer held (the summary and label stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_dropped: Option<BodyDropped>,
}

/// Why an outcome's body was dropped from the outcome table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyDropped {
    /// The owning agent already received it.
    Delivered,
    /// Dropped before it was fetched, to keep the table within [`RESULT_BODY_BYTES_MAX`].
    Evicted,
}

impl OutputView {
    fn body_bytes(&self) -> usize {
        self.text.as_ref().map_or(0, String::len).saturating_add(self.body_base64.as_ref().map_or(0, String::len))
    }
}

/// The approval an escalated intent waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRef {
    /// The approval id (the intent id).
    pub id: IntentId,
    /// The HACF level.
    pub level: maos_model::HacfLevel,
    /// Expiry, Unix ms; the intent is denied then.
    pub expires_ms: u64,
}

/// The answer to `POST /v1/intents` and `GET /v1/intents/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentView {
    /// The intent id.
    pub intent: IntentId,
    /// Where it stands.
    pub status: Status,
    /// Stable code of a denial or failure (grep it in the audit log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Why, in one line (the agent's right to an explanation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Lsn of the decision record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_lsn: Option<u64>,
    /// What the effect returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputView>,
    /// Until when `undo` can take the effect back (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo_until_ms: Option<u64>,
    /// The approval it waits for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRef>,
}

impl IntentView {
    /// Queued, nothing known yet.
    #[must_use]
    pub const fn queued(intent: IntentId) -> Self {
        Self {
            intent,
            status: Status::Queued,
            code: None,
            explanation: None,
            decision_lsn: None,
            output: None,
            undo_until_ms: None,
            approval: None,
        }
    }

    /// Denied with a code (also for refusals before the kernel, like a full queue).
    #[must_use]
    pub fn denied(intent: IntentId, code: &str, explanation: String) -> Self {
        Self {
            status: Status::Denied,
            code: Some(code.to_owned()),
            explanation: Some(explanation),
            ..Self::queued(intent)
        }
    }

    /// The view of a kernel reply.
    #[must_use]
    pub fn of(reply: &Reply) -> Self {
        match reply {
            Reply::Done { intent, decision_lsn, committed, .. } => {
                let (text, body_base64) = match std::str::from_utf8(&committed.output.body) {
                    Ok(t) if !t.is_empty() => (Some(t.to_owned()), None),
                    Ok(_) => (None, None),
                    Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(&committed.output.body))),
                };
                Self {
                    status: Status::Done,
                    decision_lsn: decision_lsn.map(|l| l.0),
                    output: Some(OutputView {
                        summary: committed.output.summary.clone(),
                        label: committed.output.label,
                        text,
                        body_base64,
                        body_dropped: None,
                    }),
                    undo_until_ms: committed.undo_until.map(|u| u.0),
                    ..Self::queued(*intent)
                }
            }
            Reply::Denied { intent, code, explanation, decision_lsn } => {
                Self { decision_lsn: decision_lsn.map(|l| l.0), ..Self::denied(*intent, code, explanation.clone()) }
            }
            Reply::Pending { intent, approval, level, expires, decision_lsn } => Self {
                status: Status::PendingApproval,
                code: Some("HACF-PENDING".into()),
                explanation: Some(format!(
                    "waiting for a human decision (approval {approval}); poll GET /v1/intents/{intent}"
                )),
                decision_lsn: Some(decision_lsn.0),
                approval: Some(ApprovalRef { id: *approval, level: *level, expires_ms: expires.0 }),
                ..Self::queued(*intent)
            },
            Reply::Failed { intent, error } => Self {
                status: Status::Failed,
                code: Some(error.code().to_owned()),
                explanation: Some(error.to_string()),
                ..Self::queued(*intent)
            },
        }
    }

    /// Whether the kernel has given its final answer (pending is not final).
    #[must_use]
    pub const fn is_final(&self) -> bool {
        matches!(self.status, Status::Done | Status::Denied | Status::Failed | Status::Undone)
    }
}

struct Slot {
    session: String,
    tx: watch::Sender<Arc<IntentView>>,
    /// Body bytes the current view holds.
    body_bytes: usize,
    /// Whether the final view reached its owner (queued for the sweep once).
    delivered: bool,
}

#[derive(Default)]
struct Table {
    slots: BTreeMap<IntentId, Slot>,
    // INVARIANT: the sum of `slots[..].body_bytes`.
    body_bytes: usize,
    /// Final outcomes handed to their owner, oldest first: they leave the
    /// table [`DELIVERED_KEEP`] later.
    delivered: std::collections::VecDeque<(std::time::Instant, IntentId)>,
}

impl Table {
    /// Drops the outcomes delivered more than [`DELIVERED_KEEP`] ago.
    fn sweep_delivered(&mut self, now: std::time::Instant) {
        while let Some((at, id)) = self.delivered.front().copied() {
            let due = now.saturating_duration_since(at) >= DELIVERED_KEEP;
            if !due && self.delivered.len() <= RESULTS_MAX {
                break;
            }
            self.delivered.pop_front();
            if self.slots.get(&id).is_some_and(|s| s.tx.borrow().is_final()) {
                self.remove(&id);
            }
        }
    }

    fn remove(&mut self, id: &IntentId) {
        if let Some(slot) = self.slots.remove(id) {
            self.body_bytes = self.body_bytes.saturating_sub(slot.body_bytes);
        }
    }

    /// Drops the body of `id`'s view, saying why.
    fn drop_body(&mut self, id: &IntentId, why: BodyDropped) {
        let Some(slot) = self.slots.get_mut(id) else { return };
        if slot.body_bytes == 0 {
            return;
        }
        let mut view = IntentView::clone(&slot.tx.borrow());
        if let Some(output) = view.output.as_mut() {
            output.text = None;
            output.body_base64 = None;
            output.body_dropped = Some(why);
        }
        slot.tx.send_replace(Arc::new(view));
        self.body_bytes = self.body_bytes.saturating_sub(slot.body_bytes);
        slot.body_bytes = 0;
    }

    /// Drops the oldest bodies until the table is within its bound; `newest`
    /// goes last (UUIDv7 ids sort by time).
    fn evict(&mut self, newest: IntentId) {
        while self.body_bytes > RESULT_BODY_BYTES_MAX {
            let victim = self
                .slots
                .iter()
                .find(|(id, s)| s.body_bytes > 0 && **id != newest)
                .map(|(id, _)| *id)
                .unwrap_or(newest);
            let before = self.body_bytes;
            self.drop_body(&victim, BodyDropped::Evicted);
            if self.body_bytes == before {
                break;
            }
        }
    }
}

/// The bounded table of outcomes.
#[derive(Default)]
pub struct Results {
    table: Mutex<Table>,
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (len, bytes) = self.table.lock().map_or((0, 0), |t| (t.slots.len(), t.body_bytes));
        f.debug_struct("Results").field("len", &len).field("body_bytes", &bytes).finish()
    }
}

impl Results {
    /// Reserves a slot for a new intent of `session`.
    ///
    /// # Errors
    /// [`ApiError::Busy`] when every slot holds an unfinished intent.
    pub fn reserve(&self, intent: IntentId, session: &str) -> Result<watch::Receiver<Arc<IntentView>>, ApiError> {
        let mut table = self.table.lock().map_err(|_| ApiError::Internal("outcome table poisoned".into()))?;
        table.sweep_delivered(std::time::Instant::now());
        if table.slots.len() >= RESULTS_MAX {
            // UUIDv7 ids sort by time: the first finished one is the oldest.
            let oldest = table.slots.iter().find(|(_, s)| s.tx.borrow().is_final()).map(|(id, _)| *id);
            match oldest {
                Some(id) => table.remove(&id),
                None => return Err(ApiError::Busy(format!("{RESULTS_MAX} intents are still unfinished"))),
            }
        }
        let (tx, rx) = watch::channel(Arc::new(IntentView::queued(intent)));
        table.remove(&intent);
        table.slots.insert(intent, Slot { session: session.to_owned(), tx, body_bytes: 0, delivered: false });
        Ok(rx)
    }

    /// Records an outcome (also a later one: a granted or denied approval).
    pub fn set(&self, view: IntentView) {
        let Ok(mut table) = self.table.lock() else { return };
        let bytes = view.output.as_ref().map_or(0, OutputView::body_bytes);
        let id = view.intent;
        let Some(slot) = table.slots.get_mut(&id) else { return };
        let held = std::mem::replace(&mut slot.body_bytes, bytes);
        slot.tx.send_replace(Arc::new(view));
        table.body_bytes = table.body_bytes.saturating_sub(held).saturating_add(bytes);
        table.evict(id);
    }

    /// The owning agent has been handed `view`: when it is final, its body
    /// leaves the table (a later poll sees `body_dropped: delivered`).
    pub fn delivered(&self, view: &IntentView) {
        if view.is_final()
            && let Ok(mut table) = self.table.lock()
        {
            table.drop_body(&view.intent, BodyDropped::Delivered);
            let first = table.slots.get_mut(&view.intent).is_some_and(|s| !std::mem::replace(&mut s.delivered, true));
            let now = std::time::Instant::now();
            if first {
                table.delivered.push_back((now, view.intent));
            }
            table.sweep_delivered(now);
        }
    }

    /// Body bytes held for agents that have not fetched them.
    #[must_use]
    pub fn body_bytes(&self) -> usize {
        self.table.lock().map_or(0, |t| t.body_bytes)
    }

    /// The outcome, if the caller may see it: the owning session, or the
    /// operator (`session == None`).
    ///
    /// # Errors
    /// [`ApiError::NotFound`] (also for another session's intent: ids are not
    /// secret, but their outcomes are).
    pub fn get(&self, intent: IntentId, session: Option<&str>) -> Result<watch::Receiver<Arc<IntentView>>, ApiError> {
        let table = self.table.lock().map_err(|_| ApiError::Internal("outcome table poisoned".into()))?;
        match table.slots.get(&intent) {
            Some(slot) if session.is_none_or(|s| s == slot.session) => Ok(slot.tx.subscribe()),
            _ => Err(ApiError::NotFound(format!("no intent `{intent}` for this caller"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn done(intent: IntentId, body: &str) -> IntentView {
        IntentView {
            status: Status::Done,
            output: Some(OutputView {
                summary: "read".into(),
                label: OutputLabel::Trusted,
                text: Some(body.into()),
                body_base64: None,
                body_dropped: None,
            }),
            ..IntentView::queued(intent)
        }
    }

    #[test]
    fn a_delivered_outcome_leaves_the_table_after_the_keep_time() {
        let results = Results::default();
        let a = IntentId::new_v7(1, [1; 10]);
        let b = IntentId::new_v7(2, [2; 10]);
        results.reserve(a, "s").unwrap();
        results.reserve(b, "s").unwrap();
        results.set(done(a, "alpha"));
        results.set(done(b, "beta"));
        assert_eq!(results.body_bytes(), 9);
        results.delivered(&done(a, "alpha"));
        // The body goes at once; the outcome stays for a repeated poll.
        assert_eq!(results.body_bytes(), 4);
        let view = results.get(a, Some("s")).unwrap().borrow().clone();
        assert_eq!(view.output.as_ref().and_then(|o| o.body_dropped), Some(BodyDropped::Delivered));
        let mut table = results.table.lock().unwrap();
        table.sweep_delivered(Instant::now());
        assert_eq!(table.slots.len(), 2);
        table.sweep_delivered(Instant::now() + DELIVERED_KEEP + Duration::from_millis(1));
        assert_eq!(table.slots.len(), 1, "the delivered one left; the undelivered one stays");
        assert!(table.slots.contains_key(&b));
    }

    #[test]
    fn undelivered_bodies_are_bounded_oldest_first() {
        let results = Results::default();
        let big = "x".repeat(RESULT_BODY_BYTES_MAX / 4);
        let ids: Vec<IntentId> = (0..6).map(|i| IntentId::new_v7(i, [i as u8; 10])).collect();
        for id in &ids {
            results.reserve(*id, "s").unwrap();
            results.set(done(*id, &big));
        }
        assert!(results.body_bytes() <= RESULT_BODY_BYTES_MAX);
        let dropped: Vec<Option<BodyDropped>> = ids
            .iter()
            .map(|id| results.get(*id, None).unwrap().borrow().output.as_ref().and_then(|o| o.body_dropped))
            .collect();
        assert_eq!(dropped, [Some(BodyDropped::Evicted), Some(BodyDropped::Evicted), None, None, None, None]);
    }
}
