//! The rollups: per tenant-day aggregates of `elevations` (`daily_elevations`, `daily_counts`,
//! `daily_users`, `daily_devices`, `daily_user_sets` with `user_numbers`, `daily_denied`,
//! `daily_suggestions` with `value_numbers`), each recording the fingerprint of the raw files
//! it was computed from, so a reader uses a day's rollup only while the day's files are the
//! ones it counted ([`partition_fingerprints`], [`recorded_fingerprints`]); and
//! [`Warehouse::refresh_rollups`], which recomputes the days whose files changed.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use chrono::NaiveDate;
use deltalake::datafusion::prelude::{SessionContext, ident, lit};
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};

use crate::maintenance::{Work, arrow_error, conform, datafusion, date_literal, delta, list_partitions, plain_columns};
use crate::tables::{Table, Warehouse, WarehouseError};

/// The keys of a `daily_denied` row and of a `denied` report row.
pub const DENIED_KEYS: [&str; 5] = ["upn", "deviceId", "deviceName", "hash", "elevationType"];

/// The file's details `daily_denied` and `denied` keep the greatest value of.
pub const DENIED_DETAILS: [&str; 6] = [
    "fileName",
    "productName",
    "fileDescription",
    "internalName",
    "fileVersion",
    "companyName",
];

/// The denied (`deniedElevation`) and failed (`result` not 0) elevations of `events`, per the
/// `by` columns and [`DENIED_KEYS`]: the greatest [`DENIED_DETAILS`], how many (`elevations`)
/// and the last one (`lastSeen`). The rollup refresh writes this per day into `daily_denied`;
/// the `denied` report computes it over the days no rollup answers.
pub fn denials(
    events: deltalake::datafusion::dataframe::DataFrame,
    by: &[&str],
) -> Result<deltalake::datafusion::dataframe::DataFrame, deltalake::datafusion::error::DataFusionError> {
    use deltalake::datafusion::functions_aggregate::expr_fn::{count, max};
    let keys = by.iter().chain(&DENIED_KEYS).map(|c| ident(*c)).collect();
    let aggregates = DENIED_DETAILS
        .iter()
        .map(|c| max(ident(*c)).alias(*c))
        .chain([
            count(lit(1)).alias("elevations"),
            max(ident("eventDateTime")).alias("lastSeen"),
        ])
        .collect();
    events
        .filter(
            ident("elevationType")
                .eq(lit("deniedElevation"))
                .or(ident("result").not_eq(lit(0))),
        )?
        .aggregate(keys, aggregates)
}

fn group_by(columns: &[&str]) -> Vec<deltalake::datafusion::prelude::Expr> {
    columns.iter().map(|c| ident(*c)).collect()
}

/// Every row of one tenant in a table registered in `ctx` under its name.
async fn tenant_rows(ctx: &SessionContext, table: Table, tenant: &str) -> Result<Vec<RecordBatch>, WarehouseError> {
    ctx.table(table.name())
        .await
        .and_then(|df| df.filter(ident("tenant").eq(lit(tenant))))
        .map_err(datafusion(table))?
        .collect()
        .await
        .map_err(datafusion(table))
}

/// What a rollup refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Tenant-days recomputed because raw rows changed.
    pub days_refreshed: usize,
    /// Rollup rows written.
    pub rows_written: u64,
}

/// A fingerprint of each `(tenant, eventDate)` partition of a table snapshot: a hash of the
/// sorted paths of its files. Delta never changes a file once written, so two snapshots with
/// the same fingerprint for a day hold exactly the same rows for it; any append, compaction or
/// deletion that touches the day changes it. Computed from the log alone, without reading data.
pub async fn partition_fingerprints(
    handle: &DeltaTable,
    table: Table,
) -> Result<BTreeMap<(String, NaiveDate), String>, WarehouseError> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    for ((tenant, date), files) in list_partitions(handle, table).await? {
        let Ok(date) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
            continue;
        };
        let mut paths: Vec<String> = files.views.iter().map(|v| v.path().into_owned()).collect();
        paths.sort();
        let mut hasher = Sha256::new();
        for path in &paths {
            hasher.update(path.as_bytes());
            hasher.update(b"\n");
        }
        out.insert((tenant, date), hex::encode(&hasher.finalize()[..16]));
    }
    Ok(out)
}

