"""The running balancer's state: what penctl may read and change.

The frozen `PenConfig` says how pen was started; `Balancer` holds what can
change while it runs (policy switches, limits, the log, the server table),
the live connections and the counters.  The control port, the status page
and the proxy all work on this one object.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import sys
import time
from typing import TYPE_CHECKING

from pentools.core.addresses import resolve_host
from pentools.pen.config import DEFAULT_PENDING_MAX, PenConfig
from pentools.pen.recordlog import FileSink, UdpSink, open_sink
from pentools.pen.selection import Client, Selector

if TYPE_CHECKING:
    from pentools.pen.proxy import ClientConnection


def resolve_servers(config: PenConfig) -> dict[str, str]:
    """Every server host of the config, resolved once at start (like the original)."""
    hosts = [spec.host for spec in config.servers]
    if config.emergency is not None:
        hosts.append(config.emergency.host)
    return {host: resolve_host(host)[0] for host in hosts}


class Balancer:
    """Runtime state shared by the proxy, the control port and the status page."""

    def __init__(self, config: PenConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.selector = Selector.from_config(config, resolve_servers(config))
        self.conn_max = config.conn_max
        #: penctl ``pending_max``: server connections being made at most; at
        #: the limit the plain TCP path stops accepting clients until one is done.
        self.pending_max = DEFAULT_PENDING_MAX
        self.timeout = config.timeout
        self._http = config.http
        #: True while connections need no look at their bytes (no log, no -H,
        #: no dumps): the relay's short path.  Kept by the setters below.
        self.plain = True
        self.xff_replace = config.xff_replace
        self.proxy_protocol = config.proxy_protocol
        self.log_upstream_port = config.log_upstream_port
        self._debug_level = config.debug
        self.webstats = config.webstats
        self.log_target: str | None = None
        self.sink: FileSink | UdpSink | None = None
        #: The open connections by number: like the original's table slots,
        #: a new connection takes the lowest free number (penctl ``connection N``).
        self.connections: dict[int, ClientConnection] = {}
        self._free_numbers: list[int] = []
        #: penctl ``idle_timeout``: close connections quiet this long (0: never).
        self.idle_timeout = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        #: penctl ``tcp_fastclose``: which side's close ends the whole connection.
        self.fastclose = "off"
        #: penctl ``tcp_nodelay``: on by default (the original leaves Nagle on,
        #: which costs bulk transfers through it dearly).
        self.tcp_nodelay = True
        #: penctl ``source IP``: the local address of connections to the servers.
        self.source: str | None = None
        self.ascii_dumps = config.ascii_dumps
        #: Counters for connections whose client fell out of the table mid-way.
        self.orphan_client = Client("", -1, 0.0)
        self.refused = 0
        self.no_server = 0
        #: Clients closed at once because ``client_acl``'s list denies them,
        #: and control connections refused by ``control_acl``'s.
        self.acl_denied = 0
        self.control_denied = 0
        self.started = time.time()
        self.listen_description = str(config.listen)
        self.control_description = str(config.control) if config.control else ""
        self._drained: asyncio.Event | None = None
        if config.log is not None:
            target = config.log.path or str(config.log.address)
            self.set_log(target)
        self._update_plain()

    # -- what the relay must do with the bytes --------------------------------------

    @property
    def http(self) -> bool:
        return self._http

    @http.setter
    def http(self, value: bool) -> None:
        self._http = value
        self._update_plain()

    @property
    def debug_level(self) -> int:
        return self._debug_level

    @debug_level.setter
    def debug_level(self, value: int) -> None:
        self._debug_level = value
        self._update_plain()

    def _update_plain(self) -> None:
        self.plain = self.sink is None and not self._http and self._debug_level < 2

    def admits(self, client: str) -> bool:
        """The client access list's verdict at accept time; a denial is counted."""
        if self.selector.access.permits_client(client):
            return True
        self.acl_denied += 1
        self.debug(f"client {client} denied by access list {self.selector.access.client}")
        return False

    def source_for(self, server_address: str) -> str | None:
        """The ``source`` address for a connection to `server_address`, if one applies.

        An IPv4 source cannot reach an IPv6 server (and the other way round):
        those connections go out from the address the system picks.
        """
        source = self.source
        if source is None or (":" in source) != (":" in server_address):
            return None
        return source

    # -- the log -------------------------------------------------------------------

    def set_log(self, target: str | None) -> None:
        """penctl ``log FILE`` / ``no log``; raises ConfigError if it cannot be opened."""
        new = open_sink(target, self.loop) if target else None
        if self.sink is not None:
            self.sink.close()
        self.sink = new
        self.log_target = target
        self._update_plain()

    def reopen_log(self) -> None:
        if self.sink is not None:
            self.sink.reopen()

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None
            self._update_plain()
        self.set_idle_timeout(0)

    # -- diagnostics -----------------------------------------------------------------

    def debug(self, message: str, level: int = 1) -> None:
        if self._debug_level >= level:
            print(f"pen: {message}", file=sys.stderr, flush=True)

    def dump(self, connection: ClientConnection, to_server: bool, data: bytes) -> None:
        """``-dd``: the bytes relayed, in hex, or in ASCII with ``-a`` (``ascii``)."""
        if self._debug_level < 2:
            return
        arrow = "->" if to_server else "<-"
        head = f"connection {connection.number} {connection.client} {arrow} server "
        head += f"{connection.server_index}: {len(data)} bytes"
        if self.ascii_dumps:  # printable ASCII as is, the rest escaped: one line, always
            body = data.decode("ascii", "backslashreplace")
            body = "".join(c if " " <= c <= "~" else repr(c)[1:-1] for c in body)
        else:
            body = data.hex(" ")
        print(f"pen: {head}\n{body}", file=sys.stderr, flush=True)

    def pid(self) -> int:
        return os.getpid()

    # -- the connection table ---------------------------------------------------------

    def add_connection(self, connection: ClientConnection) -> None:
        free = self._free_numbers
        number = heapq.heappop(free) if free else len(self.connections)
        connection.number = number
        connection.active = False
        connection.quiet_since = self.loop.time()
        self.connections[number] = connection

    def remove_connection(self, connection: ClientConnection) -> None:
        if self.connections.pop(connection.number, None) is connection:
            heapq.heappush(self._free_numbers, connection.number)
        if self._drained is not None and not self.connections:
            self._drained.set()

    def set_idle_timeout(self, seconds: int) -> None:
        """penctl ``idle_timeout N``: from now on close connections quiet for N s."""
        self.idle_timeout = seconds
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if seconds > 0:
            self._idle_timer = self.loop.call_later(1.0, self._close_idle)

    def _close_idle(self) -> None:
        """Once a second: close connections with no byte read for `idle_timeout` s.

        Reads only set a flag (`active`), so the relay pays nothing for this.
        """
        now = self.loop.time()
        limit = self.idle_timeout
        for connection in list(self.connections.values()):
            if connection.active:
                connection.active = False
                connection.quiet_since = now
            elif now - connection.quiet_since >= limit:
                self.debug(f"connection {connection.number} idle for {limit} s: closed")
                connection.close()
        self._idle_timer = self.loop.call_later(1.0, self._close_idle)

    # -- draining at TERM ------------------------------------------------------------

    async def drain(self, seconds: float) -> None:
        """Wait up to `seconds` for open connections to finish, then cut the rest."""
        if self.connections:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), seconds)
        for connection in list(self.connections.values()):
            connection.close()
