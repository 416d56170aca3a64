//! `dashboards` owns what admins reach over HTTP: the admin API (`GET /v1/reports/{name}`,
//! `GET /v1/suggestions`, `GET /v1/exports/rules`, `GET /v1/compliance/pack` (a signed evidence
//! pack as `.tar.gz`, made by the `compliance` crate), and the control plane's keys, tenant
//! settings, rules policies and audit log in `control_api`; support-approved elevation requests,
//! their numbers and the tenant's webhooks in `requests_api`) for admin keys and signed-in
//! sessions (`sign_in`) with Intune's EPM roles, answering in JSON or CSV from the typed reports and
//! suggestions of `queries`, and the browser dashboards built on the same calls (`pages`: the
//! Overview, report tables, suggestions, fleet health, the hour × weekday heatmap; served live
//! or written as a static snapshot).
//!
//! It must not read the warehouse directly or build SQL; it asks `queries` and `control`. It
//! must not depend on `ingest`: `web::app` puts this router and the ingest router under the
//! same layers. Errors and credentials are `web`'s, the same for every route.

mod compliance;
mod control_api;
mod openapi;
mod requests_api;
mod sign_in;

pub use compliance::pack_request;
pub use control_api::audit_filter;
pub use requests_api::{request_filter, stats_window, suggest_inputs};

use std::sync::Arc;

pub mod charts;
pub mod pages;
pub mod views;

use axum::Router;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use control::{AuditContext, ControlPlane, Permission, Principal};
use queries::{Format, QueryError, ReportRequest};
use warehouse::{Clock, Warehouse};
use web::{Admin, ApiError, ErrorCode};

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

impl FromRef<AdminApi> for Arc<ControlPlane> {
    fn from_ref(api: &AdminApi) -> Arc<ControlPlane> {
        api.control.clone()
    }
}

/// The admin side of the node's HTTP face: the admin API and the pages, with their OpenAPI
/// description, ready to go under `web::app` with the agent side.
pub fn face(api: AdminApi) -> web::Face {
    web::Face {
        routes: router(api),
        openapi: openapi::document(),
    }
}

fn router(api: AdminApi) -> Router {
    Router::new()
        .route("/v1/reports/{name}", get(report))
        .route("/v1/suggestions", get(suggestions))
        .route("/v1/exports/rules", get(export_rules))
        .route("/v1/compliance/pack", get(compliance::pack))
        .merge(control_api::routes())
        .merge(requests_api::routes())
        .merge(pages_router())
        .route("/assets/{file}", get(asset))
        // Browsers ask for it on every page that names no icon (the API's JSON, say).
        .route("/favicon.ico", get(|| asset(Path("favicon.svg".to_owned()))))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .with_state(api)
}

/// The pages people browse, whose filter forms send their empty fields too.
fn pages_router() -> Router<AdminApi> {
    Router::new()
        .route("/", get(overview_page))
        .route("/reports/{name}", get(report_page))
        .route("/elevations/{id}", get(elevation_page))
        .route("/suggestions", get(suggestions_page))
        .route("/fleet", get(fleet_page))
        .route("/when", get(when_page))
        .route("/requests", get(requests_page))
        .route("/requests/{id}", get(request_page))
        .route("/requests/{id}/decide", post(request_decide_page))
        .route_layer(axum::middleware::from_fn(without_empty_fields))
}

/// A GET form sends every field, the empty ones too (`?upn=&fileName=chrome.exe`). An empty
/// field filters nothing, so a page asked for with empty fields answers `303` to the same page
/// without them: the address bar, bookmarks and shared links hold only what was chosen.
async fn without_empty_fields(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() == axum::http::Method::GET
        && let Some(query) = request.uri().query()
        && query.split('&').any(empty_field)
    {
        let kept: Vec<&str> = query.split('&').filter(|pair| !empty_field(pair)).collect();
        let path = request.uri().path();
        let location = if kept.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        return axum::response::Redirect::to(&location).into_response();
    }
    next.run(request).await
}

/// `key=` (or nothing between two `&`): a field sent empty. `key==` holds the value `=`.
fn empty_field(pair: &str) -> bool {
    pair.is_empty() || pair.split_once('=').is_some_and(|(_, value)| value.is_empty())
}

