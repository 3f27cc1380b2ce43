"""The report in a real browser: headless Chromium runs our script and none from the log,
and fetches nothing, on the report and on the live page.

Payloads in every field point at a local HTTP server that records hits; a
deliberately unescaped page proves that the same payloads, if they reached
the markup, would be seen (hits, a changed DOM), so the zero on our page means
something.  Screenshots (light and dark, beside GoAccess's page of the same
log) are kept as artefacts for people to look at.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.weblog import generate_lines
from tests.conftest import Processes, free_port, require_program, run_tool
from tests.webstats.browser import Chromium, artefacts, dump_dom, screenshot
from tests.webstats.hostile import hostile_log
from tests.webstats.serving import start_live, wait_for_total
from tests.webstats.test_report import PAGE_TAGS

pytestmark = pytest.mark.realpart

HOST = "127.0.0.47"
#: The element names in the page, read by DevTools.
TAG_NAMES = "[...new Set([...document.querySelectorAll('*')].map(e => e.localName))]"


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"x")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = ThreadingHTTPServer((HOST, free_port(HOST)), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def payloads(base: str) -> list[str]:
    return [
        f"<img src={base}/img>",
        f'"><img src=x onerror="fetch(\'{base}/onerror\')">',
        f"<script src={base}/script.js></script>",
        "<script>document.title='pwned';document.body.append(document.createElement('aside'))"
        "</script>",
        f"<link rel=stylesheet href={base}/css>",
        f"<iframe src={base}/frame></iframe>",
        f"<svg onload=\"fetch('{base}/svg')\">",
        f"javascript:fetch('{base}/js')",
        f"<style>body{{background:url({base}/bg)}}</style>",
    ]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)


def test_hostile_report_in_chromium(tmp_path: Path, recorder: tuple[str, list[str]]) -> None:
    base, hits = recorder
    log = tmp_path / "hostile.log"
    log.write_text(hostile_log(payloads(base)), encoding="latin-1")
    page = tmp_path / "report.html"
    result = run_tool("webstats", "report", str(log), "-o", str(page))
    assert result.returncode == 0, result.stderr

    dom = dump_dom(page.as_uri(), tmp_path / "profile")
    tags = _Tags()
    tags.feed(dom)
    assert tags.tags <= PAGE_TAGS, tags.tags - PAGE_TAGS
    assert "<title>Access log statistics</title>" in dom
    assert "pwned" not in dom.split("<body", 1)[0]
    shot = screenshot(page.as_uri(), artefacts("hostile") / "report.png", tmp_path / "profile")
    assert shot.stat().st_size > 10_000
    assert hits == []


def test_our_script_runs_and_sorts(tmp_path: Path) -> None:
    """The CSP allows our script by its hash: clicking a header sorts the table."""
    log = tmp_path / "access.log"
    log.write_text("".join(generate_lines(2000, 300, seed=3, days=2)))
    page = tmp_path / "report.html"
    assert run_tool("webstats", "report", str(log), "-o", str(page)).returncode == 0
    browser = Chromium(page.as_uri(), tmp_path / "profile")
    try:
        browser.wait_for(
            "document.readyState === 'complete' && document.getElementById('t-hosts') !== null"
        )
        hosts = "document.querySelectorAll('#t-hosts tbody tr td:first-child')"
        before = browser.evaluate(f"[...{hosts}].map(td => td.textContent)")
        browser.evaluate("document.querySelector('#t-hosts th').click()")
        after = browser.evaluate(f"[...{hosts}].map(td => td.textContent)")
        state = browser.evaluate("document.querySelector('#t-hosts th').getAttribute('aria-sort')")
    finally:
        browser.close()
    assert len(before) == 50 and sorted(before) == sorted(after)
    assert after == sorted(after) != before and state == "ascending"


def test_hostile_live_page_in_chromium(
    tmp_path: Path, processes: Processes, recorder: tuple[str, list[str]]
) -> None:
    """The live page swaps in each new report: still no script from the log, no fetch."""
    target, hits = recorder
    lines = hostile_log(payloads(target))
    log = tmp_path / "hostile.log"
    log.write_text(lines, encoding="latin-1")
    _, base = start_live(processes, str(log))
    browser = Chromium(base + "/", tmp_path / "profile")
    try:
        browser.wait_for("document.getElementById('live').textContent === 'live'")
        updates = int(browser.wait_for("document.body.dataset.updates"))
        with log.open("a", encoding="latin-1") as stream:
            stream.write(lines)
        wait_for_total(base, 2 * lines.count("\n"))
        browser.wait_for(f"Number(document.body.dataset.updates) > {updates}")
        total = browser.wait_for(
            "document.querySelector('#n-total b').textContent === '36' && 'swapped'"
        )
        tags = set(browser.evaluate(TAG_NAMES))
        title = browser.evaluate("document.title")
    finally:
        browser.close()
    assert total == "swapped" and title == "Live access log statistics"
    assert tags <= PAGE_TAGS, tags - PAGE_TAGS
    assert hits == []


def test_screenshots_beside_goaccess(tmp_path: Path) -> None:
    """Our page and GoAccess's of the same log, light and dark, for people to compare."""
    goaccess = require_program("goaccess")
    log = tmp_path / "access.log"
    log.write_text("".join(generate_lines(20_000, 2000, seed=2, days=7)))
    short = tmp_path / "day.log"
    short.write_text("".join(generate_lines(3000, 400, seed=4, days=1)))
    out = artefacts("screenshots")
    pages = {}
    for name, source in (("week", log), ("day", short)):
        pages[name] = out / f"webstats-{name}.html"
        result = run_tool("webstats", "report", str(source), "-o", str(pages[name]))
        assert result.returncode == 0, result.stderr
    theirs = out / "goaccess-week.html"
    subprocess.run(
        [goaccess, str(log), "--no-global-config", "--log-format=COMBINED", "-o", str(theirs)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    profile = tmp_path / "profile"
    shots = [
        screenshot(pages["week"].as_uri(), out / "webstats-week.png", profile),
        screenshot(pages["week"].as_uri(), out / "webstats-week-dark.png", profile, dark=True),
        screenshot(pages["day"].as_uri(), out / "webstats-day.png", profile),
        screenshot(theirs.as_uri(), out / "goaccess-week.png", profile),
    ]
    assert all(shot.stat().st_size > 20_000 for shot in shots)
    # A week draws one column a day; a day, one an hour.
    week, day = pages["week"].read_text(), pages["day"].read_text()
    assert "Requests and visitors per day" in week and "Requests per hour</title>" in day


def test_the_detector_sees_an_unescaped_page(
    tmp_path: Path, recorder: tuple[str, list[str]]
) -> None:
    """Control: the same payloads pasted raw into a page do fetch and do change the DOM."""
    base, hits = recorder
    page = tmp_path / "raw.html"
    page.write_text("<!DOCTYPE html><html><head><title>raw</title></head><body>"
                    + "".join(payloads(base)) + "</body></html>")  # fmt: skip
    dom = dump_dom(page.as_uri(), tmp_path / "profile")
    deadline = time.monotonic() + 10
    while "/img" not in hits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "/img" in hits
    assert "<title>pwned</title>" in dom and "<aside>" in dom
