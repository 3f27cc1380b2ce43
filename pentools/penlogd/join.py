"""The live join, sans-IO: datagrams in, joined log lines out.

penlogd's server hands every datagram to `LiveJoin.receive` with its source
address and arrival time, calls `release_due` when `next_deadline` passes, and
writes whatever `take_output` returns.  Which client made a request is decided
by the shared `AttributionEngine`; this module only classifies datagrams,
lets a line wait briefly for a record that has not arrived yet, and counts.

Every web line received is written exactly once, matched or not: a line that
does not fit the log format is written unchanged.  Only datagrams that are not
web lines (empty ones, bad or refused records) are dropped, and counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from pentools.core.accesslog import AccessLine, LogFormat, with_backend
from pentools.core.addresses import normalize_ip
from pentools.core.attribution import AttributionEngine, JoinReport
from pentools.core.errors import RecordError
from pentools.core.records import is_record_datagram, parse_datagram
from pentools.penlogd.syslog import parse_syslog


@dataclass(frozen=True)
class JoinConfig:
    """How the live join behaves; times in seconds of arrival time.

    `window`: a record not claimed by a line within it expires.  `wait`: how
    long a line whose record has not arrived yet waits before it is written
    unmatched.  `max_records` bounds the records kept (memory), `max_waiting`
    the lines waiting.  `slack` widens the engine's learned band of
    record-to-line delays.  `balancers`: if set, records from other source
    addresses are refused.  `syslog_tags` maps a syslog tag to the server
    address pen knows that web server by (``--tag``); a syslog line with
    another tag is the server of its source address.
    """

    window: float = 120.0
    wait: float = 0.5
    max_records: int = 500_000
    max_waiting: int = 100_000
    slack: float = 0.05
    tag_backend: bool = False  # append the backend's address to each line
    log_format: str | None = None
    balancers: frozenset[str] | None = None
    syslog_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass
class JoinCounters:
    """What penlogd reports on USR1, at exit and to the metrics.

    `report` is the join's accounting, the same as mergelogs' ``--stats``
    (`JoinReport`: lines, exact, matched, ambiguous, unmatched, malformed,
    records, records_unused, records_expired); the rest is penlogd's own.
    """

    report: JoinReport = field(default_factory=JoinReport)
    received: int = 0  # datagrams
    refused: int = 0  # records from an address not given with --balancer
    waited: int = 0  # lines that had to wait for their record
    dropped: int = 0  # datagrams neither a line nor a record: empty, or a bad record
    waiting: int = 0  # lines waiting for their record now

    def extra(self) -> dict[str, object]:
        return {
            "received": self.received,
            "refused": self.refused,
            "waited": self.waited,
            "dropped": self.dropped,
            "waiting": self.waiting,
        }

    def summary(self) -> str:
        """One line: the join's report in mergelogs' layout, then penlogd's own counters."""
        return self.report.render(self.extra())

    def to_json(self) -> str:
        """The same as JSON (``--stats-json``)."""
        return self.report.to_json(self.extra())


class _WaitingLine:
    """A parsed line waiting for the record of its request."""

    __slots__ = ("deadline", "done", "key", "line", "server")

    def __init__(self, line: AccessLine, server: str, key: str, deadline: float) -> None:
        self.line = line
        self.server = server
        self.key = key
        self.deadline = deadline
        self.done = False


def one_line(datagram: bytes) -> str:
    """The datagram as one log line (Latin-1 text, no newline).

    One trailing newline is the line's own; any other CR or LF is escaped as
    Apache escapes it, so a datagram can never add a line to the log.
    """
    text = datagram.decode("latin-1")
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    if "\n" in text or "\r" in text:
        text = text.replace("\r", "\\x0d").replace("\n", "\\x0a")
    return text


