//! The audit log, modelled on Intune's `auditEvent`: who (actor and key id) did what
//! (activity, operation, result) to which target (type, id, old and new values), when, under
//! which correlation id (the request's `x-request-id`, or a fresh id per CLI command).
//!
//! It is append-only and hash-chained per tenant: each entry carries `seq` (1, 2, …), the hash
//! of the entry before it, and its own hash, SHA-256 over a canonical serialisation of every
//! field including `seq` and `prevHash`. `audit_heads` holds each chain's newest entry; every
//! writer of a tenant locks that row first, so appends from several nodes form one chain.
//! [`verify`] recomputes a chain and says which entry was edited, removed or reordered.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ControlError;
use crate::store::{Tx, parse_time, time_text};

/// The `prevHash` of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// `admin` (an admin key over the API), `cli` (a shell command), `system` (the node itself).
    #[serde(rename = "type")]
    pub kind: String,
    /// The person: the admin key's UPN, `--actor`, or `cli:<user>@<host>`.
    pub user_principal_name: String,
    /// The admin key used, if any.
    #[serde(default)]
    pub key_id: Option<String>,
}

impl Actor {
    /// An admin acting through the API with a key.
    pub fn admin(principal: &crate::Principal) -> Actor {
        Actor {
            kind: "admin".into(),
            user_principal_name: principal.actor_name(),
            key_id: Some(principal.key_id.clone()),
        }
    }

    /// A shell command: `--actor UPN` when given, else `cli:<os user>@<hostname>`.
    pub fn cli(actor: Option<&str>) -> Actor {
        let name = actor.map(str::to_owned).unwrap_or_else(|| {
            let user = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into());
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .or_else(|| std::env::var("HOSTNAME").ok())
                .unwrap_or_else(|| "localhost".into());
            format!("cli:{user}@{host}")
        });
        Actor {
            kind: "cli".into(),
            user_principal_name: name,
            key_id: None,
        }
    }

    /// The node itself (moving the JSON files into the store).
    pub fn system() -> Actor {
        Actor {
            kind: "system".into(),
            user_principal_name: "system".into(),
            key_id: None,
        }
    }
}

/// Who is acting and under which correlation id: what every audited call takes.
#[derive(Debug, Clone)]
pub struct AuditContext {
    /// Who.
    pub actor: Actor,
    /// The request's `x-request-id`, or a fresh UUID for a CLI command.
    pub correlation_id: String,
}

impl AuditContext {
    /// An admin API call.
    pub fn http(principal: &crate::Principal, request_id: Option<&str>) -> AuditContext {
        AuditContext {
            actor: Actor::admin(principal),
            correlation_id: request_id
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        }
    }

