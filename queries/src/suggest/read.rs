//! The scans: the window's groups and each user's unmanaged elevations per file, from
//! `daily_suggestions` for the whole days it answers and from the raw rows for the others, and
//! the rules events ever reported (all retained history), the same way.

use std::collections::HashMap;

use chrono::NaiveDate;
use datafusion::prelude::{DataFrame, Expr, SessionContext};
use warehouse::suggestion_days::{self as days, Groups, Unmanaged, ValueNumbers};
use warehouse::user_sets::UserNumbers;

use super::*;

/// What the decisions read.
pub(super) struct Read {
    /// The window's groups, sorted.
    pub(super) groups: Vec<Group>,
    /// Every rule known.
    pub(super) rules: Vec<KnownRule>,
    /// Each user's unmanaged elevations, by name (none when the request names a file).
    pub(super) unmanaged: Vec<UserUnmanaged>,
    /// The names behind the sets' numbers.
    pub(super) names: Names,
}

/// Reads what the decisions need. Whole days of the window whose `daily_suggestions` rows are
/// current (their `sourceFiles` equal the fingerprint of the day's files in the snapshot read)
/// come from there, every other day from the raw rows through the same aggregates; the rule
/// history likewise over every day. Sets are numbered as stored (`user_numbers`,
/// `value_numbers`); values the rollups have not numbered get numbers past those, for this
/// answer only.
pub(super) async fn read(warehouse: &Warehouse, request: &SuggestRequest) -> Result<Read, QueryError> {
    let opened = crate::open(warehouse, Some(&request.tenant)).await?;
    let ctx = &opened.ctx;
    let rolled = rolled_days(ctx, &opened.elevations, &request.tenant).await?;
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let whole: Vec<NaiveDate> = rolled
        .iter()
        .copied()
        .filter(|d| midnight(*d) >= request.from && midnight(*d + chrono::Duration::days(1)) <= request.to)
        .collect();
    let mut users = UserNumbers::default();
    let mut values = ValueNumbers::default();
    let mut groups = Groups::default();
    let mut unmanaged = Unmanaged::default();
    if !whole.is_empty() {
        (users, values) = crate::days::stored_numbers(ctx, &request.tenant).await?;
        let rows = tenant_rows(ctx, Table::DailySuggestions, &request.tenant)
            .await?
            .filter(ident("eventDate").in_list(dates(&whole), false))?;
        // Group rows and user rows apart: most rows are users', and need few columns.
        let mut group_rows = rows.clone().filter(ident("userNumber").is_null())?;
        if let Some(file) = &request.file {
            group_rows = group_rows.filter(of_file(file).or(ident("ruleId").is_not_null()))?;
        }
        // The users' rows are read and merged in a task of their own, so the two merges run
        // on two cores. In a `JoinSet`, so that an error here stops that task too.
        let mut user_side = tokio::task::JoinSet::new();
        if request.file.is_none() {
            let columns = ["userNumber", "fileName", "elevations", "first", "last", "devices"];
            let user_rows = rows
                .filter(ident("userNumber").is_not_null())?
                .select(columns.map(ident))?;
            user_side.spawn(async move {
                let mut unmanaged = Unmanaged::default();
                unmanaged
                    .add_rollup(&user_rows.collect().await?)
                    .map_err(DataFusionError::from)?;
                Ok::<_, QueryError>(unmanaged)
            });
        }
        groups
            .add_rollup(&group_rows.collect().await?)
            .map_err(DataFusionError::from)?;
        if let Some(merged) = user_side.join_next().await {
            unmanaged = merged.map_err(|e| DataFusionError::External(Box::new(e)))??;
        }
    }
    let mut raw = tenant_window(ctx, Table::Elevations, &request.tenant, request.from, request.to).await?;
    if !whole.is_empty() {
        raw = raw.filter(ident("eventDate").in_list(dates(&whole), true))?;
    }
    if let Some(file) = &request.file {
        raw = raw.filter(of_file(file).or(ident("ruleId").is_not_null()))?;
    }
    groups.add_events(raw.clone(), &mut users, &mut values).await?;
    if request.file.is_none() {
        unmanaged.add_events(raw, &mut users, &mut values).await?;
    }
    let by_number = |numbers| Dictionary::new(days::names_by_number(numbers));
    let names = Names {
        users: by_number(&users),
        device_names: by_number(values.kind(1)),
        folders: by_number(values.kind(2)),
    };
    // The groups' sets are united on a blocking thread while the rule history is read and
    // the users' elevations are listed here.
    let merging = tokio::task::spawn_blocking(move || sorted_groups(groups));
    let history = rule_history(ctx, &request.tenant, &rolled).await?;
    let unmanaged = per_user(unmanaged, &names);
    let groups = merging.await.map_err(|e| DataFusionError::External(Box::new(e)))?;
    let rules = known_rules(request, history, &groups);
    Ok(Read {
        groups,
        rules,
        unmanaged,
        names,
    })
}

