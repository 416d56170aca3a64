//! The OpenAPI description of the support-approved request workflow: the requests, their
//! decisions, the numbers, the webhooks and the request pages.

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use web::ErrorBody;

/// A decision: Graph's body, plus the hours of an approval.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DecisionBody {
    /// Optional reason, at most 1,000 characters, no control characters; it goes into the
    /// audit log and to the device.
    #[schema(inline, value_type = Option<Justification>)]
    reviewer_justification: Option<String>,
    /// Approve only: hours the approval lasts (default the tenant's approvalHours, at most its
    /// maxApprovalHours).
    #[schema(minimum = 1)]
    approval_hours: Option<u32>,
}

/// A denial's or revocation's body: Graph's, a reason and nothing else.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ReasonBody {
    /// Optional reason, at most 1,000 characters, no control characters; it goes into the
    /// audit log and to the device.
    #[schema(inline, value_type = Option<Justification>)]
    reviewer_justification: Option<String>,
}

web::schema_type!(Justification => web::schema::printable(control::requests::MAX_JUSTIFICATION_CHARS));

/// A webhook to add.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWebhook {
    /// https (http to loopback only on a node started with --webhooks-allow-http-loopback);
    /// private and link-local addresses are refused.
    url: String,
    /// `standard` (Standard Webhooks, default) or `teams` (a Teams Workflows Adaptive Card).
    #[schema(inline, value_type = Option<WebhookFormatWord>)]
    format: Option<String>,
}

web::schema_type!(WebhookFormatWord => {
    let names: Vec<&str> = control::webhooks::WebhookFormat::ALL.iter().map(|f| f.as_str()).collect();
    web::schema::one_of(&names)
});

/// A listing's filters (an empty value means not given, as a form sends it).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RequestParams {
    /// pending, approved, denied, expired, cancelled, revoked or completed.
    #[param(inline, value_type = Option<RequestStatusWord>)]
    status: Option<String>,
    /// The requester's user principal name.
    user: Option<String>,
    /// A device id or name.
    device: Option<String>,
    /// A file's SHA-256 or name.
    file: Option<String>,
    /// Created at or after (default: 30 days ago, unless status=pending).
    #[param(inline, value_type = Option<web::schema::InstantOrEmpty>)]
    from: Option<String>,
    /// Created before.
    #[param(inline, value_type = Option<web::schema::InstantOrEmpty>)]
    to: Option<String>,
    /// At most this many (default and cap 1,000).
    #[param(inline, value_type = Option<web::schema::WholeOrEmpty>)]
    limit: Option<i64>,
    /// Skip this many.
    #[param(inline, value_type = Option<web::schema::WholeOrEmpty>)]
    offset: Option<i64>,
}

web::schema_type!(RequestStatusWord => {
    let names: Vec<&str> = control::RequestStatus::ALL.iter().map(|s| s.as_str()).collect();
    web::schema::one_of_or_empty(&names)
});

/// The numbers' window.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StatsParams {
    /// Requests created at or after (default: 30 days before `to`); before `to`.
    #[param(inline, value_type = Option<web::schema::InstantOrEmpty>)]
    from: Option<String>,
    /// Created before (default: now).
    #[param(inline, value_type = Option<web::schema::InstantOrEmpty>)]
    to: Option<String>,
}

