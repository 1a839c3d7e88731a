"""Site benchmark: each page's first load in Debian's Chromium against the local platform.

    uv run python tests/bench/bench_site.py [--url http://127.0.0.1:PORT] [--runs 5]

Without --url it starts the platform exactly as `make up` does (`python -m clawhost_localcluster up`, in a scratch
run directory of its own) and stops it afterwards; with --url it measures a site already running (`make up`'s).

For every page, `--runs` times, a fresh browser context with an empty HTTP cache (signed-in pages: signed up
first, then the cache cleared over the DevTools protocol) loads the page once, and the page reports:
  transfer   bytes of every response of that load as the browser received them (the Resource Timing
             transferSize of the document and each subresource: headers and body as sent, compressed when the
             server compresses); the WebSocket of the chat is not a page resource and not counted
  requests   how many, and how many went to any host but the site's (must be 0)
  LCP        largest contentful paint (PerformanceObserver, buffered), ms after navigation start
The table shows the median LCP and the largest transfer of the runs. Limits: transfer < 100 KB, no third-party
request, LCP < 500 ms; the script exits 1 when a page misses one.

The measuring part holds the exclusive fcntl lock /tmp/clawhost-bench.lock, so benchmarks of different engineers
on this 2-core machine never overlap.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from clawhost_localcluster.bench_support import LOCK_FILE, exclusive, local_platform
from clawhost_localcluster.browser import launch_args

REPO = Path(__file__).resolve().parents[2]
LIMIT_TRANSFER = 100 * 1024
LIMIT_LCP_MS = 500.0
PASSWORD = "benchmark password 1"
# (path, needs a signed-in browser)
PAGES = [("/", False), ("/pricing", False), ("/signup", False), ("/login", False), ("/chat", True)]
OPTIONAL_PAGES = [("/dashboard", True)]  # measured when the site serves it
LCP_OBSERVER = """
window.__lcp = 0;
new PerformanceObserver(list => {
    for (const entry of list.getEntries()) { window.__lcp = Math.max(window.__lcp, entry.startTime); }
}).observe({type: 'largest-contentful-paint', buffered: true});
"""
TRANSFER = """() => {
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return {transfer: entries.reduce((sum, e) => sum + e.transferSize, 0),
            body: entries.reduce((sum, e) => sum + e.encodedBodySize, 0),
            decoded: entries.reduce((sum, e) => sum + e.decodedBodySize, 0)};
}"""


def _log(message: str) -> None:
    print(f"[bench-site] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Load:
    transfer: int
    body: int
    decoded: int
    requests: int
    third_party: list[str]
    lcp_ms: float


@dataclass(frozen=True)
class PageResult:
    path: str
    loads: list[Load]

    @property
    def transfer(self) -> int:
        return max(load.transfer for load in self.loads)

    @property
    def lcp_ms(self) -> float:
        return statistics.median(load.lcp_ms for load in self.loads)

    @property
    def third_party(self) -> list[str]:
        return sorted({url for load in self.loads for url in load.third_party})

    @property
    def ok(self) -> bool:
        return self.transfer < LIMIT_TRANSFER and not self.third_party and self.lcp_ms < LIMIT_LCP_MS


def _sign_up(page: Page, site: str) -> None:
    page.goto(f"{site}/signup")
    page.get_by_label("Email").fill(f"bench-{uuid.uuid4().hex[:12]}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(lambda u: not u.endswith("/signup"))


def _first_load(browser: Browser, site: str, path: str, signed_in: bool) -> Load | None:
    context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        if signed_in:
            _sign_up(page, site)
            page.goto("about:blank")
            context.new_cdp_session(page).send("Network.clearBrowserCache")
        context.add_init_script(LCP_OBSERVER)
        site_host = urlsplit(site).netloc
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        response = page.goto(f"{site}{path}", wait_until="load")
        if response is None or response.status == 404:
            return None
        page.wait_for_function("() => window.__lcp > 0", timeout=10_000)
        sizes = page.evaluate(TRANSFER)
        third_party = [
            url
            for url in requests
            if url.startswith(("http:", "https:", "ws:", "wss:")) and urlsplit(url).netloc != site_host
        ]
        return Load(
            sizes["transfer"],
            sizes["body"],
            sizes["decoded"],
            len(requests),
            third_party,
            page.evaluate("window.__lcp"),
        )
    finally:
        context.close()


def _table(results: list[PageResult], runs: int) -> str:
    head = (
        f"| page | transfer (max of {runs}) | body bytes (decoded) | requests | third-party "
        "| LCP median (min-max) | ok |\n|---|---|---|---|---|---|---|"
    )
    rows = []
    for result in results:
        last = result.loads[-1]
        lcps = [load.lcp_ms for load in result.loads]
        rows.append(
            f"| `{result.path}` | {result.transfer / 1024:.1f} KB | {last.body:,} ({last.decoded:,}) | {last.requests} "
            f"| {len(result.third_party)} | {result.lcp_ms:.0f} ms ({min(lcps):.0f}-{max(lcps):.0f}) "
            f"| {'yes' if result.ok else 'NO'} |"
        )
    return "\n".join([head, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="measure this running site instead of starting the platform")
    parser.add_argument("--runs", type=int, default=5, help="first loads per page")
    args = parser.parse_args()
    with local_platform(args.url, None, _log) as (site, _), exclusive(LOCK_FILE, _log), sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_args())
        results = []
        for path, signed_in in [*PAGES, *OPTIONAL_PAGES]:
            loads = []
            for _ in range(args.runs):
                load = _first_load(browser, site, path, signed_in)
                if load is None:
                    break
                loads.append(load)
            if not loads:
                _log(f"{path}: not served here, skipped")
                continue
            results.append(PageResult(path, loads))
            _log(f"{path}: {results[-1].transfer} B, LCP {results[-1].lcp_ms:.0f} ms")
        browser.close()
    chromium = subprocess.run([launch_args()["executable_path"], "--version"], capture_output=True, text=True)
    print(f"{time.strftime('%Y-%m-%d')}, {chromium.stdout.strip()}, {os.cpu_count()} CPUs, site {site}")
    print(_table(results, args.runs))
    failed = [r.path for r in results if not r.ok]
    if failed:
        print(f"over a limit: {', '.join(failed)} (transfer < 100 KB, no third party, LCP < 500 ms)")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
