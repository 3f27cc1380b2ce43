"""``--workers``: what a worker and the supervisor say to each other, and how.

Each worker has a Unix stream socket to the supervisor (`pentools.pen.workers`),
on which both send messages: JSON objects, each after its length as
4 bytes.  The supervisor asks (``command``: a penctl line; ``snapshot``:
the worker's counters and tables) and the worker replies with the same
``id``; a worker tells (``ready``, ``error``, ``blacklist``) and the
supervisor passes blacklistings on to the others.

A worker's `snapshot` is what varies as it serves: counters, the clients
it tracks, its connections.  The supervisor keeps a State of its own, with
the settings every penctl command has set, and `merge` adds the workers'
snapshots into it, so that ``servers``, ``status`` and the metrics answer
for the whole pen with the code that answers for one worker.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from pentools.core.errors import PentoolsError
from pentools.pen.control import CommandError, Controller
from pentools.pen.selection import Client, Server
from pentools.pen.state import ConnectionTable, Counters, State, WorkerRow

log = logging.getLogger("pentools.pen")

Message = dict[str, Any]

_LENGTH = struct.Struct("!I")
#: Seconds a blocked peer may hold up a send before it counts as broken.
SEND_TIMEOUT = 5.0


def send(sock: socket.socket, message: Message) -> None:
    """Send one message whole (raises OSError if the peer is gone or stuck)."""
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    sock.sendall(_LENGTH.pack(len(data)) + data)


class Decoder:
    """Messages from a byte stream, as they complete."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Message]:
        buffer = self._buffer + data
        messages = []
        while len(buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer)
            end = _LENGTH.size + size
            if len(buffer) < end:
                break
            messages.append(json.loads(buffer[_LENGTH.size : end]))
            buffer = buffer[end:]
        self._buffer = buffer
        return messages


