//! The one error answer of every route: `{ "error": { "code", "message" } }` with a code from
//! [`ErrorCode`], whose status is fixed by the code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use control::ControlError;
use queries::QueryError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error code an answer may carry. Scripts match on these; each has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request could not be handled as sent.
    BadRequest,
    /// 400: the body could not be read.
    BodyReadFailed,
    /// 400: the body is not UTF-8.
    InvalidUtf8,
    /// 400: the body is not JSON, or not JSON of the expected shape.
    InvalidJson,
    /// 400: a field of the envelope is missing.
    MissingField,
    /// 400: a field of the envelope has a bad value.
    InvalidField,
    /// 400: the JSON nests deeper than the server reads.
    TooDeep,
    /// 400: the body does not decompress as its `Content-Encoding` says.
    InvalidEncoding,
    /// 400: `reportingLevel` is not one of the four levels.
    UnknownReportingLevel,
    /// 400: a query parameter is unknown or has a bad value.
    InvalidParameter,
    /// 400: no report has that name.
    UnknownReport,
    /// 400: an uploaded rules policy cannot be read.
    InvalidPolicy,
    /// 401: no credential, or one the server does not know.
    Unauthorized,
    /// 403: the credential is known but its kind or role does not allow this.
    Forbidden,
    /// 403: a state-changing request from a session without its CSRF token or from another
    /// origin.
    CsrfRejected,
    /// 404: nothing at this path, or no such thing in the caller's tenant.
    NotFound,
    /// 405: the path does not take this method.
    MethodNotAllowed,
    /// 408: the request body did not arrive within the server's time-out.
    RequestTimeout,
    /// 409: the thing changed since the caller read it.
    Conflict,
    /// 409: the server is not set up for this (no compliance signing key, say).
    NotConfigured,
    /// 413: the body is too large before or after decompression.
    BodyTooLarge,
    /// 413: the batch holds more events than the server takes at once.
    TooManyEvents,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 415: `Content-Encoding` is neither gzip, zstd nor absent.
    UnsupportedEncoding,
    /// 500: the server failed; its log says why, the answer never does.
    InternalError,
    /// 503: the server handles as many uploads as it can.
    ServerBusy,
    /// 503: the server is behind on writing to the warehouse.
    LandingBacklog,
    /// 503: writing to the warehouse keeps failing.
    WarehouseFailing,
    /// 503: the control-plane database or the storage cannot be reached.
    StorageUnavailable,
    /// 503: a report needed more memory than the server's query budget allows.
    QueryMemoryExhausted,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 30] = {
        use ErrorCode::*;
        [
            BadRequest,
            BodyReadFailed,
            InvalidUtf8,
            InvalidJson,
            MissingField,
            InvalidField,
            TooDeep,
            InvalidEncoding,
            UnknownReportingLevel,
            InvalidParameter,
            UnknownReport,
            InvalidPolicy,
            Unauthorized,
            Forbidden,
            CsrfRejected,
            NotFound,
            MethodNotAllowed,
            RequestTimeout,
            Conflict,
            NotConfigured,
            BodyTooLarge,
            TooManyEvents,
            UnsupportedMediaType,
            UnsupportedEncoding,
            InternalError,
            ServerBusy,
            LandingBacklog,
            WarehouseFailing,
            StorageUnavailable,
            QueryMemoryExhausted,
        ]
    };

    /// The HTTP status every answer with this code has.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            BadRequest
            | BodyReadFailed
            | InvalidUtf8
            | InvalidJson
            | MissingField
            | InvalidField
            | TooDeep
            | InvalidEncoding
            | UnknownReportingLevel
            | InvalidParameter
            | UnknownReport
            | InvalidPolicy => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            Forbidden | CsrfRejected => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Conflict | NotConfigured => StatusCode::CONFLICT,
            BodyTooLarge | TooManyEvents => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType | UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            ServerBusy | LandingBacklog | WarehouseFailing | StorageUnavailable | QueryMemoryExhausted => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The code as it appears in the body.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            BodyReadFailed => "body_read_failed",
            InvalidUtf8 => "invalid_utf8",
            InvalidJson => "invalid_json",
            MissingField => "missing_field",
            InvalidField => "invalid_field",
            TooDeep => "too_deep",
            InvalidEncoding => "invalid_encoding",
            UnknownReportingLevel => "unknown_reporting_level",
            InvalidParameter => "invalid_parameter",
            UnknownReport => "unknown_report",
            InvalidPolicy => "invalid_policy",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            CsrfRejected => "csrf_rejected",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            RequestTimeout => "request_timeout",
            Conflict => "conflict",
            NotConfigured => "not_configured",
            BodyTooLarge => "body_too_large",
            TooManyEvents => "too_many_events",
            UnsupportedMediaType => "unsupported_media_type",
            UnsupportedEncoding => "unsupported_encoding",
            InternalError => "internal_error",
            ServerBusy => "server_busy",
            LandingBacklog => "landing_backlog",
            WarehouseFailing => "warehouse_failing",
            StorageUnavailable => "storage_unavailable",
            QueryMemoryExhausted => "query_memory_exhausted",
        }
    }
}

