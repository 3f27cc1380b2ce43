"""webstats pen against the real C pen: control port, and SIGUSR1 + -w file (CGI mode)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pentools.webstats.penstatus import PenStatusError, parse_status, render_status
from tests.conftest import Processes, free_port, require_c_tool, run_tool

BACKEND = "127.0.0.61"
LISTEN = "127.0.0.62"
CLIENT = "127.0.0.63"


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the backend\n" * 10
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[int]:
    server = ThreadingHTTPServer((BACKEND, free_port(BACKEND)), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def pen_dir() -> Iterator[Path]:
    """A directory the C pen can write after dropping root for nobody."""
    path = Path(tempfile.mkdtemp(prefix="webstats-pen-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _through(port: int) -> None:
    """One HTTP request through pen, from the client address."""
    with socket.create_connection((LISTEN, port), source_address=(CLIENT, 0)) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        while conn.recv(65536):
            pass


@pytest.fixture
def c_pen(processes: Processes, backend: int, pen_dir: Path) -> dict[str, object]:
    pen = require_c_tool("pen")
    listen, control = free_port(LISTEN), free_port("127.0.0.1")
    argv = [pen, "-f", "-C", f"127.0.0.1:{control}", "-w", str(pen_dir / "status.html")]
    argv += ["-p", str(pen_dir / "pen.pid")]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]  # the C pen refuses a control port to root
    argv += [f"{LISTEN}:{listen}", f"{BACKEND}:{backend}", f"{BACKEND}:{free_port(BACKEND)}"]
    processes.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_port("127.0.0.1", control)
    _wait_for_port(LISTEN, listen)
    for _ in range(3):
        _through(listen)
    return {"control": control, "dir": pen_dir}


def _check_page(page: str) -> None:
    status = parse_status(page)
    servers = status.tables["servers"].records()
    assert [s["port"] for s in servers][:1] and len(servers) == 2
    used = [s for s in servers if int(s["received"]) > 0]
    assert len(used) == 1 and int(used[0]["sent"]) > 0  # client tracking: one server
    clients = status.tables["clients"].records()
    # (the readiness probe connected from 127.0.0.1 too)
    assert [c["connects"] for c in clients if c["address"] == CLIENT] == ["3"]
    assert "connections" in status.tables
    assert any(line.startswith("Time ") for line in status.lines)


@pytest.mark.realpart
def test_status_from_the_control_port(c_pen: dict[str, object], tmp_path: Path) -> None:
    out = tmp_path / "pen.html"
    result = run_tool("webstats", "pen", "--control", str(c_pen["control"]), "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "default-src 'none'" in page
    _check_page(page)


@pytest.mark.realpart
def test_status_from_the_webfile_as_cgi(c_pen: dict[str, object]) -> None:
    directory = c_pen["dir"]
    assert isinstance(directory, Path)
    result = run_tool(
        "webstats", "pen", "--pidfile", str(directory / "pen.pid"),
        "--webfile", str(directory / "status.html"), "--cgi",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header, _, body = result.stdout.decode().partition("\r\n\r\n")
    assert header.splitlines()[0] == "Content-Type: text/html; charset=utf-8"
    _check_page(body)


def test_hostile_cells_are_escaped() -> None:
    page = (
        "<html><body>Time <b>now</b><p><table><tr><td>server</td><td>address</td>"
        "<td>status</td></tr><tr><td>0</td><td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"
        "<td>3</td></tr></table></body></html>"
    )
    html = render_status(parse_status(page), source="<test>")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'class="down"' in html
    with pytest.raises(PenStatusError):
        parse_status("pen says no")


def test_errors_are_one_line(tmp_path: Path) -> None:
    stale = tmp_path / "pen.pid"
    stale.write_text("999999999\n")
    for argv in (
        ["--control", f"127.0.0.1:{free_port()}"],
        ["--pidfile", str(tmp_path / "missing.pid"), "--webfile", str(tmp_path / "w.html")],
        ["--pidfile", str(stale), "--webfile", str(tmp_path / "w.html")],
    ):
        result = run_tool("webstats", "pen", *argv)
        assert result.returncode == 1, result
        assert result.stderr.decode().startswith("webstats: ")
        assert result.stderr.count(b"\n") == 1
    assert run_tool("webstats", "pen").returncode == 2
