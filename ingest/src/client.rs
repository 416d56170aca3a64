//! The agent's side of the upload: gzip, `POST`, and retries that honour `Retry-After`. Used
//! by `elevation simulate --target`, the demo and the benchmark; a real agent does the same.

use std::io::Write;
use std::time::Duration;

use crate::answer::BatchAnswer;

/// Why an upload failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the batch (a 4xx, or a 5xx after every retry).
    #[error("the server answered {status} {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The contract's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The server could not be reached, after every retry.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        /// Upload URL.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
}

/// An agent uploading batches with one key.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    url: String,
    key: String,
    /// Attempts per batch on `429`, `503` and connection errors.
    pub max_attempts: u32,
    /// Compress bodies with gzip (agents do; the benchmark measures both).
    pub gzip: bool,
}

impl AgentClient {
    /// A client for the server at `base` (`http://host:port`).
    pub fn new(base: &str, key: &str) -> AgentClient {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a plain HTTP client builds");
        AgentClient {
            http,
            url: format!("{}/v1/agent/batches", base.trim_end_matches('/')),
            key: key.to_owned(),
            max_attempts: 8,
            gzip: true,
        }
    }

    /// Gzips a batch body the way agents send it.
    pub fn compress(json: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 6), flate2::Compression::fast());
        encoder.write_all(json).expect("writing to memory");
        encoder.finish().expect("writing to memory")
    }

    /// Uploads one batch (its JSON text), retrying while the server sheds load.
    pub async fn upload(&self, json: &[u8]) -> Result<BatchAnswer, ClientError> {
        let body = if self.gzip { Self::compress(json) } else { json.to_vec() };
        self.upload_prepared(body).await
    }

    /// Uploads a body that is already encoded as `self.gzip` says.
    pub async fn upload_prepared(&self, body: Vec<u8>) -> Result<BatchAnswer, ClientError> {
        let body = bytes::Bytes::from(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .post(&self.url)
                .bearer_auth(&self.key)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if self.gzip {
                request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(source) if attempt < self.max_attempts => {
                    tracing::debug!(error = %source, attempt, "upload failed; retrying");
                    tokio::time::sleep(backoff(attempt, None)).await;
                    continue;
                }
                Err(source) => {
                    return Err(ClientError::Unreachable {
                        url: self.url.clone(),
                        source,
                    });
                }
            };
            let status = response.status();
            if status.is_success() {
                return response
                    .json::<BatchAnswer>()
                    .await
                    .map_err(|source| ClientError::Unreachable {
                        url: self.url.clone(),
                        source,
                    });
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let retryable = status.as_u16() == 429 || status.as_u16() == 503;
            if retryable && attempt < self.max_attempts {
                tokio::time::sleep(backoff(attempt, retry_after)).await;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            // Read as text, not as `web::ErrorCode`: a newer server may answer codes this
            // client does not know yet.
            let (code, message) = match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(body) if body["error"]["code"].is_string() => (
                    body["error"]["code"].as_str().unwrap_or_default().to_owned(),
                    body["error"]["message"].as_str().unwrap_or_default().to_owned(),
                ),
                _ => ("unknown".to_owned(), text),
            };
            return Err(ClientError::Refused {
                status: status.as_u16(),
                code,
                message,
            });
        }
    }
}

/// Exponential backoff with the server's `Retry-After` as the floor, capped at 10 s.
fn backoff(attempt: u32, retry_after: Option<u64>) -> Duration {
    let exponential = Duration::from_millis(50u64 << attempt.min(8));
    let floor = Duration::from_secs(retry_after.unwrap_or(0));
    exponential.max(floor).min(Duration::from_secs(10))
}

/// What uploading many batches did.
#[derive(Debug, Default)]
pub struct UploadReport {
    /// Every answer, in the order of the bodies.
    pub answers: Vec<BatchAnswer>,
    /// Time from sending to the durable answer, per batch.
    pub latencies: Vec<Duration>,
    /// Wall time of the whole upload.
    pub elapsed: Duration,
}

impl UploadReport {
    /// Sum of the answers' counts: `(accepted, dropped by policy, rejected)` events.
    pub fn totals(&self) -> (crate::Counts, crate::Counts, u64) {
        let mut accepted = crate::Counts::default();
        let mut dropped = crate::Counts::default();
        let mut rejected = 0;
        for a in &self.answers {
            accepted.elevations += a.accepted.elevations;
            accepted.diagnostics += a.accepted.diagnostics;
            dropped.elevations += a.dropped_by_policy.elevations;
            dropped.diagnostics += a.dropped_by_policy.diagnostics;
            rejected += a.rejected.len() as u64;
        }
        (accepted, dropped, rejected)
    }

    /// The latency below which `quantile` (0..=1) of the uploads were answered.
    pub fn latency_quantile(&self, quantile: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * quantile).round().max(0.0) as usize;
        sorted.get(index).copied().unwrap_or_default()
    }
}

impl AgentClient {
    /// Uploads prepared bodies (encoded as `self.gzip` says) with `concurrency` uploads in
    /// flight, like that many agents at once. Stops at the first batch refused for good.
    pub async fn upload_all(&self, bodies: Vec<Vec<u8>>, concurrency: usize) -> Result<UploadReport, ClientError> {
        use futures::StreamExt;
        let started = std::time::Instant::now();
        let results: Vec<Result<(BatchAnswer, Duration), ClientError>> =
            futures::stream::iter(bodies.into_iter().map(|body| async move {
                let sent = std::time::Instant::now();
                let answer = self.upload_prepared(body).await?;
                Ok((answer, sent.elapsed()))
            }))
            .buffered(concurrency.max(1))
            .collect()
            .await;
        let mut report = UploadReport::default();
        for result in results {
            let (answer, latency) = result?;
            report.answers.push(answer);
            report.latencies.push(latency);
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }
}