/// An error answer: a code (which fixes the status), a message that says what was wrong and
/// how to fix it, and for a `503` the seconds to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code scripts match on.
    pub code: ErrorCode,
    /// What was wrong and how to fix it.
    pub message: String,
    /// Seconds to wait before retrying (`Retry-After`).
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
    pub code: ErrorCode,
    /// What was wrong and how to fix it.
    pub message: String,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A `503` with `Retry-After`: the server sheds load or cannot store right now.
    pub fn unavailable(code: ErrorCode, message: impl Into<String>, retry_after: u32) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(code, message)
        }
    }

    /// A `500` that says nothing about the inside (the details go to the log).
    pub fn internal() -> ApiError {
        ApiError::new(
            ErrorCode::InternalError,
            "the server failed to handle this request; it has been logged, retry later",
        )
    }

    /// `400 invalid_parameter`.
    pub fn parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidParameter, message)
    }

    /// The HTTP status of this answer.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match e {
            ControlError::Invalid(m) => ApiError::parameter(m),
            e @ ControlError::InvalidField { .. } => ApiError::new(ErrorCode::InvalidField, e.to_string()),
            e @ ControlError::NotFound { .. } => ApiError::new(ErrorCode::NotFound, e.to_string()),
            ControlError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            ControlError::Refused(m) => ApiError::new(ErrorCode::Forbidden, m),
            ControlError::UnknownKey(id) => {
                ApiError::new(ErrorCode::NotFound, format!("no key with id {id:?} in your tenant"))
            }
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "the control-plane database is unavailable");
                ApiError::unavailable(
                    ErrorCode::StorageUnavailable,
                    "the control-plane database cannot be reached; nothing was changed, retry later",
                    5,
                )
            }
            other => {
                tracing::error!(error = %other, "the control plane failed");
                ApiError::internal()
            }
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        match e {
            QueryError::UnknownReport(m) => ApiError::new(ErrorCode::UnknownReport, m),
            QueryError::BadParameter(m) => ApiError::parameter(m),
            e @ QueryError::MemoryExhausted { budget, .. } => {
                // DataFusion's words name operators and sizes: the log has them, the answer not.
                tracing::warn!(error = %e, "a query ran out of its memory budget");
                ApiError::unavailable(
                    ErrorCode::QueryMemoryExhausted,
                    format!(
                        "the query needs more memory than the server's query budget of {} allows; \
                         retry later or narrow the window",
                        queries::memory::human(budget)
                    ),
                    5,
                )
            }
            other if other.storage_failure().is_some() => {
                tracing::warn!(error = %other, "a report could not read the warehouse's storage");
                ApiError::unavailable(
                    ErrorCode::StorageUnavailable,
                    "the warehouse's object storage cannot be read right now; retry later (the server log says why)",
                    10,
                )
            }
            other => {
                tracing::error!(error = %other, "a report failed");
                ApiError::internal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serialises_as_its_text() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }
}
