"""penlogd started as an init script starts it: -u, -l, -p, in the background.

The command exits 0 only once penlogd receives; otherwise non-zero with its
one-line reason, and no daemon, log or PID file stays behind.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from tests import daemons
from tests.conftest import Processes, free_port, run_tool
from tests.penlogd.live import common_line, sender

WEB = "127.0.0.11"


def send_line(port: int, path: str) -> None:
    with sender(WEB) as sock:
        sock.sendto(common_line(path), ("127.0.0.1", port))


def test_init_script_setup_runs_as_the_user_and_rotates_on_hup(
    daemon_pidfiles: list[Path],
) -> None:
    daemons.require_root()
    port = free_port("::", socket.SOCK_DGRAM)
    with daemons.init_script_setup("access_log", "penlogd.pid") as setup:
        log, pidfile, logs = setup.log, setup.pidfile, setup.log.parent
        daemon_pidfiles.append(pidfile)
        started = run_tool("penlogd", *setup.argv(), "--wait", "0", str(port), timeout=20)
        assert (started.returncode, started.stderr) == (0, b"")
        pid = int(pidfile.read_text())  # written before the command returned
        assert (
            daemons.process_user(pid) == daemons.USER
            and daemons.owner(log) == daemons.USER
            and daemons.owner(pidfile) == daemons.USER
        )
        send_line(port, "/one")
        daemons.wait_for(lambda: b"/one" in log.read_bytes(), "the first line")
        log.rename(logs / "access_log.1")
        os.kill(pid, signal.SIGHUP)
        daemons.wait_for(log.exists, "the reopened log")
        send_line(port, "/two")
        daemons.wait_for(lambda: b"/two" in log.read_bytes(), "a line in the new log")
        assert daemons.owner(log) == daemons.USER
        daemons.stop(pid)
        assert not pidfile.exists()


@pytest.mark.parametrize(
    ("case", "expected"), [*daemons.MISUSES, ("port in use", "Address already in use")]
)
def test_a_failed_start_in_daemon_mode_is_an_exit_status_and_one_line(
    case: str, expected: str
) -> None:
    daemons.require_root()
    port = free_port("::", socket.SOCK_DGRAM)
    with (
        daemons.init_script_setup("access_log", "penlogd.pid") as setup,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken,
    ):
        if case == "port in use":
            taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            taken.bind(("::", port))
            argv = setup.argv()
        else:
            argv = daemons.misuse_argv(setup, case)
        result = run_tool("penlogd", *argv, str(port), timeout=20)
        daemons.check_failed_start(result, "penlogd", expected, setup)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
        probe.bind(("::", port))  # nothing stayed behind receiving


def test_relative_paths_and_a_pid_file_removed_only_while_it_is_ours(
    processes: Processes, tmp_path: Path, daemon_pidfiles: list[Path]
) -> None:
    pidfile, log = tmp_path / "penlogd.pid", tmp_path / "access_log"
    daemon_pidfiles.append(pidfile)
    port = free_port("::", socket.SOCK_DGRAM)
    # Relative -p and -l mean the directory penlogd was started in.
    argv = ["-p", pidfile.name, "-l", log.name, "--wait", "0", str(port)]
    started = run_tool("penlogd", *argv, cwd=tmp_path, timeout=20)
    assert started.returncode == 0, started.stderr
    send_line(port, "/here")
    daemons.wait_for(lambda: log.exists() and b"/here" in log.read_bytes(), "the line")
    daemons.check_pid_file_left_to_its_new_owner(processes, pidfile)
