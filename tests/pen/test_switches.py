"""Contradictory switches: refused in one line with exit 2, or a warning and a start."""

from __future__ import annotations

import pytest

from tests.conftest import Processes, free_port, run_tool
from tests.pen.support import start_pen

PEN_HOST = "127.0.46.1"
SERVER = "127.0.46.2:80"


@pytest.mark.parametrize(
    ("switches", "message"),
    [
        (["-W", "--prio"], "-W and --prio: both choose the server; give one"),
        (["-h", "-W"], "-h and -W: both choose the server; give one"),
        (["-h", "--prio"], "-h and --prio: both choose the server; give one"),
        (["-U", "-H"], "-U and -H: -H edits HTTP requests, which need TCP"),
        (["-U", "--proxy-protocol", "1"], "-U and --proxy-protocol: the PROXY header needs TCP"),
        (["--xff-replace"], "--xff-replace needs -H"),
    ],
)
def test_contradictory_switches_are_refused(switches: list[str], message: str) -> None:
    result = run_tool("pen", "-f", *switches, f"{PEN_HOST}:{free_port(PEN_HOST)}", SERVER)
    assert result.returncode == 2
    assert result.stderr.decode() == f"pen: {message} (try pen --help)\n"


def test_no_server_at_all_is_refused() -> None:
    result = run_tool("pen", "-f", f"{PEN_HOST}:{free_port(PEN_HOST)}")
    assert result.returncode == 2
    assert result.stderr.startswith(b"pen: no SERVER given: pen would refuse every client")
    assert result.stderr.count(b"\n") == 1


@pytest.mark.parametrize(
    ("switches", "warning"),
    [
        (["-r", "-h"], "-r with -h: -h chooses each connection's server (not round-robin)"),
        (["-r", "-W"], "-r with -W: -W chooses each connection's server (not round-robin)"),
        (["-r", "-T", "60"], "-T has no effect with -r (no client tracking)"),
    ],
)
def test_surprising_switches_start_with_a_warning(
    processes: Processes, switches: list[str], warning: str
) -> None:
    process = start_pen(processes, PEN_HOST, free_port(PEN_HOST), *switches, "--", SERVER)
    assert process.stderr is not None
    assert process.stderr.readline().decode().startswith(f"pen: warning: {warning}")
    assert process.poll() is None  # and it runs
