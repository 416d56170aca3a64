//! The webhook outbox: who a tenant wants told (`webhooks`), and what is still to tell them
//! (`webhook_deliveries`). A delivery is written in the same transaction as the change it
//! tells of, so nothing decided goes untold and nothing untold was decided; any node that
//! serves sends what is due, claiming each delivery with a compare-and-set on its attempt
//! count, so two nodes never send the same attempt. Sending never blocks the request that
//! caused it: a target that is down is retried with backoff ([`send::retry_delay`]), logged,
//! and given up after the last attempt.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::send::{self, DeliveryError};
use crate::audit::{self, AuditContext, Draft, ModifiedProperty};
use crate::requests::ElevationRequest;
use crate::store::{Tx, parse_time, time_text};
use crate::{ControlError, ControlPlane};

/// How long a node that claimed a delivery has to send it before another node may.
const CLAIM_LEASE_SECONDS: i64 = 60;
/// How long one attempt waits for the target.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a webhook tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A device asked for an elevation.
    RequestCreated,
    /// A request was approved, denied, revoked or cancelled.
    RequestDecided,
}

impl WebhookEvent {
    /// The event type in the payload (Standard Webhooks' `type`).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::RequestCreated => "elevationRequest.created",
            WebhookEvent::RequestDecided => "elevationRequest.decided",
        }
    }
}

/// How a target wants its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Standard Webhooks: `{type, timestamp, data}` signed with the webhook's secret.
    Standard,
    /// A Microsoft Teams Workflows trigger: an Adaptive Card (also signed).
    Teams,
}

impl WebhookFormat {
    /// Every format, in the order they are listed (errors, the OpenAPI document).
    pub const ALL: [WebhookFormat; 2] = [WebhookFormat::Standard, WebhookFormat::Teams];

    /// Parses `standard` or `teams`.
    pub fn parse(text: &str) -> Result<WebhookFormat, ControlError> {
        WebhookFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = WebhookFormat::ALL.iter().map(|f| f.as_str()).collect();
                ControlError::InvalidField {
                    field: "format",
                    message: format!("must be {}, not {text:?}", names.join(" or ")),
                }
            })
    }

    /// The format as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Standard => "standard",
            WebhookFormat::Teams => "teams",
        }
    }
}

/// A registered target (its secret is shown once, when it is added).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Id.
    pub id: String,
    /// The target, its query hidden ([`send::redacted`]): a Teams Workflows URL's query is a
    /// credential, and neither listings nor the audit log may show it.
    pub url: String,
    /// Standard or Teams.
    pub format: WebhookFormat,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// One message to a target and how its sending went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The message id (`webhook-id`; the same on every attempt, so a receiver can drop repeats).
    pub id: String,
    /// The target.
    pub webhook_id: String,
    /// `elevationRequest.created` or `elevationRequest.decided`.
    pub event_type: String,
    /// Attempts made.
    pub attempts: i64,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (none once delivered or given up).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was given up.
    pub failed_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// The body a target of `format` gets for `event` about `request`.
fn payload(format: WebhookFormat, event: WebhookEvent, request: &ElevationRequest, now: DateTime<Utc>) -> String {
    let value = match format {
        WebhookFormat::Standard => serde_json::json!({
            "type": event.as_str(),
            "timestamp": time_text(now),
            "data": request,
        }),
        WebhookFormat::Teams => {
            let app = &request.application_detail;
            let title = match event {
                WebhookEvent::RequestCreated => format!(
                    "Elevation request: {} wants to run {} elevated",
                    request.requested_by_user_principal_name, app.file_name
                ),
                WebhookEvent::RequestDecided => format!(
                    "Elevation request {}: {} for {}",
                    request.status.as_str(),
                    app.file_name,
                    request.requested_by_user_principal_name
                ),
            };
            let mut facts = vec![
                ("Status".to_owned(), request.status.as_str().to_owned()),
                ("User".to_owned(), request.requested_by_user_principal_name.clone()),
                (
                    "Device".to_owned(),
                    format!("{} ({})", request.device_name, request.requested_on_device_id),
                ),
                ("File".to_owned(), format!("{} {}", app.file_path, app.file_name)),
                ("SHA-256".to_owned(), app.file_hash.clone()),
                ("Publisher".to_owned(), app.publisher_name.clone()),
                ("Justification".to_owned(), request.request_justification.clone()),
            ];
            if !request.review_completed_by_user_principal_name.is_empty() {
                facts.push((
                    "Decided by".to_owned(),
                    request.review_completed_by_user_principal_name.clone(),
                ));
                facts.push(("Reason".to_owned(), request.reviewer_justification.clone()));
            }
            let link = format!("/requests/{}", request.id);
            send::teams_card(&title, &facts, Some(&link))
        }
    };
    value.to_string()
}

