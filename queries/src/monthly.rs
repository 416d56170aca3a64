//! The `compliance` report: per calendar month (UTC) of the window, progress toward removing
//! local administrator rights — the share of users with unmanaged elevations, of elevations
//! that were managed, and of devices that reported at `all` for the whole month (the devices
//! whose unmanaged elevations are evidenced at all).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::error::DataFusionError;
use datafusion::functions::datetime::expr_fn::date_trunc;
use datafusion::functions_aggregate::expr_fn::{bool_and, count, sum};
use datafusion::prelude::{SessionContext, ident, lit};
use warehouse::{ReportingLevel, Table};

use crate::QueryError;
use crate::reports::{Cell, Report, tenant_window};
use crate::request::ReportRequest;

/// The report's columns.
pub(crate) const COLUMNS: [&str; 10] = [
    "month",
    "users",
    "usersWithUnmanaged",
    "usersWithUnmanagedPercent",
    "elevations",
    "managed",
    "managedPercent",
    "devices",
    "devicesAtAll",
    "devicesAtAllPercent",
];

#[derive(Debug, Default, Clone, Copy)]
struct Month {
    users: i64,
    users_unmanaged: i64,
    elevations: i64,
    managed: i64,
    devices: i64,
    devices_at_all: i64,
}

fn month_of(at: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(at.year(), at.month(), 1).expect("the first of a month exists")
}

fn months(column: &ArrayRef) -> Result<Vec<Option<NaiveDate>>, QueryError> {
    let column =
        cast(column, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))).map_err(DataFusionError::from)?;
    let column = column.as_primitive::<TimestampMicrosecondType>();
    Ok((0..column.len())
        .map(|i| {
            (!column.is_null(i))
                .then(|| DateTime::from_timestamp_micros(column.value(i)).map(month_of))
                .flatten()
        })
        .collect())
}

fn int64(column: &ArrayRef) -> Result<ArrayRef, QueryError> {
    Ok(cast(column, &DataType::Int64).map_err(DataFusionError::from)?)
}

/// Fills `report` with one row per month of the request's window.
pub(crate) async fn compliance(
    ctx: &SessionContext,
    request: &ReportRequest,
    report: &mut Report,
) -> Result<(), QueryError> {
    let (tenant, from, to) = (request.tenant.as_str(), request.from, request.to);
    let mut by_month: BTreeMap<NaiveDate, Month> = BTreeMap::new();
    let mut month = month_of(from);
    while month <= month_of(to - Duration::microseconds(1)) {
        by_month.insert(month, Month::default());
        month = month
            .checked_add_months(chrono::Months::new(1))
            .expect("a later month exists");
    }
    let month_expr = || date_trunc(lit("month"), ident("eventDateTime")).alias("month");
    let unmanaged =
        datafusion::logical_expr::cast(ident("elevationType").eq(lit("unmanagedElevation")), DataType::Int64);
    let users = tenant_window(ctx, Table::Elevations, tenant, from, to)
        .await?
        .aggregate(
            vec![month_expr(), ident("upn")],
            vec![count(lit(1)).alias("n"), sum(unmanaged).alias("unmanaged")],
        )?
        .collect()
        .await?;
    for batch in &users {
        let month = months(batch.column(0))?;
        let n = int64(batch.column(2))?;
        let n = n.as_primitive::<Int64Type>();
        let u = int64(batch.column(3))?;
        let u = u.as_primitive::<Int64Type>();
        for (row, month) in month.iter().enumerate() {
            let Some(entry) = month.and_then(|m| by_month.get_mut(&m)) else {
                continue;
            };
            entry.users += 1;
            entry.users_unmanaged += i64::from(u.value(row) > 0);
            entry.elevations += n.value(row);
            entry.managed += n.value(row) - u.value(row);
        }
    }
    // A device is at `all` for a month when every event it sent that month, elevation or
    // diagnostic, was accepted at `all`.
    let mut devices: BTreeMap<(NaiveDate, String), bool> = BTreeMap::new();
    for table in [Table::Elevations, Table::Diagnostics] {
        let at_all = ident("reportingLevel").eq(lit(ReportingLevel::All.as_str()));
        let batches = tenant_window(ctx, table, tenant, from, to)
            .await?
            .aggregate(
                vec![month_expr(), ident("deviceId")],
                vec![bool_and(at_all).alias("atAll")],
            )?
            .collect()
            .await?;
        for batch in &batches {
            let month = months(batch.column(0))?;
            let ids = cast(batch.column(1), &DataType::Utf8).map_err(DataFusionError::from)?;
            let ids = ids.as_string::<i32>();
            let flags = batch.column(2).as_boolean();
            for row in 0..batch.num_rows() {
                let Some(month) = month[row] else { continue };
                let flag = !flags.is_null(row) && flags.value(row);
                let slot = devices.entry((month, ids.value(row).to_owned())).or_insert(true);
                *slot &= flag;
            }
        }
    }
    for ((month, _), at_all) in devices {
        if let Some(entry) = by_month.get_mut(&month) {
            entry.devices += 1;
            entry.devices_at_all += i64::from(at_all);
        }
    }
    report.columns = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    report.rows = by_month
        .into_iter()
        .map(|(month, m)| {
            vec![
                Cell::Date(month),
                Cell::Int(m.users),
                Cell::Int(m.users_unmanaged),
                percent(m.users_unmanaged, m.users),
                Cell::Int(m.elevations),
                Cell::Int(m.managed),
                percent(m.managed, m.elevations),
                Cell::Int(m.devices),
                Cell::Int(m.devices_at_all),
                percent(m.devices_at_all, m.devices),
            ]
        })
        .collect();
    Ok(())
}

/// A share as a percentage with one decimal, as text (null when there is nothing to share).
fn percent(part: i64, whole: i64) -> Cell {
    if whole == 0 {
        return Cell::Null;
    }
    Cell::Text(format!("{:.1}", 100.0 * part as f64 / whole as f64))
}
