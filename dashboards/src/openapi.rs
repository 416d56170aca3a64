//! The OpenAPI description of the admin API and the pages: every route with its parameters,
//! answers and errors, so a client can be generated from `/openapi.json` and a schema-driven
//! fuzzer can reach every operation. The functions below exist only to carry the
//! descriptions; the handlers are in `lib.rs`, `control_api.rs` and `sign_in.rs`, and the
//! route-walking test checks that every path described here is served.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use web::ErrorBody;

mod requests;

/// The document of the admin side.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    AdminDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    paths(
        report, suggestions, export_rules, compliance_pack, audit_list, audit_verify, keys_list, keys_create, keys_revoke,
        tenant_show, tenant_update, rules_list, rules_import, requests::requests_list, requests::requests_stats, requests::requests_show,
        requests::requests_approve, requests::requests_deny, requests::requests_revoke, requests::webhooks_list, requests::webhooks_add, requests::webhooks_remove,
        requests::webhook_deliveries, sign_in_form, sign_in_submit, sign_out, requests::requests_page, requests::request_page, requests::request_decide_page,
        overview_page, report_page, elevation_page, suggestions_page, fleet_page, when_page, asset, favicon
    ),
    components(schemas(ReportAnswer, SuggestionsAnswer, NewKey, CreatedKey, SettingsChange, TenantSettings,
                       requests::DecisionBody, requests::ReasonBody, requests::NewWebhook)),
    modifiers(&AdminSecurity),
    tags(
        (name = "reports", description = "Intune's EPM reports, the Overview and the trend, live over any window"),
        (name = "suggestions", description = "Rule suggestions with their rationale, and their export as rules"),
        (name = "compliance", description = "Signed evidence packs an auditor verifies offline"),
        (name = "control", description = "Keys, tenant settings, imported rules policies and the audit log"),
        (name = "requests", description = "Support-approved elevation requests: decide, revoke, numbers, webhooks"),
        (name = "pages", description = "The dashboards: HTML for people in a browser (sign in first)"),
    )
)]
struct AdminDoc;

struct AdminSecurity;

impl Modify for AdminSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                web::auth::SESSION_COOKIE,
                "Set by POST /sign-in; state-changing calls also need X-CSRF-Token",
            ))),
        );
    }
}

/// A report's answer in JSON: its window and its rows (columns depend on the report and the
/// `profile`: `native` names, or `graph`, Microsoft Graph's export names).
#[derive(Serialize, ToSchema)]
struct ReportAnswer {
    /// The report's name.
    report: String,
    /// Start of the window (inclusive), RFC 3339.
    from: String,
    /// End of the window (exclusive), RFC 3339.
    to: String,
    /// One object per row.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<serde_json::Value>,
    /// Present only when the window holds days whose raw elevations retention deleted.
    coverage: Option<CoverageAnswer>,
}

/// Days of a report's window whose raw elevations are past retention.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CoverageAnswer {
    /// Those the answer counted from the daily rollups.
    from_rollups: Vec<DaySpanAnswer>,
    /// Those the answer could not include (it needs raw rows for them).
    unavailable: Vec<DaySpanAnswer>,
}

/// Consecutive days, both included (`YYYY-MM-DD`).
#[derive(Serialize, ToSchema)]
struct DaySpanAnswer {
    first: String,
    last: String,
}

/// Ranked suggestions with the thresholds that produced them.
#[derive(Serialize, ToSchema)]
struct SuggestionsAnswer {
    /// Start of the window.
    from: String,
    /// End of the window.
    to: String,
    /// The thresholds used.
    #[schema(value_type = Object)]
    thresholds: serde_json::Value,
    /// The suggestions, best first, each with rationale and evidence.
    #[schema(value_type = Vec<Object>)]
    suggestions: Vec<serde_json::Value>,
}

