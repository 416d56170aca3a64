//! The whole app: every route of the node (agent, admin, pages) under one set of layers, applied
//! once, so that every answer has an `x-request-id`, a request span in the log, and errors in
//! the contract's shape.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, ErrorCode};

/// One part of the node's HTTP face: its routes (state applied) and the OpenAPI document that
/// describes them.
pub struct Face {
    /// The routes.
    pub routes: Router,
    /// Their description.
    pub openapi: utoipa::openapi::OpenApi,
}

impl std::fmt::Debug for Face {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Face")
            .field("paths", &self.openapi.paths.paths.len())
            .finish()
    }
}

/// Builds the whole app from its parts (the agent side of `ingest`, the admin API and pages of
/// `dashboards`): one router, one OpenAPI document at `/openapi.json`, the layers applied once.
/// Unknown paths answer `404 not_found`.
pub fn app(faces: impl IntoIterator<Item = Face>) -> Router {
    let mut routes = Router::new();
    let mut openapi: Option<utoipa::openapi::OpenApi> = None;
    for face in faces {
        routes = routes.merge(face.routes);
        openapi = Some(match openapi {
            None => face.openapi,
            Some(mut document) => {
                document.merge(face.openapi);
                document
            }
        });
    }
    let document = std::sync::Arc::new(openapi.unwrap_or_else(|| utoipa::openapi::OpenApiBuilder::new().build()));
    routes
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()).into_response() }
            }),
        )
        .fallback(not_found)
        .layer(axum::middleware::map_response(in_contract_shape))
        .layer(axum::middleware::from_fn(timed))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        // The request id is the audit log's correlation id: set it when the client sent none.
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // A handler that panics (ours or a library's) answers 500 in the contract's shape
        // instead of dropping the connection; outermost, so the answer still gets its id.
        .layer(CatchPanicLayer::custom(answer_panic))
}

/// Records every answer in `elevation_http_request_seconds{route,method,status}`: the route as
/// its template (`/v1/reports/{name}`, never the values in it), so the labels stay bounded;
/// paths no route matched count as `unmatched`, methods outside the standard ones as `other`.
async fn timed(request: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // Standard methods by name; any other a client invents would grow the labels without end.
    let method: &'static str = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("elevation_http_request_seconds", "route" => route, "method" => method, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

fn answer_panic(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal().into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint; GET /openapi.json lists them")
}

/// Rewrites the plain-text errors of layers and routing (413 from the body limit, 415 from
/// decompression, 405, axum's own extractor rejections) into the contract's error shape.
async fn in_contract_shape(response: Response) -> Response {
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // JSON errors are ours already; HTML errors are the pages' own answers to people.
    let ours = content_type.starts_with("application/json") || content_type.starts_with("text/html");
    if !(status.is_client_error() || status.is_server_error()) || ours {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::BodyTooLarge,
            "the body is larger than the server accepts; split the batch",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            ErrorCode::UnsupportedEncoding,
            "Content-Encoding must be gzip, zstd or absent",
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(ErrorCode::MethodNotAllowed, "this endpoint does not take that method")
        }
        s if s.is_server_error() => ApiError::internal(),
        _ => {
            // axum's rejections (a bad path or query) say what was wrong in plain text.
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body).trim().to_owned();
            let message = if text.is_empty() {
                "the request could not be handled".to_owned()
            } else {
                text
            };
            return ApiError::new(ErrorCode::BadRequest, message).into_response();
        }
    };
    let mut rewritten = error.into_response();
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// `Set-Cookie` for a cookie only our own pages send back: not readable by scripts, never
/// sent from another site, and only over TLS when the request came over TLS.
pub fn cookie_header(name: &str, value: &str, max_age_seconds: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
    ))
    .expect("cookie names and hex tokens are valid header text")
}
