"""The TLS transport: asyncio Protocols, transport to transport, with flow control.

pen terminates TLS here (the plain path is `pentools.pen.relays.epoll`).
One `Downstream` per client connection and one `Upstream` per backend
connection.  Data is written straight from one transport to the other; when
a side's write buffer passes its high-water mark the other side stops
reading (``pause_reading``) until it drains, so a slow peer never makes pen
buffer without bound.  Client bytes that arrive while the backend connection
is still being made wait in a short list.  Selection, records and counters
are the sans-IO modules' (`pentools.pen.connection`); this one only moves bytes.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pentools.pen.connection import ClientConnection, client_of, dump
from pentools.pen.proxyproto import proxy_header
from pentools.pen.selection import Client, Server
from pentools.pen.state import State

#: Client bytes buffered while the backend connection is made, before pausing.
_PENDING_LIMIT = 256 * 1024


def _fd(transport: asyncio.BaseTransport) -> int:
    try:
        return int(transport.get_extra_info("socket").fileno())
    except (AttributeError, OSError):
        return -1


def _buffered(transport: asyncio.BaseTransport) -> int:
    try:
        return int(transport.get_write_buffer_size())  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return 0


def _nagle_on(transport: asyncio.BaseTransport) -> None:
    """penctl ``no tcp_nodelay``: undo asyncio's TCP_NODELAY on this connection."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)


class Upstream(asyncio.Protocol):
    """pen's connection to a backend: relays its bytes to the client."""

    __slots__ = ("down", "transport")

    def __init__(self, down: Downstream) -> None:
        self.down = down
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        down = self.down
        down.active = True
        dump(down.state, down, False, data)
        down.transport.write(data)
        size = len(data)
        down.server.received += size
        down.client_entry.received += size

    def eof_received(self) -> bool:
        return self.down.upstream_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.down.upstream_lost()

    def pause_writing(self) -> None:
        self.down.pause_client()

    def resume_writing(self) -> None:
        self.down.resume_client()


