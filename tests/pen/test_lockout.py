"""No lock-out (issue 14): idle connections at the -x cap must not shut every other client out.

600 connections that send nothing, from 200 loopback addresses, against
``-x 500``: without options pen refuses everyone else while they stay open
(the original's behaviour); with the documented options a legitimate
client is served within 2 s.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pentools.pen.config import ListenSpec, PenConfig, ServerSpec
from pentools.pen.control import Controller
from pentools.pen.server import build_state
from pentools.pen.state import State
from tests.conftest import Processes
from tests.pen.support import DEADLINE, http_get, penctl, start_backend, start_with_control

PEN_HOST = "127.0.80.1"
BACKEND = "127.0.80.2"
LEGITIMATE = "127.0.81.1"
#: The idle clients' addresses: 200 of them, three connections each.
IDLE_SOURCES = [f"127.0.82.{n}" for n in range(1, 201)]
CONN_MAX = 500


def idle_flood(stack: ExitStack, port: int) -> list[socket.socket]:
    """600 connections to pen that never send a byte (kept open by `stack`)."""
    flood = []
    for _ in range(3):
        for source in IDLE_SOURCES:
            conn = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            conn.bind((source, 0))
            conn.settimeout(DEADLINE)
            conn.connect((PEN_HOST, port))  # completed by the kernel even while pen waits
            flood.append(conn)
    return flood


def served_within(port: int, seconds: float) -> float | None:
    """Seconds a fresh client waited for its answer, or None if it was refused or cut."""
    start = time.monotonic()
    try:
        name, _ = http_get(PEN_HOST, port, source=LEGITIMATE, timeout=seconds)
    except (ConnectionError, TimeoutError):
        return None
    assert name == "backend"
    return time.monotonic() - start


@pytest.fixture
def backend(processes: Processes) -> str:
    return f"{BACKEND}:{start_backend(processes, BACKEND, 'backend')}"


def test_without_options_idle_connections_lock_clients_out(
    processes: Processes, backend: str
) -> None:
    """The problem the options solve: pen refuses a client while 500 idle ones stay."""
    _, port, control = start_with_control(processes, PEN_HOST, [backend], "-x", str(CONN_MAX))
    with ExitStack() as stack:
        idle_flood(stack, port)
        deadline = time.monotonic() + DEADLINE
        while penctl(PEN_HOST, control, "status").count("<tr>") < CONN_MAX:
            assert time.monotonic() < deadline, "pen did not take 500 idle connections"
            time.sleep(0.1)
        assert served_within(port, 3.0) is None


def test_queue_and_first_byte_timeout_serve_a_client_within_2_s(
    processes: Processes, backend: str
) -> None:
    options = ["-x", str(CONN_MAX), "--queue-at-conn-max", "--first-byte-timeout", "1"]
    _, port, control = start_with_control(processes, PEN_HOST, [backend], *options)
    with ExitStack() as stack:
        idle_flood(stack, port)
        waited = served_within(port, DEADLINE)
        assert waited is not None and waited < 2.0, f"served after {waited} s"
        assert penctl(PEN_HOST, control, "first_byte_timeout") == "1\n"


def test_a_cap_per_client_address_keeps_room_for_others(processes: Processes, backend: str) -> None:
    options = ["-x", str(CONN_MAX), "--conn-max-per-client", "2"]
    _, port, control = start_with_control(processes, PEN_HOST, [backend], *options)
    with ExitStack() as stack:
        idle_flood(stack, port)  # 400 taken, the third of each address refused
        waited = served_within(port, DEADLINE)
        assert waited is not None and waited < 2.0, f"served after {waited} s"
        assert penctl(PEN_HOST, control, "conn_max_per_client") == "2\n"


@pytest.fixture
def controller() -> Iterator[Controller]:
    loop = asyncio.new_event_loop()
    config = PenConfig(listen=ListenSpec("127.0.0.1", 8080), servers=(ServerSpec(BACKEND, 80),))
    try:
        yield Controller(build_state(config, loop))
    finally:
        loop.close()


def test_control_port_reads_changes_and_writes_the_settings(
    controller: Controller, tmp_path: Path
) -> None:
    settings = controller.state.settings
    assert controller.execute("conn_max_per_client") == "0\n"
    assert controller.execute("conn_max_per_client 3") == "3\n"
    assert controller.execute("first_byte_timeout 5") == "5\n"
    assert controller.execute("queue_at_conn_max") == ""
    assert (settings.conn_max_per_client, settings.first_byte_timeout) == (3, 5)
    assert settings.queue_at_conn_max
    saved = tmp_path / "pen.cfg"
    controller.execute(f"write {saved}")
    text = saved.read_text()
    assert "\nqueue_at_conn_max\nconn_max_per_client 3\nfirst_byte_timeout 5\n" in text
    controller.execute("no queue_at_conn_max")
    controller.execute("conn_max_per_client 0")
    controller.execute(f"include {saved}")
    assert settings.queue_at_conn_max and settings.conn_max_per_client == 3


def test_the_cap_per_client_counts_open_connections(controller: Controller) -> None:
    state = controller.state
    controller.execute("conn_max_per_client 1")
    assert not state.over_client_cap("127.0.0.9")
    state.table.per_client["127.0.0.9"] = 1
    assert state.over_client_cap("127.0.0.9") and state.counters.client_capped == 1


class Silent:
    """A client connection as the table sees it, closed through the table."""

    number: int
    active: bool
    quiet_since: float
    opened: float

    def __init__(self, state: State, client: str, sent: bool) -> None:
        self.state, self.client, self.first_chunk = state, client, not sent
        self.server_index = -1
        self.closed = False

    def status(self) -> tuple[int, int, int, int]:
        return (-1, -1, 0, 0)

    def connecting_now(self) -> bool:
        return False

    def closed_sides(self) -> tuple[bool, bool]:
        return (False, False)

    def close(self) -> None:
        self.closed = True
        self.state.table.remove(self)


def test_first_byte_timeout_closes_only_silent_connections_and_only_at_the_cap(
    controller: Controller,
) -> None:
    state = controller.state
    controller.execute("conn_max 3")
    controller.execute("first_byte_timeout 2")
    silent = [Silent(state, "127.0.0.7", sent=False) for _ in range(2)]
    talking = Silent(state, "127.0.0.8", sent=True)
    for connection in silent:
        state.table.add(connection, now=100.0)
    state.tick(103.0)  # below the cap: nothing happens
    assert not any(c.closed for c in silent)
    state.table.add(talking, now=100.0)
    state.tick(101.5)  # at the cap, but silent for less than 2 s
    assert not any(c.closed for c in silent)
    state.tick(102.0)
    assert all(c.closed for c in silent) and not talking.closed
    assert state.counters.first_byte_closed == 2
    assert state.table.per_client == {"127.0.0.8": 1}
