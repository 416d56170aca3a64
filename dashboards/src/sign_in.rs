//! Signing in to the dashboards with an admin key, and out again. The key is posted once; the
//! browser then holds only a session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when the
//! request came over TLS). Every form that changes state carries a CSRF token: the sign-in form
//! a token also set in a short-lived cookie (double submit, so nobody can sign a victim in to
//! their own tenant), the sign-out form the session's own secret.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use control::{KeyKind, Session};
use web::auth::{SESSION_COOKIE, cookie, random_token, same_secret};
use web::{ApiError, ErrorCode, cookie_header};

use crate::{AdminApi, audit_context};

/// How long a sign-in lasts: a working day.
pub(crate) const SESSION_HOURS: i64 = 8;
/// The cookie of the sign-in form's CSRF token.
const SIGN_IN_CSRF_COOKIE: &str = "elevation_sign_in";

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    csrf: String,
    next: String,
    problem: Option<String>,
    hours: i64,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    heading: String,
    message: String,
    code: &'static str,
}

/// Whether the request reached us over TLS (directly or through a proxy that says so).
fn over_tls(headers: &HeaderMap, uri: &Uri) -> bool {
    uri.scheme_str() == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Where to go after signing in: a path of this server only, never another site.
fn local_path(next: &str) -> String {
    let safe = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.contains("://");
    if safe { next.to_owned() } else { "/".to_owned() }
}

/// The headers of every HTML answer: nothing but this server may supply scripts, styles or
/// frames, and nothing is cached.
pub(crate) fn html_headers() -> [(header::HeaderName, &'static str); 5] {
    [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ]
}

fn sign_in_form(status: StatusCode, next: &str, problem: Option<String>, secure: bool) -> Response {
    let csrf = random_token();
    let page = SignInPage {
        csrf: csrf.clone(),
        next: local_path(next),
        problem,
        hours: SESSION_HOURS,
    };
    let body = page
        .render()
        .unwrap_or_else(|e| format!("the sign-in page failed to render: {e}"));
    let mut response = (status, html_headers(), body).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(SIGN_IN_CSRF_COOKIE, &csrf, 3600, secure),
    );
    response
}

/// `GET /sign-in?next=/path`.
pub(crate) async fn form(headers: HeaderMap, uri: Uri) -> Response {
    let next = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "next").map(|(_, v)| v))
        .unwrap_or_else(|| "/".into());
    sign_in_form(StatusCode::OK, &next, None, over_tls(&headers, &uri))
}

#[derive(serde::Deserialize)]
struct SignInForm {
    key: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// `POST /sign-in` with the form: checks the form's token, then the key; an admin key gets a
/// session, anything else gets the form again with what was wrong.
pub(crate) async fn submit(State(api): State<AdminApi>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let secure = over_tls(&headers, &uri);
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return sign_in_form(
            StatusCode::BAD_REQUEST,
            "/",
            Some("The form was incomplete; try again.".into()),
            secure,
        );
    };
    let expected = cookie(&headers, SIGN_IN_CSRF_COOKIE);
    if !expected.is_some_and(|token| same_secret(token, &form.csrf)) {
        return sign_in_form(
            StatusCode::FORBIDDEN,
            &form.next,
            Some("The form expired or came from another site; sign in again.".into()),
            secure,
        );
    }
    let principal = match api.control.authenticate_admin(form.key.trim()).await {
        Ok(Some(principal)) if principal.kind == KeyKind::Admin => principal,
        Ok(_) => {
            return sign_in_form(
                StatusCode::UNAUTHORIZED,
                &form.next,
                Some("That is not an admin key of this server (agent keys only upload).".into()),
                secure,
            );
        }
        Err(e) => return message(ApiError::from(e)),
    };
    let created = api
        .control
        .create_session(&principal, chrono::Duration::hours(SESSION_HOURS))
        .await;
    let (token, _) = match created {
        Ok(created) => created,
        Err(e) => return message(ApiError::from(e)),
    };
    let context = audit_context(&principal, &headers);
    if let Err(e) = api
        .control
        .record(&context, &principal.tenant, session_draft("signIn", &principal))
        .await
    {
        return message(ApiError::from(e));
    }
    let mut response = Redirect::to(&local_path(&form.next)).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        cookie_header(SESSION_COOKIE, &token, SESSION_HOURS * 3600, secure),
    );
    cookies.append(header::SET_COOKIE, cookie_header(SIGN_IN_CSRF_COOKIE, "", 0, secure));
    response
}

