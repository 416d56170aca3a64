//! Compliance evidence packs (issue #18) through the real binary and the admin API: numbers
//! checked against the events the simulated agents sent, tampering of every kind detected and
//! named, Debian's `minisign`, `sha256sum -c` and `trestle validate` accepting the pack, a pack
//! re-made at its manifest's table versions byte for byte after more data and a compaction, and
//! bad requests refused without leaving anything behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use warehouse::ElevationType;

use crate::support::{Node, batch, elevation, elevation_event, stdout_of, temp_dir};

/// The fleet's window ends at midnight before `test_now`; the packs run a day longer, so the
/// single events the tests add (dated an hour before `test_now`) fall inside.
const TO: &str = "2026-11-21";

fn run(args: &[&str], cwd: &Path) -> std::process::Output {
    elevation(args, cwd)
}

/// A node with a small simulated fleet of contoso landed and stopped, a signing key in its
/// data folder, and a pack of the fleet's window made with the CLI.
struct Packed {
    node: Node,
    fleet: crate::support::LandedFleet,
    data: String,
    pack: PathBuf,
    public_key: PathBuf,
}

async fn packed(seed: u64) -> Packed {
    let mut node = Node::start().await;
    let fleet = crate::support::land_simulated_fleet(&node, &node.agent_key, "contoso", seed, 12, 3).await;
    node.stop().await;
    let data = node.dir.path().to_str().unwrap().to_owned();
    let keygen = stdout_of(&run(&["compliance", "keygen", "--data-dir", &data], node.dir.path()));
    assert!(keygen.contains("minisign public key"), "{keygen}");
    let public_key = node.dir.path().join("key.pub");
    let exported = run(
        &[
            "compliance",
            "public-key",
            "--data-dir",
            &data,
            "--out",
            public_key.to_str().unwrap(),
        ],
        node.dir.path(),
    );
    stdout_of(&exported);
    let pack = node.dir.path().join("pack");
    make_pack(&data, &fleet.truth.from.to_string(), &pack, &[]);
    Packed {
        node,
        fleet,
        data,
        pack,
        public_key,
    }
}

fn make_pack(data: &str, from: &str, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "compliance",
        "pack",
        "--data-dir",
        data,
        "--tenant",
        "contoso",
        "--from",
        from,
        "--to",
        TO,
        "--out",
        out.to_str().unwrap(),
        "--actor",
        "auditor@contoso.com",
    ];
    args.extend_from_slice(extra);
    stdout_of(&run(&args, Path::new(data)))
}

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers.iter().cloned().zip(r.iter().map(str::to_owned)).collect()
        })
        .collect()
}

