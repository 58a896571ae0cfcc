//! The `/v1` handlers. Each one authenticates first, then calls the kernel;
//! none of them decides anything itself.

mod agents;
mod resilience;

use crate::error::ApiError;
use crate::intents::{IntentRequest, IntentView, WAIT_MS_DEFAULT, WAIT_MS_MAX};
use crate::sessions::{MISSION_BYTES_MAX, NewSession, Session};
use crate::{AUDIT_PAGE_MAX, Api, BEARER_BYTES_MAX, BODY_BYTES_MAX};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use maos_kernel::KernelHandle;
use maos_model::IntentId;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

type ApiResult<T> = Result<T, ApiError>;

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/sessions", post(open_session))
        .route("/v1/sessions/current", axum::routing::delete(close_session))
        .route("/v1/intents", post(submit))
        .route("/v1/intents/{id}", get(intent_status))
        .route("/v1/intents/{id}/cancel", post(cancel))
        .route("/v1/intents/{id}/undo", post(undo))
        .route("/v1/approvals", get(approvals))
        .route("/v1/approvals/{id}", get(approval))
        .route("/v1/approvals/{id}/grant", post(grant))
        .route("/v1/approvals/{id}/deny", post(deny))
        .route("/v1/status", get(status))
        .route("/v1/apoptosis", post(apoptosis))
        .route("/v1/quarantine", get(quarantine))
        .route("/v1/quarantine/{agent}/release", post(release))
        .route("/v1/quarantine/{agent}/advance", post(advance))
        .route("/v1/agents", get(agents::list).post(agents::register))
        .route("/v1/agents/{agent}/demote", post(agents::demote))
        .route("/v1/fever/end", post(agents::end_fever))
        .route("/v1/ecs", post(resilience::emergency_shutdown))
        .route("/v1/tsca", get(resilience::tsca))
        .route("/v1/tsca/proposals/{id}/approve", post(resilience::approve_tsca))
        .route("/v1/reports", post(agents::report))
        .route("/v1/prefilter/proposals", get(agents::proposals))
        .route("/v1/prefilter/proposals/{id}/approve", post(agents::approve_proposal))
        .route("/v1/audit", get(audit))
        .route("/v1/token-events", post(token_event))
        .route("/v1/tools", get(tools))
        .route("/v1/tools/{server}/{tool}", get(show_tool))
        .route("/v1/tools/{server}/{tool}/approve", post(approve_tool))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(hygiene))
        .with_state(api)
}

/// Whether a `Host` (or an `Origin`'s host) names this machine's loopback
/// interface: `localhost`, `127.0.0.1` or `[::1]`, with any port.
fn loopback_authority(authority: &str) -> bool {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { authority })
    };
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
}

