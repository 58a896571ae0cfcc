//! `/v1/agents`, `/v1/fever` and `/v1/prefilter`: the operator's agent
//! registry (register, demote, list), the commander's end of a security
//! fever and approval of immune memory's pre-filter proposals (issue #14).
//! Every change is a logged kernel record; these handlers only parse.

use super::{ApiResult, agent_id, body_of, close_sessions_of, json_body, reason_of, signature_of};
use crate::Api;
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maos_dsc::immune::AnomalyClass;
use maos_model::{Ring, TrustClass};
use serde::Deserialize;
use std::sync::Arc;

type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    agent: String,
    ring: u8,
    class: String,
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn list(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<Response> {
    api.operator(&headers)?;
    let view = api.kernel.agents().await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(view).into_response())
}

/// Registers an agent into ring 2 or 3 with its trust class.
pub(super) async fn register(State(api): State<Arc<Api>>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body: RegisterBody = json_body(&body_of(body)?)?;
    let agent = agent_id(&body.agent)?;
    let ring = match Ring::from_code(body.ring) {
        Some(r @ (Ring::Trusted | Ring::Untrusted)) => r,
        _ => return Err(ApiError::BadRequest(format!("ring {}: agents are registered in ring 2 or 3", body.ring))),
    };
    let class = TrustClass::parse(&body.class)
        .ok_or_else(|| ApiError::BadRequest(format!("class `{}`: use a, b or c", body.class)))?;
    // The kernel bounds what it logs.
    let reason = body.reason.as_deref().unwrap_or("registered by the operator");
    let (lsn, revoked) =
        api.kernel.register_agent(agent.clone(), ring, class, reason).await.map_err(|e| ApiError::from_kernel(&e))?;
    // A ring-3 registration of a ring-2 agent is a demotion: its revoked
    // tokens' sessions close as with `/demote`.
    close_sessions_of(&api, &revoked).await;
    let body =
        serde_json::json!({ "agent": agent, "ring": ring.code(), "class": class, "revoked": revoked, "lsn": lsn.0 });
    Ok((axum::http::StatusCode::CREATED, Json(body)).into_response())
}

/// Demotes an agent to ring 3 and revokes its wider tokens.
pub(super) async fn demote(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(agent): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let agent = agent_id(&agent)?;
    let reason = reason_of(&body, "demoted by the operator")?;
    let (lsn, revoked) =
        api.kernel.demote_agent(agent.clone(), &reason).await.map_err(|e| ApiError::from_kernel(&e))?;
    close_sessions_of(&api, &revoked).await;
    Ok(Json(serde_json::json!({ "agent": agent, "ring": 3, "revoked": revoked, "lsn": lsn.0 })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    suspect: String,
    class: String,
    #[serde(default)]
    evidence: Option<String>,
}

/// An agent reports an anomaly in another (a Danger Signal, spec §33.7.2):
/// with its own session, at most five an hour.
pub(super) async fn report(State(api): State<Arc<Api>>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    let session = api.agent(&headers)?;
    let body: ReportBody = json_body(&body_of(body)?)?;
    let suspect = agent_id(&body.suspect)?;
    let class = AnomalyClass::parse(&body.class).ok_or_else(|| {
        let names: Vec<&str> = AnomalyClass::ALL.iter().map(|c| c.name()).collect();
        ApiError::BadRequest(format!("class `{}`: one of {}", body.class, names.join(", ")))
    })?;
    let evidence = body.evidence.as_deref().unwrap_or("");
    let lsn = api
        .kernel
        .report(session.agent.clone(), suspect.clone(), class, evidence)
        .await
        .map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "suspect": suspect, "class": class, "lsn": lsn.0 })).into_response())
}

/// Ends the security fever (the commander's call, logged as `kernel.immune`).
pub(super) async fn end_fever(State(api): State<Arc<Api>>, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let reason = reason_of(&body, "ended by the commander")?;
    let lsn = api.kernel.end_fever(&reason).await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "fever": false, "lsn": lsn.0 })).into_response())
}

/// Immune memory's pre-filter proposals: threat patterns with indicators, and
/// whether the commander approved each.
pub(super) async fn proposals(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<Response> {
    api.operator(&headers)?;
    let (proposals, blocked) = api.kernel.prefilter_proposals().await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "proposals": proposals, "blocked": blocked })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposalApprovalBody {
    /// The indicators the commander was shown (and signed).
    indicators: Vec<String>,
    expires_ms: u64,
    /// Base64 of the commander's hybrid signature over the grant's message.
    signature: String,
}

/// The commander's signed approval of a proposal: its indicators become
/// check 7 blocks.
pub(super) async fn approve_proposal(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body: ProposalApprovalBody = json_body(&body_of(body)?)?;
    if id.len() > 64 || body.indicators.len() > maos_dsc::BLOCKED_MAX {
        return Err(ApiError::BadRequest("the proposal id or its indicators are over their bounds".into()));
    }
    let signature = signature_of(&body.signature, "signature")?;
    let grant =
        maos_kernel::PrefilterGrant { pattern: id.clone(), indicators: body.indicators, expires_ms: body.expires_ms };
    let approval = maos_kernel::SignedPrefilterGrant { grant, signature };
    let lsn = api.kernel.approve_prefilter(approval).await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "pattern": id, "approved": true, "lsn": lsn.0 })).into_response())
}
