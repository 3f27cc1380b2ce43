"""End to end: clients -> balancer -> two real Apache httpd -> penlog -> penlogd.

Each client has its own source address (127.0.1.x); penlogd's output must show
every request with its true client, though Apache only saw the balancer.
"""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.apache import Apache
from tests.conftest import (
    REPO_ROOT,
    Processes,
    free_port,
    http_get,
    require_c_tool,
    require_program,
    tool_argv,
)
from tests.penlogd.live import Penlogd, tcp_accepts, wait_until

WEB_SERVERS = ("127.0.0.11", "127.0.0.12")
CLIENTS = [f"127.0.1.{n}" for n in range(1, 9)]

#: Common, plus a header each test client sends with its own address: the
#: truth to check against, which the join never looks at.
LOG_FORMAT = '%h %l %u %t \\"%r\\" %>s %b \\"%{X-Who}i\\"'


def penlog_wrapper(directory: Path, port: int, source: str) -> Path:
    """A script Apache can pipe to: our penlog, with this checkout on the import path.

    Apache starts piped loggers with a clean environment, so PYTHONPATH has to
    be set here rather than inherited.
    """
    script = directory / f"penlog-{source}.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH='{REPO_ROOT}' exec '{sys.executable}' -m pentools.penlog "
        f"127.0.0.1 {port} {source}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def balancer_argv(kind: str, log_port: int, listen: int, backends: list[str]) -> list[str]:
    args = ["-f", "-r", "-l", f"127.0.0.1:{log_port}", f"127.0.0.1:{listen}", *backends]
    if kind == "c":
        return [require_c_tool("pen"), *args]
    return tool_argv("pen", *args)


@pytest.mark.realpart
@pytest.mark.parametrize("balancer", ["c", "ours"])
def test_every_request_gets_its_true_client(
    balancer: str, processes: Processes, tmp_path: Path, apaches: list[Apache]
) -> None:
    apache2 = require_program("apache2")
    for client in CLIENTS:  # every client address must be usable before we start
        with socket.socket() as probe:
            probe.bind((client, 0))
    daemon = Penlogd(processes, tmp_path)
    for address in WEB_SERVERS:
        wrapper = penlog_wrapper(tmp_path, daemon.port, address)
        apache = Apache(apache2, tmp_path / address, address, f"|{wrapper}", LOG_FORMAT)
        apaches.append(apache)
        apache.start()
    listen = free_port("127.0.0.1")
    backends = [f"{a.address}:{a.port}" for a in apaches]
    pen = processes.start(
        balancer_argv(balancer, daemon.port, listen, backends),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: tcp_accepts(listen) or pen.poll() is not None, what="the balancer")
    assert pen.poll() is None

    # Each client asks for its own page, then everyone asks for the same one,
    # one after the other: only the order of the records tells them apart.
    requests = [(client, f"/index.html?who={client}") for client in CLIENTS]
    requests += [(client, "/") for client in CLIENTS]
    for client, path in requests:
        assert http_get(listen, path, client, f"X-Who: {client}\r\n").startswith(b"HTTP/1.1 200")
    wait_until(lambda: len(daemon.lines()) >= len(requests), timeout=20, what="all lines")
    for apache in apaches:
        apache.stop()
    lines, _ = daemon.stop()

    assert len(lines) == len(requests)
    for line in lines:
        logged_client, rest = line.rstrip(b"\n").split(b" ", 1)
        assert rest.endswith(b'" 200 6 "' + logged_client + b'"'), line
    assert sorted(line.split(b" ", 1)[0].decode() for line in lines) == sorted(CLIENTS * 2)
