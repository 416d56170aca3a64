#!/usr/bin/env python3
"""Chromium's navigation timing of dashboard pages on a running server.

Signs in with an admin key in headless Chromium (driven by chromedriver over the WebDriver
protocol; Python's standard library only), opens each page `--runs` times and prints, per
page, the navigation's duration (request start to the load event), the server's part
(request to the last byte of the HTML), and the bytes transferred over the wire for the page
and its assets (gzip included). BENCHMARKS.md, "The dashboards in Chromium at fleet scale":

    python3 ops/page_timing.py --base http://127.0.0.1:18080 --key "$ADMIN_KEY" \\
        --page '/?from=2026-11-08T00:00:00Z&to=2026-12-07T00:00:00Z' --runs 7
"""

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self, chromedriver, chromium):
        self.port = free_port()
        self.process = subprocess.Popen(
            [chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.call("GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("chromedriver did not start within 30 s")
            time.sleep(0.1)
        options = {"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]}
        if chromium:
            options["binary"] = chromium
        session = self.call(
            "POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}
        )
        self.session = f"/session/{session['sessionId']}"

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.load(answer)["value"]

    def goto(self, url):
        self.call("POST", f"{self.session}/url", {"url": url})

    def run(self, script):
        return self.call("POST", f"{self.session}/execute/sync", {"script": script, "args": []})

    def find(self, css):
        found = self.call("POST", f"{self.session}/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def stop(self):
        try:
            self.call("DELETE", self.session)
        finally:
            self.process.kill()
            self.process.wait()


TIMING = """
const nav = performance.getEntriesByType('navigation')[0];
const resources = performance.getEntriesByType('resource');
return {
  duration: nav.duration,
  server: nav.responseEnd - nav.requestStart,
  transferred: nav.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
  status: nav.responseStatus,
};
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:18080")
    parser.add_argument("--key", required=True, help="an admin key allowed to view reports")
    parser.add_argument("--page", action="append", required=True, help="a page path with its query; repeat")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chromedriver", default="chromedriver")
    parser.add_argument("--chromium", default=None, help="the browser binary (chromedriver's choice if absent)")
    args = parser.parse_args()

    driver = Driver(args.chromedriver, args.chromium)
    try:
        driver.goto(args.base + "/sign-in?next=/")
        key_field = driver.find("#key")
        driver.call("POST", f"{driver.session}/element/{key_field}/value", {"text": args.key})
        submit = driver.find("main form button[type=submit]")
        driver.call("POST", f"{driver.session}/element/{submit}/click", {})
        if "/sign-in" in driver.call("GET", f"{driver.session}/url"):
            sys.exit("signing in failed: is the key an admin key?")
        print(f"{'page':60} {'runs':>4} {'load ms (median, max)':>22} {'server ms (median)':>19} {'bytes':>9}")
        for page in args.page:
            loads, servers, transferred = [], [], 0
            # A first, uncounted visit fills the browser's cache of assets, as for a returning
            # admin; every counted one is a fresh navigation of the page itself.
            for run in range(args.runs + 1):
                driver.goto(args.base + page)
                timing = driver.run(TIMING)
                if timing["status"] >= 400:
                    sys.exit(f"{page}: HTTP {timing['status']}")
                if run == 0:
                    transferred = timing["transferred"]
                    continue
                loads.append(timing["duration"])
                servers.append(timing["server"])
            print(
                f"{page[:60]:60} {args.runs:>4} {statistics.median(loads):>12.0f} {max(loads):>9.0f}"
                f" {statistics.median(servers):>19.0f} {transferred:>9}"
            )
    finally:
        driver.stop()


if __name__ == "__main__":
    main()