class Downstream(ClientConnection, asyncio.Protocol):
    """A client's connection over asyncio transports (TLS): chooses, connects, relays."""

    __slots__ = (
        "client_done",
        "closed",
        "connect_task",
        "loop",
        "paused",
        "pending",
        "pending_size",
        "server_done",
        "transport",
        "up",
    )

    def __init__(self, state: State, loop: asyncio.AbstractEventLoop) -> None:
        self.state = state
        self.loop = loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.up: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.head = b""  # an incomplete request head held back for -H
        self.client = ""
        self.server: Server = None  # type: ignore[assignment]
        self.client_entry: Client = None  # type: ignore[assignment]
        self.server_index = -1
        self.tried: list[int] = []
        self.first_chunk = True
        self.http = False
        self.client_done = False
        self.server_done = False
        self.closed = False
        self.paused = False
        self.connect_task: asyncio.Task[Any] | None = None

    # -- the client side ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        state = self.state
        settings = state.settings
        if len(state.table) >= settings.conn_max:
            state.counters.refused += 1
            transport.abort()  # type: ignore[attr-defined]
            self.closed = True
            return
        peer = transport.get_extra_info("peername")
        self.client = client_of(peer)
        if state.over_client_cap(self.client):
            transport.abort()  # type: ignore[attr-defined]
            self.closed = True
            return
        state.table.add(self, self.loop.time())
        if not settings.tcp_nodelay:
            _nagle_on(transport)
        # asyncio hands the connection over only after the TLS handshake:
        # the earliest point this path can check the client's address
        access_checked = state.selector.access.active and isinstance(peer, tuple)
        if access_checked and not state.admits(self.client):
            self.close()
            return
        self.connect()

    def connect(self) -> None:
        """Choose a server (not one that failed already) and connect to it."""
        state = self.state
        loop = self.loop
        index = state.selector.choose(self.client, loop.time(), self.tried)
        if index is None:
            state.counters.no_server += 1
            self.close()
            return
        self.server_index = index
        self.server = state.selector.server(index)
        self.client_entry = state.selector.clients.get(self.client) or state.orphan_client
        source = state.settings.source_for(self.server.address)
        task = loop.create_task(
            loop.create_connection(
                lambda: Upstream(self),
                self.server.address,
                self.server.port,
                local_addr=(source, 0) if source else None,
            )
        )
        timer = loop.call_later(state.settings.timeout, task.cancel)
        task.add_done_callback(lambda done: self.connected(done, timer))
        self.connect_task = task

    def connected(self, task: asyncio.Task[Any], timer: asyncio.TimerHandle) -> None:
        """The backend connection is made, refused, timed out or cancelled by `close`."""
        timer.cancel()
        self.connect_task = None
        failed = task.cancelled() or task.exception() is not None
        transport: asyncio.Transport | None = None if failed else task.result()[0]
        state = self.state
        settings = state.settings
        if transport is None:
            if self.closed:
                state.selector.release(self.server_index)
                return
            state.selector.connect_failed(self.server_index, self.loop.time())
            state.debug(f"connect to server {self.server_index} failed: blacklisted")
            self.tried.append(self.server_index)
            self.server_index = -1
            self.connect()
            return
        if self.closed:
            transport.abort()
            state.selector.release(self.server_index)
            return
        self.up = transport
        if not settings.tcp_nodelay:
            _nagle_on(transport)
        if settings.proxy_protocol:
            client = self.transport
            transport.write(
                proxy_header(
                    settings.proxy_protocol,
                    client.get_extra_info("peername"),
                    client.get_extra_info("sockname"),
                )
            )
        pending, self.pending = self.pending, []
        self.pending_size = 0
        for chunk in pending:
            self.forward(chunk)
        if self.paused:
            self.resume_client()
        if self.client_done:
            self.client_eof_to_server()

    def data_received(self, data: bytes) -> None:
        self.active = True
        up = self.up
        if up is None:
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > _PENDING_LIMIT:
                self.pause_client()
            return
        if self.first_chunk or not self.state.plain or self.head:
            self.forward(data)
            return
        # the fast path: nothing to record or rewrite, just relay and count
        up.write(data)
        size = len(data)
        self.server.sent += size
        self.client_entry.sent += size

    def send_up(self, data: bytes) -> None:
        self.up.write(data)  # type: ignore[union-attr]

    def upstream_port(self) -> int | None:
        sockname = self.up.get_extra_info("sockname")  # type: ignore[union-attr]
        return sockname[1] if isinstance(sockname, tuple) else None

    def status(self) -> tuple[int, int, int, int]:
        up = self.up
        return (
            _fd(self.transport),
            _fd(up) if up else -1,
            _buffered(self.transport),
            _buffered(up) if up else 0,
        )

    def connecting_now(self) -> bool:
        return self.connect_task is not None

    def closed_sides(self) -> tuple[bool, bool]:
        return self.server_done, self.client_done

    def eof_received(self) -> bool:
        self.client_done = True
        if self.state.settings.fastclose in ("down", "both"):
            self.close()  # tcp_fastclose: the client's close ends it all
            return False
        if self.up is not None:
            if self.head:  # the client gave up in the middle of a head: send what it sent
                self.up.write(self.head)
                self.head = b""
            self.client_eof_to_server()
        return True  # keep sending the backend's reply to the half-closed client

    def client_eof_to_server(self) -> None:
        up = self.up
        if up is None:
            return
        if self.server_done or not up.can_write_eof():
            self.close()
        else:
            up.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client_done = True
        self.close()

    def pause_writing(self) -> None:
        if self.up is not None:
            self.up.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None and not self.closed:
            self.up.resume_reading()

    # -- called by Upstream ------------------------------------------------------

    def upstream_eof(self) -> bool:
        self.server_done = True
        fastclose = self.state.settings.fastclose in ("up", "both")
        if fastclose or self.client_done or not self.transport.can_write_eof():
            self.close()
            return False
        self.transport.write_eof()
        return True

    def upstream_lost(self) -> None:
        self.server_done = True
        self.close()

    def pause_client(self) -> None:
        if not self.paused and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume_client(self) -> None:
        if self.paused and not self.closed and self.pending_size <= _PENDING_LIMIT:
            self.paused = False
            self.transport.resume_reading()

    # -- the end -------------------------------------------------------------------

    def close(self) -> None:
        """Close both sides (buffered data is still delivered) and give back the slot."""
        if self.closed:
            return
        self.closed = True
        state = self.state
        if self.connect_task is not None:
            self.connect_task.cancel()  # connected() gives the server slot back
        elif self.server_index >= 0:
            state.selector.release(self.server_index)
        self.transport.close()
        if self.up is not None:
            self.up.close()
        state.table.remove(self)
