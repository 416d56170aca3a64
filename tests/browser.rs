//! The dashboards in a real browser (issue #15): Debian's Chromium, headless, driven over
//! WebDriver by chromedriver (both installed by `.ci/run`), against a node holding a simulated
//! fleet. Chromium may resolve no host but 127.0.0.1, so a page that asked another host for
//! anything would fail. Each page's screenshot is written under `target/tmp/screenshots/` for a
//! person to look at.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::support::{Node, create_key, land_simulated_fleet, temp_dir};

/// chromedriver and a headless Chromium session, with a fresh profile.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// Chromium's console since the last call (the legacy log endpoint chromedriver still serves).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

impl Browser {
    async fn start(javascript: bool) -> Browser {
        let profile = temp_dir();
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (.ci/run installs Debian's chromium-driver)");
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("chromedriver says its port").unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_owned();
            }
        };
        // Keep reading so chromedriver never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let mut prefs = serde_json::Map::new();
        if !javascript {
            prefs.insert(
                "profile.managed_default_content_settings.javascript".into(),
                serde_json::json!(2),
            );
        }
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": prefs,
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver starts a Chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Console errors (failed requests, CSP violations, script errors) since the last call.
    async fn console_errors(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(BrowserLog).await.unwrap();
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Loads a page and checks it: no console error, no failed request; then a screenshot.
    async fn visit(&self, url: &str, screenshot: &str) {
        self.client.goto(url).await.unwrap();
        self.check(screenshot).await;
    }

    async fn check(&self, screenshot: &str) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "{screenshot}: console errors {errors:?}");
        let failed = self
            .client
            .execute(
                "return performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
                   .filter(e => e.responseStatus >= 400).map(e => e.name)",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(failed, serde_json::json!([]), "{screenshot}: failed requests");
        let png = self.client.screenshot().await.unwrap();
        let folder = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{screenshot}.png")), png).unwrap();
    }

    /// Clicks what `locator` finds and waits for the next page: a full navigation or htmx's
    /// boosted swap of the body both replace `main`.
    async fn click(&self, locator: Locator<'_>) {
        let element = self.client.find(locator).await.unwrap();
        self.client
            .execute("document.querySelector('main').setAttribute('data-old', '')", vec![])
            .await
            .unwrap();
        element.click().await.unwrap();
        self.client
            .wait()
            .for_element(Locator::Css("main:not([data-old])"))
            .await
            .unwrap();
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap() {
            texts.push(element.text().await.unwrap().trim().to_owned());
        }
        texts
    }

