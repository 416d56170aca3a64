//! The device side of support-approved elevation requests: a device asks
//! (`POST /v1/agent/requests`), withdraws (`POST /v1/agent/requests/{id}/cancel`) and learns
//! what it may elevate and what was decided (`GET /v1/agent/approvals`). The workflow itself
//! (states, compare-and-set, expiry) is `control::requests`; this module reads the wire, and
//! finds the `supportApprovedElevation` rows whose approvals the lander marks used.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use control::ControlPlane;
use control::requests::{DeviceApprovals, ElevationRequest, NewRequest, RequestUse};
use serde::Deserialize;
use web::auth::Agent;
use web::{ApiError, ErrorCode};

/// The largest request body: a request is a few hundred bytes, a publisher certificate chain
/// a few KiB.
const MAX_REQUEST_BYTES: usize = 128 * 1024;

/// The agent's request routes, on the control plane.
pub(crate) fn routes(control: Arc<ControlPlane>) -> Router {
    Router::new()
        .route("/v1/agent/requests", post(submit))
        .route("/v1/agent/requests/{id}/cancel", post(cancel))
        .route("/v1/agent/approvals", get(approvals))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_REQUEST_BYTES))
        .with_state(control)
}

/// A JSON body of the expected shape, or `400` saying where it is wrong.
fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    if !crate::upload::is_json(headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the request as `Content-Type: application/json`",
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| ApiError::new(ErrorCode::InvalidUtf8, e.to_string()))?;
    let mut reader = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let path = e.path().to_string();
        ApiError::new(ErrorCode::InvalidJson, format!("{path}: {}", e.into_inner()))
    })
}

#[utoipa::path(post, path = "/v1/agent/requests", tag = "agent",
    request_body(content = inline(serde_json::Value), content_type = "application/json",
        description = "Graph's privilegeManagementElevationRequest names plus a client-chosen `requestId`: \
                       requestedByUserPrincipalName, requestedOnDeviceId, deviceName, requestJustification, \
                       applicationDetail {fileHash (64 hex), fileName, filePath, fileDescription, publisherName, \
                       publisherCert, productName, productInternalName, productVersion}"),
    responses(
        (status = 201, description = "Stored: the request with its id, status and requestExpiryDateTime"),
        (status = 200, description = "This requestId was sent before: the stored request"),
        (status = 400, description = "A field is missing or wrong; the message names it", body = web::ErrorBody),
        (status = 401, description = "No or unknown agent key", body = web::ErrorBody),
        (status = 403, description = "Not an agent key", body = web::ErrorBody),
        (status = 409, description = "The requestId was used for another user or file, or the device has 20 requests waiting", body = web::ErrorBody),
        (status = 413, description = "Body over 128 KiB", body = web::ErrorBody),
        (status = 415, description = "Not application/json", body = web::ErrorBody),
    ),
    security(("agent_key" = []))
)]
pub(crate) async fn submit(
    State(control): State<Arc<ControlPlane>>,
    Agent(agent): Agent,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewRequest = json_body(&headers, &body)?;
    let submitted = control.submit_request(&agent.principal, new).await?;
    let status = if submitted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(submitted.request)).into_response())
}

/// What a device asks about.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeviceParams {
    /// The device asking (a device-bound key may name only its own).
    device_id: String,
    /// The previous answer's `asOf`, RFC 3339 (default: 30 days ago; empty means not given).
    #[serde(default)]
    #[param(inline, value_type = Option<web::schema::Rfc3339OrEmpty>)]
    since: Option<String>,
}

fn device_params(params: &[(String, String)]) -> Result<DeviceParams, ApiError> {
    let value = serde_json::Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    );
    serde_json::from_value(value).map_err(|e| {
        ApiError::parameter(format!(
            "{e}; the agent routes take deviceId (required) and since (RFC 3339)"
        ))
    })
}

fn parse_since(since: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    since
        .filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.to_utc())
                .map_err(|e| ApiError::parameter(format!("since {s:?} is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

#[utoipa::path(get, path = "/v1/agent/approvals", tag = "agent",
    params(
        DeviceParams,
    ),
    responses(
        (status = 200, description = "Open approvals of the device and decisions since `since`"),
        (status = 400, description = "deviceId missing or since unreadable", body = web::ErrorBody),
        (status = 401, description = "No or unknown agent key", body = web::ErrorBody),
        (status = 403, description = "Not an agent key", body = web::ErrorBody),
        (status = 404, description = "A device-bound key asked for another device", body = web::ErrorBody),
    ),
    security(("agent_key" = []))
)]
pub(crate) async fn approvals(
    State(control): State<Arc<ControlPlane>>,
    Agent(agent): Agent,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<axum::Json<DeviceApprovals>, ApiError> {
    let params = device_params(&params)?;
    let since = parse_since(params.since.as_deref())?;
    Ok(axum::Json(
        control
            .device_approvals(&agent.principal, &params.device_id, since)
            .await?,
    ))
}

#[utoipa::path(post, path = "/v1/agent/requests/{id}/cancel", tag = "agent",
    params(
        ("id" = String, Path, description = "The request's id"),
        ("deviceId" = String, Query, description = "The device that made it"),
    ),
    responses(
        (status = 200, description = "Cancelled: the request"),
        (status = 400, description = "deviceId missing", body = web::ErrorBody),
        (status = 401, description = "No or unknown agent key", body = web::ErrorBody),
        (status = 403, description = "Not an agent key", body = web::ErrorBody),
        (status = 404, description = "No such request of this device", body = web::ErrorBody),
        (status = 409, description = "No longer pending", body = web::ErrorBody),
    ),
    security(("agent_key" = []))
)]
pub(crate) async fn cancel(
    State(control): State<Arc<ControlPlane>>,
    Agent(agent): Agent,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<axum::Json<ElevationRequest>, ApiError> {
    let params = device_params(&params)?;
    Ok(axum::Json(
        control.cancel_request(&agent.principal, &params.device_id, &id).await?,
    ))
}

/// The `supportApprovedElevation` rows of an accepted batch.
pub(crate) fn approved_uses(elevations: &RecordBatch) -> Vec<RequestUse> {
    let text = |name: &str| elevations.column_by_name(name).map(|c| c.as_string::<i32>());
    let (Some(kind), Some(device), Some(upn), Some(hash), Some(at)) = (
        text("elevationType"),
        text("deviceId"),
        text("upn"),
        text("hash"),
        elevations
            .column_by_name("eventDateTime")
            .map(|c| c.as_primitive::<TimestampMicrosecondType>()),
    ) else {
        return Vec::new();
    };
    (0..elevations.num_rows())
        .filter(|&i| kind.is_valid(i) && kind.value(i) == warehouse::ElevationType::SupportApproved.as_str())
        .filter_map(|i| {
            Some(RequestUse {
                device_id: device.value(i).to_owned(),
                upn: upn.value(i).to_owned(),
                file_hash: hash.value(i).to_owned(),
                at: DateTime::from_timestamp_micros(at.value(i))?,
            })
        })
        .collect()
}
