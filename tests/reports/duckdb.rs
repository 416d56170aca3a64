//! Every report against DuckDB reading the Parquet files the Delta log lists: another engine
//! over the same files.

use super::*;

/// The Python program that computes the same figures with DuckDB over the Parquet files the
/// Delta log lists (via the `deltalake` package).
const DUCKDB_SCRIPT: &str = r#"
import json, sys
import duckdb
from deltalake import DeltaTable

path, tenant, start, end = sys.argv[1:5]
files = DeltaTable(path + "/elevations").file_uris()
con = duckdb.connect()
con.read_parquet(files, hive_partitioning=True).create_view("e")
con.read_parquet(DeltaTable(path + "/diagnostics").file_uris(), hive_partitioning=True).create_view("d")
where = "tenant = $tenant AND \"eventDateTime\" >= CAST($start AS TIMESTAMPTZ) AND \"eventDateTime\" < CAST($end AS TIMESTAMPTZ)"
args = {"tenant": tenant, "start": start, "end": end}
def q(sql):
    return con.execute(sql.replace("WHERE_WINDOW", where), args).fetchall()
out = {
  "byUser": [[r[0], r[1], r[2], r[3]] for r in q("""SELECT upn,
      SUM(CASE WHEN "elevationType" <> 'unmanagedElevation' THEN 1 ELSE 0 END),
      SUM(CASE WHEN "elevationType" = 'unmanagedElevation' THEN 1 ELSE 0 END), COUNT(*)
      FROM e WHERE WHERE_WINDOW GROUP BY upn""")],
  "byApplication": [list(r) for r in q("""SELECT hash, "elevationType",
      COUNT(*), COUNT(DISTINCT upn), COUNT(DISTINCT "deviceId"),
      epoch_us(MIN("eventDateTime")), epoch_us(MAX("eventDateTime")),
      MAX("fileName"), MAX("internalName"), MAX("fileVersion"), MAX("companyName"), BOOL_AND("systemInitiatedElevation")
      FROM e WHERE WHERE_WINDOW GROUP BY 1, 2""")],
  "byPublisher": [list(r) for r in q("""SELECT "companyName", "elevationType", COUNT(*), COUNT(DISTINCT upn),
      COUNT(DISTINCT "deviceId") FROM e WHERE WHERE_WINDOW GROUP BY 1, 2""")],
  "byDevice": [list(r) for r in q("""SELECT "deviceName",
      SUM(CASE WHEN "elevationType" <> 'unmanagedElevation' THEN 1 ELSE 0 END),
      SUM(CASE WHEN "elevationType" = 'unmanagedElevation' THEN 1 ELSE 0 END), COUNT(*)
      FROM e WHERE WHERE_WINDOW GROUP BY 1""")],
  "trend": [[str(r[0]), r[1], r[2]] for r in q("""SELECT CAST("eventDate" AS VARCHAR), "elevationType", COUNT(*)
      FROM e WHERE WHERE_WINDOW GROUP BY 1, 2""")],
  "denied": [list(r) for r in q("""SELECT CASE WHEN "elevationType" = 'deniedElevation' THEN 'denied' ELSE 'failed' END,
      upn, "deviceId", "deviceName", "fileName", "productName", "fileDescription", "internalName", "fileVersion", hash,
      "companyName", "elevationType", n, epoch_us(last) FROM (SELECT upn, "deviceId", "deviceName", hash, "elevationType",
      MAX("fileName") AS "fileName", MAX("productName") AS "productName", MAX("fileDescription") AS "fileDescription",
      MAX("internalName") AS "internalName", MAX("fileVersion") AS "fileVersion", MAX("companyName") AS "companyName",
      COUNT(*) AS n, MAX("eventDateTime") AS last
      FROM e WHERE WHERE_WINDOW AND ("elevationType" = 'deniedElevation' OR result <> 0) GROUP BY 1, 2, 3, 4, 5)""")],
  "overviewTiles": [list(r) for r in q("""SELECT
      SUM(CASE WHEN m = 0 AND u > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN m > 0 AND u > 0 THEN 1 ELSE 0 END),
      SUM(CASE WHEN m > 0 AND u = 0 THEN 1 ELSE 0 END)
      FROM (SELECT upn, SUM(CASE WHEN "elevationType" <> 'unmanagedElevation' THEN 1 ELSE 0 END) AS m,
        SUM(CASE WHEN "elevationType" = 'unmanagedElevation' THEN 1 ELSE 0 END) AS u FROM e WHERE WHERE_WINDOW GROUP BY upn)""")],
  "overviewLists": [list(r) for r in q("""SELECT "elevationType", MAX("fileName"), hash, COUNT(*), COUNT(DISTINCT upn)
      FROM e WHERE WHERE_WINDOW AND "elevationType" IN ('unmanagedElevation', 'supportApprovedElevation', 'deniedElevation')
      GROUP BY "elevationType", hash""")],
  "devicesLastSeen": [list(r) for r in q("""SELECT "deviceName", ARG_MAX("reportingLevel", "eventDateTime"), epoch_us(MAX("eventDateTime"))
      FROM (SELECT "deviceName", "reportingLevel", "eventDateTime" FROM e WHERE WHERE_WINDOW
            UNION ALL SELECT "deviceName", "reportingLevel", "eventDateTime" FROM d WHERE WHERE_WINDOW) GROUP BY 1""")],
  "errorCodes": [list(r) for r in q("""SELECT "errorCode", COUNT(*) FROM d WHERE WHERE_WINDOW AND "errorCode" <> 0 GROUP BY 1""")],
  "ids": [r[0] for r in q("""SELECT id FROM e WHERE WHERE_WINDOW ORDER BY "eventDateTime" DESC, id DESC""")],
  "managedIds": [r[0] for r in q("""SELECT id FROM e WHERE WHERE_WINDOW AND "elevationType" <> 'unmanagedElevation'
      ORDER BY "eventDateTime" DESC, id DESC""")],
}
print(json.dumps(out))
"#;

