//! `ApiError`: every error answer of the API, in one place.
//!
//! Handlers return an `ApiError`; its variant alone decides the status code and the stable
//! `code` string, and [`ApiError::into_response`] writes `{"error": {"code", "message"}}`.
//! 5xx are logged at WARN, 4xx at DEBUG.

use hyper::StatusCode;

use crate::model::{ErrorBody, ErrorDetail};

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed on {path}; allowed: {allow}")]
    MethodNotAllowed { method: String, path: String, allow: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("request body is larger than the limit of {limit} bytes (coordinator.max_body_bytes)")]
    PayloadTooLarge { limit: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// A store failure: the client sees a 500 that names it, the log has the detail.
    pub fn store(err: crate::store::StoreError) -> ApiError {
        match err {
            crate::store::StoreError::WriterGone => {
                ApiError::Unavailable("the coordinator is shutting down; try again shortly".into())
            }
            err => ApiError::Internal(format!("the store failed: {err}")),
        }
    }

    /// The HTTP answer.
    pub fn into_response(self) -> super::http::Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(target: "openclaw::coordinator", status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(target: "openclaw::coordinator", status = status.as_u16(), error = %self, "request refused");
        }
        let body = ErrorBody { error: ErrorDetail { code: self.code().into(), message: self.to_string() } };
        let mut response = super::http::json(status, &body);
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
                headers.insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                if let Ok(v) = hyper::header::HeaderValue::from_str(allow) {
                    headers.insert(hyper::header::ALLOW, v);
                }
            }
            _ => {}
        }
        response
    }
}
