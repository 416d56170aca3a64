//! `queries` will own every question asked of the warehouse: the managed-vs-unmanaged reports
//! Intune shows, the Overview readiness tiles, rule-tuning suggestions and compliance
//! evidence, computed with DataFusion over the warehouse tables.
//!
//! It must not write to the tables; it only reads.
//!
//! Status: not built yet (issue #5). `elevation report` says so and exits non-zero.