fn verify(pack: &Path, public_key: &Path) -> (bool, String) {
    let output = run(
        &[
            "compliance",
            "verify",
            pack.to_str().unwrap(),
            "--public-key",
            public_key.to_str().unwrap(),
        ],
        pack.parent().unwrap(),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_holds_every_sent_elevation_and_per_user_counts_match_the_agents() {
    let p = packed(31).await;
    let sent = &p.fleet.sent;
    // Every elevation the agents sent, once, in time order.
    let rows = read_csv(&p.pack.join("elevations.csv"));
    assert_eq!(rows.len(), sent.len());
    let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["id"].as_str()).collect();
    let sent_ids: std::collections::BTreeSet<&str> = sent.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids, sent_ids);
    let times: Vec<&str> = rows.iter().map(|r| r["eventDateTime"].as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "rows are not in time order");
    let by_id: BTreeMap<&str, &warehouse::ElevationEvent> = sent.iter().map(|(_, e)| (e.id.as_str(), e)).collect();
    for row in &rows {
        let event = by_id[row["id"].as_str()];
        assert_eq!(row["upn"], event.upn);
        assert_eq!(row["hash"], event.hash.to_uppercase());
        assert_eq!(row["elevationType"], event.elevation_type.as_str());
        assert_eq!(row["justification"], event.justification.clone().unwrap_or_default());
        assert_eq!(row["ruleId"], event.rule_id.clone().unwrap_or_default());
    }

    // Per user, counted here from the sent events.
    let mut expected: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    for (_, e) in sent {
        let c = expected.entry(e.upn.clone()).or_default();
        c[0] += 1;
        match e.elevation_type {
            ElevationType::Unmanaged => c[2] += 1,
            t => {
                c[1] += 1;
                c[3] += u64::from(t == ElevationType::Denied);
                c[4] += u64::from(t == ElevationType::SupportApproved);
            }
        }
    }
    let found: BTreeMap<String, [u64; 5]> = read_csv(&p.pack.join("privileged-use.csv"))
        .into_iter()
        .map(|r| {
            let n = |k: &str| r[k].parse::<u64>().unwrap();
            assert_eq!(r["usesLocalAdminRights"] == "true", n("unmanaged") > 0);
            assert_eq!(r["finding"].contains("CIS 5.4"), n("unmanaged") > 0);
            (
                r["upn"].clone(),
                [
                    n("elevations"),
                    n("managed"),
                    n("unmanaged"),
                    n("denied"),
                    n("supportApproved"),
                ],
            )
        })
        .collect();
    assert_eq!(found, expected);
    assert!(
        expected.values().any(|c| c[2] > 0),
        "the fleet has unmanaged elevations to find"
    );

    // Coverage lists every device that sent elevations, with its elevations in the period.
    let coverage = read_csv(&p.pack.join("coverage.csv"));
    let mut per_device: BTreeMap<String, u64> = BTreeMap::new();
    for (device, _) in sent {
        *per_device.entry(device.clone()).or_default() += 1;
    }
    for (device, n) in &per_device {
        let row = coverage
            .iter()
            .find(|r| &r["deviceId"] == device)
            .expect("device in coverage");
        assert_eq!(row["elevations"].parse::<u64>().unwrap(), *n, "{device}");
    }

    // The OSCAL findings cite the files with their hashes; the CIS 5.4 finding is not satisfied.
    let ar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.pack.join("assessment-results.json")).unwrap()).unwrap();
    let result = &ar["assessment-results"]["results"][0];
    let cm11 = result["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["target"]["target-id"] == "cm-11_obj")
        .unwrap();
    assert_eq!(cm11["target"]["status"]["state"], "not-satisfied");
    assert_eq!(cm11["props"][0]["value"], "5.4");
    let resources = ar["assessment-results"]["back-matter"]["resources"].as_array().unwrap();
    let csv_sha = hex_sha256(&p.pack.join("elevations.csv"));
    assert!(
        resources
            .iter()
            .any(|r| r["rlinks"][0]["hashes"][0]["value"] == csv_sha.as_str())
    );

    // The audit log names the pack.
    let audit = p
        .node
        .control
        .audit_list("contoso", &control::AuditFilter::default())
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.activity == "produceCompliancePack" && e.actor.user_principal_name == "auditor@contoso.com"),
        "{audit:?}"
    );
}

