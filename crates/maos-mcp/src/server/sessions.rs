//! MCP sessions over streamable HTTP, bounded: rmcp's in-memory session
//! manager behind a table that counts sessions per owner (the credential that
//! opened them) and in all.
//!
//! Guarantees:
//! - At most [`MCP_SESSIONS_MAX`] sessions are open, and at most
//!   [`MCP_SESSIONS_PER_OWNER_MAX`] for one owner: a new session past an owner's
//!   share closes that owner's least recently used one, so one agent opening
//!   sessions in a loop (30,000 in 13 s, +1.1 GB) churns its own share only,
//!   and a client that reconnects without closing (as MCP clients may) keeps
//!   working. A full table refuses with `MCP-SESSIONS-FULL`.
//! - A session is opened only for a bearer the mediator accepted; its owner is
//!   what [`crate::Mediator::owner`] names (the token id in MAOS).
//! - A session idle for [`MCP_SESSION_IDLE`] is closed and leaves the table (rmcp
//!   ends its worker then but keeps its handle until closed), and
//!   [`McpSessions::close_owners`] closes an owner's sessions at once (a revoked
//!   token).

use futures_core::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::SessionConfig;
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId, SessionManager};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Open MCP sessions in all (each holds an rmcp worker task and its channels).
pub const MCP_SESSIONS_MAX: usize = 1024;
/// Open MCP sessions per owner (capability token): an agent needs a few (one
/// per client process); a loop opening more cannot starve the others.
pub const MCP_SESSIONS_PER_OWNER_MAX: usize = 16;
/// A session without a request this long is closed (rmcp's keep-alive default).
pub const MCP_SESSION_IDLE: Duration = Duration::from_secs(300);
const _: () = assert!(MCP_SESSIONS_PER_OWNER_MAX < MCP_SESSIONS_MAX);

tokio::task_local! {
    /// The owner of the request being served: set by the HTTP middleware after
    /// the mediator accepted the bearer, read when rmcp creates a session.
    pub(super) static OWNER: String;
}

/// Why a session was not opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionRefusal {
    /// The table is full.
    #[error("{0} MCP sessions are open")]
    Full(usize),
    /// No accepted bearer names the request's owner.
    #[error("no accepted capability token for this session")]
    NoOwner,
    /// rmcp's error.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

impl SessionRefusal {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Full(_) => "MCP-SESSIONS-FULL",
            Self::NoOwner => "API-UNAUTHORIZED",
            Self::Local(_) => "MCP-SESSION",
        }
    }
}

struct Entry {
    owner: String,
    last_used: Instant,
}

/// rmcp's [`LocalSessionManager`] with the bounds above.
pub struct McpSessions {
    inner: LocalSessionManager,
    table: Mutex<HashMap<SessionId, Entry>>,
    idle: Duration,
}

impl std::fmt::Debug for McpSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSessions").field("open", &self.len()).finish_non_exhaustive()
    }
}

impl Default for McpSessions {
    fn default() -> Self {
        Self::with_idle(MCP_SESSION_IDLE)
    }
}

impl McpSessions {
    /// Sessions closed after `idle` without a request.
    #[must_use]
    pub fn with_idle(idle: Duration) -> Self {
        let mut config = SessionConfig::default();
        config.keep_alive = Some(idle);
        let mut inner = LocalSessionManager::default();
        inner.session_config = config;
        Self { inner, table: Mutex::new(HashMap::new()), idle }
    }