/// The viewer of a page: the admin's tenant and role. A visitor who is not signed in is sent
/// to the sign-in form; any other refusal is a page that says why.
// The refusal is the page's whole answer, built at most once per request: boxing it would
// only add an allocation.
#[allow(clippy::result_large_err)]
fn viewer(api: &AdminApi, admin: Result<Admin, ApiError>, uri: &Uri) -> Result<pages::Viewer, Response> {
    viewer_with(api, admin, uri, Permission::ViewReports)
}

/// [`viewer`] for a page that needs `permission`.
#[allow(clippy::result_large_err)]
fn viewer_with(
    api: &AdminApi,
    admin: Result<Admin, ApiError>,
    uri: &Uri,
    permission: Permission,
) -> Result<pages::Viewer, Response> {
    let admin = match admin {
        Ok(admin) => admin,
        Err(e) if e.code == ErrorCode::Unauthorized => return Err(sign_in::to_sign_in(uri)),
        Err(e) => return Err(sign_in::message(e)),
    };
    let admin = admin.require(permission).map_err(sign_in::message)?;
    let principal = &admin.principal;
    let role = principal.role.map(|r| r.as_str()).unwrap_or("-");
    let person = principal
        .upn
        .clone()
        .unwrap_or_else(|| format!("key {}", principal.key_id));
    Ok(pages::Viewer {
        who: format!("{} · {person} ({role})", principal.tenant),
        tenant: principal.tenant.clone(),
        csrf: admin.session.map(|s| s.csrf_secret),
        mode: views::Mode::Live,
        now: api.clock.now(),
    })
}

/// A page as HTML with the headers every page carries, or its error as a page.
fn html(result: Result<String, QueryError>) -> Response {
    match result {
        Ok(body) => (sign_in::html_headers(), body).into_response(),
        Err(e) => sign_in::message(ApiError::from(e)),
    }
}

async fn overview_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    uri: Uri,
    admin: Result<Admin, ApiError>,
) -> Response {
    match viewer(&api, admin, &uri) {
        Ok(viewer) => html(pages::overview(&api, &viewer, &params).await),
        Err(refused) => refused,
    }
}

async fn report_page(
    State(api): State<AdminApi>,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    uri: Uri,
    admin: Result<Admin, ApiError>,
) -> Response {
    match viewer(&api, admin, &uri) {
        Ok(viewer) => html(pages::report(&api, &viewer, &name, &params).await),
        Err(refused) => refused,
    }
}

async fn elevation_page(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
    uri: Uri,
    admin: Result<Admin, ApiError>,
) -> Response {
    match viewer(&api, admin, &uri) {
        Ok(viewer) => html(pages::elevation(&api, &viewer, &id, &params).await),
        Err(refused) => refused,
    }
}

async fn suggestions_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    uri: Uri,
    admin: Result<Admin, ApiError>,
) -> Response {
    match viewer(&api, admin, &uri) {
        Ok(viewer) => html(pages::suggestions(&api, &viewer, &params).await),
        Err(refused) => refused,
    }
}

async fn fleet_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    uri: Uri,
    admin: Result<Admin, ApiError>,
) -> Response {
    match viewer(&api, admin, &uri) {
        Ok(viewer) => html(pages::fleet(&api, &viewer, &params).await),
        Err(refused) => refused,
    }
}

async fn when_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    uri: Uri,
    admin: Result<Admin, ApiError>,
) -> Response {
    match viewer(&api, admin, &uri) {
        Ok(viewer) => html(pages::when(&api, &viewer, &params).await),
        Err(refused) => refused,
    }
}

async fn requests_page(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    uri: Uri,
    admin: Result<Admin, ApiError>,
) -> Response {
    match viewer_with(&api, admin, &uri, Permission::ViewElevationRequests) {
        Ok(viewer) => html(pages::requests(&api, &viewer, &params).await),
        Err(refused) => refused,
    }
}

async fn request_page(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    uri: Uri,
    admin: Result<Admin, ApiError>,
) -> Response {
    let may_decide = admin
        .as_ref()
        .is_ok_and(|a| a.principal.may(Permission::ModifyElevationRequests));
    match viewer_with(&api, admin, &uri, Permission::ViewElevationRequests) {
        Ok(viewer) => match pages::request(&api, &viewer, &id, may_decide).await {
            Ok(body) => (sign_in::html_headers(), body).into_response(),
            Err(e) => sign_in::message(ApiError::from(e)),
        },
        Err(refused) => refused,
    }
}