    /// A shell command (see [`Actor::cli`]).
    pub fn cli(actor: Option<&str>) -> AuditContext {
        AuditContext {
            actor: Actor::cli(actor),
            correlation_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// One changed property of the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifiedProperty {
    /// The property.
    pub display_name: String,
    /// Before (none when created).
    pub old_value: Option<String>,
    /// After (none when removed).
    pub new_value: Option<String>,
}

impl ModifiedProperty {
    /// A property change.
    pub fn new(name: &str, old: Option<String>, new: Option<String>) -> ModifiedProperty {
        ModifiedProperty {
            display_name: name.into(),
            old_value: old,
            new_value: new,
        }
    }
}

/// What an action records, before the log gives it a place in the chain.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Stable name, e.g. `createKey` (what `--activity` filters on).
    pub activity: &'static str,
    /// Intune's `activityOperationType`: `Create`, `Delete`, `Patch` or `Action`.
    pub operation: &'static str,
    /// `success` or `failure`.
    pub result: &'static str,
    /// Target type, e.g. `apiKey`, `tenantSettings`, `rulesPolicy`, `export`.
    pub resource_type: &'static str,
    /// Target id.
    pub resource_id: String,
    /// Old and new values.
    pub modified: Vec<ModifiedProperty>,
}

/// What producing a rules export records (the command line and the API alike).
pub fn export_draft(file: &str, from: DateTime<Utc>, to: DateTime<Utc>, suggestions: usize) -> Draft {
    Draft {
        activity: "exportRules",
        operation: "Action",
        result: "success",
        resource_type: "export",
        resource_id: file.to_owned(),
        modified: vec![
            span("window", from, to),
            ModifiedProperty::new("suggestions", None, Some(suggestions.to_string())),
        ],
    }
}

/// What producing a compliance evidence pack records (the command line and the API alike): the
/// period, the SHA-256 of the pack's manifest (which names every file's hash) and its elevations.
pub fn compliance_pack_draft(from: DateTime<Utc>, to: DateTime<Utc>, manifest_sha256: &str, elevations: u64) -> Draft {
    Draft {
        activity: "produceCompliancePack",
        operation: "Action",
        result: "success",
        resource_type: "compliancePack",
        resource_id: manifest_sha256.to_owned(),
        modified: vec![
            span("period", from, to),
            ModifiedProperty::new("elevations", None, Some(elevations.to_string())),
        ],
    }
}

/// A time span as a new value: `FROM to TO`.
fn span(name: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> ModifiedProperty {
    ModifiedProperty::new(name, None, Some(format!("{} to {}", time_text(from), time_text(to))))
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// The tenant whose chain holds it.
    pub tenant: String,
    /// Its place in the chain: 1, 2, …
    pub seq: i64,
    /// A unique id.
    pub id: String,
    /// When (UTC).
    pub activity_date_time: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What (stable name).
    pub activity: String,
    /// `Create`, `Delete`, `Patch` or `Action`.
    pub activity_operation_type: String,
    /// `success` or `failure`.
    pub activity_result: String,
    /// Target type.
    pub resource_type: String,
    /// Target id.
    pub resource_id: String,
    /// Old and new values.
    pub modified_properties: Vec<ModifiedProperty>,
    /// The request's `x-request-id` or the CLI command's id.
    pub correlation_id: String,
    /// Hash of the entry before (GENESIS for the first).
    pub prev_hash: String,
    /// SHA-256 of this entry's canonical form.
    pub hash: String,
}

/// The canonical form that is hashed: every field, in this order, as compact JSON. Changing it
/// changes every hash: bump `v` and keep verifying old entries with the old form.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Canonical<'a> {
    v: u32,
    tenant: &'a str,
    seq: i64,
    id: &'a str,
    activity_date_time: String,
    actor_type: &'a str,
    actor_upn: &'a str,
    actor_key_id: Option<&'a str>,
    activity: &'a str,
    activity_operation_type: &'a str,
    activity_result: &'a str,
    resource_type: &'a str,
    resource_id: &'a str,
    modified_properties: &'a [ModifiedProperty],
    correlation_id: &'a str,
    prev_hash: &'a str,
}

impl AuditEvent {
    /// The hash this entry has when it stands at `seq`.
    pub fn compute_hash(&self, seq: i64) -> String {
        let canonical = Canonical {
            v: 1,
            tenant: &self.tenant,
            seq,
            id: &self.id,
            activity_date_time: time_text(self.activity_date_time),
            actor_type: &self.actor.kind,
            actor_upn: &self.actor.user_principal_name,
            actor_key_id: self.actor.key_id.as_deref(),
            activity: &self.activity,
            activity_operation_type: &self.activity_operation_type,
            activity_result: &self.activity_result,
            resource_type: &self.resource_type,
            resource_id: &self.resource_id,
            modified_properties: &self.modified_properties,
            correlation_id: &self.correlation_id,
            prev_hash: &self.prev_hash,
        };
        let bytes = serde_json::to_vec(&canonical).expect("plain data serialises");
        hex::encode(Sha256::digest(&bytes))
    }
}

/// The newest entry of a tenant's chain, locked for this transaction.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    tenant: String,
    seq: i64,
    hash: String,
}

/// Locks the tenant's chain for this transaction (creating it when new) and returns its head.
/// Every write of a tenant calls this first, so writers of one tenant queue on every node and
/// what they read before writing is still true when they commit.
pub(crate) async fn lock_head(tx: &mut Tx, tenant: &str) -> Result<Head, ControlError> {
    let postgres = tx.is_postgres();
    let (seq, hash): (i64, String) = crate::on!(tx, conn => {
        sqlx::query("INSERT INTO audit_heads (tenant, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (tenant) DO NOTHING")
            .bind(tenant)
            .bind(GENESIS)
            .execute(&mut *conn)
            .await?;
        // SQLite writers already hold the file's write lock (BEGIN IMMEDIATE).
        let sql = if postgres {
            "SELECT seq, hash FROM audit_heads WHERE tenant = $1 FOR UPDATE"
        } else {
            "SELECT seq, hash FROM audit_heads WHERE tenant = $1"
        };
        sqlx::query_as(sql).bind(tenant).fetch_one(&mut *conn).await?
    });
    Ok(Head {
        tenant: tenant.to_owned(),
        seq,
        hash,
    })
}

