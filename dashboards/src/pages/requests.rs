//! Support-approved requests: the numbers and the filtered list, and one request with
//! everything the admin center's detail pane shows and the forms to approve, deny or revoke.
//! The numbers and rows are `control`'s, the same calls as `/v1/requests` and
//! `/v1/requests/stats`.

use control::requests::RequestStats;
use control::{ElevationRequest, RequestStatus};

use super::*;

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    chrome: Chrome,
    window: WindowView,
    tiles: Vec<(String, String, String)>,
    statuses: Vec<(String, u64)>,
    days: Vec<(String, Vec<u64>)>,
    status_names: Vec<String>,
    approvers: Vec<Vec<String>>,
    files: Vec<Vec<String>>,
    filter_status: String,
    filter_user: String,
    filter_device: String,
    filter_file: String,
    keep: Vec<(String, String)>,
    rows: Vec<RequestRow>,
    /// The next page of the list, when this one is full.
    next: Option<String>,
}

struct RequestRow {
    href: Option<String>,
    created: String,
    status: String,
    user: String,
    device: String,
    file: String,
    reviewer: String,
}

/// Seconds as people read a wait: "42 s", "5 min", "3.5 h", "2.1 d".
fn duration_text(seconds: Option<i64>) -> String {
    match seconds {
        None => "–".into(),
        Some(s) if s < 120 => format!("{s} s"),
        Some(s) if s < 7200 => format!("{} min", s / 60),
        Some(s) if s < 2 * 86_400 => format!("{:.1} h", s as f64 / 3600.0),
        Some(s) => format!("{:.1} d", s as f64 / 86_400.0),
    }
}

fn short_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M").to_string()
}

fn control_error(e: control::ControlError) -> QueryError {
    QueryError::Render(format!("the control plane cannot answer: {e}"))
}

/// The request numbers and list over the window and filters of `params`.
pub async fn requests(api: &AdminApi, viewer: &Viewer, params: &[(String, String)]) -> Result<String, QueryError> {
    let bad = |e: web::ApiError| QueryError::BadParameter(e.message);
    let window: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k == "from" || k == "to")
        .cloned()
        .collect();
    let (mut from, to) = crate::stats_window(&window, viewer.now).map_err(bad)?;
    // Without a `from`, the page's 30 days start at a midnight, as every page's do (the API's
    // numbers keep their exact 30 days).
    if !window.iter().any(|(k, v)| k == "from" && !v.is_empty()) {
        from = crate::views::window_start(to, chrono::Duration::days(30));
    }
    let mut filter = crate::request_filter(params).map_err(bad)?;
    filter.from = Some(from);
    filter.to = Some(to);
    let limit = filter.limit.unwrap_or(PAGE_ROWS as i64).clamp(1, 1000);
    filter.limit = Some(limit);
    let stats: RequestStats = api
        .control
        .request_stats(&viewer.tenant, from, to)
        .await
        .map_err(control_error)?;
    let listed = api
        .control
        .list_requests(&viewer.tenant, &filter)
        .await
        .map_err(control_error)?;
    let live = viewer.mode == Mode::Live;
    let open_now = api
        .control
        .pending_requests(&viewer.tenant)
        .await
        .map_err(control_error)?;
    let status_link = |status: &str| {
        let mut link = window_params(from, to);
        link.push(("status".into(), status.to_owned()));
        href("/requests", &link)
    };
    let tiles = vec![
        ("Pending now".to_owned(), open_now.to_string(), status_link("pending")),
        (
            "Median time to decision".to_owned(),
            duration_text(stats.time_to_decision.median_seconds),
            String::new(),
        ),
        (
            "90th percentile".to_owned(),
            duration_text(stats.time_to_decision.p90_seconds),
            String::new(),
        ),
        (
            "Approved, never used".to_owned(),
            format!("{} of {}", stats.approved_never_used, stats.approvals),
            String::new(),
        ),
        (
            "Self-approval attempts".to_owned(),
            stats.self_approval_attempts.to_string(),
            String::new(),
        ),
        (
            "Oldest pending".to_owned(),
            duration_text(stats.pending.max_seconds),
            String::new(),
        ),
    ];
    let status_names: Vec<String> = RequestStatus::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    let days = stats
        .by_day
        .iter()
        .map(|d| {
            let counts = status_names
                .iter()
                .map(|s| d.counts.get(s).copied().unwrap_or(0))
                .collect();
            (d.date.to_string(), counts)
        })
        .collect();
    let approvers = stats
        .approvers
        .iter()
        .map(|a| {
            vec![
                a.approver.clone(),
                a.approved.to_string(),
                a.denied.to_string(),
                duration_text(a.median_seconds_to_decision),
            ]
        })
        .collect();
    let files = stats
        .files
        .iter()
        .map(|f| {
            vec![
                f.file_name.clone(),
                f.requests.to_string(),
                f.approved.to_string(),
                f.denied.to_string(),
                f.users.to_string(),
            ]
        })
        .collect();
    let next = (live && listed.len() as i64 == limit).then(|| {
        let mut link: Vec<(String, String)> = params
            .iter()
            .filter(|(k, v)| k != "offset" && k != "from" && k != "to" && !v.is_empty())
            .cloned()
            .collect();
        link.extend(window_params(from, to));
        link.push(("offset".into(), (filter.offset.unwrap_or(0) + limit).to_string()));
        href("/requests", &link)
    });
    let rows = listed
        .iter()
        .map(|r| RequestRow {
            href: live.then(|| format!("/requests/{}", r.id)),
            created: short_time(r.request_created_date_time),
            status: r.status.as_str().to_owned(),
            user: r.requested_by_user_principal_name.clone(),
            device: r.device_name.clone(),
            file: r.application_detail.file_name.clone(),
            reviewer: r.review_completed_by_user_principal_name.clone(),
        })
        .collect();
    let text = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let page = RequestsPage {
        chrome: Chrome::new(
            viewer.mode,
            Page::Requests,
            "Elevation requests",
            viewer.who.clone(),
            viewer.csrf.clone(),
        ),
        window: WindowView::new(viewer.mode, "/requests", &[], from, to, viewer.now),
        tiles,
        statuses: stats.by_status.iter().map(|(s, n)| (s.clone(), *n)).collect(),
        days,
        status_names,
        approvers,
        files,
        filter_status: text("status"),
        filter_user: text("user"),
        filter_device: text("device"),
        filter_file: text("file"),
        keep: window_params(from, to),
        rows,
        next,
    };
    page.render().map_err(|e| QueryError::Render(e.to_string()))
}