/// The groups with their parts merged, sorted: the decisions must not depend on the order of a
/// hash map or of an aggregate's rows.
fn sorted_groups(groups: Groups) -> Vec<Group> {
    let mut groups: Vec<Group> = groups.merged().into_iter().map(|(k, t)| Group::of(k, t)).collect();
    groups.sort_by(|a, b| {
        (
            &a.file_name,
            &a.company_name,
            &a.hash,
            &a.elevation_type,
            a.child,
            &a.process_type,
            &a.parent_process,
            &a.rule_id,
            &a.policy_name,
            a.failed,
        )
            .cmp(&(
                &b.file_name,
                &b.company_name,
                &b.hash,
                &b.elevation_type,
                b.child,
                &b.process_type,
                &b.parent_process,
                &b.rule_id,
                &b.policy_name,
                b.failed,
            ))
    });
    groups
}

/// The tenant's days whose `daily_suggestions` rows answer for them in the snapshot `raw`:
/// those still current, and the closed ones (raw rows deleted by retention, which refreshed
/// the rollups just before; see `queries::days`), whose rollups are their only record.
async fn rolled_days(
    ctx: &SessionContext,
    raw: &warehouse::deltalake::DeltaTable,
    tenant: &str,
) -> Result<Vec<NaiveDate>, QueryError> {
    let recorded = warehouse::rollups::recorded_fingerprints(ctx, Table::DailySuggestions, Some(tenant), None).await?;
    if recorded.is_empty() {
        return Ok(Vec::new());
    }
    let current = warehouse::rollups::partition_fingerprints(raw, Table::Elevations).await?;
    Ok(recorded
        .into_iter()
        .filter(|(key, fingerprint)| current.get(key).is_none_or(|now| now == fingerprint))
        .map(|((_, date), _)| date)
        .collect())
}

async fn tenant_rows(ctx: &SessionContext, table: Table, tenant: &str) -> Result<DataFrame, QueryError> {
    Ok(ctx.table(table.name()).await?.filter(ident("tenant").eq(lit(tenant)))?)
}

fn dates(days: &[NaiveDate]) -> Vec<Expr> {
    days.iter()
        .map(|d| {
            lit(datafusion::scalar::ScalarValue::Date32(Some(
                warehouse::rows::date32_of_date(*d),
            )))
        })
        .collect()
}

/// The elevations of one file (its name in any case). Unicode lower case, as the decisions
/// compare file names.
pub(super) fn of_file(file: &str) -> Expr {
    datafusion::functions::expr_fn::lower(ident("fileName")).eq(lit(file.to_lowercase()))
}

/// Each user's unmanaged elevations, by user name; each user's files by name.
fn per_user(unmanaged: Unmanaged, names: &Names) -> Vec<UserUnmanaged> {
    let time = |micros: i64| DateTime::<Utc>::from_timestamp_micros(micros);
    let mut files: HashMap<u32, Vec<(String, u64)>> = HashMap::new();
    for ((user, file), span) in &unmanaged.per_file {
        files
            .entry(*user)
            .or_default()
            .push((unmanaged.file_names[*file as usize].clone(), span.elevations as u64));
    }
    let mut out: Vec<UserUnmanaged> = unmanaged
        .per_user
        .iter()
        .map(|(user, (span, devices))| {
            let mut files = files.remove(user).unwrap_or_default();
            files.sort();
            UserUnmanaged {
                user: *user,
                upn: names.users.get(*user).cloned().unwrap_or_default(),
                events: span.elevations as u64,
                devices: devices.len(),
                first: time(span.first),
                last: time(span.last),
                files,
            }
        })
        .collect();
    out.sort_by(|a, b| a.upn.cmp(&b.upn));
    out
}

/// What events reported about one rule.
#[derive(Debug, Default)]
struct RuleHistory {
    policy_name: Option<String>,
    file_name: Option<String>,
    hash_low: Option<String>,
    hash_high: Option<String>,
    elevation_type: Option<String>,
    last: Option<DateTime<Utc>>,
}

