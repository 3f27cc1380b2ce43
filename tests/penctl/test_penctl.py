"""penctl against our running pen: replies on stdout, refusals on stderr, help, a bare port."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import Processes, run_tool
from tests.pen.support import penctl as send
from tests.pen.support import start_backend, start_with_control

HOST = "127.0.0.1"  # where a bare port leads, as for pen -C


@pytest.fixture
def control(processes: Processes) -> int:
    """A pen with a control port on 127.0.0.1 in front of one backend: the control port."""
    backend = start_backend(processes, "127.0.45.2", "web1")
    _, _, port = start_with_control(processes, HOST, [f"127.0.45.2:{backend}"])
    return port


def penctl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run_tool("penctl", *args, timeout=20)


@pytest.mark.parametrize(
    "command",
    [["bogus"], ["exit"], ["server", "99", "weight", "2"], ["timeout", "x"], ["no", "status"]],
)
def test_a_refused_command_is_stderr_and_exit_1(control: int, command: list[str]) -> None:
    result = penctl(f"{HOST}:{control}", *command)
    assert (result.returncode, result.stdout) == (1, b"")
    text = result.stderr.decode()
    assert text.startswith("penctl: do_cmd: ") and text.count("\n") == 1, text


def test_replies_are_stdout_and_exit_0_and_a_bare_port_is_localhost(control: int) -> None:
    servers = penctl(str(control), "servers")
    assert (servers.returncode, servers.stderr) == (0, b"")
    assert servers.stdout.startswith(b"0 addr 127.0.45.2 ")
    assert penctl(f"{HOST}:{control}", "servers").stdout == servers.stdout
    setting = penctl(str(control), "timeout", "7")  # a setter replies nothing
    assert (setting.returncode, setting.stdout, setting.stderr) == (0, b"", b"")
    assert penctl(str(control), "timeout").stdout == b"7\n"


def test_help_lists_exactly_the_commands_pen_takes(control: int) -> None:
    listed = penctl("help")
    assert listed.returncode == 0 and listed.stdout == penctl(str(control), "help").stdout
    names = [line.split()[-1] for line in listed.stdout.decode().splitlines()[1:]]
    assert {"servers", "status", "blacklist", "log", "exit", "hash", "weight"} <= set(names)
    for name in [*names, "bogus"]:  # each one is known to the running pen; bogus is not
        reply = send(HOST, control, name)
        unknown = f"ignoring command starting with '{name}'"
        assert (unknown in reply) == (name in ("bogus", "exit")), (name, reply)
    negatable = [line.split()[-1] for line in listed.stdout.decode().splitlines() if "[no]" in line]
    assert "hash" in negatable and "log" in negatable and "servers" not in negatable
