"""Server selection, sans-IO: the server table, client tracking, policies, limits.

Nothing here touches a socket or reads a clock: the proxy calls `choose`
with the client's address and the time, and reports back what happened
(`connect_failed`, `release`, byte counts).  That keeps every policy of the
original testable event by event:

* tracking: a client goes back to the server it used last (LRU table of
  ``clients_max`` slots, entries older than ``tracking`` seconds expire);
* first choice: hash of the client address (``-h``), fewest connections per
  weight (``-W``), best priority (prio), else round-robin;
* ``-s`` stubborn: if the first choice is unavailable, give up;
* failover: otherwise scan for the next available server after the most
  recently used one, then the emergency server (``-e``);
* a server that failed to connect is blacklisted for ``blacklist`` seconds;
* per-server soft limit ``max`` for new clients, ``hard`` for returning ones;
* a server whose access list (``server N acl A``) denies the client is
  skipped, as if unavailable (`pentools.pen.acl`).
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from pentools.pen.acl import AccessLists
from pentools.pen.config import PenConfig, ServerSpec


@dataclass(slots=True)
class Server:
    """One backend and its counters (what ``servers`` and the status page show)."""

    index: int
    host: str
    address: str
    port: int
    max_conn: int = 0
    hard: int = 0
    weight: int = 0
    prio: int = 0
    #: The access list that decides which clients may use this server.
    acl: int = 0
    conn: int = 0
    sent: int = 0
    received: int = 0
    blacklisted_until: float = 0.0
    #: Connections given to this server since start, and those that it did not accept.
    connections: int = 0
    failures: int = 0

    def is_blacklisted(self, now: float) -> bool:
        return now < self.blacklisted_until

    def has_room(self, limit: int) -> bool:
        return limit <= 0 or self.conn < limit


@dataclass(slots=True)
class Client:
    """One tracked client: its last server and its counters."""

    address: str
    server: int
    last_seen: float
    connects: int = 0
    sent: int = 0
    received: int = 0


@dataclass(slots=True)
class Policy:
    """The switches penctl may flip at run time (``mode`` reports them)."""

    hash: bool = False
    roundrobin: bool = False
    stubborn: bool = False
    weight: bool = False
    prio: bool = False
    blacklist: float = 30.0
    tracking: float = 0.0

    def mode(self) -> str:
        """The original's ``mode`` reply: one word per switch, ``no `` when off."""
        words = ("hash", "roundrobin", "stubborn", "weight", "prio")
        return " ".join(word if getattr(self, word) else f"no {word}" for word in words)


_NOTHING: frozenset[int] = frozenset()


def client_hash(address: str) -> int:
    """A stable hash of a client address (the same on every run and machine)."""
    return zlib.crc32(address.encode("ascii", "replace"))


