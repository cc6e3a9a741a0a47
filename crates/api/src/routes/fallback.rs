use std::any::Any;

use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorCode};

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound("route"),
        format!("no route for {}", uri.path()),
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// A panic's message, for the log.
pub fn panic_detail(err: &(dyn Any + Send)) -> &str {
    err.downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

/// A panic is a bug; answer with the envelope, never a stack trace.
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!(panic = panic_detail(&*err), "handler panicked");
    ApiError::new(ErrorCode::Internal, "internal error; see the server log").into_response()
}