#[utoipa::path(get, path = "/v1/requests", tag = "requests", params(RequestParams),
    responses(
        (status = 200, description = "The tenant's requests, newest first (Graph's names)", body = Object),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Elevation Requests", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn requests_list() {}

#[utoipa::path(get, path = "/v1/requests/stats", tag = "requests", params(StatsParams),
    responses(
        (status = 200, description = "Requests per state per day, time to decision (median, p90), pending age, \
            approvals per approver, files most requested, approvals never used, self-approval attempts", body = Object),
        (status = 400, description = "Bad window", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Elevation Requests", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn requests_stats() {}

#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The request", body = Object),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks View Elevation Requests", body = ErrorBody),
        (status = 404, description = "No such request in the tenant", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn requests_show() {}

#[utoipa::path(post, path = "/v1/requests/{id}/approve", tag = "requests", request_body = DecisionBody,
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "Approved: the request with its approvalExpiryDateTime", body = Object),
        (status = 400, description = "Bad reason or hours, or not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Modify Elevation Requests, the admin made the request, \
            or a session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such request in the tenant", body = ErrorBody),
        (status = 409, description = "No longer pending; the message gives its state", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was changed", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn requests_approve() {}

#[utoipa::path(post, path = "/v1/requests/{id}/deny", tag = "requests", request_body = ReasonBody,
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "Denied: the request", body = Object),
        (status = 400, description = "Bad reason, or not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Modify Elevation Requests, the admin made the request, \
            or a session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such request in the tenant", body = ErrorBody),
        (status = 409, description = "No longer pending; the message gives its state", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was changed", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn requests_deny() {}

#[utoipa::path(post, path = "/v1/requests/{id}/revoke", tag = "requests", request_body = ReasonBody,
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "Revoked: the request", body = Object),
        (status = 400, description = "Bad reason, or not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Modify Elevation Requests, the admin made the request, \
            or a session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such request in the tenant", body = ErrorBody),
        (status = 409, description = "Not an open approval; the message gives its state", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was changed", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn requests_revoke() {}

#[utoipa::path(get, path = "/v1/webhooks", tag = "requests",
    responses(
        (status = 200, description = "The tenant's webhooks (never their secrets)", body = Object),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Manage Tenant", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn webhooks_list() {}

#[utoipa::path(post, path = "/v1/webhooks", tag = "requests", request_body = NewWebhook,
    responses(
        (status = 201, description = "Added: with its signing secret, shown once", body = Object),
        (status = 400, description = "A URL that is not https or reaches a private address, a bad format, or not JSON", body = ErrorBody),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Manage Tenant, or a session without its CSRF token", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was changed", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn webhooks_add() {}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "requests",
    params(("id" = String, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "Removed, with its undelivered messages", body = Object),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Manage Tenant, or a session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such webhook in the tenant", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached; nothing was changed", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn webhooks_remove() {}

#[utoipa::path(get, path = "/v1/webhooks/deliveries", tag = "requests",
    responses(
        (status = 200, description = "The newest 100 deliveries: attempts, delivered, next attempt, last error", body = Object),
        (status = 401, description = "No or unknown admin key", body = ErrorBody),
        (status = 403, description = "The role lacks Manage Tenant", body = ErrorBody),
        (status = 503, description = "The control plane cannot be reached", body = ErrorBody),
    ),
    security(("admin_key" = []), ("session" = [])))]
pub(super) fn webhook_deliveries() {}

#[utoipa::path(get, path = "/requests", tag = "pages", params(RequestParams),
    responses(
        (status = 200, description = "Support-approved requests: the numbers and the list with filters", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to /sign-in"),
        (status = 400, description = "Bad parameter", body = String, content_type = "text/html"),
        (status = 403, description = "The role lacks View Elevation Requests", body = String, content_type = "text/html"),
    ),
    security(("session" = []), ("admin_key" = [])))]
pub(super) fn requests_page() {}

#[utoipa::path(get, path = "/requests/{id}", tag = "pages",
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "One request: everything the admin center's detail pane shows, and the decision forms", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: to /sign-in"),
        (status = 403, description = "The role lacks View Elevation Requests", body = String, content_type = "text/html"),
        (status = 404, description = "No such request in the tenant", body = String, content_type = "text/html"),
    ),
    security(("session" = []), ("admin_key" = [])))]
pub(super) fn request_page() {}

#[utoipa::path(post, path = "/requests/{id}/decide", tag = "pages",
    params(("id" = String, Path, description = "The request's id")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "csrf (the session's token), decision (approve, deny or revoke), reviewerJustification, approvalHours"),
    responses(
        (status = 303, description = "Decided: back to the request's page; not signed in: to /sign-in"),
        (status = 400, description = "Bad form", body = String, content_type = "text/html"),
        (status = 403, description = "CSRF token missing or wrong, the role lacks Modify Elevation Requests, or the admin made the request", body = String, content_type = "text/html"),
        (status = 404, description = "No such request in the tenant", body = String, content_type = "text/html"),
        (status = 409, description = "No longer in a state the decision starts from", body = String, content_type = "text/html"),
    ),
    security(("session" = [])))]
pub(super) fn request_decide_page() {}
