//! The gateway's one error type. Every variant has a stable code (documented in
//! `docs/errors.md` and `docs/http-api.md`) and maps to one HTTP status; the
//! body is always `{"error": {"code": "...", "message": "..."}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why the API refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `API-UNAUTHORIZED`: no bearer, or one that names no live session or operator.
    #[error("{0}")]
    Unauthorized(String),
    /// `API-TOKEN-INVALID`: the capability token presented to open a session failed verification.
    #[error("capability token refused: {0}")]
    TokenInvalid(String),
    /// `API-FORBIDDEN`: authenticated, but this caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// `API-BAD-REQUEST`: the body or a parameter is malformed or over a limit.
    #[error("{0}")]
    BadRequest(String),
    /// `API-FIELD-DERIVED`: the request sets a field the kernel derives from the
    /// action's descriptor (resources, effect, cost, sink level, reads, integrity).
    #[error("{0}")]
    FieldDerived(String),
    /// `API-CONTENT-TYPE`: a request body that is not `application/json`.
    #[error("{0}")]
    ContentType(String),
    /// `API-HOST`: a `Host` that is not a loopback name (DNS rebinding), or an
    /// `Origin` that is not a loopback origin (a web page posting to the API).
    #[error("{0}")]
    Host(String),
    /// `API-TOO-LARGE`: the request body is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// `API-BODY-TIMEOUT`: the request body did not arrive within
    /// [`crate::BODY_READ_TIMEOUT`] of its head.
    #[error("{0}")]
    BodyTimeout(String),
    /// `API-NOT-FOUND`: no such intent, approval or record.
    #[error("{0}")]
    NotFound(String),
    /// `API-CONFLICT`: the thing exists but is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// `API-RATE-LIMITED`: the session is over its calls per second.
    #[error("over {per_second} requests per second for this session; retry after a short wait")]
    RateLimited {
        /// The session's limit.
        per_second: u32,
    },
    /// `API-BUSY`: a bounded table or the kernel queue is full.
    #[error("{0}")]
    Busy(String),
    /// `API-SESSIONS-PER-TOKEN`: this token already holds its share of sessions.
    #[error("this capability token already holds {max} open sessions; close one (DELETE /v1/sessions) first")]
    SessionsPerToken {
        /// The bound ([`crate::SESSIONS_PER_TOKEN_MAX`]).
        max: usize,
    },
    /// A kernel refusal carried through with its own code (`KERNEL-…`, `CL-…`, `WAL-…`).
    #[error("{message}")]
    Kernel {
        /// The kernel's stable code.
        code: &'static str,
        /// Why.
        message: String,
    },
    /// `API-INTERNAL`: a bug or an I/O failure; nothing was allowed because of it.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "API-UNAUTHORIZED",
            Self::TokenInvalid(_) => "API-TOKEN-INVALID",
            Self::Forbidden(_) => "API-FORBIDDEN",
            Self::BadRequest(_) => "API-BAD-REQUEST",
            Self::FieldDerived(_) => "API-FIELD-DERIVED",
            Self::ContentType(_) => "API-CONTENT-TYPE",
            Self::Host(_) => "API-HOST",
            Self::TooLarge(_) => "API-TOO-LARGE",
            Self::BodyTimeout(_) => "API-BODY-TIMEOUT",
            Self::NotFound(_) => "API-NOT-FOUND",
            Self::Conflict(_) => "API-CONFLICT",
            Self::RateLimited { .. } => "API-RATE-LIMITED",
            Self::Busy(_) => "API-BUSY",
            Self::SessionsPerToken { .. } => "API-SESSIONS-PER-TOKEN",
            Self::Kernel { code, .. } => code,
            Self::Internal(_) => "API-INTERNAL",
        }
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) | Self::TokenInvalid(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) | Self::FieldDerived(_) => StatusCode::BAD_REQUEST,
            Self::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Host(_) => StatusCode::FORBIDDEN,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } | Self::SessionsPerToken { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Kernel { code, .. } => kernel_status(code),
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn from_kernel(e: &maos_kernel::KernelError) -> Self {
        Self::Kernel { code: e.code(), message: e.to_string() }
    }
}

/// A kernel code's HTTP status: the caller's mistakes are 4xx (retrying will
/// not help), only a busy or stopped kernel is 503.
const fn kernel_status(code: &str) -> StatusCode {
    match code.as_bytes() {
        b"KERNEL-APPROVAL-UNKNOWN" | b"KERNEL-NOT-QUARANTINED" | b"KERNEL-NO-FEVER" | b"UNDO-NOT-FOUND" => {
            StatusCode::NOT_FOUND
        }
        b"KERNEL-APPROVAL-REJECTED" | b"KERNEL-REPORT-SUSPENDED" => StatusCode::FORBIDDEN,
        b"KERNEL-REPORT-RATE" => StatusCode::TOO_MANY_REQUESTS,
        b"KERNEL-REPORT-INVALID" => StatusCode::BAD_REQUEST,
        b"KERNEL-APPROVAL-EXPIRED"
        | b"KERNEL-TOKEN-EVENT"
        | b"KERNEL-ONBOARDING-NOT-BUILT"
        | b"KERNEL-AGENT-REGISTER"
        | b"KERNEL-QUARANTINE-ADVANCE"
        | b"KERNEL-PREFILTER-APPROVAL"
        | b"KERNEL-ECS"
        | b"TSCA-APPROVAL" => StatusCode::CONFLICT,
        [b'U', b'N', b'D', b'O', b'-', ..] => StatusCode::CONFLICT,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if matches!(self, Self::Unauthorized(_) | Self::TokenInvalid(_)) {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
