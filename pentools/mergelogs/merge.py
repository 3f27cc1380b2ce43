"""The offline merge: pen's local log + each backend's access log -> one access log.

The join itself is `pentools.core.attribution.AttributionEngine`; this module
only reads the files, puts the lines in time order, feeds the engine with the
records it needs, and writes the result.  Memory is bounded by windows of
log time, not by the size of the logs: lines wait at most the reorder window
to be put in order; records expire a jitter window behind the lines and are
read ahead only as far as a line may need them (the whole jitter window
until each server's clock is learned, then that server's band).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from pentools.core.accesslog import AccessLine, LogFormat, open_binary, read_lines, with_backend
from pentools.core.addresses import resolve_host
from pentools.core.attribution import AttributionEngine, JoinReport
from pentools.core.errors import RecordError, UnparsedInputError
from pentools.core.records import BalancerRecord, parse_local


@dataclass(frozen=True)
class LogSource:
    """One backend: the address the join knows it by, all its addresses, its log."""

    server: str
    addresses: frozenset[str]
    path: str

    @classmethod
    def from_spec(cls, host: str, path: str) -> LogSource:
        """A backend given as name or address (a name may have several addresses)."""
        addresses = resolve_host(host)
        return cls(addresses[0], frozenset(addresses), path)


@dataclass(frozen=True)
class MergeConfig:
    """What to merge and how (see ``mergelogs --help``)."""

    pen_log: str
    sources: tuple[LogSource, ...]
    jitter: float = 600.0
    clock_offset: float = 0.0  # -t: the balancer's clock minus UTC, in seconds
    reorder: float = 60.0  # how late a line may come in its own log and still be put in order
    log_format: str | None = None
    unmatched: str = "keep"  # "keep" the line's own client, or write the "server"
    min_parsed: float = 0.5  # a log of which a smaller share parses is an error (after the merge)
    tag_backend: bool = False  # append the backend's address to each line


@dataclass
class SourceTally:
    """How much of one backend log parsed, and the first line that did not."""

    path: str
    lines: int = 0
    parsed: int = 0
    sample: str | None = None


@dataclass
class MergeStats:
    """What the merge read and joined: the join's report, and what is mergelogs' own."""

    join: JoinReport = field(default_factory=JoinReport)
    late: int = 0  # lines written out of time order (later than --reorder)
    records_read: int = 0
    records_malformed: int = 0
    records_other_server: int = 0
    offsets: dict[str, float] = field(default_factory=dict)
    sources: list[SourceTally] = field(default_factory=list)

    def check_parsed(self, min_parsed: float, log_format: str | None) -> None:
        """Raise UnparsedInputError for the first log of which too few lines parsed."""
        name = log_format or "common or combined"
        for tally in self.sources:
            error = UnparsedInputError.if_too_few(
                tally.path, name, tally.lines, tally.parsed, tally.sample or "", min_parsed
            )
            if error is not None:
                raise error

    def extra(self) -> dict[str, object]:
        """mergelogs' own counters, after the join's in the report."""
        extra: dict[str, object] = {
            "late": self.late,
            "records_read": self.records_read,
            "records_malformed": self.records_malformed,
            "records_other_server": self.records_other_server,
        }
        for server, offset in sorted(self.offsets.items()):
            extra[f"clock {server}"] = f"{offset:+.1f} s"
        return extra

    def summary(self) -> str:
        """The report printed by ``--stats``: the join's layout, as penlogd's counters."""
        return self.join.render(self.extra())

    def to_json(self) -> str:
        """The same as JSON (``--stats-json``); clock offsets in seconds."""
        extra: dict[str, object] = {k: v for k, v in self.extra().items() if " " not in k}
        extra["clock_offsets"] = self.offsets
        return self.join.to_json(extra)


# An item of one source's line stream: (order time, source index, sequence,
# line text, parsed fields or None if malformed).  The first three make every
# item unique, so tuples compare without reaching the text.
_Item = tuple[float, int, int, str, AccessLine | None]


def _parsed_lines(
    index: int, source: LogSource, log_format: LogFormat, tally: SourceTally
) -> Iterator[_Item]:
    """The lines of one backend log; a malformed line takes its predecessor's time.

    `tally` gets the lines read and parsed when the stream ends (not two
    counts per line).
    """
    last_time = -math.inf
    parse = log_format.parse
    unparsed = 0
    sequence = -1
    try:
        for sequence, text in enumerate(read_lines(source.path)):
            parsed = parse(text)
            if parsed is not None and parsed.time is not None:
                last_time = parsed.time
                yield (last_time, index, sequence, text, parsed)
            else:
                unparsed += 1
                if tally.sample is None:
                    tally.sample = text.rstrip("\r\n")
                yield (last_time, index, sequence, text, None)
    finally:
        tally.lines, tally.parsed = sequence + 1, sequence + 1 - unparsed


def _time_ordered(items: Iterator[_Item], window: float, stats: MergeStats) -> Iterator[_Item]:
    """Items in time order (stable), holding each back at most `window` seconds of log time.

    Backends write lines when requests complete, so a slow request's line
    comes after quicker, later ones.  Most lines are in order: they wait in
    a queue, and only the few that go back in time in a heap.  A line later
    than the window is written at once, out of order, and counted.
    """
    in_order: deque[_Item] = deque()
    stragglers: list[_Item] = []
    released = -math.inf
    for item in items:
        time = item[0]
        if time < released:
            stats.late += 1
            yield (released, *item[1:])
            continue
        if not in_order or time >= in_order[-1][0]:
            in_order.append(item)
        else:
            heapq.heappush(stragglers, item)
        horizon = time - window
        while True:
            if in_order and (not stragglers or in_order[0] < stragglers[0]):
                if in_order[0][0] >= horizon:
                    break
                released = in_order[0][0]
                yield in_order.popleft()
            elif stragglers and stragglers[0][0] < horizon:
                released = stragglers[0][0]
                yield heapq.heappop(stragglers)
            else:
                break
    yield from heapq.merge(in_order, sorted(stragglers))


class _RecordFeed:
    """Reads pen's log just far enough ahead and hands records to the engine."""

    def __init__(self, config: MergeConfig, engine: AttributionEngine, stats: MergeStats) -> None:
        self._lines = read_lines(config.pen_log)
        self._engine = engine
        self._stats = stats
        self._offset = config.clock_offset
        self._server_of = {
            address: source.server for source in config.sources for address in source.addresses
        }
        self._next: BalancerRecord | None = None

    def feed_until(self, time: float) -> None:
        """Add every record stamped at or before `time` (balancer clock corrected)."""
        while True:
            if self._next is None:
                self._next = self._read()
                if self._next is None:
                    return
            if self._next.time > time:
                return
            self._engine.add_record(self._next)
            self._next = None

    def _read(self) -> BalancerRecord | None:
        for text in self._lines:
            try:
                record = parse_local(text)
            except RecordError:
                self._stats.records_malformed += 1
                continue
            self._stats.records_read += 1
            server = self._server_of.get(record.server)
            if server is None:
                self._stats.records_other_server += 1
                continue
            record.server = server
            record.time -= self._offset
            return record
        return None


