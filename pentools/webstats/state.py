"""The one mergeable state of webstats: what a report is drawn from.

Every way webstats counts builds a `State` and merges states: the batch
report, ``--state`` incremental runs, ``webstats live`` and the Dask run.
There is no second aggregation path: a report is `Report.build(state)`.

How to use it::

    state = State.empty(log_format, since, until)  # what the lines are read with
    state.add(chunk, path)          # a ParsedChunk (pentools.webstats.parse) of `path`
    total = merge(a, b)             # a new State; exact, associative, commutative
    state.save(file)                # atomically, versioned
    state = State.load(file, log_format, since, until)  # refuses a foreign or newer state
    report = Report.build(state, limit)   # pentools.webstats.aggregate
    render_json(report), render_html(report, title)    # pentools.webstats.render

`pentools.webstats.sources.count_files` reads files into a state (from their
start, or from where a saved state stopped).  Two states can be merged only
if they were read with the same LogFormat and ``--from``/``--to``.

What it holds, all exact (nothing sampled, so any top N of a merged state is
the top N of one run over all the lines):

* ``series``: hits and bytes by (hour as logged, in hours since 1970, status):
  requests per day, per hour of the day, by status, and status over time;
* ``requests`` (by request line as logged and whether it was a 404),
  ``hosts``, ``referrers``, ``agents``: hits and bytes of every key;
* ``visitors``: the distinct (day as logged, 64-bit hash of client and user
  agent) of the responses that are not 4xx, GoAccess's unique visitors;
* per file: lines, failed lines and the first failed line; lines left out
  by ``--from``/``--to``; the first and last times;
* ``cursors``: where incremental runs stopped in each file (`sources`).

A state grows with the distinct keys, not with the lines.  While chunks are
added, each table is a list of partial sums, summed when it grows.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pentools.core.errors import PentoolsError
from pentools.core.output import atomic_output
from pentools.webstats.parse import ParsedChunk

#: Version of the saved form; a state saved by a newer webstats is refused.
#: Bump it when the form or the visitor hash changes.
VERSION = 1
MAGIC = "pentools-webstats-state"

#: The tables of counts: their key columns.  Every table has ``hits`` and ``bytes``.
KEYS: dict[str, tuple[str, ...]] = {
    "series": ("hour", "status"),
    "requests": ("request", "not_found"),
    "hosts": ("host",),
    "referrers": ("referrer",),
    "agents": ("agent",),
}
COUNTS = ("hits", "bytes")
STRING = pd.ArrowDtype(pa.large_string())
_KEY_TYPES: dict[str, Any] = {
    "hour": "int64",
    "status": "int64",
    "request": STRING,
    "not_found": "bool",
    "host": STRING,
    "referrer": STRING,
    "agent": STRING,
}

#: Partial tables kept before they are summed into one.
_COMPACT_EVERY = 16


class StateError(PentoolsError):
    """A saved state that cannot be used with this run."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot use state {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class FileCounts:
    """Lines of one file, failed lines and the first failed one (its place, its text)."""

    lines: int = 0
    failed: int = 0
    bad: tuple[tuple[int, int], str] | None = None

    def plus(self, other: FileCounts) -> FileCounts:
        bads = [b for b in (self.bad, other.bad) if b is not None]
        return FileCounts(
            self.lines + other.lines, self.failed + other.failed, min(bads, default=None)
        )


@dataclass(frozen=True)
class Cursor:
    """Where a file was counted to, and how to know it again (see `sources`).

    `head` is a hash of the first `head_size` bytes of its content
    (decompressed), `offset` the bytes counted, through the last whole line.
    """

    path: str
    device: int
    inode: int
    head: str
    head_size: int
    offset: int


