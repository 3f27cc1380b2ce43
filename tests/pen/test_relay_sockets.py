"""The plain relay's sockets, looked at from inside: pen's relay on a real
loopback listener and a real backend, in this process.

TCP_NODELAY reaches accepted sockets through the listener (they inherit it),
so penctl's ``tcp_nodelay`` must still decide it for each new connection, on
both of its sides, over IPv4 and IPv6.
"""

from __future__ import annotations

import _socket
import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from pentools.pen.config import ListenSpec, PenConfig, ServerSpec
from pentools.pen.control import Controller
from pentools.pen.front import open_listener
from pentools.pen.relays.epoll import RawConnection, RawRelay
from pentools.pen.server import build_state
from pentools.pen.state import Connection

HOSTS = {"ipv4": ("127.0.43.1", "127.0.43.2"), "ipv6": ("::1", "::1")}


class HoldingBackend:
    """Accepts connections and keeps them open until closed."""

    def __init__(self, host: str) -> None:
        self.listener = socket.create_server((host, 0), family=socket.getaddrinfo(host, 0)[0][0])
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture(params=sorted(HOSTS))
def relay(request: pytest.FixtureRequest) -> Iterator[tuple[RawRelay, Controller]]:
    pen_host, backend_host = HOSTS[request.param]
    backend = HoldingBackend(backend_host)
    loop = asyncio.new_event_loop()
    config = PenConfig(
        listen=ListenSpec(pen_host, 0), servers=(ServerSpec(backend_host, backend.port),)
    )
    state = build_state(config, loop)
    relay = RawRelay(state, loop, open_listener(config.listen, "listen address"))
    try:
        yield relay, Controller(state)
    finally:
        for connection in list(state.table.connections.values()):
            connection.close()
        relay.close()
        loop.close()
        backend.close()


def new_connection(relay: RawRelay, clients: ExitStack) -> RawConnection:
    """pen's connection for a new client (closed with `clients`), once made."""
    address = relay.listener.getsockname()[:2]
    clients.enter_context(socket.create_connection(address, timeout=10))
    before = set(relay.state.table.connections)

    async def made() -> Connection:
        for _ in range(1000):
            new = set(relay.state.table.connections) - before
            if new:
                connection = relay.state.table.connections[new.pop()]
                if not connection.connecting_now():
                    return connection
            await asyncio.sleep(0.01)
        raise AssertionError("pen never connected the client to the backend")

    connection = relay.loop.run_until_complete(made())
    assert isinstance(connection, RawConnection) and connection.up is not None
    return connection


def nodelay(sock: _socket.socket | None) -> int:
    assert sock is not None
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_penctl_tcp_nodelay_decides_both_sides_of_each_new_connection(
    relay: tuple[RawRelay, Controller],
) -> None:
    raw, controller = relay
    with ExitStack() as clients:
        first = new_connection(raw, clients)
        assert (nodelay(first.down), nodelay(first.up)) == (1, 1)  # on by default

        assert controller.execute("no tcp_nodelay") == ""
        second = new_connection(raw, clients)
        assert (nodelay(second.down), nodelay(second.up)) == (0, 0)
        assert nodelay(first.down) == 1  # an open connection keeps what it had

        assert controller.execute("tcp_nodelay") == ""
        third = new_connection(raw, clients)
        assert (nodelay(third.down), nodelay(third.up)) == (1, 1)