/// The `sourceFiles` fingerprint recorded in a rollup table (any but `daily_elevations` and
/// `user_numbers`, registered in `ctx` under its name) for each tenant-day, of one tenant or
/// of all, and of the days `first..=last` or of all (the bounds let Delta skip the other days'
/// files, so a short window does not read the fingerprints of years).
pub async fn recorded_fingerprints(
    ctx: &SessionContext,
    table: Table,
    tenant: Option<&str>,
    days: Option<(NaiveDate, NaiveDate)>,
) -> Result<BTreeMap<(String, NaiveDate), String>, WarehouseError> {
    let mut frame = ctx.table(table.name()).await.map_err(datafusion(table))?;
    if let Some(tenant) = tenant {
        frame = frame
            .filter(ident("tenant").eq(lit(tenant)))
            .map_err(datafusion(table))?;
    }
    if let Some((first, last)) = days {
        frame = frame
            .filter(
                ident("eventDate")
                    .gt_eq(date_literal(first))
                    .and(ident("eventDate").lt_eq(date_literal(last))),
            )
            .map_err(datafusion(table))?;
    }
    if table == Table::DailySuggestions {
        // Every row of a day carries the same fingerprint; the group rows' files alone are a
        // few percent of the day's (see `suggestion_days::day_rows`).
        frame = frame.filter(ident("userNumber").is_null()).map_err(datafusion(table))?;
    }
    let frame = frame
        .aggregate(vec![ident("tenant"), ident("eventDate"), ident("sourceFiles")], vec![])
        .map_err(datafusion(table))?;
    let mut recorded = fingerprints_of(frame, table).await?;
    for value in recorded.values_mut() {
        *value = fingerprint_recorded(table, value);
    }
    Ok(recorded)
}

/// The suffix a rollup's `sourceFiles` carries after the fingerprint when the meaning of its
/// rows changed since the table first shipped. [`recorded_fingerprints`] strips it, and
/// reports rows recorded without it (by an older release) as stale, so the next refresh
/// recomputes them and readers read those days' raw rows meanwhile.
fn rollup_format(table: Table) -> Option<&'static str> {
    match table {
        // Format 2: group rows carry `systemInitiated` (`by-application` reads them).
        Table::DailySuggestions => Some("@2"),
        // Format 2: rows carry `deviceId` (`compliance` counts devices by id).
        Table::DailyDevices => Some("@2"),
        _ => None,
    }
}

/// What a refresh records in `table`'s `sourceFiles` for rows computed from files with
/// `fingerprint`.
fn recorded_as(table: Table, fingerprint: &str) -> String {
    format!("{fingerprint}{}", rollup_format(table).unwrap_or_default())
}

/// The fingerprint a rollup row's `sourceFiles` vouches for: [`recorded_as`] undone, and for
/// a row recorded without its table's current format a value never equal to a fingerprint,
/// so the day is stale yet still recorded (a closed day keeps its rows whatever their format).
fn fingerprint_recorded(table: Table, recorded: &str) -> String {
    match rollup_format(table) {
        None => recorded.to_owned(),
        Some(format) => match recorded.strip_suffix(format) {
            Some(fingerprint) => fingerprint.to_owned(),
            None => format!("older format: {recorded}"),
        },
    }
}

/// The tenant-days whose current `daily_counts` show no denied or failed elevation (so
/// `daily_denied` holds no row, and no fingerprint, for them), with that fingerprint.
pub async fn denial_free_days(ctx: &SessionContext) -> Result<BTreeMap<(String, NaiveDate), String>, WarehouseError> {
    use deltalake::datafusion::functions_aggregate::expr_fn::sum;
    use deltalake::datafusion::prelude::when;
    let table = Table::DailyCounts;
    let denials = when(ident("elevationType").eq(lit("deniedElevation")), ident("elevations"))
        .otherwise(ident("failed"))
        .map_err(datafusion(table))?;
    let frame = ctx
        .table(table.name())
        .await
        .and_then(|df| {
            df.aggregate(
                vec![ident("tenant"), ident("eventDate"), ident("sourceFiles")],
                vec![sum(denials).alias("denials")],
            )
        })
        .and_then(|df| df.filter(ident("denials").eq(lit(0i64))))
        .and_then(|df| df.select(vec![ident("tenant"), ident("eventDate"), ident("sourceFiles")]))
        .map_err(datafusion(table))?;
    fingerprints_of(frame, table).await
}

