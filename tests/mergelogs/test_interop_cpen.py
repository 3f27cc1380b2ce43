"""The real C pen writes pen.log; our mergelogs joins it with a real Apache httpd's log."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apache import Apache
from tests.conftest import (
    Processes,
    free_port,
    http_get,
    require_c_tool,
    require_program,
    run_tool,
)

BACKEND = "127.0.0.31"
#: The backend logs in +0100 (a POSIX zone without summer time), pen in Unix time.
ZONE = "<+01>-1"


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Apache httpd on BACKEND, writing a common-format access log in +0100."""
    access_log = tmp_path / "access_log"
    apache = Apache(
        require_program("apache2"),
        tmp_path / "apache",
        BACKEND,
        str(access_log),
        env=dict(os.environ, TZ=ZONE),
    )
    apache.start()
    try:
        yield apache.port, access_log
    finally:
        apache.stop()


def wait_listening(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def wait_lines(path: Path, count: int, timeout: float = 30) -> None:
    """Apache writes a request's log line after its response: wait for all of them."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_bytes().count(b"\n") >= count):
        assert time.monotonic() < deadline, f"{path} never got {count} lines"
        time.sleep(0.05)


@pytest.mark.realpart
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
    wait_lines(access_log, len(plan))
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