/// The session of a form posted from one of our pages: the cookie's session, and the form's
/// `csrf` field equal to its token (a form cannot send `X-CSRF-Token`; the cookie is
/// `SameSite=Strict` too). Refusals are pages; no session goes to the sign-in form.
pub(crate) async fn form_session(api: &AdminApi, headers: &HeaderMap, body: &[u8]) -> Result<Session, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(Redirect::to("/sign-in").into_response());
    };
    let session = match api.control.session(token).await {
        Ok(Some(session)) => session,
        Ok(None) => return Err(Redirect::to("/sign-in").into_response()),
        Err(e) => return Err(message(ApiError::from(e))),
    };
    #[derive(serde::Deserialize)]
    struct Token {
        csrf: String,
    }
    let form = serde_urlencoded::from_bytes::<Token>(body).ok();
    if !form.is_some_and(|f| same_secret(&f.csrf, &session.csrf_secret)) {
        return Err(message(ApiError::new(
            ErrorCode::CsrfRejected,
            "send this form from a page of this server (its CSRF token is missing or wrong)",
        )));
    }
    Ok(session)
}

/// `POST /sign-out` with the session's CSRF token: ends the session and clears the cookie.
pub(crate) async fn sign_out(State(api): State<AdminApi>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let secure = over_tls(&headers, &uri);
    let session = match form_session(&api, &headers, &body).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    if let Err(e) = api.control.delete_session(token).await {
        return message(ApiError::from(e));
    }
    let context = audit_context(&session.principal, &headers);
    let draft = session_draft("signOut", &session.principal);
    if let Err(e) = api.control.record(&context, &session.principal.tenant, draft).await {
        return message(ApiError::from(e));
    }
    let mut response = Redirect::to("/sign-in").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie_header(SESSION_COOKIE, "", 0, secure));
    response
}

/// What a sign-in or sign-out records in the audit log (AU-2: logons are auditable events).
fn session_draft(activity: &'static str, principal: &control::Principal) -> control::audit::Draft {
    control::audit::Draft {
        activity,
        operation: "Action",
        result: "success",
        resource_type: "session",
        resource_id: principal.key_id.clone(),
        modified: Vec::new(),
    }
}

/// An error as a page a person can read (the API answers the same error as JSON).
pub(crate) fn message(error: ApiError) -> Response {
    let status = error.status();
    let heading = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Cannot show this",
        StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
        _ => "Something went wrong",
    };
    let page = MessagePage {
        heading: heading.into(),
        message: error.message.clone(),
        code: error.code.as_str(),
    };
    let body = page.render().unwrap_or_else(|_| error.message.clone());
    let mut response = (status, html_headers(), body).into_response();
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The answer of a page to a visitor who is not signed in: the sign-in form, then back here.
pub(crate) fn to_sign_in(uri: &Uri) -> Response {
    let here = uri.path_and_query().map_or("/", |p| p.as_str());
    let target: String = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
    Redirect::to(&format!("/sign-in?{target}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path("/reports/by-user?page=2"), "/reports/by-user?page=2");
        assert_eq!(local_path("//evil.example/"), "/");
        assert_eq!(local_path("https://evil.example/"), "/");
        assert_eq!(local_path("/\\evil.example"), "/");
        assert_eq!(local_path("reports"), "/");
    }
}