    /// The path and query the browser shows now: a permalink holds the page's whole state.
    async fn here(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn sign_in(&self, base: &str, start: &str, key: &str) {
        self.client.goto(&format!("{base}{start}")).await.unwrap();
        assert!(self.here().await.starts_with("/sign-in?next="), "{}", self.here().await);
        self.check(&format!("sign-in{}", start.len())).await;
        let field = self.client.find(Locator::Id("key")).await.unwrap();
        field.send_keys(key).await.unwrap();
        self.click(Locator::Css("main form button[type=submit]")).await;
        assert_eq!(self.here().await, start, "signed in, back where the visitor started");
    }

    async fn stop(mut self) {
        self.client.close().await.unwrap();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The table's column of `header` as the page shows it.
async fn column(browser: &Browser, header: &str) -> Vec<String> {
    let headers = browser.texts("main table thead th").await;
    let index = headers
        .iter()
        .position(|h| h == header)
        .unwrap_or_else(|| panic!("no column {header} in {headers:?}"));
    browser
        .texts(&format!("main .scroll table tbody tr td:nth-child({})", index + 1))
        .await
}

/// The page's column of `header` is the API's for the page's query (a page shows up to 100
/// rows); returns it.
async fn assert_page_matches(browser: &Browser, node: &Node, header: &str) -> Vec<String> {
    let here = browser.here().await;
    let page = column(browser, header).await;
    let api = api_column(node, &here, header).await;
    assert_eq!(page.len(), api.len().min(100), "rows of {here}");
    assert_eq!(page, api[..page.len()].to_vec(), "{header} of {here}");
    page
}

/// The API's CSV column of `header` for a page's query. A filter form also sends its empty
/// fields, which the page ignores and the API refuses: they are left out.
async fn api_column(node: &Node, page: &str, header: &str) -> Vec<String> {
    let (name, query) = page.trim_start_matches("/reports/").split_once('?').unwrap();
    let query: Vec<&str> = query.split('&').filter(|pair| !pair.ends_with('=')).collect();
    let query = query.join("&");
    let (_, body) = node
        .get_with_key(&node.admin_key, &format!("/v1/reports/{name}?{query}&format=csv"))
        .await;
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let index = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == header)
        .unwrap_or_else(|| panic!("no {header} in the API's answer to {name}?{query}: {body}"));
    reader.records().map(|r| r.unwrap()[index].to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_work_in_chromium_as_an_admin_uses_them() {
    let node = Node::start().await;
    let fleet = land_simulated_fleet(&node, &node.agent_key.clone(), "contoso", 7, 60, 7).await;
    let (other_admin, _) = create_key(
        &node.control,
        "fabrikam",
        control::KeyKind::Admin,
        Some(control::Role::ReadOnlyOperator),
    )
    .await;
    let window = format!(
        "from={}&to={}",
        fleet.truth.from.format("%Y-%m-%dT00:00:00Z"),
        fleet.truth.to.format("%Y-%m-%dT00:00:00Z")
    );
    let base = node.base.clone();
    let browser = Browser::start(true).await;

    // Signing in from a page brings the admin back to it.
    browser.sign_in(&base, &format!("/?{window}"), &node.admin_key).await;
    browser.check("overview").await;
    let timing = browser
        .client
        .execute("return performance.getEntriesByType('navigation')[0].duration", vec![])
        .await
        .unwrap();
    eprintln!("Overview navigation in Chromium: {timing} ms");

    // The tiles are the overview report's.
    let (_, overview) = node
        .get_with_key(&node.admin_key, &format!("/v1/reports/overview?{window}"))
        .await;
    let overview: serde_json::Value = serde_json::from_str(&overview).unwrap();
    let tile_counts = browser.texts(".tiles .tile .n").await;
    let api_counts: Vec<String> = ["usersOnlyUnmanaged", "usersBoth", "usersOnlyManaged"]
        .iter()
        .map(|tile| {
            overview["rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["tile"] == *tile)
                .unwrap()["count"]
                .to_string()
        })
        .collect();
    assert_eq!(tile_counts[..3], api_counts[..], "tiles");
    assert!(
        api_counts.iter().any(|c| c != "0"),
        "the fleet has users: {api_counts:?}"
    );

    // Every page loads clean.
    for (path, name) in [
        (format!("/reports/by-application?{window}"), "report-by-application"),
        (format!("/reports/elevations?{window}"), "report-elevations"),
        (format!("/reports/diagnostics?{window}"), "report-diagnostics"),
        (format!("/suggestions?{window}"), "suggestions"),
        (format!("/fleet?{window}"), "fleet"),
        (format!("/when?{window}&tz=Europe/Paris"), "when"),
    ] {
        browser.visit(&format!("{base}{path}"), name).await;
    }

    // A report table is the API's rows for the URL's query, and its CSV link is the API's CSV.
    browser
        .visit(&format!("{base}/reports/by-application?{window}"), "by-application")
        .await;
    assert!(!assert_page_matches(&browser, &node, "fileName").await.is_empty());
    let csv_href = browser
        .client
        .find(Locator::LinkText("Download CSV of this page"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let downloaded = browser
        .client
        .execute(
            "return fetch(arguments[0]).then(r => r.text())",
            vec![csv_href.clone().into()],
        )
        .await
        .unwrap();
    let (_, expected) = node.get_with_key(&node.admin_key, &csv_href).await;
    assert_eq!(
        downloaded.as_str().unwrap(),
        expected,
        "the CSV link gives what the API gives"
    );

    // Sorting by a column: the page's order is the API's for the same parameters.
    browser
        .click(Locator::XPath("//main//table/thead//a[normalize-space()='users']"))
        .await;
    let sorted_here = browser.here().await;
    assert!(sorted_here.contains("sort=users"), "{sorted_here}");
    browser.check("by-application-sorted").await;
    assert_page_matches(&browser, &node, "users").await;

    // The next page of the whole list.
    browser
        .visit(&format!("{base}/reports/elevations?{window}"), "elevations-page-1")
        .await;
    browser.click(Locator::LinkText("Next page")).await;
    let second = browser.here().await;
    assert!(second.contains("offset=100"), "{second}");
    browser.check("elevations-page-2").await;
    assert_page_matches(&browser, &node, "id").await;

    // A filter: only unmanaged elevations, the API's rows.
    browser
        .visit(&format!("{base}/reports/elevations?{window}"), "elevations")
        .await;
    let select = browser
        .client
        .find(Locator::Css("form.filters select[name=elevationType]"))
        .await
        .unwrap();
    select.select_by_value("unmanagedElevation").await.unwrap();
    browser
        .click(Locator::Css("form[aria-label=Filters] button[type=submit]"))
        .await;
    let filtered = browser.here().await;
    assert!(filtered.contains("elevationType=unmanagedElevation"), "{filtered}");
    browser.check("elevations-filtered").await;
    let ids = assert_page_matches(&browser, &node, "id").await;
    assert!(!ids.is_empty());
    let types = column(&browser, "elevationType").await;
    assert!(types.iter().all(|t| t == "unmanagedElevation"), "{types:?}");

    // Drill-down: an elevation's detail names every column and links its file's users.
    let first_id = ids[0].clone();
    browser.click(Locator::LinkText(&first_id)).await;
    browser.check("elevation-detail").await;
    assert!(browser.here().await.starts_with(&format!("/elevations/{first_id}")));
    let page_text = browser
        .client
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for field in ["fileName", "hash", "upn", "deviceName", "elevationType"] {
        assert!(page_text.contains(field), "the detail shows {field}");
    }
    browser.click(Locator::LinkText("Users and devices of this file")).await;
    let users_here = browser.here().await;
    browser.check("file-users").await;
    assert!(users_here.starts_with("/reports/by-user?"), "{users_here}");
    assert!(!assert_page_matches(&browser, &node, "upn").await.is_empty());

    // A reader's missing rights: key management is refused in the browser too.
    browser.client.goto(&format!("{base}/v1/keys")).await.unwrap();
    let refused = browser.client.source().await.unwrap();
    assert!(
        refused.contains("forbidden") && refused.contains("Manage Keys"),
        "{refused}"
    );
    let _ = browser.console_errors().await; // the 403 itself is logged as a failed load

    // Sign-out ends the session: the next page asks to sign in again.
    browser.visit(&format!("{base}/?{window}"), "overview-again").await;
    browser
        .click(Locator::Css("header form[action='/sign-out'] button"))
        .await;
    assert_eq!(browser.client.current_url().await.unwrap().path(), "/sign-in");
    browser.client.goto(&format!("{base}/fleet")).await.unwrap();
    assert!(browser.here().await.starts_with("/sign-in?next="));

    // Another tenant's admin sees none of contoso's elevations.
    browser
        .sign_in(&base, &format!("/reports/elevations?{window}"), &other_admin)
        .await;
    browser.check("other-tenant").await;
    assert_eq!(
        browser.texts("main .scroll table tbody tr").await,
        vec!["no rows".to_owned()]
    );
    browser.stop().await;

    // With JavaScript off, signing in, a table and its paging still work.
    let plain = Browser::start(false).await;
    plain
        .sign_in(&base, &format!("/reports/elevations?{window}"), &node.admin_key)
        .await;
    plain.check("elevations-no-javascript").await;
    assert_eq!(assert_page_matches(&plain, &node, "id").await.len(), 100);
    plain
        .client
        .find(Locator::LinkText("Next page"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let second_page = plain.here().await;
    assert!(second_page.contains("offset=100"), "{second_page}");
    assert_page_matches(&plain, &node, "id").await;
    plain.stop().await;
}

/// Support-approved requests in the browser (issue #17): a device asks, the help-desk lead
/// finds the request on the Requests page, approves it with a reason from the form, and the
/// API shows the decision; a reader sees the request but no form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_help_desk_lead_approves_a_request_in_chromium() {
    // One clock for the control plane and the pages, as on a real node.
    let db = control::testing::TestDb::sqlite();
    let clock = std::sync::Arc::new(warehouse::ManualClock::new(crate::support::test_now()));
    let node = Node::start_with_clock(&db.db, clock.clone()).await;
    let (lead, _) = create_key(
        &node.control,
        "contoso",
        control::KeyKind::Admin,
        Some(control::Role::EndpointPrivilegeManager),
    )
    .await;
    let request = serde_json::json!({
        "requestId": "browser-1", "requestedByUserPrincipalName": "bob@contoso.com",
        "requestedOnDeviceId": "device-7", "deviceName": "LAPTOP-7", "requestJustification": "print driver",
        "applicationDetail": {"fileHash": "ab".repeat(32), "fileName": "PrinterSetup.exe"}
    });
    let asked: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/agent/requests", node.base))
        .bearer_auth(&node.agent_key)
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = asked["id"].as_str().unwrap().to_owned();
    let base = node.base.clone();
    // The lead looks a minute later.
    clock.advance(chrono::Duration::minutes(1));

    let browser = Browser::start(true).await;
    browser.sign_in(&base, "/requests?status=pending", &lead).await;
    browser.check("requests").await;
    let rows = browser
        .texts("#request-list ~ .scroll tbody tr, section .scroll tbody tr")
        .await;
    assert!(rows.iter().any(|r| r.contains("PrinterSetup.exe")), "{rows:?}");
    browser.click(Locator::Css(&format!("a[href='/requests/{id}']"))).await;
    browser.check("request").await;
    let reason = browser
        .client
        .find(Locator::Css(
            "form[aria-label=Approve] input[name=reviewerJustification]",
        ))
        .await
        .unwrap();
    reason.send_keys("signed by the vendor").await.unwrap();
    browser
        .click(Locator::Css("form[aria-label=Approve] button[type=submit]"))
        .await;
    assert_eq!(browser.here().await, format!("/requests/{id}"));
    browser.check("request-approved").await;
    let detail = browser.texts("dl.detail dd").await;
    assert_eq!(detail.first().map(String::as_str), Some("approved"), "{detail:?}");
    let (_, api) = node.get_with_key(&lead, &format!("/v1/requests/{id}")).await;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["status"], "approved");
    assert_eq!(api["reviewerJustification"], "signed by the vendor");
    assert_eq!(api["reviewCompletedByUserPrincipalName"], "admin@contoso.com");
    browser.stop().await;

    // A reader sees the request and no decision form.
    let reader = Browser::start(true).await;
    reader.sign_in(&base, &format!("/requests/{id}"), &node.admin_key).await;
    assert!(
        reader
            .client
            .find_all(Locator::Css("form.decision"))
            .await
            .unwrap()
            .is_empty()
    );
    reader.stop().await;
}
