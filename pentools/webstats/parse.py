"""Bulk parsing of access logs into pandas frames, one chunk at a time.

A chunk is read as Latin-1 text (every byte one character, so nothing is
lost), split into lines by pyarrow, and matched by ONE vectorised regex from
`pentools.core.accesslog.field_regex` (RE2 through ``Series.str.extract`` on
pyarrow strings); times are converted by `parse_clf_times`.  No Python code
runs per line, so a 10 GB log streams through in bounded memory.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pentools.core.accesslog import blocks_of_lines, field_regex, open_binary, parse_clf_times
from pentools.core.errors import InputFileError

#: Characters read per chunk: about 75,000 combined lines.
CHUNK_CHARS = 16 * 1024 * 1024

#: The fields every parsed chunk has, whatever the LogFormat logged.
FIELDS = ("client", "time", "request", "status", "size", "referer", "agent")


@dataclass(frozen=True, slots=True)
class ParsedChunk:
    """One chunk of a log: its valid lines as a frame, and how many lines failed.

    `lines` counts the non-empty lines (empty lines are not requests, as in
    GoAccess); a line fails when it does not fit the format, its time is not a
    valid ``%t`` or its status is not a number from 100 to 599.  `bad` is the
    first failed line with its place in the file, (byte offset of the chunk,
    index in the chunk): the smallest place over all chunks is the first bad
    line of the file, whichever order the chunks are counted in.
    """

    lines: int
    failed: int
    frame: pd.DataFrame
    bad: tuple[tuple[int, int], str] | None = None


@dataclass(frozen=True, slots=True)
class LineBlock:
    """Whole lines of a file: `start` and `end` are byte offsets of the content
    (decompressed for ``.gz``); `complete` is False for a last line without its newline."""

    start: int
    end: int
    lines: pa.Array
    complete: bool


def read_blocks(path: str, start: int = 0, chunk_chars: int = CHUNK_CHARS) -> Iterator[LineBlock]:
    """The lines of a log from byte `start` on (``-`` is stdin, ``.gz`` decompressed)."""
    stream = open_binary(path)
    try:
        if start:
            stream.seek(start)  # a gzip stream decompresses up to it
        position = start
        for block in blocks_of_lines(stream, chunk_chars):
            end = position + len(block)
            lines = _split_lines(block.decode("latin-1"))
            yield LineBlock(position, end, lines, block.endswith(b"\n"))
            position = end
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputFileError(path, str(exc)) from None
    finally:
        if path != "-":
            stream.close()


def read_line_chunks(path: str, chunk_chars: int = CHUNK_CHARS) -> Iterator[pa.Array]:
    """The lines of a log (``-`` is stdin, ``.gz`` decompressed) in pyarrow arrays."""
    for block in read_blocks(path, 0, chunk_chars):
        yield block.lines


def _split_lines(text: str) -> pa.Array:
    """One string per line (without its newline or a trailing CR), sharing one buffer."""
    data = text.encode("utf-8")  # Latin-1 text as UTF-8, the encoding of arrow strings
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    offsets = np.concatenate(([0], ends, [len(data)] if len(data) not in ends else []))
    lines = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data)
    )
    return pc.utf8_rtrim(lines, "\r\n")


def split_lines(block: bytes) -> pa.Array:
    """The lines of a block of whole lines read elsewhere (a partition of a log on a
    cluster), split exactly as the lines of a file read here."""
    return _split_lines(block.decode("latin-1"))


class ChunkParser:
    """Turns arrays of lines into `ParsedChunk` frames for one LogFormat."""

    def __init__(self, log_format: str | None = None) -> None:
        self.regex = field_regex(log_format)

    def parse(self, lines: pa.Array, start: int = 0) -> ParsedChunk:
        """The chunk of `lines` that begins at byte `start` of its file."""
        lines = pc.filter(lines, pc.not_equal(pc.utf8_length(lines), 0))
        series = pd.Series(pd.arrays.ArrowExtensionArray(lines))
        fields = series.str.extract(self.regex, expand=True)
        for name in FIELDS:
            if name not in fields:
                fields[name] = pd.Series(pd.NA, index=fields.index, dtype=series.dtype)
        times = parse_clf_times(fields["time"])
        status = pd.to_numeric(fields["status"], errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        size = pd.to_numeric(fields["size"], errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        valid = (
            fields["client"].notna().to_numpy()
            & ~np.isnan(times["local"].to_numpy())
            & (status >= 100)
            & (status <= 599)
        )
        frame = pd.DataFrame(
            {
                "client": fields["client"],
                "request": fields["request"].fillna("-"),
                "status": np.nan_to_num(status).astype("int64"),
                # "-", a negative or a non-number counts as no body, as GoAccess does.
                "size": np.nan_to_num(size).clip(min=0).astype("int64"),
                "referer": fields["referer"].fillna("-"),
                "agent": fields["agent"].fillna("-"),
                "local": times["local"],
                "unix": times["unix"],
            }
        )[valid]
        failed = int(len(series) - valid.sum())
        bad = None
        if failed:
            index = int(np.argmin(valid))
            bad = ((start, index), str(lines[index].as_py()))
        return ParsedChunk(lines=len(series), failed=failed, frame=frame, bad=bad)
