"""The running balancer's state: what penctl may read and change.

The frozen `PenConfig` says how pen was started; `Balancer` holds what can
change while it runs (policy switches, limits, the log, the server table),
the live connections and the counters.  The control port, the status page
and the proxy all work on this one object.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING

from pentools.core.addresses import resolve_host
from pentools.pen.config import PenConfig
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
        self.timeout = config.timeout
        self.http = config.http
        self.xff_replace = config.xff_replace
        self.proxy_protocol = config.proxy_protocol
        self.log_upstream_port = config.log_upstream_port
        self.debug_level = config.debug
        self.webstats = config.webstats
        self.log_target: str | None = None
        self.sink: FileSink | UdpSink | None = None
        self.connections: set[ClientConnection] = set()
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

    def admits(self, client: str) -> bool:
        """The client access list's verdict at accept time; a denial is counted."""
        if self.selector.access.permits_client(client):
            return True
        self.acl_denied += 1
        self.debug(f"client {client} denied by access list {self.selector.access.client}")
        return False

    # -- the log -------------------------------------------------------------------

    def set_log(self, target: str | None) -> None:
        """penctl ``log FILE`` / ``no log``; raises ConfigError if it cannot be opened."""
        new = open_sink(target, self.loop) if target else None
        if self.sink is not None:
            self.sink.close()
        self.sink = new
        self.log_target = target

    def reopen_log(self) -> None:
        if self.sink is not None:
            self.sink.reopen()

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    # -- diagnostics -----------------------------------------------------------------

    def debug(self, message: str, level: int = 1) -> None:
        if self.debug_level >= level:
            print(f"pen: {message}", file=sys.stderr, flush=True)

    def pid(self) -> int:
        return os.getpid()

    # -- draining at TERM ------------------------------------------------------------

    def connection_closed(self) -> None:
        if self._drained is not None and not self.connections:
            self._drained.set()

    async def drain(self, seconds: float) -> None:
        """Wait up to `seconds` for open connections to finish, then cut the rest."""
        if self.connections:
            self._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), seconds)
        for connection in list(self.connections):
            connection.close()
