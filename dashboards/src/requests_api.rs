//! Support-approved elevation requests over HTTP for admins, as Graph has them
//! (`/deviceManagement/elevationRequests`): list, get, approve, deny, revoke with
//! `{"reviewerJustification": "…"}` (plus our `approvalHours`), the numbers, and the tenant's
//! webhooks. *View elevation requests* reads, *Modify elevation requests* decides, *Manage
//! Tenant* manages webhooks (the table is `control::roles`). The admin's person is the
//! reviewer; the workflow's rules are `control::requests`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Duration, Utc};
use control::requests::{Decision, RequestFilter};
use control::webhooks::WebhookFormat;
use control::{ElevationRequest, Permission};
use serde::Deserialize;
use web::{Admin, ApiError};

use crate::control_api::json_body;
use crate::{AdminApi, audit_context};

/// The request and webhook routes (state applied by `router`).
pub(crate) fn routes() -> Router<AdminApi> {
    Router::new()
        .route("/v1/requests", get(list))
        .route("/v1/requests/stats", get(stats))
        .route("/v1/requests/{id}", get(show))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/v1/requests/{id}/deny", post(deny))
        .route("/v1/requests/{id}/revoke", post(revoke))
        .route("/v1/webhooks", get(webhooks_list).post(webhooks_add))
        .route("/v1/webhooks/deliveries", get(webhook_deliveries))
        .route("/v1/webhooks/{id}", delete(webhooks_remove))
}

/// Reads a time parameter as the reports do (RFC 3339 or `YYYY-MM-DD`).
pub(crate) fn parse_time(key: &str, value: &str) -> Result<DateTime<Utc>, String> {
    queries::request::parse_instant(key, value).map_err(|e| e.to_string())
}

/// Reads a listing's parameters (the page and the CLI share it).
pub fn request_filter(params: &[(String, String)]) -> Result<RequestFilter, ApiError> {
    Ok(RequestFilter::parse(params, parse_time)?)
}

/// What the control plane holds that the suggestions weigh, for the tenant and window of
/// `request`: the imported rules policies, and the support-approved requests per file (the
/// `supportApprovedToUserConfirmed` suggestion cites them). Every caller of the suggestions
/// fills its request with this.
pub async fn suggest_inputs(
    control: &control::ControlPlane,
    request: &mut queries::suggest::SuggestRequest,
) -> Result<(), control::ControlError> {
    request.imported = control.imported_policies(&request.tenant).await?;
    let asked = control
        .requests_created_between(&request.tenant, request.from, request.to)
        .await?;
    let mut by_file: std::collections::BTreeMap<
        String,
        (
            queries::suggest::RequestEvidence,
            Vec<i64>,
            std::collections::BTreeSet<String>,
        ),
    > = std::collections::BTreeMap::new();
    for r in &asked {
        let (evidence, waits, users) = by_file
            .entry(r.application_detail.file_name.to_lowercase())
            .or_default();
        evidence.requests += 1;
        evidence.approved += u64::from(r.approval_expiry_date_time.is_some());
        evidence.denied += u64::from(r.status == control::RequestStatus::Denied);
        waits.extend(r.seconds_to_decision());
        users.insert(r.requested_by_user_principal_name.to_lowercase());
    }
    request.support_requests = by_file
        .into_iter()
        .map(|(file, (mut evidence, mut waits, users))| {
            waits.sort_unstable();
            evidence.median_seconds_to_decision = control::requests::stats::nearest_rank(&waits, 50);
            evidence.users = users.len() as u64;
            (file, evidence)
        })
        .collect();
    Ok(())
}

async fn list(
    State(api): State<AdminApi>,
    admin: Admin,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ViewElevationRequests)?.principal;
    let filter = request_filter(&params)?;
    let requests = api.control.list_requests(&principal.tenant, &filter).await?;
    Ok(axum::Json(serde_json::json!({ "tenant": principal.tenant, "requests": requests })).into_response())
}

/// The window of the numbers: `from`, `to` (default: the 30 days before now).
pub fn stats_window(
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let (mut from, mut to) = (None, None);
    for (key, value) in params {
        match key.as_str() {
            _ if value.is_empty() => {}
            "from" => from = Some(parse_time(key, value).map_err(ApiError::parameter)?),
            "to" => to = Some(parse_time(key, value).map_err(ApiError::parameter)?),
            other => {
                return Err(ApiError::parameter(format!(
                    "unknown parameter {other:?}; the numbers take from and to"
                )));
            }
        }
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(ApiError::parameter("from must be before to"));
    }
    Ok((from, to))
}

