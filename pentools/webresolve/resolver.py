"""Many PTR look-ups in flight on a few UDP sockets, with dnspython's message layer.

dnspython's stock resolvers spend most of their time per look-up in
bookkeeping (one socket, one task and one timer per query); here queries are
built with ``dns.message.make_query``, sent on a few non-blocking sockets
(each with a large receive buffer, since the answers to hundreds of queries
arrive in bursts), and answers are matched back by query id and question.
`InFlightControl` decides how many look-ups are in flight (a window that
adapts to what the server answers without dropping) and when an unanswered
attempt is retried (after a few measured round trips; the last attempt waits
the user's whole time-out). A retry goes to the next name server; earlier
attempts stay answerable. With ``confirm`` the name found is looked up forward (A or AAAA) and
kept only if it leads back to the same address.

`Resolver` is driven from outside: `submit` addresses, then `poll` for
finished answers. It never blocks longer than the time-out given to `poll`.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import itertools
import os
import random
import selectors
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver

from pentools.core.addresses import HostPort, address_family, normalize_ip, parse_host_port
from pentools.core.errors import AddressError
from pentools.core.sockets import size_receive_buffer
from pentools.webresolve import wire
from pentools.webresolve.flow import InFlightControl
from pentools.webresolve.hostnames import host_name_from_labels

#: Attempts lost in a burst of drops (`InFlightControl.timed_out`) that are
#: not counted against ``--retries``; bounded, so that an address that is
#: never answered is not asked forever while the server is busy.
MAX_ATTEMPTS_REFUNDED = 8

#: What the kernel is asked for per socket; it grants up to net.core.rmem_max
#: (4 MiB here) unless we are root, when SO_RCVBUFFORCE goes beyond.
RECEIVE_BUFFER = 8 * 1024 * 1024
MAX_DATAGRAM = 65535


class Status(enum.StrEnum):
    """How the look-up of one address ended."""

    RESOLVED = "resolved"  # a valid PTR name (not checked forward)
    CONFIRMED = "confirmed"  # a valid PTR name that resolves back to the address
    MISMATCH = "mismatch"  # a valid PTR name that does not resolve back
    NOT_FOUND = "not-found"  # NXDOMAIN or no PTR record
    INVALID = "invalid"  # a PTR answer that is not a safe host name
    TIMEOUT = "timeout"  # no answer after every retry
    FAILED = "failed"  # SERVFAIL, REFUSED or a malformed answer, after every retry


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of one look-up; `ttl` is how long it may be cached (seconds)."""

    status: Status
    name: str | None
    ttl: int

    def host_name(self, *, confirm: bool) -> str | None:
        """The name to write into the log, or None to keep the address."""
        if self.status is Status.CONFIRMED:
            return self.name
        if not confirm and self.status in (Status.RESOLVED, Status.MISMATCH):
            return self.name
        return None


@dataclass(frozen=True)
class ResolverConfig:
    nameservers: tuple[HostPort, ...]
    concurrency: int = 500
    timeout: float = 2.0
    retries: int = 2
    confirm: bool = False
    sockets_per_server: int = 2


def system_nameservers() -> tuple[HostPort, ...]:
    """The name servers of /etc/resolv.conf."""
    try:
        system = dns.resolver.Resolver(configure=True)
    except dns.exception.DNSException as exc:
        raise AddressError("/etc/resolv.conf", f"no usable name server: {exc}") from None
    servers = tuple(HostPort(str(server), int(system.port)) for server in system.nameservers)
    if not servers:
        raise AddressError("/etc/resolv.conf", "no name server configured")
    return servers


