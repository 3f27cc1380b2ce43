"""penlogd and penlog as real processes on loopback, ours and the C tools in every pairing."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import Processes, free_port, http_get, require_c_tool, run_tool
from tests.penlogd.live import (
    Penlogd,
    clients,
    common_line,
    sender,
    tcp_accepts,
    udp_queue_empty,
    wait_until,
)

WEB1, WEB2, PEN = "127.0.0.11", "127.0.0.12", "127.0.0.1"


def send_records(port: int, records: list[tuple[str, str, str]], target: str = "127.0.0.1") -> None:
    """Send ``+ CLIENT SERVER GET PATH HTTP/1.1`` from the balancer's address."""
    with sender(PEN if ":" not in target else "::1") as sock:
        for client, server, path in records:
            sock.sendto(f"+ {client} {server} GET {path} HTTP/1.1\n".encode(), (target, port))


def penlog(port: int, source: str, lines: list[bytes], argv0: str = "") -> None:
    """Pipe `lines` through penlog (ours, or the C one at `argv0`) from `source`."""
    args = ["127.0.0.1" if ":" not in source else "::1", str(port), source]
    if argv0:
        result = subprocess.run([argv0, *args], input=b"".join(lines), capture_output=True)
    else:
        result = run_tool("penlog", *args, input=b"".join(lines))
    assert result.returncode == 0, result.stderr


def farm_traffic(port: int, penlog_argv0: str = "") -> dict[bytes, str]:
    """Two web servers, three clients, a popular URL; the true client of each line."""
    records, truth = [], {}
    for index in range(30):
        client = f"10.0.{index % 3}.{index}"
        server = (WEB1, WEB2)[index % 2]
        path = "/popular" if index % 3 == 0 else f"/page{index}"
        records.append((client, server, path))
    send_records(port, records)
    for server in (WEB1, WEB2):
        lines = []
        for client, record_server, path in records:
            if record_server == server:
                line = common_line(path, remote=PEN).replace(b'1.1"', f'1.1" {client}'.encode())
                lines.append(line)
                truth[line.rstrip(b"\n")] = client
        penlog(port, server, lines, penlog_argv0)
    return truth


def check_attribution(lines: list[bytes], truth: dict[bytes, str], exact: bool = True) -> None:
    """Every line exactly once; with `exact`, each with its true client."""
    got = sorted(line.split(b" ", 1)[1].rstrip(b"\n") for line in lines)
    assert got == sorted(key.split(b" ", 1)[1] for key in truth)
    by_marker: dict[str, list[str]] = {}
    for line in lines:
        # the true client is appended after the request by farm_traffic
        marker = line.split(b'" ', 1)[1].split(b" ", 1)[0].decode()
        by_marker.setdefault(marker, []).append(line.split(b" ", 1)[0].decode())
    if exact:
        assert all(found == [marker] for marker, found in by_marker.items()), by_marker
    else:  # the C penlogd never consumes a record: a popular URL goes to its last client
        assert all(all(c.startswith("10.0.") for c in found) for found in by_marker.values())


def test_our_penlog_to_our_penlogd(processes: Processes, tmp_path: Path) -> None:
    daemon = Penlogd(processes, tmp_path)
    truth = farm_traffic(daemon.port)
    wait_until(lambda: len(daemon.lines()) == len(truth), what="all lines")
    lines, _ = daemon.stop()
    check_attribution(lines, truth)


def test_our_penlog_to_the_c_penlogd(processes: Processes, tmp_path: Path) -> None:
    daemon = Penlogd(processes, tmp_path, c_tool=require_c_tool("penlogd"))
    truth = farm_traffic(daemon.port)
    wait_until(lambda: udp_queue_empty(daemon.port), what="the C penlogd to read all")
    lines, _ = daemon.stop()
    check_attribution(lines, truth, exact=False)
    # the ones it can tell apart (a URL asked once) it joins right
    unique = [line for line in lines if b"/page" in line]
    assert unique and all(
        line.split(b" ", 1)[0] == line.split(b'" ', 1)[1].split(b" ", 1)[0] for line in unique
    )


def test_the_c_penlog_to_our_penlogd(processes: Processes, tmp_path: Path) -> None:
    daemon = Penlogd(processes, tmp_path)
    truth = farm_traffic(daemon.port, penlog_argv0=require_c_tool("penlog"))
    wait_until(lambda: len(daemon.lines()) == len(truth), what="all lines")
    lines, _ = daemon.stop()
    check_attribution(lines, truth)


