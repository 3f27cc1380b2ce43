"""Streaming a log through the resolver: input order kept, memory bounded.

A reader thread hands over blocks of whole lines; each line waits in a
look-ahead window until the address in its first field has an answer, and
lines leave the window strictly in input order. Each address is looked up
once; the window, not the file, bounds memory (plus one entry per distinct
first field). Every byte but the replaced first field is written as read.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import IO

from pentools.core.accesslog import blocks_of_lines, first_field_end, open_binary
from pentools.core.addresses import normalize_ip
from pentools.core.errors import InputFileError
from pentools.webresolve.cache import CacheFile
from pentools.webresolve.hostnames import is_valid_host_name
from pentools.webresolve.resolver import Answer, Resolver, ResolverConfig, Status
from pentools.webresolve.scout import Scout, Source, scout_source

READ_SIZE = 256 * 1024
#: Blocks of input queued ahead of the main thread (each up to READ_SIZE bytes).
QUEUED_BLOCKS = 8
PROGRESS_INTERVAL = 0.25
#: Addresses found by reading ahead are passed on while fewer look-ups than
#: this are waiting: the look-ups of a huge log are not all queued at once.
READ_AHEAD_PENDING = 10_000


@dataclass(frozen=True)
class WebresolveConfig:
    resolver: ResolverConfig
    input_path: str = "-"
    cache_path: str | None = None
    window: int = 100_000  # lines held back at most while their look-ups run
    progress: bool = False
    read_ahead: bool = True  # scan a regular file ahead for addresses (`scout`)


@dataclass
class Stats:
    """What happened, for ``--stats`` (logresolve's statistics and more)."""

    lines: int = 0
    empty_lines: int = 0
    names_already: int = 0  # first field already a host name
    bad_lines: int = 0  # first field neither an address nor a host name
    lines_resolved: int = 0  # lines written with a name
    cache_hits: int = 0  # lines whose address was already known in this run
    outcomes: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(Status, 0))
    cache_file_hits: int = 0  # addresses answered from the cache file
    cache_file_skipped: int = 0
    queries_sent: int = 0
    largest_window: int = 0  # look-ups in flight at most
    window_halvings: int = 0  # answers missing in a burst: the server was dropping
    attempts_refunded: int = 0  # attempts lost in such a burst, not counted as retries
    receive_buffer: int = 0
    read_ahead_from: int | None = None  # byte offset where the scout started
    seconds: float = 0.0

    @property
    def unique_addresses(self) -> int:
        return sum(self.outcomes.values())

    def report(self) -> str:
        found = self.outcomes
        rows = [
            ("Lines", self.lines),
            ("  with a name written", self.lines_resolved),
            ("  empty", self.empty_lines),
            ("  already a host name", self.names_already),
            ("  no address in first field", self.bad_lines),
            ("Unique addresses", self.unique_addresses),
            ("  resolved", found[Status.RESOLVED] + found[Status.CONFIRMED]),
            ("  confirmed forward", found[Status.CONFIRMED]),
            ("  not confirmed forward", found[Status.MISMATCH]),
            ("  not found", found[Status.NOT_FOUND]),
            ("  timed out", found[Status.TIMEOUT]),
            ("  server failure", found[Status.FAILED]),
            ("  refused as invalid", found[Status.INVALID]),
            ("Cache hits", self.cache_hits),
            ("Cache file hits", self.cache_file_hits),
            ("Cache file lines skipped", self.cache_file_skipped),
            ("DNS queries sent", self.queries_sent),
            ("Largest window in flight", self.largest_window),
            ("Window halvings", self.window_halvings),
            ("Attempts lost to congestion", self.attempts_refunded),
            ("Socket receive buffer", self.receive_buffer),
            (
                "Read ahead from byte",
                "no" if self.read_ahead_from is None else self.read_ahead_from,
            ),
        ]
        width = max(len(label) for label, _ in rows)
        text = "".join(f"{label:<{width}} : {value}\n" for label, value in rows)
        return f"webresolve statistics\n{text}{'Time':<{width}} : {self.seconds:.3f} s\n"


class _Entry:
    """One distinct address: the first fields that spell it and, once known, its name."""

    __slots__ = ("address", "done", "fields", "name", "seen")

    def __init__(self, address: str) -> None:
        self.address = address
        self.name: str | None = None
        self.done = False
        self.seen = False  # in a line yet (else only found by reading ahead)
        self.fields: list[str] = []  # until done; then the fields are in `_output`


class _Block:
    """Whole lines read together, held until the address of each of them is answered."""

    __slots__ = ("fields", "lines", "newline_at_end", "pending")

    def __init__(
        self, lines: list[str], fields: list[str], pending: set[str], newline_at_end: bool
    ) -> None:
        self.lines = lines
        self.fields = fields  # the first field of each line
        self.pending = pending  # first fields still waiting for an answer
        self.newline_at_end = newline_at_end  # false only for a last line without one


