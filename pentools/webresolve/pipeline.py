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
from collections import deque
from dataclasses import dataclass, field
from typing import IO

from pentools.core.accesslog import first_field_end, open_binary
from pentools.core.addresses import normalize_ip
from pentools.core.errors import InputFileError
from pentools.webresolve.cache import CacheFile
from pentools.webresolve.hostnames import is_valid_host_name
from pentools.webresolve.resolver import Answer, Resolver, ResolverConfig, Status

READ_SIZE = 256 * 1024
#: Blocks of input queued ahead of the main thread (each up to READ_SIZE bytes).
QUEUED_BLOCKS = 8
PROGRESS_INTERVAL = 0.25


@dataclass(frozen=True)
class WebresolveConfig:
    resolver: ResolverConfig
    input_path: str = "-"
    cache_path: str | None = None
    window: int = 100_000  # lines held back at most while their look-ups run
    progress: bool = False


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
        ]
        width = max(len(label) for label, _ in rows)
        text = "".join(f"{label:<{width}} : {value}\n" for label, value in rows)
        return f"webresolve statistics\n{text}{'Time':<{width}} : {self.seconds:.3f} s\n"


class _Entry:
    """One distinct first field: its address and, once known, the name to write."""

    __slots__ = ("address", "done", "name")

    def __init__(self, address: str) -> None:
        self.address = address
        self.name: str | None = None
        self.done = False


class _Reader(threading.Thread):
    """Reads the input in blocks of whole lines, so the main thread never waits on a read."""

    def __init__(self, path: str) -> None:
        super().__init__(name="webresolve-reader", daemon=True)
        self.path = path
        self.blocks: queue.Queue[str | BaseException | None] = queue.Queue(QUEUED_BLOCKS)
        self.bytes_read = 0
        self.size = _file_size(path)

    def run(self) -> None:
        try:
            stream = open_binary(self.path)
            try:
                read = getattr(stream, "read1", stream.read)
                carry = b""
                while chunk := read(READ_SIZE):
                    self.bytes_read += len(chunk)
                    data = carry + chunk
                    cut = data.rfind(b"\n") + 1
                    carry = data[cut:]
                    if cut:
                        self.blocks.put(data[:cut].decode("latin-1"))
                if carry:
                    self.blocks.put(carry.decode("latin-1"))
            finally:
                if self.path != "-":
                    stream.close()
        except InputFileError as exc:
            self.blocks.put(exc)
        except (OSError, EOFError) as exc:
            self.blocks.put(InputFileError(self.path, str(exc)))
        self.blocks.put(None)


def _file_size(path: str) -> int | None:
    """The size of a plain file (for the progress bar), None for pipes and .gz."""
    if path.endswith(".gz"):
        return None
    try:
        info = os.stat(path) if path != "-" else os.fstat(sys.stdin.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if os.path.isfile(path) or (path == "-" and info.st_size) else None


class LogResolver:
    """Resolves the first field of every line of one log, written in input order."""

    def __init__(self, config: WebresolveConfig, output: IO[str]) -> None:
        self.config = config
        self.output = output
        self.stats = Stats()
        self.confirm = config.resolver.confirm
        self._by_field: dict[str, _Entry] = {}
        self._by_address: dict[str, _Entry] = {}
        self._window: deque[tuple[str, int, _Entry | None]] = deque()
        self._missing_newline = False  # the last line of the input had no newline
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
        reader = _Reader(self.config.input_path)
        reader.start()
        try:
            self._loop(resolver, reader)
        finally:
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

    def _loop(self, resolver: Resolver, reader: _Reader) -> None:
        eof = False
        while not eof or self._window:
            got_input = False
            if not eof and len(self._window) < self.config.window:
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
                waiting_on_dns = eof or len(self._window) >= self.config.window
                timeout = 1.0 if waiting_on_dns else 0.0 if got_input else 0.01
                self._apply(resolver.poll(timeout))
            self._flush()
            if self.config.progress:
                self._show_progress(reader, resolver)
        self.output.flush()

    def _take(self, block: str) -> None:
        """Queue the lines of one block (whole lines, or the newline-less last one)."""
        lines = block.split("\n")
        if lines[-1]:
            self._missing_newline = True
        else:
            lines.pop()
        stats = self.stats
        by_field = self._by_field
        window = self._window
        for line in lines:
            end = first_field_end(line)
            first = line[:end]
            entry = by_field.get(first)
            if entry is not None:
                stats.cache_hits += 1
            else:
                entry = self._new_field(first)
            window.append((line, end, entry))
        stats.lines += len(lines)

    def _new_field(self, first: str) -> _Entry | None:
        """The entry of a first field seen for the first time (None: not an address).

        Fields that are not addresses are not remembered, so junk cannot grow memory.
        """
        address = normalize_ip(first)
        if address is None:
            return None
        if address in self._by_address:
            entry = self._by_address[address]
            self.stats.cache_hits += 1
        else:
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
        self._by_field[first] = entry
        return entry

    def _apply(self, answers: list[tuple[str, Answer]]) -> None:
        for address, answer in answers:
            self._answered(self._by_address[address], answer, from_file=False)

    def _answered(self, entry: _Entry, answer: Answer, *, from_file: bool) -> None:
        entry.name = answer.host_name(confirm=self.confirm)
        entry.done = True
        self.stats.outcomes[answer.status] += 1
        if self._cache is not None and not from_file:
            self._cache.put(entry.address, answer, time.time())

    def _flush(self) -> None:
        """Write the lines at the head of the window whose answer is known."""
        window = self._window
        out: list[str] = []
        resolved = 0
        while window:
            line, end, entry = window[0]
            if entry is None:
                self._count_unresolvable(line, end)
                out.append(line)
            elif not entry.done:
                break
            elif entry.name is None:
                out.append(line)
            else:
                out.append(entry.name + line[end:])
                resolved += 1
            window.popleft()
        if out:
            self.stats.lines_resolved += resolved
            ending = "" if self._missing_newline and not window else "\n"
            self.output.write("\n".join(out) + ending)

    def _count_unresolvable(self, line: str, end: int) -> None:
        if not line.rstrip("\r"):
            self.stats.empty_lines += 1
        elif is_valid_host_name(line[:end]):
            self.stats.names_already += 1
        else:
            self.stats.bad_lines += 1

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