/// The rules events ever reported, per rule id: from `daily_suggestions` for the current days,
/// from the raw rows for every other day, merged (greatest policy, file and type, least and
/// greatest hash, last time).
async fn rule_history(
    ctx: &SessionContext,
    tenant: &str,
    rolled: &[NaiveDate],
) -> Result<BTreeMap<String, RuleHistory>, QueryError> {
    let decided = || {
        ident("ruleId")
            .is_not_null()
            .and(ident("processType").not_eq(lit("child")))
    };
    let per_rule = |frame: DataFrame, time: &str| -> Result<DataFrame, QueryError> {
        Ok(frame.filter(decided())?.aggregate(
            vec![ident("ruleId")],
            vec![
                max(ident("policyName")).alias("policyName"),
                max(ident("fileName")).alias("fileName"),
                min(ident("hash")).alias("hashLow"),
                max(ident("hash")).alias("hashHigh"),
                max(ident("elevationType")).alias("elevationType"),
                max(ident(time)).alias("lastMatched"),
            ],
        )?)
    };
    let mut raw = tenant_rows(ctx, Table::Elevations, tenant).await?;
    let mut frames = Vec::new();
    if !rolled.is_empty() {
        let rows = tenant_rows(ctx, Table::DailySuggestions, tenant)
            .await?
            .filter(ident("eventDate").in_list(dates(rolled), false))?;
        frames.push(per_rule(rows, "last")?);
        raw = raw.filter(ident("eventDate").in_list(dates(rolled), true))?;
    }
    frames.push(per_rule(raw, "eventDateTime")?);
    let mut history: BTreeMap<String, RuleHistory> = BTreeMap::new();
    for frame in frames {
        for batch in frame.collect().await? {
            let cells: Vec<Vec<Cell>> = batch.columns().iter().map(column_cells).collect::<Result<_, _>>()?;
            let rows = (0..batch.num_rows()).map(|r| cells.iter().map(|c| &c[r]).collect::<Vec<&Cell>>());
            for row in rows {
                let text = |i: usize| row[i].as_text().map(str::to_owned);
                let Some(rule_id) = text(0) else { continue };
                let seen = history.entry(rule_id).or_default();
                let greatest = |slot: &mut Option<String>, new: Option<String>| {
                    if new > *slot {
                        *slot = new;
                    }
                };
                greatest(&mut seen.policy_name, text(1));
                greatest(&mut seen.file_name, text(2));
                if let Some(low) = text(3)
                    && seen.hash_low.as_ref().is_none_or(|known| low < *known)
                {
                    seen.hash_low = Some(low);
                }
                greatest(&mut seen.hash_high, text(4));
                greatest(&mut seen.elevation_type, text(5));
                seen.last = seen.last.max(row[6].as_time());
            }
        }
    }
    Ok(history)
}

/// Every rule the tenant is known to have: imported ones, and those events ever reported
/// (in all retained history, not only the window), merged by policy and file name. A rule's
/// elevations in the window are its groups'.
fn known_rules(request: &SuggestRequest, history: BTreeMap<String, RuleHistory>, groups: &[Group]) -> Vec<KnownRule> {
    let mut rules: Vec<KnownRule> = Vec::new();
    for policy in &request.imported {
        for rule in &policy.rules {
            let matches_in_window = groups
                .iter()
                .filter(|g| {
                    !g.child
                        && g.rule_id.is_some()
                        && g.policy_name.as_deref() == Some(policy.name.as_str())
                        && g.file_name.eq_ignore_ascii_case(&rule.file_name)
                })
                .map(|g| g.events)
                .sum();
            rules.push(KnownRule {
                reference: RuleRef {
                    policy_name: policy.name.clone(),
                    rule_name: Some(rule.name.clone()),
                    rule_id: None,
                    file_name: rule.file_name.clone(),
                    file_hash: rule.file_hash.clone(),
                    rule_type: Some(rule.rule_type),
                    matches_in_window,
                    last_matched: None,
                },
                imported: Some(rule.clone()),
            });
        }
    }
    let mut in_window: HashMap<&str, u64> = HashMap::new();
    for g in groups.iter().filter(|g| !g.child) {
        if let Some(id) = &g.rule_id {
            *in_window.entry(id.as_str()).or_default() += g.events;
        }
    }
    for (rule_id, seen) in history {
        let Some(file_name) = seen.file_name else {
            continue;
        };
        let policy_name = seen.policy_name.unwrap_or_default();
        // One hash ever seen: the rule pins it.
        let pinned = (seen.hash_low == seen.hash_high).then_some(seen.hash_high).flatten();
        let rule_type = seen.elevation_type.and_then(|t| rule_type_of(&t));
        let last_matched = seen.last;
        let in_window = in_window.get(rule_id.as_str()).copied().unwrap_or(0);
        let same = rules
            .iter_mut()
            .find(|r| r.reference.policy_name == policy_name && r.reference.file_name.eq_ignore_ascii_case(&file_name));
        match same {
            Some(known) => {
                known.reference.rule_id = Some(rule_id);
                known.reference.last_matched = last_matched;
            }
            None => rules.push(KnownRule {
                reference: RuleRef {
                    policy_name,
                    rule_name: None,
                    rule_id: Some(rule_id),
                    file_name,
                    file_hash: pinned,
                    rule_type,
                    matches_in_window: in_window,
                    last_matched,
                },
                imported: None,
            }),
        }
    }
    rules
}

pub(super) fn rule_type_of(elevation_type: &str) -> Option<RuleType> {
    RuleType::EVERY
        .into_iter()
        .find(|t| t.elevation_type().as_str() == elevation_type)
}
