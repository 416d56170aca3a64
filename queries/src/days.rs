//! Where a report's days come from. The daily rollups answer whole days exactly while their
//! recorded `sourceFiles` equal the fingerprint of the day's raw files; the raw elevations
//! answer every other day. A day whose raw elevations retention has deleted is *closed*: it can
//! change no more, and its rollups (refreshed just before the deletion, see
//! `warehouse::maintenance::retention_all`) are its only record. Reports the rollups can answer
//! read closed days from them; every other answer names the closed days it could not include
//! ([`Coverage`]) instead of silently counting them as zero.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionContext, ident, lit};
use warehouse::Table;
use warehouse::deltalake::DeltaTable;
use warehouse::suggestion_days::ValueNumbers;
use warehouse::user_sets::{UserNumbers, pairs_of};

use crate::QueryError;
use crate::request::{Filters, ReportRequest};

/// The closed days of an answer's window, and which of them the answer includes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Days of the window whose raw elevations retention deleted (known from their rollups).
    closed: BTreeSet<NaiveDate>,
    /// Those of them the answer read from the rollups.
    served: BTreeSet<NaiveDate>,
}

/// Consecutive days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DaySpan {
    /// The first day.
    pub first: NaiveDate,
    /// The last day.
    pub last: NaiveDate,
}

impl Coverage {
    /// Starts with every closed day unavailable until a rollup serves it.
    pub(crate) fn of_closed(closed: BTreeSet<NaiveDate>) -> Coverage {
        Coverage {
            closed,
            served: BTreeSet::new(),
        }
    }

    /// Records the closed days another part of the same answer (computed with a clone of this
    /// coverage) served from the rollups.
    pub(crate) fn absorb(&mut self, part: Coverage) {
        self.served.extend(part.served);
    }

    /// Records the closed days both of two parts of one answer (each computed with a clone of
    /// this coverage) served from the rollups: a day only one of them held is not whole.
    pub(crate) fn absorb_common(&mut self, one: Coverage, other: Coverage) {
        self.served.extend(one.served.intersection(&other.served));
    }

    /// Closed days answered from the daily rollups.
    pub fn from_rollups(&self) -> BTreeSet<NaiveDate> {
        self.served.clone()
    }

    /// Closed days missing from the answer: event lists, reports the rollups cannot answer,
    /// filters the rollup does not hold, a closed day cut by the window's edge.
    pub fn unavailable(&self) -> BTreeSet<NaiveDate> {
        self.closed.difference(&self.served).copied().collect()
    }

    /// True when the window holds no closed day: the answer is the raw rows' answer.
    pub fn is_complete(&self) -> bool {
        self.closed.is_empty()
    }