/// Appends an entry after `head` (which must have been locked in this transaction) and moves
/// the head. Returns the entry; `head` now points at it.
pub(crate) async fn append(
    tx: &mut Tx,
    head: &mut Head,
    context: &AuditContext,
    draft: Draft,
    now: DateTime<Utc>,
) -> Result<AuditEvent, ControlError> {
    let mut event = AuditEvent {
        tenant: head.tenant.clone(),
        seq: head.seq + 1,
        id: uuid::Uuid::new_v4().to_string(),
        activity_date_time: now,
        actor: context.actor.clone(),
        activity: draft.activity.into(),
        activity_operation_type: draft.operation.into(),
        activity_result: draft.result.into(),
        resource_type: draft.resource_type.into(),
        resource_id: draft.resource_id,
        modified_properties: draft.modified,
        correlation_id: context.correlation_id.clone(),
        prev_hash: head.hash.clone(),
        hash: String::new(),
    };
    event.hash = event.compute_hash(event.seq);
    let modified = serde_json::to_string(&event.modified_properties).expect("plain data serialises");
    crate::on!(tx, conn => {
        sqlx::query(
            "INSERT INTO audit_events (tenant, seq, id, activity_date_time, actor_type, actor_upn, actor_key_id, \
             activity, activity_operation_type, activity_result, resource_type, resource_id, modified_properties, \
             correlation_id, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&event.tenant)
        .bind(event.seq)
        .bind(&event.id)
        .bind(time_text(event.activity_date_time))
        .bind(&event.actor.kind)
        .bind(&event.actor.user_principal_name)
        .bind(&event.actor.key_id)
        .bind(&event.activity)
        .bind(&event.activity_operation_type)
        .bind(&event.activity_result)
        .bind(&event.resource_type)
        .bind(&event.resource_id)
        .bind(&modified)
        .bind(&event.correlation_id)
        .bind(&event.prev_hash)
        .bind(&event.hash)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant = $1")
            .bind(&event.tenant)
            .bind(event.seq)
            .bind(&event.hash)
            .execute(&mut *conn)
            .await?;
    });
    head.seq = event.seq;
    head.hash = event.hash.clone();
    Ok(event)
}

/// Which entries `list` returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// From this instant (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Before this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Only this actor (UPN, exact).
    pub actor: Option<String>,
    /// Only this activity (exact, e.g. `revokeKey`).
    pub activity: Option<String>,
    /// At most this many entries.
    pub limit: Option<i64>,
    /// Skip this many first.
    pub offset: Option<i64>,
}

const COLUMNS: &str = "tenant, seq, id, activity_date_time, actor_type, actor_upn, actor_key_id, activity, \
     activity_operation_type, activity_result, resource_type, resource_id, modified_properties, correlation_id, \
     prev_hash, hash";

