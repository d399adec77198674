//! `ApiError`: every error answer of the HTTP API, in one place.
//!
//! An error carries a stable [`ErrorCode`] (documented in docs/api.md; clients branch on
//! it) and a message that says what to do. The code alone decides the HTTP status
//! ([`ErrorCode::status`], beside the codes in the wire model);
//! [`ApiError::into_response`] writes `{"error": {"code", "message"}}`.
//! 5xx are logged at WARN, 4xx at DEBUG.

use hyper::StatusCode;

use super::core::Error;
use crate::api::RouteError;
use crate::model::{ErrorBody, ErrorCode, ErrorDetail};

/// An error answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For 405: the methods the path takes.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), allow: None }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    pub fn too_large(limit: u64) -> ApiError {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than the limit of {limit} bytes (coordinator.max_body_bytes)"),
        )
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The HTTP answer.
    pub fn into_response(self) -> super::http::Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(target: "openclaw::coordinator", status = status.as_u16(), code = self.code.as_str(), error = %self.message, "request failed");
        } else {
            tracing::debug!(target: "openclaw::coordinator", status = status.as_u16(), code = self.code.as_str(), error = %self.message, "request refused");
        }
        let body = ErrorBody { error: ErrorDetail { code: self.code.as_str().into(), message: self.message.clone() } };
        let mut response = super::http::json(status, &body);
        let headers = response.headers_mut();
        match self.code {
            ErrorCode::Unauthorized => {
                headers.insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
            }
            ErrorCode::Overloaded | ErrorCode::Unavailable | ErrorCode::NotLeader => {
                headers.insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("1"));
            }
            ErrorCode::TooManyStreams => {
                headers.insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from_static("10"));
            }
            _ => {}
        }
        if let Some(v) = self.allow.as_deref().and_then(|a| hyper::header::HeaderValue::from_str(a).ok()) {
            headers.insert(hyper::header::ALLOW, v);
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError::new(e.code, e.message)
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> ApiError {
        let message = e.to_string();
        match e {
            RouteError::NotFound { .. } => ApiError::new(ErrorCode::NotFound, message),
            RouteError::MethodNotAllowed { allow, .. } => {
                ApiError { code: ErrorCode::MethodNotAllowed, message, allow: Some(allow) }
            }
            RouteError::InvalidQuery(_) => ApiError::new(ErrorCode::InvalidQuery, message),
        }
    }
}