@dataclass
class Selector:
    """The server table and the client table, with the selection policy."""

    servers: list[Server]
    emergency: Server | None = None
    policy: Policy = field(default_factory=Policy)
    clients_max: int = 2048
    clients: OrderedDict[str, Client] = field(default_factory=OrderedDict)
    access: AccessLists = field(default_factory=AccessLists)
    #: The most recently chosen server: round-robin and failover start after it.
    last_used: int = -1

    @classmethod
    def from_config(cls, config: PenConfig, resolve: dict[str, str]) -> Selector:
        """Build the tables; `resolve` maps each host of the config to its IP."""

        def make(index: int, spec: ServerSpec) -> Server:
            return Server(
                index,
                spec.host,
                resolve[spec.host],
                spec.port,
                spec.max_conn,
                spec.hard,
                spec.weight,
                spec.prio,
            )

        servers = [make(i, spec) for i, spec in enumerate(config.servers)]
        emergency = None
        if config.emergency is not None:
            emergency = make(len(servers), config.emergency)
        policy = Policy(
            hash=config.hash,
            roundrobin=config.roundrobin,
            stubborn=config.stubborn,
            weight=config.weight,
            prio=config.prio,
            blacklist=config.blacklist,
            tracking=config.tracking,
        )
        return cls(servers, emergency, policy, config.clients_max)

    # -- the table of servers -------------------------------------------------

    def server(self, index: int) -> Server:
        """Server `index`; the emergency server is the one after the last."""
        if index == len(self.servers) and self.emergency is not None:
            return self.emergency
        return self.servers[index]

    def available(self, server: Server, now: float, limit: int) -> bool:
        return not server.is_blacklisted(now) and server.has_room(limit)

    # -- choosing ---------------------------------------------------------------

    def choose(self, client: str, now: float, exclude: Iterable[int] = ()) -> int | None:
        """The server for a new connection from `client`, or None to close it.

        The chosen server's connection count is taken at once (so that limits
        hold under a burst); the caller gives it back with `release`.
        `exclude` lists servers that already failed for this connection.
        """
        excluded = set(exclude) if exclude else _NOTHING
        denied = self._denied(client) if self.access.active else _NOTHING
        if denied:
            excluded = excluded | denied
        choice = self._choose(client, now, excluded, denied)
        if choice is not None:
            server = self.server(choice)
            server.conn += 1
            server.connections += 1
            if choice < len(self.servers):
                self.last_used = choice
            self._remember(client, choice, now)
        return choice

    def _denied(self, client: str) -> AbstractSet[int]:
        """The servers whose access lists keep `client` out (the emergency server too)."""
        permits = self.access.permits
        denied = {s.index for s in self.servers if not permits(s.acl, client)}
        emergency = self.emergency
        if emergency is not None and not permits(emergency.acl, client):
            denied.add(emergency.index)
        return denied

    def _choose(
        self,
        client: str,
        now: float,
        excluded: AbstractSet[int],
        denied: AbstractSet[int] = _NOTHING,
    ) -> int | None:
        policy = self.policy
        if not policy.roundrobin:
            known = self._lookup(client, now)
            if known is not None and known in denied and policy.stubborn:
                return None  # its server now refuses it: like the C pen, no failover
            if known is not None and known not in excluded and known < len(self.servers):
                server = self.servers[known]
                if self.available(server, now, server.hard or server.max_conn):
                    return known
                if policy.stubborn:
                    return None
        first = self._first_choice(client, now)
        if first is not None and first not in excluded:
            server = self.servers[first]
            # available(), inlined: this is every new connection's path
            if now >= server.blacklisted_until and (
                server.max_conn <= 0 or server.conn < server.max_conn
            ):
                return first
        if policy.stubborn and first is not None:
            return None
        failover = self._next_available(now, excluded)
        if failover is not None:
            return failover
        emergency = self.emergency
        if (
            emergency is not None
            and emergency.index not in excluded
            and self.available(emergency, now, emergency.max_conn)
        ):
            return emergency.index
        return None

    def _first_choice(self, client: str, now: float) -> int | None:
        count = len(self.servers)
        if not count:
            return None
        policy = self.policy
        if policy.prio:
            return self._by_prio(now)
        if policy.weight:
            return self._by_weight(now)
        if policy.hash:
            return client_hash(client) % count
        return (self.last_used + 1) % count

    def _by_weight(self, now: float) -> int | None:
        """Fewest connections relative to weight; servers of weight 0 take no share."""
        best, best_load = None, 0.0
        for server in self.servers:
            if server.weight <= 0 or not self.available(server, now, server.max_conn):
                continue
            load = server.conn / server.weight
            if best is None or load < best_load:
                best, best_load = server.index, load
        return best

    def _by_prio(self, now: float) -> int | None:
        """The available server with the lowest prio value, fewest connections among equals."""
        candidates = [s for s in self.servers if self.available(s, now, s.max_conn)]
        if not candidates:
            return None
        return min(candidates, key=lambda s: (s.prio, s.conn, s.index)).index

    def _next_available(self, now: float, excluded: AbstractSet[int]) -> int | None:
        """Failover: the next available server after the most recently used one."""
        count = len(self.servers)
        for step in range(1, count + 1):
            index = (self.last_used + step) % count
            server = self.servers[index]
            if index not in excluded and self.available(server, now, server.max_conn):
                return index
        return None

    # -- feedback from the proxy ------------------------------------------------

    def connect_failed(self, index: int, now: float) -> None:
        """Server `index` did not accept a connection in time: blacklist it."""
        server = self.server(index)
        server.blacklisted_until = now + self.policy.blacklist
        server.conn = max(0, server.conn - 1)
        server.failures += 1

    def blacklist(self, index: int, seconds: float, now: float) -> None:
        """penctl ``server N blacklist T``."""
        self.server(index).blacklisted_until = now + seconds

    def release(self, index: int) -> None:
        """A connection to server `index` is over."""
        server = self.server(index)
        server.conn = max(0, server.conn - 1)

    # -- the client table ---------------------------------------------------------

    def _lookup(self, client: str, now: float) -> int | None:
        entry = self.clients.get(client)
        if entry is None:
            return None
        if self.policy.tracking and now - entry.last_seen > self.policy.tracking:
            del self.clients[client]
            return None
        return entry.server

    def _remember(self, client: str, server: int, now: float) -> None:
        clients = self.clients
        entry = clients.get(client)
        if entry is None:
            if self.clients_max <= 0:
                return
            while len(clients) >= self.clients_max:
                clients.popitem(last=False)
            entry = clients[client] = Client(client, server, now)
        else:
            clients.move_to_end(client)
            entry.server = server
            entry.last_seen = now
        entry.connects += 1

    def set_clients_max(self, count: int) -> None:
        """penctl ``clients_max N``: shrink by dropping the least recently used."""
        self.clients_max = count
        while len(self.clients) > max(count, 0):
            self.clients.popitem(last=False)

    def recent(self, now: float, seconds: float) -> list[Client]:
        """Clients seen in the last `seconds`, most recent first."""
        return [c for c in reversed(self.clients.values()) if now - c.last_seen <= seconds]
