//! The Overview: the readiness tiles and the three "frequently …" lists of Intune's EPM
//! Overview, over any window, from the per-day user sets and the raw rows.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionContext, ident, lit};
use foldhash::fast::RandomState;
use warehouse::Table;
use warehouse::user_sets::UserSet;

use crate::QueryError;
use crate::days::{Split, rollup_and_raw};
use crate::numbering::as_view;
use crate::reports::{Cell, Report, UNMANAGED, collect, cols, raw_split};
use crate::request::{Filters, ReportRequest};

/// The three "frequently …" lists: their tile and the elevation type they list.
const LISTS: [(&str, &str); 3] = [
    ("frequentlyUnmanaged", UNMANAGED),
    ("frequentlyApprovedBySupport", "supportApprovedElevation"),
    ("frequentlyDenied", "deniedElevation"),
];

/// Each list's files by hash, in the order of [`LISTS`]. Looked up by `&str` (no key is
/// built for a row whose file is known), hashed, not compared: a window's raw days give a row
/// per file and user.
type ListedFiles = [HashMap<Box<str>, UserSet, RandomState>; 3];

/// The list of an elevation type, if it has one.
fn list_of(elevation_type: &str) -> Option<usize> {
    LISTS.iter().position(|(_, listed)| *listed == elevation_type)
}

/// The file of `hash` in `list`, empty when first seen.
fn listed_file<'a>(files: &'a mut ListedFiles, list: usize, hash: &str) -> &'a mut UserSet {
    let files = &mut files[list];
    if !files.contains_key(hash) {
        files.insert(hash.into(), UserSet::default());
    }
    files.get_mut(hash).expect("inserted above")
}

