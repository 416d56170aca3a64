//! Checks on the repository itself: documentation that must not drift from the code.

use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_crate_root_says_what_it_owns() {
    let roots = [
        "warehouse",
        "simulator",
        "ingest",
        "queries",
        "dashboards",
        "control",
        "compliance",
        "cluster",
        "web",
    ]
    .iter()
    .map(|c| repo().join(c).join("src/lib.rs"))
    .chain([repo().join("src/main.rs")]);
    for root in roots {
        let text = std::fs::read_to_string(&root).unwrap();
        assert!(
            text.starts_with("//! "),
            "{} must open with a //! paragraph",
            root.display()
        );
        assert!(
            root.ends_with("main.rs") || text.contains("must not"),
            "{} must say what the crate must not do",
            root.display()
        );
    }
}

#[test]
fn readme_documents_the_table_schemas_column_by_column() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for (table, columns) in [
        (warehouse::schema::ELEVATIONS, warehouse::schema::ELEVATION_COLUMNS),
        (warehouse::schema::DIAGNOSTICS, warehouse::schema::DIAGNOSTIC_COLUMNS),
        (
            warehouse::schema::DAILY_ELEVATIONS,
            warehouse::schema::DAILY_ELEVATION_COLUMNS,
        ),
        (warehouse::schema::DAILY_COUNTS, warehouse::schema::DAILY_COUNT_COLUMNS),
        (warehouse::schema::DAILY_USERS, warehouse::schema::DAILY_USER_COLUMNS),
        (
            warehouse::schema::DAILY_DEVICES,
            warehouse::schema::DAILY_DEVICE_COLUMNS,
        ),
        (warehouse::schema::USER_NUMBERS, warehouse::schema::USER_NUMBER_COLUMNS),
        (
            warehouse::schema::DAILY_USER_SETS,
            warehouse::schema::DAILY_USER_SET_COLUMNS,
        ),
        (warehouse::schema::DAILY_DENIED, warehouse::schema::DAILY_DENIED_COLUMNS),
        (
            warehouse::schema::DAILY_SUGGESTIONS,
            warehouse::schema::DAILY_SUGGESTION_COLUMNS,
        ),
        (
            warehouse::schema::VALUE_NUMBERS,
            warehouse::schema::VALUE_NUMBER_COLUMNS,
        ),
    ] {
        let expected = warehouse::schema::readme_table(columns);
        assert!(
            readme.contains(&expected),
            "README.md's schema of `{table}` is out of date; it must contain exactly:\n{expected}"
        );
    }
}

#[test]
fn readme_documents_the_permission_table() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let expected = control::roles::readme_table();
    assert!(
        readme.contains(&expected),
        "README.md's permission table is out of date; it must contain exactly:\n{expected}"
    );
}

#[test]
fn readme_opens_with_the_two_commands() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let head: String = readme.lines().take(15).collect::<Vec<_>>().join("\n");
    assert!(head.contains("cargo run --release -- demo"), "{head}");
    // The second command is the script that installs what the tests use and then runs them,
    // so that it works on a fresh machine (`cargo test` alone would lack DuckDB and the rest).
    let test_command = head
        .lines()
        .find(|l| l.trim_start().starts_with("bash .ci/test"))
        .unwrap_or_else(|| panic!("the README must open with `bash .ci/test`:\n{head}"))
        .trim();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim_start().starts_with(test_command)),
        ".ci/run must run the README's test command `{test_command}`"
    );
    let script = std::fs::read_to_string(repo().join(".ci/test")).unwrap();
    assert!(
        script
            .lines()
            .any(|l| l.trim_start().starts_with("cargo test --workspace")),
        ".ci/test must end in `cargo test --workspace`"
    );
}