/// A key to create.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// `agent` or `admin`.
    #[schema(inline, value_type = KeyKindWord)]
    kind: String,
    /// An admin key's role (admin keys only).
    #[schema(inline, value_type = Option<RoleWord>)]
    role: Option<String>,
    /// The person holding an admin key: a user principal name (required for admin keys).
    #[schema(
        max_length = 256,
        pattern = r"^[^@\s\u0000-\u001F\u007F-\u009F]+@[^\s\u0000-\u001F\u007F-\u009F]*\.[^\s\u0000-\u001F\u007F-\u009F]*$"
    )]
    upn: Option<String>,
}

web::schema_type!(KeyKindWord => {
    let names: Vec<&str> = control::KeyKind::ALL.iter().map(|k| k.short()).collect();
    web::schema::one_of(&names)
});

web::schema_type!(RoleWord => {
    let names: Vec<&str> = control::Role::ALL.iter().map(|r| r.as_str()).collect();
    web::schema::one_of(&names)
});

/// A created key: shown once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedKey {
    id: String,
    kind: String,
    role: Option<String>,
    upn: Option<String>,
    tenant: String,
    created_at: String,
    /// The secret; it cannot be shown again.
    key: String,
}

/// Settings to change; absent fields stay as they are.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsChange {
    /// `none`, `diagnostic`, `managed` or `all`.
    #[schema(inline, value_type = Option<ReportingLevelWord>)]
    reporting_cap: Option<String>,
    #[schema(minimum = 1, maximum = 36500)]
    elevation_retention_days: Option<u32>,
    #[schema(minimum = 1, maximum = 36500)]
    diagnostic_retention_days: Option<u32>,
    /// Hours an approval lasts when the approver names none (default 24); at most
    /// `maxApprovalHours`.
    #[schema(minimum = 1, maximum = 8784)]
    approval_hours: Option<u32>,
    /// The most hours an approver may give (default 168).
    #[schema(minimum = 1, maximum = 8784)]
    max_approval_hours: Option<u32>,
    /// Hours a request waits for a decision (default 48).
    #[schema(minimum = 1, maximum = 8784)]
    request_expiry_hours: Option<u32>,
}

web::schema_type!(ReportingLevelWord => {
    let names: Vec<&str> = warehouse::ReportingLevel::ALL.iter().map(|l| l.as_str()).collect();
    web::schema::one_of(&names)
});

/// A tenant's settings.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TenantSettings {
    tenant: String,
    reporting_cap: String,
    elevation_retention_days: u32,
    diagnostic_retention_days: u32,
    approval_hours: u32,
    max_approval_hours: u32,
    request_expiry_hours: u32,
}

/// A report's name in its path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
struct ReportPath {
    /// The report.
    #[param(inline, value_type = ReportNameWord)]
    name: String,
}

