//! The control plane over HTTP, for the admin key's own tenant: keys, tenant settings, rules
//! policies and the audit log. Each route names the one permission it needs (the table is
//! `control::roles`); every change is recorded in the audit log with the key's person as the
//! actor and the request id as the correlation id.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use control::{AuditFilter, KeyKind, Permission, Role};
use serde::Deserialize;

use web::{Admin, ApiError, ErrorCode};

use crate::{AdminApi, audit_context};

/// The control-plane routes (state applied by `router`).
pub(crate) fn routes() -> Router<AdminApi> {
    Router::new()
        .route("/v1/audit", get(audit_list))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/keys", get(keys_list).post(keys_create))
        .route("/v1/keys/{id}", delete(keys_revoke))
        .route("/v1/tenant", get(tenant_show).patch(tenant_update))
        .route("/v1/rules", get(rules_list).post(rules_import))
}

/// Reads `from`, `to` (RFC 3339 or `YYYY-MM-DD`), `actor`, `activity`, `limit` and `offset`;
/// the command line passes its options through the same code. The error says what is wrong.
pub fn audit_filter(params: &[(String, String)]) -> Result<AuditFilter, String> {
    let instant = |key: &str, value: &str| queries::request::parse_instant(key, value).map_err(|e| e.to_string());
    let mut filter = AuditFilter::default();
    for (key, value) in params {
        let number = || {
            value
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{key} must be a whole number, not {value:?}"))
        };
        match key.as_str() {
            "from" => filter.from = Some(instant(key, value)?),
            "to" => filter.to = Some(instant(key, value)?),
            "actor" => filter.actor = Some(value.clone()),
            "activity" => filter.activity = Some(value.clone()),
            "limit" => filter.limit = Some(number()?),
            "offset" => filter.offset = Some(number()?),
            other => {
                return Err(format!(
                    "unknown parameter {other:?}; the audit log takes from, to, actor, activity, limit, offset"
                ));
            }
        }
    }
    Ok(filter)
}

/// A JSON body, or `400 invalid_json` in the contract's shape.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))
}

async fn audit_list(
    State(api): State<AdminApi>,
    admin: Admin,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ViewAudit)?.principal;
    // An API page is bounded (OWASP API4): 1,000 entries unless asked for fewer.
    let mut filter = audit_filter(&params).map_err(ApiError::parameter)?;
    filter.limit = Some(filter.limit.unwrap_or(1000).min(1000));
    let events = api.control.audit_list(&principal.tenant, &filter).await?;
    Ok(axum::Json(serde_json::json!({ "tenant": principal.tenant, "events": events })).into_response())
}

async fn audit_verify(State(api): State<AdminApi>, admin: Admin) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ViewAudit)?.principal;
    let verification = api.control.audit_verify(Some(&principal.tenant)).await?.remove(0);
    Ok(axum::Json(verification).into_response())
}

async fn keys_list(State(api): State<AdminApi>, admin: Admin) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ManageKeys)?.principal;
    let keys = api.control.list_keys(Some(&principal.tenant)).await?;
    let keys: Vec<_> = keys
        .into_iter()
        .map(|k| {
            serde_json::json!({ "id": k.id, "kind": k.kind, "role": k.role, "upn": k.upn,
                                "createdAt": k.created_at, "revokedAt": k.revoked_at })
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "keys": keys })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    kind: String,
    role: Option<String>,
    upn: Option<String>,
}

async fn keys_create(
    State(api): State<AdminApi>,
    admin: Admin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ManageKeys)?.principal;
    let new: NewKey = json_body(&body)?;
    let kind = KeyKind::parse(&new.kind)?;
    let role = new.role.as_deref().map(Role::parse).transpose()?;
    let context = audit_context(&principal, &headers);
    let (key, record) = api
        .control
        .create_key(&context, &principal.tenant, kind, role, new.upn.as_deref())
        .await?;
    let answer = serde_json::json!({ "id": record.id, "kind": record.kind, "role": record.role, "upn": record.upn,
                                     "tenant": record.tenant, "createdAt": record.created_at, "key": key });
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

async fn keys_revoke(
    State(api): State<AdminApi>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ManageKeys)?.principal;
    let context = audit_context(&principal, &headers);
    let record = api.control.revoke_key(&context, Some(&principal.tenant), &id).await?;
    Ok(axum::Json(serde_json::json!({ "id": record.id, "revokedAt": record.revoked_at })).into_response())
}

async fn tenant_show(State(api): State<AdminApi>, admin: Admin) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::Read)?.principal;
    let settings = api.control.settings_of(&principal.tenant).await?;
    Ok(axum::Json(settings_json(&principal.tenant, &settings)).into_response())
}

fn settings_json(tenant: &str, settings: &control::TenantSettings) -> serde_json::Value {
    serde_json::json!({
        "tenant": tenant,
        "reportingCap": settings.reporting_cap.as_str(),
        "elevationRetentionDays": settings.retention_days(warehouse::Table::Elevations),
        "diagnosticRetentionDays": settings.retention_days(warehouse::Table::Diagnostics),
        "approvalHours": settings.approval_hours(),
        "maxApprovalHours": settings.max_approval_hours(),
        "requestExpiryHours": settings.request_expiry_hours(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettingsChange {
    reporting_cap: Option<String>,
    elevation_retention_days: Option<u32>,
    diagnostic_retention_days: Option<u32>,
    approval_hours: Option<u32>,
    max_approval_hours: Option<u32>,
    request_expiry_hours: Option<u32>,
}

async fn tenant_update(
    State(api): State<AdminApi>,
    admin: Admin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ManageTenant)?.principal;
    let change: SettingsChange = json_body(&body)?;
    let change = control::SettingsChange {
        reporting_cap: change
            .reporting_cap
            .as_deref()
            .map(warehouse::ReportingLevel::parse)
            .transpose()
            .map_err(|e| ApiError::parameter(e.to_string()))?,
        elevation_retention_days: change.elevation_retention_days,
        diagnostic_retention_days: change.diagnostic_retention_days,
        approval_hours: change.approval_hours,
        max_approval_hours: change.max_approval_hours,
        request_expiry_hours: change.request_expiry_hours,
    };
    let context = audit_context(&principal, &headers);
    let settings = api
        .control
        .update_settings(&context, &principal.tenant, |s| change.apply(s))
        .await?;
    Ok(axum::Json(settings_json(&principal.tenant, &settings)).into_response())
}

async fn rules_list(State(api): State<AdminApi>, admin: Admin) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::Read)?.principal;
    let policies = api.control.imported_policies(&principal.tenant).await?;
    Ok(axum::Json(serde_json::json!({ "policies": policies })).into_response())
}

async fn rules_import(
    State(api): State<AdminApi>,
    admin: Admin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ImportRules)?.principal;
    let json: serde_json::Value = json_body(&body)?;
    let policy = warehouse::policy::RulesPolicy::from_intune(&json)
        .map_err(|e| ApiError::new(ErrorCode::InvalidPolicy, e.to_string()))?;
    let context = audit_context(&principal, &headers);
    let replaced = api.control.import_policy(&context, &principal.tenant, &policy).await?;
    let answer = serde_json::json!({ "name": policy.name, "rules": policy.rules.len(), "replaced": replaced });
    Ok(axum::Json(answer).into_response())
}