def link_pair() -> tuple[socket.socket, socket.socket]:
    """The supervisor's and the worker's ends of a new link."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for end in (ours, theirs):
        end.settimeout(SEND_TIMEOUT)
    return ours, theirs


def _servers(state: State) -> list[Server]:
    selector = state.selector
    emergency = [] if selector.emergency is None else [selector.emergency]
    return [*selector.servers, *emergency]


# -- snapshots -------------------------------------------------------------------------

#: The counters of a server that add up over the workers.
_SERVER_SUMS = ("conn", "sent", "received", "connections", "failures")


def snapshot(state: State) -> Message:
    """What one worker knows that the others do not (times as ages, in seconds)."""
    now = state.clock()
    written, dropped = state.records()
    return {
        "pid": os.getpid(),
        "servers": [
            [*(getattr(s, name) for name in _SERVER_SUMS), max(0.0, s.blacklisted_until - now)]
            for s in _servers(state)
        ],
        "clients": [
            [c.address, c.server, now - c.last_seen, c.connects, c.sent, c.received]
            for c in state.selector.clients.values()
        ],
        "connections": [
            [c.client, c.server_index, number, *c.status(), c.connecting_now(), *c.closed_sides()]
            for number, c in sorted(state.connections.items())
        ],
        "counters": asdict(state.counters),
        "records": [written, dropped],
    }


@dataclass
class RemoteConnection:
    """A worker's connection as the supervisor's table shows it (`state.Connection`)."""

    client: str
    server_index: int
    #: The worker's number for it, and what closes it there (penctl ``close N``).
    local_number: int
    fds: tuple[int, int, int, int]
    connecting: bool
    sides: tuple[bool, bool]
    closer: Callable[[int], None]
    number: int = -1
    active: bool = False
    quiet_since: float = 0.0
    first_chunk: bool = False
    opened: float = 0.0

    def status(self) -> tuple[int, int, int, int]:
        return self.fds

    def connecting_now(self) -> bool:
        return self.connecting

    def closed_sides(self) -> tuple[bool, bool]:
        return self.sides

    def close(self) -> None:
        self.closer(self.local_number)


def merge(
    state: State,
    snapshots: list[Message | None],
    closer: Callable[[int, int], None],
    extra: Counters | None = None,
) -> None:
    """Make `state`'s counters and tables those of the workers' `snapshots` together.

    `closer(worker, number)` closes a worker's connection; `extra` are the
    supervisor's own counts (control connections it denied).  A worker
    that did not answer (None) counts for nothing.
    """
    now = state.clock()
    servers = _servers(state)
    for server in servers:
        for name in _SERVER_SUMS:
            setattr(server, name, 0)
        server.blacklisted_until = 0.0
    totals = asdict(extra) if extra is not None else asdict(Counters())
    clients: dict[str, Client] = {}
    table = ConnectionTable()
    written = dropped = 0
    rows = []
    for worker, shot in enumerate(snapshots):
        if shot is None:
            continue
        rows.append(WorkerRow(worker, shot["pid"], len(shot["connections"]), len(shot["clients"])))
        for server, values in zip(servers, shot["servers"], strict=False):
            for name, value in zip(_SERVER_SUMS, values, strict=False):
                setattr(server, name, getattr(server, name) + value)
            server.blacklisted_until = max(server.blacklisted_until, now + values[-1])
        for address, index, age, connects, sent, received in shot["clients"]:
            entry = clients.get(address)
            if entry is None:
                clients[address] = Client(address, index, now - age, connects, sent, received)
            else:  # steering sends a client to one worker; a restart may leave two entries
                entry.connects += connects
                entry.sent += sent
                entry.received += received
                if now - age > entry.last_seen:
                    entry.server, entry.last_seen = index, now - age
        for client, index, number, *rest in shot["connections"]:
            fds = (rest[0], rest[1], rest[2], rest[3])
            connection = RemoteConnection(
                client,
                index,
                number,
                fds,
                rest[4],
                (rest[5], rest[6]),
                functools.partial(closer, worker),
            )
            table.add(connection, now)
        for name, value in shot["counters"].items():
            totals[name] = totals.get(name, 0) + value
        written += shot["records"][0]
        dropped += shot["records"][1]
    selector = state.selector
    selector.clients.clear()
    for entry in sorted(clients.values(), key=lambda c: c.last_seen):
        selector.clients[entry.address] = entry
    state.table = table
    state.workers = rows
    names = {f.name for f in fields(Counters)}
    state.counters = Counters(**{k: v for k, v in totals.items() if k in names})
    state.counters.records_written += written
    state.counters.records_dropped += dropped


# -- the worker's end ------------------------------------------------------------------


class WorkerLink:
    """A worker's end: answers the supervisor, tells it and hears of blacklistings.

    A blacklisting is noticed on `tick` (a few times a second) by comparing
    each server's ``blacklisted_until`` with what was known; one heard of
    from the supervisor is taken as known, so it is not sent back.  The
    supervisor gone (end of stream) stops the worker, as TERM does.
    """

    def __init__(
        self,
        sock: socket.socket,
        state: State,
        controller: Controller,
        loop: asyncio.AbstractEventLoop,
        stop: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.state = state
        self.controller = controller
        self.stop = stop
        self._decoder = Decoder()
        self._known = [s.blacklisted_until for s in _servers(state)]
        self._loop = loop
        loop.add_reader(sock.fileno(), self._readable)

    def say(self, message: Message) -> None:
        """Send to the supervisor; if it is gone, stop."""
        try:
            send(self.sock, message)
        except OSError:
            self.stop()

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.close()
            self.stop()
            return
        for message in self._decoder.feed(data):
            self._handle(message)

    def _handle(self, message: Message) -> None:
        op = message.get("op")
        if op == "blacklist":
            self._blacklisted(message["server"], message["seconds"])
            return
        reply: Message = {"op": "reply", "id": message.get("id")}
        if op == "snapshot":
            reply["snapshot"] = snapshot(self.state)
        elif op == "command":
            try:
                reply["reply"] = self.controller.execute(message["line"])
            except PentoolsError as exc:
                reply["error"] = str(exc)
            except TypeError:
                reply["error"] = f"wrong arguments for '{message['line'].split()[0]}'"
        else:
            reply["error"] = str(CommandError(f"unknown request {op!r}"))
        self.say(reply)

    def _blacklisted(self, index: int, seconds: float) -> None:
        servers = _servers(self.state)
        if not 0 <= index < len(servers):
            return
        server = servers[index]
        server.blacklisted_until = max(server.blacklisted_until, self.state.clock() + seconds)
        self._known[index] = server.blacklisted_until

    def tick(self) -> None:
        """Tell the supervisor of servers blacklisted here since the last tick."""
        now = self.state.clock()
        for index, server in enumerate(_servers(self.state)):
            until = server.blacklisted_until
            if until > self._known[index] and until > now:
                self.say({"op": "blacklist", "server": index, "seconds": until - now})
            self._known[index] = until

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