/// Queues a message about `request` for every webhook of the tenant, in the caller's
/// transaction.
pub(crate) async fn enqueue(
    tx: &mut Tx,
    tenant: &str,
    event: WebhookEvent,
    request: &ElevationRequest,
    now: DateTime<Utc>,
) -> Result<(), ControlError> {
    let targets: Vec<(String, String)> = crate::on!(tx, conn => {
        sqlx::query_as("SELECT id, format FROM webhooks WHERE tenant = $1 ORDER BY id")
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await?
    });
    for (webhook_id, format) in targets {
        let format = WebhookFormat::parse(&format).map_err(|e| ControlError::Corrupt(e.to_string()))?;
        let body = payload(format, event, request, now);
        crate::on!(tx, conn => {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, tenant, webhook_id, event_type, payload, created_at, attempts, \
                 next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $6)",
            )
            .bind(format!("msg_{}", uuid::Uuid::new_v4().simple()))
            .bind(tenant)
            .bind(&webhook_id)
            .bind(event.as_str())
            .bind(&body)
            .bind(time_text(now))
            .execute(&mut *conn)
            .await?;
        });
    }
    Ok(())
}

type DueRow = (String, String, String, String, i64);

impl ControlPlane {
    /// Registers a target for the tenant's request events; returns it with its signing secret
    /// (shown once). The URL must be https (http to loopback only on a node started to allow
    /// it, for tests) and not a private or link-local address.
    pub async fn add_webhook(
        &self,
        context: &AuditContext,
        tenant: &str,
        url: &str,
        format: WebhookFormat,
    ) -> Result<(Webhook, String), ControlError> {
        let url = send::check_url(url, self.options().webhooks_allow_http_loopback).map_err(|e| match e {
            ControlError::Invalid(message) => ControlError::InvalidField { field: "url", message },
            other => other,
        })?;
        let now = self.now();
        let secret = send::new_secret();
        let webhook = Webhook {
            id: uuid::Uuid::new_v4().to_string(),
            url: send::redacted(&url),
            format,
            created_at: now,
        };
        let mut tx = self.store().begin_write().await?;
        let mut head = audit::lock_head(&mut tx, tenant).await?;
        crate::on!(&mut tx, conn => {
            sqlx::query("INSERT INTO webhooks (id, tenant, url, format, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&webhook.id)
                .bind(tenant)
                .bind(url.as_str())
                .bind(format.as_str())
                .bind(&secret)
                .bind(time_text(now))
                .execute(&mut *conn)
                .await?;
        });
        let draft = Draft {
            activity: "addWebhook",
            operation: "Create",
            result: "success",
            resource_type: "webhook",
            resource_id: webhook.id.clone(),
            modified: vec![
                ModifiedProperty::new("url", None, Some(webhook.url.clone())),
                ModifiedProperty::new("format", None, Some(format.as_str().to_owned())),
            ],
        };
        audit::append(&mut tx, &mut head, context, draft, now).await?;
        tx.commit().await?;
        Ok((webhook, secret))
    }

    /// The tenant's webhooks.
    pub async fn list_webhooks(&self, tenant: &str) -> Result<Vec<Webhook>, ControlError> {
        let mut tx = self.store().begin_read().await?;
        let rows: Vec<(String, String, String, String)> = crate::on!(&mut tx, conn => {
            sqlx::query_as("SELECT id, url, format, created_at FROM webhooks WHERE tenant = $1 ORDER BY created_at, id")
                .bind(tenant)
                .fetch_all(&mut *conn)
                .await?
        });
        tx.commit().await?;
        rows.into_iter()
            .map(|(id, url, format, created_at)| {
                let shown = url::Url::parse(&url)
                    .map(|u| send::redacted(&u))
                    .map_err(|e| ControlError::Corrupt(format!("webhook {id}: {e}")))?;
                Ok(Webhook {
                    format: WebhookFormat::parse(&format).map_err(|e| ControlError::Corrupt(e.to_string()))?,
                    created_at: parse_time(&created_at)?,
                    id,
                    url: shown,
                })
            })
            .collect()
    }

    /// Removes a webhook of the tenant (its undelivered messages are dropped with it).
    pub async fn remove_webhook(&self, context: &AuditContext, tenant: &str, id: &str) -> Result<(), ControlError> {
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let mut head = audit::lock_head(&mut tx, tenant).await?;
        let removed = crate::on!(&mut tx, conn => {
            sqlx::query("DELETE FROM webhook_deliveries WHERE tenant = $1 AND webhook_id = $2 AND delivered_at IS NULL")
                .bind(tenant)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM webhooks WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if removed == 0 {
            tx.commit().await?;
            return Err(ControlError::NotFound {
                what: "webhook",
                id: id.to_owned(),
            });
        }
        let draft = Draft {
            activity: "removeWebhook",
            operation: "Delete",
            result: "success",
            resource_type: "webhook",
            resource_id: id.to_owned(),
            modified: Vec::new(),
        };
        audit::append(&mut tx, &mut head, context, draft, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's newest deliveries (at most `limit`), newest first.
    pub async fn webhook_deliveries(&self, tenant: &str, limit: i64) -> Result<Vec<Delivery>, ControlError> {
        type Row = (
            String,
            String,
            String,
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let mut tx = self.store().begin_read().await?;
        let rows: Vec<Row> = crate::on!(&mut tx, conn => {
            sqlx::query_as(
                "SELECT id, webhook_id, event_type, attempts, delivered_at, next_attempt_at, failed_at, last_error \
                 FROM webhook_deliveries WHERE tenant = $1 ORDER BY created_at DESC, id LIMIT $2",
            )
            .bind(tenant)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        });
        tx.commit().await?;
        let time = |t: Option<String>| t.as_deref().map(parse_time).transpose();
        rows.into_iter()
            .map(
                |(id, webhook_id, event_type, attempts, delivered, next, failed, last_error)| {
                    Ok(Delivery {
                        id,
                        webhook_id,
                        event_type,
                        attempts,
                        delivered_at: time(delivered)?,
                        next_attempt_at: time(next)?,
                        failed_at: time(failed)?,
                        last_error,
                    })
                },
            )
            .collect()
    }

    /// Sends up to `limit` deliveries that are due, each claimed first; returns how many this
    /// call attempted. A failure is recorded and scheduled, never returned: the caller is a
    /// background loop.
    pub async fn deliver_due_webhooks(&self, limit: i64) -> Result<usize, ControlError> {
        let now = self.now();
        let mut tx = self.store().begin_read().await?;
        let due: Vec<DueRow> = crate::on!(&mut tx, conn => {
            sqlx::query_as(
                "SELECT d.id, w.url, w.secret, d.payload, d.attempts FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= $1 \
                 ORDER BY d.next_attempt_at, d.id LIMIT $2",
            )
            .bind(time_text(now))
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?
        });
        tx.commit().await?;
        let mut attempted = 0;
        for (id, url, secret, body, attempts) in due {
            if !self.claim_delivery(&id, attempts, now).await? {
                continue;
            }
            attempted += 1;
            let attempt = attempts + 1;
            let outcome = self.send_once(&id, &url, &secret, body).await;
            let now = self.now();
            let (delivered, next, failed, error) = match &outcome {
                Ok(_) => (Some(now), None, None, None),
                Err(e) => {
                    let retry = send::retry_delay(u32::try_from(attempt).unwrap_or(u32::MAX));
                    tracing::warn!(delivery = %id, attempt, error = %e, retrying = retry.is_some(), "webhook delivery failed");
                    match retry {
                        Some(delay) => (
                            None,
                            Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1))),
                            None,
                            Some(e.to_string()),
                        ),
                        None => (None, None, Some(now), Some(e.to_string())),
                    }
                }
            };
            let mut tx = self.store().begin_write().await?;
            crate::on!(&mut tx, conn => {
                sqlx::query(
                    "UPDATE webhook_deliveries SET delivered_at = $2, next_attempt_at = $3, failed_at = $4, last_error = $5 \
                     WHERE id = $1 AND attempts = $6",
                )
                .bind(&id)
                .bind(delivered.map(time_text))
                .bind(next.map(time_text))
                .bind(failed.map(time_text))
                .bind(&error)
                .bind(attempt)
                .execute(&mut *conn)
                .await?;
            });
            tx.commit().await?;
        }
        Ok(attempted)
    }

    /// Takes a delivery for one attempt: counts the attempt and pushes its due time past the
    /// lease, only if no other node did first.
    async fn claim_delivery(&self, id: &str, attempts: i64, now: DateTime<Utc>) -> Result<bool, ControlError> {
        let lease = now + chrono::Duration::seconds(CLAIM_LEASE_SECONDS);
        let mut tx = self.store().begin_write().await?;
        let claimed = crate::on!(&mut tx, conn => {
            sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
                 WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL AND failed_at IS NULL",
            )
            .bind(id)
            .bind(attempts)
            .bind(time_text(lease))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        tx.commit().await?;
        Ok(claimed == 1)
    }

    async fn send_once(&self, id: &str, url: &str, secret: &str, body: String) -> Result<u16, DeliveryError> {
        let url = url::Url::parse(url).map_err(|e| DeliveryError::Refused(e.to_string()))?;
        let timestamp = self.now().timestamp();
        let signature =
            send::sign(secret, id, timestamp, body.as_bytes()).map_err(|e| DeliveryError::Refused(e.to_string()))?;
        let headers = [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        send::deliver(
            &url,
            self.options().webhooks_allow_http_loopback,
            &headers,
            body.into_bytes(),
            SEND_TIMEOUT,
        )
        .await
    }

    /// Tells the delivery loop of this node that something was queued.
    pub(crate) fn wake_webhooks(&self) {
        self.webhook_wake().notify_one();
    }

    /// Sends deliveries as they come due until `stop` completes: at once when this node queued
    /// one, otherwise every second (deliveries queued by other nodes, retries).
    pub async fn run_webhook_deliveries(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            match self.deliver_due_webhooks(32).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the webhook outbox; trying again"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = self.webhook_wake().notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }
}
