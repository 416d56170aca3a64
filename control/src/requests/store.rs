//! The SQL of elevation requests: one function per statement, on either backend. A row has
//! more columns than sqlx reads into a tuple, so rows are read by position with [`read_row`].

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{ApplicationDetail, ElevationRequest, RequestFilter, RequestStatus};
use crate::ControlError;
use crate::store::{Tx, parse_time, time_text};

const COLUMNS: &str = "id, tenant, client_request_id, device_id, device_name, requested_by_upn, \
    request_justification, file_hash, file_name, application_detail, status, created_at, last_modified_at, \
    request_expiry_at, reviewed_by_upn, reviewed_by_key_id, reviewed_at, reviewer_justification, \
    approval_expiry_at, revoked_by_upn, revoked_at, revoke_justification, first_used_at, last_used_at, version";

/// The state a row is in at `$1` (the time of the read): what was decided, or what the times
/// make of it. The one place the time-driven transitions are written in SQL; [`Stored::status`]
/// is its twin in Rust.
const STATUS_AT: &str = "CASE \
    WHEN status = 'pending' AND request_expiry_at <= $1 THEN 'expired' \
    WHEN status = 'approved' AND approval_expiry_at <= $1 AND first_used_at IS NOT NULL THEN 'completed' \
    WHEN status = 'approved' AND approval_expiry_at <= $1 THEN 'expired' \
    ELSE status END";

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) client_request_id: String,
    pub(crate) device_id: String,
    pub(crate) device_name: String,
    pub(crate) requested_by_upn: String,
    pub(crate) request_justification: String,
    pub(crate) application: ApplicationDetail,
    /// What was decided: pending, approved, denied, revoked or cancelled.
    pub(crate) decided: RequestStatus,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) last_modified_at: DateTime<Utc>,
    pub(crate) request_expiry_at: DateTime<Utc>,
    pub(crate) reviewed_by_upn: Option<String>,
    pub(crate) reviewed_by_key_id: Option<String>,
    pub(crate) reviewed_at: Option<DateTime<Utc>>,
    pub(crate) reviewer_justification: Option<String>,
    pub(crate) approval_expiry_at: Option<DateTime<Utc>>,
    pub(crate) revoked_by_upn: Option<String>,
    pub(crate) revoked_at: Option<DateTime<Utc>>,
    pub(crate) revoke_justification: Option<String>,
    pub(crate) first_used_at: Option<DateTime<Utc>>,
    pub(crate) last_used_at: Option<DateTime<Utc>>,
    pub(crate) version: i64,
}

impl Stored {
    /// The state at `now` (see [`STATUS_AT`]).
    pub(crate) fn status(&self, now: DateTime<Utc>) -> RequestStatus {
        match self.decided {
            RequestStatus::Pending if self.request_expiry_at <= now => RequestStatus::Expired,
            RequestStatus::Approved if self.approval_expiry_at.is_some_and(|end| end <= now) => {
                if self.first_used_at.is_some() {
                    RequestStatus::Completed
                } else {
                    RequestStatus::Expired
                }
            }
            decided => decided,
        }
    }

    /// The request as the APIs show it at `now`.
    pub(crate) fn view(&self, now: DateTime<Utc>) -> ElevationRequest {
        ElevationRequest {
            id: self.id.clone(),
            request_id: self.client_request_id.clone(),
            requested_by_user_principal_name: self.requested_by_upn.clone(),
            requested_on_device_id: self.device_id.clone(),
            device_name: self.device_name.clone(),
            request_created_date_time: self.created_at,
            request_last_modified_date_time: self.last_modified_at,
            request_justification: self.request_justification.clone(),
            application_detail: self.application.clone(),
            status: self.status(now),
            review_completed_by_user_principal_name: self.reviewed_by_upn.clone().unwrap_or_default(),
            review_completed_date_time: self.reviewed_at,
            reviewer_justification: self.reviewer_justification.clone().unwrap_or_default(),
            request_expiry_date_time: self.request_expiry_at,
            approval_expiry_date_time: self.approval_expiry_at,
            revoked_by_user_principal_name: self.revoked_by_upn.clone(),
            revoked_date_time: self.revoked_at,
            revoke_justification: self.revoke_justification.clone(),
            first_used_date_time: self.first_used_at,
            last_used_date_time: self.last_used_at,
        }
    }
}

