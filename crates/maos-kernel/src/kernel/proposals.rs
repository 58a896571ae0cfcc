//! Pre-filter extension proposals from immune memory (spec §37.8.3; issue
//! #14 item 6): a threat pattern whose indicators could extend the
//! pre-filter is only a **proposal** until the commander approves it with a
//! signature over exactly those indicators; only then does check 7 refuse
//! them (`DeltaOp::Block`, a `kernel.immune` record). An attacker who gets an
//! innocent address into a pattern (by steering an agent at it) cannot make
//! the node block it on its own.

use super::{Command, KernelHandle, Sequencer};
use crate::error::KernelError;
use crate::records::{ImmuneActor, KIND_IMMUNE, ThreatPattern};
use maos_dsc::DscState;
use maos_wal::Lsn;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// `KERNEL-PREFILTER-APPROVAL`: an approval of a proposal the kernel does not
/// take (no such proposal, other indicators than proposed, stale, or a
/// signature that does not verify under the commander's key).
pub const CODE_PREFILTER_APPROVAL: &str = "KERNEL-PREFILTER-APPROVAL";
/// How long a commander's approval of a proposal stays valid, at most.
pub const PREFILTER_APPROVAL_TTL_MS_MAX: u64 = 15 * 60_000;

/// One threat pattern's indicators proposed as pre-filter blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefilterProposal {
    /// The pattern's id: the first 16 hex digits of the SHA3-256 of its JSON.
    pub id: String,
    /// The recipients and domains it would block, lowercased and sorted.
    pub indicators: Vec<String>,
    /// The attack vector (deny codes) the pattern recorded.
    pub vector: Vec<String>,
    /// The root cause as its elimination stated it.
    pub root_cause: String,
    /// When the pattern was written, Unix ms.
    pub at_ms: u64,
    /// Whether its indicators are all blocked (by its approval, or an
    /// earlier pattern's that named them too).
    pub approved: bool,
}

/// One blocked indicator (a pattern may have left immune memory since).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedView {
    /// The recipient or domain, lowercased.
    pub indicator: String,
    /// The pattern whose approval blocked it.
    pub pattern: String,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// What the commander signs (domain
/// [`maos_crypto::SignatureDomain::PrefilterExtension`]): the proposal and
/// the exact indicators it displayed, and when the approval lapses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefilterGrant {
    /// The proposal's id.
    pub pattern: String,
    /// Its indicators, as listed.
    pub indicators: Vec<String>,
    /// The approval is void after this, Unix ms.
    pub expires_ms: u64,
}

impl PrefilterGrant {
    /// The signed bytes: length-prefixed fields, so no two grants share them.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        let mut out = b"maos-prefilter-extension/v1\0".to_vec();
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        field(self.pattern.as_bytes());
        for indicator in &self.indicators {
            field(indicator.as_bytes());
        }
        out.extend_from_slice(&u64::try_from(self.indicators.len()).unwrap_or(u64::MAX).to_le_bytes());
        out.extend_from_slice(&self.expires_ms.to_le_bytes());
        out
    }
}

/// A commander's signed [`PrefilterGrant`].
#[derive(Debug, Clone)]
pub struct SignedPrefilterGrant {
    /// What was approved.
    pub grant: PrefilterGrant,
    /// The commander's hybrid signature over [`PrefilterGrant::message`].
    pub signature: maos_crypto::Signature,
}

/// The id of a threat pattern.
#[must_use]
pub fn pattern_id(pattern: &ThreatPattern) -> String {
    let bytes = serde_json::to_vec(pattern).unwrap_or_default();
    let hex = maos_crypto::sha3_256(&bytes).to_hex();
    hex.get(..16).unwrap_or(&hex).to_owned()
}

fn indicators_of(pattern: &ThreatPattern) -> Vec<String> {
    let mut out: Vec<String> = pattern.indicators.iter().map(|r| r.value.to_ascii_lowercase()).collect();
    out.sort();
    out.dedup();
    out
}

