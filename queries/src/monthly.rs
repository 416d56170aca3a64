//! The `compliance` report: per calendar month (UTC) of the window, progress toward removing
//! local administrator rights — the share of users with unmanaged elevations, of elevations
//! that were managed, and of devices that reported at `all` for the whole month (the devices
//! whose unmanaged elevations are evidenced at all).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::bool_and;
use datafusion::prelude::{SessionContext, ident, lit};
use futures::{StreamExt, TryStreamExt};
use warehouse::columns::{column, text};
use warehouse::deltalake::DeltaTable;
use warehouse::{ReportingLevel, Table};

use crate::QueryError;
use crate::days::{Coverage, rollup_and_raw};
use crate::reports::{Cell, Report, Subject, per_subject_counts, tenant_window};
use crate::request::{Filters, ReportRequest};

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
    raw: &DeltaTable,
    request: &ReportRequest,
    report: &mut Report,
) -> Result<(), QueryError> {
    let (from, to) = (request.from, request.to);
    let mut by_month: BTreeMap<NaiveDate, Month> = BTreeMap::new();
    let mut month = month_of(from);
    while month <= month_of(to - Duration::microseconds(1)) {
        by_month.insert(month, Month::default());
        month = month
            .checked_add_months(chrono::Months::new(1))
            .expect("a later month exists");
    }
    // Month by month, each read from its own days only, so no row's month is computed; a few
    // months at once, so one month's scans overlap another's merging (a year's window does not
    // start sixty scans together).
    let midnight = |day: NaiveDate| day.and_time(chrono::NaiveTime::MIN).and_utc();
    let mut months = Vec::new();
    for (&month, figures) in by_month.iter_mut() {
        let next = month
            .checked_add_months(chrono::Months::new(1))
            .expect("a later month exists");
        let part = ReportRequest {
            from: from.max(midnight(month)),
            to: to.min(midnight(next)),
            ..request.clone()
        };
        let mut coverage = report.coverage.clone();
        months.push(async move {
            tally_month(ctx, raw, &part, &mut coverage, figures).await?;
            Ok::<_, QueryError>(coverage)
        });
    }
    let parts: Vec<Coverage> = futures::stream::iter(months).buffer_unordered(3).try_collect().await?;
    for coverage in parts {
        report.coverage.absorb(coverage);
    }
    report.columns = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    report.rows = request
        .page(by_month)
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

/// One month's figures from its elevations and diagnostics in the window of `month_request`.
///
/// Whole days whose `daily_users` and `daily_devices` rows are current come from those
/// rollups (a row per user, or device and level, a day instead of every event), every other
/// day from the raw rows; the diagnostics, a tenth of the events, always from their raw rows.
/// A device is at `all` for the month when every event it sent, elevation or diagnostic, was
/// accepted at `all`. The users' figures are `by-user`'s per-user counts; the four answers
/// are independent and read at once.
async fn tally_month(
    ctx: &SessionContext,
    raw: &DeltaTable,
    month_request: &ReportRequest,
    coverage: &mut Coverage,
    month: &mut Month,
) -> Result<(), QueryError> {
    // Each part records the closed days it serves in its own coverage: a closed day counts as
    // served only when both rollups held it (`daily_devices` came after `daily_users`).
    let (mut users_coverage, mut devices_coverage) = (coverage.clone(), coverage.clone());
    let devices = rollup_and_raw(
        ctx,
        raw,
        Table::DailyDevices,
        month_request,
        Filters::default(),
        &mut devices_coverage,
    )
    .await?;
    let at_all = || bool_and(ident("reportingLevel").eq(lit(ReportingLevel::All.as_str()))).alias("atAll");
    // Per device id and name: rows a release before `deviceId` wrote survive only for closed
    // days (every other day's are recomputed), and [`Devices`] finds their ids by name.
    let device = || vec![ident("deviceId"), ident("deviceName")];
    let rolled_devices = devices
        .rolled
        .map(|rolled| rolled.aggregate(device(), vec![at_all()]))
        .transpose()?;
    let raw_devices = devices.raw.aggregate(device(), vec![at_all()])?;
    let diagnostics = tenant_window(
        ctx,
        Table::Diagnostics,
        &month_request.tenant,
        month_request.from,
        month_request.to,
    )
    .await?
    .aggregate(device(), vec![at_all()])?;
    let maybe = |frame: Option<DataFrame>| async move {
        match frame {
            Some(frame) => Ok(frame.collect().await?),
            None => Ok(Vec::new()),
        }
    };
    // The users' figures are `by-user`'s managed, unmanaged and total per user.
    let (per_user, rolled_devices, raw_devices, diagnostics) = tokio::try_join!(
        per_subject_counts(ctx, raw, month_request, Subject::User, &mut users_coverage),
        maybe(rolled_devices),
        async { Ok(raw_devices.collect().await?) },
        async { Ok::<_, QueryError>(diagnostics.collect().await?) },
    )?;
    coverage.absorb_common(users_coverage, devices_coverage);
    month.users = per_user.len() as i64;
    for [managed, unmanaged, total] in per_user.into_values() {
        month.users_unmanaged += i64::from(unmanaged > 0);
        month.elevations += total;
        month.managed += managed;
    }
    let arrow = DataFusionError::from;
    let mut devices = Devices::default();
    for batch in rolled_devices.iter().chain(&raw_devices).chain(&diagnostics) {
        let (ids, names) = (
            text(batch, "deviceId").map_err(arrow)?,
            text(batch, "deviceName").map_err(arrow)?,
        );
        let (ids, names) = (ids.as_string::<i32>(), names.as_string::<i32>());
        let flags = column(batch, "atAll").map_err(arrow)?.as_boolean();
        for row in 0..batch.num_rows() {
            let id = ids.is_valid(row).then(|| ids.value(row));
            devices.add(id, names.value(row), flags.is_valid(row) && flags.value(row));
        }
    }
    (month.devices, month.devices_at_all) = devices.counted();
    Ok(())
}

/// Each device of a month and whether every event it sent was at `all`, by device id. A row
/// without an id (a closed day's rollup row written before rows carried one) is the device of
/// that name whose id another row of the month gives, so a device is not counted twice; by
/// its name when no row does.
#[derive(Debug, Default)]
struct Devices {
    by_id: HashMap<String, bool>,
    id_of_name: HashMap<String, String>,
    without_id: Vec<(String, bool)>,
}

impl Devices {
    fn add(&mut self, id: Option<&str>, name: &str, at_all: bool) {
        match id {
            Some(id) => {
                *self.by_id.entry(id.to_owned()).or_insert(true) &= at_all;
                self.id_of_name.entry(name.to_owned()).or_insert_with(|| id.to_owned());
            }
            None => self.without_id.push((name.to_owned(), at_all)),
        }
    }

    /// Devices, and of those at `all`.
    fn counted(mut self) -> (i64, i64) {
        let mut by_name: HashMap<String, bool> = HashMap::new();
        for (name, at_all) in std::mem::take(&mut self.without_id) {
            match self.id_of_name.get(&name) {
                Some(id) => *self.by_id.entry(id.clone()).or_insert(true) &= at_all,
                None => *by_name.entry(name).or_insert(true) &= at_all,
            }
        }
        let every = self.by_id.values().chain(by_name.values());
        every.fold((0, 0), |(devices, at_all), &flag| {
            (devices + 1, at_all + i64::from(flag))
        })
    }
}

/// A share as a percentage with one decimal, as text (null when there is nothing to share).
fn percent(part: i64, whole: i64) -> Cell {
    if whole == 0 {
        return Cell::Null;
    }
    Cell::Text(format!("{:.1}", 100.0 * part as f64 / whole as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_known_by_name_on_an_old_closed_day_is_the_device_of_that_name_elsewhere() {
        let mut devices = Devices::default();
        // PC-1: an old closed day (no id) below `all`, and raw days with its id at `all`.
        devices.add(None, "PC-1", false);
        devices.add(Some("id-1"), "PC-1", true);
        // PC-2 only on the old day; PC-3 only with its id.
        devices.add(None, "PC-2", true);
        devices.add(Some("id-3"), "PC-3", true);
        devices.add(Some("id-3"), "PC-3", true);
        assert_eq!(devices.counted(), (3, 2));
    }
}