def parse_nameserver(text: str) -> HostPort:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address; port 53 by default."""
    server = parse_host_port(text, default_port=53)
    address = normalize_ip(server.host)
    if address is None:
        raise AddressError(text, "a name server must be given as an IP address")
    return HostPort(address, server.port)


class _Lookup:
    """One address on its way: the PTR query, then perhaps the forward one."""

    __slots__ = (
        "address", "attempts", "current", "forward", "live", "name", "question", "refunded",
        "retry_queued", "server", "ttl",
    )  # fmt: skip

    def __init__(self, address: str, server: int) -> None:
        self.address = address
        self.server = server  # index of the name server of the first attempt
        self.name: str | None = None
        self.ttl = 0
        self.attempts = 0
        self.refunded = 0  # attempts lost to congestion and not counted
        # Every attempt of the current query stays answerable until one is
        # answered: a slow answer to the first is as good as one to the last.
        self.live: list[_Sent] = []
        self.current: _Sent | None = None  # the latest attempt, whose time-out counts
        self.retry_queued = False  # timed out, waiting for room in the window to retry
        self.question = wire.reverse_question(address)  # wire format, lower case
        self.forward = False  # asking A/AAAA of the name found (--confirm)


class _Sent:
    """One attempt of a query on one socket."""

    __slots__ = ("channel", "deadline", "lookup", "query_id", "sent_at")

    def __init__(self, lookup: _Lookup, channel: _Channel, query_id: int, sent_at: float) -> None:
        self.lookup = lookup
        self.channel = channel
        self.query_id = query_id
        self.sent_at = sent_at
        self.deadline = sent_at


class _Channel:
    """A connected UDP socket to one name server and its queries in flight by id."""

    __slots__ = ("in_flight", "receive_buffer", "server", "socket")

    def __init__(self, server: HostPort, index: int) -> None:
        family = address_family(server.host)
        self.server = index
        self.socket = socket.socket(family, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.receive_buffer = size_receive_buffer(self.socket, RECEIVE_BUFFER)
        # connect() makes the kernel drop datagrams from any other source.
        self.socket.connect((server.host, server.port))
        self.in_flight: dict[int, _Sent] = {}


class Resolver:
    """PTR look-ups of many addresses at once; `submit`, then `poll` for answers."""

    def __init__(self, config: ResolverConfig) -> None:
        if not config.nameservers:
            raise AddressError("", "no name server given")
        self.config = config
        self._random = random.Random(os.urandom(16))
        self._selector = selectors.DefaultSelector()
        self._channels: list[list[_Channel]] = []
        for index, server in enumerate(config.nameservers):
            channels = [_Channel(server, index) for _ in range(config.sockets_per_server)]
            for channel in channels:
                self._selector.register(channel.socket, selectors.EVENT_READ, channel)
            self._channels.append(channels)
        self._waiting: deque[_Lookup] = deque()
        # Look-ups whose attempt timed out: they wait for room in the window
        # like new ones (ahead of them), or a flooded server gets flooded again.
        self._retries: deque[_Lookup] = deque()
        self._retries_queued = 0
        # (deadline, tie-breaker, attempt): attempts wait for different times.
        self._deadlines: list[tuple[float, int, _Sent]] = []
        self._order = itertools.count()
        self.control = InFlightControl(config.concurrency, config.timeout)
        self._in_flight = 0
        self._next_server = 0
        self._finished: list[tuple[str, Answer]] = []
        self.queries_sent = 0
        self.attempts_refunded = 0
        self.attempts_timed_out = 0

    @property
    def receive_buffer(self) -> int:
        """The receive buffer the kernel granted each socket (bytes)."""
        return self._channels[0][0].receive_buffer

    @property
    def pending(self) -> int:
        """Addresses submitted and not yet answered."""
        return len(self._waiting) + self._retries_queued + self._in_flight

    def submit(self, address: str) -> None:
        """Queue the PTR look-up of one normalized IP address."""
        server = self._next_server
        self._next_server = (server + 1) % len(self._channels)
        self._waiting.append(_Lookup(address, server))

    def poll(self, timeout: float) -> list[tuple[str, Answer]]:
        """Send what concurrency allows, wait up to `timeout` for answers, return finished ones."""
        self._send_waiting()
        now = time.monotonic()
        if self._deadlines:
            timeout = min(timeout, max(0.0, self._deadlines[0][0] - now))
        if self._in_flight:
            for key, _ in self._selector.select(timeout):
                self._receive(key.data)
        self._expire(time.monotonic())
        self._send_waiting()
        finished, self._finished = self._finished, []
        return finished

    def close(self) -> None:
        for channels in self._channels:
            for channel in channels:
                self._selector.unregister(channel.socket)
                channel.socket.close()
        self._selector.close()

    # Sending and receiving.

    def _send_waiting(self) -> None:
        window = self.control.window
        while self._retries and self._in_flight < window:
            lookup = self._retries.popleft()
            if lookup.retry_queued:  # else answered late while it waited
                lookup.retry_queued = False
                self._retries_queued -= 1
                self._in_flight += 1
                self._send(lookup)
        while self._waiting and self._in_flight < window:
            lookup = self._waiting.popleft()
            self._in_flight += 1
            self._send(lookup)

    def _send(self, lookup: _Lookup) -> None:
        """Send the next attempt of a query (one in-flight slot is already counted).

        Attempts but the last wait the retry time-out measured from round
        trips (doubling with each attempt, as a lost query may mean a server
        still busy); the last waits the user's whole time-out, so a server
        that is merely slow for one name still gets that long to answer.
        """
        server = (lookup.server + lookup.attempts) % len(self._channels)
        lookup.attempts += 1
        channel = self._random.choice(self._channels[server])
        query_id = self._random.getrandbits(16)
        while query_id in channel.in_flight:
            query_id = self._random.getrandbits(16)
        now = time.monotonic()
        sent = _Sent(lookup, channel, query_id, now)
        channel.in_flight[query_id] = sent
        lookup.live.append(sent)
        lookup.current = sent
        self._schedule(sent)
        self.queries_sent += 1
        # A full buffer or a pending ICMP error: the attempt times out and is retried.
        with contextlib.suppress(OSError):
            channel.socket.send(wire.query(query_id, lookup.question))

    def _schedule(self, sent: _Sent) -> None:
        """Set (or bring forward) when an attempt times out."""
        lookup = sent.lookup
        wait = self.config.timeout
        if lookup.attempts <= self.config.retries:
            wait = min(wait, self.control.retry_timeout * 2 ** (lookup.attempts - 1))
        sent.deadline = sent.sent_at + wait
        heapq.heappush(self._deadlines, (sent.deadline, next(self._order), sent))

    def _reschedule_all(self) -> None:
        """After the first round trip measured: attempts sent before it wait that much less."""
        for channels in self._channels:
            for channel in channels:
                for sent in channel.in_flight.values():
                    if sent.lookup.current is sent:
                        self._schedule(sent)

    def _receive(self, channel: _Channel) -> None:
        while True:
            try:
                data = channel.socket.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # ICMP port unreachable and the like, reported on a later recv
            if len(data) < 12:
                continue
            sent = channel.in_flight.get(int.from_bytes(data[:2], "big"))
            if sent is None:
                continue  # late answer to an attempt already retried, or a stray datagram
            lookup = sent.lookup
            if not wire.answers_question(data, lookup.question):
                continue  # not an answer to our question: spoofed, or a stray
            reply: wire.Reply | dns.message.Message | None
            if lookup.forward:
                reply = _forward_reply(data)
            else:
                reply = wire.read_reply(data, lookup.question)
            if reply is None:
                continue  # a malformed answer: let the attempt time out
            if lookup.retry_queued:  # an earlier attempt answered after all: back in flight
                lookup.retry_queued = False
                self._retries_queued -= 1
                self._in_flight += 1
            first_round_trip = self.control.smoothed_rtt is None
            self.control.answered(time.monotonic() - sent.sent_at, self._in_flight)
            if first_round_trip:
                self._reschedule_all()
            self._forget(lookup)
            if isinstance(reply, wire.Reply):
                self._answered_ptr(lookup, reply)
            else:
                self._answered_forward(lookup, reply)

    @staticmethod
    def _forget(lookup: _Lookup) -> None:
        """Stop accepting answers to any attempt of the lookup's current query."""
        for sent in lookup.live:
            del sent.channel.in_flight[sent.query_id]
        lookup.live.clear()
        lookup.current = None

    def _expire(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, _, sent = heapq.heappop(deadlines)
            lookup = sent.lookup
            if lookup.current is not sent or deadline != sent.deadline:
                continue  # answered, superseded by a later attempt, or rescheduled
            self.attempts_timed_out += 1
            if (
                self.control.timed_out(sent.sent_at, now)
                and lookup.refunded < MAX_ATTEMPTS_REFUNDED
            ):
                lookup.attempts -= 1  # we flooded the server: not the address's fault
                lookup.refunded += 1
                self.attempts_refunded += 1
            if lookup.attempts <= self.config.retries:
                lookup.current = None
                lookup.retry_queued = True
                self._retries_queued += 1
                self._in_flight -= 1
                self._retries.append(lookup)
            else:
                self._forget(lookup)
                self._finish(lookup, Answer(Status.TIMEOUT, None, 0))

    def _retry_or_finish(self, lookup: _Lookup, status: Status) -> None:
        """Try again if attempts are left (keeping earlier ones answerable), else give up."""
        if lookup.attempts <= self.config.retries:
            self._send(lookup)
        else:
            self._forget(lookup)
            self._finish(lookup, Answer(status, None, 0))

    def _finish(self, lookup: _Lookup, answer: Answer) -> None:
        self._in_flight -= 1
        self._finished.append((lookup.address, answer))

    # What the answers mean.

    def _answered_ptr(self, lookup: _Lookup, reply: wire.Reply) -> None:
        if reply.rcode not in (wire.NOERROR, wire.NXDOMAIN):
            self._retry_or_finish(lookup, Status.FAILED)
            return
        if not reply.targets:
            self._finish(lookup, Answer(Status.NOT_FOUND, None, reply.ttl))
            return
        names = (host_name_from_labels(labels) for labels in reply.targets)
        name = next((name for name in names if name is not None), None)
        if name is None:
            self._finish(lookup, Answer(Status.INVALID, None, reply.ttl))
        elif not self.config.confirm:
            self._finish(lookup, Answer(Status.RESOLVED, name, reply.ttl))
        else:
            self._ask_forward(lookup, name, reply.ttl)

    def _ask_forward(self, lookup: _Lookup, name: str, ttl: int) -> None:
        lookup.name = name
        lookup.ttl = ttl
        lookup.attempts = 0  # the PTR attempts are forgotten: a new query, new attempts
        rdtype = dns.rdatatype.AAAA if ":" in lookup.address else dns.rdatatype.A
        lookup.question = dns.message.make_query(name, rdtype).to_wire()[12:].lower()
        lookup.forward = True
        self._send(lookup)

    def _answered_forward(self, lookup: _Lookup, message: dns.message.Message) -> None:
        rcode = message.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            self._retry_or_finish(lookup, Status.FAILED)
            return
        try:
            chain = message.resolve_chaining()  # type: ignore[attr-defined]
        except dns.exception.DNSException:
            self._retry_or_finish(lookup, Status.FAILED)
            return
        ttl = min(lookup.ttl, int(chain.minimum_ttl))
        addresses = {normalize_ip(rdata.address) for rdata in chain.answer or ()}
        status = Status.CONFIRMED if lookup.address in addresses else Status.MISMATCH
        self._finish(lookup, Answer(status, lookup.name, ttl))


def _forward_reply(data: bytes) -> dns.message.Message | None:
    """The answer to a forward (A/AAAA) query, parsed by dnspython; None if malformed."""
    try:
        return dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None


def resolve_all(config: ResolverConfig, addresses: Sequence[str]) -> dict[str, Answer]:
    """Look up every address (a convenience for tests and small jobs)."""
    resolver = Resolver(config)
    try:
        for address in addresses:
            resolver.submit(address)
        answers: dict[str, Answer] = {}
        while resolver.pending:
            answers.update(resolver.poll(1.0))
        return answers
    finally:
        resolver.close()
