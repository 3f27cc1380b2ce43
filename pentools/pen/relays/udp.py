"""``-U``: UDP balancing.  Each client address gets a session: a socket connected to
the server chosen for it, whose replies go back to that client.  Sessions idle
for `SESSION_IDLE` seconds are closed and give their server slot back.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from pentools.core.addresses import address_family
from pentools.pen.connection import client_of, record_request
from pentools.pen.selection import Server
from pentools.pen.state import State

#: Seconds without traffic after which a client's session ends.
SESSION_IDLE = 30.0
#: Datagrams kept for a session whose upstream socket is still being opened.
_PENDING_LIMIT = 64


class _Session(asyncio.DatagramProtocol):
    """One client's upstream socket: relays the server's replies to the client."""

    def __init__(self, front: _Front, client: tuple[str, int], server: Server) -> None:
        self.front = front
        self.client = client
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []
        self.last_seen = front.loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        for datagram in self.pending:
            self.send(datagram)
        self.pending.clear()

    def send(self, datagram: bytes) -> None:
        self.last_seen = self.front.loop.time()
        if self.transport is None:
            if len(self.pending) < _PENDING_LIMIT:
                self.pending.append(datagram)
            return
        self.transport.sendto(datagram)
        self.server.sent += len(datagram)

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.last_seen = self.front.loop.time()
        self.server.received += len(data)
        if self.front.transport is not None:
            self.front.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        """A refused datagram (ICMP) says nothing certain about the server: ignore it."""


class _Front(asyncio.DatagramProtocol):
    """The listening socket: routes each client's datagrams to its session."""

    def __init__(self, state: State, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], _Session] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        session = self.sessions.get(addr)
        if session is None:
            session = self.open_session(addr, data)
            if session is None:
                return
        session.send(data)

    def open_session(self, addr: tuple[str, int], first: bytes) -> _Session | None:
        state = self.state
        loop = self.loop
        if len(self.sessions) >= state.settings.conn_max:
            state.counters.refused += 1
            return None
        client = client_of(addr)
        if not state.admits(client):
            return None  # the datagram is dropped; so is every one until the list changes
        index = state.selector.choose(client, loop.time())
        if index is None:
            state.counters.no_server += 1
            return None
        server = state.selector.server(index)
        session = _Session(self, addr, server)
        self.sessions[addr] = session
        family = address_family(server.address)
        loop.create_task(
            loop.create_datagram_endpoint(
                lambda: session, remote_addr=(server.address, server.port), family=family
            )
        )
        if state.sink is not None:
            record_request(state.sink, client, server, first)
        return session

    def expire(self) -> None:
        now = self.loop.time()
        for addr, session in list(self.sessions.items()):
            if now - session.last_seen > SESSION_IDLE:
                self.close_session(addr)

    def close_session(self, addr: tuple[str, int]) -> None:
        session = self.sessions.pop(addr)
        if session.transport is not None:
            session.transport.close()
        self.state.selector.release(session.server.index)

    def close(self) -> None:
        for addr in list(self.sessions):
            self.close_session(addr)
        if self.transport is not None:
            self.transport.close()


async def serve_udp(
    state: State, loop: asyncio.AbstractEventLoop, sock: socket.socket
) -> Callable[[], None]:
    """Serve UDP on the bound `sock`; returns the function that stops it."""
    front = _Front(state, loop)
    await loop.create_datagram_endpoint(lambda: front, sock=sock)
    timer: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal timer
        front.expire()
        timer = loop.call_later(SESSION_IDLE / 3, tick)

    tick()

    def stop() -> None:
        if timer is not None:
            timer.cancel()
        front.close()

    return stop