type Row = (
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

/// Reads a stored row. `Err` carries a description when a field cannot be read (hand-edited).
fn from_row(row: Row) -> Result<AuditEvent, String> {
    let (
        tenant,
        seq,
        id,
        at,
        actor_type,
        actor_upn,
        actor_key_id,
        activity,
        operation,
        result,
        rtype,
        rid,
        modified,
        cid,
        prev,
        hash,
    ) = row;
    let activity_date_time = parse_time(&at).map_err(|e| e.to_string())?;
    let modified_properties =
        serde_json::from_str(&modified).map_err(|e| format!("modified properties of entry {seq}: {e}"))?;
    Ok(AuditEvent {
        tenant,
        seq,
        id,
        activity_date_time,
        actor: Actor {
            kind: actor_type,
            user_principal_name: actor_upn,
            key_id: actor_key_id,
        },
        activity,
        activity_operation_type: operation,
        activity_result: result,
        resource_type: rtype,
        resource_id: rid,
        modified_properties,
        correlation_id: cid,
        prev_hash: prev,
        hash,
    })
}

/// A tenant's entries matching `filter`, in chain order.
pub(crate) async fn list(tx: &mut Tx, tenant: &str, filter: &AuditFilter) -> Result<Vec<AuditEvent>, ControlError> {
    // Values are bound, never formatted into the SQL: only the numbered placeholders vary.
    let mut sql = format!("SELECT {COLUMNS} FROM audit_events WHERE tenant = $1");
    let mut texts: Vec<String> = Vec::new();
    for (column, value) in [
        ("activity_date_time >=", filter.from.map(time_text)),
        ("activity_date_time <", filter.to.map(time_text)),
        ("actor_upn =", filter.actor.clone()),
        ("activity =", filter.activity.clone()),
    ] {
        if let Some(value) = value {
            texts.push(value);
            sql.push_str(&format!(" AND {column} ${}", texts.len() + 1));
        }
    }
    sql.push_str(&format!(
        " ORDER BY seq LIMIT ${} OFFSET ${}",
        texts.len() + 2,
        texts.len() + 3
    ));
    let limit = filter.limit.unwrap_or(i64::MAX).max(0);
    let offset = filter.offset.unwrap_or(0).max(0);
    let rows: Vec<Row> = crate::on!(tx, conn => {
        let mut query = sqlx::query_as(&sql).bind(tenant);
        for text in &texts {
            query = query.bind(text);
        }
        query.bind(limit).bind(offset).fetch_all(&mut *conn).await?
    });
    rows.into_iter()
        .map(|r| from_row(r).map_err(ControlError::Corrupt))
        .collect()
}

/// What is wrong with one place of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Problem {
    /// The entry at `seq` no longer matches its hash, or the entry after it was chained to a
    /// different version of it.
    Edited {
        /// Where.
        seq: i64,
    },
    /// Entries `from..=to` are missing.
    Removed {
        /// First missing.
        from: i64,
        /// Last missing.
        to: i64,
    },
    /// The entry at `seq` is intact but was written as entry `was`.
    Reordered {
        /// Where it is.
        seq: i64,
        /// Where it was written.
        was: i64,
    },
    /// Entries after `seq` were added outside elevation (the recorded head is older).
    Added {
        /// The recorded head.
        seq: i64,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Edited { seq } => write!(f, "entry {seq} was edited: its content no longer matches its hash"),
            Problem::Removed { from, to } if from == to => write!(f, "entry {from} was removed"),
            Problem::Removed { from, to } => write!(f, "entries {from} to {to} were removed"),
            Problem::Reordered { seq, was } => write!(f, "entry {seq} was reordered: it was written as entry {was}"),
            Problem::Added { seq } => write!(f, "entries after {seq} were added outside elevation"),
        }
    }
}

/// The verification of one tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The tenant.
    pub tenant: String,
    /// Entries read.
    pub entries: u64,
    /// The recorded head: seq and hash (keep it outside the database to detect a rewrite of
    /// the whole chain).
    pub head_seq: i64,
    /// The recorded head's hash.
    pub head_hash: String,
    /// What is wrong, in chain order; empty when the chain is intact.
    pub problems: Vec<Problem>,
}

