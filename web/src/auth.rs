//! The one way a request says who sends it: `Authorization: Bearer <key>` (agents and scripts)
//! or the dashboards' session cookie (people in a browser). Keys and sessions are checked by
//! the control plane; this module only reads them off the request and turns the outcome into
//! the right answer.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use control::{ControlPlane, Permission, Principal, Session};

use crate::error::{ApiError, ErrorCode};

/// The cookie holding a dashboards session token.
pub const SESSION_COOKIE: &str = "elevation_session";
/// The header a session's state-changing API call carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The key of `Authorization: Bearer <key>` (the scheme's name in any case, as RFC 9110 has it).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// The value of a cookie sent with the request.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A random token for a form or a cookie (the sessions' own generator).
pub use control::sessions::random_token;

/// An admin who sent a known admin key or a live session. The route then asks
/// [`Admin::require`] for the permission it needs.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Who: key, tenant, role, person.
    pub principal: Principal,
    /// The session when the admin came with the cookie rather than a key.
    pub session: Option<Session>,
}

impl Admin {
    /// The admin when their role carries `permission`; `403` otherwise.
    pub fn require(self, permission: Permission) -> Result<Admin, ApiError> {
        if self.principal.may(permission) {
            Ok(self)
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "this needs an admin key whose role has {} (agent keys only upload)",
                    permission.label()
                ),
            ))
        }
    }
}

/// An agent that sent a known agent key: the device side (`/v1/agent/...`).
#[derive(Debug, Clone)]
pub struct Agent(pub control::Authenticated);

/// Checks the agent key of a request: `401` without a known key, `403` for an admin key, `503`
/// when the control plane cannot say (uploads keep working on recently verified keys).
pub async fn agent(control: &ControlPlane, headers: &HeaderMap) -> Result<control::Authenticated, ApiError> {
    let authenticated = match bearer(headers) {
        None => None,
        Some(token) => control.authenticate_upload(token).await.map_err(|e| {
            tracing::error!(error = %e, "cannot check the agent key");
            if e.is_unavailable() {
                // A key not verified within the offline grace: nothing was stored, retry.
                ApiError::unavailable(
                    ErrorCode::StorageUnavailable,
                    "the server cannot check keys right now; nothing was stored, retry later",
                    5,
                )
            } else {
                ApiError::internal()
            }
        })?,
    };
    let authenticated = authenticated.ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "send an agent key as `Authorization: Bearer <key>`; create one with `elevation keys create --kind agent`",
        )
    })?;
    if authenticated.principal.kind != control::KeyKind::Agent {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this is an admin key; the agent routes need an agent key of the tenant",
        ));
    }
    Ok(authenticated)
}

impl<S> FromRequestParts<S> for Agent
where
    Arc<ControlPlane>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Agent, ApiError> {
        let control = Arc::<ControlPlane>::from_ref(state);
        agent(&control, &parts.headers).await.map(Agent)
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "send an admin key as Authorization: Bearer <key> (elevation keys create --kind admin), \
         or sign in at /sign-in",
    )
}

/// Whether a request may change state: anything but GET, HEAD and OPTIONS.
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A state-changing request that rides on a session must come from our own pages: same origin
/// when the browser says, and the session's CSRF token in [`CSRF_HEADER`]. (A key in
/// `Authorization` is never sent by a browser on its own, so key calls need neither.)
fn check_csrf(parts: &Parts, session: &Session) -> Result<(), ApiError> {
    let rejected = |why: &str| ApiError::new(ErrorCode::CsrfRejected, why.to_owned());
    if let (Some(origin), Some(host)) = (
        parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Err(rejected("the request comes from another origin"));
        }
    }
    match parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) if same_secret(token, &session.csrf_secret) => Ok(()),
        _ => Err(rejected(
            "a signed-in browser must send the page's CSRF token in X-CSRF-Token to change anything",
        )),
    }
}

impl<S> FromRequestParts<S> for Admin
where
    Arc<ControlPlane>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Admin, ApiError> {
        let control = Arc::<ControlPlane>::from_ref(state);
        if let Some(key) = bearer(&parts.headers) {
            let principal = control.authenticate_admin(key).await?.ok_or_else(unauthorized)?;
            return Ok(Admin {
                principal,
                session: None,
            });
        }
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(unauthorized)?;
        let session = control.session(token).await?.ok_or_else(unauthorized)?;
        if changes_state(&parts.method) {
            check_csrf(parts, &session)?;
        }
        Ok(Admin {
            principal: session.principal.clone(),
            session: Some(session),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_key() {
        assert_eq!(bearer(&headers(&[("authorization", "Bearer abc")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "bearer  abc ")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "BEARER abc")])), Some("abc"));
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(bearer(&headers(&[])), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&[("cookie", "a=1; elevation_session=tok; b=2"), ("cookie", "c=3")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "elevation"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