/// Runs `frame` (columns `tenant`, `eventDate`, `sourceFiles`) into a map.
async fn fingerprints_of(
    frame: deltalake::datafusion::dataframe::DataFrame,
    table: Table,
) -> Result<BTreeMap<(String, NaiveDate), String>, WarehouseError> {
    use arrow::array::AsArray;
    let batches = frame.collect().await.map_err(datafusion(table))?;
    let text = |column: &arrow::array::ArrayRef| {
        cast(column, &arrow::datatypes::DataType::Utf8).map_err(|e| WarehouseError::Delta {
            table: table.name(),
            source: e.into(),
        })
    };
    let mut out = BTreeMap::new();
    for batch in batches {
        let tenants = text(batch.column(0))?;
        let dates = batch.column(1).as_primitive::<arrow::datatypes::Date32Type>();
        let fingerprints = text(batch.column(2))?;
        for row in 0..batch.num_rows() {
            let date = crate::rows::date_of_date32(dates.value(row));
            out.insert(
                (tenants.as_string::<i32>().value(row).to_owned(), date),
                fingerprints.as_string::<i32>().value(row).to_owned(),
            );
        }
    }
    Ok(out)
}

impl Warehouse {
    /// Brings the rollups (`daily_elevations`, `daily_counts`, `daily_users`, `daily_devices`,
    /// `daily_user_sets` with the `user_numbers` they name, `daily_denied`, `daily_suggestions`
    /// with the `value_numbers` it names) in line with
    /// `elevations`: every tenant-day whose files changed since its rollups were computed (a
    /// different [`partition_fingerprints`] from the `sourceFiles` recorded) is recomputed from
    /// the raw rows of that same snapshot and swapped in, one commit per table. Readers check
    /// each rollup's fingerprint themselves, so those commits need not be one; new user numbers
    /// are committed before the sets that use them. Days whose raw rows retention already
    /// deleted keep their rollups.
    pub async fn refresh_rollups(&self) -> Result<RollupReport, WarehouseError> {
        use deltalake::datafusion::functions_aggregate::expr_fn::{count, max, sum};
        use deltalake::datafusion::prelude::{case, lit};
        let raw_table = Table::Elevations;
        let raw = self.load(raw_table).await?;
        let mut rollup = self.load(Table::DailyElevations).await?;
        let mut counts = self.load(Table::DailyCounts).await?;
        let mut users = self.load(Table::DailyUsers).await?;
        let mut devices = self.load(Table::DailyDevices).await?;
        let mut sets = self.load(Table::DailyUserSets).await?;
        let mut numbers = self.load(Table::UserNumbers).await?;
        let mut denied = self.load(Table::DailyDenied).await?;
        let mut suggestions = self.load(Table::DailySuggestions).await?;
        let mut value_numbers = self.load(Table::ValueNumbers).await?;
        let ctx = self.maintenance_session(raw_table, Work::Aggregate)?;
        for (table, handle) in [
            (raw_table, &raw),
            (Table::DailyCounts, &counts),
            (Table::DailyUsers, &users),
            (Table::DailyDevices, &devices),
            (Table::DailyUserSets, &sets),
            (Table::UserNumbers, &numbers),
            (Table::DailyDenied, &denied),
            (Table::DailySuggestions, &suggestions),
            (Table::ValueNumbers, &value_numbers),
        ] {
            handle.update_datafusion_session(&ctx.state()).map_err(delta(table))?;
            let provider = handle.table_provider().await.map_err(datafusion(table))?;
            ctx.register_table(table.name(), provider).map_err(datafusion(table))?;
        }
        let recorded_counts = recorded_fingerprints(&ctx, Table::DailyCounts, None, None).await?;
        let recorded_users = recorded_fingerprints(&ctx, Table::DailyUsers, None, None).await?;
        let recorded_devices = recorded_fingerprints(&ctx, Table::DailyDevices, None, None).await?;
        let recorded_sets = recorded_fingerprints(&ctx, Table::DailyUserSets, None, None).await?;
        let recorded_denied = recorded_fingerprints(&ctx, Table::DailyDenied, None, None).await?;
        let recorded_suggestions = recorded_fingerprints(&ctx, Table::DailySuggestions, None, None).await?;
        let denial_free = denial_free_days(&ctx).await?;
        // Each tenant's user numbers, read once per tenant from the snapshot this pass started
        // from. The only commits to `user_numbers` after it are this pass's own, and those add
        // numbers of tenants already read (partitions come grouped by tenant): another refresh
        // committing meanwhile makes `append_numbers` fail rather than reuse a number.
        let mut tenant_numbers: BTreeMap<String, crate::user_sets::UserNumbers> = BTreeMap::new();
        // Likewise the numbers of device ids, device names and folders (`value_numbers`).
        let mut tenant_values: BTreeMap<String, crate::suggestion_days::ValueNumbers> = BTreeMap::new();
        let mut report = RollupReport::default();
        for ((tenant, date), fingerprint) in partition_fingerprints(&raw, raw_table).await? {
            let key = (tenant.clone(), date);
            let current = |recorded: &BTreeMap<(String, NaiveDate), String>| recorded.get(&key) == Some(&fingerprint);
            let day = ctx
                .table(raw_table.name())
                .await
                .map_err(datafusion(raw_table))?
                .filter(
                    ident("tenant")
                        .eq(lit(tenant.as_str()))
                        .and(ident("eventDate").eq(date_literal(date))),
                )
                .and_then(|df| plain_columns(df, raw_table))
                .map_err(datafusion(raw_table))?;
            // A day without denials has no `daily_denied` rows to carry a fingerprint: its
            // current `daily_counts` vouch for it instead.
            let denied_current = current(&recorded_denied) || current(&denial_free);
            if current(&recorded_counts)
                && current(&recorded_users)
                && current(&recorded_devices)
                && current(&recorded_sets)
                && current(&recorded_suggestions)
                && denied_current
            {
                continue;
            }
            let failed = sum(case(ident("result").not_eq(lit(0)))
                .when(lit(true), lit(1i64))
                .otherwise(lit(0i64))
                .map_err(datafusion(raw_table))?);
            // Held in memory: `daily_users`, `daily_counts` and the user sets are sums over it,
            // computed without reading the raw rows again (devices and denials need columns it
            // lacks and read the day's raw rows).
            let fine = day
                .clone()
                .aggregate(
                    group_by(&[
                        "tenant",
                        "eventDate",
                        "elevationType",
                        "hash",
                        "fileName",
                        "companyName",
                        "upn",
                        "deviceName",
                    ]),
                    vec![count(lit(1)).alias("elevations"), failed.alias("failed")],
                )
                .map_err(datafusion(raw_table))?
                .cache()
                .await
                .map_err(datafusion(raw_table))?;
            let rows = fine.clone().collect().await.map_err(datafusion(raw_table))?;
            let derive = |group: &[&str], sums: &[&str]| {
                let sums = sums.iter().map(|c| sum(ident(*c)).alias(*c)).collect();
                fine.clone()
                    .aggregate(group_by(group), sums)?
                    .with_column("sourceFiles", lit(fingerprint.as_str()))
            };
            let per_user = derive(&["tenant", "eventDate", "upn", "elevationType"], &["elevations"])
                .map_err(datafusion(Table::DailyUsers))?
                .collect()
                .await
                .map_err(datafusion(Table::DailyUsers))?;
            let per_type = derive(&["tenant", "eventDate", "elevationType"], &["elevations", "failed"])
                .map_err(datafusion(Table::DailyCounts))?
                .collect()
                .await
                .map_err(datafusion(Table::DailyCounts))?;
            // Devices from the raw rows: the fine rollup holds neither levels nor instants.
            let per_device = day
                .clone()
                .aggregate(
                    group_by(&[
                        "tenant",
                        "eventDate",
                        "deviceName",
                        "deviceId",
                        "reportingLevel",
                        "elevationType",
                    ]),
                    vec![
                        count(lit(1)).alias("elevations"),
                        max(ident("eventDateTime")).alias("lastSeen"),
                    ],
                )
                .and_then(|df| df.with_column("sourceFiles", lit(recorded_as(Table::DailyDevices, &fingerprint))))
                .map_err(datafusion(Table::DailyDevices))?
                .collect()
                .await
                .map_err(datafusion(Table::DailyDevices))?;
            // Denied and failed elevations from the raw rows (the fine rollup lacks the details).
            let per_denial = denials(day.clone(), &["tenant", "eventDate"])
                .and_then(|df| df.with_column("sourceFiles", lit(fingerprint.as_str())))
                .map_err(datafusion(Table::DailyDenied))?
                .collect()
                .await
                .map_err(datafusion(Table::DailyDenied))?;
            self.replace_partition(&mut denied, Table::DailyDenied, &tenant, date, &per_denial)
                .await?;
            // The day's user sets, over numbers committed before the sets that use them.
            if !tenant_numbers.contains_key(&tenant) {
                let stored = tenant_rows(&ctx, Table::UserNumbers, &tenant).await?;
                let pairs = crate::user_sets::pairs_of(&stored).map_err(arrow_error(Table::UserNumbers))?;
                tenant_numbers.insert(tenant.clone(), crate::user_sets::UserNumbers::from_pairs(pairs));
            }
            if !tenant_values.contains_key(&tenant) {
                let stored = tenant_rows(&ctx, Table::ValueNumbers, &tenant).await?;
                let values = crate::suggestion_days::ValueNumbers::from_batches(&stored)
                    .map_err(arrow_error(Table::ValueNumbers))?;
                tenant_values.insert(tenant.clone(), values);
            }
            let tenant_users = tenant_numbers.get_mut(&tenant).expect("inserted above");
            let tenant_value_numbers = tenant_values.get_mut(&tenant).expect("inserted above");
            let day_sets =
                crate::user_sets::day_sets(&rows, tenant_users).map_err(arrow_error(Table::DailyUserSets))?;
            let per_group = crate::suggestion_days::day_rows(
                day.clone(),
                &tenant,
                date,
                &recorded_as(Table::DailySuggestions, &fingerprint),
                tenant_users,
                tenant_value_numbers,
            )
            .await
            .map_err(datafusion(Table::DailySuggestions))?;
            let new = tenant_users.take_new();
            if !new.is_empty() {
                let batch =
                    crate::user_sets::numbers_batch(&tenant, date, &new).map_err(arrow_error(Table::UserNumbers))?;
                self.append_numbers(&mut numbers, Table::UserNumbers, batch).await?;
            }
            if let Some(batch) = tenant_value_numbers
                .take_new(&tenant, date)
                .map_err(arrow_error(Table::ValueNumbers))?
            {
                self.append_numbers(&mut value_numbers, Table::ValueNumbers, batch)
                    .await?;
            }
            self.replace_partition_files(
                &mut suggestions,
                Table::DailySuggestions,
                &tenant,
                date,
                &[&per_group[..1], &per_group[1..]],
            )
            .await?;
            let sets_batch = crate::user_sets::sets_batch(&tenant, date, &day_sets, &fingerprint)
                .map_err(arrow_error(Table::DailyUserSets))?;
            self.replace_partition(&mut sets, Table::DailyUserSets, &tenant, date, &[sets_batch])
                .await?;
            report.rows_written += self
                .replace_partition(&mut rollup, Table::DailyElevations, &tenant, date, &rows)
                .await?;
            self.replace_partition(&mut devices, Table::DailyDevices, &tenant, date, &per_device)
                .await?;
            self.replace_partition(&mut users, Table::DailyUsers, &tenant, date, &per_user)
                .await?;
            self.replace_partition(&mut counts, Table::DailyCounts, &tenant, date, &per_type)
                .await?;
            report.days_refreshed += 1;
        }
        if report.days_refreshed > 0 {
            for (table, handle) in [
                (Table::DailyElevations, &rollup),
                (Table::DailyUsers, &users),
                (Table::DailyCounts, &counts),
                (Table::DailyDevices, &devices),
                (Table::DailyUserSets, &sets),
                (Table::UserNumbers, &numbers),
                (Table::DailyDenied, &denied),
                (Table::DailySuggestions, &suggestions),
                (Table::ValueNumbers, &value_numbers),
            ] {
                self.checkpoint(handle, table).await?;
            }
        }
        Ok(report)
    }

