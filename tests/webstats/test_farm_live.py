"""The live view of a whole farm, end to end, in a real browser.

Clients on 127.0.1.x -> our pen -> two real Apache httpd -> penlog -> penlogd
--tag-backend -> ``webstats live -f combined_backend`` on penlogd's log (with
pen's control port) -> headless Chromium.  The page, opened once, must follow
the traffic: its numbers change through Server-Sent Events, not by reloading,
and show the true clients and the backends that served them.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest

from tests.apache import Apache
from tests.conftest import Processes, free_port, http_get, require_program
from tests.pen.support import as_root_args, start_pen
from tests.penlogd.live import Penlogd
from tests.penlogd.test_apache import penlog_wrapper
from tests.webstats.browser import Chromium, artefacts
from tests.webstats.serving import start_live, wait_for_total

pytestmark = pytest.mark.realpart

WEB_SERVERS = ("127.0.0.13", "127.0.0.14")
CLIENTS = [f"127.0.1.{n}" for n in range(20, 26)]
COMBINED = '%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\"'
TOTAL = "document.querySelector('#n-total b').textContent"
HOSTS = "[...document.querySelectorAll('#t-hosts tbody td:first-child')].map(td => td.textContent)"


def _traffic(port: int, rounds: int) -> int:
    """Each client asks `rounds` times (a page, then a missing one): the requests sent."""
    sent = 0
    for n in range(rounds):
        for client in CLIENTS:
            path = "/" if n % 2 == 0 else f"/missing-{n}"
            reply = http_get(port, path, client, "User-Agent: Mozilla/5.0 Firefox/120.0\r\n")
            assert reply.startswith(b"HTTP/1.1 "), reply[:80]
            sent += 1
    return sent


def test_the_page_follows_the_farm(
    tmp_path: Path, processes: Processes, apaches: list[Apache]
) -> None:
    apache2 = require_program("apache2")
    for client in CLIENTS:
        with socket.socket() as probe:
            probe.bind((client, 0))
    daemon = Penlogd(processes, tmp_path, "--tag-backend")
    for address in WEB_SERVERS:
        wrapper = penlog_wrapper(tmp_path, daemon.port, address)
        apache = Apache(apache2, tmp_path / address, address, f"|{wrapper}", COMBINED)
        apaches.append(apache)
        apache.start()
    listen, control = free_port(), free_port()
    backends = [f"{a.address}:{a.port}" for a in apaches]
    start_pen(
        processes, "127.0.0.1", listen, "-r", "-l", f"127.0.0.1:{daemon.port}",
        "-C", f"127.0.0.1:{control}", *as_root_args(), "--", *backends,
    )  # fmt: skip
    live = (str(daemon.logfile), "-f", "combined_backend", "--pen-control", f"127.0.0.1:{control}")
    _, base = start_live(processes, *live)

    browser = Chromium(base + "/", tmp_path / "profile")
    try:
        browser.wait_for("document.getElementById('live').textContent === 'live'")
        assert browser.evaluate(TOTAL) == "0"
        browser.evaluate("window.openedOnce = true")  # gone if the page were reloaded

        first = _traffic(listen, 2)
        wait_for_total(base, first)
        browser.wait_for(f"{TOTAL} === '{first}'")
        assert sorted(browser.evaluate(HOSTS)) == CLIENTS  # the true clients, not pen

        second = first + _traffic(listen, 3)
        wait_for_total(base, second)
        browser.wait_for(f"{TOTAL} === '{second}'")
        assert browser.evaluate("window.openedOnce") is True
        assert int(browser.evaluate("document.body.dataset.updates")) >= 2
        statuses = browser.evaluate(
            "[...document.querySelectorAll('#t-status tbody td:first-child')]"
            ".map(td => td.textContent)"
        )
        assert statuses == ["200 - OK", "404 - Not Found"]
        backends = browser.evaluate(
            "[...document.querySelectorAll('#t-backends tbody td:first-child')]"
            ".map(td => td.textContent)"
        )
        assert sorted(backends) == sorted(WEB_SERVERS)  # pen spread the requests
        servers = browser.evaluate("document.getElementById('p-pen').textContent")
        for apache in apaches:
            assert str(apache.port) in servers
        shot = browser.call("Page.captureScreenshot", browser.session)["data"]
    finally:
        browser.close()
    (artefacts("farm") / "live.png").write_bytes(base64.b64decode(shot))
