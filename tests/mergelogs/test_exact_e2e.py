"""Exact mode end to end: our pen (--log-upstream-port) in front of two real web
servers logging the upstream port, then mergelogs: every line, 100% right.

Every client asks for the same page at once, so only the upstream port can
tell the requests apart; the clients also send their address in a header the
servers log after the port: the truth, which the join never looks at.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from benchmarks.real_farm import nginx
from tests.apache import Apache
from tests.conftest import Processes, free_port, http_get, require_program, run_tool
from tests.pen.support import start_pen

WEB_SERVERS = ("127.0.0.11", "127.0.0.12")
CLIENTS = [f"127.0.1.{n}" for n in range(1, 13)]
#: The README's Apache line for exact mode, with the truth header after the port.
APACHE_FORMAT = '%h %l %u %t \\"%r\\" %>s %b %{remote}p \\"%{X-Who}i\\"'
#: The README's nginx line for exact mode, the same fields.
NGINX_FORMAT = (
    '\'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '$remote_port "$http_x_who"\''
)
#: How mergelogs reads both (an Apache LogFormat).
MERGE_FORMAT = '%h %l %u %t "%r" %>s %b %{remote}p "%{X-Who}i"'


def run_farm(processes: Processes, tmp_path: Path, backends: list[str]) -> Path:
    """Our pen in front of `backends`; every client at once, three times; pen's log."""
    pen_log = tmp_path / "pen.log"
    listen = free_port("127.0.0.1")
    pen = start_pen(
        processes, "127.0.0.1", listen, "-r", "--log-upstream-port", "-l", str(pen_log),
        "--", *backends,
    )  # fmt: skip
    with ThreadPoolExecutor(len(CLIENTS)) as pool:
        for _ in range(3):
            replies = pool.map(
                lambda client: http_get(listen, "/", client, f"X-Who: {client}\r\n"), CLIENTS
            )
            assert all(reply.startswith(b"HTTP/1.1 200") for reply in replies)
    pen.terminate()
    pen.wait(timeout=10)
    return pen_log


def assert_exact(tmp_path: Path, pen_log: Path, logs: dict[str, Path]) -> None:
    stats = tmp_path / "stats.json"
    sources = [f"{server}:{log}" for server, log in logs.items()]
    result = run_tool(
        "mergelogs", "--log-format", MERGE_FORMAT, "--stats-json", str(stats),
        "-p", str(pen_log), *sources,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 3 * len(CLIENTS)
    for line in lines:
        client = line.split(" ", 1)[0]
        assert line.endswith(f' "{client}"'), line  # the truth header: its true client
    report = json.loads(stats.read_text())
    assert report["exact"] == report["lines"] == len(lines)


@pytest.mark.realpart
def test_apache_logging_the_upstream_port_is_joined_exactly(
    processes: Processes, tmp_path: Path, apaches: list[Apache]
) -> None:
    apache2 = require_program("apache2")
    logs = {}
    for address in WEB_SERVERS:
        log = tmp_path / f"access_log.{address}"
        apache = Apache(apache2, tmp_path / address, address, str(log), APACHE_FORMAT)
        apaches.append(apache)
        apache.start()
        logs[address] = log
    pen_log = run_farm(processes, tmp_path, [f"{a.address}:{a.port}" for a in apaches])
    for apache in apaches:
        apache.stop()  # its log is complete once it is gone
    assert_exact(tmp_path, pen_log, logs)


@pytest.mark.realpart
def test_nginx_logging_the_upstream_port_is_joined_exactly(
    processes: Processes, tmp_path: Path
) -> None:
    require_program("nginx")
    backends, logs = [], {}
    with ExitStack() as servers:
        for address in WEB_SERVERS:
            port, log = servers.enter_context(nginx(tmp_path / address, address, NGINX_FORMAT))
            backends.append(f"{address}:{port}")
            logs[address] = log
        pen_log = run_farm(processes, tmp_path, backends)
    assert_exact(tmp_path, pen_log, logs)  # nginx is gone: its logs are complete
