"""webstats live: follows files like tail -F, serves the report, its JSON and events.

Whatever happened to the files (appends, a line written in two goes, rename
rotation with lines still written to the old file, copytruncate, a file that
appears late), the live JSON must equal ``webstats report --json`` of all the
lines that were written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from benchmarks.weblog import generate_lines
from pentools.webstats.render import page_csp
from tests.conftest import Processes, run_tool
from tests.pen.support import start_backend, start_with_control
from tests.webstats.serving import start_live, stats, wait_for_total


def _batch(tmp_path: Path, lines: list[str]) -> dict[str, Any]:
    """``webstats report --json`` of `lines`, as one file."""
    log, out = tmp_path / "all.log", tmp_path / "all.json"
    log.write_text("".join(lines))
    result = run_tool("webstats", "report", str(log), "--json", str(out))
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def _same_counts(live: dict[str, Any], batch: dict[str, Any]) -> None:
    for document in (live, batch):
        document["general"].pop("log_path")
    assert live == batch


def test_follows_appends_rotation_and_truncation(tmp_path: Path, processes: Processes) -> None:
    lines = list(generate_lines(4000, 300, seed=5, days=2))
    log, late = tmp_path / "access.log", tmp_path / "late.log"
    log.write_text("".join(lines[:1000]))
    _, base = start_live(processes, str(log), str(late), "--interval", "0.05")
    wait_for_total(base, 1000)

    # A line written in two goes is counted once, when whole.
    with log.open("a") as stream:
        stream.write(lines[1000][:20])
        stream.flush()
        time.sleep(0.3)
        stream.write(lines[1000][20:] + "".join(lines[1001:1500]))
    wait_for_total(base, 1500)

    # logrotate's default: rename, and the writer goes on in the old file a while.
    os.rename(log, tmp_path / "access.log.1")
    with (tmp_path / "access.log.1").open("a") as stream:
        stream.write("".join(lines[1500:1800]))
    log.write_text("".join(lines[1800:2500]))
    wait_for_total(base, 2500)

    # copytruncate: the same file, emptied and written again.
    shutil.copy(log, tmp_path / "access.log.2")
    with log.open("r+") as stream:
        stream.truncate(0)
    time.sleep(0.3)
    log.write_text("".join(lines[2500:3000]))
    wait_for_total(base, 3000)

    # A file that did not exist at the start.
    late.write_text("".join(lines[3000:]))
    live = wait_for_total(base, 4000)
    assert live["general"]["log_path"] == [str(log), str(late)]
    _same_counts(live, _batch(tmp_path, lines))


def test_serves_page_json_and_events_with_a_strict_policy(
    tmp_path: Path, processes: Processes
) -> None:
    lines = list(generate_lines(600, 50, seed=6, days=1))
    log = tmp_path / "access.log"
    log.write_text("".join(lines[:300]))
    process, base = start_live(processes, str(log), host="::1")
    assert base.startswith("http://[::1]:")
    with urllib.request.urlopen(base + "/", timeout=10) as reply:
        page = reply.read().decode()
        policy = reply.headers["Content-Security-Policy"]
    assert policy == page_csp(live=True) + "; frame-ancestors 'none'"
    assert "connect-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1]
    assert '<body data-live="events">' in page and page_csp(live=True) in page

    events = urllib.request.urlopen(base + "/events", timeout=10)
    assert events.headers["Content-Type"] == "text/event-stream"
    first = _event(events)
    assert 'id="n-total"><b>300</b>' in first
    log.write_text("".join(lines))
    second = _event(events)
    assert 'id="n-total"><b>600</b>' in second
    events.close()
    _same_counts(stats(base), _batch(tmp_path, lines))

    for path, code in (("/nothing", 404), ("/../etc/passwd", 404)):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(base + path, timeout=10)
        error.value.close()
        assert error.value.code == code
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(urllib.request.Request(base + "/", data=b"x"), timeout=10)
    error.value.close()
    assert error.value.code == 405

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def _event(stream: Any) -> str:
    """The data of the next event of a Server-Sent Events stream."""
    data: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = stream.readline().decode()
        if line.startswith("data: "):
            data.append(line[6:].rstrip("\n"))
        elif line == "\n" and data:
            return "\n".join(data)
    raise AssertionError("no event")


def test_pen_servers_on_the_page(tmp_path: Path, processes: Processes) -> None:
    host = "127.0.0.71"
    backends = [f"{host}:{start_backend(processes, host, name)}" for name in ("a", "b")]
    _, _, control = start_with_control(processes, host, backends)
    log = tmp_path / "access.log"
    log.write_text("".join(generate_lines(100, 10, seed=7, days=1)))
    _, base = start_live(processes, str(log), "--pen-control", f"{host}:{control}")
    with urllib.request.urlopen(base + "/", timeout=10) as reply:
        page = reply.read().decode()
    assert '<details id="p-pen" open><summary><h2>pen: servers</h2>' in page
    for backend in backends:
        assert backend.split(":")[1] in page


def test_refuses_a_port_in_use(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_tool(
            "webstats", "live", str(log), "--listen", str(port), stdin=subprocess.DEVNULL
        )
    assert result.returncode == 1
    assert b"cannot listen on 127.0.0.1:" in result.stderr and b"Traceback" not in result.stderr
