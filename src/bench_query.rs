//! `elevation bench query`: how long each report takes over an existing warehouse (for example
//! the demo's), and, over the same Parquet files, how long DuckDB takes for the same
//! aggregations. Run it from a release build: a debug build measures the debug build.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use warehouse::{Clock, ReportingLevel, Warehouse};

/// Settings of the query benchmark.
#[derive(Debug, Args)]
pub(crate) struct QueryBenchArgs {
    /// Runs per report; the median is shown.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Window start (RFC 3339 or YYYY-MM-DD); default 400 days before now.
    #[arg(long)]
    from: Option<String>,
}

/// The same answers as every report, in DuckDB: each entry lists the statements one report
/// needs (the Overview and diagnostics need two). Event lists and the bigger reports keep the
/// first 1,000 rows, as the benchmark asks of ours.
const DUCKDB_BENCH: &str = r#"
import json, sys, time
import duckdb
from deltalake import DeltaTable
path, tenant, start, start48, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
con = duckdb.connect()
w = "tenant = $tenant AND \"eventDateTime\" >= CAST($start AS TIMESTAMPTZ)"
managed = "SUM(CASE WHEN \"elevationType\" <> 'unmanagedElevation' THEN 1 ELSE 0 END), SUM(CASE WHEN \"elevationType\" = 'unmanagedElevation' THEN 1 ELSE 0 END), COUNT(*)"
event_columns = ", ".join('"%s"' % c for c in ["eventDateTime", "fileName", "upn", "deviceName", "result", "elevationType", "companyName", "hash", "filePath", "justification", "ruleId", "policyId", "policyName", "id", "deviceId", "userType", "productName", "fileVersion", "internalName", "fileDescription", "processType", "parentProcessName", "systemInitiatedElevation"])
overview = [
  "SELECT SUM(CASE WHEN m = 0 AND u > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN m > 0 AND u > 0 THEN 1 ELSE 0 END), SUM(CASE WHEN m > 0 AND u = 0 THEN 1 ELSE 0 END) FROM (SELECT upn, SUM(CASE WHEN \"elevationType\" <> 'unmanagedElevation' THEN 1 ELSE 0 END) AS m, SUM(CASE WHEN \"elevationType\" = 'unmanagedElevation' THEN 1 ELSE 0 END) AS u FROM e WHERE WINDOW_FILTER GROUP BY upn)",
  "SELECT \"elevationType\", hash, MAX(\"fileName\"), COUNT(*), COUNT(DISTINCT upn) FROM e WHERE WINDOW_FILTER AND \"elevationType\" IN ('unmanagedElevation', 'supportApprovedElevation', 'deniedElevation') GROUP BY 1, 2",
]
queries = {
  "elevations": ["SELECT " + event_columns + " FROM e WHERE WINDOW_FILTER ORDER BY \"eventDateTime\" DESC, id DESC LIMIT 1000"],
  "managed-elevations": ["SELECT " + event_columns + " FROM e WHERE WINDOW_FILTER AND \"elevationType\" <> 'unmanagedElevation' ORDER BY \"eventDateTime\" DESC, id DESC LIMIT 1000"],
  "by-application": ["SELECT hash, \"elevationType\", MAX(\"fileName\"), MAX(\"internalName\"), MAX(\"fileVersion\"), MAX(\"companyName\"), COUNT(*) AS n, COUNT(DISTINCT upn), COUNT(DISTINCT \"deviceId\"), MIN(\"eventDateTime\"), MAX(\"eventDateTime\"), BOOL_AND(\"systemInitiatedElevation\") FROM e WHERE WINDOW_FILTER GROUP BY 1, 2 ORDER BY n DESC, 3, 1, 2 LIMIT 1000"],
  "by-publisher": ["SELECT \"companyName\", \"elevationType\", COUNT(*) AS n, COUNT(DISTINCT upn), COUNT(DISTINCT \"deviceId\") FROM e WHERE WINDOW_FILTER GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT 1000"],
  "by-user": ["SELECT upn, " + managed + " AS n FROM e WHERE WINDOW_FILTER GROUP BY upn ORDER BY n DESC, upn LIMIT 1000"],
  "by-device": ["SELECT \"deviceName\", " + managed + " AS n FROM e WHERE WINDOW_FILTER GROUP BY 1 ORDER BY n DESC, 1 LIMIT 1000"],
  "overview": overview,
  "trend": ["SELECT \"eventDate\", \"elevationType\", COUNT(*) FROM e WHERE WINDOW_FILTER GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1000"],
  "denied": ["SELECT CASE WHEN \"elevationType\" = 'deniedElevation' THEN 'denied' ELSE 'failed' END AS outcome, upn, \"deviceId\", \"deviceName\", hash, \"elevationType\", MAX(\"fileName\"), MAX(\"productName\"), MAX(\"fileDescription\"), MAX(\"internalName\"), MAX(\"fileVersion\"), MAX(\"companyName\"), COUNT(*) AS n, MAX(\"eventDateTime\") FROM e WHERE WINDOW_FILTER AND (\"elevationType\" = 'deniedElevation' OR result <> 0) GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY n DESC, upn, \"deviceName\", hash, outcome LIMIT 1000"],
  "diagnostics": [
    "SELECT \"deviceName\", ARG_MAX(\"reportingLevel\", \"eventDateTime\"), MAX(\"eventDateTime\") FROM (SELECT \"deviceName\", \"reportingLevel\", \"eventDateTime\" FROM e WHERE WINDOW_FILTER UNION ALL SELECT \"deviceName\", \"reportingLevel\", \"eventDateTime\" FROM d WHERE WINDOW_FILTER) GROUP BY 1",
    "SELECT \"errorCode\", COUNT(*) AS n FROM d WHERE WINDOW_FILTER AND \"errorCode\" <> 0 GROUP BY 1 ORDER BY n DESC, 1",
  ],
  "overview (48 h)": overview,
}
out = {}
for name, statements in queries.items():
    since = start48 if name == "overview (48 h)" else start
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        # Like the product, list the files from the Delta log on every run.
        for view, table in (("e", "elevations"), ("d", "diagnostics")):
            files = DeltaTable(path + "/" + table).file_uris()
            con.read_parquet(files, hive_partitioning=True).create_view(view, replace=True)
        for sql in statements:
            con.execute(sql.replace("WINDOW_FILTER", w), {"tenant": tenant, "start": since}).to_arrow_table()
        times.append(time.perf_counter() - t)
    times.sort()
    out[name] = times[len(times) // 2]
print(json.dumps(out))
"#;

/// A report's `key=value` parameters.
type Params = Vec<(String, String)>;

/// Times every report, then DuckDB on the same files.
pub(crate) async fn query(location: warehouse::Location, tenant: &str, args: QueryBenchArgs) -> Result<()> {
    let warehouse = Warehouse::new(location.clone());
    let now = warehouse::SystemClock.now();
    let from = args
        .from
        .unwrap_or_else(|| (now - chrono::Duration::days(400)).to_rfc3339());
    let runs = args.runs.max(1);
    let opened = Instant::now();
    let rows = queries::landed_counts(&warehouse, tenant).await?;
    let opened = opened.elapsed();
    println!(
        "{} elevation rows and {} diagnostic rows of tenant {tenant} in {}; median of {runs} runs",
        rows.elevations(),
        rows.diagnostics,
        warehouse.location().display()
    );
    println!(
        "opening the tables and counting the rows took {:.1} ms; later calls reuse the open tables",
        ms(opened)
    );
    if cfg!(debug_assertions) {
        println!("(a debug build: run `cargo run --release -- bench query` for real figures)");
    }
    println!(
        "{:<20} {:>12} {:>8} {:>12} {:>8}",
        "report", "elevation", "rows", "duckdb", "ratio"
    );
    let from_48h = (now - chrono::Duration::hours(48)).to_rfc3339();
    let duck = duckdb(&location, tenant, [&from, &from_48h], runs);
    let window = vec![
        ("from".to_owned(), from.clone()),
        ("limit".to_owned(), "1000".to_owned()),
    ];
    let mut cases: Vec<(String, queries::ReportName, Params)> = queries::ReportName::ALL
        .into_iter()
        .map(|name| (name.as_str().to_owned(), name, window.clone()))
        .collect();
    // The Overview as Intune shows it: its own default window, the last 48 hours.
    cases.push(("overview (48 h)".to_owned(), queries::ReportName::Overview, Vec::new()));
    for (label, name, params) in cases {
        let parsed = queries::ReportRequest::parse(name.as_str(), tenant, &params, now, ReportingLevel::All)?;
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..runs {
            let start = Instant::now();
            n = queries::run(&warehouse, &parsed.request).await?.rows.len();
            times.push(start.elapsed());
        }
        times.sort();
        let ours = times[times.len() / 2];
        let theirs = duck
            .as_ref()
            .ok()
            .and_then(|d| d.get(label.as_str()))
            .and_then(|v| v.as_f64());
        let (theirs_text, ratio) = match theirs {
            Some(s) => (format!("{:.1} ms", s * 1e3), format!("{:.2}×", ours.as_secs_f64() / s)),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!("{label:<20} {:>9.1} ms {n:>8} {theirs_text:>12} {ratio:>8}", ms(ours));
    }
    // Suggestions over the same window (no DuckDB counterpart: the decisions are ours).
    let to = now;
    let from_instant = queries::request::parse_instant("from", &from)?;
    let request = queries::suggest::SuggestRequest::new(tenant, from_instant, to);
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..runs {
        let start = Instant::now();
        n = queries::suggest::suggest(&warehouse, &request).await?.len();
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "{:<20} {:>9.1} ms {n:>8} {:>12} {:>8}",
        "suggestions",
        ms(times[times.len() / 2]),
        "-",
        "-"
    );
    if let Err(e) = duck {
        println!("DuckDB not measured: {e:#}");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// DuckDB's median time per report: `from` holds the window start of every report and that of
/// the 48-hour Overview.
fn duckdb(location: &warehouse::Location, tenant: &str, from: [&str; 2], runs: usize) -> Result<serde_json::Value> {
    let path = match location {
        warehouse::Location::Local(path) => path.clone(),
        _ => anyhow::bail!("the DuckDB comparison reads a local warehouse only"),
    };
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("bench.py");
    std::fs::write(&script, DUCKDB_BENCH)?;
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(&path)
        .args([tenant, from[0], from[1], &runs.to_string()])
        .output()
        .context("running python3 (pip install duckdb deltalake)")?;
    anyhow::ensure!(
        output.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}
