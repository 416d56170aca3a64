//! `dashboards` owns what admins reach over HTTP: the admin API (`GET /v1/reports/{name}`,
//! `GET /v1/suggestions`, `GET /v1/exports/rules`, `GET /v1/compliance/pack` (a signed evidence
//! pack as `.tar.gz`, made by the `compliance` crate), and the control plane's keys, tenant
//! settings, rules policies and audit log in `control_api`) with bearer admin-key
//! authentication and Intune's EPM roles, answering in JSON or CSV from the typed reports and
//! suggestions of `queries`, and the browser dashboards built on the same calls (`pages`: the
//! Overview, report tables, suggestions, fleet health, the hour × weekday heatmap; served live
//! or written as a static snapshot).
//!
//! It must not read the warehouse directly or build SQL; it asks `queries` and `control`. It
//! must not depend on `ingest`: the binary merges this router with the ingest router.

mod compliance;
mod control_api;

pub use control_api::audit_filter;

use std::sync::Arc;

pub mod charts;
pub mod pages;
pub mod views;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use control::{AuditContext, ControlError, ControlPlane, Permission, Principal};
use queries::{Format, QueryError, ReportRequest};
use warehouse::{Clock, Warehouse};

/// What the admin API needs: who the keys are, where the tables are, and the time.
#[derive(Debug, Clone)]
pub struct AdminApi {
    /// Keys, tenant settings, rules policies and the audit log.
    pub control: Arc<ControlPlane>,
    /// The tables.
    pub warehouse: Arc<Warehouse>,
    /// The clock that sets default windows.
    pub clock: Arc<dyn Clock>,
    /// The data folder that holds the compliance packs' signing key
    /// (`elevation compliance keygen`); `None`: packs cannot be made here.
    pub key_dir: Option<std::path::PathBuf>,
}

/// The admin routes with their state applied, ready to merge with the ingest router.
pub fn router(api: AdminApi) -> Router {
    Router::new()
        .route("/v1/reports/{name}", get(report))
        .route("/v1/suggestions", get(suggestions))
        .route("/v1/exports/rules", get(export_rules))
        .route("/v1/compliance/pack", get(compliance::pack))
        .merge(control_api::routes())
        .route("/", get(overview_page))
        .route("/reports/{name}", get(report_page))
        .route("/elevations/{id}", get(elevation_page))
        .route("/suggestions", get(suggestions_page))
        .route("/fleet", get(fleet_page))
        .route("/when", get(when_page))
        .route("/assets/{file}", get(asset))
        .with_state(api)
        // The request id is the audit log's correlation id: set it when the client sent none,
        // and echo it.
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
}

/// The viewer of a page: the admin key's tenant and role.
async fn viewer(api: &AdminApi, headers: &HeaderMap) -> Result<pages::Viewer, ApiError> {
    let principal = authorize(api, headers, Permission::ViewReports).await?;
    let role = principal.role.map(|r| r.as_str()).unwrap_or("-");
    let person = principal
        .upn
        .clone()
        .unwrap_or_else(|| format!("key {}", principal.key_id));
    Ok(pages::Viewer {
        who: format!("{} · {person} ({role})", principal.tenant),
        tenant: principal.tenant,
        csrf: None,
        mode: views::Mode::Live,
        now: api.clock.now(),
    })
}

/// A page as HTML with the headers every page carries: nothing but this server may supply
/// scripts, styles or frames.
fn html(result: Result<String, QueryError>) -> Result<Response, ApiError> {
    let body = result?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

async fn overview_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers).await?;
    html(pages::overview(&api, &viewer, &params).await)
}

async fn report_page(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers).await?;
    html(pages::report(&api, &viewer, &name, &params).await)
}

async fn elevation_page(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers).await?;
    html(pages::elevation(&api, &viewer, &id, &params).await)
}

async fn suggestions_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers).await?;
    html(pages::suggestions(&api, &viewer, &params).await)
}

async fn fleet_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers).await?;
    html(pages::fleet(&api, &viewer, &params).await)
}

async fn when_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers).await?;
    html(pages::when(&api, &viewer, &params).await)
}

async fn asset(Path(file): Path<String>) -> Response {
    match pages::asset(&file) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no asset {file:?}")).into_response(),
    }
}

