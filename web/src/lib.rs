//! `web` owns the one HTTP face every route of a node shares: the error answer
//! ([`ApiError`] with a code from [`ErrorCode`], each code with one status), the one way a
//! request presents a credential ([`auth::bearer`] for keys, the session cookie for people in a
//! browser, [`Admin`] as the extractor of an admin route), and [`app`], which puts the agent,
//! admin and page routes under the same layers once (request id, request span, errors in the
//! contract's shape, panics answered as `500`), [`body`], answers sent while they are written,
//! [`serve`], the accept loop with the
//! time-outs slow clients meet, and [`schema`], the OpenAPI schemas of values both faces read
//! the same way.
//!
//! It must not hold routes or domain logic of its own: `ingest` and `dashboards` own their
//! routes, `control` decides whether a key or session is valid, `queries` computes.

pub mod app;
pub mod auth;
pub mod body;
pub mod error;
pub mod schema;
pub mod serve;
pub mod tls;

pub use app::{Face, app, cookie_header};
pub use auth::Admin;
pub use error::{ApiError, ErrorBody, ErrorCode, ErrorDetail};
pub use serve::{Timeouts, refuse_announced_oversize, serve};
pub use tls::{TlsConfig, TlsError, TlsFiles, server_config};
