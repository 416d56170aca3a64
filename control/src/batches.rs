//! Batch claims: idempotency shared by every ingest node on one control-plane database
//! (issue #20). Each node keeps its own index of the batches it stored (the `ingest` crate's
//! `dedup`); what no single node can know is that a retry it receives was stored by another.
//!
//! A claim is a row per `(tenant, deviceId, batchId)` naming the node that lands it and the
//! answer the agent was given. It is written by the lander, for a whole landing at once, just
//! before the landing's rows are committed: the first node to claim a batch lands it, and a
//! node that finds the batch claimed by another drops its copy. So storing stays exactly-once
//! whatever the timing, the write rate is one statement per landing rather than per upload,
//! and uploads need no database write (they go on while the database is down; their claims
//! wait in the write-ahead log with their rows). An upload looks the batch up first so that a
//! retry of a batch another node has landed is answered `"duplicate": true` with the first
//! answer; a retry arriving before the first copy has landed is answered as new, and dropped
//! when it lands.
//!
//! Claims are never given up: a node that claimed a batch and died before committing its rows
//! still holds them in its write-ahead log, and lands them under the same identity when it
//! restarts or when another node runs `elevation wal land --from` on its folder.

use std::collections::HashSet;

use crate::store::time_text;
use crate::{ControlError, ControlPlane};

/// A batch's key, as the agent sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchRef<'a> {
    /// The tenant of the agent key.
    pub tenant: &'a str,
    /// The device.
    pub device_id: &'a str,
    /// The agent's batch id.
    pub batch_id: &'a str,
}

/// A batch a node is about to land.
#[derive(Debug, Clone)]
pub struct BatchClaim<'a> {
    /// Which batch.
    pub batch: BatchRef<'a>,
    /// The answer the agent was given, as JSON: a retry on another node gets it back.
    pub answer: &'a str,
    /// When the node received it.
    pub received_at: chrono::DateTime<chrono::Utc>,
}

/// Rows per statement: PostgreSQL takes at most 65,535 parameters, six per claim.
const CLAIMS_PER_STATEMENT: usize = 5_000;

impl ControlPlane {
    /// Claims `claims` for `node`, all or none. Answers the positions (in `claims`) of the
    /// batches another node claimed first, and of any repeat of a batch earlier in `claims`:
    /// the caller must not land those.
    pub async fn claim_batches(&self, node: &str, claims: &[BatchClaim<'_>]) -> Result<Vec<usize>, ControlError> {
        // A key twice in one statement would fail it (PostgreSQL refuses to update a row twice
        // in one command), and with it every landing after: the first copy is claimed, the
        // others are dropped like copies another node holds.
        let mut seen = HashSet::new();
        let mut others = Vec::new();
        let mut unique: Vec<(usize, &BatchClaim<'_>)> = Vec::with_capacity(claims.len());
        for (position, claim) in claims.iter().enumerate() {
            if seen.insert(claim.batch) {
                unique.push((position, claim));
            } else {
                others.push(position);
            }
        }
        let mut tx = self.store().begin_write().await?;
        for chunk in unique.chunks(CLAIMS_PER_STATEMENT) {
            // The no-op update makes RETURNING yield the rows that were there already too,
            // each with the node that claimed it.
            let holders: Vec<(String, String, String, String)> = crate::on!(&mut tx, conn => {
                let mut statement = sqlx::QueryBuilder::new(
                    "INSERT INTO batch_claims (tenant, device_id, batch_id, node, answer, received_at) ",
                );
                statement.push_values(chunk, |mut row, (_, claim)| {
                    row.push_bind(claim.batch.tenant)
                        .push_bind(claim.batch.device_id)
                        .push_bind(claim.batch.batch_id)
                        .push_bind(node)
                        .push_bind(claim.answer)
                        .push_bind(time_text(claim.received_at));
                });
                statement.push(
                    " ON CONFLICT (tenant, device_id, batch_id) DO UPDATE SET node = batch_claims.node \
                     RETURNING tenant, device_id, batch_id, node",
                );
                statement.build_query_as().fetch_all(&mut *conn).await?
            });
            let claimed_by_others: HashSet<(&str, &str, &str)> = holders
                .iter()
                .filter(|(_, _, _, holder)| holder != node)
                .map(|(tenant, device, batch, _)| (tenant.as_str(), device.as_str(), batch.as_str()))
                .collect();
            for (position, claim) in chunk {
                let key = (claim.batch.tenant, claim.batch.device_id, claim.batch.batch_id);
                if claimed_by_others.contains(&key) {
                    others.push(*position);
                }
            }
        }
        tx.commit().await?;
        others.sort_unstable();
        Ok(others)
    }

    /// The answer given for `batch` by the node that claimed it, if any node did (and the
    /// claim is still inside the window). Skips the database while it is known to be down:
    /// the upload then goes on, and its claim settles it when it lands.
    pub async fn claimed_batch_answer(&self, batch: BatchRef<'_>) -> Result<Option<String>, ControlError> {
        if self.known_offline() {
            return Err(ControlError::Unavailable(
                "the control-plane database was unreachable moments ago".into(),
            ));
        }
        // Every upload asks this once: one statement, no transaction (a single read sees one
        // snapshot anyway).
        let looked_up = async {
            let mut conn = self.store().acquire().await?;
            let answer: Option<(String,)> = crate::on!(conn &mut conn, c => {
                sqlx::query_as("SELECT answer FROM batch_claims WHERE tenant = $1 AND device_id = $2 AND batch_id = $3")
                    .bind(batch.tenant)
                    .bind(batch.device_id)
                    .bind(batch.batch_id)
                    .fetch_optional(&mut *c)
                    .await?
            });
            Ok::<_, ControlError>(answer.map(|(a,)| a))
        };
        looked_up.await.inspect_err(|e| {
            if e.is_unavailable() {
                self.note_unreachable();
            }
        })
    }

    /// Deletes the claims of batches received before `before` (outside the idempotency
    /// window). Answers how many.
    pub async fn forget_batch_claims(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, ControlError> {
        let mut tx = self.store().begin_write().await?;
        let deleted = crate::on!(&mut tx, conn => {
            sqlx::query("DELETE FROM batch_claims WHERE received_at < $1")
                .bind(time_text(before))
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(deleted)
    }

    /// Whether several nodes may share this control plane (PostgreSQL): then the ingest nodes
    /// claim their batches here. One SQLite file serves one node, whose own index suffices.
    pub fn shared_between_nodes(&self) -> bool {
        self.backend() == "postgres"
    }
}
