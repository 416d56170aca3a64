//! Leases: one node at a time for a job several nodes could do (the maintenance pass, issue
//! #20). A lease is a row (`name`, `holder`, `expires_at`) in the control plane's database,
//! which every node already shares. A node takes a free or expired lease, or renews its own,
//! with one conditional upsert; the database serialises competing nodes, so at most one
//! succeeds. [`LeaseKeeper`] renews every third of the lease's length; a node that dies stops
//! renewing and another takes the job over once the lease has expired.
//!
//! Times are the nodes' clocks (kept in step by NTP, like the rest of the control plane's
//! times); a lease of a minute tolerates skews far beyond NTP's. What a lease protects is
//! efficiency, not correctness: two maintenance passes at once would still be safe (Delta's
//! conditional commits make one of them lose and retry), only wasteful.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store::time_text;
use crate::{ControlError, ControlPlane};

impl ControlPlane {
    /// Takes the lease `name` for `holder` until `ttl` from now, or renews it when `holder`
    /// has it already. Answers whether `holder` has it now.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, ControlError> {
        let now = self.now();
        // A day at most: longer leases would only delay a take-over (and overflow the time).
        let ttl = ttl.min(Duration::from_secs(24 * 3600));
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(1));
        let mut tx = self.store().begin_write().await?;
        let taken = crate::on!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
            )
            .bind(name)
            .bind(holder)
            .bind(time_text(until))
            .bind(time_text(now))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        tx.commit().await?;
        Ok(taken == 1)
    }

    /// Gives the lease `name` up if `holder` has it, so another node may take it at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), ControlError> {
        let mut tx = self.store().begin_write().await?;
        crate::on!(&mut tx, conn => {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&mut *conn)
                .await?;
        });
        tx.commit().await
    }

    /// Who has the lease `name` and until when, if anyone has ever taken it.
    pub async fn lease_holder(&self, name: &str) -> Result<Option<(String, String)>, ControlError> {
        let mut tx = self.store().begin_read().await?;
        let row: Option<(String, String)> = crate::on!(&mut tx, conn => {
            sqlx::query_as("SELECT holder, expires_at FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
        });
        tx.commit().await?;
        Ok(row)
    }
}

/// Keeps trying to take (and then renewing) one lease for as long as it lives, and says
/// whether this node has it.
#[derive(Debug)]
pub struct LeaseKeeper {
    held: Arc<AtomicBool>,
    /// When the last successful renewal started: a renewal that hangs must not leave this
    /// node believing it holds a lease that has expired in the database.
    renewed: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    ttl: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// Starts keeping the lease `name` for `holder` with leases of `ttl`, on the current
    /// runtime. `changed` is told each time this node gains or loses the lease.
    pub fn start(
        control: Arc<ControlPlane>,
        name: &'static str,
        holder: String,
        ttl: Duration,
        changed: impl Fn(bool) + Send + 'static,
    ) -> LeaseKeeper {
        let held = Arc::new(AtomicBool::new(false));
        let flag = held.clone();
        let renewed = Arc::new(std::sync::Mutex::new(None));
        let last_renewal = renewed.clone();
        let every = (ttl / 3).max(Duration::from_millis(100));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let asked = std::time::Instant::now();
                let now_held = match control.try_lease(name, &holder, ttl).await {
                    Ok(taken) => {
                        *last_renewal.lock().expect("not poisoned") = taken.then_some(asked);
                        taken
                    }
                    Err(error) => {
                        // Unknown whether the renewal counted: this node stops starting work
                        // under the lease until it knows again.
                        tracing::warn!(%error, lease = name, "cannot renew the lease");
                        false
                    }
                };
                if flag.swap(now_held, Ordering::SeqCst) != now_held {
                    tracing::info!(lease = name, node = %holder, held = now_held, "lease changed hands");
                    changed(now_held);
                }
            }
        });
        LeaseKeeper {
            held,
            renewed,
            ttl,
            task,
        }
    }

    /// Whether this node holds the lease: it had it at its last renewal, and that renewal was
    /// asked for less than the lease's length ago.
    pub fn held(&self) -> bool {
        let fresh = self
            .renewed
            .lock()
            .expect("not poisoned")
            .is_some_and(|asked| asked.elapsed() < self.ttl);
        fresh && self.held.load(Ordering::SeqCst)
    }
}

impl LeaseKeeper {
    /// Stops renewing (a node shutting down; give the lease up with
    /// [`ControlPlane::release_lease`] after this).
    pub fn stop(&self) {
        self.task.abort();
        self.held.store(false, Ordering::SeqCst);
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
