//! The `diagnostics` report: how many devices last reported at each level, the diagnostic
//! error codes, and the devices gone silent or reporting below the tenant's cap. A device's
//! last event comes from `daily_devices` for whole current days, the raw elevations for the
//! rest, and its diagnostic events.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::prelude::{SessionContext, ident, lit};
use warehouse::{ReportingLevel, Table};

use crate::QueryError;
use crate::days::{Split, rollup_and_raw};
use crate::reports::{Cell, Report, asc, collect, desc, in_window};
use crate::request::{DiagnosticKind, Filters, ReportRequest};

/// Fills `report` with the rows of `diagnostics`: `reportingDevices` per level, `errorCode`
/// counts, then `silentDevice` and `belowCap` devices; those of `kind` alone when it is given,
/// the page `limit` and `offset` ask for.
pub(crate) async fn diagnostics(
    ctx: &SessionContext,
    raw: &warehouse::deltalake::DeltaTable,
    request: &ReportRequest,
    report: &mut Report,
) -> Result<(), QueryError> {
    report.columns = ["kind", "level", "errorCode", "deviceName", "lastSeen", "count"]
        .map(String::from)
        .to_vec();
    let device_filter = |frame: DataFrame| -> Result<DataFrame, QueryError> {
        Ok(match &request.filters.device_name {
            Some(name) => frame.filter(ident("deviceName").eq(lit(name.as_str())))?,
            None => frame,
        })
    };
    // Per device and level, the last event: elevations of whole days from `daily_devices`
    // while current, the rest from the raw rows; diagnostics from their table.
    let last_seen = |frame: DataFrame, instant: &str| -> Result<DataFrame, QueryError> {
        Ok(frame.aggregate(
            vec![ident("deviceName"), ident("reportingLevel")],
            vec![max(ident(instant)).alias("lastSeen")],
        )?)
    };
    let elevation_activity = ReportRequest {
        filters: Filters {
            device_name: request.filters.device_name.clone(),
            ..Filters::default()
        },
        ..request.clone()
    };
    let answerable = elevation_activity.filters.clone();
    let Split { rolled, raw: raw_rows } = rollup_and_raw(
        ctx,
        raw,
        Table::DailyDevices,
        &elevation_activity,
        answerable,
        &mut report.coverage,
    )
    .await?;
    let diagnostic_events = device_filter(in_window(ctx, Table::Diagnostics, request).await?)?;
    let errors = diagnostic_events
        .clone()
        .filter(ident("errorCode").not_eq(lit(0i64)))?
        .aggregate(vec![ident("errorCode")], vec![count(lit(1)).alias("count")])?
        .sort(vec![desc("count"), asc("errorCode")])?;
    // The four answers are independent: read at once, their files' openings and decoding
    // overlap.
    let rolled = async {
        match rolled {
            Some(rolled) => Ok(collect(last_seen(rolled, "lastSeen")?).await?.1),
            None => Ok::<_, QueryError>(Vec::new()),
        }
    };
    let (raw_seen, rolled_seen, diagnostics_seen, errors) = tokio::try_join!(
        async { Ok::<_, QueryError>(collect(last_seen(raw_rows, "eventDateTime")?).await?.1) },
        rolled,
        async { Ok::<_, QueryError>(collect(last_seen(diagnostic_events, "eventDateTime")?).await?.1) },
        async { Ok::<_, QueryError>(collect(errors).await?.1) },
    )?;
    let seen = raw_seen.into_iter().chain(rolled_seen).chain(diagnostics_seen);
    // Per device: its last event, and the level it reported that event under.
    let mut devices: BTreeMap<String, (DateTime<Utc>, String)> = BTreeMap::new();
    for row in seen {
        let (Some(name), Some(level), Cell::Time(at)) = (row[0].as_text(), row[1].as_text(), &row[2]) else {
            continue;
        };
        let entry = devices.entry(name.to_owned()).or_insert((*at, level.to_owned()));
        if *at > entry.0 {
            *entry = (*at, level.to_owned());
        }
    }
    let mut per_level: BTreeMap<ReportingLevel, i64> = BTreeMap::new();
    let mut below = Vec::new();
    let mut silent = Vec::new();
    let silent_before = request.to - Duration::days(i64::from(request.silent_days));
    for (name, (last, level_text)) in &devices {
        let level = ReportingLevel::parse(level_text).unwrap_or(ReportingLevel::None);
        *per_level.entry(level).or_default() += 1;
        if level < request.reporting_cap {
            below.push((name, level_text, last));
        }
        if *last < silent_before {
            silent.push((name, level_text, last));
        }
    }
    let text = |s: &str| Cell::Text(s.to_owned());
    let mut rows = Vec::new();
    for (level, n) in per_level.into_iter().rev() {
        rows.push(vec![
            text(DiagnosticKind::ReportingDevices.as_str()),
            text(level.as_str()),
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Int(n),
        ]);
    }
    for row in errors {
        rows.push(vec![
            text(DiagnosticKind::ErrorCode.as_str()),
            Cell::Null,
            row[0].clone(),
            Cell::Null,
            Cell::Null,
            row[1].clone(),
        ]);
    }
    for (kind, list) in [
        (DiagnosticKind::SilentDevice, silent),
        (DiagnosticKind::BelowCap, below),
    ] {
        for (name, level, last) in list {
            rows.push(vec![
                text(kind.as_str()),
                text(level),
                Cell::Null,
                text(name),
                Cell::Time(*last),
                Cell::Null,
            ]);
        }
    }
    let wanted = request.kind.map(DiagnosticKind::as_str);
    let kept = rows
        .into_iter()
        .filter(|row| wanted.is_none() || row[0].as_text() == wanted);
    report.rows = request.page(kept).collect();
    Ok(())
}
