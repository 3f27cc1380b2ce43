"""Our pen with the real C tools: penlogd and mergelogs take our records, penctl both ways,
and a real Apache httpd as the backend."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.apache import Apache
from tests.conftest import Processes, free_port, require_c_tool, require_program, run_tool
from tests.pen.support import (
    as_root_args,
    http_get,
    start_backend,
    start_pen,
    start_with_control,
    wait_bound,
)

pytestmark = pytest.mark.realpart

PEN_HOST = "127.0.50.1"
APACHE_HOST = "127.0.50.2"
LOG_HOST = "127.0.50.9"
CLIENTS = ("127.0.51.1", "127.0.51.2", "127.0.51.3")


def start_apache(
    request: pytest.FixtureRequest, root: Path, custom_log: str, env: dict[str, str] | None = None
) -> Apache:
    """A private Apache on APACHE_HOST in common format, stopped when the test ends."""
    apache = Apache(require_program("apache2"), root, APACHE_HOST, custom_log, env=env)
    request.addfinalizer(apache.stop)
    apache.start()
    return apache


def _wait_for(path: Path, count: int = 1, timeout: float = 10) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return path
        time.sleep(0.05)
    raise AssertionError(f"{path} did not get {count} lines")


def _requests(port: int) -> list[tuple[str, str]]:
    """Each client asks for its own URL through pen; (client, path) in order."""
    asked = []
    for round_number in range(2):
        for client in CLIENTS:
            path = f"/page-{client.rsplit('.', 1)[1]}-{round_number}"
            http_get(PEN_HOST, port, path, source=client)
            asked.append((client, path))
    return asked


def test_c_penlogd_joins_our_records_with_apache_lines(
    processes: Processes, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    penlogd, penlog = require_c_tool("penlogd"), require_c_tool("penlog")
    log_port = free_port("0.0.0.0", socket.SOCK_DGRAM)
    merged = tmp_path / "merged.log"
    penlogd_process = processes.start([penlogd, "-f", "-l", str(merged), str(log_port)])
    wait_bound("0.0.0.0", log_port, penlogd_process, socket.SOCK_DGRAM)
    apache = start_apache(
        request, tmp_path / "apache", f"|{penlog} {LOG_HOST} {log_port} {APACHE_HOST}"
    )
    port = free_port(PEN_HOST)
    start_pen(
        processes,
        PEN_HOST,
        port,
        "-l",
        f"{LOG_HOST}:{log_port}",
        "--",
        f"{APACHE_HOST}:{apache.port}",
    )
    asked = _requests(port)
    # The C penlogd writes through stdio and flushes only when it closes the file:
    # HUP (close and reopen) until every line is out.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        penlogd_process.send_signal(signal.SIGHUP)
        time.sleep(0.1)
        if merged.exists() and merged.read_bytes().count(b"\n") >= len(asked):
            break
    lines = merged.read_text().splitlines()
    got = [(line.split()[0], re.search(r'"GET (\S+)', line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert sorted(got) == sorted(asked)


def test_c_mergelogs_joins_our_local_log_with_apache_log(
    processes: Processes, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    mergelogs = require_c_tool("mergelogs")
    # The C mergelogs reads time stamps as local time and ignores their zone
    # (SPEC §4): it only joins correctly when the logs and its zone are UTC.
    utc = dict(os.environ, TZ="UTC")
    access_log = tmp_path / "apache" / "access.log"
    apache = start_apache(request, tmp_path / "apache", str(access_log), env=utc)
    pen_log = tmp_path / "pen.log"
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-l", str(pen_log), "--", f"{APACHE_HOST}:{apache.port}")
    asked = _requests(port)
    _wait_for(access_log, len(asked))
    _wait_for(pen_log, len(asked))
    result = subprocess.run(
        [mergelogs, "-p", str(pen_log), f"{APACHE_HOST}:{access_log}"],
        env=utc,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    got = [
        (line.split()[0], re.search(r'"GET (\S+)', line).group(1))  # type: ignore[union-attr]
        for line in result.stdout.splitlines()
    ]
    assert sorted(got) == sorted(asked)


def _start_with_control(processes: Processes) -> tuple[int, int]:
    port = start_backend(processes, APACHE_HOST, "b")
    server = f"{APACHE_HOST}:{port}:10:20:3:1"
    _, pen_port, ctl = start_with_control(processes, PEN_HOST, [server], "-X")
    return pen_port, ctl


def test_c_penctl_talks_to_our_control_port(processes: Processes) -> None:
    penctl_c = require_c_tool("penctl")
    pen_port, ctl = _start_with_control(processes)
    http_get(PEN_HOST, pen_port, source=CLIENTS[0])

    def c_penctl(*command: str) -> str:
        argv = [penctl_c, f"{PEN_HOST}:{ctl}", *command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout

    assert c_penctl("mode") == "no hash no roundrobin no stubborn no weight no prio\n"
    assert re.fullmatch(
        rf"0 addr {APACHE_HOST} port \d+ conn 0 max 10 hard 20 weight 3 prio 1 sx \d+ rx \d+\n",
        c_penctl("servers"),
    )
    assert re.fullmatch(rf"{CLIENTS[0]} connects 1 sx \d+ rx \d+\n", c_penctl("recent"))
    assert c_penctl("listen") == f"{PEN_HOST}:{pen_port}\n"
    assert c_penctl("hash") == ""
    assert c_penctl("mode").startswith("hash no roundrobin")
    assert c_penctl("blacklist", "7") == "" and c_penctl("blacklist") == "7\n"
    assert c_penctl("clients_max") == "2048\n" and c_penctl("conn_max") == "500\n"
    assert c_penctl("bogus").startswith("do_cmd: ignoring command starting with 'bogus'")
    assert "<title>Pen status page</title>" in c_penctl("status")


def test_our_penctl_against_the_c_pen_and_ours(processes: Processes) -> None:
    c_pen = require_c_tool("pen")
    port = free_port(PEN_HOST)
    ctl = free_port(PEN_HOST)
    c_process = processes.start(
        [
            c_pen,
            "-f",
            *as_root_args(),
            "-C",
            f"{PEN_HOST}:{ctl}",
            f"{PEN_HOST}:{port}",
            "127.0.50.3:8080:10:20:3:1",
        ],
        stderr=subprocess.DEVNULL,
    )
    wait_bound(PEN_HOST, ctl, c_process)
    reference = {c: run_tool("penctl", f"{PEN_HOST}:{ctl}", c).stdout for c in ("mode", "servers")}
    assert reference["mode"] == b"no hash no roundrobin no stubborn no weight no prio\n"
    moved = f"{PEN_HOST}:{free_port(PEN_HOST)}"
    reference["listen"] = run_tool("penctl", f"{PEN_HOST}:{ctl}", "listen", moved).stdout
    assert reference["listen"] == f"{moved}\n".encode()  # the C pen answers the new address
    c_process.terminate()
    c_process.wait()
    _, our_ctl = _start_with_control(processes)
    ours = run_tool("penctl", f"{PEN_HOST}:{our_ctl}", "mode")
    assert ours.returncode == 0 and ours.stdout == reference["mode"]
    moved_ours = run_tool("penctl", f"{PEN_HOST}:{our_ctl}", "listen", moved).stdout
    assert moved_ours == reference["listen"]
    servers = run_tool("penctl", f"{PEN_HOST}:{our_ctl}", "servers").stdout
    # same fields in the same order as the C pen's reply
    assert re.sub(rb"\d+", b"N", servers).replace(APACHE_HOST.encode(), b"A") == re.sub(
        rb"\d+", b"N", reference["servers"]
    ).replace(b"127.0.50.3", b"A")
    assert run_tool("penctl", f"{PEN_HOST}:{our_ctl}", "exit").returncode == 0
    assert processes.started[-1].wait(timeout=5) == 0


def test_penctl_errors_are_one_line() -> None:
    result = run_tool("penctl", f"{PEN_HOST}:{free_port(PEN_HOST)}", "mode")
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1
    result = run_tool("penctl", "nohostport")
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1