    /// Appends new numbers (`user_numbers` or `value_numbers`) in one commit that succeeds only
    /// if nobody committed to the table since `handle`'s snapshot, the one the numbers were
    /// given from: two refreshes running at once cannot give one number to two values. The
    /// loser fails and its next pass starts from the winner's numbers.
    async fn append_numbers(
        &self,
        handle: &mut DeltaTable,
        table: Table,
        batch: RecordBatch,
    ) -> Result<(), WarehouseError> {
        let mut writer = RecordBatchWriter::for_table(handle).map_err(delta(table))?;
        writer.write(batch).await.map_err(delta(table))?;
        let adds = writer.flush().await.map_err(delta(table))?;
        if let Some(dir) = self.location().local_table_dir(table) {
            crate::tables::sync_added_files(&dir, adds.iter().map(|a| a.path.as_str()))?;
        }
        let actions = adds.into_iter().map(Action::Add).collect();
        let operation = DeltaOperation::Write {
            mode: deltalake::protocol::SaveMode::Append,
            partition_by: None,
            predicate: None,
        };
        let snapshot = handle.snapshot().map_err(delta(table))?;
        let finalized = CommitBuilder::from(CommitProperties::default().with_max_retries(0))
            .with_actions(actions)
            .build(Some(snapshot), handle.log_store(), operation)
            .await
            .map_err(|e| WarehouseError::Delta {
                table: table.name(),
                source: DeltaTableError::Generic(format!(
                    "another rollup refresh numbered values since this one began, so this one stops \
                     (the next pass starts from those numbers): {e}"
                )),
            })?;
        if let Some(dir) = self.location().local_table_dir(table) {
            crate::tables::sync_commit(&dir, finalized.version())?;
        }
        handle.update_state().await.map_err(delta(table))?;
        // Another refresh committed right after this one: its numbers are not in memory here.
        if handle.version() != Some(finalized.version()) {
            return Err(WarehouseError::Delta {
                table: table.name(),
                source: DeltaTableError::Generic("another rollup refresh is numbering values; this one stops".into()),
            });
        }
        Ok(())
    }

