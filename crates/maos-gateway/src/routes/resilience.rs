//! `/v1/ecs` and `/v1/tsca`: the operator's emergency controlled shutdown
//! (spec §38.6) and the TSCA's state and the commander's approval of its
//! Hardened proposals (spec §38.7; `docs/resilience.md`).

use super::{ApiResult, body_of, json_body, reason_of, signature_of};
use crate::Api;
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

/// A manual emergency controlled shutdown: SAFE-HOLD at once, every request
/// refused `KERNEL-ECS`, a forensic report written; the next boot needs the
/// commander's acknowledgement.
pub(super) async fn emergency_shutdown(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body = body_of(body)?;
    let reason = reason_of(&body, "emergency shutdown by the operator")?;
    let report = api.kernel.emergency_shutdown(&reason).await.map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(report).into_response())
}

/// The TSCA: level, mode, open incident with its budget spent, proposals.
pub(super) async fn tsca(State(api): State<Arc<Api>>, headers: HeaderMap) -> ApiResult<Response> {
    api.operator(&headers)?;
    Ok(Json(api.kernel.tsca()).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TscaApprovalBody {
    /// The commander's signature over the proposal and its action, base64.
    signature: String,
}

/// The commander's approval of a Hardened TSCA proposal.
pub(super) async fn approve_tsca(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    api.operator(&headers)?;
    let body: TscaApprovalBody = json_body(&body_of(body)?)?;
    if id.len() > 64 {
        return Err(ApiError::BadRequest("the proposal id is over 64 bytes".into()));
    }
    let signature = signature_of(&body.signature, "signature")?;
    let approval = maos_kernel::SignedTscaApproval { proposal: id.clone(), signature };
    let action = api.kernel.approve_tsca(&approval).map_err(|e| ApiError::from_kernel(&e))?;
    Ok(Json(serde_json::json!({ "proposal": id, "approved": true, "action": action })).into_response())
}