def _lookahead(engine: AttributionEngine, servers: list[str], jitter: float) -> float:
    """How far past a line's time records may be needed: the window, or the learned bands.

    A line takes records from its server's band ``[t - high, t - low]``, or
    older ones, so once every band is known nothing later than ``t - low``
    is needed (plus the slack that lets the band move).
    """
    needed = 0.0
    for server in servers:
        band = engine.offset(server).band
        if band is None:
            return jitter
        needed = max(needed, engine.slack - band[0])
    return min(jitter, needed + engine.slack)


def merge_logs(config: MergeConfig, output: IO[str]) -> MergeStats:
    """Merge the logs of `config` into `output` (text written byte for byte)."""
    log_format = LogFormat(config.log_format)
    log_format.check_joinable(needs_time=True)
    for path in (config.pen_log, *(source.path for source in config.sources)):
        if path != "-":
            open_binary(path).close()  # fail before writing anything, not half-way
    stats = MergeStats()
    # Until a server's clock is learned: first in, first out within the window.
    engine = AttributionEngine(window=config.jitter, prior_band=(-config.jitter, config.jitter))
    stats.join = engine.report
    records = _RecordFeed(config, engine, stats)
    stats.sources = [SourceTally(source.path) for source in config.sources]
    streams = [
        _time_ordered(
            _parsed_lines(index, source, log_format, stats.sources[index]), config.reorder, stats
        )
        for index, source in enumerate(config.sources)
    ]
    servers = [source.server for source in config.sources]
    write = output.write
    tag_backend = config.tag_backend
    fed_until = -math.inf
    for _, index, _, text, parsed in heapq.merge(*streams):
        if parsed is None or parsed.time is None:
            engine.count_malformed()
        else:
            time = parsed.time
            if time != fed_until:  # time stamps repeat within a second: once per change
                fed_until = time
                records.feed_until(time + _lookahead(engine, servers, config.jitter))
                engine.advance(time)
            client = engine.match(
                servers[index], parsed.request_key(), time, parsed.remote_port, parsed.agent
            ).client
            if client is None and config.unmatched == "server":
                client = servers[index]
            if client is not None:
                text = parsed.with_client(client)
        if tag_backend:
            text = with_backend(text, servers[index])
        # A last line without a newline must not glue onto the next one.
        write(text if text.endswith("\n") else text + "\n")
    engine.snapshot()
    stats.offsets = {server: engine.offset(server).median for server in servers}
    return stats