fn hex_sha256(path: &Path) -> String {
    compliance::manifest::hash_file(path).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minisign_sha256sum_and_trestle_accept_a_pack() {
    let p = packed(32).await;
    let (ok, text) = verify(&p.pack, &p.public_key);
    assert!(ok, "{text}");
    assert!(text.contains("pack intact"), "{text}");
    for file in ["manifest.json", "SHA256SUMS"] {
        let status = Command::new("minisign")
            .args(["-V", "-m", file, "-p"])
            .arg(&p.public_key)
            .current_dir(&p.pack)
            .output()
            .expect("Debian's minisign is installed (.ci/run installs it)");
        assert!(
            status.status.success(),
            "minisign -V {file}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    let sums = Command::new("sha256sum")
        .args(["--strict", "-c", "SHA256SUMS"])
        .current_dir(&p.pack)
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));

    let workspace = temp_dir();
    let init = Command::new("trestle")
        .arg("init")
        .current_dir(workspace.path())
        .output()
        .expect("compliance-trestle is installed (.ci/run installs it)");
    assert!(
        init.status.success(),
        "trestle init: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let target = workspace.path().join("assessment-results/pack");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(
        p.pack.join("assessment-results.json"),
        target.join("assessment-results.json"),
    )
    .unwrap();
    let validate = Command::new("trestle")
        .args(["validate", "-f", "assessment-results/pack/assessment-results.json"])
        .current_dir(workspace.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    assert!(
        validate.status.success() && said.contains("VALID: Model"),
        "trestle validate: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_tampering_is_detected_and_named() {
    let p = packed(33).await;
    let scratch = temp_dir();
    let case = |name: &str, change: &dyn Fn(&Path)| -> String {
        let dir = scratch.path().join(name);
        copy_dir(&p.pack, &dir);
        change(&dir);
        let (ok, text) = verify(&dir, &p.public_key);
        assert!(!ok, "{name}: verify accepted a tampered pack: {text}");
        text
    };
    let text = case("byte", &|d| {
        let path = d.join("coverage.csv");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    });
    assert!(text.contains("coverage.csv: changed"), "{text}");
    let text = case("removed", &|d| {
        std::fs::remove_file(d.join("privileged-use.csv")).unwrap()
    });
    assert!(text.contains("privileged-use.csv: missing"), "{text}");
    let text = case("added", &|d| std::fs::write(d.join("notes.txt"), "extra").unwrap());
    assert!(text.contains("notes.txt: added"), "{text}");
    let text = case("manifest", &|d| {
        let path = d.join("manifest.json");
        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"contoso\"", "\"contosa\"");
        std::fs::write(path, edited).unwrap();
    });
    assert!(
        text.contains("manifest.json.minisig") && text.contains("manifest.dsse.json"),
        "{text}"
    );
    // The same edit is refused by minisign itself.
    let minisign = Command::new("minisign")
        .args(["-V", "-m", "manifest.json", "-p"])
        .arg(&p.public_key)
        .current_dir(scratch.path().join("manifest"))
        .output()
        .unwrap();
    assert!(!minisign.status.success());

    // A key that did not sign it.
    let other = temp_dir();
    let other_data = other.path().to_str().unwrap();
    stdout_of(&run(&["compliance", "keygen", "--data-dir", other_data], other.path()));
    let other_pub = other.path().join("other.pub");
    stdout_of(&run(
        &[
            "compliance",
            "public-key",
            "--data-dir",
            other_data,
            "--out",
            other_pub.to_str().unwrap(),
        ],
        other.path(),
    ));
    let (ok, text) = verify(&p.pack, &other_pub);
    assert!(!ok);
    assert!(text.contains("signed by key"), "{text}");
    // The untouched pack still verifies.
    assert!(verify(&p.pack, &p.public_key).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_remade_at_its_table_versions_is_byte_identical_after_more_data_and_compaction() {
    let mut p = packed(34).await;
    let data = p.data.clone();
    // More data in the period, through the server, then a compaction.
    p.node.run(|_| {}).await;
    let late = batch(
        "late-1",
        "managed",
        vec![elevation_event("late-event-1", "zeroTouchElevation")],
        vec![],
    );
    assert_eq!(p.node.upload(&late).await.status, 200);
    p.node.land_all().await;
    p.node.stop().await;
    stdout_of(&run(&["compact", "--data-dir", &data], p.node.dir.path()));

    let from = p.fleet.truth.from.to_string();
    let again = p.node.dir.path().join("again");
    let manifest = p.pack.join("manifest.json");
    make_pack(&data, &from, &again, &["--versions-from", manifest.to_str().unwrap()]);
    assert_eq!(files_of(&again), files_of(&p.pack), "the re-made pack differs");

    // At the latest versions the late event is in, so the pack differs and names it.
    let latest = p.node.dir.path().join("latest");
    make_pack(&data, &from, &latest, &[]);
    let rows = read_csv(&latest.join("elevations.csv"));
    assert_eq!(rows.len(), p.fleet.sent.len() + 1);
    let late_row = rows.iter().find(|r| r["id"] == "late-event-1").unwrap();
    assert_eq!(late_row["reportingLevel"], "managed");
    let coverage = read_csv(&latest.join("coverage.csv"));
    let device = coverage.iter().find(|r| r["deviceId"] == "device-1").unwrap();
    assert_eq!(device["lowestLevel"], "managed");
    assert!(device["gap"].contains("unmanaged elevations"), "{device:?}");
    assert_ne!(files_of(&latest)["manifest.json"], files_of(&p.pack)["manifest.json"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_fail_clearly_and_leave_nothing_behind() {
    let p = packed(35).await;
    let data = p.data.as_str();
    let root = p.node.dir.path();
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // SQLite's journal files come and go with the connections.
            .filter(|name| !name.starts_with("control.db"))
            .collect();
        names.sort();
        names
    };
    let before = entries();
    let fails = |args: &[&str], says: &str| {
        let output = run(args, root);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?} said {stderr}");
    };
    let out = root.join("new-pack");
    let out = out.to_str().unwrap();
    let base = ["compliance", "pack", "--data-dir", data, "--out", out];
    fails(
        &[&base[..], &["--from", "2026-11-20", "--to", "2026-11-20"]].concat(),
        "is not before",
    );
    fails(
        &[&base[..], &["--tenant", "nobody", "--from", "2026-11-01", "--to", TO]].concat(),
        "unknown tenant",
    );
    let existing = p.pack.to_str().unwrap();
    fails(
        &[
            "compliance",
            "pack",
            "--data-dir",
            data,
            "--from",
            "2026-11-01",
            "--to",
            TO,
            "--out",
            existing,
        ],
        "is not empty",
    );
    std::fs::rename(root.join("compliance-signing.key"), root.join("moved.key")).unwrap();
    fails(
        &[&base[..], &["--from", "2026-11-01", "--to", TO]].concat(),
        "elevation compliance keygen",
    );
    std::fs::rename(root.join("moved.key"), root.join("compliance-signing.key")).unwrap();
    assert_eq!(entries(), before, "a failed pack left something behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_hands_out_the_pack_as_tar_gz_and_audits_it() {
    let node = Node::start().await;
    let fleet = crate::support::land_simulated_fleet(&node, &node.agent_key, "contoso", 36, 8, 2).await;
    // Another tenant's event in the period stays out of contoso's pack.
    let theirs = batch(
        "theirs-1",
        "all",
        vec![elevation_event("fabrikam-event", "unmanagedElevation")],
        vec![],
    );
    let answer = node
        .post(
            Some(&node.other_tenant_key),
            &[("content-type", "application/json")],
            serde_json::to_vec(&theirs).unwrap(),
        )
        .await;
    assert_eq!(answer.status, 200);
    node.land_all().await;
    let path = format!("/v1/compliance/pack?from={}&to={TO}", fleet.truth.from);
    let (status, body) = node.get_with_key(&node.admin_key, &path).await;
    assert_eq!(status, 409, "no signing key yet: {body}");
    let key = compliance::keys::keygen(node.dir.path()).unwrap();
    assert_eq!(node.get(&path).await.0, 401);
    assert_eq!(node.get_with_key(&node.agent_key, &path).await.0, 403);
    let bad = format!("/v1/compliance/pack?from={TO}&to={TO}");
    assert_eq!(node.get_with_key(&node.admin_key, &bad).await.0, 400);

    let response = reqwest::Client::new()
        .get(format!("{}{path}", node.base))
        .bearer_auth(&node.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/gzip");
    let bytes = response.bytes().await.unwrap();
    let scratch = temp_dir();
    let archive = scratch.path().join("pack.tar.gz");
    std::fs::write(&archive, &bytes).unwrap();
    let untar = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .current_dir(scratch.path())
        .status()
        .unwrap();
    assert!(untar.success());
    let folder = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("the archive holds one folder");
    let verification = compliance::verify(&folder, key.public());
    assert!(verification.ok(), "{:?}", verification.problems);
    let rows = read_csv(&folder.join("elevations.csv"));
    assert_eq!(rows.len(), fleet.sent.len());
    assert!(rows.iter().all(|r| r["id"] != "fabrikam-event"));
    let audit = node
        .control
        .audit_list("contoso", &control::AuditFilter::default())
        .await
        .unwrap();
    let entry = audit
        .iter()
        .find(|e| e.activity == "produceCompliancePack")
        .expect("the pack is audited");
    assert_eq!(entry.actor.user_principal_name, "admin@contoso.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_compliance_report_matches_the_sent_events() {
    let node = Node::start().await;
    let fleet = crate::support::land_simulated_fleet(&node, &node.agent_key, "contoso", 37, 14, 3).await;
    let parse = |params: &[(&str, &str)]| {
        let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        queries::ReportRequest::parse(
            "compliance",
            "contoso",
            &params,
            crate::support::test_now(),
            warehouse::ReportingLevel::All,
        )
        .ok()
    };
    let parsed = parse(&[("from", "2026-10-01"), ("to", TO)]).expect("a valid request");
    let from_raw = queries::run(&node.warehouse, &parsed.request).await.unwrap();
    // The same months from the daily rollups, once they are refreshed.
    assert!(node.warehouse.refresh_rollups().await.unwrap().days_refreshed > 0);
    let report = queries::run(&node.warehouse, &parsed.request).await.unwrap();
    assert_eq!(report.rows, from_raw.rows, "from the rollups as from the raw rows");
    let records = report.records();
    assert_eq!(records.len(), 2, "October and November");
    use queries::Cell;
    let october = &records[0];
    assert_eq!(*october["month"], Cell::Date("2026-10-01".parse().unwrap()));
    assert_eq!(*october["elevations"], Cell::Int(0));
    assert_eq!(*october["usersWithUnmanagedPercent"], Cell::Null);
    let november = &records[1];
    // Counted here from what the agents sent.
    let users: std::collections::BTreeSet<&str> = fleet.sent.iter().map(|(_, e)| e.upn.as_str()).collect();
    let unmanaged_users: std::collections::BTreeSet<&str> = fleet
        .sent
        .iter()
        .filter(|(_, e)| e.elevation_type == ElevationType::Unmanaged)
        .map(|(_, e)| e.upn.as_str())
        .collect();
    let managed = fleet
        .sent
        .iter()
        .filter(|(_, e)| e.elevation_type != ElevationType::Unmanaged)
        .count();
    assert_eq!(*november["users"], Cell::Int(users.len() as i64));
    assert_eq!(*november["usersWithUnmanaged"], Cell::Int(unmanaged_users.len() as i64));
    assert_eq!(*november["elevations"], Cell::Int(fleet.sent.len() as i64));
    assert_eq!(*november["managed"], Cell::Int(managed as i64));
    let percent = format!("{:.1}", 100.0 * managed as f64 / fleet.sent.len() as f64);
    assert_eq!(*november["managedPercent"], Cell::Text(percent));
    // Devices that sent anything, and of those the ones at `all`, from the simulated world.
    let seen = &fleet.truth.diagnostics.last_seen;
    let at_all = fleet
        .world
        .devices
        .iter()
        .filter(|d| seen.contains_key(&d.name) && d.level == warehouse::ReportingLevel::All)
        .count();
    assert_eq!(*november["devices"], Cell::Int(seen.len() as i64));
    assert_eq!(*november["devicesAtAll"], Cell::Int(at_all as i64));
    assert!(
        at_all > 0 && at_all < seen.len(),
        "the fleet has devices at all and below it"
    );
    // Filters make no sense month by month: refused.
    assert!(parse(&[("upn", "ada@contoso.com")]).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compliance_report_counts_each_month_from_its_own_events_across_a_month_boundary() {
    let mut node = Node::start().await;
    let at = |id: &str, upn: &str, kind: &str, time: &str| {
        let mut event = elevation_event(id, kind);
        event["upn"] = upn.into();
        event["eventDateTime"] = time.into();
        event
    };
    // LAPTOP-0001 at `all`: ada's unmanaged elevation in the last millisecond of October, her
    // managed one in the first instant of November, bob's later, and a diagnostic event.
    let mut diagnostic = crate::support::diagnostic(1);
    diagnostic["eventDateTime"] = "2026-11-03T08:00:00Z".into();
    let first = batch(
        "b-1",
        "all",
        vec![
            at(
                "e-1",
                "ada@contoso.com",
                "unmanagedElevation",
                "2026-10-31T23:59:59.999Z",
            ),
            at(
                "e-2",
                "ada@contoso.com",
                "userConfirmedElevation",
                "2026-11-01T00:00:00Z",
            ),
            at(
                "e-3",
                "bob@contoso.com",
                "supportApprovedElevation",
                "2026-11-15T12:00:00Z",
            ),
        ],
        vec![diagnostic],
    );
    // LAPTOP-0002 at `managed`: carol's managed elevation in November.
    let mut second = batch(
        "b-2",
        "managed",
        vec![at(
            "e-4",
            "carol@contoso.com",
            "userConfirmedElevation",
            "2026-11-02T09:00:00Z",
        )],
        vec![],
    );
    second["deviceId"] = "device-2".into();
    second["deviceName"] = "LAPTOP-0002".into();
    for upload in [first, second] {
        let answer = node.upload(&upload).await;
        assert_eq!(answer.status, 200, "{}", answer.message());
    }
    node.land_all().await;
    let (status, body) = node
        .get_with_key(&node.admin_key, "/v1/reports/compliance?from=2026-10-01&to=2026-11-21")
        .await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let months: Vec<Vec<serde_json::Value>> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            std::iter::once("month")
                .chain(crate::support::COMPLIANCE_COUNTS)
                .map(|column| row[column].clone())
                .collect()
        })
        .collect();
    use serde_json::json;
    assert_eq!(
        months,
        [
            [
                json!("2026-10-01"),
                json!(1),
                json!(1),
                json!(1),
                json!(0),
                json!(1),
                json!(1)
            ],
            [
                json!("2026-11-01"),
                json!(3),
                json!(0),
                json!(3),
                json!(3),
                json!(2),
                json!(1)
            ],
        ]
    );
    node.stop().await;
}