    /// Replaces one tenant-day of a rollup table with `rows`, in one commit. Returns the rows
    /// written.
    async fn replace_partition(
        &self,
        handle: &mut DeltaTable,
        table: Table,
        tenant: &str,
        date: NaiveDate,
        rows: &[RecordBatch],
    ) -> Result<u64, WarehouseError> {
        self.replace_partition_files(handle, table, tenant, date, &[rows]).await
    }

    /// Replaces one tenant-day of a rollup table with `files` (the rows of each in files of
    /// their own, so their statistics tell them apart), in one commit. Returns the rows written.
    async fn replace_partition_files(
        &self,
        handle: &mut DeltaTable,
        table: Table,
        tenant: &str,
        date: NaiveDate,
        files: &[&[RecordBatch]],
    ) -> Result<u64, WarehouseError> {
        let old: Vec<_> = list_partitions(handle, table)
            .await?
            .remove(&(tenant.to_owned(), date.to_string()))
            .map(|p| p.views)
            .unwrap_or_default();
        let mut writer = RecordBatchWriter::for_table(handle)
            .map_err(delta(table))?
            .with_writer_properties(crate::compaction::compacted_file_properties(table));
        let mut written = 0;
        let mut adds = Vec::new();
        for rows in files {
            for batch in rows.iter() {
                if batch.num_rows() > 0 {
                    written += batch.num_rows() as u64;
                    writer.write(conform(batch, table)?).await.map_err(delta(table))?;
                }
            }
            adds.extend(writer.flush().await.map_err(delta(table))?);
        }
        if let Some(dir) = self.location().local_table_dir(table) {
            crate::tables::sync_added_files(&dir, adds.iter().map(|a| a.path.as_str()))?;
        }
        let mut actions: Vec<Action> = old.iter().map(|v| Action::Remove(v.remove_action(true))).collect();
        actions.extend(adds.into_iter().map(Action::Add));
        let operation = DeltaOperation::Write {
            mode: deltalake::protocol::SaveMode::Overwrite,
            partition_by: None,
            predicate: Some(format!("tenant = '{tenant}' AND eventDate = '{date}'")),
        };
        self.commit_synced(handle, table, actions, operation).await?;
        Ok(written)
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn rows_recorded_without_the_current_format_are_stale_and_others_current() {
        let fingerprint = "0123456789abcdef0123456789abcdef";
        for table in [
            Table::DailySuggestions,
            Table::DailyDevices,
            Table::DailyCounts,
            Table::DailyDenied,
        ] {
            let recorded = recorded_as(table, fingerprint);
            assert_eq!(fingerprint_recorded(table, &recorded), fingerprint, "{table:?}");
        }
        // `daily_suggestions` rows of the first format (no `systemInitiated`) carry the bare
        // fingerprint: they must be recomputed, and read raw meanwhile.
        assert_eq!(
            recorded_as(Table::DailySuggestions, fingerprint),
            format!("{fingerprint}@2")
        );
        // Likewise `daily_devices` rows without `deviceId`.
        for table in [Table::DailySuggestions, Table::DailyDevices] {
            assert_eq!(recorded_as(table, fingerprint), format!("{fingerprint}@2"));
            let old = fingerprint_recorded(table, fingerprint);
            assert_ne!(old, fingerprint);
            assert!(old.contains(fingerprint), "{old}");
        }
    }
}
