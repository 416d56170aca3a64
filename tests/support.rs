//! Shared helpers: running the real binary, temporary folders.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `elevation` binary built for this test run.
pub(crate) fn elevation(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_elevation"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("the elevation binary runs")
}

/// Stdout of a successful run, or a panic showing stderr.
pub(crate) fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "elevation failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

/// A fresh temporary folder, removed when dropped.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}
