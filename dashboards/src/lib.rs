//! `dashboards` owns what admins reach over HTTP: the admin API (`GET /v1/reports/{name}`,
//! `GET /v1/suggestions`, `GET /v1/exports/rules`) with bearer admin-key authentication and
//! Intune's EPM roles, answering in JSON or CSV from the typed reports and suggestions of
//! `queries`, and the browser dashboards built on the same calls (`pages`: the Overview,
//! report tables, suggestions, fleet health, the hour × weekday heatmap; served live or
//! written as a static snapshot).
//!
//! It must not read the warehouse directly or build SQL; it asks `queries`. It must not
//! depend on `ingest`: the binary merges this router with the ingest router.

use std::sync::Arc;

pub mod charts;
pub mod pages;
pub mod views;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use queries::{Format, QueryError, ReportRequest};
use warehouse::directory::Directory;
use warehouse::tenants::{KeyKind, Permission, Principal};
use warehouse::{Clock, Warehouse};

/// What the admin API needs: who the keys are, where the tables are, and the time.
#[derive(Debug, Clone)]
pub struct AdminApi {
    /// Keys and tenant settings.
    pub directory: Arc<Directory>,
    /// The tables.
    pub warehouse: Arc<Warehouse>,
    /// The clock that sets default windows.
    pub clock: Arc<dyn Clock>,
}

/// The admin routes with their state applied, ready to merge with the ingest router.
pub fn router(api: AdminApi) -> Router {
    Router::new()
        .route("/v1/reports/{name}", get(report))
        .route("/v1/suggestions", get(suggestions))
        .route("/v1/exports/rules", get(export_rules))
        .route("/", get(overview_page))
        .route("/reports/{name}", get(report_page))
        .route("/elevations/{id}", get(elevation_page))
        .route("/suggestions", get(suggestions_page))
        .route("/fleet", get(fleet_page))
        .route("/when", get(when_page))
        .route("/assets/{file}", get(asset))
        .with_state(api)
}

/// The viewer of a page: the admin key's tenant and role.
fn viewer(api: &AdminApi, headers: &HeaderMap) -> Result<pages::Viewer, ApiError> {
    let principal = authorize(api, headers)?;
    let role = principal.role.map(|r| r.as_str()).unwrap_or("-");
    Ok(pages::Viewer {
        who: format!("{} · key {} ({role})", principal.tenant, principal.key_id),
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
    let viewer = viewer(&api, &headers)?;
    html(pages::overview(&api, &viewer, &params).await)
}

async fn report_page(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers)?;
    html(pages::report(&api, &viewer, &name, &params).await)
}

async fn elevation_page(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers)?;
    html(pages::elevation(&api, &viewer, &id, &params).await)
}

async fn suggestions_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers)?;
    html(pages::suggestions(&api, &viewer, &params).await)
}

async fn fleet_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers)?;
    html(pages::fleet(&api, &viewer, &params).await)
}

async fn when_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = viewer(&api, &headers)?;
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
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, axum::Json(body)).into_response()
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

/// The admin key's principal, or 401/403.
fn authorize(api: &AdminApi, headers: &HeaderMap) -> Result<Principal, ApiError> {
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
        .directory
        .authenticate(presented.trim())
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the keys");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the keys cannot be read")
        })?
        .ok_or_else(unauthorized)?;
    let allowed =
        principal.kind == KeyKind::Admin && principal.role.is_some_and(|role| role.allows(Permission::ViewReports));
    if !allowed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "reports and suggestions need an admin key whose role has View Reports (agent keys only upload)",
        ));
    }
    Ok(principal)
}

async fn report(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = authorize(&api, &headers)?;
    let cap = api.directory.settings_of(&principal.tenant).reporting_cap;
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
) -> Result<(queries::suggest::ParsedSuggest, Vec<queries::suggest::Suggestion>), ApiError> {
    let principal = authorize(api, headers)?;
    let imported = api.directory.imported_policies(&principal.tenant).map_err(|e| {
        tracing::error!(error = %e, "cannot read the imported rules");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the imported rules cannot be read",
        )
    })?;
    // The tenant is the key's, whatever the parameters say.
    let parsed = queries::suggest::SuggestRequest::parse(&principal.tenant, params, api.clock.now(), imported)?;
    let found = parsed.run(&api.warehouse).await?;
    Ok((parsed, found))
}

async fn suggestions(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (parsed, found) = suggest_for(&api, &headers, &params).await?;
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
    let (parsed, found) = suggest_for(&api, &headers, &params).await?;
    let format = queries::export::ExportFormat::parse(parsed.format.as_deref().unwrap_or("intune"))?;
    let request = &parsed.request;
    let body = queries::export::export(format, &found, &request.thresholds, request.from, request.to)?;
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
