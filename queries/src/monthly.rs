//! The `compliance` report: per calendar month (UTC) of the window, progress toward removing
//! local administrator rights — the share of users with unmanaged elevations, of elevations
//! that were managed, and of devices that reported at `all` for the whole month (the devices
//! whose unmanaged elevations are evidenced at all).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{bool_and, count, sum};
use datafusion::logical_expr::{Expr, GroupingSet};
use datafusion::prelude::{SessionContext, ident, lit};
use warehouse::suggestion_days::{column, int64, text};
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
    // Month by month, each read from its own days only, so no row's month is computed.
    let midnight = |day: NaiveDate| day.and_time(chrono::NaiveTime::MIN).and_utc();
    for (&month, figures) in by_month.iter_mut() {
        let next = month
            .checked_add_months(chrono::Months::new(1))
            .expect("a later month exists");
        tally_month(ctx, tenant, from.max(midnight(month)), to.min(midnight(next)), figures).await?;
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

/// One month's figures from its elevations and diagnostics in `[start, end)`.
///
/// The users' figures and the devices' levels come from one scan of the elevations, grouped
/// two ways at once (by user, by device): `upn` and `deviceId` are never null in the table, so
/// the null one of a row says which grouping the row is of. A device is at `all` for the month
/// when every event it sent, elevation or diagnostic, was accepted at `all`.
async fn tally_month(
    ctx: &SessionContext,
    tenant: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    month: &mut Month,
) -> Result<(), QueryError> {
    let at_all = || ident("reportingLevel").eq(lit(ReportingLevel::All.as_str()));
    let unmanaged =
        datafusion::logical_expr::cast(ident("elevationType").eq(lit("unmanagedElevation")), DataType::Int64);
    let by_user_and_by_device = Expr::GroupingSet(GroupingSet::GroupingSets(vec![
        vec![ident("upn")],
        vec![ident("deviceId")],
    ]));
    let elevations = tenant_window(ctx, Table::Elevations, tenant, start, end)
        .await?
        .aggregate(
            vec![by_user_and_by_device],
            vec![
                count(lit(1)).alias("n"),
                sum(unmanaged).alias("unmanaged"),
                bool_and(at_all()).alias("atAll"),
            ],
        )?
        .collect()
        .await?;
    let arrow = DataFusionError::from;
    let mut devices: HashMap<String, bool> = HashMap::new();
    for batch in &elevations {
        let (upns, ids) = (
            text(batch, "upn").map_err(arrow)?,
            text(batch, "deviceId").map_err(arrow)?,
        );
        let (upns, ids) = (upns.as_string::<i32>(), ids.as_string::<i32>());
        let (n, u) = (
            int64(batch, "n").map_err(arrow)?,
            int64(batch, "unmanaged").map_err(arrow)?,
        );
        let flags = column(batch, "atAll").map_err(arrow)?.as_boolean();
        for row in 0..batch.num_rows() {
            if upns.is_valid(row) {
                month.users += 1;
                month.users_unmanaged += i64::from(u.value(row) > 0);
                month.elevations += n.value(row);
                month.managed += n.value(row) - u.value(row);
            } else if ids.is_valid(row) {
                let flag = flags.is_valid(row) && flags.value(row);
                *devices.entry(ids.value(row).to_owned()).or_insert(true) &= flag;
            }
        }
    }
    let diagnostics = tenant_window(ctx, Table::Diagnostics, tenant, start, end)
        .await?
        .aggregate(vec![ident("deviceId")], vec![bool_and(at_all()).alias("atAll")])?
        .collect()
        .await?;
    for batch in &diagnostics {
        let ids = text(batch, "deviceId").map_err(arrow)?;
        let ids = ids.as_string::<i32>();
        let flags = column(batch, "atAll").map_err(arrow)?.as_boolean();
        for row in 0..batch.num_rows() {
            let flag = flags.is_valid(row) && flags.value(row);
            *devices.entry(ids.value(row).to_owned()).or_insert(true) &= flag;
        }
    }
    month.devices = devices.len() as i64;
    month.devices_at_all = devices.values().filter(|&&at_all| at_all).count() as i64;
    Ok(())
}

/// A share as a percentage with one decimal, as text (null when there is nothing to share).
fn percent(part: i64, whole: i64) -> Cell {
    if whole == 0 {
        return Cell::Null;
    }
    Cell::Text(format!("{:.1}", 100.0 * part as f64 / whole as f64))
}