impl KernelHandle {
    /// Every threat pattern with indicators, as a proposal, oldest first; and
    /// every blocked indicator (at most [`maos_dsc::BLOCKED_MAX`]).
    ///
    /// # Errors
    /// [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn prefilter_proposals(&self) -> Result<(Vec<PrefilterProposal>, Vec<BlockedView>), KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::Proposals { reply })?;
        rx.await.map_err(|_| KernelError::Stopped)
    }

    /// The commander's approval of a proposal: its indicators become check 7
    /// blocks (a `kernel.immune` record with a `block` delta).
    ///
    /// # Errors
    /// `KERNEL-PREFILTER-APPROVAL`, `KERNEL-STATE-LIMIT`,
    /// [`KernelError::Freeze`], [`KernelError::Busy`], [`KernelError::Stopped`].
    pub async fn approve_prefilter(&self, approval: SignedPrefilterGrant) -> Result<Lsn, KernelError> {
        let (reply, rx) = oneshot::channel();
        self.enqueue(Command::ApprovePrefilter { approval: Box::new(approval), reply })?;
        rx.await.map_err(|_| KernelError::Stopped)?
    }
}

impl Sequencer {
    pub(super) fn blocked(&self) -> Vec<BlockedView> {
        self.state
            .dsc
            .blocked_all()
            .map(|(indicator, b)| BlockedView {
                indicator: indicator.clone(),
                pattern: b.pattern.clone(),
                at_ms: b.at_ms,
            })
            .collect()
    }

    pub(super) fn proposals(&self) -> Vec<PrefilterProposal> {
        let dsc = &self.state.dsc;
        self.state
            .patterns
            .iter()
            .filter(|p| !p.indicators.is_empty())
            .map(|p| {
                let id = pattern_id(p);
                let indicators = indicators_of(p);
                let approved = indicators.iter().all(|i| dsc.blocked(i).is_some());
                PrefilterProposal {
                    id,
                    indicators,
                    vector: p.vector.clone(),
                    root_cause: p.root_cause.clone(),
                    at_ms: p.at_ms,
                    approved,
                }
            })
            .collect()
    }

    pub(super) fn on_approve_prefilter(&mut self, approval: &SignedPrefilterGrant) -> Result<Lsn, KernelError> {
        let now = self.now();
        let refuse = |why: String| KernelError::Refused { code: CODE_PREFILTER_APPROVAL, why };
        let g = &approval.grant;
        let proposal = self
            .proposals()
            .into_iter()
            .find(|p| p.id == g.pattern)
            .ok_or_else(|| refuse(format!("no threat pattern {} proposes a pre-filter extension", g.pattern)))?;
        if proposal.approved {
            return Err(refuse(format!("the indicators of pattern {} are blocked already", g.pattern)));
        }
        if proposal.indicators != g.indicators {
            return Err(refuse(format!(
                "the approval names {:?}; pattern {} proposes {:?}",
                g.indicators, g.pattern, proposal.indicators
            )));
        }
        if g.expires_ms <= now.0 || g.expires_ms > now.0.saturating_add(PREFILTER_APPROVAL_TTL_MS_MAX) {
            return Err(refuse(format!(
                "the approval expires at {} ms: it must lie within {} minutes after now ({})",
                g.expires_ms,
                PREFILTER_APPROVAL_TTL_MS_MAX / 60_000,
                now.0
            )));
        }
        self.commander
            .verify(maos_crypto::SignatureDomain::PrefilterExtension, &g.message(), &approval.signature)
            .map_err(|e| refuse(format!("the commander's signature does not verify: {e}")))?;
        let delta = DscState::block(&g.indicators, &g.pattern, now);
        if self.state.dsc.check(&delta).is_err() {
            let why = format!("at most {} indicators can be blocked", maos_dsc::BLOCKED_MAX);
            return Err(KernelError::Refused { code: super::CODE_STATE_LIMIT, why });
        }
        let reason = format!(
            "the commander (key {}) approved threat pattern {}'s indicators as pre-filter blocks: {}",
            self.commander.key_id().to_hex(),
            g.pattern,
            g.indicators.join(", ")
        );
        let record = self.immune_record(None, ImmuneActor::Operator, &delta, reason, now);
        let lsn = self.log(KIND_IMMUNE, &record)?;
        let _ = self.state.apply_delta(&delta);
        tracing::info!(pattern = %g.pattern, indicators = g.indicators.len(), "pre-filter extended by the commander");
        Ok(lsn)
    }
}
