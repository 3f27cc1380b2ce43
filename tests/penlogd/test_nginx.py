"""End to end: clients -> our pen -> two real nginx -> syslog over UDP -> penlogd.

nginx cannot pipe its access log to penlog; it sends it as syslog datagrams
straight to penlogd.  Both nginx run on this host, so their datagrams come
from the same address: ``--tag`` tells penlogd which is which.  One sends
RFC 3164 with the host name, the other with ``nohostname``.  Each client has
its own source address (127.0.1.x) and sends its address in a header nginx
logs: the truth the join never looks at.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Processes, free_port, http_get, require_program
from tests.nginx import Nginx
from tests.pen.support import start_pen
from tests.penlogd.live import Penlogd, wait_until

WEB_SERVERS = {"web1": ("127.0.0.11", ""), "web2": ("127.0.0.12", ",nohostname")}
CLIENTS = [f"127.0.1.{n}" for n in range(1, 9)]

#: nginx's variables, and the same fields as penlogd's --log-format (Apache's
#: directives): common, then the truth; in exact mode the upstream port before it.
FORMATS = {
    "order": (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_x_who"',
        None,
    ),
    "exact": (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '$remote_port "$http_x_who"',
        '%h %l %u %t "%r" %>s %b %{remote}p "%{X-Who}i"',
    ),
}


@pytest.fixture
def nginxes() -> Iterator[list[Nginx]]:
    started: list[Nginx] = []
    yield started
    for nginx in started:
        nginx.stop()


@pytest.mark.realpart
@pytest.mark.parametrize("mode", ["order", "exact"])
def test_every_request_through_nginx_gets_its_true_client(
    mode: str, processes: Processes, tmp_path: Path, nginxes: list[Nginx]
) -> None:
    nginx_program = require_program("nginx")
    for client in CLIENTS:  # every client address must be usable before we start
        with socket.socket() as probe:
            probe.bind((client, 0))
    nginx_format, penlogd_format = FORMATS[mode]
    stats = tmp_path / "counters.json"
    options = ["--stats-json", str(stats)]
    options += [f"--tag={tag}={address}" for tag, (address, _) in WEB_SERVERS.items()]
    if penlogd_format is not None:
        options += ["--log-format", penlogd_format]
    daemon = Penlogd(processes, tmp_path, *options)
    for tag, (address, flags) in WEB_SERVERS.items():
        nginx = Nginx(
            nginx_program,
            tmp_path / tag,
            address,
            f"syslog:server=127.0.0.1:{daemon.port},tag={tag}{flags} who",
            nginx_format,
        )
        nginxes.append(nginx)
        nginx.start(processes)
    listen = free_port("127.0.0.1")
    pen_options = ["-r", "-l", f"127.0.0.1:{daemon.port}"]
    if mode == "exact":
        pen_options.append("--log-upstream-port")
    backends = [f"{nginx.address}:{nginx.port}" for nginx in nginxes]
    start_pen(processes, "127.0.0.1", listen, *pen_options, "--", *backends)

    # Each client asks for its own page, then everyone asks for the same one,
    # one after the other: without ports only the order tells them apart.
    requests = [(client, f"/index.html?who={client}") for client in CLIENTS]
    requests += [(client, "/") for client in CLIENTS]
    for client, path in requests:
        assert http_get(listen, path, client, f"X-Who: {client}\r\n").startswith(b"HTTP/1.1 200")
    wait_until(lambda: len(daemon.lines()) >= len(requests), timeout=20, what="all lines")
    for nginx in nginxes:
        nginx.stop()
    lines, _ = daemon.stop()

    assert len(lines) == len(requests)
    for line in lines:
        logged_client, rest = line.rstrip(b"\n").split(b" ", 1)
        assert b'" 200 6 ' in rest and rest.endswith(b' "' + logged_client + b'"'), line
        assert b"<190>" not in line and b"web1:" not in line and b"web2:" not in line
    assert sorted(line.split(b" ", 1)[0].decode() for line in lines) == sorted(CLIENTS * 2)
    results = json.loads(stats.read_text())  # the join's report: lines by result
    if mode == "exact":
        assert results["exact"] == len(requests)
    else:
        assert results["unmatched"] == results["malformed"] == 0
