//! The SQL of keys, tenant settings, rules policies and sign-in sessions: one small function
//! per statement, each running on a transaction of either backend.

use std::collections::BTreeMap;

use warehouse::ReportingLevel;
use warehouse::policy::RulesPolicy;

use super::{Tx, parse_time, time_text};
use crate::keys::{KeyKind, KeyRecord};
use crate::{ControlError, Role, TenantSettings};

type KeyRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
);

const KEY_COLUMNS: &str = "id, tenant, kind, role, upn, secret_sha256, created_at, revoked_at, device_id";

fn key_from_row(row: KeyRow) -> Result<KeyRecord, ControlError> {
    let (id, tenant, kind, role, upn, secret_sha256, created_at, revoked_at, device_id) = row;
    let corrupt = |e: ControlError| ControlError::Corrupt(format!("key {id}: {e}"));
    Ok(KeyRecord {
        kind: KeyKind::parse(&kind).map_err(corrupt)?,
        role: role.as_deref().map(Role::parse).transpose().map_err(corrupt)?,
        created_at: parse_time(&created_at)?,
        revoked_at: revoked_at.as_deref().map(parse_time).transpose()?,
        id,
        tenant,
        upn,
        secret_sha256,
        device_id,
    })
}

/// Stores a key; `false` when its id exists already (nothing changed).
pub(crate) async fn insert_key(tx: &mut Tx, key: &KeyRecord) -> Result<bool, ControlError> {
    let done = crate::on!(tx, conn => {
        sqlx::query(&format!(
            "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(key.kind.short())
        .bind(key.role.map(Role::as_str))
        .bind(&key.upn)
        .bind(&key.secret_sha256)
        .bind(time_text(key.created_at))
        .bind(key.revoked_at.map(time_text))
        .bind(&key.device_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// One key by id.
pub(crate) async fn key(tx: &mut Tx, id: &str) -> Result<Option<KeyRecord>, ControlError> {
    let row: Option<KeyRow> = crate::on!(tx, conn => {
        sqlx::query_as(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
    });
    row.map(key_from_row).transpose()
}

/// Every key (of one tenant, or all), oldest first.
pub(crate) async fn keys(tx: &mut Tx, tenant: Option<&str>) -> Result<Vec<KeyRecord>, ControlError> {
    let rows: Vec<KeyRow> = crate::on!(tx, conn => {
        sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE ($1 IS NULL OR tenant = $1) ORDER BY created_at, id"
        ))
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?
    });
    rows.into_iter().map(key_from_row).collect()
}

/// Marks a key revoked (keeps the first revocation time).
pub(crate) async fn revoke_key(tx: &mut Tx, id: &str, at: chrono::DateTime<chrono::Utc>) -> Result<(), ControlError> {
    crate::on!(tx, conn => {
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(time_text(at))
            .execute(&mut *conn)
            .await?;
    });
    Ok(())
}

type SettingsRow = (
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn settings_from_row(row: SettingsRow) -> Result<(String, TenantSettings), ControlError> {
    let (tenant, cap, elevation, diagnostic, approval, max_approval, request_expiry) = row;
    let days = |d: Option<i64>| d.map(|d| u32::try_from(d).unwrap_or(u32::MAX));
    let reporting_cap = ReportingLevel::parse(&cap)
        .map_err(|e| ControlError::Corrupt(format!("reporting cap of tenant {tenant}: {e}")))?;
    Ok((
        tenant,
        TenantSettings {
            reporting_cap,
            elevation_retention_days: days(elevation),
            diagnostic_retention_days: days(diagnostic),
            approval_hours: days(approval),
            max_approval_hours: days(max_approval),
            request_expiry_hours: days(request_expiry),
        },
    ))
}

/// Settings of every tenant that has any (one tenant with `Some`).
pub(crate) async fn settings(
    tx: &mut Tx,
    tenant: Option<&str>,
) -> Result<BTreeMap<String, TenantSettings>, ControlError> {
    let rows: Vec<SettingsRow> = crate::on!(tx, conn => {
        sqlx::query_as(
            "SELECT tenant, reporting_cap, elevation_retention_days, diagnostic_retention_days, \
             approval_hours, max_approval_hours, request_expiry_hours FROM tenant_settings WHERE ($1 IS NULL OR tenant = $1)",
        )
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?
    });
    rows.into_iter().map(settings_from_row).collect()
}

/// Stores a tenant's settings; with `replace` false an existing row is kept.
pub(crate) async fn put_settings(
    tx: &mut Tx,
    tenant: &str,
    settings: &TenantSettings,
    replace: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, ControlError> {
    let conflict = if replace {
        "DO UPDATE SET reporting_cap = excluded.reporting_cap, elevation_retention_days = excluded.elevation_retention_days, \
         diagnostic_retention_days = excluded.diagnostic_retention_days, approval_hours = excluded.approval_hours, \
         max_approval_hours = excluded.max_approval_hours, request_expiry_hours = excluded.request_expiry_hours, \
         updated_at = excluded.updated_at"
    } else {
        "DO NOTHING"
    };
    let done = crate::on!(tx, conn => {
        sqlx::query(&format!(
            "INSERT INTO tenant_settings (tenant, reporting_cap, elevation_retention_days, diagnostic_retention_days, \
             approval_hours, max_approval_hours, request_expiry_hours, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant) {conflict}"
        ))
        .bind(tenant)
        .bind(settings.reporting_cap.as_str())
        .bind(settings.elevation_retention_days.map(i64::from))
        .bind(settings.diagnostic_retention_days.map(i64::from))
        .bind(settings.approval_hours.map(i64::from))
        .bind(settings.max_approval_hours.map(i64::from))
        .bind(settings.request_expiry_hours.map(i64::from))
        .bind(time_text(at))
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// A tenant's imported rules policies, by name.
pub(crate) async fn policies(tx: &mut Tx, tenant: &str) -> Result<Vec<RulesPolicy>, ControlError> {
    let rows: Vec<(String, String)> = crate::on!(tx, conn => {
        sqlx::query_as("SELECT name, policy FROM rules_policies WHERE tenant = $1 ORDER BY name")
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await?
    });
    rows.into_iter()
        .map(|(name, json)| {
            serde_json::from_str(&json).map_err(|e| ControlError::Corrupt(format!("rules policy {name:?}: {e}")))
        })
        .collect()
}

/// Stores a policy under its name; with `replace` false an existing one is kept. Returns
/// whether a row was written.
pub(crate) async fn put_policy(
    tx: &mut Tx,
    tenant: &str,
    policy: &RulesPolicy,
    replace: bool,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, ControlError> {
    let json = serde_json::to_string(policy).expect("plain data serialises");
    let conflict = if replace {
        "DO UPDATE SET policy = excluded.policy, imported_at = excluded.imported_at"
    } else {
        "DO NOTHING"
    };
    let done = crate::on!(tx, conn => {
        sqlx::query(&format!(
            "INSERT INTO rules_policies (tenant, name, policy, imported_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, name) {conflict}"
        ))
        .bind(tenant)
        .bind(&policy.name)
        .bind(&json)
        .bind(time_text(at))
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}