class Backend:
    """A TCP server that answers each connection with a tiny HTTP response."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self.sock.close()


def test_the_c_pen_to_our_penlogd(processes: Processes, tmp_path: Path) -> None:
    daemon = Penlogd(processes, tmp_path)
    backend = Backend(WEB1)
    try:
        listen = free_port("127.0.0.1")
        processes.start(
            [
                require_c_tool("pen"),
                "-f",
                "-r",
                "-l",
                f"127.0.0.1:{daemon.port}",
                f"127.0.0.1:{listen}",
                f"{WEB1}:{backend.port}",
            ],
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: tcp_accepts(listen), what="pen")
        sources = [f"127.0.1.{n}" for n in range(1, 6)]
        for source in sources:
            assert http_get(listen, "/same", source).endswith(b"ok")
        wait_until(lambda: daemon_received(daemon) >= 5, what="pen's records")
        lines = [common_line("/same", remote=WEB1, version="1.0") for _ in sources]
        penlog(daemon.port, WEB1, lines)
        wait_until(lambda: len(daemon.lines()) == 5, what="lines")
        got, _ = daemon.stop()
    finally:
        backend.close()
    # one line per request, each client once: records consumed in arrival order
    assert clients(got) == sources


def daemon_received(daemon: Penlogd) -> int:
    """The records counter, from a USR1 report."""
    assert daemon.process.stderr is not None
    daemon.process.send_signal(signal.SIGUSR1)
    line = daemon.process.stderr.readline().decode()
    found = re.search(r"records (\d+)", line)
    assert found, line
    return int(found[1])


def test_ipv6_everywhere(processes: Processes, tmp_path: Path) -> None:
    daemon = Penlogd(processes, tmp_path)
    send_records(daemon.port, [("2001:db8::7", "::1", "/v6")], target="::1")
    penlog(daemon.port, "::1", [common_line("/v6", remote="::1")])
    wait_until(lambda: len(daemon.lines()) == 1, what="the line")
    assert clients(daemon.stop()[0]) == ["2001:db8::7"]


def test_records_only_from_the_balancer_when_told(processes: Processes, tmp_path: Path) -> None:
    daemon = Penlogd(processes, tmp_path, "--balancer", PEN, "--wait", "0")
    with sender("127.0.0.66") as intruder:
        intruder.sendto(f"+ 6.6.6.6 {WEB1} GET /x HTTP/1.1\n".encode(), ("127.0.0.1", daemon.port))
    send_records(daemon.port, [("10.0.0.1", WEB1, "/x")])
    penlog(daemon.port, WEB1, [common_line("/x"), common_line("/x")])
    wait_until(lambda: len(daemon.lines()) == 2, what="the lines")
    lines, _ = daemon.stop()
    assert clients(lines) == ["10.0.0.1", "127.0.0.1"]


def test_bad_datagrams_are_counted_and_every_line_kept(
    processes: Processes, tmp_path: Path
) -> None:
    daemon = Penlogd(processes, tmp_path, "--wait", "0")
    big = b"x" * 65000 + b' "GET / HTTP/1.1"\n'
    with sender(WEB1) as web:
        for datagram in [b"", b"+ garbage", b"\x00\x01\xff\n", b"two\nlines\n", big]:
            web.sendto(datagram, ("127.0.0.1", daemon.port))
    wait_until(lambda: len(daemon.lines()) == 3, what="the lines")
    lines, _ = daemon.stop()
    assert lines == [b"\x00\x01\xff\n", b"two\\x0alines\n", big]
    assert daemon.process.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0"], b"port must be"),
        (["--log-format", "%>s %b", "10000"], b"no client address"),
        (["--log-format", "%h %t %>s", "10000"], b'no request line ("%r")'),
        (["-a", "192.0.2.1", "10000"], b"192.0.2.1"),  # not an address of this host
        (["-u", "no-such-user-here", "-f", "10001"], b"no such user"),
    ],
)
def test_bad_arguments_give_one_line_and_a_failure(args: list[str], message: bytes) -> None:
    result = run_tool("penlogd", *args, timeout=20)
    assert result.returncode != 0
    assert result.stderr.startswith(b"penlogd: ") and message in result.stderr
    assert result.stderr.count(b"\n") == 1, result.stderr


def test_a_port_in_use_is_an_error(processes: Processes, tmp_path: Path) -> None:
    daemon = Penlogd(processes, tmp_path)
    result = run_tool("penlogd", "-f", str(daemon.port))
    assert result.returncode != 0
    assert result.stderr == b"penlogd: cannot listen on [::]:%d: Address already in use\n" % (
        daemon.port
    )


def test_it_detaches_without_f_and_cleans_up_on_term(
    tmp_path: Path, daemon_pidfiles: list[Path]
) -> None:
    port = free_port("::", socket.SOCK_DGRAM)
    pidfile, logfile = tmp_path / "d.pid", tmp_path / "d.log"
    daemon_pidfiles.append(pidfile)
    started = run_tool("penlogd", "-p", str(pidfile), "-l", str(logfile), str(port), timeout=20)
    assert started.returncode == 0, started.stderr
    wait_until(pidfile.exists, what="the PID file")
    pid = int(pidfile.read_text())
    try:
        send_records(port, [("10.9.9.9", WEB1, "/d")])
        penlog(port, WEB1, [common_line("/d")])
        wait_until(lambda: logfile.exists() and logfile.read_bytes().startswith(b"10.9.9.9 "))
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pidfile.exists(), what="the PID file to go")
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), what="the daemon to exit")
