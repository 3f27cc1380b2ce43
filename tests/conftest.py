"""Shared test helpers: our own commands as real subprocesses, free ports, real parts.

Real external programs (apache2, dnsmasq, goaccess, chromium, ...) are looked
up with `require_program`, the reference C tools of the Debian ``pen`` package
with `require_c_tool` (never one of ours by the same name): missing means skip
on a developer machine, but *fail* when ``CI=true``, because CI must prove every
real part. Under ``CI=true`` any other skip fails the run too (the hooks below).
No process the tests start may leave a core file behind (`pytest_configure`).
"""

from __future__ import annotations

import importlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

import pytest

if TYPE_CHECKING:
    from tests.apache import Apache

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = REPO_ROOT / "sample_logs"
#: The Debian package of the reference C tools (pen, penctl, penlog, penlogd, mergelogs).
C_PACKAGE = "pen"
C_TOOLS = ("pen", "penctl", "penlog", "penlogd", "mergelogs")


def in_ci() -> bool:
    """Whether this run is CI, where every real part must be proven (``CI=true``)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    """No core files (``ulimit -Hc 0``): the C pen can crash, and its cwd may be this checkout.

    Every process the tests start inherits the limit. The hard limit too:
    the C pen raises its soft limit to the hard one at start.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI=true a skipped (or xfailed) test is a failure: CI must prove everything."""
    return _fail_if_skipped_in_ci((yield))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """The same for a whole module skipped at collection (importorskip, allow_module_level)."""
    return _fail_if_skipped_in_ci((yield))


Report = TypeVar("Report", pytest.TestReport, pytest.CollectReport)


def _fail_if_skipped_in_ci(report: Report) -> Report:
    if report.skipped and in_ci():
        if hasattr(report, "wasxfail"):
            reason = f"xfail {report.wasxfail}"
        else:
            longrepr = report.longrepr
            reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"
    return report


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
    """The path of an external program; skip without it, but fail under CI=true.

    Not for the C tools, which our own commands could stand in for on PATH:
    those come from `require_c_tool`.
    """
    assert name not in C_TOOLS, f"require_c_tool({name!r}), not require_program"
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        _missing(f"{name} is not installed (scripts/test installs it)")
    return path


def _missing(message: str) -> NoReturn:
    """Skip for want of a real part; fail under CI=true."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require_c_tool(name: str) -> str:
    """The reference C `name` (pen, penctl, ...) from the Debian package, never ours.

    Our console scripts carry the same names, so PATH is not consulted: the
    path comes from the package's file list, and `not_a_reference_tool` refuses
    anything that could be our own tool (see there).
    """
    dpkg_query = require_program("dpkg-query")
    listed = subprocess.run(
        [dpkg_query, "-L", C_PACKAGE], capture_output=True, text=True, timeout=30
    ).stdout.splitlines()
    paths = [p for p in listed if p in (f"/usr/bin/{name}", f"/usr/sbin/{name}")]
    if not paths:
        _missing(f"{name}: not in the Debian package {C_PACKAGE!r} (scripts/test installs it)")
    problem = not_a_reference_tool(Path(paths[0]))
    if problem:
        pytest.fail(f"{paths[0]} is not the reference C {name}: {problem}")
    return paths[0]


def not_a_reference_tool(path: Path) -> str | None:
    """Why `path` cannot be a reference C tool, or None when it can be one.

    Refused: anything (after symlinks) under this checkout, an activated
    virtual environment or this Python's prefix, where our console scripts
    live (not when that prefix is the system's own /usr, as for Debian's
    python3, which also holds the C tools); and anything that is not an ELF
    binary, as our tools are Python scripts.
    """
    real = path.resolve()
    homes = {REPO_ROOT, Path(sys.prefix), Path(os.environ.get("VIRTUAL_ENV") or REPO_ROOT)}
    for home in homes - {Path("/usr"), Path("/")}:
        if real.is_relative_to(home.resolve()):
            return f"it is under {home}, where our own tools are"
    try:
        with real.open("rb") as binary:
            magic = binary.read(4)
    except OSError as exc:
        return f"cannot read it: {exc.strerror}"
    if magic != b"\x7fELF":
        return "it is not an ELF binary (our tools are Python scripts)"
    return None


def require_module(name: str) -> None:
    """Import an optional Python package (an extra); skip without it, but fail under CI=true."""
    try:
        importlib.import_module(name)
    except ImportError:
        _missing(f"{name} is not installed (the test extra installs it)")


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
def apaches() -> Iterator[list[Apache]]:
    """Apache instances a test starts (`tests.apache.Apache`): stopped when it ends."""
    started: list[Apache] = []
    yield started
    for apache in started:
        apache.stop()


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
