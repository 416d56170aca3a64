//! The one integration-test binary of elevation. Each module tests one capability the way
//! a user meets it: through the `elevation` binary, real files and (later) a real server on
//! loopback.

mod support;

mod browser;
mod cli;
mod cluster;
mod compliance;
mod conformance;
mod control;
mod crash;
mod dashboards;
mod faults;
mod formats;
mod hostile;
mod ingest;
mod maintenance;
mod memory;
mod monitoring;
mod object_storage;
mod properties;
mod reports;
mod requests;
mod retention;
mod scale_out;
mod scans;
mod simulator_truth;
mod suggestions;
mod tidy;
mod tls;
mod web;