class LiveJoin:
    """Joins balancer records and web lines as they arrive."""

    #: Distinct source addresses remembered (the balancer and the web servers).
    MAX_SOURCES = 4096

    def __init__(self, config: JoinConfig) -> None:
        self.config = config
        self.engine = AttributionEngine(
            window=config.window,
            slack=config.slack,
            resolution=config.slack,  # arrival times: finer than log time stamps
            max_records=config.max_records,
            prior_band=(-config.slack, config.window),  # a line comes after its record
            # Arrival times are precise: a record older than the learned band is
            # one whose line was lost, not one a mistaken line left behind.
            reach=0.0,
            # Lines arrive in completion order, which says less than a
            # User-Agent, even one that users behind a NAT address share.
            fingerprint_tolerance=1.0,
        )
        self.counters = JoinCounters(self.engine.report)
        self._format = LogFormat(config.log_format)
        self._output: list[bytes] = []
        self._waiting: deque[_WaitingLine] = deque()  # in arrival order = deadline order
        self._waiting_by_key: dict[tuple[str, str], deque[_WaitingLine]] = {}
        self._servers: dict[str, str] = {}  # source address -> canonical

    @property
    def next_deadline(self) -> float | None:
        """When the oldest waiting line must be written, or None if none waits."""
        return self._waiting[0].deadline if self._waiting else None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def has_output(self) -> bool:
        return bool(self._output)

    def take_output(self) -> list[bytes]:
        """The joined lines (newline included) produced since the last call."""
        output, self._output = self._output, []
        return output

    def receive(self, datagram: bytes, source: str, now: float) -> None:
        """Handle one datagram from address `source` (its server) that arrived at `now`."""
        self.counters.received += 1
        self.engine.advance(now)
        server = self._servers.get(source) or self._server(source)
        if is_record_datagram(datagram):
            self._record(datagram, server, now)
        elif not datagram or datagram.isspace():
            self.counters.dropped += 1
        elif datagram[:1] == b"<" and (syslog := parse_syslog(datagram)) is not None:
            # nginx's access log: always a web line, never a record
            self._line(syslog.message, self.config.syslog_tags.get(syslog.tag, server), now)
        else:
            self._line(datagram, server, now)

    def _server(self, source: str) -> str:
        """`source` as the engine knows servers (canonical), remembered: a few send."""
        server = normalize_ip(source) or source
        if len(self._servers) >= self.MAX_SOURCES:
            self._servers.clear()
        self._servers[source] = server
        return server

    def release_due(self, now: float) -> None:
        """Write the waiting lines whose wait has ended (matched if a record came)."""
        waiting = self._waiting
        while waiting and (waiting[0].deadline <= now or len(waiting) > self.config.max_waiting):
            entry = waiting.popleft()
            if not entry.done:
                self._attribute_waiting(entry, now)

    def release_all(self) -> None:
        """Write every waiting line now (at exit)."""
        while self._waiting:
            entry = self._waiting.popleft()
            if not entry.done:
                self._attribute_waiting(entry, entry.deadline)

    def _record(self, datagram: bytes, source: str, now: float) -> None:
        balancers = self.config.balancers
        if balancers is not None and source not in balancers:
            self.counters.refused += 1
            return
        try:
            record = parse_datagram(datagram, now)
        except RecordError:
            self.counters.dropped += 1
            return
        self.engine.add_record(record)
        queue = self._waiting_by_key.get((record.server, record.request))
        if queue:
            self._attribute_waiting(queue[0], now)

    def _line(self, datagram: bytes, server: str, now: float) -> None:
        text = one_line(datagram)
        line = self._format.parse(text)
        if line is None:
            self.engine.count_malformed()
            self._write(text, server)
            return
        key = line.request_key()
        if self.config.wait <= 0 or self.engine.has_candidates(server, key):
            client = self.engine.match(server, key, now, line.remote_port, line.agent).client
            self._write_line(line, client, server)
            return
        entry = _WaitingLine(line, server, key, now + self.config.wait)
        self.counters.waited += 1
        self._waiting.append(entry)
        self._waiting_by_key.setdefault((server, key), deque()).append(entry)
        if len(self._waiting) > self.config.max_waiting:
            self.release_due(now)

    def _attribute_waiting(self, entry: _WaitingLine, now: float) -> None:
        """Match a waiting line now, write it, and take it off its key's queue.

        It is matched as if it arrived `now`, after the record it waited for:
        a line comes after its record, which is what the engine expects.
        """
        entry.done = True
        line = entry.line
        attribution = self.engine.match(entry.server, entry.key, now, line.remote_port, line.agent)
        self._write_line(line, attribution.client, entry.server)
        queue_key = (entry.server, entry.key)
        queue = self._waiting_by_key[queue_key]
        while queue and queue[0].done:
            queue.popleft()
        if not queue:
            del self._waiting_by_key[queue_key]

    def _write_line(self, line: AccessLine, client: str | None, server: str) -> None:
        self._write(line.text if client is None else line.with_client(client), server)

    def _write(self, text: str, server: str) -> None:
        if self.config.tag_backend:
            text = with_backend(text, server)
        self._output.append((text + "\n").encode("latin-1"))

    def sync_counters(self) -> JoinCounters:
        """The counters as of now: the engine's report (unused records counted now)
        and penlogd's own.  Read by USR1, at exit, and by the metrics."""
        self.engine.snapshot()
        self.counters.waiting = len(self._waiting)
        return self.counters
