//! `ApiError`: the one error type that becomes an HTTP response.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::providers::ProviderError;
use crate::store::StoreError;

/// Body: `{"code": "<stable snake_case>", "message": "..."}`. Client errors say what is wrong;
/// internal errors are logged and answered with a plain 500.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    /// No API token, or an unknown one (401, `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthenticated(String),
    /// A known token without the role, or limited to other sources (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// The request is valid but what it names is not in a state that allows it (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The store cannot take the request now; the sender should retry.
    #[error("store unavailable, retry later")]
    Unavailable,
    /// A server limit is reached (requests, or request bytes, in flight); the sender should
    /// retry shortly. Nothing was read or stored.
    #[error("{what}, retry later")]
    Overloaded { what: &'static str },
    /// The request body did not arrive within `server.body_read_timeout`.
    #[error("the request body was not received within {seconds} s")]
    BodyTimeout { seconds: u64 },
    #[error("internal error")]
    Internal(String),
}

/// What every error answers (the OpenAPI document's schema of it).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable snake_case code: `invalid_query`, `forbidden`, `event_not_found`, ...
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
}

/// The refusals every route may answer, in the OpenAPI document: `responses(..., Refusals)`.
#[derive(utoipa::IntoResponses)]
#[allow(
    dead_code,
    reason = "a description of answers for the OpenAPI document, never built"
)]
pub enum Refusals {
    /// refused: the body says why
    #[response(status = "4XX")]
    Refused(ErrorBody),
    /// the store is unavailable or the engine overloaded (`Retry-After`)
    #[response(status = "5XX")]
    Unavailable(ErrorBody),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::Unauthorized(_) => "invalid_signature",
            Self::Unauthenticated(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Unavailable => "store_unavailable",
            Self::Overloaded { .. } => "overloaded",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable | Self::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from(&e)
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Signature { reason } => Self::Unauthorized(reason),
            ProviderError::MalformedJson { reason } => Self::BadRequest {
                code: "malformed_json",
                message: reason,
            },
            ProviderError::Invalid { reason } => Self::BadRequest {
                code: "invalid_event",
                message: reason,
            },
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::BadRequest {
            code: "invalid_query",
            message: e.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                "internal error".to_owned()
            }
            Self::Unavailable => {
                tracing::warn!("answered 503: store unavailable");
                self.to_string()
            }
            other => other.to_string(),
        };
        let mut response = (
            self.status(),
            Json(json!({ "code": self.code(), "message": message })),
        )
            .into_response();
        if matches!(self, Self::Unauthenticated(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry_after = match self {
            Self::Unavailable => Some(HeaderValue::from_static("5")),
            Self::Overloaded { .. } => {
                Some(HeaderValue::from(crate::api::limits::RETRY_AFTER_SECONDS))
            }
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response
    }
}