/// Every tenant with an audit chain.
pub(crate) async fn tenants(tx: &mut Tx) -> Result<Vec<String>, ControlError> {
    let rows: Vec<(String,)> = crate::on!(tx, conn => {
        sqlx::query_as("SELECT tenant FROM audit_heads ORDER BY tenant").fetch_all(&mut *conn).await?
    });
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

/// Reads and checks a tenant's whole chain.
pub(crate) async fn verify(tx: &mut Tx, tenant: &str) -> Result<Verification, ControlError> {
    let (rows, head): (Vec<Row>, Option<(i64, String)>) = crate::on!(tx, conn => {
        let rows = sqlx::query_as(&format!("SELECT {COLUMNS} FROM audit_events WHERE tenant = $1 ORDER BY seq"))
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await?;
        let head = sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await?;
        (rows, head)
    });
    let entries = rows.len() as u64;
    // An entry whose fields cannot even be read was edited; it keeps its place and hash so the
    // entries around it are still checked.
    let events: Vec<Result<AuditEvent, (i64, String, String)>> = rows
        .into_iter()
        .map(|row| {
            let (seq, prev, hash) = (row.1, row.14.clone(), row.15.clone());
            from_row(row).map_err(|_| (seq, prev, hash))
        })
        .collect();
    let (head_seq, head_hash) = head.unwrap_or((0, GENESIS.to_owned()));
    let problems = check_chain(&events, head_seq, &head_hash);
    Ok(Verification {
        tenant: tenant.to_owned(),
        entries,
        head_seq,
        head_hash,
        problems,
    })
}

/// Checks a chain read in `seq` order. Each entry must match its own hash at its place, link
/// to the hash of the entry before it, and follow it without a gap; the recorded head must be
/// the last entry. An entry's original place is known from its links alone (the entry it was
/// chained after, and so on back to the first), which tells a moved entry from an edited one.
fn check_chain(events: &[Result<AuditEvent, (i64, String, String)>], head_seq: i64, head_hash: &str) -> Vec<Problem> {
    let parts = |e: &Result<AuditEvent, (i64, String, String)>| -> (i64, String, String) {
        match e {
            Ok(e) => (e.seq, e.prev_hash.clone(), e.hash.clone()),
            Err((seq, prev, hash)) => (*seq, prev.clone(), hash.clone()),
        }
    };
    let links: HashMap<String, String> = events
        .iter()
        .map(|e| {
            let (_, prev, hash) = parts(e);
            (hash, prev)
        })
        .collect();
    let mut positions: HashMap<String, Option<i64>> = HashMap::new();
    let mut problems = Vec::new();
    let (mut expected_seq, mut expected_prev) = (1, GENESIS.to_owned());
    let mut previous_reported = false;
    for event in events {
        let (seq, prev, hash) = parts(event);
        let before = problems.len();
        if seq > expected_seq {
            problems.push(Problem::Removed {
                from: expected_seq,
                to: seq - 1,
            });
        }
        // Where it was written: one after the entry it links to.
        let written_at = original_position(&prev, &links, &mut positions).map(|p| p + 1);
        match event {
            Err(_) => problems.push(Problem::Edited { seq }),
            Ok(e) if e.compute_hash(seq) != hash => match written_at {
                Some(was) if was != seq && e.compute_hash(was) == hash => {
                    problems.push(Problem::Reordered { seq, was })
                }
                _ => problems.push(Problem::Edited { seq }),
            },
            Ok(_) if prev != expected_prev && problems.len() == before && !previous_reported => {
                // Intact and in its place, but chained to another version of its predecessor:
                // that one was rewritten (with a new hash).
                if written_at.is_none() {
                    problems.push(Problem::Edited { seq: seq - 1 });
                }
            }
            Ok(_) => {}
        }
        previous_reported = problems.len() > before;
        expected_seq = seq + 1;
        expected_prev = hash;
    }
    let last = expected_seq - 1;
    if head_seq > last {
        problems.push(Problem::Removed {
            from: last + 1,
            to: head_seq,
        });
    } else if head_seq < last {
        problems.push(Problem::Added { seq: head_seq });
    } else if head_hash != expected_prev && !previous_reported {
        problems.push(Problem::Edited { seq: last });
    }
    problems
}

/// The place (seq) at which the entry with `hash` was written, following links back to the
/// first entry; `None` when a link leads to an entry that is not there. Memoised, and safe
/// against crafted cycles.
fn original_position(
    hash: &str,
    links: &HashMap<String, String>,
    memo: &mut HashMap<String, Option<i64>>,
) -> Option<i64> {
    let mut path = Vec::new();
    let mut current = hash.to_owned();
    let base = loop {
        if current == GENESIS {
            break Some(0);
        }
        if let Some(known) = memo.get(&current) {
            break *known;
        }
        if path.len() > links.len() {
            break None; // a cycle
        }
        match links.get(&current) {
            Some(prev) => {
                path.push(current);
                current = prev.clone();
            }
            None => break None,
        }
    };
    for (depth, h) in path.iter().rev().enumerate() {
        memo.insert(h.clone(), base.map(|b| b + depth as i64 + 1));
    }
    memo.get(hash)
        .copied()
        .flatten()
        .or(if hash == GENESIS { Some(0) } else { None })
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
