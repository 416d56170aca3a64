//! The agent's upload, `POST /v1/agent/batches`: from the request to the durable answer
//! (slot, backlog, body limits and decompression, dedup, validation, the write-ahead log).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use control::ControlPlane;
use http_body_util::BodyExt;
use warehouse::Table;
use warehouse::validate::ValidationContext;

use crate::answer::{BatchAnswer, BatchKey};
use crate::batch::process;
use crate::dedup::Claim;
use crate::server::Shared;
use crate::wal::{self, LoggedBatch, RecordHeader};
use web::{ApiError, ErrorBody, ErrorCode};

/// The `Content-Encoding` the client sent (decompression removes the header), so a body that
/// fails to decompress is reported as such.
#[derive(Debug, Clone)]
struct SentEncoding;

pub(crate) async fn remember_encoding(mut request: Request) -> Request {
    if request.headers().contains_key(header::CONTENT_ENCODING) {
        request.extensions_mut().insert(SentEncoding);
    }
    request
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a body error is a size limit (ours, or tower-http's on the compressed body).
fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_length_limit(inner)
        {
            return true;
        }
        current = e.source();
    }
    false
}

/// How long an upload that finds the landing backlog full waits for a landing to make room
/// before it is answered `503 landing_backlog`. A landing of a busy second takes well under
/// this; turning agents away at once instead left the node idle while they waited out their
/// `Retry-After` (measured: 95k events/s with 503s, where the lander alone keeps up with more).
pub(crate) const BACKLOG_PATIENCE: Duration = Duration::from_secs(1);

#[utoipa::path(
    post,
    path = "/v1/agent/batches",
    tag = "agent",
    request_body(content = Object, content_type = "application/json",
        description = "One batch from one device (see the contract); Content-Encoding gzip or zstd allowed"),
    responses(
        (status = 200, description = "The batch is durable", body = BatchAnswer),
        (status = 400, description = "The envelope cannot be used", body = ErrorBody),
        (status = 401, description = "No or unknown agent key", body = ErrorBody),
        (status = 403, description = "Not an agent key", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the body time-out", body = ErrorBody),
        (status = 413, description = "Too large before or after decompression, or too many events", body = ErrorBody),
        (status = 415, description = "Wrong content type or encoding", body = ErrorBody),
        (status = 503, description = "Shedding load; retry after Retry-After seconds", body = ErrorBody),
    ),
    security(("agent_key" = []))
)]
pub(crate) async fn upload(State(shared): State<Arc<Shared>>, request: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    let Ok(_slot) = shared.upload_slots.try_acquire() else {
        metrics::counter!("elevation_ingest_batches_total", "tenant" => "unknown", "outcome" => "busy").increment(1);
        return Err(ApiError::unavailable(
            ErrorCode::ServerBusy,
            "the server is handling as many uploads as it can; retry after the Retry-After delay",
            1,
        ));
    };
    let (parts, body) = request.into_parts();
    let control::Authenticated { principal, settings } = web::auth::agent(&shared.control, &parts.headers)
        .await
        .inspect_err(|e| {
            if e.code == ErrorCode::Unauthorized {
                metrics::counter!("elevation_ingest_batches_total", "tenant" => "unknown", "outcome" => "unauthorized")
                    .increment(1);
            }
        })?;
    let tenant = principal.tenant.clone();
    if !is_json(&parts.headers) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the batch as `Content-Type: application/json`",
        ));
    }
    // The body is not read yet: an upload waiting for room holds its slot and its socket, not
    // its events.
    if !shared
        .buffer
        .wait_for_room(shared.config.max_buffered_bytes, BACKLOG_PATIENCE)
        .await
    {
        metrics::counter!("elevation_ingest_batches_total", "tenant" => tenant.clone(), "outcome" => "backlog")
            .increment(1);
        return Err(ApiError::unavailable(
            ErrorCode::LandingBacklog,
            "the server is behind on writing to the warehouse; retry after the Retry-After delay",
            1,
        ));
    }
    let encoded = parts.extensions.get::<SentEncoding>().is_some();
    let limits = shared.config.limits;
    let body = http_body_util::Limited::new(body, limits.max_decompressed_bytes).collect();
    let timeout = shared.config.timeouts.body;
    let body = tokio::time::timeout(timeout, body)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the body did not arrive within {} s; send it faster or in smaller batches",
                    timeout.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            if is_length_limit(e.as_ref()) {
                ApiError::new(
                    ErrorCode::BodyTooLarge,
                    format!(
                        "the body exceeds {} MiB as sent or {} MiB decompressed; split the batch",
                        limits.max_body_bytes >> 20,
                        limits.max_decompressed_bytes >> 20
                    ),
                )
            } else if encoded {
                ApiError::new(
                    ErrorCode::InvalidEncoding,
                    format!("the body does not decompress as its Content-Encoding says: {e}"),
                )
            } else {
                ApiError::new(ErrorCode::BodyReadFailed, format!("the body could not be read: {e}"))
            }
        })?;
    let body = body.to_bytes();
    let now = shared.clock.now();
    let cap = settings.reporting_cap;
    // The tenant's own windows: an event older than its retention would reopen a day that
    // retention closed (its rollups are then its only record, and must stay final).
    let validation = ValidationContext {
        elevation_retention_days: settings.retention_days(Table::Elevations),
        diagnostic_retention_days: settings.retention_days(Table::Diagnostics),
        ..ValidationContext::new(now)
    };
    // Parsing, validating and building the rows is the CPU of an upload: done on the
    // background runtime, so a report on this node keeps its share of the cores.
    let processing_tenant = tenant.clone();
    let processed = warehouse::background::handle()
        .spawn_blocking(move || process(&body, &processing_tenant, cap, now, &limits, &validation))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "an upload's processing task failed");
            ApiError::internal()
        })?
        .inspect_err(|e| {
            metrics::counter!("elevation_ingest_batches_total", "tenant" => tenant.clone(), "outcome" => e.code.as_str())
                .increment(1);
        })?;

    let answer = loop {
        let claim = shared.dedup.claim(&processed.key).map_err(|e| {
            // Stored before, but its first answer cannot be read: storing it again would
            // count its events twice, so the agent retries later instead.
            tracing::error!(error = %e, "cannot read a stored batch's answer");
            ApiError::unavailable(
                ErrorCode::StorageUnavailable,
                "the server cannot check whether this batch was stored before; nothing was stored, retry later",
                5,
            )
        })?;
        match claim {
            Claim::Stored(first) => break stored_before(&tenant, &first),
            Claim::Wait(mut receiver) => {
                // The same batch is being stored by another request: its outcome is ours.
                let outcome = receiver.wait_for(Option::is_some).await.ok().and_then(|v| v.clone());
                if let Some(Ok(first)) = outcome {
                    break BatchAnswer {
                        duplicate: true,
                        ..(*first).clone()
                    };
                }
                continue;
            }
            Claim::New(guard) => {
                if let Some(first) = stored_by_another_node(&shared.control, &processed.key).await {
                    drop(guard);
                    break stored_before(&tenant, &first);
                }
                let header = RecordHeader {
                    key: processed.key.clone(),
                    received_at: now,
                    answer: processed.answer.clone(),
                };
                let payload =
                    wal::encode_payload(&header, processed.elevations.as_ref(), processed.diagnostics.as_ref());
                let record = LoggedBatch {
                    seq: 0,
                    header,
                    elevations: processed.elevations.clone(),
                    diagnostics: processed.diagnostics.clone(),
                };
                shared.wal.append(payload, record).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot make a batch durable");
                    ApiError::unavailable(
                        ErrorCode::StorageUnavailable,
                        "the server cannot store batches right now; nothing was stored, retry later",
                        5,
                    )
                })?;
                guard.finish(Arc::new(processed.answer.clone()), now);
                record_accepted(&tenant, &processed.answer);
                break processed.answer.clone();
            }
        }
    };
    metrics::histogram!("elevation_ingest_request_seconds").record(started.elapsed().as_secs_f64());
    Ok(axum::Json(answer).into_response())
}

