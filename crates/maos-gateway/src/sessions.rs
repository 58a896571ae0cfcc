//! Agent sessions: a verified capability token bound to a random session id.
//!
//! Guarantees:
//! - A session is opened only with a token the kernel verified; it lives no
//!   longer than the token, and every intent is verified again by the kernel
//!   (revocation takes effect on the next intent, whatever the session says);
//!   a revocation logged through the API closes the token's sessions at once.
//! - The session id is 128 random bits from the OS generator; the table is
//!   bounded ([`SESSIONS_MAX`] in all, [`SESSIONS_PER_TOKEN_MAX`] per token) and
//!   expired sessions are swept when full.
//! - Each session has a token bucket ([`SessionLimits`]): a flood from one
//!   agent is refused at the door (`API-RATE-LIMITED`), before the kernel queue.

use crate::error::ApiError;
use maos_model::AgentId;
use maos_model::TokenId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Open sessions at most: bounds memory per daemon (about 6 KB each, mostly the token text).
pub const SESSIONS_MAX: usize = 4096;
/// Open sessions one capability token may hold. Stops one agent opening
/// sessions in a loop until the table is full and every other agent gets
/// `API-BUSY` (4,093 sessions in 0.8 s did that): past it, that token alone is
/// refused `API-SESSIONS-PER-TOKEN`.
pub const SESSIONS_PER_TOKEN_MAX: usize = 16;
/// Default calls per second per session (the spec's gateway default, §9).
pub const RATE_PER_SECOND_DEFAULT: u32 = 1000;
/// Longest mission statement a session may carry (matches the token's bound).
pub const MISSION_BYTES_MAX: usize = 4096;

/// Per-session request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Burst above the sustained rate.
    pub burst: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self { per_second: RATE_PER_SECOND_DEFAULT, burst: RATE_PER_SECOND_DEFAULT }
    }
}

/// One open session.
#[derive(Debug)]
pub struct Session {
    /// Its id (the bearer secret).
    pub id: String,
    /// The token's holder.
    pub agent: AgentId,
    /// The token's id.
    pub token_id: TokenId,
    /// The capability token text, presented with every intent.
    pub token: Arc<str>,
    /// Token expiry, Unix ms: the session ends with it.
    pub expires_ms: u64,
    /// Trusted, human-authored task text (from the token or the session open).
    pub mission: Option<String>,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Session {
    /// A session with a fresh random id and a full bucket.
    ///
    /// # Errors
    /// [`ApiError::Internal`] if the random generator fails.
    pub fn new(new: NewSession, burst: u32) -> Result<Self, ApiError> {
        let secret = maos_crypto::random_bytes::<16>().map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Self {
            id: format!("ses_{}", hex(&secret)),
            agent: new.agent,
            token_id: new.token_id,
            token: Arc::from(new.token),
            expires_ms: new.expires_ms,
            mission: new.mission,
            bucket: Mutex::new(Bucket { tokens: f64::from(burst.max(1)), last: Instant::now() }),
        })
    }

    /// Takes one request from the bucket.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] when empty.
    pub fn admit(&self, limits: SessionLimits) -> Result<(), ApiError> {
        let Ok(mut bucket) = self.bucket.lock() else {
            return Err(ApiError::Internal("session rate state poisoned".into()));
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        let cap = f64::from(limits.burst.max(1));
        bucket.tokens = (bucket.tokens + elapsed * f64::from(limits.per_second)).min(cap);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(ApiError::RateLimited { per_second: limits.per_second })
        }
    }
}

/// The session table.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<BTreeMap<String, Arc<Session>>>,
}

/// What opening a session needs.
#[derive(Debug)]
pub struct NewSession {
    /// The holder.
    pub agent: AgentId,
    /// The token id.
    pub token_id: TokenId,
    /// The token text.
    pub token: String,
    /// Token expiry.
    pub expires_ms: u64,
    /// Mission statement.
    pub mission: Option<String>,
}

impl Sessions {
    /// Opens a session; sweeps expired ones first when the table is full.
    ///
    /// # Errors
    /// [`ApiError::SessionsPerToken`] when this token holds
    /// [`SESSIONS_PER_TOKEN_MAX`] live sessions; [`ApiError::Busy`] when
    /// [`SESSIONS_MAX`] live sessions are open; [`ApiError::Internal`] if the
    /// random generator fails.
    pub fn open(&self, new: NewSession, now_ms: u64, burst: u32) -> Result<Arc<Session>, ApiError> {
        let session = Arc::new(Session::new(new, burst)?);
        let id = session.id.clone();
        let mut table = self.by_id.lock().map_err(|_| ApiError::Internal("session table poisoned".into()))?;
        let held = |table: &BTreeMap<String, Arc<Session>>| {
            table.values().filter(|s| s.token_id == session.token_id && s.expires_ms > now_ms).count()
        };
        if held(&table) >= SESSIONS_PER_TOKEN_MAX {
            return Err(ApiError::SessionsPerToken { max: SESSIONS_PER_TOKEN_MAX });
        }
        if table.len() >= SESSIONS_MAX {
            table.retain(|_, s| s.expires_ms > now_ms);
        }
        if table.len() >= SESSIONS_MAX {
            return Err(ApiError::Busy(format!("{SESSIONS_MAX} sessions are open; close one first")));
        }
        table.insert(id, session.clone());
        Ok(session)
    }

    /// The live session for a bearer id.
    ///
    /// # Errors
    /// [`ApiError::Unauthorized`] for an unknown or expired session.
    pub fn get(&self, id: &str, now_ms: u64) -> Result<Arc<Session>, ApiError> {
        let table = self.by_id.lock().map_err(|_| ApiError::Internal("session table poisoned".into()))?;
        match table.get(id) {
            Some(s) if s.expires_ms > now_ms => Ok(s.clone()),
            Some(_) => Err(ApiError::Unauthorized("the session's capability token has expired".into())),
            None => Err(ApiError::Unauthorized("unknown session; open one with POST /v1/sessions".into())),
        }
    }

    /// Closes a session. Returns whether it existed.
    pub fn close(&self, id: &str) -> bool {
        self.by_id.lock().is_ok_and(|mut t| t.remove(id).is_some())
    }

    /// Closes every session of these tokens (they were revoked). Returns how many.
    pub fn close_tokens(&self, ids: &[TokenId]) -> usize {
        if ids.is_empty() {
            return 0;
        }
        let Ok(mut table) = self.by_id.lock() else { return 0 };
        let before = table.len();
        table.retain(|_, s| !ids.contains(&s.token_id));
        before.saturating_sub(table.len())
    }

    /// Open sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_id.lock().map_or(0, |t| t.len())
    }

    /// Whether none are open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
