"""Helpers for the live tests: start penlogd (ours or the C one), send, collect."""

from __future__ import annotations

import errno
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from pentools.core.addresses import address_family
from tests.conftest import Processes, free_port, tool_argv, tool_env

COMMON_TIME = "[21/Nov/2026:14:00:00 +0000]"


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def udp_port_bound(port: int, host: str = "127.0.0.1") -> bool:
    """True once some process has bound UDP `port` (on `host` or the wildcard)."""
    with socket.socket(address_family(host), socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def tcp_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """True once something accepts TCP connections on `port` (a balancer, a backend)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def udp_queue_empty(port: int) -> bool:
    """True when the socket bound to UDP `port` has no datagram left to read (/proc)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as handle:
            next(handle)
            for row in handle:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return int(fields[4].split(":")[1], 16) == 0
    return False


def common_line(
    path: str, remote: str = "127.0.0.1", port: int | None = None, version: str = "1.1"
) -> bytes:
    text = f'{remote} - - {COMMON_TIME} "GET {path} HTTP/{version}" 200 5'
    return (text + (f" {port}" if port is not None else "") + "\n").encode()


def sender(source: str) -> socket.socket:
    sock = socket.socket(address_family(source), socket.SOCK_DGRAM)
    sock.bind((source, 0))
    return sock


class Penlogd:
    """One penlogd process in the foreground, logging to a file."""

    def __init__(self, processes: Processes, tmp_path: Path, *args: str, c_tool: str = "") -> None:
        self.port = free_port("::", socket.SOCK_DGRAM)  # it listens on every address
        self.logfile = tmp_path / f"penlogd-{self.port}.log"
        self.pidfile = tmp_path / f"penlogd-{self.port}.pid"
        argv = (
            [c_tool, "-f", "-l", str(self.logfile), str(self.port)]
            if c_tool
            else tool_argv(
                "penlogd",
                "-f",
                "-l",
                str(self.logfile),
                "-p",
                str(self.pidfile),
                *args,
                str(self.port),
            )
        )
        self.process = processes.start(argv, stderr=subprocess.PIPE, env=tool_env())
        wait_until(
            lambda: udp_port_bound(self.port) or self.process.poll() is not None, what="bind"
        )
        assert self.process.poll() is None, (
            self.process.stderr.read() if self.process.stderr else ""
        )

    def stop(self) -> tuple[list[bytes], str]:
        """TERM it; its lines and its stderr (it must exit 0)."""
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, stderr
        return self.lines(), stderr.decode(errors="replace")

    def lines(self) -> list[bytes]:
        if not self.logfile.exists():
            return []
        return self.logfile.read_bytes().splitlines(keepends=True)


def clients(lines: list[bytes]) -> list[str]:
    return [line.split(b" ", 1)[0].decode() for line in lines]
