//! The browser dashboards (issue #15), over HTTP against a node holding a simulated fleet:
//! every page answers HTML with the security headers, its numbers are the report API's for
//! the same window, a tile's link lists exactly the users it counts, and the static snapshot
//! writes every page with links that resolve on disk.

use crate::support::{Node, elevation, stdout_of};

async fn page(node: &Node, path: &str) -> (u16, String, Option<String>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", node.base))
        .bearer_auth(&node.admin_key)
        .send()
        .await
        .unwrap();
    let csp = response
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), response.text().await.unwrap(), csp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_serves_the_report_apis_numbers() {
    let mut node = Node::start().await;
    let fleet = crate::support::land_simulated_fleet(&node, &node.agent_key.clone(), "contoso", 7, 60, 7).await;
    let window = format!(
        "from={}&to={}",
        fleet.truth.from.format("%Y-%m-%dT00:00:00Z"),
        fleet.truth.to.format("%Y-%m-%dT00:00:00Z")
    );
    for path in [
        format!("/?{window}"),
        format!("/reports/by-application?{window}"),
        format!("/reports/elevations?{window}&sort=fileName&order=asc"),
        format!("/reports/diagnostics?{window}"),
        format!("/suggestions?{window}"),
        format!("/fleet?{window}"),
        format!("/when?{window}&tz=Europe/Paris"),
    ] {
        let (status, body, csp) = page(&node, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.starts_with("<!doctype html>"), "{path}");
        assert!(csp.is_some_and(|c| c.starts_with("default-src 'self'")), "{path}");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} names another host"
        );
    }
    // Error codes over time: each code's days add up to the simulator's count of that code, and
    // "other" to the rest.
    let (_, fleet_page, _) = page(&node, &format!("/fleet?{window}")).await;
    let chart_table = fleet_page
        .split("id=\"fleet-errors-over-time\"")
        .nth(1)
        .and_then(|rest| rest.split("<table>").nth(1))
        .expect("the fleet page has the error codes over time");
    let cells = |row: &str| -> Vec<String> {
        row.split("<t")
            .skip(1)
            .filter_map(|cell| {
                cell.split_once('>')
                    .map(|(_, rest)| rest.split('<').next().unwrap().to_owned())
            })
            .collect()
    };
    let (head, body) = chart_table.split_once("</thead>").unwrap();
    let codes: Vec<String> = cells(head.split("<tr>").nth(1).unwrap()).into_iter().skip(1).collect();
    let mut per_code = vec![0u64; codes.len()];
    let mut days = 0;
    for row in body.split("</tbody>").next().unwrap().split("<tr>").skip(1) {
        let values = cells(row);
        days += 1;
        for (i, n) in values.iter().skip(1).enumerate() {
            per_code[i] += n.parse::<u64>().unwrap();
        }
    }
    assert_eq!(days, 7, "every day of the window has a row");
    let truth = &fleet.truth.diagnostics.error_codes;
    assert!(!truth.is_empty(), "the simulated fleet reports error codes");
    let mut charted = 0;
    for (code, n) in codes.iter().zip(&per_code) {
        if code == "other" {
            continue;
        }
        let value: i64 = code.split('(').nth(1).unwrap().trim_end_matches(')').parse().unwrap();
        assert_eq!(Some(n), truth.get(&value), "code {code}");
        charted += n;
    }
    let all: u64 = truth.values().sum();
    assert_eq!(
        per_code.iter().sum::<u64>(),
        all,
        "charted and other add up to every error event"
    );
    assert!(charted > 0);

    // Ten days past the fleet's end every device is silent: the page lists the first 25 with
    // the total, the API's, and links to all of them in the diagnostics table.
    let late = format!(
        "from={}&to={}",
        fleet.truth.from.format("%Y-%m-%dT00:00:00Z"),
        (fleet.truth.to + chrono::Duration::days(10)).format("%Y-%m-%dT00:00:00Z")
    );
    let (_, silent_api) = node
        .get_with_key(
            &node.admin_key,
            &format!("/v1/reports/diagnostics?{late}&kind=silentDevice"),
        )
        .await;
    let silent_api: serde_json::Value = serde_json::from_str(&silent_api).unwrap();
    let silent_total = silent_api["rows"].as_array().unwrap().len();
    let listed = dashboards::pages::LISTED_DEVICES;
    assert!(silent_total > listed, "{silent_total} silent devices");
    let (_, late_page, _) = page(&node, &format!("/fleet?{late}")).await;
    let silent_section = late_page
        .split("<h2 id=\"fleet-3\">Silent devices</h2>")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .expect("the fleet page lists silent devices");
    assert_eq!(silent_section.matches("<tr><td>").count(), listed, "{silent_section}");
    assert!(
        silent_section.contains(&format!("The first {listed} of {silent_total} are listed here")),
        "{silent_section}"
    );
    let all_link = silent_section
        .split("<a href=\"")
        .last()
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&#38;", "&");
    assert!(all_link.starts_with("/reports/diagnostics?") && all_link.contains("kind=silentDevice"));
    let (status, all_page, _) = page(&node, &all_link).await;
    assert_eq!(status, 200, "{all_page}");
    assert_eq!(
        all_page.matches(">silentDevice</td>").count(),
        silent_total.min(dashboards::pages::PAGE_ROWS),
        "{all_link}"
    );
    assert!(!all_page.contains(">reportingDevices</td>"), "{all_link}");

    // Without a key or a session: the sign-in form, never a page.
    let unsigned = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 303);
    assert_eq!(unsigned.headers()["location"], "/sign-in?next=%2F");

    // The Overview's tiles are the overview report's, and each tile's link lists its users.
    let (_, api_body) = node
        .get_with_key(&node.admin_key, &format!("/v1/reports/overview?{window}"))
        .await;
    let api: serde_json::Value = serde_json::from_str(&api_body).unwrap();
    let (_, overview, _) = page(&node, &format!("/?{window}")).await;
    for (tile, readiness) in [
        ("usersOnlyUnmanaged", "onlyUnmanaged"),
        ("usersBoth", "both"),
        ("usersOnlyManaged", "onlyManaged"),
    ] {
        let count = api["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tile"] == tile)
            .unwrap()["count"]
            .as_i64()
            .unwrap();
        assert!(
            overview.contains(&format!("readiness={readiness}\">{count}</a>")),
            "{tile} {count}"
        );
        let (_, users) = node
            .get_with_key(
                &node.admin_key,
                &format!("/v1/reports/by-user?{window}&readiness={readiness}"),
            )
            .await;
        let users: serde_json::Value = serde_json::from_str(&users).unwrap();
        assert_eq!(users["rows"].as_array().unwrap().len() as i64, count, "{tile}");
    }

    // A report page shows the API's rows, in the asked order, and links its CSV.
    let (_, table, _) = page(
        &node,
        &format!("/reports/by-user?{window}&sort=total&order=desc&limit=5"),
    )
    .await;
    let (_, api_body) = node
        .get_with_key(
            &node.admin_key,
            &format!("/v1/reports/by-user?{window}&sort=total&order=desc&limit=5"),
        )
        .await;
    let api: serde_json::Value = serde_json::from_str(&api_body).unwrap();
    let rows = api["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let totals: Vec<i64> = rows.iter().map(|r| r["total"].as_i64().unwrap()).collect();
    assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
    let mut at = 0;
    for row in rows {
        let upn = row["upn"].as_str().unwrap();
        let found = table[at..]
            .find(upn)
            .unwrap_or_else(|| panic!("{upn} not in order on the page"));
        at += found + upn.len();
    }
    assert!(table.contains("/v1/reports/by-user?"), "CSV link");
    assert!(table.contains("format=csv"));
    node.stop().await;

    // The static snapshot writes every page; every local link resolves on disk.
    let out = node.dir.path().join("snapshot");
    let output = elevation(
        &[
            "--data-dir",
            &node.dir.path().display().to_string(),
            "dashboard",
            "--out",
            &out.display().to_string(),
            "--from",
            &fleet.truth.from.to_string(),
            "--to",
            &fleet.truth.to.to_string(),
        ],
        node.dir.path(),
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout_of(&output).contains("index.html"));
    let mut pages = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "html") {
            pages += 1;
            let html = std::fs::read_to_string(&path).unwrap();
            for link in html
                .split("href=\"")
                .skip(1)
                .map(|s| s.split('"').next().unwrap())
                .filter(|l| !l.starts_with('#'))
            {
                assert!(out.join(link).exists(), "{} links to missing {link}", path.display());
            }
        }
    }
    // Overview, suggestions, fleet, when, requests and the ten report tables.
    assert_eq!(pages, 15);
}