/// The answer to a batch stored before (on this node or another): its first answer, marked
/// a duplicate, and counted as one.
fn stored_before(tenant: &str, first: &BatchAnswer) -> BatchAnswer {
    metrics::counter!("elevation_ingest_batches_total", "tenant" => tenant.to_owned(), "outcome" => "duplicate")
        .increment(1);
    BatchAnswer {
        duplicate: true,
        ..first.clone()
    }
}

/// The first answer of a batch another node sharing this control plane has landed (a retry
/// that crossed nodes). Not knowing (the database unreachable) is not an error: the upload is
/// stored, and the batch claims settle which copy lands.
async fn stored_by_another_node(control: &ControlPlane, key: &BatchKey) -> Option<BatchAnswer> {
    if !control.shared_between_nodes() {
        return None;
    }
    match control.claimed_batch_answer(key.as_batch_ref()).await {
        Ok(Some(json)) => serde_json::from_str(&json)
            .inspect_err(|e| tracing::warn!(error = %e, "a batch claim holds an answer this version cannot read"))
            .ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "cannot look the batch up in the control plane; its claim decides at landing");
            None
        }
    }
}

fn record_accepted(tenant: &str, answer: &BatchAnswer) {
    let outcome = if answer.rejected.is_empty() {
        "accepted"
    } else {
        "partial"
    };
    metrics::counter!("elevation_ingest_batches_total", "tenant" => tenant.to_owned(), "outcome" => outcome)
        .increment(1);
    let mut rejected = [0u64; 2];
    for r in &answer.rejected {
        rejected[usize::from(r.kind == warehouse::EventKind::Diagnostic)] += 1;
    }
    for (kind, accepted, dropped, rejected) in [
        (
            "elevation",
            answer.accepted.elevations,
            answer.dropped_by_policy.elevations,
            rejected[0],
        ),
        (
            "diagnostic",
            answer.accepted.diagnostics,
            answer.dropped_by_policy.diagnostics,
            rejected[1],
        ),
    ] {
        for (outcome, n) in [
            ("accepted", accepted),
            ("dropped_by_policy", dropped),
            ("rejected", rejected),
        ] {
            if n > 0 {
                metrics::counter!("elevation_ingest_events_total", "tenant" => tenant.to_owned(), "kind" => kind, "outcome" => outcome)
                    .increment(n);
            }
        }
    }
}
