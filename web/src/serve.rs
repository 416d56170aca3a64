//! The accept loop every node serves its router with: hyper's HTTP/1 connections under the
//! time-outs a public endpoint needs, a graceful stop, and the lingering close of a body
//! refused by its announced length.
//!
//! `axum::serve` has no header time-out: a client that sends its request headers one byte a
//! second (slowloris) held its connection for as long as it liked. Here a request's headers
//! must arrive within [`Timeouts::headers`]; bodies are bounded by the routes that read them
//! ([`Timeouts::body`]).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, map_request};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::{ApiError, ErrorCode};

/// How long a client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From a connection's first byte (or the end of its previous answer) to the end of a
    /// request's headers; a slower client is disconnected. 10 s: real clients send their
    /// headers in one packet.
    pub headers: Duration,
    /// To receive a whole request body once its headers are in; a slower upload is answered
    /// `408 request_timeout`, and the upload slot it held is free again. 60 s: an agent's 8 MiB
    /// batch over a 2 Mbit/s link takes about 35 s.
    pub body: Duration,
    /// How long requests in flight may take to finish once the server is told to stop.
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            headers: Duration::from_secs(10),
            body: Duration::from_secs(60),
            drain: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (at most [`Timeouts::drain`]). With `tls`, every connection is HTTPS (its handshake
/// bounded by [`Timeouts::headers`] too) and requests carry an `https` URI, as an
/// absolute-form request would, so routes know they came over TLS.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeouts: Timeouts,
    tls: Option<crate::TlsConfig>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(timeouts.headers);
    let graceful = GracefulShutdown::new();
    let tls = tls.map(|config| {
        (
            tokio_rustls::TlsAcceptor::from(config),
            router.clone().layer(map_request(as_https)),
        )
    });
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine, so wait a little instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let http = http.clone();
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router.clone()));
                tokio::spawn(ended(watcher.watch(connection)));
            }
            Some((acceptor, https)) => {
                let (acceptor, service) = (acceptor.clone(), TowerToHyperService::new(https.clone()));
                // The handshake in the connection's own task: a slow one never delays others.
                tokio::spawn(async move {
                    match tokio::time::timeout(timeouts.headers, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            ended(watcher.watch(http.serve_connection(TokioIo::new(stream), service))).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(timeouts.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            seconds = timeouts.drain.as_secs(),
            "requests still in flight after the drain time-out were cut off"
        );
    }
}

async fn ended(connection: impl Future<Output = Result<(), hyper::Error>>) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Gives a request that came over TLS an absolute `https` URI (its path and query unchanged).
async fn as_https(mut request: Request) -> Request {
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<axum::http::uri::Authority>().ok());
    if let Some(authority) = authority {
        let mut parts = request.uri().clone().into_parts();
        parts.scheme = Some(axum::http::uri::Scheme::HTTPS);
        parts.authority = Some(authority);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(axum::http::uri::PathAndQuery::from_static("/"));
        }
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// What a refused body may still send: read and thrown away before the answer (see
/// [`refuse_announced_oversize`]).
const LINGER_BYTES: u64 = 64 << 20;
/// How long a refused body may take to arrive before the answer goes out anyway.
const LINGER_TIME: Duration = Duration::from_secs(5);

/// Middleware: refuses a request whose `Content-Length` exceeds `limit` with `413
/// body_too_large` at once, from its headers, before anything reads the body. A client that
/// asked `Expect: 100-continue` then never sends the body. One that writes its whole body
/// before reading (Python's `http.client` does) would find the connection closed under it and
/// see a broken pipe instead of the answer, so the body is read and thrown away after the
/// answer, up to [`LINGER_BYTES`] within [`LINGER_TIME`] (RFC 9112 §9.6, lingering close);
/// then the connection closes.
pub async fn refuse_announced_oversize(limit: usize, request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(length) = announced.filter(|&length| length > limit as u64) else {
        return next.run(request).await;
    };
    let waits_for_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut response = ApiError::new(
        ErrorCode::BodyTooLarge,
        format!(
            "the body announces {length} bytes, more than the {} MiB this route takes; split the batch",
            limit >> 20
        ),
    )
    .into_response();
    if waits_for_continue || length > LINGER_BYTES {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    } else {
        // The connection reads the body only while someone holds it: this task, after the
        // answer went out.
        let mut body = request.into_body().into_data_stream();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + LINGER_TIME;
            while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, body.next()).await {}
        });
    }
    response
}