    /// `{"fromRollups": [{first, last}…], "unavailable": [...]}`: consecutive days as spans.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "fromRollups": spans(&self.from_rollups()),
            "unavailable": spans(&self.unavailable()),
        })
    }

    /// The closed days as HTTP header values (ISO 8601 intervals `first/last`, comma
    /// separated): `(from rollups, unavailable)`, for answers whose body cannot say it (CSV).
    pub fn header_values(&self) -> (String, String) {
        let text = |days: &BTreeSet<NaiveDate>| {
            spans(days)
                .iter()
                .map(|s| format!("{}/{}", s.first, s.last))
                .collect::<Vec<_>>()
                .join(",")
        };
        (text(&self.from_rollups()), text(&self.unavailable()))
    }

    /// One sentence for people (tables on a terminal, pages), `None` when complete.
    pub fn describe(&self) -> Option<String> {
        if self.is_complete() {
            return None;
        }
        let list = |days: &BTreeSet<NaiveDate>| {
            spans(days)
                .iter()
                .map(|s| {
                    if s.first == s.last {
                        s.first.to_string()
                    } else {
                        format!("{} to {}", s.first, s.last)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        let (served, missing) = (self.from_rollups(), self.unavailable());
        if !served.is_empty() {
            parts.push(format!(
                "{} from the daily rollups (their raw events are past retention): {}",
                count(served.len()),
                list(&served)
            ));
        }
        if !missing.is_empty() {
            parts.push(format!(
                "{} not included: their raw events are past retention and this answer needs them: {}",
                count(missing.len()),
                list(&missing)
            ));
        }
        Some(parts.join("; "))
    }
}

fn count(days: usize) -> String {
    if days == 1 {
        "1 day".into()
    } else {
        format!("{days} days")
    }
}

/// Sorted days as runs of consecutive days.
pub fn spans(days: &BTreeSet<NaiveDate>) -> Vec<DaySpan> {
    let mut out: Vec<DaySpan> = Vec::new();
    for &day in days {
        match out.last_mut() {
            Some(span) if span.last + Duration::days(1) == day => span.last = day,
            _ => out.push(DaySpan { first: day, last: day }),
        }
    }
    out
}

/// The closed days among `from`'s to `to`'s (the window's days, partial ones included) of a
/// tenant: days with a rollup (`daily_counts` holds a row for every day with elevations) and no
/// raw file in `raw`. Retention deletes every day before its cut-off and uploads older than the
/// tenant's window are refused, so closed days all come before the tenant's first raw day: the
/// rollup is read only when the window starts before it.
pub(crate) async fn closed_days(
    ctx: &SessionContext,
    raw: &DeltaTable,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BTreeSet<NaiveDate>, QueryError> {
    let (first, last) = (from.date_naive(), (to - Duration::microseconds(1)).date_naive());
    if first > last {
        return Ok(BTreeSet::new());
    }
    let current = warehouse::rollups::partition_fingerprints(raw, Table::Elevations).await?;
    let first_raw = current.keys().filter(|(t, _)| t == tenant).map(|(_, date)| *date).min();
    let last_candidate = match first_raw {
        Some(day) if day <= first => return Ok(BTreeSet::new()),
        Some(day) => last.min(day - Duration::days(1)),
        None => last,
    };
    let recorded =
        warehouse::rollups::recorded_fingerprints(ctx, Table::DailyCounts, Some(tenant), Some((first, last_candidate)))
            .await?;
    Ok(recorded
        .into_keys()
        .filter(|key| !current.contains_key(key))
        .map(|(_, date)| date)
        .collect())
}

/// The numbers a tenant's rollup sets are made of: its users (`user_numbers`) and its device
/// ids, device names and folders (`value_numbers`), to number raw rows the same way.
pub(crate) async fn stored_numbers(
    ctx: &SessionContext,
    tenant: &str,
) -> Result<(UserNumbers, ValueNumbers), QueryError> {
    let of_tenant =
        |table: Table| async move { ctx.table(table.name()).await?.filter(ident("tenant").eq(lit(tenant))) };
    let stored = of_tenant(Table::UserNumbers)
        .await?
        .select(vec![ident("upn"), ident("number")])?
        .collect()
        .await?;
    let users = UserNumbers::from_pairs(pairs_of(&stored).map_err(DataFusionError::from)?);
    let stored = of_tenant(Table::ValueNumbers).await?.collect().await?;
    let values = ValueNumbers::from_batches(&stored).map_err(DataFusionError::from)?;
    Ok((users, values))
}

/// A request's rows split by where they are counted from.
pub(crate) struct Split {
    /// The rollup's rows for the whole days it answers, if any.
    pub(crate) rolled: Option<DataFrame>,
    /// The raw elevations of every other day.
    pub(crate) raw: DataFrame,
}

/// The request's rows split by where they are counted from: the rollup table's rows for the
/// whole days of the window it answers exactly, and the raw elevations of every other day. A
/// rollup answers a day when its recorded `sourceFiles` equal the fingerprint of the day's
/// files in `raw`, the snapshot the session reads, or when the day is closed (`coverage`,
/// which records the closed days served) — and only when the request filters by nothing but
/// `answerable` (the filters whose columns the rollup holds).
pub(crate) async fn rollup_and_raw(
    ctx: &SessionContext,
    raw: &DeltaTable,
    rollup: Table,
    request: &ReportRequest,
    answerable: Filters,
    coverage: &mut Coverage,
) -> Result<Split, QueryError> {
    let raw_rows = crate::reports::elevations(ctx, request).await?;
    let unsplit = |raw| Split { rolled: None, raw };
    if request.filters != answerable {
        return Ok(unsplit(raw_rows));
    }
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let first = if midnight(request.from.date_naive()) == request.from {
        request.from.date_naive()
    } else {
        request.from.date_naive() + Duration::days(1)
    };
    // The last day that ends inside the window.
    let last = request.to.date_naive() - Duration::days(1);
    if first > last {
        return Ok(unsplit(raw_rows));
    }
    let recorded =
        warehouse::rollups::recorded_fingerprints(ctx, rollup, Some(&request.tenant), Some((first, last))).await?;
    let current = warehouse::rollups::partition_fingerprints(raw, Table::Elevations).await?;
    let whole = |date: &NaiveDate| *date >= first && midnight(*date + Duration::days(1)) <= request.to;
    let recorded_days: BTreeSet<NaiveDate> = recorded.keys().map(|(_, date)| *date).collect();
    let mut days: BTreeSet<NaiveDate> = recorded
        .into_iter()
        .filter(|((_, date), _)| whole(date))
        .filter(|(key, fingerprint)| current.get(key) == Some(fingerprint))
        .map(|((_, date), _)| date)
        .collect();
    // Closed days come from this rollup when it holds them: a day retired before the rollup
    // existed stays unavailable. A day without denials has no `daily_denied` row; its
    // `daily_counts` vouch that the answer for it is none.
    let closed: Vec<NaiveDate> = coverage.closed.iter().copied().filter(whole).collect();
    if !closed.is_empty() {
        let mut held: BTreeSet<NaiveDate> = recorded_days.clone();
        if rollup == Table::DailyDenied {
            let free = warehouse::rollups::denial_free_days(ctx).await?;
            held.extend(free.into_keys().filter(|(t, _)| *t == request.tenant).map(|(_, d)| d));
        }
        let served: Vec<NaiveDate> = closed.into_iter().filter(|d| held.contains(d)).collect();
        days.extend(&served);
        coverage.served.extend(served);
    }
    if days.is_empty() {
        return Ok(unsplit(raw_rows));
    }
    let days: Vec<Expr> = days.into_iter().map(crate::reports::day).collect();
    let mut rolled = ctx
        .table(rollup.name())
        .await?
        .filter(ident("tenant").eq(lit(request.tenant.as_str())))?
        .filter(ident("eventDate").in_list(days.clone(), false))?;
    for (column, value) in request.filters.text() {
        rolled = rolled.filter(ident(column).eq(lit(value)))?;
    }
    let raw_rows = raw_rows.filter(ident("eventDate").in_list(days, true))?;
    Ok(Split {
        rolled: Some(rolled),
        raw: raw_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    #[test]
    fn consecutive_days_make_one_span_and_gaps_start_another() {
        let days: BTreeSet<NaiveDate> = [d(1), d(2), d(3), d(5), d(7), d(8)].into();
        let got: Vec<(NaiveDate, NaiveDate)> = spans(&days).iter().map(|s| (s.first, s.last)).collect();
        assert_eq!(got, vec![(d(1), d(3)), (d(5), d(5)), (d(7), d(8))]);
        assert!(spans(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn closed_days_are_unavailable_until_a_rollup_serves_them() {
        let mut coverage = Coverage::of_closed([d(1), d(2), d(3)].into());
        assert_eq!(coverage.unavailable().len(), 3);
        coverage.served.extend([d(2), d(3)]);
        assert_eq!(coverage.unavailable(), [d(1)].into());
        assert_eq!(coverage.from_rollups(), [d(2), d(3)].into());
        let text = coverage.describe().unwrap();
        assert!(text.contains("2 days from the daily rollups"), "{text}");
        assert!(text.contains("2026-11-02 to 2026-11-03"), "{text}");
        assert!(text.contains("1 day not included"), "{text}");
        assert_eq!(
            coverage.to_json(),
            serde_json::json!({
                "fromRollups": [{"first": "2026-11-02", "last": "2026-11-03"}],
                "unavailable": [{"first": "2026-11-01", "last": "2026-11-01"}],
            })
        );
        assert!(Coverage::default().describe().is_none());
    }
}