/// Reads one row of [`COLUMNS`] from either backend.
fn read_row<R>(row: &R) -> Result<Stored, ControlError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let text = |i: usize| row.try_get::<String, _>(i).map_err(ControlError::from);
    let maybe = |i: usize| row.try_get::<Option<String>, _>(i).map_err(ControlError::from);
    let time = |i: usize| text(i).and_then(|t| parse_time(&t));
    let maybe_time = |i: usize| maybe(i).and_then(|t| t.as_deref().map(parse_time).transpose());
    let id = text(0)?;
    let application = serde_json::from_str(&text(9)?)
        .map_err(|e| ControlError::Corrupt(format!("application detail of request {id}: {e}")))?;
    Ok(Stored {
        tenant: text(1)?,
        client_request_id: text(2)?,
        device_id: text(3)?,
        device_name: text(4)?,
        requested_by_upn: text(5)?,
        request_justification: text(6)?,
        application,
        decided: RequestStatus::parse(&text(10)?).map_err(|e| ControlError::Corrupt(format!("request {id}: {e}")))?,
        created_at: time(11)?,
        last_modified_at: time(12)?,
        request_expiry_at: time(13)?,
        reviewed_by_upn: maybe(14)?,
        reviewed_by_key_id: maybe(15)?,
        reviewed_at: maybe_time(16)?,
        reviewer_justification: maybe(17)?,
        approval_expiry_at: maybe_time(18)?,
        revoked_by_upn: maybe(19)?,
        revoked_at: maybe_time(20)?,
        revoke_justification: maybe(21)?,
        first_used_at: maybe_time(22)?,
        last_used_at: maybe_time(23)?,
        version: row.try_get::<i64, _>(24)?,
        id,
    })
}

