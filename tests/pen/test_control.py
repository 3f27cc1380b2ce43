"""The control commands (sans-IO): replies in the C pen's formats, settings that stick."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from pentools.pen.config import ListenSpec, PenConfig, ServerSpec
from pentools.pen.control import CommandError, Controller
from pentools.pen.server import build_state


@pytest.fixture
def controller() -> Iterator[Controller]:
    loop = asyncio.new_event_loop()
    config = PenConfig(
        listen=ListenSpec("127.0.0.1", 8080),
        servers=(ServerSpec("127.0.0.2", 80), ServerSpec("127.0.0.3", 81, 10, 20, 3, 1)),
    )
    try:
        yield Controller(build_state(config, loop))
    finally:
        loop.close()


def test_servers_reply(controller: Controller) -> None:
    assert controller.execute("servers") == (
        "0 addr 127.0.0.2 port 80 conn 0 max 0 hard 0 weight 0 prio 0 sx 0 rx 0\n"
        "1 addr 127.0.0.3 port 81 conn 0 max 10 hard 20 weight 3 prio 1 sx 0 rx 0\n"
    )


def test_switches_and_mode(controller: Controller) -> None:
    assert controller.execute("mode") == "no hash no roundrobin no stubborn no weight no prio\n"
    for command in ("hash", "roundrobin", "stubborn", "weight", "prio"):
        assert controller.execute(command) == ""
    assert controller.execute("mode") == "hash roundrobin stubborn weight prio\n"
    controller.execute("no roundrobin")
    assert controller.execute("mode") == "hash no roundrobin stubborn weight prio\n"


def test_numbers_read_and_set(controller: Controller) -> None:
    for command, default in (
        ("blacklist", "30"),
        ("timeout", "5"),
        ("tracking", "0"),
        ("debug", "0"),
    ):
        assert controller.execute(command) == f"{default}\n"
        assert controller.execute(f"{command} 7") == ""
        assert controller.execute(command) == "7\n"
    assert controller.execute("clients_max 3") == "3\n"
    assert controller.execute("conn_max") == "500\n"
    with pytest.raises(CommandError):
        controller.execute("blacklist soon")


def test_server_changes(controller: Controller) -> None:
    controller.execute("server 0 address 127.0.0.9 port 8000 max 5 hard 6 weight 2 prio 4")
    assert controller.execute("servers").splitlines()[0] == (
        "0 addr 127.0.0.9 port 8000 conn 0 max 5 hard 6 weight 2 prio 4 sx 0 rx 0"
    )
    controller.execute("server 1 blacklist 60")
    assert controller.state.selector.servers[1].is_blacklisted(controller.state.clock())
    for bad in ("server 5 max 1", "server 0 max", "server 0 colour red", "server 0 port 0"):
        with pytest.raises(CommandError):
            controller.execute(bad)


def test_unknown_commands_and_exit_without_x(controller: Controller) -> None:
    with pytest.raises(CommandError, match="ignoring command starting with 'bogus'"):
        controller.execute("bogus 1")
    with pytest.raises(CommandError, match="-X"):
        controller.execute("exit")


def test_write_produces_commands_that_read_back(controller: Controller, tmp_path: Path) -> None:
    controller.execute("hash")
    controller.execute("server 1 weight 9")
    saved = tmp_path / "pen.cfg"
    controller.execute(f"write {saved}")
    controller.execute("no hash")
    controller.execute("server 1 weight 1")
    controller.execute(f"include {saved}")
    assert controller.execute("mode").startswith("hash ")
    assert " weight 9 " in controller.execute("servers").splitlines()[1]


def test_log_and_web_stats(controller: Controller, tmp_path: Path) -> None:
    assert controller.execute("log") == ""
    controller.execute(f"log {tmp_path / 'pen.log'}")
    assert controller.execute("log") == f"{tmp_path / 'pen.log'}\n"
    controller.execute("no log")
    assert controller.execute("log") == ""
    controller.execute("web_stats /tmp/x.html")
    assert controller.execute("web_stats") == "/tmp/x.html\n"


def test_status_page_has_the_three_tables(controller: Controller) -> None:
    page = controller.execute("status")
    assert "<title>Pen status page</title>" in page
    assert "2 servers, 0 current<p>" in page
    assert "<h2>Active clients</h2>Max number of clients: 2048<p>" in page
    assert "Number of connections: 500 max, 0 used" in page


def test_connection_settings_and_write(controller: Controller, tmp_path: Path) -> None:
    state = controller.state
    assert controller.execute("idle_timeout 5") == "Idle timeout: 5 seconds\n"
    assert controller.execute("tcp_fastclose both") == ""
    assert controller.execute("no tcp_nodelay") == ""
    assert controller.execute("ascii") == ""
    assert controller.execute("pending_max") == "100\n"  # the original's default
    assert controller.execute("pending_max 7") == ""
    for mechanism in ("epoll", "poll", "select"):  # pen always uses epoll: accepted as is
        assert controller.execute(mechanism) == ""
    with pytest.raises(CommandError):
        controller.execute("tcp_fastclose sideways")
    with pytest.raises(CommandError):
        controller.execute("idle_timeout -1")
    with pytest.raises(CommandError):
        controller.execute("pending_max 0")
    saved = tmp_path / "pen.cfg"
    controller.execute(f"write {saved}")
    text = saved.read_text()
    for line in ("idle_timeout 5", "tcp_fastclose both", "no tcp_nodelay", "\nascii\n"):
        assert line in text
    assert "\npending_max 7\n" in text
    controller.execute("pending_max 100")
    controller.execute("idle_timeout 0")
    controller.execute("tcp_fastclose off")
    controller.execute("tcp_nodelay")
    controller.execute("no ascii")
    controller.execute(f"include {saved}")
    settings = state.settings
    assert (settings.idle_timeout, settings.fastclose, settings.pending_max) == (5, "both", 7)
    assert not settings.tcp_nodelay and settings.ascii_dumps


def test_connection_commands_without_connections(controller: Controller) -> None:
    assert controller.execute("connection 3") == (
        "Connection 3:\nstate = 0\ndownfd = -1, upfd = -1\nclient = -1, server = -1\npend = 0\n"
    )
    assert controller.execute("connection 500") == "Connection 500 out of range\n"
    assert controller.execute("socket 7") == "Socket 7 belongs to connection -1\n"
    assert controller.execute("close 2") == "Forcibly closing connection 2\n"
    with pytest.raises(CommandError):
        controller.execute("close two")


def test_plain_follows_log_http_and_debug(controller: Controller, tmp_path: Path) -> None:
    """The relay's short path is off whenever bytes must be looked at."""
    state = controller.state
    assert state.plain
    controller.execute("http")
    assert not state.plain
    controller.execute("no http")
    controller.execute("debug 2")
    assert not state.plain
    controller.execute("debug 1")
    assert state.plain
    controller.execute(f"log {tmp_path / 'pen.log'}")
    assert not state.plain
    controller.execute("no log")
    assert state.plain


def test_source_address(controller: Controller, tmp_path: Path) -> None:
    state = controller.state
    with pytest.raises(CommandError):
        controller.execute("source not-an-address")
    controller.execute("source 127.0.0.1")
    assert state.settings.source_for("10.0.0.1") == "127.0.0.1"
    assert state.settings.source_for("2001:db8::1") is None  # an IPv4 source cannot reach it
    saved = tmp_path / "pen.cfg"
    controller.execute(f"write {saved}")
    assert "\nsource 127.0.0.1\n" in saved.read_text()
    controller.execute("no source")
    assert controller.execute("source") == "" and state.settings.source_for("10.0.0.1") is None
