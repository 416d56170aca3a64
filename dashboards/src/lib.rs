//! `dashboards` will own what people see in a browser and the admin HTTP API: report pages,
//! charts and exports, built on the typed results of `queries`.
//!
//! It must not read the warehouse directly or build SQL; it asks `queries`.
//!
//! Status: not built yet.
