"""The real C pen writes pen.log; our mergelogs joins it with a real backend's log."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import Processes, free_port, http_get, require_c_tool, run_tool

BACKEND = "127.0.0.31"
ZONE = timezone(timedelta(hours=1))  # the backend logs in +0100, pen in Unix time
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class LoggingBackend(ThreadingHTTPServer):
    """A small real web server that writes a common-format access log."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.log_file = log_path.open("a")
        self.lock = threading.Lock()
        super().__init__((BACKEND, port), Handler)

    def server_close(self) -> None:
        super().server_close()
        self.log_file.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: LoggingBackend

    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        now = datetime.now(ZONE)
        stamp = f"{now:%d}/{MONTHS[now.month - 1]}/{now:%Y:%H:%M:%S %z}"
        with self.server.lock:
            self.server.log_file.write(
                f'{self.client_address[0]} - - [{stamp}] "{self.requestline}" {code} 3\n'
            )
            self.server.log_file.flush()


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, log_path = free_port(BACKEND), tmp_path / "access_log"
    server = LoggingBackend(port, log_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, log_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def test_c_pen_log_through_our_mergelogs(
    tmp_path: Path, processes: Processes, backend: tuple[int, Path]
) -> None:
    pen = require_c_tool("pen")
    backend_port, access_log = backend
    port, pen_log = free_port(), tmp_path / "pen.log"
    process = processes.start(
        [pen, "-f", "-r", "-l", str(pen_log), f"127.0.0.1:{port}", f"{BACKEND}:{backend_port}"]
    )
    wait_listening(port)
    # Popular URLs requested by several clients in the same second.
    plan = [(f"127.0.1.{n % 6 + 1}", ["/", "/popular", f"/page/{n}"][n % 3]) for n in range(30)]
    for client, path in plan:
        http_get(port, path, client)
    process.terminate()
    process.wait(timeout=10)
    records = pen_log.read_text().splitlines()
    assert len(records) >= len(plan), "the C pen wrote a record per request"

    result = run_tool("mergelogs", "--stats", "-p", str(pen_log), f"{BACKEND}:{access_log}")
    assert result.returncode == 0, result.stderr
    merged = result.stdout.decode().splitlines()
    assert len(merged) == len(plan)
    # Sequential requests: the balancer's order is the log's order, so every
    # line, even of a URL many clients asked for, goes to its true client.
    assert [(line.split()[0], line.split('"')[1].split()[1]) for line in merged] == plan
    assert "+0100]" in merged[0]  # the backend's own time stamp, zone and all