/// Stores a new request; `false` when the device sent this `requestId` before (nothing changed).
pub(crate) async fn insert(tx: &mut Tx, r: &Stored) -> Result<bool, ControlError> {
    let application = serde_json::to_string(&r.application).expect("plain data serialises");
    let done = crate::on!(tx, conn => {
        sqlx::query(&format!(
            "INSERT INTO elevation_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1) \
             ON CONFLICT (tenant, device_id, client_request_id) DO NOTHING"
        ))
        .bind(&r.id)
        .bind(&r.tenant)
        .bind(&r.client_request_id)
        .bind(&r.device_id)
        .bind(&r.device_name)
        .bind(&r.requested_by_upn)
        .bind(&r.request_justification)
        .bind(&r.application.file_hash)
        .bind(&r.application.file_name)
        .bind(&application)
        .bind(r.decided.as_str())
        .bind(time_text(r.created_at))
        .bind(time_text(r.last_modified_at))
        .bind(time_text(r.request_expiry_at))
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// One request of a tenant by id.
pub(crate) async fn by_id(tx: &mut Tx, tenant: &str, id: &str) -> Result<Option<Stored>, ControlError> {
    crate::on!(tx, conn => {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM elevation_requests WHERE tenant = $1 AND id = $2"))
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(read_row).transpose()
    })
}

/// The request a device sent under its own `requestId`.
pub(crate) async fn by_client_id(
    tx: &mut Tx,
    tenant: &str,
    device_id: &str,
    client_request_id: &str,
) -> Result<Option<Stored>, ControlError> {
    crate::on!(tx, conn => {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM elevation_requests WHERE tenant = $1 AND device_id = $2 AND client_request_id = $3"
        ))
        .bind(tenant)
        .bind(device_id)
        .bind(client_request_id)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(read_row).transpose()
    })
}

/// How many requests of a tenant (of one device, with `Some`) wait for a decision at `now`.
pub(crate) async fn pending_count(
    tx: &mut Tx,
    tenant: &str,
    device_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64, ControlError> {
    let (count,): (i64,) = crate::on!(tx, conn => {
        sqlx::query_as(
            "SELECT COUNT(*) FROM elevation_requests WHERE tenant = $1 AND ($2 IS NULL OR device_id = $2) \
             AND status = 'pending' AND request_expiry_at > $3",
        )
        .bind(tenant)
        .bind(device_id)
        .bind(time_text(now))
        .fetch_one(&mut *conn)
        .await?
    });
    Ok(count)
}

/// A tenant's requests matching `filter` at `now`, newest first.
pub(crate) async fn list(
    tx: &mut Tx,
    tenant: &str,
    filter: &RequestFilter,
    now: DateTime<Utc>,
) -> Result<Vec<Stored>, ControlError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM elevation_requests WHERE tenant = $2 \
         AND ($3 IS NULL OR ({STATUS_AT}) = $3) \
         AND ($4 IS NULL OR lower(requested_by_upn) = lower($4)) \
         AND ($5 IS NULL OR device_id = $5 OR device_name = $5) \
         AND ($6 IS NULL OR file_hash = lower($6) OR lower(file_name) = lower($6)) \
         AND ($7 IS NULL OR created_at >= $7) AND ($8 IS NULL OR created_at < $8) \
         ORDER BY created_at DESC, id LIMIT $9 OFFSET $10"
    );
    crate::on!(tx, conn => {
        let rows = sqlx::query(&sql)
            .bind(time_text(now))
            .bind(tenant)
            .bind(filter.status.map(RequestStatus::as_str))
            .bind(filter.user.as_deref())
            .bind(filter.device.as_deref())
            .bind(filter.file.as_deref())
            .bind(filter.from.map(time_text))
            .bind(filter.to.map(time_text))
            .bind(filter.limit.unwrap_or(1000))
            .bind(filter.offset.unwrap_or(0))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(read_row).collect()
    })
}

/// A device's requests that are approved and open at `now`, or that changed state (decided,
/// revoked, expired by time) at or after `since`: a change at the very instant of the device's
/// last answer is sent again rather than missed (the device knows requests by id).
pub(crate) async fn of_device(
    tx: &mut Tx,
    tenant: &str,
    device_id: &str,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Vec<Stored>, ControlError> {
    let since = since.map(time_text).unwrap_or_default();
    crate::on!(tx, conn => {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM elevation_requests WHERE tenant = $2 AND device_id = $3 AND ( \
             (status = 'approved' AND approval_expiry_at > $1) \
             OR last_modified_at >= $4 \
             OR (status = 'pending' AND request_expiry_at >= $4 AND request_expiry_at <= $1) \
             OR (status = 'approved' AND approval_expiry_at >= $4 AND approval_expiry_at <= $1)) \
             ORDER BY last_modified_at, id"
        ))
        .bind(time_text(now))
        .bind(tenant)
        .bind(device_id)
        .bind(&since)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(read_row).collect()
    })
}

/// A tenant's requests created in `[from, to)`, oldest first (the numbers).
pub(crate) async fn created_between(
    tx: &mut Tx,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Stored>, ControlError> {
    crate::on!(tx, conn => {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM elevation_requests WHERE tenant = $1 AND created_at >= $2 AND created_at < $3 \
             ORDER BY created_at, id"
        ))
        .bind(tenant)
        .bind(time_text(from))
        .bind(time_text(to))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(read_row).collect()
    })
}

