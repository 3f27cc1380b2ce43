"""Shared test helpers: our own commands as real subprocesses, free ports, real parts.

Real external programs (the C pen suite, apache2, dnsmasq, goaccess, chromium,
...) are looked up with `require_program`: missing means skip on a developer
machine, but *fail* when ``CI=true``, because CI must prove every real part.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = REPO_ROOT / "sample_logs"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def tool_argv(tool: str, *args: str) -> list[str]:
    """The command line that runs one of our tools from this checkout."""
    return [sys.executable, "-m", f"pentools.{tool}", *args]


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for our tools: this checkout first on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_tool(tool: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    """Run one of our tools to completion (stdout and stderr captured)."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("timeout", 120)
    kwargs.setdefault("env", tool_env())
    return subprocess.run(tool_argv(tool, *args), **kwargs)  # type: ignore[call-overload,no-any-return]


def require_program(name: str) -> str:
    """The path of an external program; skip without it, but fail under CI=true."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{name} is not installed (scripts/test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str) -> None:
    """Import an optional Python package (an extra); skip without it, but fail under CI=true."""
    try:
        importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed (the test extra installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on `host` right now.

    `host` "::" probes the dual-stack wildcard, which a daemon listening on
    every address binds: the port is then free on every IPv4 and IPv6 address.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        if host == "::":
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str, source: str, headers: str = "") -> bytes:
    """One HTTP/1.0 GET to 127.0.0.1:`port` from the loopback address `source`: the reply.

    `headers` are extra header lines, each ending in CRLF.
    """
    request = f"GET {path} HTTP/1.0\r\nHost: farm\r\n{headers}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), source_address=(source, 0)) as client:
        client.sendall(request)
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
    return reply


class Processes:
    """Processes started by a test, stopped by PID (TERM, then KILL) at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]
        self.started.append(process)
        return process  # type: ignore[no-any-return]

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.started):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            for stream in (process.stdout, process.stderr, process.stdin):
                if stream is not None:
                    stream.close()


@pytest.fixture
def processes() -> Iterator[Processes]:
    """Start processes in a test; they are all stopped by PID when it ends."""
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def daemon_pidfiles() -> Iterator[list[Path]]:
    """PID files of the daemons a test starts (they are not our children).

    A daemon whose PID file is still there when the test ends, because the
    test failed before stopping it, is stopped by that PID (TERM, then KILL).
    """
    pidfiles: list[Path] = []
    yield pidfiles
    for pidfile in pidfiles:
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            continue  # gone: the daemon removed it at a clean exit
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)