fn window_params(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(String, String)> {
    params_of(&[("from", instant(from)), ("to", instant(to))])
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    chrome: Chrome,
    heading: String,
    fields: Vec<(&'static str, String)>,
    id: String,
    /// The session's CSRF token when the viewer may decide with a form.
    csrf: Option<String>,
    can_decide: bool,
    can_revoke: bool,
    approval_hours: u32,
    max_approval_hours: u32,
}

/// One request: the admin center's detail pane (file, publisher, device, status, by, last
/// modified, the user's justification, approval expiration, the admin's reason) and more.
pub async fn request(
    api: &AdminApi,
    viewer: &Viewer,
    id: &str,
    may_decide: bool,
) -> Result<String, control::ControlError> {
    let r: ElevationRequest = api.control.request(&viewer.tenant, id).await?;
    let settings = api.control.settings_of(&viewer.tenant).await?;
    let app = &r.application_detail;
    let time = |t: Option<DateTime<Utc>>| t.map(short_time).unwrap_or_default();
    let fields = vec![
        ("Status", r.status.as_str().to_owned()),
        ("File", app.file_name.clone()),
        ("Path", app.file_path.clone()),
        ("SHA-256", app.file_hash.clone()),
        ("Description", app.file_description.clone()),
        ("Publisher", app.publisher_name.clone()),
        (
            "Product",
            format!("{} {}", app.product_name, app.product_version)
                .trim()
                .to_owned(),
        ),
        ("Internal name", app.product_internal_name.clone()),
        ("User", r.requested_by_user_principal_name.clone()),
        ("Device", format!("{} ({})", r.device_name, r.requested_on_device_id)),
        ("User's justification", r.request_justification.clone()),
        ("Requested", short_time(r.request_created_date_time)),
        ("Request expires", short_time(r.request_expiry_date_time)),
        ("Decided by", r.review_completed_by_user_principal_name.clone()),
        ("Decided", time(r.review_completed_date_time)),
        ("Admin's reason", r.reviewer_justification.clone()),
        ("Approval expiration", time(r.approval_expiry_date_time)),
        (
            "Revoked by",
            r.revoked_by_user_principal_name.clone().unwrap_or_default(),
        ),
        ("Revoked", time(r.revoked_date_time)),
        ("Revocation reason", r.revoke_justification.clone().unwrap_or_default()),
        ("First used", time(r.first_used_date_time)),
        ("Last used", time(r.last_used_date_time)),
        ("Last modified", short_time(r.request_last_modified_date_time)),
        ("Id", r.id.clone()),
    ];
    let live = viewer.mode == Mode::Live && may_decide;
    let page = RequestPage {
        chrome: Chrome::new(
            viewer.mode,
            Page::Requests,
            "Elevation request",
            viewer.who.clone(),
            viewer.csrf.clone(),
        ),
        heading: format!(
            "{} wants to run {} elevated",
            r.requested_by_user_principal_name, app.file_name
        ),
        fields: fields.into_iter().filter(|(_, v)| !v.is_empty()).collect(),
        id: r.id.clone(),
        csrf: viewer.csrf.clone(),
        can_decide: live && r.status == RequestStatus::Pending,
        can_revoke: live && r.status == RequestStatus::Approved,
        approval_hours: settings.approval_hours(),
        max_approval_hours: settings.max_approval_hours(),
    };
    page.render()
        .map_err(|e| control::ControlError::Corrupt(format!("the request page cannot be drawn: {e}")))
}
