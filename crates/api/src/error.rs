//! The one place where errors become HTTP: every client-visible error has a
//! stable snake_case `code`, and `status()` is an exhaustive match.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use modelplane_domain::ValidationError;
use modelplane_service::ServiceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationError,
    Unauthorized,
    Forbidden,
    NotFound(&'static str),
    AlreadyExists(&'static str),
    VersionConflict,
    Conflict,
    ConflictCode(&'static str),
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    InvalidStatusTransition,
    /// A 422 with its own stable code (e.g. `idempotency_key_reused`).
    UnprocessableCode(&'static str),
    ServiceUnavailable,
    /// A 400 with its own stable code.
    BadRequestCode(&'static str),
    /// An outside service failed (502) or is rate-limiting us (503).
    Upstream {
        code: &'static str,
        unavailable: bool,
    },
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::ValidationError => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::AlreadyExists(_)
            | Self::VersionConflict
            | Self::Conflict
            | Self::ConflictCode(_) => StatusCode::CONFLICT,
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidStatusTransition | Self::UnprocessableCode(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequestCode(_) => StatusCode::BAD_REQUEST,
            Self::Upstream { unavailable, .. } => {
                if unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_GATEWAY
                }
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_string(self) -> String {
        match self {
            Self::ValidationError => "validation_error".into(),
            Self::Unauthorized => "unauthorized".into(),
            Self::Forbidden => "forbidden".into(),
            Self::NotFound(entity) => format!("{entity}_not_found"),
            Self::AlreadyExists(entity) => format!("{entity}_already_exists"),
            Self::VersionConflict => "version_conflict".into(),
            Self::Conflict => "conflict".into(),
            Self::ConflictCode(code) => code.into(),
            Self::BadRequest => "bad_request".into(),
            Self::PayloadTooLarge => "payload_too_large".into(),
            Self::UnsupportedMediaType => "unsupported_media_type".into(),
            Self::MethodNotAllowed => "method_not_allowed".into(),
            Self::InvalidStatusTransition => "invalid_status_transition".into(),
            Self::UnprocessableCode(code) => code.into(),
            Self::ServiceUnavailable => "service_unavailable".into(),
            Self::BadRequestCode(code) | Self::Upstream { code, .. } => code.into(),
            Self::Internal => "internal_error".into(),
        }
    }
}

/// The error envelope: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(ErrorCode::ValidationError, format!("{field}: {message}"))
            .with_details(json!({ "field": field }))
    }

    pub fn not_found(entity: &'static str) -> Self {
        Self::new(ErrorCode::NotFound(entity), format!("{entity} not found"))
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::validation(&e.field, e.message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Unauthorized => ApiError::new(ErrorCode::Unauthorized, err.to_string()),
            ServiceError::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, m),
            ServiceError::NotFound(entity) => ApiError::not_found(entity.as_str()),
            ServiceError::NotFoundDetail { entity, message } => {
                ApiError::new(ErrorCode::NotFound(entity.as_str()), message)
            }
            ServiceError::AlreadyExists { entity, message } => {
                ApiError::new(ErrorCode::AlreadyExists(entity.as_str()), message)
            }
            ServiceError::Validation(v) => v.into(),
            ServiceError::InvalidTransition(t) => {
                let allowed: Vec<&str> = t.allowed.iter().map(|s| s.as_str()).collect();
                ApiError::new(
                    ErrorCode::InvalidStatusTransition,
                    format!(
                        "{t}; allowed from {}: {}",
                        t.from.as_str(),
                        if allowed.is_empty() {
                            "none (final state)".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                )
                .with_details(json!({
                    "from": t.from.as_str(),
                    "to": t.to.as_str(),
                    "allowed": allowed,
                }))
            }
            ServiceError::VersionConflict { expected, current } => {
                ApiError::new(ErrorCode::VersionConflict, err.to_string()).with_details(
                    json!({ "expected_version": expected, "current_version": current }),
                )
            }
            ServiceError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            ServiceError::ConflictCode {
                code,
                message,
                details,
            } => ApiError::new(ErrorCode::ConflictCode(code), message).with_details(details),
            ServiceError::Unprocessable { code, message } => {
                ApiError::new(ErrorCode::UnprocessableCode(code), message)
            }
            ServiceError::BadRequest(m) => ApiError::new(ErrorCode::BadRequest, m),
            ServiceError::BadRequestCode { code, message } => {
                ApiError::new(ErrorCode::BadRequestCode(code), message)
            }
            ServiceError::Upstream {
                code,
                message,
                retry_after_secs,
                unavailable,
            } => ApiError::new(ErrorCode::Upstream { code, unavailable }, message).with_details(
                match retry_after_secs {
                    Some(s) => json!({ "retry_after_secs": s }),
                    None => Value::Null,
                },
            ),
            ServiceError::Secrets(m) => {
                tracing::error!(error = %m, "secret store failure");
                ApiError::new(ErrorCode::ServiceUnavailable, m)
            }
            ServiceError::Storage(e) => {
                tracing::error!(error = %e, "storage failure");
                ApiError::new(ErrorCode::Internal, "internal error; see the server log")
            }
        }
    }
}

impl ApiError {
    /// The status and envelope this error answers with.
    pub fn into_parts(self) -> (StatusCode, ErrorBody) {
        let status = self.code.status();
        if status.is_server_error() {
            tracing::error!(code = %self.code.as_string(), message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_string(),
                message: self.message,
                details: self.details,
            },
        };
        (status, body)
    }
}

/// The envelope an error answers with, as JSON: what a staged change that
/// failed when accepted records as its `result`.
pub fn envelope(err: ServiceError) -> Value {
    let (_, body) = ApiError::from(err).into_parts();
    serde_json::to_value(body).unwrap_or(Value::Null)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.details.get("retry_after_secs").and_then(Value::as_u64);
        let (status, body) = self.into_parts();
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