/// The Overview: the readiness tiles and the three "frequently …" lists, over any window.
///
/// Distinct users cannot be summed across days, so whole days come from `daily_user_sets`
/// (while current): per day, type and file, the elevations and the set of users as a bitmap of
/// their numbers in `user_numbers`. The window's sets are united, and a user counts once
/// however many days they appear. Every other day is read from the raw rows and its users are
/// put into the same sets by number (users the rollups have not numbered yet get numbers past
/// the stored ones, for this answer only). Either way the answer is the raw rows' answer.
pub(crate) async fn overview(
    ctx: &SessionContext,
    raw: &warehouse::deltalake::DeltaTable,
    request: &ReportRequest,
    report: &mut Report,
) -> Result<(), QueryError> {
    use warehouse::user_sets::{UserNumbers, pairs_of, read_set};
    report.columns = ["tile", "rank", "fileName", "hash", "count", "users"]
        .map(String::from)
        .to_vec();
    let answerable = Filters {
        elevation_type: request.filters.elevation_type,
        ..Filters::default()
    };
    let Split { rolled, raw: raw_rows } = rollup_and_raw(
        ctx,
        raw,
        Table::DailyUserSets,
        request,
        answerable,
        &mut report.coverage,
    )
    .await?;
    // Users' numbers matter only when sets are read; raw rows alone can number users afresh.
    let mut numbers = UserNumbers::default();
    if rolled.is_some() {
        let stored = ctx
            .table(Table::UserNumbers.name())
            .await?
            .filter(ident("tenant").eq(lit(request.tenant.as_str())))?
            .select(cols(&["upn", "number"]))?
            .collect()
            .await?;
        numbers = UserNumbers::from_pairs(pairs_of(&stored).map_err(DataFusionError::from)?);
    }
    // Users with managed elevations, users with unmanaged ones, and each listed file's set.
    let (mut managed, mut unmanaged) = (roaring::RoaringBitmap::new(), roaring::RoaringBitmap::new());
    let mut files = ListedFiles::default();
    if let Some(rolled) = rolled {
        let rolled = rolled.select(cols(&["elevationType", "hash", "fileName", "elevations", "users"]))?;
        for batch in rolled.collect().await? {
            let text = |i: usize| cast(batch.column(i), &DataType::Utf8).map_err(DataFusionError::from);
            let (types, hashes, names) = (text(0)?, text(1)?, text(2)?);
            let (types, hashes, names) = (
                types.as_string::<i32>(),
                hashes.as_string::<i32>(),
                names.as_string::<i32>(),
            );
            let elevations = cast(batch.column(3), &DataType::Int64).map_err(DataFusionError::from)?;
            let elevations = elevations.as_primitive::<Int64Type>();
            let users = cast(batch.column(4), &DataType::Binary).map_err(DataFusionError::from)?;
            let users = users.as_binary::<i32>();
            for row in 0..batch.num_rows() {
                let elevation_type = types.value(row);
                let set = read_set(users.value(row)).map_err(|e| DataFusionError::External(Box::new(e)))?;
                if hashes.is_null(row) {
                    if elevation_type == UNMANAGED {
                        unmanaged |= set;
                    } else {
                        managed |= set;
                    }
                } else if let Some(list) = list_of(elevation_type) {
                    let name = names.is_valid(row).then(|| names.value(row));
                    listed_file(&mut files, list, hashes.value(row))
                        .add(name, elevations.value(row))
                        .users |= set;
                }
            }
        }
    }
    // The other days: which users elevated managed or unmanaged, and the listed files' users;
    // the two aggregates run at once.
    let types: Vec<Expr> = LISTS.iter().map(|(_, t)| lit(*t)).collect();
    let per_file_user = raw_rows
        .clone()
        .filter(ident("elevationType").in_list(types, false))?
        .aggregate(
            vec![ident("elevationType"), ident("hash"), ident("upn")],
            vec![max(ident("fileName")).alias("fileName"), count(lit(1)).alias("count")],
        )?
        .select(cols(&["elevationType", "hash", "upn", "fileName", "count"]))?;
    let (per_user, per_file_user) = tokio::try_join!(async { collect(raw_split(raw_rows, "upn")?).await }, async {
        Ok::<_, QueryError>(per_file_user.collect().await?)
    },)?;
    for row in per_user.1 {
        let [Cell::Text(upn), Cell::Int(m), Cell::Int(u), _] = &row[..] else {
            return Err(DataFusionError::Internal(format!("an overview row of unexpected shape: {row:?}")).into());
        };
        let user = numbers.number(upn);
        if *m > 0 {
            managed.insert(user);
        }
        if *u > 0 {
            unmanaged.insert(user);
        }
    }
    for batch in per_file_user {
        let text = |i: usize| as_view(batch.column(i)).map_err(QueryError::from);
        let (types, hashes, upns, names) = (text(0)?, text(1)?, text(2)?, text(3)?);
        let elevations = cast(batch.column(4), &DataType::Int64).map_err(DataFusionError::from)?;
        let elevations = elevations.as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let Some(list) = list_of(types.value(row)) else {
                continue;
            };
            let user = numbers.number(upns.value(row));
            let name = names.is_valid(row).then(|| names.value(row));
            listed_file(&mut files, list, hashes.value(row))
                .add(name, elevations.value(row))
                .users
                .insert(user);
        }
    }

    let tiles = [
        ("usersOnlyUnmanaged", (&unmanaged - &managed).len()),
        ("usersBoth", (&unmanaged & &managed).len()),
        ("usersOnlyManaged", (&managed - &unmanaged).len()),
    ];
    for (tile, n) in tiles {
        report.rows.push(vec![
            Cell::Text(tile.to_owned()),
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Int(n as i64),
            Cell::Null,
        ]);
    }
    for ((tile, _), files) in LISTS.iter().zip(&files) {
        let mut listed: Vec<(&Box<str>, &UserSet)> = files.iter().collect();
        // Most elevations first; ties by file name, then hash (a file name may be missing).
        listed.sort_by(|(hash_a, a), (hash_b, b)| {
            b.elevations
                .cmp(&a.elevations)
                .then_with(|| a.file_name.cmp(&b.file_name))
                .then_with(|| hash_a.cmp(hash_b))
        });
        for (rank, (hash, set)) in request.page(listed).enumerate() {
            report.rows.push(vec![
                Cell::Text((*tile).to_owned()),
                Cell::Int((request.offset + rank + 1) as i64),
                set.file_name.clone().map_or(Cell::Null, Cell::Text),
                Cell::Text(hash.to_string()),
                Cell::Int(set.elevations),
                Cell::Int(set.users.len() as i64),
            ]);
        }
    }
    Ok(())
}