/// HTTP hygiene on `/v1`, as rmcp does on `/mcp`: a `Host` that is not a
/// loopback name is refused (a DNS-rebinding page reaches the API under its own
/// name), so is an `Origin` that is not a loopback origin (a web page posting
/// with the user's browser), and a request body must be `application/json`.
async fn hygiene(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !loopback_authority(host) {
        return ApiError::Host(format!("`Host: {}` is not a loopback name", maos_model::prefix_within(host, 100)))
            .into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let text = origin.to_str().unwrap_or_default();
        let authority = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"));
        if !authority.is_some_and(loopback_authority) {
            return ApiError::Host(format!(
                "`Origin: {}` is not a loopback origin",
                maos_model::prefix_within(text, 100)
            ))
            .into_response();
        }
    }
    let has_body = headers.get(header::TRANSFER_ENCODING).is_some()
        || headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
    if has_body {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return ApiError::ContentType("a request body must be `Content-Type: application/json`".into())
                .into_response();
        }
    }
    next.run(request).await
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer …`".into()))?;
    if value.len() > BEARER_BYTES_MAX {
        return Err(ApiError::Unauthorized(format!("bearer over {BEARER_BYTES_MAX} bytes")));
    }
    let text = value.to_str().map_err(|_| ApiError::Unauthorized("bearer is not ASCII".into()))?;
    text.strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized("expected `Authorization: Bearer …`".into()))
}

enum Caller {
    Operator,
    Agent(Arc<Session>),
}

impl Api {
    fn is_operator(&self, bearer: &str) -> bool {
        bearer.starts_with("op_") && maos_crypto::sha3_256(bearer.as_bytes()).0 == self.operator_sha3
    }

    fn caller(&self, headers: &HeaderMap) -> ApiResult<Caller> {
        let token = bearer(headers)?;
        if self.is_operator(token) {
            return Ok(Caller::Operator);
        }
        if token.starts_with("ses_") {
            let session = self.sessions.get(token, now_ms())?;
            session.admit(self.limits)?;
            return Ok(Caller::Agent(session));
        }
        Err(ApiError::Unauthorized("bearer is neither a session id nor the operator secret".into()))
    }

    fn agent(&self, headers: &HeaderMap) -> ApiResult<Arc<Session>> {
        match self.caller(headers)? {
            Caller::Agent(s) => Ok(s),
            Caller::Operator => Err(ApiError::Forbidden("agents only: open a session with a capability token".into())),
        }
    }

    fn operator(&self, headers: &HeaderMap) -> ApiResult<()> {
        match self.caller(headers)? {
            Caller::Operator => Ok(()),
            Caller::Agent(_) => Err(ApiError::Forbidden("operator only".into())),
        }
    }
}

fn parse_id(text: &str) -> ApiResult<IntentId> {
    IntentId::try_from(text.to_owned())
        .map_err(|_| ApiError::BadRequest(format!("`{text}` is not an intent id (a UUID)")))
}

/// An agent id from a path or a body, with a coded error.
fn agent_id(text: &str) -> ApiResult<maos_model::AgentId> {
    maos_model::AgentId::new(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Parses a JSON body with a coded error instead of axum's plain-text rejection.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("malformed JSON body: {}", maos_model::prefix_within(&e.to_string(), 300)))
    })
}

async fn method_not_allowed() -> Response {
    let mut r =
        ApiError::BadRequest("method not allowed on this endpoint; see GET /v1/openapi.json".into()).into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// A body that could not be read (over [`BODY_BYTES_MAX`], or cut off) as a coded error.
fn body_of(body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>) -> ApiResult<axum::body::Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!("request body over {BODY_BYTES_MAX} bytes"))
        } else if crate::listener::body_timed_out(&e) {
            ApiError::BodyTimeout(format!(
                "request body not received within {} s of its head",
                crate::BODY_READ_TIMEOUT.as_secs()
            ))
        } else {
            ApiError::BadRequest(format!("request body unreadable: {e}"))
        }
    })
}

/// A query string that does not parse, as a coded error.
fn query_of<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> ApiResult<T> {
    q.map(|Query(v)| v).map_err(|e| ApiError::BadRequest(format!("bad query string: {}", e.body_text())))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see GET /v1/openapi.json".into())
}

async fn health(State(api): State<Arc<Api>>) -> Response {
    let mode = api.kernel.mode();
    let state = api.kernel.state();
    // Effects run (GREEN, YELLOW, AMBER) and the mode refuses none.
    let ok = matches!(mode, maos_kernel::Mode::Normal) && state.effects_allowed();
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "state": state,
        "mode": mode.name(),
        "why": mode.why(),
    });
    (StatusCode::OK, Json(body)).into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::DOCUMENT).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenSession {
    #[serde(default)]
    mission_statement: Option<String>,
}

async fn open_session(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let body = body_of(body)?;
    let token = bearer(&headers)?.to_owned();
    let request: OpenSession = if body.is_empty() { OpenSession::default() } else { json_body(&body)? };
    if request.mission_statement.as_ref().is_some_and(|m| m.len() > MISSION_BYTES_MAX) {
        return Err(ApiError::BadRequest(format!("`mission_statement` over {MISSION_BYTES_MAX} bytes")));
    }
    let claims = api
        .kernel
        .verify_token(token.clone())
        .await
        .map_err(|e| ApiError::from_kernel(&e))?
        .map_err(|e| ApiError::TokenInvalid(format!("{} ({})", e, e.code())))?;
    let session = api.sessions.open(
        NewSession {
            agent: claims.agent.clone(),
            token_id: claims.id,
            token,
            expires_ms: claims.expires.0,
            mission: request.mission_statement.or_else(|| claims.mission.clone()),
        },
        now_ms(),
        api.limits.burst,
    )?;
    tracing::info!(agent = %session.agent, token = %session.token_id, "session opened");
    let body = serde_json::json!({
        "session": session.id, "agent": session.agent.as_str(), "token_id": session.token_id.to_string(),
        "expires_ms": session.expires_ms,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn close_session(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<StatusCode> {
    let session = api.agent(&headers)?;
    api.sessions.close(&session.id);
    Ok(StatusCode::NO_CONTENT)
}

fn new_intent_id() -> ApiResult<IntentId> {
    let random = maos_crypto::random_bytes::<10>().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(IntentId::new_v7(now_ms(), random))
}

async fn wait_for(mut rx: tokio::sync::watch::Receiver<Arc<IntentView>>, wait_ms: u64) -> Arc<IntentView> {
    let wait = Duration::from_millis(wait_ms.min(WAIT_MS_MAX));
    // A pending approval is an answer too: the agent learns the approval id.
    let settled = |v: &Arc<IntentView>| v.status != crate::Status::Queued;
    let waited = match tokio::time::timeout(wait, rx.wait_for(settled)).await {
        Ok(Ok(view)) => Some(view.clone()),
        Ok(Err(_)) | Err(_) => None,
    };
    waited.unwrap_or_else(|| rx.borrow().clone())
}

fn view_response(view: &IntentView) -> Response {
    let status = if view.status == crate::Status::Queued { StatusCode::ACCEPTED } else { StatusCode::OK };
    (status, Json(view)).into_response()
}

async fn submit(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let session = api.agent(&headers)?;
    let body = body_of(body)?;
    let request: IntentRequest = json_body(&body)?;
    let wait_ms = request.wait_ms.unwrap_or(WAIT_MS_DEFAULT);
    if wait_ms > WAIT_MS_MAX {
        return Err(ApiError::BadRequest(format!("`wait_ms` over {WAIT_MS_MAX}")));
    }
    let id = new_intent_id()?;
    let (intent, refusal) = request.into_intent(id, session.agent.clone())?;
    if let Some(why) = refusal {
        // Logged first: every refusal is in the audit log.
        api.kernel
            .refuse(intent, crate::intents::CODE_FIELD_DERIVED, why.clone())
            .await
            .map_err(|e| ApiError::from_kernel(&e))?;
        return Err(ApiError::FieldDerived(why));
    }
    let rx = api.results.reserve(id, &session.id)?;
    let submission = match api.kernel.submit(intent, session.token.to_string()) {
        Ok(s) => s,
        Err(e) => {
            let view = IntentView::denied(id, e.code(), e.to_string());
            api.results.set(view.clone());
            return Err(ApiError::from_kernel(&e));
        }
    };
    let waiter = api.clone();
    tokio::spawn(async move {
        let view = match submission.outcome().await {
            Ok(reply) => IntentView::of(&reply),
            Err(e) => IntentView::denied(id, e.code(), e.to_string()),
        };
        waiter.results.set(view);
    });
    let view = wait_for(rx, wait_ms).await;
    api.results.delivered(&view);
    Ok(view_response(&view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    #[serde(default)]
    wait_ms: Option<u64>,
}

async fn intent_status(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let q = query_of(q)?;
    let id = parse_id(&id)?;
    if q.wait_ms.is_some_and(|w| w > WAIT_MS_MAX) {
        return Err(ApiError::BadRequest(format!("`wait_ms` over {WAIT_MS_MAX}")));
    }
    let (rx, owner) = match api.caller(&headers)? {
        Caller::Operator => (api.results.get(id, None)?, false),
        Caller::Agent(s) => (api.results.get(id, Some(&s.id))?, true),
    };
    let view = wait_for(rx, q.wait_ms.unwrap_or(0)).await;
    // Only the owner's fetch delivers the body; the operator's look does not.
    if owner {
        api.results.delivered(&view);
    }
    Ok(view_response(&view))
}

async fn cancel(State(api): State<Arc<Api>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let (rx, who) = match api.caller(&headers)? {
        Caller::Operator => (api.results.get(id, None)?, "operator".to_owned()),
        Caller::Agent(s) => (api.results.get(id, Some(&s.id))?, format!("agent {}", s.agent)),
    };
    let current = rx.borrow().clone();
    if current.status != crate::Status::PendingApproval {
        return Err(ApiError::Conflict(format!(
            "intent `{id}` is {:?}: only an intent waiting for approval can be cancelled (undo a done one)",
            current.status
        )));
    }
    api.kernel.deny(id, &format!("cancelled by {who}")).await.map_err(|e| ApiError::from_kernel(&e))?;
    let view = IntentView::denied(id, "HACF-CANCELLED", format!("cancelled by {who} before approval"));
    api.results.set(view.clone());
    Ok((StatusCode::OK, Json(view)).into_response())
}

async fn undo(State(api): State<Arc<Api>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    api.operator(&headers)?;
    let id = parse_id(&id)?;
    let undone = api.kernel.undo(id).await.map_err(|e| match e {
        maos_kernel::KernelError::Undo { code, why } => ApiError::Kernel { code, message: why },
        other => ApiError::from_kernel(&other),
    })?;
    if let Ok(rx) = api.results.get(id, None) {
        let mut view = rx.borrow().as_ref().clone();
        view.status = crate::Status::Undone;
        view.undo_until_ms = None;
        api.results.set(view);
    }
    Ok(Json(serde_json::json!({ "intent": undone.intent, "undone": true, "lsn": undone.lsn.0 })).into_response())
}

async fn approvals(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<Response> {
    api.operator(&headers)?;
    let packets = api.kernel.approvals().await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "approvals": packets })).into_response())
}

async fn find_packet(kernel: &KernelHandle, id: IntentId) -> ApiResult<maos_kernel::ApprovalPacket> {
    let packets = kernel.approvals().await.map_err(|e| ApiError::from_kernel(&e))?;
    packets
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no open approval `{id}` (decided, expired or unknown)")))
}

async fn approval(State(api): State<Arc<Api>>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    api.operator(&headers)?;
    let packet = find_packet(&api.kernel, parse_id(&id)?).await?;
    let grant = KernelHandle::grant_for(&packet)
        .ok_or_else(|| ApiError::Internal("packet holds a malformed decision hash".into()))?;
    let message = base64::engine::general_purpose::STANDARD.encode(grant.message());
    Ok(Json(serde_json::json!({ "approval": packet, "sign": message })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    /// Base64 of the commander's hybrid signature over the packet's grant message.
    signature: String,
}

async fn grant(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let id = parse_id(&id)?;
    let body: GrantBody = json_body(&body)?;
    let signature = signature_of(&body.signature, "signature")?;
    let packet = find_packet(&api.kernel, id).await?;
    let grant = KernelHandle::grant_for(&packet)
        .ok_or_else(|| ApiError::Internal("packet holds a malformed decision hash".into()))?;
    let signed = maos_commit::SignedApproval { grant, signature };
    let reply = api.kernel.approve(id, signed).await.map_err(|e| ApiError::from_kernel(&e))?;
    let view = IntentView::of(&reply);
    api.results.set(view.clone());
    Ok(Json(view).into_response())
}

/// A commander's hybrid signature sent as base64 in the body's `field`.
pub(super) fn signature_of(text: &str, field: &str) -> ApiResult<maos_crypto::Signature> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ApiError::BadRequest(format!("`{field}` is not base64")))?;
    maos_crypto::Signature::from_bytes(&bytes).map_err(|e| ApiError::BadRequest(format!("`{field}`: {e}")))
}

/// The optional `{"reason": "…"}` body of a deny, a release or an apoptosis.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

/// The reason a body gives (bounded to `MISSION_BYTES_MAX`), else `default`.
fn reason_of(body: &[u8], default: &str) -> ApiResult<String> {
    let body: ReasonBody = if body.is_empty() { ReasonBody::default() } else { json_body(body)? };
    Ok(body.reason.as_deref().map_or(default, |r| maos_model::prefix_within(r, MISSION_BYTES_MAX)).to_owned())
}

async fn deny(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let id = parse_id(&id)?;
    let reason = reason_of(&body, "denied by the operator")?;
    api.kernel.deny(id, &reason).await.map_err(|e| ApiError::from_kernel(&e))?;
    let view = IntentView::denied(id, "HACF-DENIED", reason);
    api.results.set(view.clone());
    Ok(Json(view).into_response())
}

async fn quarantine(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<Response> {
    api.operator(&headers)?;
    let agents = api.kernel.quarantine().await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "agents": agents })).into_response())
}

/// The agent reports its own compromise (spec §37.11.2): always accepted, stage 3 at once.
async fn apoptosis(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let session = api.agent(&headers)?;
    let body = body_of(body)?;
    let reason = reason_of(&body, "reported by the agent")?;
    let lsn = api.kernel.apoptosis(session.agent.clone(), &reason).await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "agent": session.agent, "stage": 3, "lsn": lsn.0 })).into_response())
}

/// The operator releases an agent from quarantine (logged with the reason).
async fn release(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(agent): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let agent = agent_id(&agent)?;
    let reason = reason_of(&body, "released by the operator")?;
    let lsn = api.kernel.release(agent.clone(), &reason).await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "agent": agent, "released": true, "lsn": lsn.0 })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    #[serde(default)]
    reason: Option<String>,
    /// Hardened and Isolated, from stage 3: the commander's approval.
    #[serde(default)]
    approval: Option<EliminationApprovalBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EliminationApprovalBody {
    /// When the agent entered stage 3 (as `/v1/quarantine` shows it).
    stage_since_ms: u64,
    expires_ms: u64,
    /// Base64 of the commander's hybrid signature over the grant's message.
    signature: String,
}

/// The operator's confirmed escalation by one stage; from stage 3 the
/// agent's elimination and healing (stages 4 and 5), whose revoked tokens'
/// sessions close here.
async fn advance(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(agent): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let agent = agent_id(&agent)?;
    let body: AdvanceBody = if body.is_empty() { AdvanceBody::default() } else { json_body(&body)? };
    let reason = body.reason.as_deref().unwrap_or("advanced by the operator");
    let approval = match body.approval {
        None => None,
        Some(a) => {
            let signature = signature_of(&a.signature, "approval.signature")?;
            let grant = maos_kernel::EliminationGrant {
                agent: agent.clone(),
                stage_since_ms: a.stage_since_ms,
                expires_ms: a.expires_ms,
            };
            Some(maos_kernel::SignedElimination { grant, signature })
        }
    };
    let advanced = api.kernel.advance(agent, reason, approval).await.map_err(|e| ApiError::from_kernel(&e))?;
    close_sessions_of(&api, &advanced.revoked).await;
    Ok(Json(advanced).into_response())
}

async fn status(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<Response> {
    api.operator(&headers)?;
    let s = api.kernel.status();
    let wal_state = match s.wal.state {
        maos_wal::HealthState::Healthy => "healthy",
        maos_wal::HealthState::Degraded => "degraded",
        maos_wal::HealthState::CommitFreeze => "commit_freeze",
    };
    // A queue too full to answer is said as such, never as "no fever".
    let fever = match api.kernel.fever().await {
        Ok(fever) => serde_json::json!(fever),
        Err(e) => serde_json::json!({ "unknown": e.code() }),
    };
    Ok(Json(serde_json::json!({
        "fever": fever,
        "state": s.posture.state,
        "degraded_modes": s.posture.modes.iter().map(|m| m.number()).collect::<Vec<_>>(),
        "state_why": s.posture.why,
        "human_ack": s.posture.human_ack,
        "components": s.components,
        "disk_used_pct": s.disk_used_pct,
        "memory_used_pct": s.memory_used_pct,
        "evaluator": s.evaluator.as_ref().map(|(url, answering)| serde_json::json!({ "url": url, "answering": answering })),
        "mode": s.mode.name(),
        "why": s.mode.why(),
        "effects_refused_with": s.mode.effect_refusal(),
        "queue_depth": s.queue_depth,
        "queue_capacity": s.queue_capacity,
        "last_lsn": s.last_lsn.map(|l| l.0),
        "wal": wal_state,
        "wal_events": s.wal.events.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>(),
        "pending_approvals": s.pending_approvals,
        "wall_clock_offset_ms": s.wall_clock_offset_ms,
        "ecs": s.ecs,
        "tsca": s.tsca,
        "breakers": api.breakers(),
        "sessions": api.sessions.len(),
        "uptime_s": api.started.elapsed().as_secs(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn audit(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let q = query_of(q)?;
    let from = q.from.unwrap_or(1).max(1);
    let limit = q.limit.unwrap_or(100).clamp(1, AUDIT_PAGE_MAX);
    let source = api.audit.clone();
    let records = tokio::task::spawn_blocking(move || source.read(from, limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)?;
    let next =
        records.last().and_then(|r| r.get("lsn")).and_then(serde_json::Value::as_u64).map(|l| l.saturating_add(1));
    Ok(Json(serde_json::json!({ "records": records, "next": next })).into_response())
}

async fn token_event(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let event: maos_token::TokenEvent = json_body(&body)?;
    let revoked = match &event {
        maos_token::TokenEvent::Revoked(r) => r.ids.clone(),
        maos_token::TokenEvent::Issued(_) => Vec::new(),
    };
    let lsn = api.kernel.token_event(event).await.map_err(|e| match e {
        maos_kernel::KernelError::TokenEvent(why) => ApiError::Conflict(why),
        other => ApiError::from_kernel(&other),
    })?;
    close_sessions_of(&api, &revoked).await;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "lsn": lsn.0 }))).into_response())
}

/// Closes, for as long as the kernel runs, the sessions of the tokens the
/// kernel revokes on its own (an automatic elimination, Fast Apoptosis).
pub fn follow_kernel_revocations(api: Arc<Api>) -> tokio::task::JoinHandle<()> {
    let mut feed = api.kernel.kernel_revocations();
    tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(revoked) => close_sessions_of(&api, &revoked).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "missed kernel revocations: their sessions close at their next request");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

/// Closes the HTTP and MCP sessions of tokens whose revocation is logged, so
/// they stop at once instead of holding table slots until they expire.
async fn close_sessions_of(api: &Api, revoked: &[maos_model::TokenId]) {
    let mut closed = api.sessions.close_tokens(revoked);
    if let Some(mcp) = api.mcp_sessions.get() {
        let owners: Vec<String> = revoked.iter().map(ToString::to_string).collect();
        closed = closed.saturating_add(mcp.close_owners(&owners).await);
    }
    if closed > 0 {
        tracing::info!(closed, "closed the sessions of revoked tokens");
    }
}

fn tool_json(e: &crate::mcp::ToolEntry) -> serde_json::Value {
    serde_json::json!({
        "server": e.server, "tool": e.tool.name.as_ref(), "action": e.action, "pin": maos_mcp::pin_hex(&e.pin),
        "effect": e.policy.effect.name(), "untrusted_output": e.policy.output.untrusted,
        "enabled": e.disabled.is_none(),
        "disabled": e.disabled.as_ref().map(|d| serde_json::json!({ "code": d.code, "why": d.why })),
    })
}

async fn tools(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<Response> {
    api.operator(&headers)?;
    let list: Vec<serde_json::Value> =
        api.tools.as_ref().map(|(r, _)| r.all().iter().map(tool_json).collect()).unwrap_or_default();
    Ok(Json(serde_json::json!({ "tools": list })).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveToolBody {
    /// Approve a definition the pre-filter flagged (the operator read it).
    #[serde(default)]
    allow_poisoned: bool,
}

async fn approve_tool(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path((server, tool)): Path<(String, String)>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let options: ApproveToolBody = if body.is_empty() { ApproveToolBody::default() } else { json_body(&body)? };
    let (registry, wal) =
        api.tools.clone().ok_or_else(|| ApiError::NotFound("no MCP upstreams are configured".into()))?;
    let entry = tokio::task::spawn_blocking(move || registry.approve(&server, &tool, &wal, options.allow_poisoned))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| if e.starts_with("MCP-TOOL-POISONED") { ApiError::Conflict(e) } else { ApiError::NotFound(e) })?;
    Ok(Json(tool_json(&entry)).into_response())
}

async fn show_tool(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path((server, tool)): Path<(String, String)>,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let (registry, wal) =
        api.tools.clone().ok_or_else(|| ApiError::NotFound("no MCP upstreams are configured".into()))?;
    let action = crate::mcp::action_for(&server, &tool)
        .ok_or_else(|| ApiError::BadRequest(format!("`{server}/{tool}` is not a tool name")))?;
    let entry = registry.get(&action).ok_or_else(|| ApiError::NotFound(format!("no tool `{server}/{tool}`")))?;
    let (s, t) = (entry.server.clone(), entry.tool.name.to_string());
    let vouched = tokio::task::spawn_blocking(move || registry.vouched_definition(&s, &t, &wal.reader()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)?;
    let mut doc = tool_json(&entry);
    if let Some(map) = doc.as_object_mut() {
        map.insert("definition".into(), serde_json::to_value(&entry.tool).unwrap_or_default());
        map.insert("vouched".into(), vouched.unwrap_or(serde_json::Value::Null));
        map.insert("poisoned".into(), entry.poisoned.clone().map_or(serde_json::Value::Null, Into::into));
    }
    Ok(Json(doc).into_response())
}
