"""Bulk parsing of access logs into pandas frames, one chunk at a time.

A chunk is read as Latin-1 text (every byte one character, so nothing is
lost), split into lines by pyarrow, and matched by ONE vectorised regex from
`pentools.core.accesslog.field_regex` (RE2 through
``pyarrow.compute.extract_regex``); times are converted by `parse_clf_times`.
No Python code runs per line, so a 10 GB log streams through in bounded memory.
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

#: Bytes read per chunk: about 18,000 combined lines.  Larger chunks are hardly
#: faster, and every byte of a chunk costs about 20 in copies while it is parsed.
CHUNK_CHARS = 4 * 1024 * 1024


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
            lines = _split_lines(block)
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


def _split_lines(block: bytes) -> pa.Array:
    """One string per line (without its newline or a trailing CR), sharing one buffer."""
    # Arrow strings are UTF-8: bytes over 127 are re-encoded as their Latin-1 characters.
    data = block if block.isascii() else block.decode("latin-1").encode("utf-8")
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10) + 1
    offsets = np.concatenate(([0], ends, [len(data)] if len(data) not in ends else []))
    lines = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data)
    )
    return pc.utf8_rtrim(lines, "\r\n")


def split_lines(block: bytes) -> pa.Array:
    """The lines of a block of whole lines read elsewhere (a partition of a log on a
    cluster), split exactly as the lines of a file read here."""
    return _split_lines(block)


#: A number as logged in ``%>s`` or ``%b``; anything else is no number.
_INTEGER = r"^[+-]?[0-9]{1,18}$"


def _numbers(texts: pa.Array) -> np.ndarray:
    """The integers of a column of text, NaN where there is none."""
    shaped = pc.fill_null(pc.match_substring_regex(texts, _INTEGER), False)
    numbers = pc.cast(pc.if_else(shaped, texts, pa.scalar(None, texts.type)), pa.int64())
    return numbers.to_numpy(zero_copy_only=False).astype("float64")


class ChunkParser:
    """Turns arrays of lines into `ParsedChunk` frames for one LogFormat.

    The regex runs once over the chunk (RE2, ``pyarrow.compute.extract_regex``);
    the columns stay Arrow arrays, and only the valid rows are copied out.
    """

    def __init__(self, log_format: str | None = None) -> None:
        self.regex = field_regex(log_format)

    def parse(self, lines: pa.Array, start: int = 0) -> ParsedChunk:
        """The chunk of `lines` that begins at byte `start` of its file."""
        lines = pc.filter(lines, pc.not_equal(pc.utf8_length(lines), 0))
        count = len(lines)
        matched = pc.extract_regex(lines, self.regex)
        names = {matched.type.field(i).name for i in range(matched.type.num_fields)}

        def field(name: str) -> pa.Array:
            if name in names:
                return pc.struct_field(matched, name)
            return pa.nulls(count, pa.large_string())

        times = parse_clf_times(pd.Series(pd.arrays.ArrowExtensionArray(field("time"))))
        status = _numbers(field("status"))
        size = _numbers(field("size"))
        local = times["local"].to_numpy()
        valid = (
            matched.is_valid().to_numpy(zero_copy_only=False)
            & field("client").is_valid().to_numpy(zero_copy_only=False)
            & ~np.isnan(local)
            & (status >= 100)
            & (status <= 599)
        )
        keep = pa.array(valid)

        def text(name: str) -> pd.arrays.ArrowExtensionArray:
            return pd.arrays.ArrowExtensionArray(pc.fill_null(pc.filter(field(name), keep), "-"))

        # The backend that served the line, when the format says (%A: --tag-backend).
        backend = {"backend": text("backend")} if "backend" in names else {}
        frame = pd.DataFrame(
            {
                **backend,
                "client": text("client"),
                "request": text("request"),
                "status": status[valid].astype("int64"),
                # "-", a negative or a non-number counts as no body, as GoAccess does.
                "size": np.nan_to_num(size[valid]).clip(min=0).astype("int64"),
                "referer": text("referer"),
                "agent": text("agent"),
                "local": local[valid],
                "unix": times["unix"].to_numpy()[valid],
            }
        )
        failed = int(count - valid.sum())
        bad = None
        if failed:
            index = int(np.argmin(valid))
            bad = ((start, index), str(lines[index].as_py()))
        return ParsedChunk(lines=count, failed=failed, frame=frame, bad=bad)