@dataclass
class State:
    """Counts of access-log lines that merge exactly; see the module docstring."""

    log_format: str | None = None
    since: float | None = None
    until: float | None = None
    excluded: int = 0
    first_local: float = math.inf
    last_local: float = -math.inf
    first_unix: float = math.inf
    last_unix: float = -math.inf
    files: dict[str, FileCounts] = field(default_factory=dict)
    cursors: list[Cursor] = field(default_factory=list)
    _parts: dict[str, list[pd.DataFrame]] = field(default_factory=dict, repr=False)
    _visitors: list[pd.DataFrame] = field(default_factory=list, repr=False)

    @classmethod
    def empty(
        cls, log_format: str | None = None, since: float | None = None, until: float | None = None
    ) -> State:
        """A state with nothing counted, for lines read with this format and filter."""
        return cls(log_format=log_format, since=since, until=until)

    # -- building ----------------------------------------------------------

    def add(self, chunk: ParsedChunk, path: str) -> None:
        """Count one parsed chunk of the file `path`."""
        counts = self.files.setdefault(path, FileCounts())
        self.files[path] = counts.plus(FileCounts(chunk.lines, chunk.failed, chunk.bad))
        frame = chunk.frame
        if self.since is not None or self.until is not None:
            keep = np.ones(len(frame), dtype=bool)
            if self.since is not None:
                keep &= frame["local"].to_numpy() >= self.since
            if self.until is not None:
                keep &= frame["local"].to_numpy() < self.until
            self.excluded += int(len(frame) - keep.sum())
            frame = frame[keep]
        if not len(frame):
            return
        local, unix = frame["local"].to_numpy(), frame["unix"].to_numpy()
        self.first_local = min(self.first_local, float(local.min()))
        self.last_local = max(self.last_local, float(local.max()))
        self.first_unix = min(self.first_unix, float(unix.min()))
        self.last_unix = max(self.last_unix, float(unix.max()))
        status = frame["status"].to_numpy()
        counted = {"hits": np.ones(len(frame), dtype="int64"), "bytes": frame["size"].to_numpy()}
        columns = {
            "hour": (local // 3600).astype("int64"),
            "status": status,
            "request": frame["request"].array,
            "not_found": status == 404,
            "host": frame["client"].array,
            "referrer": frame["referer"].array,
            "agent": frame["agent"].array,
        }
        for name, keys in KEYS.items():
            part = pd.DataFrame({**{key: columns[key] for key in keys}, **counted})
            self._add_part(name, part.groupby(list(keys), sort=False, as_index=False).sum())
        # GoAccess leaves 4xx responses out of unique visitors.
        visit = (status < 400) | (status > 499)
        days = (local[visit] // 86400).astype("int64")
        hashes = visitor_hashes(frame["client"][visit], frame["agent"][visit])
        self._visitors.append(pd.DataFrame({"day": days, "key": hashes}).drop_duplicates())
        if sum(map(len, self._visitors)) > 2_000_000 and len(self._visitors) > 1:
            self._visitors = [_distinct(self._visitors)]

    def _add_part(self, name: str, part: pd.DataFrame) -> None:
        parts = self._parts.setdefault(name, [])
        parts.append(part)
        if len(parts) >= _COMPACT_EVERY:
            self._parts[name] = [_sum(name, parts)]

    # -- reading -----------------------------------------------------------

    def table(self, name: str) -> pd.DataFrame:
        """One table of counts (see `KEYS`): key columns, then hits and bytes."""
        total = _sum(name, self._parts.get(name, []))
        self._parts[name] = [total]
        return total

    def visitors(self) -> pd.DataFrame:
        """The distinct (day, key) of visitors, as columns ``day`` and ``key``."""
        total = _distinct(self._visitors)
        self._visitors = [total]
        return total

    @property
    def lines(self) -> int:
        return sum(counts.lines for counts in self.files.values())

    @property
    def failed(self) -> int:
        return sum(counts.failed for counts in self.files.values())

    def same_reading(self, other: State) -> bool:
        """Whether the two states read lines alike, so that they can be merged."""
        return (self.log_format, self.since, self.until) == (
            other.log_format,
            other.since,
            other.until,
        )

    # -- saving ------------------------------------------------------------

    def save(self, path: str) -> None:
        """Write the state to `path` atomically: a zip of ``meta.json`` and one Arrow table each."""
        with (
            atomic_output(path, default_mode=0o600) as stream,
            zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as archive,
        ):
            archive.writestr("meta.json", json.dumps(self._meta()))
            for name in KEYS:
                archive.writestr(f"{name}.arrow", _arrow_bytes(self.table(name)))
            archive.writestr("visitors.arrow", _arrow_bytes(self.visitors()))

    def _meta(self) -> dict[str, Any]:
        finite = math.isfinite(self.first_local)
        return {
            "magic": MAGIC,
            "version": VERSION,
            "log_format": self.log_format,
            "since": self.since,
            "until": self.until,
            "excluded": self.excluded,
            "times": [self.first_local, self.last_local, self.first_unix, self.last_unix]
            if finite
            else None,
            "files": {
                path: [c.lines, c.failed, None if c.bad is None else [*c.bad[0], c.bad[1]]]
                for path, c in self.files.items()
            },
            "cursors": [vars(cursor) for cursor in self.cursors],
        }

    @classmethod
    def load(
        cls,
        path: str,
        log_format: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> State:
        """The state saved in `path`; StateError unless it was saved by this or an
        older version, for lines read with the same format and ``--from``/``--to``."""
        try:
            with zipfile.ZipFile(path) as archive:
                meta = json.loads(archive.read("meta.json"))
                if not isinstance(meta, dict) or meta.get("magic") != MAGIC:
                    raise StateError(path, "not a webstats state file")
                if meta["version"] > VERSION:
                    raise StateError(
                        path,
                        f"saved by a newer webstats (state version {meta['version']}, "
                        f"this one reads {VERSION} and older)",
                    )
                state = cls._from_meta(meta)
                for name in KEYS:
                    state._parts[name] = [_arrow_frame(archive.read(f"{name}.arrow"))]
                state._visitors = [_arrow_frame(archive.read("visitors.arrow"))]
        except FileNotFoundError:
            raise
        except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
            raise StateError(path, f"not a readable webstats state ({exc})") from None
        wanted = cls.empty(log_format, since, until)
        if state.log_format != log_format:
            raise StateError(
                path,
                f"it counts lines of log format {format_name(state.log_format)}, "
                f"not {format_name(log_format)}",
            )
        if not state.same_reading(wanted):
            raise StateError(path, "it was built with other --from/--to dates")
        return state

    @classmethod
    def _from_meta(cls, meta: dict[str, Any]) -> State:
        times = meta["times"] or [math.inf, -math.inf, math.inf, -math.inf]
        return cls(
            log_format=meta["log_format"],
            since=meta["since"],
            until=meta["until"],
            excluded=int(meta["excluded"]),
            first_local=times[0],
            last_local=times[1],
            first_unix=times[2],
            last_unix=times[3],
            files={
                path: FileCounts(
                    int(lines), int(failed), None if bad is None else ((bad[0], bad[1]), bad[2])
                )
                for path, (lines, failed, bad) in meta["files"].items()
            },
            cursors=[Cursor(**cursor) for cursor in meta["cursors"]],
        )


def merge(a: State, b: State) -> State:
    """The state of the lines of `a` and of `b`: exactly what one run over both gives.

    Associative and commutative; `a` and `b` are left as they were.  Cursors
    are kept from both (the merged state of two runs resumes both).
    """
    if not a.same_reading(b):
        raise ValueError("states read with different formats or dates cannot be merged")
    files = dict(a.files)
    for path, counts in b.files.items():
        files[path] = files[path].plus(counts) if path in files else counts
    merged = replace(
        a,
        excluded=a.excluded + b.excluded,
        first_local=min(a.first_local, b.first_local),
        last_local=max(a.last_local, b.last_local),
        first_unix=min(a.first_unix, b.first_unix),
        last_unix=max(a.last_unix, b.last_unix),
        files=dict(sorted(files.items())),
        cursors=sorted(set(a.cursors) | set(b.cursors), key=_cursor_order),
        _parts={
            name: [_sum(name, a._parts.get(name, []) + b._parts.get(name, []))] for name in KEYS
        },
        _visitors=[_distinct(a._visitors + b._visitors)],
    )
    return merged


def visitor_hashes(clients: pd.Series, agents: pd.Series) -> np.ndarray:
    """A 64-bit hash of each (client, user agent), the same in every process and chunk.

    Each distinct string is hashed once (pandas' SipHash with its fixed key),
    and the two hashes are mixed with splitmix64's finalizer.
    """
    return _mix(
        _string_hashes(clients) ^ _mix(_string_hashes(agents) + np.uint64(0x9E3779B97F4A7C15))
    )


def _string_hashes(values: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(values)
    hashes = pd.util.hash_array(np.asarray(uniques, dtype=object), categorize=False)
    return np.asarray(hashes, dtype=np.uint64)[codes]


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _empty(name: str) -> pd.DataFrame:
    columns = {key: pd.Series([], dtype=_KEY_TYPES[key]) for key in KEYS[name]}
    return pd.DataFrame(
        {**columns, "hits": pd.Series([], dtype="int64"), "bytes": pd.Series([], dtype="int64")}
    )


def _sum(name: str, parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [part for part in parts if len(part)]
    if not parts:
        return _empty(name)
    if len(parts) == 1:
        return parts[0]
    merged = pd.concat(parts, ignore_index=True)
    return merged.groupby(list(KEYS[name]), sort=False, as_index=False).sum()


def _distinct(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [part for part in parts if len(part)]
    if not parts:
        return pd.DataFrame({"day": np.array([], "int64"), "key": np.array([], "uint64")})
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)


def _arrow_bytes(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _arrow_frame(data: bytes) -> pd.DataFrame:
    table = pa.ipc.open_file(pa.py_buffer(data)).read_all()
    strings = (pa.string(), pa.large_string())
    return table.to_pandas(types_mapper=lambda t: STRING if t in strings else None)


def _cursor_order(cursor: Cursor) -> tuple[Any, ...]:
    return (cursor.path, cursor.device, cursor.inode, cursor.offset, cursor.head)


def format_name(log_format: str | None) -> str:
    """How a LogFormat is named in messages."""
    return "common/combined" if log_format is None else repr(log_format)
