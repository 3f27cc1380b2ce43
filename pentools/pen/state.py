"""pen's running state, in plain parts: settings, counters, the connection table.

The frozen `PenConfig` says how pen was started; `State` holds what the
control port may read and change while it runs.  It does no I/O of its
own: the clock and the opening of the record log are handed in, and the
process (`pentools.pen.server`) ticks it a few times a second.  Transports,
the control port and the status page all work on this one object.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pentools.core.records import BalancerRecord
from pentools.pen.config import DEFAULT_PENDING_MAX, LogTarget, PenConfig
from pentools.pen.selection import Client, Selector

log = logging.getLogger("pentools.pen")


class Sink(Protocol):
    """Where records go (`pentools.pen.recordlog`): a file or penlogd."""

    #: Records written, and dropped (penlogd's datagrams that could not be sent).
    written: int
    dropped: int

    def write(self, record: BalancerRecord) -> None: ...
    def reopen(self) -> None: ...
    def close(self) -> None: ...


class Connection(Protocol):
    """What the table, the idle check and the control port see of a client connection."""

    number: int
    client: str
    server_index: int
    #: Whether a byte was read since the last idle check, and since when it is quiet.
    active: bool
    quiet_since: float
    #: Whether the client has sent no byte yet, and when the connection was opened
    #: (`first_byte_timeout` closes such connections at the cap).
    first_chunk: bool
    opened: float

    def status(self) -> tuple[int, int, int, int]: ...
    def connecting_now(self) -> bool: ...
    def closed_sides(self) -> tuple[bool, bool]: ...
    def close(self) -> None: ...


@dataclass
class Settings:
    """What penctl may change while pen runs (and ``write`` saves)."""

    conn_max: int
    timeout: float
    http: bool
    xff_replace: bool
    proxy_protocol: int
    log_upstream_port: bool
    debug: int
    ascii_dumps: bool
    webstats: str | None
    #: penctl ``pending_max``: server connections being made at most; at
    #: the limit the plain TCP path stops accepting clients until one is done.
    pending_max: int = DEFAULT_PENDING_MAX
    #: penctl ``idle_timeout``: close connections quiet this long (0: never).
    idle_timeout: int = 0
    #: penctl ``tcp_fastclose``: which side's close ends the whole connection.
    fastclose: str = "off"
    #: penctl ``tcp_nodelay``: on by default (the original leaves Nagle on,
    #: which costs bulk transfers through it dearly).
    tcp_nodelay: bool = True
    #: penctl ``source IP``: the local address of connections to the servers.
    source: str | None = None
    #: No lock-out: at the cap, clients wait in the listen queue (plain TCP);
    #: connections per client address at most (0: no cap); at the cap, close
    #: connections whose client sent nothing for this many seconds (0: never).
    queue_at_conn_max: bool = False
    conn_max_per_client: int = 0
    first_byte_timeout: int = 0

    @classmethod
    def from_config(cls, config: PenConfig) -> Settings:
        return cls(
            conn_max=config.conn_max,
            timeout=config.timeout,
            http=config.http,
            xff_replace=config.xff_replace,
            proxy_protocol=config.proxy_protocol,
            log_upstream_port=config.log_upstream_port,
            debug=config.debug,
            ascii_dumps=config.ascii_dumps,
            webstats=config.webstats,
            queue_at_conn_max=config.queue_at_conn_max,
            conn_max_per_client=config.conn_max_per_client,
            first_byte_timeout=config.first_byte_timeout,
        )

    def source_for(self, server_address: str) -> str | None:
        """The ``source`` address for a connection to `server_address`, if one applies.

        An IPv4 source cannot reach an IPv6 server (and the other way round):
        those connections go out from the address the system picks.
        """
        source = self.source
        if source is None or (":" in source) != (":" in server_address):
            return None
        return source


@dataclass
class Counters:
    """What happened to clients pen did not relay (the status page shows them)."""

    refused: int = 0
    no_server: int = 0
    #: Clients closed at once because ``client_acl``'s list denies them,
    #: and control connections refused by ``control_acl``'s.
    acl_denied: int = 0
    control_denied: int = 0
    #: Connections closed because they were quiet too long (``idle_timeout``),
    #: or had sent nothing at the cap (``first_byte_timeout``).
    idle_closed: int = 0
    first_byte_closed: int = 0
    #: Connections refused because their client had ``conn_max_per_client`` open.
    client_capped: int = 0
    #: Failed accepts (out of descriptors or memory, a client gone before accept).
    accept_errors: int = 0
    #: Records of the sinks closed since start (`State.records` adds the open one's).
    records_written: int = 0
    records_dropped: int = 0
    #: ``--workers``: workers that died and were started again.
    worker_restarts: int = 0


@dataclass
class WorkerRow:
    """One worker of ``--workers``, as the status page lists it."""

    index: int
    pid: int
    connections: int
    clients: int


class ConnectionTable:
    """The open connections by number: like the original's table slots, a new
    connection takes the lowest free number (penctl ``connection N``)."""

    def __init__(self) -> None:
        self.connections: dict[int, Connection] = {}
        #: Open connections per client address (``conn_max_per_client``).
        self.per_client: dict[str, int] = {}
        self._free_numbers: list[int] = []
        #: Called when the last connection leaves (TERM's drain waits for it).
        self.when_empty: Callable[[], None] | None = None
        #: Called when any connection leaves (a relay waiting at the cap).
        self.when_removed: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self.connections)

    def add(self, connection: Connection, now: float) -> None:
        free = self._free_numbers
        number = heapq.heappop(free) if free else len(self.connections)
        connection.number = number
        connection.active = False
        connection.quiet_since = connection.opened = now
        self.connections[number] = connection
        per_client = self.per_client
        per_client[connection.client] = per_client.get(connection.client, 0) + 1

    def remove(self, connection: Connection) -> None:
        if self.connections.pop(connection.number, None) is connection:
            heapq.heappush(self._free_numbers, connection.number)
            per_client = self.per_client
            left = per_client.pop(connection.client) - 1
            if left:
                per_client[connection.client] = left
        if self.when_empty is not None and not self.connections:
            self.when_empty()
        if self.when_removed is not None:
            self.when_removed()

    def quiet(self, now: float, limit: float) -> list[Connection]:
        """Connections with no byte read for `limit` s (0: none), checked once a second.

        Reads only set a flag (`active`), so the relay pays nothing for this.
        """
        found = []
        for connection in self.connections.values():
            if connection.active:
                connection.active = False
                connection.quiet_since = now
            elif limit and now - connection.quiet_since >= limit:
                found.append(connection)
        return found

    def silent(self, now: float, limit: float) -> list[Connection]:
        """Connections whose client has sent no byte in the `limit` s since they opened."""
        return [
            connection
            for connection in self.connections.values()
            if connection.first_chunk and now - connection.opened >= limit
        ]


class State:
    """Runtime state shared by the transports, the control port and the status page."""

    def __init__(
        self,
        config: PenConfig,
        selector: Selector,
        *,
        clock: Callable[[], float],
        open_log: Callable[[LogTarget], Sink],
        started: float = 0.0,
    ) -> None:
        self.config = config
        self.selector = selector
        self.settings = Settings.from_config(config)
        self.counters = Counters()
        self.table = ConnectionTable()
        self.clock = clock
        self._open_log = open_log
        self.started = started
        #: Counters for connections whose client fell out of the table mid-way.
        self.orphan_client = Client("", -1, 0.0)
        self.log_target: LogTarget | None = None
        self.sink: Sink | None = None
        self.listen_description = str(config.listen)
        self.control_description = str(config.control) if config.control else ""
        #: True while connections need no look at their bytes (no log, no -H,
        #: no dumps): the relay's short path.  Kept by `refresh`.
        self.plain = True
        #: ``--workers``: the supervisor's view of its workers (empty in a worker).
        self.workers: list[WorkerRow] = []
        if config.log is not None:
            self.set_log(config.log)
        self.refresh()

    @property
    def connections(self) -> dict[int, Connection]:
        return self.table.connections

    def refresh(self) -> None:
        """After a setting changed: whether connections may skip looking at bytes."""
        settings = self.settings
        self.plain = self.sink is None and not settings.http and settings.debug < 2

    def admits(self, client: str) -> bool:
        """The client access list's verdict at accept time; a denial is counted."""
        if self.selector.access.permits_client(client):
            return True
        self.counters.acl_denied += 1
        self.debug(f"client {client} denied by access list {self.selector.access.client}")
        return False

    def over_client_cap(self, client: str) -> bool:
        """Whether `client` has ``conn_max_per_client`` connections open; counted."""
        cap = self.settings.conn_max_per_client
        if cap and self.table.per_client.get(client, 0) >= cap:
            self.counters.client_capped += 1
            self.debug(f"client {client} has {cap} connections open: refused")
            return True
        return False

    def debug(self, message: str, level: int = 1) -> None:
        """``-d``: a diagnostic line, if the debug level (penctl ``debug``) asks for it."""
        if self.settings.debug >= level:
            log.info("%s", message)

    # -- the log -------------------------------------------------------------------

    def set_log(self, target: LogTarget | None) -> None:
        """penctl ``log FILE`` / ``no log``; raises ConfigError if it cannot be opened."""
        new = self._open_log(target) if target else None
        self._close_sink()
        self.sink = new
        self.log_target = target
        self.refresh()

    def reopen_log(self) -> None:
        if self.sink is not None:
            self.sink.reopen()

    def close(self) -> None:
        self._close_sink()
        self.refresh()

    def _close_sink(self) -> None:
        sink = self.sink
        if sink is not None:
            sink.close()
            self.counters.records_written += sink.written
            self.counters.records_dropped += sink.dropped
            self.sink = None

    def records(self) -> tuple[int, int]:
        """Records written and dropped since start, over every log pen had."""
        written, dropped = self.counters.records_written, self.counters.records_dropped
        if self.sink is not None:
            written += self.sink.written
            dropped += self.sink.dropped
        return written, dropped

    # -- a few times a second -------------------------------------------------------

    def tick(self, now: float) -> None:
        """Close connections quiet for ``idle_timeout`` seconds and, at the cap,
        those whose client sent nothing for ``first_byte_timeout`` seconds."""
        settings = self.settings
        limit = settings.idle_timeout
        for connection in self.table.quiet(now, limit):
            self.debug(f"connection {connection.number} idle for {limit} s: closed")
            self.counters.idle_closed += 1
            connection.close()
        limit = settings.first_byte_timeout
        if limit and len(self.table) >= settings.conn_max:
            silent = self.table.silent(now, limit)
            if silent:
                self.debug(f"at the cap: closing {len(silent)} connections silent for {limit} s")
                self.counters.first_byte_closed += len(silent)
            for connection in silent:
                connection.close()