/// The parameters every report takes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case)]
struct ReportParams {
    /// Start of the window, RFC 3339 or a date (default: 48 hours before `to` for the
    /// Overview, 30 days otherwise); before `to`.
    #[param(inline, value_type = Option<web::schema::Instant>)]
    from: Option<String>,
    /// End of the window, RFC 3339 or a date (default: now).
    #[param(inline, value_type = Option<web::schema::Instant>)]
    to: Option<String>,
    /// `json` (default) or `csv`.
    #[param(inline, value_type = Option<JsonOrCsv>)]
    format: Option<String>,
    /// `native` (default) or `graph`.
    #[param(inline, value_type = Option<ProfileWord>)]
    profile: Option<String>,
    /// Only this elevation type.
    #[param(inline, value_type = Option<ElevationTypeWord>)]
    elevationType: Option<String>,
    /// Only this user.
    #[param(inline, value_type = Option<FilterText>)]
    upn: Option<String>,
    /// Only this device (the only filter `diagnostics` takes; `compliance` takes none).
    #[param(inline, value_type = Option<FilterText>)]
    deviceName: Option<String>,
    /// Only this publisher.
    #[param(inline, value_type = Option<FilterText>)]
    companyName: Option<String>,
    /// Only this file hash (SHA-256, any case).
    #[param(inline, value_type = Option<FilterText>)]
    hash: Option<String>,
    /// Only this file name.
    #[param(inline, value_type = Option<FilterText>)]
    fileName: Option<String>,
    /// Only the elevation with this id.
    #[param(inline, value_type = Option<FilterText>)]
    id: Option<String>,
    /// `by-user` only: the users of one Overview readiness tile.
    #[param(inline, value_type = Option<ReadinessWord>)]
    readiness: Option<String>,
    /// `diagnostics` only: the rows of one kind.
    #[param(inline, value_type = Option<DiagnosticKindWord>)]
    kind: Option<String>,
    /// A column of the report to sort by (the error lists the report's columns).
    #[param(inline, value_type = Option<FilterText>)]
    sort: Option<String>,
    /// `asc` or `desc`; needs `sort`.
    #[param(inline, value_type = Option<OrderWord>)]
    order: Option<String>,
    /// Rows per page.
    #[param(minimum = 0, maximum = 1_000_000)]
    limit: Option<u64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<u64>,
    /// `diagnostics`: days without a report after which a device counts as silent (default 3).
    #[param(minimum = 0, maximum = 3650)]
    silentDays: Option<u32>,
}

/// A filter's text, as every report and suggestion filter reads it.
fn filter_text() -> utoipa::openapi::schema::Schema {
    web::schema::text(queries::request::MAX_TEXT_CHARS)
}

web::schema_type!(FilterText => filter_text());

web::schema_type!(JsonOrCsv => web::schema::one_of(&["json", "csv"]));

web::schema_type!(ProfileWord => {
    let names: Vec<&str> = queries::request::Profile::ALL.iter().map(|p| p.as_str()).collect();
    web::schema::one_of(&names)
});

web::schema_type!(OrderWord => web::schema::one_of(&["asc", "desc"]));

web::schema_type!(ReadinessWord => {
    let names: Vec<&str> = queries::request::Readiness::ALL.iter().map(|r| r.as_str()).collect();
    web::schema::one_of(&names)
});

web::schema_type!(DiagnosticKindWord => {
    let names: Vec<&str> = queries::DiagnosticKind::ALL.iter().map(|k| k.as_str()).collect();
    web::schema::one_of(&names)
});

web::schema_type!(ElevationTypeWord => {
    let names: Vec<&str> = warehouse::ElevationType::ALL.iter().map(|t| t.as_str()).collect();
    web::schema::one_of(&names)
});

web::schema_type!(ReportNameWord => {
    let names: Vec<&str> = queries::request::ReportName::ALL.iter().map(|r| r.as_str()).collect();
    web::schema::one_of(&names)
});

fn suggestion_kind() -> utoipa::openapi::schema::Schema {
    let names: Vec<&str> = queries::suggest::SuggestionKind::EVERY
        .iter()
        .map(|k| k.as_str())
        .collect();
    web::schema::one_of(&names)
}

/// The parameters of the suggestions and their export (each adds its `format`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(non_snake_case)]
struct SuggestParams {
    /// Start of the window (default: 30 days before `to`); before `to`.
    #[param(inline, value_type = Option<web::schema::Instant>)]
    from: Option<String>,
    /// End of the window (default: now).
    #[param(inline, value_type = Option<web::schema::Instant>)]
    to: Option<String>,
    /// Only these kinds (repeatable).
    #[param(inline, value_type = Option<SuggestionKinds>)]
    kind: Option<Vec<String>>,
    /// Only the suggestions with these ids (repeatable).
    #[param(inline, value_type = Option<FilterTexts>)]
    id: Option<Vec<String>>,
    /// Publishers whose certificate is trusted (repeatable).
    #[param(inline, value_type = Option<FilterTexts>)]
    trustedPublisher: Option<Vec<String>>,
    /// At most this many suggestions.
    #[param(minimum = 1)]
    limit: Option<u64>,
    /// Skip this many of the ranked suggestions first (paging).
    #[param(minimum = 0)]
    offset: Option<u64>,
    /// Fewest elevations for a new rule (the other thresholds, `supportMinUsers` and so on,
    /// are further parameters of the same name).
    #[param(minimum = 0)]
    minEvents: Option<u64>,
    /// Fewest distinct users for a new rule.
    #[param(minimum = 0)]
    minUsers: Option<u64>,
}