    /// Open sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.lock().map_or(0, |t| t.len())
    }

    /// Whether no session is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a new session can be opened now (idle sessions are closed
    /// first). The middleware asks before rmcp does anything for a request
    /// that would open a session.
    ///
    /// # Errors
    /// [`SessionRefusal::Full`].
    pub async fn has_room(&self) -> Result<(), SessionRefusal> {
        self.close_idle().await;
        if self.len() >= MCP_SESSIONS_MAX {
            return Err(SessionRefusal::Full(MCP_SESSIONS_MAX));
        }
        Ok(())
    }

    /// After `new` was added for `owner`: closes the owner's least recently
    /// used sessions past its share, and `new` itself if the table is over its
    /// bound (concurrent opens may all have passed [`Self::has_room`]).
    async fn enforce(&self, owner: &str, new: &SessionId) -> Result<(), SessionRefusal> {
        let evicted: Vec<SessionId> = {
            let table = self.table.lock().map_err(|_| SessionRefusal::Full(0))?;
            let mut own: Vec<(&SessionId, Instant)> = table
                .iter()
                .filter(|(id, e)| e.owner == owner && *id != new)
                .map(|(id, e)| (id, e.last_used))
                .collect();
            own.sort_by_key(|(_, used)| *used);
            let excess = own.len().saturating_add(1).saturating_sub(MCP_SESSIONS_PER_OWNER_MAX);
            own.into_iter().take(excess).map(|(id, _)| id.clone()).collect()
        };
        for id in &evicted {
            tracing::info!(owner, "MCP session closed: its token opened more than {MCP_SESSIONS_PER_OWNER_MAX}");
            self.forget_and_close(id).await;
        }
        if self.len() > MCP_SESSIONS_MAX {
            self.forget_and_close(new).await;
            return Err(SessionRefusal::Full(MCP_SESSIONS_MAX));
        }
        Ok(())
    }

    /// Closes every session of these owners. Returns how many.
    pub async fn close_owners(&self, owners: &[String]) -> usize {
        self.close_where(|e| owners.contains(&e.owner)).await
    }

    /// Closes the sessions idle for longer than the idle time (on session
    /// creation only: a request on an existing session checks its own).
    async fn close_idle(&self) -> usize {
        let now = Instant::now();
        self.close_where(|e| self.is_idle(e, now)).await
    }

    async fn close_where(&self, doomed: impl Fn(&Entry) -> bool) -> usize {
        let ids: Vec<SessionId> = match self.table.lock() {
            Ok(t) => t.iter().filter(|(_, e)| doomed(e)).map(|(id, _)| id.clone()).collect(),
            Err(_) => return 0,
        };
        for id in &ids {
            self.forget_and_close(id).await;
        }
        ids.len()
    }

    fn is_idle(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.last_used) >= self.idle
    }

    fn forget(&self, id: &SessionId) {
        if let Ok(mut t) = self.table.lock() {
            t.remove(id);
        }
    }

    async fn forget_and_close(&self, id: &SessionId) {
        self.forget(id);
        if let Err(e) = self.inner.close_session(id).await {
            tracing::debug!(error = %e, "closing an MCP session");
        }
    }

    /// Marks `id` used now; `false` when it is not in the table.
    fn touch(&self, id: &SessionId) -> bool {
        self.table.lock().is_ok_and(|mut t| t.get_mut(id).map(|e| e.last_used = Instant::now()).is_some())
    }

    /// Whether `id` is open and not idle (an idle one is closed now).
    async fn live(&self, id: &SessionId) -> bool {
        let idle = match self.table.lock() {
            Ok(t) => match t.get(id) {
                Some(e) => self.is_idle(e, Instant::now()),
                None => return false,
            },
            Err(_) => return false,
        };
        if idle {
            self.forget_and_close(id).await;
            return false;
        }
        self.touch(id)
    }
}

impl SessionManager for McpSessions {
    type Error = SessionRefusal;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let owner = OWNER.try_with(Clone::clone).map_err(|_| SessionRefusal::NoOwner)?;
        self.has_room().await?;
        let (id, transport) = self.inner.create_session().await?;
        let entry = Entry { owner: owner.clone(), last_used: Instant::now() };
        if let Ok(mut t) = self.table.lock() {
            t.insert(id.clone(), entry);
        }
        self.enforce(&owner, &id).await?;
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.live(id).await && self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.forget(id);
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.touch(id);
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        Ok(self.inner.resume(id, last_event_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open(sessions: &McpSessions, owner: &str) -> SessionId {
        OWNER.scope(owner.to_owned(), sessions.create_session()).await.unwrap().0
    }

    #[tokio::test]
    async fn an_owner_past_its_share_loses_its_least_recently_used_session() {
        let sessions = McpSessions::default();
        let first = open(&sessions, "greedy").await;
        let mut rest = Vec::new();
        for _ in 1..MCP_SESSIONS_PER_OWNER_MAX {
            rest.push(open(&sessions, "greedy").await);
        }
        let other = open(&sessions, "polite").await;
        // The first is used again: the second becomes the least recently used.
        assert!(sessions.has_session(&first).await.unwrap());
        open(&sessions, "greedy").await;
        assert_eq!(sessions.len(), MCP_SESSIONS_PER_OWNER_MAX + 1);
        assert!(sessions.has_session(&first).await.unwrap());
        assert!(!sessions.has_session(&rest[0]).await.unwrap(), "the least recently used went");
        assert!(sessions.has_session(&other).await.unwrap(), "another owner's session stays");
        assert_eq!(sessions.close_owners(&["greedy".to_owned()]).await, MCP_SESSIONS_PER_OWNER_MAX);
        assert_eq!(sessions.len(), 1);
    }

    #[tokio::test]
    async fn an_idle_session_is_closed_when_it_is_next_used() {
        let sessions = McpSessions::with_idle(Duration::from_millis(50));
        let id = open(&sessions, "o").await;
        assert!(sessions.has_session(&id).await.unwrap());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!sessions.has_session(&id).await.unwrap());
        assert!(sessions.is_empty());
    }

    #[tokio::test]
    async fn no_owner_no_session() {
        let sessions = McpSessions::default();
        assert!(matches!(sessions.create_session().await, Err(SessionRefusal::NoOwner)));
    }
}