async fn stats(
    State(api): State<AdminApi>,
    admin: Admin,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ViewElevationRequests)?.principal;
    let (from, to) = stats_window(&params, api.clock.now())?;
    let stats = api.control.request_stats(&principal.tenant, from, to).await?;
    Ok(axum::Json(stats).into_response())
}

async fn show(State(api): State<AdminApi>, admin: Admin, Path(id): Path<String>) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ViewElevationRequests)?.principal;
    Ok(axum::Json(api.control.request(&principal.tenant, &id).await?).into_response())
}

/// A decision's body: Graph's `reviewerJustification`, and the hours of an approval.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct DecisionBody {
    #[serde(default)]
    pub(crate) reviewer_justification: Option<String>,
    #[serde(default)]
    pub(crate) approval_hours: Option<u32>,
}

/// Decides a request as the admin; shared by the API and the pages' forms.
pub(crate) async fn decide(
    api: &AdminApi,
    admin: Admin,
    headers: &HeaderMap,
    id: &str,
    decision: Decision,
    justification: Option<&str>,
) -> Result<ElevationRequest, ApiError> {
    let principal = admin.require(Permission::ModifyElevationRequests)?.principal;
    let context = audit_context(&principal, headers);
    Ok(api
        .control
        .decide_request(&context, &principal.tenant, id, decision, justification)
        .await?)
}

async fn decide_json(
    api: AdminApi,
    admin: Admin,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    decision: impl FnOnce(&DecisionBody) -> Result<Decision, ApiError>,
) -> Result<Response, ApiError> {
    // Who asks comes before what they sent: a key that may not decide gets 403 whatever its
    // body holds.
    let admin = admin.require(Permission::ModifyElevationRequests)?;
    let body: DecisionBody = if body.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        json_body(&body)?
    };
    let decision = decision(&body)?;
    let decided = decide(
        &api,
        admin,
        &headers,
        &id,
        decision,
        body.reviewer_justification.as_deref(),
    )
    .await?;
    Ok(axum::Json(decided).into_response())
}

async fn approve(
    State(api): State<AdminApi>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    decide_json(api, admin, headers, id, body, |b| {
        Ok(Decision::Approve {
            hours: b.approval_hours,
        })
    })
    .await
}

/// Only an approval has hours.
fn no_hours(body: &DecisionBody, what: &str) -> Result<(), ApiError> {
    match body.approval_hours {
        Some(_) => Err(ApiError::new(
            web::ErrorCode::InvalidField,
            format!("approvalHours: only an approval has hours, not a {what}"),
        )),
        None => Ok(()),
    }
}

async fn deny(
    State(api): State<AdminApi>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    decide_json(api, admin, headers, id, body, |b| {
        no_hours(b, "denial").map(|()| Decision::Deny)
    })
    .await
}

async fn revoke(
    State(api): State<AdminApi>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    decide_json(api, admin, headers, id, body, |b| {
        no_hours(b, "revocation").map(|()| Decision::Revoke)
    })
    .await
}

async fn webhooks_list(State(api): State<AdminApi>, admin: Admin) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ManageTenant)?.principal;
    let webhooks = api.control.list_webhooks(&principal.tenant).await?;
    Ok(axum::Json(serde_json::json!({ "webhooks": webhooks })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
    #[serde(default)]
    format: Option<String>,
}

async fn webhooks_add(
    State(api): State<AdminApi>,
    admin: Admin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ManageTenant)?.principal;
    let new: NewWebhook = json_body(&body)?;
    let format = WebhookFormat::parse(new.format.as_deref().unwrap_or("standard"))?;
    let context = audit_context(&principal, &headers);
    let (webhook, secret) = api
        .control
        .add_webhook(&context, &principal.tenant, &new.url, format)
        .await?;
    let answer = serde_json::json!({ "id": webhook.id, "url": webhook.url, "format": webhook.format,
                                     "createdAt": webhook.created_at, "secret": secret });
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

async fn webhooks_remove(
    State(api): State<AdminApi>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ManageTenant)?.principal;
    let context = audit_context(&principal, &headers);
    api.control.remove_webhook(&context, &principal.tenant, &id).await?;
    Ok(axum::Json(serde_json::json!({ "id": id, "removed": true })).into_response())
}

async fn webhook_deliveries(State(api): State<AdminApi>, admin: Admin) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ManageTenant)?.principal;
    let deliveries = api.control.webhook_deliveries(&principal.tenant, 100).await?;
    Ok(axum::Json(serde_json::json!({ "deliveries": deliveries })).into_response())
}