/// A decision from the request page's form: the session's cookie and the form's CSRF token
/// (a form cannot send `X-CSRF-Token`), then the same decision as the API; back to the page.
async fn request_decide_page(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let session = match sign_in::form_session(&api, &headers, &body).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DecisionForm {
        decision: String,
        #[serde(default)]
        reviewer_justification: Option<String>,
        #[serde(default)]
        approval_hours: Option<String>,
    }
    let form: DecisionForm = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => return sign_in::message(ApiError::parameter(format!("the form cannot be read: {e}"))),
    };
    let hours = match form.approval_hours.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
        None => None,
        Some(text) => match text.parse::<u32>() {
            Ok(hours) => Some(hours),
            Err(_) => {
                return sign_in::message(ApiError::parameter(format!(
                    "hours must be a whole number, not {text:?}"
                )));
            }
        },
    };
    let decision = match form.decision.as_str() {
        "approve" => control::Decision::Approve { hours },
        "deny" => control::Decision::Deny,
        "revoke" => control::Decision::Revoke,
        other => return sign_in::message(ApiError::parameter(format!("no decision {other:?}"))),
    };
    let admin = Admin {
        principal: session.principal.clone(),
        session: Some(session),
    };
    let justification = form.reviewer_justification.as_deref();
    match requests_api::decide(&api, admin, &headers, &id, decision, justification).await {
        Ok(_) => axum::response::Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(e) => sign_in::message(e),
    }
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
        None => ApiError::new(ErrorCode::NotFound, format!("no asset {file:?}")).into_response(),
    }
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
    admin: Admin,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ViewReports)?.principal;
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
    let mut headers = HeaderMap::new();
    // CSV has no place for it in the body: days past raw retention are named in headers too.
    if !report.coverage.is_complete() {
        let (from_rollups, unavailable) = report.coverage.header_values();
        for (name, value) in [(DAYS_FROM_ROLLUPS, from_rollups), (DAYS_UNAVAILABLE, unavailable)] {
            if let Ok(value) = header::HeaderValue::from_str(&value)
                && !value.is_empty()
            {
                headers.insert(name, value);
            }
        }
    }
    // The answer is written while it is sent: a whole report can be hundreds of thousands of
    // rows, and its text need not sit in memory beside them. What can fail before the first
    // byte (the profile's columns) is checked here, while it can still be an error answer.
    let profile = parsed.profile;
    queries::render::JsonAnswer::new(&report, profile)?;
    let (content_type, body) = match format {
        Format::Csv => (
            "text/csv; charset=utf-8",
            web::body::written_by("report csv", move |out| {
                queries::render::write_csv(&report, profile, out)
            }),
        ),
        _ => (
            "application/json",
            web::body::written_by("report json", move |out| {
                let answer = queries::render::JsonAnswer::new(&report, profile)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
                serde_json::to_writer(out, &answer).map_err(std::io::Error::from)
            }),
        ),
    };
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    Ok((headers, body).into_response())
}

/// Days of a report's window whose raw events are past retention, answered from the rollups.
const DAYS_FROM_ROLLUPS: &str = "elevation-days-from-rollups";
/// Days of a report's window whose raw events are past retention and missing from the answer.
const DAYS_UNAVAILABLE: &str = "elevation-days-unavailable";

/// Authorizes the key, then runs the suggestions it asks for over the key's tenant, with the
/// tenant's imported rules.
async fn suggest_for(
    api: &AdminApi,
    admin: Admin,
    params: &[(String, String)],
) -> Result<
    (
        Principal,
        queries::suggest::ParsedSuggest,
        Vec<queries::suggest::Suggestion>,
    ),
    ApiError,
> {
    let principal = admin.require(Permission::ViewReports)?.principal;
    // The tenant is the key's, whatever the parameters say.
    let mut parsed = queries::suggest::SuggestRequest::parse(&principal.tenant, params, api.clock.now(), Vec::new())?;
    suggest_inputs(&api.control, &mut parsed.request).await?;
    let found = parsed.run(&api.warehouse).await?;
    Ok((principal, parsed, found))
}

async fn suggestions(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    admin: Admin,
) -> Result<Response, ApiError> {
    let (_, parsed, found) = suggest_for(&api, admin, &params).await?;
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
    admin: Admin,
) -> Result<Response, ApiError> {
    let (principal, parsed, found) = suggest_for(&api, admin, &params).await?;
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
