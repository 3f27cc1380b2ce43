"""The report in a real browser: headless Chromium runs no script from the log and fetches nothing.

Payloads in every field point at a local HTTP server that records hits; a
deliberately unescaped page proves that the same payloads, if they reached
the markup, would be seen (hits, a changed DOM), so the zero on our page means
something.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import free_port, require_program, run_tool
from tests.webstats.hostile import hostile_log

pytestmark = pytest.mark.realpart

HOST = "127.0.0.47"
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "br",
    "div", "b", "span", "table", "tbody", "tr", "th", "td", "svg", "rect", "text",
}  # fmt: skip


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


def _chromium(page: Path, work: Path) -> tuple[str, Path]:
    """The DOM after load (scripts, if any, have run) and a screenshot."""
    chromium = require_program("chromium")
    flags = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        f"--user-data-dir={work / 'profile'}", "--window-size=900,1600",
    ]  # fmt: skip
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, timeout=120, check=True
    ).stdout.decode()
    shot = work / "shot.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return dom, shot


def test_hostile_report_in_chromium(tmp_path: Path, recorder: tuple[str, list[str]]) -> None:
    base, hits = recorder
    log = tmp_path / "hostile.log"
    log.write_text(hostile_log(payloads(base)), encoding="latin-1")
    page = tmp_path / "report.html"
    result = run_tool("webstats", "report", str(log), "-o", str(page))
    assert result.returncode == 0, result.stderr

    dom, shot = _chromium(page, tmp_path)
    tags = _Tags()
    tags.feed(dom)
    assert tags.tags <= ALLOWED_TAGS, tags.tags - ALLOWED_TAGS
    assert "<title>Access log statistics</title>" in dom
    assert "pwned" not in dom.split("<body", 1)[0]
    assert hits == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_the_detector_sees_an_unescaped_page(
    tmp_path: Path, recorder: tuple[str, list[str]]
) -> None:
    """Control: the same payloads pasted raw into a page do fetch and do change the DOM."""
    base, hits = recorder
    page = tmp_path / "raw.html"
    page.write_text("<!DOCTYPE html><html><head><title>raw</title></head><body>"
                    + "".join(payloads(base)) + "</body></html>")  # fmt: skip
    dom, _ = _chromium(page, tmp_path)
    assert "/img" in hits
    assert "<title>pwned</title>" in dom and "<aside>" in dom
