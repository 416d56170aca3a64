//! `GET /v1/compliance/pack?from=&to=`: the key's tenant's evidence pack for a period, signed
//! with the server's key, as one `.tar.gz` of the same folder `elevation compliance pack`
//! writes. Needs View Reports; recorded in the audit log before it is handed out.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use compliance::{ComplianceError, PackRequest};
use control::Permission;
use web::{Admin, ApiError, ErrorCode};

use crate::{AdminApi, audit_context};

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::parameter(message)
}

/// The answer to a pack that could not be made.
fn refused(e: ComplianceError) -> ApiError {
    match e {
        ComplianceError::EmptyPeriod { .. } | ComplianceError::BadManifest(_) => bad(e.to_string()),
        ComplianceError::NoSigningKey(_) => ApiError::new(
            ErrorCode::NotConfigured,
            "this server has no signing key for compliance packs: run `elevation compliance keygen` with its data folder",
        ),
        other => {
            tracing::error!(error = %other, "a compliance pack failed");
            ApiError::internal()
        }
    }
}

pub(crate) async fn pack(
    State(api): State<AdminApi>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    admin: Admin,
) -> Result<Response, ApiError> {
    let principal = admin.require(Permission::ViewReports)?.principal;
    let (mut from, mut to) = (None, None);
    for (key, value) in &params {
        let at = queries::request::parse_instant(key, value)?;
        match key.as_str() {
            "from" => from = Some(at),
            "to" => to = Some(at),
            other => return Err(bad(format!("unknown parameter {other:?}; a pack takes from and to"))),
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(bad("a pack needs from and to (RFC 3339 or YYYY-MM-DD)"));
    };
    let key_dir = api
        .key_dir
        .clone()
        .ok_or(ComplianceError::NoSigningKey("(none)".into()))
        .map_err(refused)?;
    let key = compliance::keys::load(&key_dir).map_err(refused)?;
    let settings = api.control.settings_of(&principal.tenant).await?;
    // The tenant is the key's: it is known.
    let request = PackRequest {
        tenant: principal.tenant.clone(),
        from,
        to,
        cap: settings.reporting_cap,
        retention: settings.retention(),
        known_tenant: true,
        versions: None,
    };
    let scratch = std::env::temp_dir();
    let (bytes, summary) = compliance::pack_archive(&api.warehouse, &request, &key, &scratch)
        .await
        .map_err(refused)?;
    // Recorded before it is handed out: a pack that cannot be audited is not made.
    let draft = control::audit::compliance_pack_draft(from, to, &summary.manifest_sha256, summary.elevations);
    api.control
        .record(&audit_context(&principal, &headers), &principal.tenant, draft)
        .await?;
    let name = compliance::archive::folder_name(&principal.tenant, from, to);
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.tar.gz\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
