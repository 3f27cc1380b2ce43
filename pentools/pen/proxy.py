"""The TCP relay: asyncio Protocols, transport to transport, with flow control.

One `Downstream` per client connection and one `Upstream` per backend
connection.  Data is written straight from one transport to the other; when
a side's write buffer passes its high-water mark the other side stops
reading (``pause_reading``) until it drains, so a slow peer never makes pen
buffer without bound.  Client bytes that arrive while the backend connection
is still being made wait in a short list.  Selection, records and counters
are the sans-IO classes'; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import TYPE_CHECKING, Any

from pentools.core.addresses import normalize_ip
from pentools.core.records import BalancerRecord, request_key
from pentools.pen.httpheaders import add_forwarded_for, header_block_complete
from pentools.pen.proxyproto import proxy_header

if TYPE_CHECKING:
    from pentools.pen.balancer import Balancer
    from pentools.pen.selection import Client, Server

#: A chunk that starts like an HTTP request line begins a new request (keep-alive);
#: any other chunk after the first of a connection is a body or a continuation.
_REQUEST_START = re.compile(rb"[A-Z][A-Z_-]{1,19} (?:/|\*|[a-zA-Z][a-zA-Z0-9+.-]*://|[^ /]+:\d)")

#: Client bytes buffered while the backend connection is made, before pausing.
_PENDING_LIMIT = 256 * 1024
#: Largest request head that -H waits for before giving up on rewriting it.
_HEAD_LIMIT = 64 * 1024


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
        down.balancer.dump(down, False, data)
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


def client_of(peer: object) -> str:
    """The client's address as pen shows and tracks it, from a peer address
    (IPv4-mapped IPv6 made IPv4; a Unix socket's client is 0.0.0.0)."""
    if isinstance(peer, tuple):
        host: str = peer[0]
        # what an IPv4 socket reports is canonical already: skip the parse
        return host if "." in host and ":" not in host else normalize_ip(host) or host
    return "0.0.0.0"


class ClientConnection:
    """What every relay does with client bytes: record request starts, rewrite for -H.

    `Downstream` (asyncio transports, used with TLS) and
    `pentools.pen.relay.RawConnection` (raw sockets, the plain path) both
    relay through `forward`; they provide `send_up` and `upstream_port`.
    """

    __slots__ = (
        "active",
        "balancer",
        "client",
        "client_entry",
        "first_chunk",
        "head",
        "http",
        "number",
        "quiet_since",
        "server",
        "server_index",
        "tried",
    )

    balancer: Balancer
    client: str
    client_entry: Client
    first_chunk: bool
    head: bytes
    http: bool
    server: Server
    server_index: int
    tried: list[int]
    #: Set by `Balancer.add_connection`: the connection's number, whether a
    #: byte was read since the last idle check, and since when it is quiet.
    number: int
    active: bool
    quiet_since: float

    def send_up(self, data: bytes) -> None:
        raise NotImplementedError

    def upstream_port(self) -> int | None:
        raise NotImplementedError

    def status(self) -> tuple[int, int, int, int]:
        """Client fd, backend fd, bytes waiting for the client and for the backend."""
        raise NotImplementedError

    def close(self) -> None:
        """Close both sides and give back the server slot."""
        raise NotImplementedError

    def connecting_now(self) -> bool:
        """Whether the backend connection is still being made."""
        raise NotImplementedError

    def closed_sides(self) -> tuple[bool, bool]:
        """Whether the server and the client have closed their sides."""
        raise NotImplementedError

    def forward(self, data: bytes) -> None:
        """Send client bytes upstream, recording (and for -H rewriting) request starts."""
        balancer = self.balancer
        if self.head:
            data = self.head + data
            self.head = b""
            starts_request = True
        elif self.first_chunk:
            self.first_chunk = False
            self.http = _REQUEST_START.match(data) is not None
            starts_request = True
        else:
            starts_request = self.http and _REQUEST_START.match(data) is not None
        if starts_request:
            if balancer.http and self.http:
                if not header_block_complete(data) and len(data) < _HEAD_LIMIT:
                    self.head = data  # wait for the rest of the head before rewriting it
                    return
                data = add_forwarded_for(data, self.client, replace=balancer.xff_replace)
            if balancer.sink is not None:
                self.record(data)
        size = len(data)
        self.server.sent += size
        self.client_entry.sent += size
        balancer.dump(self, True, data)
        self.send_up(data)

    def record(self, data: bytes) -> None:
        balancer = self.balancer
        record = BalancerRecord(self.client, self.server.address, request_key(data), time.time())
        if balancer.log_upstream_port:
            record.upstream_port = self.upstream_port()
        balancer.sink.write(record)  # type: ignore[union-attr]


class Downstream(ClientConnection, asyncio.Protocol):
    """A client's connection over asyncio transports (TLS): chooses, connects, relays."""

    __slots__ = (
        "client_done",
        "closed",
        "connect_task",
        "paused",
        "pending",
        "pending_size",
        "server_done",
        "transport",
        "up",
    )

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
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
        balancer = self.balancer
        if len(balancer.connections) >= balancer.conn_max:
            balancer.refused += 1
            transport.abort()  # type: ignore[attr-defined]
            self.closed = True
            return
        balancer.add_connection(self)
        if not balancer.tcp_nodelay:
            _nagle_on(transport)
        peer = transport.get_extra_info("peername")
        self.client = client_of(peer)
        # asyncio hands the connection over only after the TLS handshake:
        # the earliest point this path can check the client's address
        access_checked = balancer.selector.access.active and isinstance(peer, tuple)
        if access_checked and not balancer.admits(self.client):
            self.close()
            return
        self.connect()

    def connect(self) -> None:
        """Choose a server (not one that failed already) and connect to it."""
        balancer = self.balancer
        loop = balancer.loop
        index = balancer.selector.choose(self.client, loop.time(), self.tried)
        if index is None:
            balancer.no_server += 1
            self.close()
            return
        self.server_index = index
        self.server = balancer.selector.server(index)
        self.client_entry = balancer.selector.clients.get(self.client) or balancer.orphan_client
        source = balancer.source_for(self.server.address)
        task = loop.create_task(
            loop.create_connection(
                lambda: Upstream(self),
                self.server.address,
                self.server.port,
                local_addr=(source, 0) if source else None,
            )
        )
        timer = loop.call_later(balancer.timeout, task.cancel)
        task.add_done_callback(lambda done: self.connected(done, timer))
        self.connect_task = task

    def connected(self, task: asyncio.Task[Any], timer: asyncio.TimerHandle) -> None:
        """The backend connection is made, refused, timed out or cancelled by `close`."""
        timer.cancel()
        self.connect_task = None
        failed = task.cancelled() or task.exception() is not None
        transport: asyncio.Transport | None = None if failed else task.result()[0]
        balancer = self.balancer
        if transport is None:
            if self.closed:
                balancer.selector.release(self.server_index)
                return
            balancer.selector.connect_failed(self.server_index, balancer.loop.time())
            balancer.debug(f"connect to server {self.server_index} failed: blacklisted")
            self.tried.append(self.server_index)
            self.server_index = -1
            self.connect()
            return
        if self.closed:
            transport.abort()
            balancer.selector.release(self.server_index)
            return
        self.up = transport
        if not balancer.tcp_nodelay:
            _nagle_on(transport)
        if balancer.proxy_protocol:
            client = self.transport
            transport.write(
                proxy_header(
                    balancer.proxy_protocol,
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
        balancer = self.balancer
        if self.first_chunk or not balancer.plain or self.head:
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
        if self.balancer.fastclose in ("down", "both"):
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
        fastclose = self.balancer.fastclose in ("up", "both")
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
        balancer = self.balancer
        if self.connect_task is not None:
            self.connect_task.cancel()  # connected() gives the server slot back
        elif self.server_index >= 0:
            balancer.selector.release(self.server_index)
        self.transport.close()
        if self.up is not None:
            self.up.close()
        balancer.remove_connection(self)