class _Reader(threading.Thread):
    """Reads the input in blocks of whole lines, so the main thread never waits on a read."""

    def __init__(self, path: str, size: int | None) -> None:
        super().__init__(name="webresolve-reader", daemon=True)
        self.path = path
        self.blocks: queue.Queue[str | BaseException | None] = queue.Queue(QUEUED_BLOCKS)
        self.bytes_read = 0
        self.size = size  # for the progress bar; None if unknown

    def run(self) -> None:
        try:
            stream = open_binary(self.path)
            try:
                for block in blocks_of_lines(stream, READ_SIZE, eager=True):
                    self.bytes_read += len(block)
                    self.blocks.put(block.decode("latin-1"))
            finally:
                if self.path != "-":
                    stream.close()
        except InputFileError as exc:
            self.blocks.put(exc)
        except (OSError, EOFError) as exc:
            self.blocks.put(InputFileError(self.path, str(exc)))
        self.blocks.put(None)


def _file_size(source: Source | None) -> int | None:
    """The size of a plain uncompressed file (for the progress bar), None for pipes and .gz."""
    if source is None or source.start is None:
        return None
    try:
        return os.stat(source.path).st_size
    except OSError:
        return None


class LogResolver:
    """Resolves the first field of every line of one log, written in input order."""

    def __init__(self, config: WebresolveConfig, output: IO[str]) -> None:
        self.config = config
        self.output = output
        self.stats = Stats()
        self.confirm = config.resolver.confirm
        self._by_field: dict[str, _Entry] = {}
        self._by_address: dict[str, _Entry] = {}
        # What to write for each first field that is an answered address: the
        # name, or the field as it was; `_named` holds those given a name.
        self._output: dict[str, str] = {}
        self._named: set[str] = set()
        self._window: deque[_Block] = deque()
        self._window_lines = 0
        self._first_seen = 0  # addresses met in a line for the first time
        self._scout: Scout | None = None
        self._cache = CacheFile(config.cache_path) if config.cache_path else None
        self._resolver: Resolver | None = None
        self._last_progress = 0.0

    def run(self) -> Stats:
        started = time.monotonic()
        now = time.time()
        if self._cache is not None:
            self._cache.load(now)
            self.stats.cache_file_skipped = self._cache.skipped
        self._resolver = resolver = Resolver(self.config.resolver)
        self.stats.receive_buffer = resolver.receive_buffer
        path = self.config.input_path
        # The same test tells whether the log can be read twice and sized.
        source = scout_source(path)
        reader = _Reader(path, _file_size(source))
        if not self.config.read_ahead:
            source = None
        reader.start()
        try:
            self._loop(resolver, reader, source)
        finally:
            if self._scout is not None:
                self._scout.stop()
            resolver.close()
            self.stats.queries_sent = resolver.queries_sent
            self.stats.largest_window = resolver.control.largest
            self.stats.window_halvings = resolver.control.cuts
            self.stats.attempts_refunded = resolver.attempts_refunded
            if self.config.progress:
                sys.stderr.write("\n")
        if self._cache is not None:
            self._cache.save(time.time())
        self.stats.seconds = time.monotonic() - started
        return self.stats

    def _loop(self, resolver: Resolver, reader: _Reader, source: Source | None) -> None:
        eof = False
        while not eof or self._window:
            scout = self._scout
            if scout is None and source is not None and resolver.attempts_timed_out and not eof:
                # A query went unanswered: more may follow, so read ahead from here.
                arguments = source.arguments(reader.bytes_read)
                scout = self._scout = Scout(arguments)
                self.stats.read_ahead_from = int(arguments[1]) if len(arguments) > 1 else 0
            if scout is not None and resolver.pending < READ_AHEAD_PENDING:
                for address in scout.take():
                    self._look_up(address)
            got_input = False
            if not eof and self._window_lines < self.config.window:
                if not resolver.pending:
                    self.output.flush()  # a live pipe: show what is ready before waiting
                try:
                    block = reader.blocks.get(block=not resolver.pending)
                except queue.Empty:
                    block = ""
                if isinstance(block, BaseException):
                    raise block
                if block is None:
                    eof = True
                elif block:
                    got_input = True
                    self._take(block)
            if resolver.pending:
                waiting_on_dns = eof or self._window_lines >= self.config.window
                timeout = 1.0 if waiting_on_dns else 0.0 if got_input else 0.01
                self._apply(resolver.poll(timeout))
            self._flush()
            if self.config.progress:
                self._show_progress(reader, resolver)
        self.output.flush()

    def _take(self, text: str) -> None:
        """Queue one block of whole lines (or the newline-less last line).

        Per line only the first field is cut out; the rest is done per
        distinct field with set operations, which is what makes a million
        lines cheap.
        """
        lines = text.split("\n")
        newline_at_end = not lines[-1]
        if newline_at_end:
            lines.pop()
        fields = [line[: first_field_end(line)] for line in lines]
        distinct = set(fields)
        new = distinct.difference(self._by_field)
        addressed = len(lines)  # lines whose first field is an address
        first_seen = self._first_seen
        junk = [first for first in new if self._new_field(first) is None]
        if junk:
            # Counted in one pass: a log of names (resolved already) has
            # thousands of distinct ones per block, and one count each was quadratic.
            counts = Counter(fields)
            for first in junk:
                addressed -= self._count_unresolvable(first, counts[first], lines, fields)
        stats = self.stats
        stats.lines += len(lines)
        # Every line with an address is a cache hit but the first of each address.
        stats.cache_hits += addressed - (self._first_seen - first_seen)
        pending = distinct.difference(self._output)
        pending.difference_update(junk)
        self._window.append(_Block(lines, fields, pending, newline_at_end))
        self._window_lines += len(lines)

    def _new_field(self, first: str) -> _Entry | None:
        """The entry of a first field seen for the first time (None: not an address).

        Fields that are not addresses are not remembered, so junk cannot grow memory.
        """
        address = normalize_ip(first)
        if address is None:
            return None
        entry = self._look_up(address)
        if not entry.seen:
            entry.seen = True
            self._first_seen += 1
        self._by_field[first] = entry
        if entry.done:
            self._write_as(first, entry.name)
        else:
            entry.fields.append(first)
        return entry

    def _look_up(self, address: str) -> _Entry:
        """The entry of a normalized address; a new one is asked of the cache file or the DNS."""
        entry = self._by_address.get(address)
        if entry is not None:
            return entry
        entry = self._by_address[address] = _Entry(address)
        cached = (
            self._cache.get(address, time.time(), confirm=self.confirm) if self._cache else None
        )
        if cached is not None:
            self.stats.cache_file_hits += 1
            self._answered(entry, cached, from_file=True)
        else:
            assert self._resolver is not None
            self._resolver.submit(address)
        return entry

    def _write_as(self, first: str, name: str | None) -> None:
        if name is None:
            self._output[first] = first
        else:
            self._output[first] = name
            self._named.add(first)

    def _apply(self, answers: list[tuple[str, Answer]]) -> None:
        for address, answer in answers:
            self._answered(self._by_address[address], answer, from_file=False)

    def _answered(self, entry: _Entry, answer: Answer, *, from_file: bool) -> None:
        entry.name = answer.host_name(confirm=self.confirm)
        entry.done = True
        for first in entry.fields:
            self._write_as(first, entry.name)
        entry.fields = []
        self.stats.outcomes[answer.status] += 1
        if self._cache is not None and not from_file:
            self._cache.put(entry.address, answer, time.time())

    def _flush(self) -> None:
        """Write the blocks at the head of the window whose every answer is known."""
        window = self._window
        output = self._output
        while window:
            block = window[0]
            if block.pending:
                block.pending = {first for first in block.pending if first not in output}
                if block.pending:
                    return
            get = output.get
            pairs = zip(block.fields, block.lines, strict=True)
            text = "\n".join([get(first, first) + line[len(first) :] for first, line in pairs])
            self.output.write(text + "\n" if block.newline_at_end else text)
            self.stats.lines_resolved += sum(map(self._named.__contains__, block.fields))
            window.popleft()
            self._window_lines -= len(block.lines)

    def _count_unresolvable(
        self, first: str, count: int, lines: list[str], fields: list[str]
    ) -> int:
        """Count the `count` lines of a block starting with `first`, not an address; return it."""
        stats = self.stats
        if first:
            if is_valid_host_name(first):
                stats.names_already += count
            else:
                stats.bad_lines += count
            return count
        # An empty field: an empty line, or one that starts with a space.
        blank = [line for field, line in zip(fields, lines, strict=True) if not field]
        empty = sum(1 for line in blank if not line.rstrip("\r"))
        stats.empty_lines += empty
        stats.bad_lines += len(blank) - empty
        return len(blank)

    def _show_progress(self, reader: _Reader, resolver: Resolver) -> None:
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        counts = (
            f"{self.stats.lines} lines, {len(self._by_address)} addresses, "
            f"{resolver.pending} pending"
        )
        if reader.size:
            share = min(1.0, reader.bytes_read / reader.size)
            bar = "#" * int(share * 30)
            sys.stderr.write(f"\r[{bar:<30}] {share:4.0%} {counts}   ")
        else:
            sys.stderr.write(f"\r{counts}   ")
        sys.stderr.flush()


def resolve_log(config: WebresolveConfig, output: IO[str]) -> Stats:
    """Resolve one log to `output`; returns the statistics."""
    return LogResolver(config, output).run()