/// An error in the contract's shape: `{ "error": { "code", "message" } }`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        match e {
            ControlError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", m),
            ControlError::UnknownKey(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no key with id {id:?} in your tenant"),
            ),
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "the control-plane database is unavailable");
                ApiError {
                    retry_after: Some(5),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage_unavailable",
                        "the control-plane database cannot be reached; nothing was changed, retry later",
                    )
                }
            }
            other => {
                tracing::error!(error = %other, "the control plane failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request could not be handled; the server log says why",
                )
            }
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        match e {
            QueryError::UnknownReport(m) => ApiError::new(StatusCode::BAD_REQUEST, "unknown_report", m),
            QueryError::BadParameter(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", m),
            other => {
                tracing::error!(error = %other, "a report failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the report could not be computed; the server log says why",
                )
            }
        }
    }
}

/// The admin key's principal when its role carries `permission`; 401, 403, or 503 when the
/// control plane cannot be reached.
async fn authorize(api: &AdminApi, headers: &HeaderMap, permission: Permission) -> Result<Principal, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send an admin key as Authorization: Bearer <key> (elevation keys create --kind admin)",
        )
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let principal = api
        .control
        .authenticate_admin(presented.trim())
        .await?
        .ok_or_else(unauthorized)?;
    if !principal.may(permission) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs an admin key whose role has {} (agent keys only upload)",
                permission.label()
            ),
        ));
    }
    Ok(principal)
}

/// The audit context of an admin call: the key's person, the request id.
fn audit_context(principal: &Principal, headers: &HeaderMap) -> AuditContext {
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    AuditContext::http(principal, request_id)
}

async fn report(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = authorize(&api, &headers, Permission::ViewReports).await?;
    let cap = api.control.settings_of(&principal.tenant).await?.reporting_cap;
    // The tenant is the key's, whatever the parameters say.
    let parsed = ReportRequest::parse(&name, &principal.tenant, &params, api.clock.now(), cap)?;
    let format = match parsed.format {
        None | Some(Format::Json) => Format::Json,
        Some(Format::Csv) => Format::Csv,
        Some(Format::Table) => {
            return Err(QueryError::BadParameter("format over HTTP is json or csv".into()).into());
        }
    };
    queries::render::check_profile(parsed.request.name, parsed.profile)?;
    let report = queries::run(&api.warehouse, &parsed.request).await?;
    Ok(match format {
        Format::Csv => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            queries::render::to_csv(&report, parsed.profile)?,
        )
            .into_response(),
        _ => axum::Json(queries::render::to_json(&report, parsed.profile)?).into_response(),
    })
}

/// Authorizes the key, then runs the suggestions it asks for over the key's tenant, with the
/// tenant's imported rules.
async fn suggest_for(
    api: &AdminApi,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<
    (
        Principal,
        queries::suggest::ParsedSuggest,
        Vec<queries::suggest::Suggestion>,
    ),
    ApiError,
> {
    let principal = authorize(api, headers, Permission::ViewReports).await?;
    let imported = api.control.imported_policies(&principal.tenant).await?;
    // The tenant is the key's, whatever the parameters say.
    let parsed = queries::suggest::SuggestRequest::parse(&principal.tenant, params, api.clock.now(), imported)?;
    let found = parsed.run(&api.warehouse).await?;
    Ok((principal, parsed, found))
}

async fn suggestions(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, parsed, found) = suggest_for(&api, &headers, &params).await?;
    let request = &parsed.request;
    match parsed.format.as_deref() {
        None | Some("json") => Ok(axum::Json(queries::export::suggestions_json(
            &found,
            &request.thresholds,
            request.from,
            request.to,
        ))
        .into_response()),
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            queries::export::suggestions_csv(&found)?,
        )
            .into_response()),
        Some(other) => Err(QueryError::BadParameter(format!("format {other:?} over HTTP is json or csv")).into()),
    }
}

async fn export_rules(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (principal, parsed, found) = suggest_for(&api, &headers, &params).await?;
    let format = queries::export::ExportFormat::parse(parsed.format.as_deref().unwrap_or("intune"))?;
    let request = &parsed.request;
    let body = queries::export::export(format, &found, &request.thresholds, request.from, request.to)?;
    // Recorded before it is handed out: an export that cannot be audited is not made.
    let draft = control::audit::export_draft(format.file_name(), request.from, request.to, found.len());
    api.control
        .record(&audit_context(&principal, &headers), &principal.tenant, draft)
        .await?;
    let disposition = format!("attachment; filename=\"{}\"", format.file_name());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
