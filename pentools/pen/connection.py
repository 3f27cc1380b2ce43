"""What a client connection does with its bytes, whatever carries them (sans-IO).

Records request starts, adds X-Forwarded-For for ``-H``, dumps bytes for
``-dd``; the transports (`pentools.pen.relays`) move the bytes.  Each
TCP transport's connection is a `ClientConnection` that provides the I/O
(`send_up`, `upstream_port`, `close` and what the control port asks);
UDP records its sessions' first datagrams with `record_request`.
"""

from __future__ import annotations

import logging
import re
import time

from pentools.core.addresses import normalize_ip
from pentools.core.records import BalancerRecord, request_key
from pentools.pen.httpheaders import add_forwarded_for, header_block_complete
from pentools.pen.selection import Client, Server
from pentools.pen.state import Sink, State

log = logging.getLogger("pentools.pen")

#: A chunk that starts like an HTTP request line begins a new request (keep-alive);
#: any other chunk after the first of a connection is a body or a continuation.
_REQUEST_START = re.compile(rb"[A-Z][A-Z_-]{1,19} (?:/|\*|[a-zA-Z][a-zA-Z0-9+.-]*://|[^ /]+:\d)")

#: Largest request head that -H waits for before giving up on rewriting it.
_HEAD_LIMIT = 64 * 1024


def client_of(peer: object) -> str:
    """The client's address as pen shows and tracks it, from a peer address
    (IPv4-mapped IPv6 made IPv4; a Unix socket's client is 0.0.0.0)."""
    if isinstance(peer, tuple):
        host: str = peer[0]
        # what an IPv4 socket reports is canonical already: skip the parse
        return host if "." in host and ":" not in host else normalize_ip(host) or host
    return "0.0.0.0"


def record_request(
    sink: Sink, client: str, server: Server, data: bytes, upstream_port: int | None = None
) -> None:
    """Write the record of a request that starts with `data`."""
    record = BalancerRecord(client, server.address, request_key(data), time.time())
    if upstream_port is not None:
        record.upstream_port = upstream_port
    sink.write(record)


def dump(state: State, connection: ClientConnection, to_server: bool, data: bytes) -> None:
    """``-dd``: the bytes relayed, in hex, or in ASCII with ``-a`` (``ascii``)."""
    settings = state.settings
    if settings.debug < 2:
        return
    arrow = "->" if to_server else "<-"
    head = f"connection {connection.number} {connection.client} {arrow} server "
    head += f"{connection.server_index}: {len(data)} bytes"
    if settings.ascii_dumps:  # printable ASCII as is, the rest escaped: one line, always
        body = data.decode("ascii", "backslashreplace")
        body = "".join(c if " " <= c <= "~" else repr(c)[1:-1] for c in body)
    else:
        body = data.hex(" ")
    log.info("%s\n%s", head, body)


class ClientConnection:
    """What every TCP transport does with client bytes: record request starts, rewrite for -H.

    `pentools.pen.relays.epoll.RawConnection` (raw sockets, the plain path)
    and `pentools.pen.relays.tls.Downstream` (asyncio transports, used with
    TLS) both relay through `forward`; they provide `send_up` and
    `upstream_port`, and what the control port asks of a connection.
    """

    __slots__ = (
        "active",
        "client",
        "client_entry",
        "first_chunk",
        "head",
        "http",
        "number",
        "opened",
        "quiet_since",
        "server",
        "server_index",
        "state",
        "tried",
    )

    state: State
    client: str
    client_entry: Client
    first_chunk: bool
    head: bytes
    http: bool
    server: Server
    server_index: int
    tried: list[int]
    #: Set by `ConnectionTable.add`: the connection's number, whether a
    #: byte was read since the last idle check, since when it is quiet,
    #: and when it was opened.
    number: int
    active: bool
    quiet_since: float
    opened: float

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
        state = self.state
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
            settings = state.settings
            if settings.http and self.http:
                if not header_block_complete(data) and len(data) < _HEAD_LIMIT:
                    self.head = data  # wait for the rest of the head before rewriting it
                    return
                data = add_forwarded_for(data, self.client, replace=settings.xff_replace)
            if state.sink is not None:
                port = self.upstream_port() if settings.log_upstream_port else None
                record_request(state.sink, self.client, self.server, data, port)
        size = len(data)
        self.server.sent += size
        self.client_entry.sent += size
        dump(state, self, True, data)
        self.send_up(data)
