"""pen started as an init script starts it: -u, -l, -p, in the background.

The command must exit 0 only once pen serves, and otherwise exit non-zero
with pen's own one-line reason, leaving no daemon, log or PID file behind.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from tests import daemons
from tests.conftest import Processes, free_port, run_tool
from tests.pen.support import http_get, start_backend, start_pen

PEN_HOST = "127.0.44.1"
BACKEND = "127.0.44.2"


def test_init_script_setup_serves_as_the_user_and_reopens_on_hup(
    processes: Processes, daemon_pidfiles: list[Path]
) -> None:
    daemons.require_root()
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'web1')}"
    port = free_port(PEN_HOST)
    with daemons.init_script_setup("pen.log", "pen.pid") as setup:
        log, pidfile, logs = setup.log, setup.pidfile, setup.log.parent
        daemon_pidfiles.append(pidfile)
        started = run_tool("pen", *setup.argv(), f"{PEN_HOST}:{port}", backend)
        assert (started.returncode, started.stderr) == (0, b"")
        # Ready means ready: no waiting for the PID file or the port.
        pid = int(pidfile.read_text())
        assert http_get(PEN_HOST, port, "/one")[0] == "web1"
        assert (
            daemons.process_user(pid) == daemons.USER
            and daemons.owner(log) == daemons.USER
            and daemons.owner(pidfile) == daemons.USER
        )
        daemons.wait_for(lambda: b"GET /one" in log.read_bytes(), "the first record")
        log.rename(logs / "pen.log.1")  # what logrotate does, then HUP
        os.kill(pid, signal.SIGHUP)
        daemons.wait_for(log.exists, "the log reopened")
        assert http_get(PEN_HOST, port, "/two")[0] == "web1"
        daemons.wait_for(lambda: b"GET /two" in log.read_bytes(), "a record in the new log")
        assert (
            daemons.owner(log) == daemons.USER and b"/two" not in (logs / "pen.log.1").read_bytes()
        )
        daemons.stop(pid)
        assert not pidfile.exists()


def test_a_rotation_that_cannot_reopen_keeps_the_old_log(processes: Processes) -> None:
    daemons.require_root()
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'web1')}"
    port = free_port(PEN_HOST)
    with daemons.init_script_setup("pen.log", "pen.pid") as setup:
        process = start_pen(processes, PEN_HOST, port, *setup.argv(), "--", backend)
        logs = setup.log.parent
        assert http_get(PEN_HOST, port, "/before")[0] == "web1"  # pen is past its start-up
        os.chown(logs, 0, 0)  # the directory is root's now: nobody cannot create the log
        setup.log.rename(logs / "pen.log.1")
        process.send_signal(signal.SIGHUP)
        assert process.stderr is not None
        assert process.stderr.readline().startswith(b"pen: HUP: ")
        assert http_get(PEN_HOST, port, "/after")[0] == "web1"
        old = logs / "pen.log.1"  # records go on there, not to a closed descriptor
        daemons.wait_for(lambda: b"GET /after" in old.read_bytes(), "a record after HUP")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        *daemons.MISUSES,
        ("port in use", "Address already in use"),
        ("-F file missing", "cannot read -F file"),
    ],
)
def test_a_failed_start_in_daemon_mode_is_an_exit_status_and_one_line(
    case: str, expected: str
) -> None:
    daemons.require_root()
    with daemons.init_script_setup("pen.log", "pen.pid") as setup, socket.socket() as taken:
        taken.bind((PEN_HOST, 0))
        port = free_port(PEN_HOST)
        if case == "port in use":
            taken.listen()
            port = taken.getsockname()[1]
            argv = setup.argv()
        elif case == "-F file missing":
            argv = setup.argv(F=str(setup.root / "missing.cfg"))
        else:
            argv = daemons.misuse_argv(setup, case)
        result = run_tool("pen", *argv, f"{PEN_HOST}:{port}", f"{BACKEND}:80")
        daemons.check_failed_start(result, "pen", expected, setup)
    if case != "port in use":  # nothing stayed behind listening
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((PEN_HOST, port))


def test_the_pid_file_is_removed_only_while_it_is_ours(
    processes: Processes, tmp_path: Path, daemon_pidfiles: list[Path]
) -> None:
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'web1')}"
    pidfile = tmp_path / "pen.pid"
    daemon_pidfiles.append(pidfile)
    started = run_tool("pen", "-p", str(pidfile), f"{PEN_HOST}:{free_port(PEN_HOST)}", backend)
    assert started.returncode == 0, started.stderr
    daemons.check_pid_file_left_to_its_new_owner(processes, pidfile)


def test_in_a_chroot_as_the_user_the_udp_front_serves(
    tmp_path: Path, daemon_pidfiles: list[Path]
) -> None:
    # The jail holds no Python: whatever pen needs is loaded before -j.
    daemons.require_root()
    jail = tmp_path / "jail"
    jail.mkdir()
    logs, run = daemons.user_dir(jail, "log"), daemons.user_dir(jail, "run")
    daemon_pidfiles.append(run / "pen.pid")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as backend:
        backend.bind((BACKEND, 0))
        backend.settimeout(10)
        port = free_port(PEN_HOST, socket.SOCK_DGRAM)
        options = [
            "-j",
            str(jail),
            "-u",
            daemons.USER,
            "-U",
            "-l",
            "/log/pen.log",
            "-p",
            "/run/pen.pid",
        ]
        started = run_tool(
            "pen", *options, f"{PEN_HOST}:{port}", f"{BACKEND}:{backend.getsockname()[1]}"
        )
        assert (started.returncode, started.stderr) == (0, b"")
        pid = int((run / "pen.pid").read_text())
        assert (
            os.readlink(f"/proc/{pid}/root") == str(jail)
            and daemons.process_user(pid) == daemons.USER
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"hello", (PEN_HOST, port))
            assert backend.recvfrom(100)[0] == b"hello"
        assert daemons.owner(logs / "pen.log") == daemons.USER
        daemons.stop(pid)
    assert not (run / "pen.pid").exists()