/// Writes a transition if the row is still at `expected_version` — the compare-and-set.
/// Returns whether it was written.
pub(crate) async fn write_transition(tx: &mut Tx, next: &Stored, expected_version: i64) -> Result<bool, ControlError> {
    let done = crate::on!(tx, conn => {
        sqlx::query(
            "UPDATE elevation_requests SET status = $3, last_modified_at = $4, reviewed_by_upn = $5, \
             reviewed_by_key_id = $6, reviewed_at = $7, reviewer_justification = $8, approval_expiry_at = $9, \
             revoked_by_upn = $10, revoked_at = $11, revoke_justification = $12, version = version + 1 \
             WHERE id = $1 AND version = $2",
        )
        .bind(&next.id)
        .bind(expected_version)
        .bind(next.decided.as_str())
        .bind(time_text(next.last_modified_at))
        .bind(&next.reviewed_by_upn)
        .bind(&next.reviewed_by_key_id)
        .bind(next.reviewed_at.map(time_text))
        .bind(&next.reviewer_justification)
        .bind(next.approval_expiry_at.map(time_text))
        .bind(&next.revoked_by_upn)
        .bind(next.revoked_at.map(time_text))
        .bind(&next.revoke_justification)
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Records that the device ran the file under an approval at `at`: the approval must have been
/// open then. Idempotent: a batch replayed after a crash moves neither time. Returns the ids
/// of the requests it touched.
pub(crate) async fn record_use(
    tx: &mut Tx,
    tenant: &str,
    device_id: &str,
    upn: &str,
    file_hash: &str,
    at: DateTime<Utc>,
) -> Result<u64, ControlError> {
    let at = time_text(at);
    let done = crate::on!(tx, conn => {
        sqlx::query(
            "UPDATE elevation_requests SET \
             first_used_at = CASE WHEN first_used_at IS NULL OR first_used_at > $5 THEN $5 ELSE first_used_at END, \
             last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $5 THEN $5 ELSE last_used_at END \
             WHERE tenant = $1 AND device_id = $2 AND lower(requested_by_upn) = lower($3) AND file_hash = lower($4) \
             AND reviewed_at <= $5 AND approval_expiry_at > $5 \
             AND (status = 'approved' OR (status = 'revoked' AND revoked_at > $5))",
        )
        .bind(tenant)
        .bind(device_id)
        .bind(upn)
        .bind(file_hash)
        .bind(&at)
        .execute(&mut *conn)
        .await?
        .rows_affected()
    });
    Ok(done)
}

/// How many approvals of a device could cover a use between `first` and `last` (given before
/// `last`, open after `first`).
pub(crate) async fn approvals_covering(
    tx: &mut Tx,
    tenant: &str,
    device_id: &str,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Result<i64, ControlError> {
    let (count,): (i64,) = crate::on!(tx, conn => {
        sqlx::query_as(
            "SELECT COUNT(*) FROM elevation_requests WHERE tenant = $1 AND device_id = $2 \
             AND status IN ('approved', 'revoked') AND reviewed_at <= $4 AND approval_expiry_at > $3",
        )
        .bind(tenant)
        .bind(device_id)
        .bind(time_text(first))
        .bind(time_text(last))
        .fetch_one(&mut *conn)
        .await?
    });
    Ok(count)
}

/// Self-approval refusals of a tenant recorded in `[from, to)`.
pub(crate) async fn self_approval_attempts(
    tx: &mut Tx,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<i64, ControlError> {
    let (count,): (i64,) = crate::on!(tx, conn => {
        sqlx::query_as(
            "SELECT COUNT(*) FROM audit_events WHERE tenant = $1 AND activity = $2 \
             AND activity_date_time >= $3 AND activity_date_time < $4",
        )
        .bind(tenant)
        .bind(super::ops::SELF_APPROVAL_ACTIVITY)
        .bind(time_text(from))
        .bind(time_text(to))
        .fetch_one(&mut *conn)
        .await?
    });
    Ok(count)
}
