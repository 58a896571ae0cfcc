//! MCP over streamable HTTP, as a tower service and an axum router.
//!
//! rmcp's `StreamableHttpService` in session mode with its in-memory session manager;
//! the default config keeps rmcp's DNS-rebinding guard (only `localhost`, `127.0.0.1`
//! and `::1` are accepted as `Host`) and the body cap is [`REQUEST_BYTES_MAX`]. A session
//! is not bound to a token: each POST is authenticated with its own bearer.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use sha3::Digest as _;

use super::sessions::{McpSessions, OWNER};
use super::{BEARER_BYTES_MAX, McpServer, Mediator, REQUEST_BYTES_MAX, Refusal, unauthorized};

/// The streamable HTTP MCP endpoint for a mediator, on bounded sessions.
pub type HttpService<M> = StreamableHttpService<McpServer<M>, McpSessions>;

/// The service behind [`router_with_sessions`]; the body cap is lowered to
/// [`REQUEST_BYTES_MAX`] if the config allows more.
fn http_service<M: Mediator>(
    mediator: Arc<M>,
    mut config: StreamableHttpServerConfig,
    sessions: Arc<McpSessions>,
) -> HttpService<M> {
    config.max_request_body_bytes = config.max_request_body_bytes.min(REQUEST_BYTES_MAX);
    let server = McpServer::over_http(mediator);
    StreamableHttpService::new(move || Ok(server.clone()), sessions, config)
}

/// A router serving the MCP endpoint at exactly `/mcp` (other paths are not routed)
/// behind [`require_bearer`], with the default config (session mode, loopback `Host`
/// check, SSE keep-alive 15 s) and its own session table. Merge it into the daemon's
/// router with `Router::merge`.
pub fn router<M: Mediator>(mediator: Arc<M>) -> axum::Router {
    router_with_config(mediator, StreamableHttpServerConfig::default())
}

/// As [`router`] with a config of the caller's, e.g. more allowed hosts, or
/// `config.cancellation_token` kept to end open SSE streams on shutdown (axum's
/// graceful shutdown waits for them).
pub fn router_with_config<M: Mediator>(mediator: Arc<M>, config: StreamableHttpServerConfig) -> axum::Router {
    router_with_sessions(mediator, config, Arc::new(McpSessions::default()))
}

/// As [`router_with_config`] on a session table the caller keeps (to close a
/// revoked token's sessions with [`McpSessions::close_owners`]).
pub fn router_with_sessions<M: Mediator>(
    mediator: Arc<M>,
    config: StreamableHttpServerConfig,
    sessions: Arc<McpSessions>,
) -> axum::Router {
    axum::Router::new()
        .route_service("/mcp", http_service(Arc::clone(&mediator), config, Arc::clone(&sessions)))
        .route_layer(axum::middleware::from_fn_with_state((mediator, sessions), admit_session::<M>))
        .route_layer(axum::middleware::from_fn(require_bearer))
}

/// A JSON-RPC refusal (for request `id`) as an HTTP answer.
fn refusal_response(status: StatusCode, id: serde_json::Value, refusal: &Refusal) -> Response {
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": refusal.to_error_data() });
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.to_string()).into_response()
}

/// A refused bearer's `initialize` is answered as the MCP handler would have
/// answered it, a JSON-RPC error for the request's id, but no session is
/// opened for it.
async fn refused_initialize(request: Request, refusal: &Refusal) -> Response {
    let body = axum::body::to_bytes(request.into_body(), REQUEST_BYTES_MAX).await.unwrap_or_default();
    let id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    refusal_response(StatusCode::OK, id, refusal)
}

/// A request that would open a session (a POST without `Mcp-Session-Id`) is
/// let through only for a bearer the mediator accepts and while the table has
/// room (the owner's least recently used session makes way past its share);
/// the session is then counted under that owner.
async fn admit_session<M: Mediator>(
    State((mediator, sessions)): State<(Arc<M>, Arc<McpSessions>)>,
    request: Request,
    next: Next,
) -> Response {
    let opens = request.method() == Method::POST && !request.headers().contains_key("mcp-session-id");
    if !opens {
        return next.run(request).await;
    }
    let Some(bearer) = bearer_from_headers(request.headers()).map(str::to_owned) else {
        return refusal_response(StatusCode::UNAUTHORIZED, serde_json::Value::Null, &unauthorized());
    };
    let session = match mediator.authenticate(&bearer).await {
        Ok(s) => s,
        Err(refusal) => return refused_initialize(request, &refusal).await,
    };
    let owner = mediator
        .owner(&session)
        .unwrap_or_else(|| crate::pin::pin_hex(&sha3::Sha3_256::digest(bearer.as_bytes()).into()));
    if let Err(e) = sessions.has_room().await {
        let refusal = Refusal::new(e.code(), e.to_string());
        return refusal_response(StatusCode::SERVICE_UNAVAILABLE, serde_json::Value::Null, &refusal);
    }
    OWNER.scope(owner, next.run(request)).await
}

/// axum middleware (`axum::middleware::from_fn(require_bearer)`): a request without a
/// usable `Authorization: Bearer …` header gets HTTP 401 with `WWW-Authenticate: Bearer`
/// and the JSON-RPC error body
/// `{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"API-UNAUTHORIZED: …","data":{"code":"API-UNAUTHORIZED"}}}`,
/// so nothing is listed without a token. The token itself is checked by the mediator,
/// per request.
pub async fn require_bearer(request: Request, next: Next) -> Response {
    if bearer_from_headers(request.headers()).is_some() {
        return next.run(request).await;
    }
    let mut response = refusal_response(StatusCode::UNAUTHORIZED, serde_json::Value::Null, &unauthorized());
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The bearer token of `Authorization: Bearer <token>` (scheme case-insensitive), when
/// present, non-empty and at most [`BEARER_BYTES_MAX`] bytes.
pub(super) fn bearer_from_headers(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= BEARER_BYTES_MAX).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_is_read_from_the_authorization_header() {
        assert_eq!(bearer_from_headers(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_from_headers(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_from_headers(&headers("Basic abc")), None);
        assert_eq!(bearer_from_headers(&headers("Bearer ")), None);
        assert_eq!(bearer_from_headers(&headers("Bearer")), None);
        assert_eq!(bearer_from_headers(&HeaderMap::new()), None);
        let long = format!("Bearer {}", "a".repeat(BEARER_BYTES_MAX + 1));
        assert_eq!(bearer_from_headers(&headers(&long)), None);
    }
}