#[test]
fn the_heatmap_places_elevations_in_the_chosen_zones_weekday_and_hour() {
    use chrono::TimeZone;
    // Monday 2026-11-16 23:30 UTC is Tuesday 00:30 in Paris and Monday 18:30 in New York.
    let at = chrono::Utc.with_ymd_and_hms(2026, 11, 16, 23, 30, 0).unwrap();
    let paris = dashboards::pages::heat_grid(&[(at, 3)], chrono_tz::Europe::Paris);
    assert_eq!(paris[1][0], 3);
    let new_york = dashboards::pages::heat_grid(&[(at, 3)], chrono_tz::America::New_York);
    assert_eq!(new_york[0][18], 3);
    // India is UTC+5:30: a quarter hour keeps its half hour.
    let india = dashboards::pages::heat_grid(&[(at, 2)], chrono_tz::Asia::Kolkata);
    assert_eq!(india[1][5], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_filter_fields_leave_the_pages_address() {
    let mut node = Node::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| {
        client
            .get(format!("{}{path}", node.base))
            .bearer_auth(&node.admin_key)
            .send()
    };
    // A filter form's GET sends every field; the empty ones go, the chosen ones and their
    // order stay.
    let response = get("/reports/by-user?from=2026-11-01&upn=&fileName=chrome.exe&hash=&limit=100".into())
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/reports/by-user?from=2026-11-01&fileName=chrome.exe&limit=100"
    );
    let response = get("/reports/by-user?fileName==x&upn=".into()).await.unwrap();
    assert_eq!(
        response.headers()["location"],
        "/reports/by-user?fileName==x",
        "a value of '=x' stays"
    );
    let response = get("/?from=&to=".into()).await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    // A page without empty fields is the page itself; the API keeps its own rules.
    let (status, body, _) = page(&node, "/reports/by-user?fileName=chrome.exe").await;
    assert_eq!(status, 200, "{body}");
    let api = get("/v1/reports/by-user?upn=".into()).await.unwrap();
    assert_ne!(api.status(), 303);
    // A page opened without a window shows the span its picker marks: 48 h for the Overview,
    // 30 d (whole days from a midnight) for every other.
    for (path, span) in [
        ("/", "48 h"),
        ("/reports/by-user", "30 d"),
        ("/suggestions", "30 d"),
        ("/fleet", "30 d"),
        ("/when", "30 d"),
        ("/requests", "30 d"),
    ] {
        let (status, body, _) = page(&node, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let marked: Vec<&str> = body
            .split("aria-current=\"true\">")
            .skip(1)
            .filter_map(|rest| rest.split('<').next())
            .filter(|label| label.ends_with(" h") || label.ends_with(" d"))
            .collect();
        assert_eq!(marked, [span], "{path}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elevations_detail_link_carries_its_time_and_the_detail_is_found_with_or_without_it() {
    let mut node = Node::start().await;
    let at = |id: &str, time: &str| {
        let mut event = crate::support::elevation_event(id, "userConfirmedElevation");
        event["eventDateTime"] = time.into();
        event
    };
    let events = vec![
        at("e-1", "2026-11-20T10:00:00.123456Z"),
        at("e-2", "2026-11-20T11:00:00Z"),
    ];
    let answer = node.upload(&crate::support::batch("b-1", "all", events, vec![])).await;
    assert_eq!(answer.status, 200, "{}", answer.message());
    node.land_all().await;
    let window = "from=2026-11-14T00:00:00Z&to=2026-11-21T00:00:00Z";
    let (status, list, _) = page(&node, &format!("/reports/elevations?{window}")).await;
    assert_eq!(status, 200, "{list}");
    // The list's link to e-1's detail, with its time to the microsecond.
    let link = list
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .map(|href| href.replace("&#38;", "&").replace("&amp;", "&"))
        .find(|href| href.starts_with("/elevations/e-1?"))
        .expect("the list links e-1's detail");
    assert!(link.contains("at=2026-11-20T10%3A00%3A00.123456Z"), "{link}");
    let shows_e1 = |body: &str| body.contains("<dt>id</dt><dd>e-1</dd>") && body.contains("2026-11-20 10:00:00Z");
    let (status, detail, _) = page(&node, &link).await;
    assert!(status == 200 && shows_e1(&detail), "{link}: {status} {detail}");
    // Another elevation's time, a time outside the window, or no time at all: the lookup
    // falls back to the whole window and finds the same elevation.
    for hint in [
        "&at=2026-11-20T11:00:00Z",
        "&at=2026-10-01T00:00:00Z",
        "&at=not-a-time",
        "",
    ] {
        let path = format!("/elevations/e-1?{window}{hint}");
        let (status, detail, _) = page(&node, &path).await;
        assert!(status == 200 && shows_e1(&detail), "{path}: {status} {detail}");
    }
    node.stop().await;
}
