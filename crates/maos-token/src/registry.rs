//! The issuer's record of every token: the derivation tree, carved budgets and
//! revocations. It is a pure fold over [`TokenEvent`]s, so whoever persists the
//! events (a file today, the WAL tomorrow) can rebuild it exactly on restart.

use crate::TokenError;
use crate::mint::MintedToken;
use crate::token::RevocationState;
use maos_model::{AgentId, Ring, TokenId, UnixMillis};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A security event about tokens, in the form it is logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TokenEvent {
    /// A root token was minted or a child derived.
    Issued(TokenIssued),
    /// A token and all its descendants were revoked, bumping the epoch.
    Revoked(TokenRevoked),
}

/// The logged facts of an issued token. Holds the token's hash, never the
/// token itself: the log must not hand out credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssued {
    /// Token id.
    pub id: TokenId,
    /// Holder.
    pub agent: AgentId,
    /// Holder's ring.
    pub ring: Ring,
    /// Direct parent, for derived tokens.
    pub parent: Option<TokenId>,
    /// Delegation depth (1 for a root).
    pub depth: usize,
    /// Budget given to (or carved for) this token.
    pub budget: u64,
    /// Issue time, Unix ms.
    pub issued_ms: u64,
    /// Expiry, Unix ms.
    pub expires_ms: u64,
    /// Lifetime granted.
    pub ttl_ms: u64,
    /// Whether a commander acknowledged a lifetime over 4× the default.
    pub commander_ack: bool,
    /// Revocation epoch at issue.
    pub epoch: u64,
    /// Permissions in their command-line form.
    pub permissions: Vec<String>,
    /// Issuer key id (hex).
    pub issuer: String,
    /// SHA3-256 of the encoded token (hex).
    pub token_sha3: String,
}

impl TokenIssued {
    /// The event for a token just minted or derived.
    #[must_use]
    pub fn from_minted(token: &MintedToken) -> Self {
        let c = token.claims();
        Self {
            id: c.id,
            agent: c.agent.clone(),
            ring: c.ring,
            parent: c.parent(),
            depth: c.depth(),
            budget: c.budget,
            issued_ms: c.not_before.0,
            expires_ms: c.expires.0,
            ttl_ms: token.ttl_ms(),
            commander_ack: c.commander_ack,
            epoch: c.epoch,
            permissions: c.permissions.iter().map(ToString::to_string).collect(),
            issuer: c.issuer.to_hex(),
            token_sha3: token.hash().to_hex(),
        }
    }
}

impl TokenIssued {
    /// The event for a token that verified, e.g. one minted by a tool that
    /// cannot reach the log itself and handed to the kernel to log.
    #[must_use]
    pub fn from_verified(token: &crate::VerifiedToken) -> Self {
        let c = token.claims();
        Self {
            id: c.id,
            agent: c.agent.clone(),
            ring: c.ring,
            parent: c.parent(),
            depth: c.depth(),
            budget: c.budget,
            issued_ms: c.not_before.0,
            expires_ms: c.expires.0,
            ttl_ms: c.expires.0.saturating_sub(c.not_before.0),
            commander_ack: c.commander_ack,
            epoch: c.epoch,
            permissions: c.permissions.iter().map(ToString::to_string).collect(),
            issuer: c.issuer.to_hex(),
            token_sha3: token.hash().to_hex(),
        }
    }
}

/// The logged facts of a revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    /// The token the operator revoked.
    pub root: TokenId,
    /// It and every descendant, in id order.
    pub ids: Vec<TokenId>,
    /// The revocation epoch after this event.
    pub epoch: u64,
    /// When, Unix ms.
    pub at_ms: u64,
    /// Why, as given by the operator.
    pub reason: String,
}

/// What the registry knows about one token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// The issue event.
    pub issued: TokenIssued,
    /// Direct children, in id order.
    pub children: BTreeSet<TokenId>,
    /// Whether revoked (itself or through an ancestor).
    pub revoked: bool,
}

/// The fold of all token events.
#[derive(Debug, Default, Clone)]
pub struct TokenRegistry {
    records: BTreeMap<TokenId, TokenRecord>,
    revocations: RevocationState,
}

impl TokenRegistry {
    /// An empty registry at epoch 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event. Replaying the same events in order always gives the same registry.
    ///
    /// # Errors
    /// [`TokenError::InvalidClaims`] if the event contradicts the registry (a
    /// duplicate id, an unknown parent, or an epoch that is not the next one):
    /// that means the event log is corrupt, and the caller must stop.
    pub fn apply(&mut self, event: &TokenEvent) -> Result<(), TokenError> {
        match event {
            TokenEvent::Issued(issued) => {
                if self.records.contains_key(&issued.id) {
                    return Err(TokenError::InvalidClaims(format!("token {} issued twice", issued.id)));
                }
                if let Some(parent) = issued.parent {
                    let rec = self.records.get_mut(&parent).ok_or_else(|| {
                        TokenError::InvalidClaims(format!("parent {parent} of {} unknown", issued.id))
                    })?;
                    rec.children.insert(issued.id);
                }
                self.records.insert(
                    issued.id,
                    TokenRecord { issued: issued.clone(), children: BTreeSet::new(), revoked: false },
                );
            }
            TokenEvent::Revoked(revoked) => {
                if revoked.epoch != self.revocations.epoch().saturating_add(1) {
                    return Err(TokenError::InvalidClaims(format!(
                        "revocation moves the epoch to {} but the registry is at {}",
                        revoked.epoch,
                        self.revocations.epoch()
                    )));
                }
                for id in &revoked.ids {
                    if let Some(rec) = self.records.get_mut(id) {
                        rec.revoked = true;
                    }
                }
                self.revocations.revoke_all(revoked.ids.iter().copied());
            }
        }
        Ok(())
    }