web::schema_type!(ExportFormatWord => {
    let names: Vec<&str> = queries::export::ExportFormat::ALL.iter().map(|f| f.as_str()).collect();
    web::schema::one_of(&names)
});

web::schema_type!(SuggestionKinds => web::schema::list_of(suggestion_kind()));

web::schema_type!(FilterTexts => web::schema::list_of(filter_text()));

/// A compliance pack's period.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct PeriodParams {
    /// Start of the period, RFC 3339 or a date.
    #[param(inline, value_type = web::schema::Instant)]
    from: String,
    /// End of the period (exclusive), RFC 3339 or a date; after `from`.
    #[param(inline, value_type = web::schema::Instant)]
    to: String,
}

/// The parameters of a page's window.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct WindowParams {
    /// Start of the window.
    from: Option<String>,
    /// End of the window.
    to: Option<String>,
}

/// The audit log's filters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// From this time.
    #[param(inline, value_type = Option<web::schema::Instant>)]
    from: Option<String>,
    /// Until this time.
    #[param(inline, value_type = Option<web::schema::Instant>)]
    to: Option<String>,
    /// Only this activity (`createKey`, `exportRules`, `signIn`, …).
    activity: Option<String>,
    /// Only this actor's UPN.
    actor: Option<String>,
    /// At most this many entries (at most 1,000 are given).
    #[param(minimum = 0)]
    limit: Option<i64>,
    /// Entries to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[utoipa::path(get, path = "/v1/reports/{name}", tag = "reports",
    params(ReportPath, ReportParams),
    responses(
        (status = 200, description = "The report: JSON, or CSV with format=csv",
            content((ReportAnswer = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Unknown report or bad parameter", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Reports", body = ErrorBody),
        (status = 503, description = "The control plane or the warehouse's object storage cannot be reached (storage_unavailable), or the report needs more memory than --query-memory allows (query_memory_exhausted)", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn report() {}

#[utoipa::path(get, path = "/v1/suggestions", tag = "suggestions",
    params(SuggestParams, ("format" = inline(Option<JsonOrCsv>), Query, description = "`json` (default) or `csv`")),
    responses(
        (status = 200, description = "Ranked suggestions: JSON, or CSV with format=csv",
            content((SuggestionsAnswer = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Reports", body = ErrorBody),
        (status = 503, description = "The control plane or the warehouse's object storage cannot be reached (storage_unavailable), or the suggestions need more memory than --query-memory allows (query_memory_exhausted)", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn suggestions() {}

#[utoipa::path(get, path = "/v1/exports/rules", tag = "suggestions",
    params(SuggestParams, ("format" = inline(Option<ExportFormatWord>), Query,
        description = "`intune` (default: Graph's rules policy), `epmanager-csv` or `json`")),
    responses(
        (status = 200, description = "An Intune EPM rules policy (Graph JSON), EPManager CSV or JSON, as an attachment",
            content((Object = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Bad parameter or format", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Reports", body = ErrorBody),
        (status = 503, description = "The control plane or the warehouse's object storage cannot be reached; nothing was exported", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn export_rules() {}

#[utoipa::path(get, path = "/v1/compliance/pack", tag = "compliance",
    params(PeriodParams),
    responses(
        (status = 200, description = "The evidence pack as a .tar.gz of the folder `elevation compliance pack` writes", body = String, content_type = "application/gzip"),
        (status = 400, description = "Missing or bad period, or no elevation in it", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Reports", body = ErrorBody),
        (status = 409, description = "The server has no signing key (`elevation compliance keygen`)", body = ErrorBody),
        (status = 503, description = "The control plane or the warehouse's object storage cannot be reached, or reading the period needs more memory than --query-memory allows (query_memory_exhausted); no pack was made", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn compliance_pack() {}

#[utoipa::path(get, path = "/v1/audit", tag = "control", params(AuditParams),
    responses(
        (status = 200, description = "The tenant's audit events, oldest first", body = Object),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Audit", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn audit_list() {}

#[utoipa::path(get, path = "/v1/audit/verify", tag = "control",
    responses(
        (status = 200, description = "Whether the tenant's hash chain is intact, and where it breaks", body = Object),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Audit", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn audit_verify() {}

#[utoipa::path(get, path = "/v1/keys", tag = "control",
    responses(
        (status = 200, description = "The tenant's keys (never their secrets)", body = Object),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Manage Keys", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn keys_list() {}

#[utoipa::path(post, path = "/v1/keys", tag = "control", request_body = NewKey,
    responses(
        (status = 201, description = "The key, shown once", body = CreatedKey),
        (status = 400, description = "Bad kind, role or UPN, or not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Manage Keys, or a session without its CSRF token", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was created", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn keys_create() {}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "control",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "Revoked", body = Object),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Manage Keys, or a session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such key in the tenant", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was changed", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn keys_revoke() {}

#[utoipa::path(get, path = "/v1/tenant", tag = "control",
    responses(
        (status = 200, description = "The tenant's settings", body = TenantSettings),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Read", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn tenant_show() {}

#[utoipa::path(patch, path = "/v1/tenant", tag = "control", request_body = SettingsChange,
    responses(
        (status = 200, description = "The settings after the change", body = TenantSettings),
        (status = 400, description = "Bad value, or not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Manage Tenant, or a session without its CSRF token", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was changed", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn tenant_update() {}

#[utoipa::path(get, path = "/v1/rules", tag = "control",
    responses(
        (status = 200, description = "The tenant's imported rules policies", body = Object),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Read", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn rules_list() {}

#[utoipa::path(post, path = "/v1/rules", tag = "control",
    request_body(content = Object, description = "An Intune EPM rules policy as Graph exports it"),
    responses(
        (status = 200, description = "Imported (or replaced the policy of the same name)", body = Object),
        (status = 400, description = "Not JSON, or not a rules policy", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Import Rules, or a session without its CSRF token", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was imported", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
fn rules_import() {}

#[utoipa::path(get, path = "/sign-in", tag = "pages",
    params(("next" = Option<String>, Query, description = "A path of this server to go to after signing in")),
    responses((status = 200, description = "The sign-in form", body = String, content_type = "text/html")))]
fn sign_in_form() {}

#[utoipa::path(post, path = "/sign-in", tag = "pages",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "key, csrf (from the form's cookie), next"),
    responses(
        (status = 303, description = "Signed in: the session cookie is set; on to `next`"),
        (status = 400, description = "The form was incomplete", body = String, content_type = "text/html"),
        (status = 401, description = "Not an admin key", body = String, content_type = "text/html"),
        (status = 403, description = "The form's CSRF token is missing or wrong", body = String, content_type = "text/html"),
        (status = 503, description = "The control plane cannot be reached", body = String, content_type = "text/html"),
    ))]
fn sign_in_submit() {}

#[utoipa::path(post, path = "/sign-out", tag = "pages",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "csrf: the session's token"),
    responses(
        (status = 303, description = "Signed out (or was not signed in): on to /sign-in"),
        (status = 403, description = "The session's CSRF token is missing or wrong", body = String, content_type = "text/html"),
        (status = 503, description = "The control plane cannot be reached", body = String, content_type = "text/html"),
    ))]
fn sign_out() {}

#[utoipa::path(get, path = "/", tag = "pages", params(WindowParams),
    responses(
        (status = 200, description = "The Overview: readiness tiles, top files, trend", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to /sign-in"),
        (status = 400, description = "Bad parameter", body = String, content_type = "text/html"),
        (status = 403, description = "The role lacks View Reports", body = String, content_type = "text/html"),
    ),
    security(("session" = []), ("admin_key" = [])))]
fn overview_page() {}

#[utoipa::path(get, path = "/reports/{name}", tag = "pages",
    params(("name" = String, Path, description = "A report's name, as in /v1/reports/{name}"), ReportParams),
    responses(
        (status = 200, description = "The report as a table with filters, sorting and paging", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to /sign-in"),
        (status = 400, description = "Unknown report or bad parameter", body = String, content_type = "text/html"),
        (status = 403, description = "The role lacks View Reports", body = String, content_type = "text/html"),
    ),
    security(("session" = []), ("admin_key" = [])))]
fn report_page() {}

#[utoipa::path(get, path = "/elevations/{id}", tag = "pages",
    params(
        ("id" = String, Path, description = "The elevation's id"),
        ("from" = Option<String>, Query, description = "Start of the window the page's links keep (RFC 3339 or YYYY-MM-DD); default 400 days before `to`"),
        ("to" = Option<String>, Query, description = "End of that window; default now"),
        ("at" = Option<String>, Query, description = "The elevation's time, as the report pages' links carry it: the elevation is looked up at that instant first, then in the whole window"),
    ),
    responses(
        (status = 200, description = "Every column of one elevation", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to /sign-in"),
        (status = 400, description = "The id is empty, too long or holds control characters", body = String, content_type = "text/html"),
        (status = 403, description = "The role lacks View Reports", body = String, content_type = "text/html"),
        (status = 404, description = "No such elevation in the tenant", body = String, content_type = "text/html"),
    ),
    security(("session" = []), ("admin_key" = [])))]
fn elevation_page() {}

#[utoipa::path(get, path = "/suggestions", tag = "pages", params(SuggestParams),
    responses(
        (status = 200, description = "Ranked suggestions; select some and download them", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to /sign-in"),
        (status = 400, description = "Bad parameter", body = String, content_type = "text/html"),
        (status = 403, description = "The role lacks View Reports", body = String, content_type = "text/html"),
    ),
    security(("session" = []), ("admin_key" = [])))]
fn suggestions_page() {}

#[utoipa::path(get, path = "/fleet", tag = "pages", params(WindowParams),
    responses(
        (status = 200, description = "Fleet health: reporting levels, devices below the cap, silent devices, error codes", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to /sign-in"),
        (status = 400, description = "Bad parameter", body = String, content_type = "text/html"),
        (status = 403, description = "The role lacks View Reports", body = String, content_type = "text/html"),
    ),
    security(("session" = []), ("admin_key" = [])))]
fn fleet_page() {}

#[utoipa::path(get, path = "/when", tag = "pages",
    params(WindowParams, ("tz" = Option<String>, Query, description = "An IANA time zone (default UTC)")),
    responses(
        (status = 200, description = "Elevations by hour of day and weekday", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to /sign-in"),
        (status = 400, description = "Bad parameter", body = String, content_type = "text/html"),
        (status = 403, description = "The role lacks View Reports", body = String, content_type = "text/html"),
    ),
    security(("session" = []), ("admin_key" = [])))]
fn when_page() {}

#[utoipa::path(get, path = "/assets/{file}", tag = "pages",
    params(("file" = String, Path, description = "style.css, htmx.min.js or favicon.svg")),
    responses(
        (status = 200, description = "A vendored asset", body = String),
        (status = 404, description = "No such asset", body = ErrorBody),
    ))]
fn asset() {}

#[utoipa::path(get, path = "/favicon.ico", tag = "pages",
    responses((status = 200, description = "The icon (SVG)", body = String, content_type = "image/svg+xml")))]
fn favicon() {}
