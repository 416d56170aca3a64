//! What the upload endpoint answers: the batch answer of a `200`, and the error body every
//! other status carries (`{ "error": { "code", "message" } }`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warehouse::validate::Rejection;

/// Tenant, device and batch id: a batch is stored once per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchKey {
    /// Tenant of the agent key.
    pub tenant: String,
    /// `deviceId` of the batch.
    pub device_id: String,
    /// `batchId` of the batch.
    pub batch_id: String,
}

/// Events per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Elevation events.
    pub elevations: u64,
    /// Diagnostic events.
    pub diagnostics: u64,
}

/// The `200` answer: the batch is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchAnswer {
    /// The batch's id, echoed.
    pub batch_id: String,
    /// True when this batch was stored before and nothing was stored now.
    pub duplicate: bool,
    /// Events stored.
    pub accepted: Counts,
    /// Events the effective reporting level does not allow: counted, never stored.
    pub dropped_by_policy: Counts,
    /// Events refused one by one, with their index, field and reason.
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<Rejection>,
}

/// An error answer in the contract's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code scripts can match on.
    pub code: &'static str,
    /// What was wrong and how to fix it.
    pub message: String,
    /// Seconds to wait before retrying (429/503).
    pub retry_after: Option<u32>,
}

/// The error body, for the OpenAPI document and for clients.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code.
    pub code: String,
    /// What was wrong and how to fix it.
    pub message: String,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `400`: the envelope cannot be used.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `503` with `Retry-After`: the server sheds load or cannot store right now.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u32) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// `500` that says nothing about the inside (the details go to the log).
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle this request; it has been logged, retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