    /// The event that would revoke `id` and all its descendants. Apply it after
    /// it is durably recorded.
    ///
    /// # Errors
    /// [`TokenError::UnknownToken`] if the id was never issued here.
    pub fn plan_revoke(&self, id: TokenId, now: UnixMillis, reason: &str) -> Result<TokenEvent, TokenError> {
        if !self.records.contains_key(&id) {
            return Err(TokenError::UnknownToken(id.to_string()));
        }
        let mut ids = BTreeSet::new();
        let mut stack = vec![id];
        // Bounded: depth ≤ 3 and every id is visited once.
        while let Some(next) = stack.pop() {
            if ids.insert(next)
                && let Some(rec) = self.records.get(&next)
            {
                stack.extend(rec.children.iter().copied());
            }
        }
        Ok(TokenEvent::Revoked(TokenRevoked {
            root: id,
            ids: ids.into_iter().collect(),
            epoch: self.revocations.epoch().saturating_add(1),
            at_ms: now.0,
            reason: reason.chars().take(256).collect(),
        }))
    }

    /// The record of one token.
    #[must_use]
    pub fn get(&self, id: &TokenId) -> Option<&TokenRecord> {
        self.records.get(id)
    }

    /// All records, in id (and so issue-time) order.
    pub fn iter(&self) -> impl Iterator<Item = &TokenRecord> {
        self.records.values()
    }

    /// Children of `id` that are neither revoked nor expired at `now`.
    #[must_use]
    pub fn live_children(&self, id: &TokenId, now: UnixMillis) -> usize {
        self.records.get(id).map_or(0, |rec| {
            rec.children
                .iter()
                .filter_map(|c| self.records.get(c))
                .filter(|c| !c.revoked && now.0 < c.issued.expires_ms)
                .count()
        })
    }

    /// Budget carved out of `id` by all its children, ever. Carved budget is never
    /// returned to the parent, even when a child dies: the child may have spent
    /// it, and Rule 7 allows no overshoot.
    #[must_use]
    pub fn carved_budget(&self, id: &TokenId) -> u64 {
        self.records.get(id).map_or(0, |rec| {
            rec.children
                .iter()
                .filter_map(|c| self.records.get(c))
                .fold(0u64, |sum, c| sum.saturating_add(c.issued.budget))
        })
    }

    /// Whether `token` is the one this registry logged under its id (same
    /// encoded bytes): a kernel accepts only tokens in its ledger.
    ///
    /// # Errors
    /// [`TokenError::Unlogged`] for an id never issued, or issued with other bytes.
    pub fn check_logged(&self, token: &crate::VerifiedToken) -> Result<(), TokenError> {
        match self.records.get(&token.id()) {
            Some(rec) if rec.issued.token_sha3 == token.hash().to_hex() => Ok(()),
            _ => Err(TokenError::Unlogged(token.id().to_string())),
        }
    }

    /// The revocation state verifiers need.
    #[must_use]
    pub fn revocations(&self) -> &RevocationState {
        &self.revocations
    }

    /// The whole registry as data, for a state snapshot (retention may then
    /// cut the events it was folded from).
    #[must_use]
    pub fn snapshot(&self) -> RegistrySnapshot {
        let mut issued: Vec<TokenIssued> = self.records.values().map(|r| r.issued.clone()).collect();
        // Parents before children, so the restore can check every link.
        issued.sort_by_key(|i| (i.depth, i.id));
        RegistrySnapshot {
            epoch: self.revocations.epoch(),
            revoked: self.revocations.revoked().iter().copied().collect(),
            issued,
        }
    }

    /// The registry a snapshot describes.
    ///
    /// # Errors
    /// [`TokenError::InvalidClaims`] if the snapshot contradicts itself (a
    /// duplicate id, a child before or without its parent).
    pub fn restore(snapshot: &RegistrySnapshot) -> Result<Self, TokenError> {
        let mut registry = Self::new();
        for issued in &snapshot.issued {
            registry.apply(&TokenEvent::Issued(issued.clone()))?;
        }
        let revoked: BTreeSet<TokenId> = snapshot.revoked.iter().copied().collect();
        for id in &revoked {
            if let Some(rec) = registry.records.get_mut(id) {
                rec.revoked = true;
            }
        }
        registry.revocations = RevocationState::new(snapshot.epoch, revoked);
        Ok(registry)
    }
}

/// A [`TokenRegistry`] as data ([`TokenRegistry::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrySnapshot {
    /// Revocation epoch.
    pub epoch: u64,
    /// Revoked ids.
    pub revoked: Vec<TokenId>,
    /// Every issued token, parents first.
    pub issued: Vec<TokenIssued>,
}
