//! The command line as a new user meets it.

use crate::support::{elevation, stdout_of, temp_dir};

#[test]
fn demo_prints_real_figures_from_a_simulated_fleet() {
    let dir = temp_dir();
    let output = elevation(&["demo", "--devices", "60", "--days", "7"], dir.path());
    let stdout = stdout_of(&output);
    // The figures printed are the ground truth's, which the demo also wrote to disk.
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("elevation-data/demo-fleet/ground-truth.json")).unwrap())
            .unwrap();
    let elevations = truth["totals"]["elevations"].as_u64().unwrap();
    assert!(elevations > 0, "the demo fleet elevated nothing");
    assert!(
        stdout.contains(&format!("{elevations} elevations")),
        "demo output does not show the {elevations} elevations of its ground truth:\n{stdout}"
    );
    for heading in [
        "Readiness",
        "Frequently unmanaged",
        "Frequently denied",
        "Patterns planted",
    ] {
        assert!(stdout.contains(heading), "no {heading} in:\n{stdout}");
    }
}

#[test]
fn subcommands_not_built_yet_say_so_and_fail() {
    let dir = temp_dir();
    for args in [
        vec!["serve"],
        vec!["report", "overview"],
        vec!["suggest"],
        vec!["keys"],
        vec!["compact"],
    ] {
        let output = elevation(&args, dir.path());
        assert_eq!(output.status.code(), Some(2), "{args:?} must exit 2");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("is not built yet"), "{args:?} said: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} must print no result");
    }
}

#[test]
fn bad_simulator_settings_are_refused_with_the_reason() {
    let dir = temp_dir();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (
            &["simulate", "--devices", "0", "--out", out],
            "--devices must be between 1 and 1000000, not 0",
        ),
        (
            &["simulate", "--days", "500", "--out", out],
            "--days must be between 1 and 365, not 500",
        ),
        (&["simulate", "--end", "yesterday", "--out", out], "expected YYYY-MM-DD"),
    ];
    for (args, message) in cases {
        let output = elevation(args, dir.path());
        assert!(!output.status.success(), "{args:?} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?} said: {stderr}");
    }
}
