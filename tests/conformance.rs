//! The API against its own OpenAPI document (issue #21), with tools users know: the document
//! validates with `openapi-spec-validator`, and `schemathesis` drives every operation of
//! `/openapi.json` on a running server, once with an admin key and once with an agent key, for
//! a bounded number of generated requests each: no `5xx`; every answer's status, content
//! type, headers and body match what the document says; what the document allows is accepted
//! and what it forbids is refused `4xx`, but where `tests/schemathesis.toml` says why a rule
//! cannot be written in the document. A longer run:
//! `ELEVATION_SCHEMATHESIS_EXAMPLES=200 bash .ci/test -- conformance`.

use std::process::Command;

use crate::support::{Node, batch, diagnostic, elevation_event};

/// Runs `program args…` in `cwd` (schemathesis leaves its cache there) to completion off the
/// runtime; returns (success, stdout and stderr).
async fn run(program: &str, args: Vec<String>, cwd: &std::path::Path) -> (bool, String) {
    let (program, cwd) = (program.to_owned(), cwd.to_owned());
    tokio::task::spawn_blocking(move || {
        let output = Command::new(&program)
            .args(&args)
            .current_dir(&cwd)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (installed by .ci/test): {e}"));
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_the_openapi_document_says_under_schemathesis() {
    let mut node = Node::start().await;
    let events = vec![
        elevation_event("c-1", "unmanagedElevation"),
        elevation_event("c-2", "userConfirmedElevation"),
    ];
    assert_eq!(
        node.upload(&batch("b-conf", "all", events, vec![diagnostic(1)]))
            .await
            .status,
        200
    );
    node.land_all().await;

    let (status, document) = node.get("/openapi.json").await;
    assert_eq!(status, 200);
    let path = node.dir.path().join("openapi.json");
    std::fs::write(&path, document).unwrap();
    let script = "import sys\nfrom openapi_spec_validator import validate\n\
                  from openapi_spec_validator.readers import read_from_filename\n\
                  validate(read_from_filename(sys.argv[1])[0])\nprint('valid')";
    let (valid, said) = run(
        "python3",
        vec!["-c".into(), script.into(), path.display().to_string()],
        node.dir.path(),
    )
    .await;
    assert!(valid, "the OpenAPI document does not validate:\n{said}");

    let examples = std::env::var("ELEVATION_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "10".into());
    for (who, key) in [("admin", node.admin_key.clone()), ("agent", node.agent_key.clone())] {
        let args = [
            "--config-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml"),
            "run",
            &format!("{}/openapi.json", node.base),
            "--header",
            &format!("Authorization: Bearer {key}"),
            "--max-examples",
            &examples,
            "--phases",
            "examples,fuzzing",
            // Every check runs (schemathesis' default): no `5xx`; answers as documented;
            // requests the document allows are accepted and those it forbids refused; no
            // answer without a valid credential. The exceptions and their reasons are in
            // tests/schemathesis.toml: no `--checks` here, which would override them.
            // Generation may give up on a form with tight constraints; that is no failure of
            // the server's.
            "--suppress-health-check",
            "all",
            "--max-response-time",
            "30",
            "--seed",
            "21",
        ];
        let (passed, said) = run(
            "schemathesis",
            args.iter().map(|a| a.to_string()).collect(),
            node.dir.path(),
        )
        .await;
        assert!(passed, "schemathesis with the {who} key:\n{said}");
        assert!(
            said.contains("passed"),
            "schemathesis ran nothing with the {who} key:\n{said}"
        );
    }
    node.stop().await;
}