fn duckdb(warehouse: &std::path::Path, tenant: &str, from: &str, to: &str) -> serde_json::Value {
    let dir = temp_dir();
    let script = dir.path().join("reports.py");
    std::fs::write(&script, DUCKDB_SCRIPT).unwrap();
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(warehouse)
        .args([tenant, from, to])
        .output()
        .expect("python3 runs (CI installs duckdb and deltalake in .ci/run)");
    assert!(
        output.status.success(),
        "the DuckDB script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn json_rows(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_array().unwrap().iter().map(|r| r.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_agree_with_duckdb_reading_the_delta_tables_parquet_files() {
    let mut node = Node::start().await;
    let truth = land_fleet(&node, &node.agent_key, "contoso", 17, 40, 5).await;
    // The other tenant's rows sit in the same tables; both engines must leave them out.
    land_fleet(&node, &node.other_tenant_key, "fabrikam", 18, 15, 5).await;
    // A window that cuts days in half, so both engines must honour the instants, not dates.
    let from = format!("{}T06:30:00Z", truth.from.succ_opt().unwrap());
    let to = format!("{}T18:00:00Z", truth.to.pred_opt().unwrap());
    let window = [("from", from.as_str()), ("to", to.as_str())];
    let duck = duckdb(&node.dir.path().join("warehouse"), "contoso", &from, &to);

    // Every report from the raw rows, then again once the rollups hold the whole days in the
    // window (its partial first and last days still come from the raw rows).
    // The raw path's rows of `by-application` and `by-publisher`, in their order.
    let mut raw_order: Vec<Vec<Vec<queries::Cell>>> = Vec::new();
    for rollups in [false, true] {
        if rollups {
            let refreshed = node.warehouse.refresh_rollups().await.unwrap();
            assert!(refreshed.days_refreshed >= 3, "{refreshed:?}");
        }
        for (i, name) in ["by-application", "by-publisher"].into_iter().enumerate() {
            let rows = report(&node, "contoso", name, &window).await.rows;
            if rollups {
                assert_eq!(
                    rows, raw_order[i],
                    "{name}: the same rows in the same order from the rollup"
                );
            } else {
                raw_order.push(rows);
            }
        }
        let users = report(&node, "contoso", "by-user", &window).await;
        let ours: BTreeSet<String> = rows(&users)
            .iter()
            .map(|r| {
                serde_json::json!([text(r["upn"]), int(r["managed"]), int(r["unmanaged"]), int(r["total"])]).to_string()
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["byUser"]), "by-user");
        assert!(!ours.is_empty());

        let apps = report(&node, "contoso", "by-application", &window).await;
        let ours: BTreeSet<String> = rows(&apps)
            .iter()
            .map(|r| {
                serde_json::json!([
                    text(r["hash"]),
                    text(r["elevationType"]),
                    int(r["count"]),
                    int(r["users"]),
                    int(r["devices"]),
                    time(r["firstSeen"]).timestamp_micros(),
                    time(r["lastSeen"]).timestamp_micros(),
                    text(r["fileName"]),
                    text(r["internalName"]),
                    text(r["fileVersion"]),
                    text(r["companyName"]),
                    boolean(r["systemInitiated"]),
                ])
                .to_string()
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["byApplication"]), "by-application");

        let publishers = report(&node, "contoso", "by-publisher", &window).await;
        let ours: BTreeSet<String> = rows(&publishers)
            .iter()
            .map(|r| {
                serde_json::json!([
                    text(r["companyName"]),
                    text(r["elevationType"]),
                    int(r["count"]),
                    int(r["users"]),
                    int(r["devices"])
                ])
                .to_string()
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["byPublisher"]), "by-publisher");

        let devices = report(&node, "contoso", "by-device", &window).await;
        let ours: BTreeSet<String> = rows(&devices)
            .iter()
            .map(|r| {
                serde_json::json!([
                    text(r["deviceName"]),
                    int(r["managed"]),
                    int(r["unmanaged"]),
                    int(r["total"])
                ])
                .to_string()
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["byDevice"]), "by-device");

        let trend = report(&node, "contoso", "trend", &window).await;
        let ours: BTreeSet<String> = trend_of(&trend)
            .into_iter()
            .map(|((d, t), n)| serde_json::json!([d, t, n]).to_string())
            .collect();
        assert_eq!(ours, json_rows(&duck["trend"]), "trend");

        let denied_json = |r: &BTreeMap<&str, &queries::Cell>| {
            let mut row: Vec<serde_json::Value> = [
                "outcome",
                "upn",
                "deviceId",
                "deviceName",
                "fileName",
                "productName",
                "fileDescription",
                "internalName",
                "fileVersion",
                "hash",
                "companyName",
                "elevationType",
            ]
            .iter()
            .map(|c| serde_json::json!(text(r[c])))
            .collect();
            row.push(int(r["count"]).into());
            row.push(time(r["lastSeen"]).timestamp_micros().into());
            serde_json::Value::from(row).to_string()
        };
        let denied = report(&node, "contoso", "denied", &window).await;
        let ours: BTreeSet<String> = rows(&denied).iter().map(denied_json).collect();
        assert_eq!(ours, json_rows(&duck["denied"]), "denied");
        assert!(ours.len() > 10, "the fleet has denied and failed elevations");
        // The order, and pages of it put end to end: most first, then user, device name,
        // hash, outcome, device id and type, as sorted here from DuckDB's rows.
        let mut expected = duck["denied"].as_array().unwrap().clone();
        expected.sort_by_key(|r| {
            let s = |i: usize| r[i].as_str().unwrap_or_default().to_owned();
            (
                std::cmp::Reverse(r[12].as_i64().unwrap()),
                s(1),
                s(3),
                s(9),
                s(0),
                s(2),
                s(11),
            )
        });
        let mut paged: Vec<String> = Vec::new();
        loop {
            let offset = paged.len().to_string();
            let params = [window[0], window[1], ("limit", "7"), ("offset", offset.as_str())];
            let page = report(&node, "contoso", "denied", &params).await;
            if page.rows.is_empty() {
                break;
            }
            paged.extend(rows(&page).iter().map(denied_json));
        }
        let expected: Vec<String> = expected.iter().map(|r| r.to_string()).collect();
        assert_eq!(paged, expected, "denied, in order, seven rows a page");

        // The Overview: its tiles, and every file of its three lists.
        let overview = report(
            &node,
            "contoso",
            "overview",
            &[window[0], window[1], ("limit", "100000")],
        )
        .await;
        let tile = |name: &str| {
            rows(&overview)
                .iter()
                .find(|r| text(r["tile"]).as_deref() == Some(name))
                .map(|r| int(r["count"]))
        };
        let tiles = serde_json::json!([tile("usersOnlyUnmanaged"), tile("usersBoth"), tile("usersOnlyManaged")]);
        assert_eq!(
            json_rows(&serde_json::json!([tiles])),
            json_rows(&duck["overviewTiles"]),
            "overview tiles"
        );
        let listed_type = |list: &str| match list {
            "frequentlyUnmanaged" => Some("unmanagedElevation"),
            "frequentlyApprovedBySupport" => Some("supportApprovedElevation"),
            "frequentlyDenied" => Some("deniedElevation"),
            _ => None,
        };
        let ours: BTreeSet<String> = rows(&overview)
            .iter()
            .filter_map(|r| {
                let elevation_type = listed_type(&text(r["tile"])?)?;
                Some(
                    serde_json::json!([
                        elevation_type,
                        text(r["fileName"]),
                        text(r["hash"]),
                        int(r["count"]),
                        int(r["users"])
                    ])
                    .to_string(),
                )
            })
            .collect();
        assert_eq!(ours, json_rows(&duck["overviewLists"]), "overview lists");

        // Diagnostics: with silentDays=0 every device is listed with its last event and level.
        let diagnostics = report(
            &node,
            "contoso",
            "diagnostics",
            &[window[0], window[1], ("silentDays", "0")],
        )
        .await;
        let of_kind = |kind: &str| -> Vec<BTreeMap<&str, &Cell>> {
            rows(&diagnostics)
                .into_iter()
                .filter(|r| text(r["kind"]).as_deref() == Some(kind))
                .collect()
        };
        let ours: BTreeSet<String> = of_kind("silentDevice")
            .iter()
            .map(|r| {
                serde_json::json!([
                    text(r["deviceName"]),
                    text(r["level"]),
                    time(r["lastSeen"]).timestamp_micros()
                ])
                .to_string()
            })
            .collect();
        assert_eq!(
            ours,
            json_rows(&duck["devicesLastSeen"]),
            "diagnostics: devices, last event and level"
        );
        let ours: BTreeSet<String> = of_kind("errorCode")
            .iter()
            .map(|r| serde_json::json!([int(r["errorCode"]), int(r["count"])]).to_string())
            .collect();
        assert_eq!(ours, json_rows(&duck["errorCodes"]), "diagnostics: error codes");
        assert!(!ours.is_empty(), "the fleet reports error codes");

        // The event lists, page by page, in order.
        for (name, expected) in [("elevations", "ids"), ("managed-elevations", "managedIds")] {
            let mut ids = Vec::new();
            loop {
                let offset = ids.len().to_string();
                let page = report(
                    &node,
                    "contoso",
                    name,
                    &[window[0], window[1], ("limit", "700"), ("offset", &offset)],
                )
                .await;
                let n = page.rows.len();
                ids.extend(
                    rows(&page)
                        .iter()
                        .map(|r| serde_json::Value::from(text(r["id"]).unwrap())),
                );
                if n < 700 {
                    break;
                }
            }
            assert_eq!(serde_json::Value::from(ids), duck[expected], "{name}, in order");
        }
    }
    node.stop().await;
}

fn boolean(cell: &Cell) -> Option<bool> {
    match cell {
        Cell::Bool(b) => Some(*b),
        Cell::Null => None,
        other => panic!("{other:?} is not true or false"),
    }
}
