//! The command line as a new user meets it.

use crate::support::{elevation, start_server, stdout_of, temp_dir};

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
        "Top rule suggestions",
        "recommendations.csv",
        // The support-approved requests, checked by the demo against the simulator's count
        // (it fails otherwise).
        "Support-approved requests",
        "every figure matches the simulator's ground truth",
        "quick.approver@contoso.com",
    ] {
        assert!(stdout.contains(heading), "no {heading} in:\n{stdout}");
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

#[test]
fn keys_a_server_and_simulate_target_work_as_the_readme_shows() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let created = stdout_of(&elevation(
        &[
            "keys",
            "create",
            "--tenant",
            "contoso",
            "--kind",
            "agent",
            "--data-dir",
            data,
        ],
        dir.path(),
    ));
    let key = created.lines().last().unwrap().trim().to_owned();
    assert!(
        key.starts_with("elv_agent_"),
        "the key is alone on the last line: {created}"
    );
    let admin = stdout_of(&elevation(
        &[
            "keys",
            "create",
            "--kind",
            "admin",
            "--role",
            "read-only-operator",
            "--upn",
            "ada@contoso.com",
            "--data-dir",
            data,
        ],
        dir.path(),
    ));
    assert!(
        admin.contains("role read-only-operator, held by ada@contoso.com"),
        "{admin}"
    );
    let refused = elevation(&["keys", "create", "--kind", "admin", "--data-dir", data], dir.path());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("admin keys need --role"));

    let listed = stdout_of(&elevation(&["keys", "list", "--data-dir", data], dir.path()));
    let secret = key.rsplit('_').next().unwrap();
    assert!(!listed.contains(secret), "keys list must never show a secret");
    assert_eq!(listed.matches("active").count(), 2, "{listed}");

    let server = start_server(std::path::Path::new(data), &[]);
    let uploaded = stdout_of(&elevation(
        &[
            "simulate",
            "--devices",
            "30",
            "--days",
            "2",
            "--seed",
            "5",
            "--target",
            &server.base,
            "--key",
            &key,
        ],
        dir.path(),
    ));
    // The answers' accepted counts equal what the simulated agents sent.
    let accepted = uploaded
        .split("accepted ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let truth = uploaded
        .split("ground truth: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(accepted, truth, "{uploaded}");
    assert!(uploaded.contains("0 rejected"), "{uploaded}");

    // Revoking the key locks the agent out within about a second, without a restart.
    let id = key.split('_').nth(2).unwrap();
    stdout_of(&elevation(&["keys", "revoke", id, "--data-dir", data], dir.path()));
    let revoked = std::time::Instant::now();
    let refused = loop {
        let attempt = elevation(
            &[
                "simulate",
                "--devices",
                "2",
                "--days",
                "1",
                "--target",
                &server.base,
                "--key",
                &key,
            ],
            dir.path(),
        );
        if !attempt.status.success() {
            break attempt;
        }
        assert!(
            revoked.elapsed() < std::time::Duration::from_secs(5),
            "the revoked key still uploads"
        );
    };
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401 unauthorized"),
        "{refused:?}"
    );
    assert!(server.terminate().success());
}

/// Logs go to stderr as plain text when stderr is a file or a pipe: no terminal colour codes
/// in a log file (issue #21).
#[test]
fn logs_into_a_pipe_carry_no_colour_codes() {
    let dir = temp_dir();
    // Opening a new control plane logs its migration at info.
    let output = elevation(
        &["keys", "create", "--tenant", "contoso", "--kind", "agent"],
        dir.path(),
    );
    assert!(output.status.success());
    let logged = String::from_utf8_lossy(&output.stderr);
    assert!(logged.contains("INFO"), "nothing was logged: {logged:?}");
    assert!(!logged.contains('\u{1b}'), "colour codes in a piped log: {logged:?}");
}
