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

/// What a pack of `tenant` for `[from, to)` needs from the control plane: the tenant's
/// settings, whether it is known (it has keys or settings), and its support-approved requests
/// of the period as of the period's end. The command line and the API both make packs with it.
pub async fn pack_request(
    control: &control::ControlPlane,
    tenant: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    versions: Option<std::collections::BTreeMap<String, u64>>,
) -> Result<PackRequest, control::ControlError> {
    let settings = control.settings_of(tenant).await?;
    let known =
        !control.list_keys(Some(tenant)).await?.is_empty() || control.tenant_settings().await?.contains_key(tenant);
    let happened = |t: Option<chrono::DateTime<chrono::Utc>>| t.filter(|t| *t <= to);
    let support_requests = control
        .requests_created_between(tenant, from, to)
        .await?
        .into_iter()
        .map(|r| {
            let reviewed_at = happened(r.review_completed_date_time);
            let decided = reviewed_at.is_some();
            compliance::SupportRequest {
                status: r.status_at(to).as_str().to_owned(),
                reviewed_by: if decided {
                    r.review_completed_by_user_principal_name.clone()
                } else {
                    String::new()
                },
                reviewer_justification: if decided {
                    r.reviewer_justification.clone()
                } else {
                    String::new()
                },
                approval_expiry: r.approval_expiry_date_time.filter(|_| decided),
                revoked_by: happened(r.revoked_date_time)
                    .and(r.revoked_by_user_principal_name.clone())
                    .unwrap_or_default(),
                first_used_at: happened(r.first_used_date_time),
                reviewed_at,
                id: r.id,
                requested_by: r.requested_by_user_principal_name,
                device_name: r.device_name,
                device_id: r.requested_on_device_id,
                file_name: r.application_detail.file_name,
                file_hash: r.application_detail.file_hash,
                created_at: r.request_created_date_time,
            }
        })
        .collect();
    Ok(PackRequest {
        tenant: tenant.to_owned(),
        from,
        to,
        cap: settings.reporting_cap,
        retention: settings.retention(),
        known_tenant: known,
        versions,
        support_requests,
    })
}

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
        // The queries' own answer: `503` when the query memory budget ran out.
        ComplianceError::Query(query) => ApiError::from(*query),
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
    // The tenant is the key's (it has keys: it is known).
    let request = pack_request(&api.control, &principal.tenant, from, to, None).await?;
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
