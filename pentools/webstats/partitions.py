"""Logs cut into partitions that the workers of a cluster read on their own.

A plain file is cut into byte ranges, and a range owns exactly the lines that
*start* inside it (the rule of Hadoop's and Dask's text readers): its reader
skips the line it begins in the middle of, and reads past its end to finish
its last line.  Whatever the cut points, every line is read once, including
a last line without a newline and lines longer than a range.  A compressed
file cannot be entered in the middle: it is one partition.

Local paths are made absolute, for workers started in another directory;
``scheme://`` URLs are opened through fsspec (which Dask brings), so that the
inputs need not be on a filesystem that every worker shares.
"""

from __future__ import annotations

import gzip
import itertools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, cast

from pentools.core.accesslog import blocks_of_lines, is_gzip
from pentools.core.errors import ConfigError, InputFileError, MissingExtraError

#: Bytes read at a time while looking for the end of a line.
_SCAN_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Partition:
    """The lines of `location` that start in bytes [start, end); a compressed file whole.

    `path` is the file as the user named it, which the report shows.
    """

    path: str
    location: str
    start: int
    end: int
    compressed: bool


def plan_partitions(paths: Sequence[str], size: int) -> list[Partition]:
    """The partitions of `paths`, in order: plain files in ranges of about `size` bytes."""
    if size < 1:
        raise ConfigError(str(size), "a partition needs at least one byte")
    partitions: list[Partition] = []
    for path in paths:
        if path == "-":
            raise ConfigError(path, "standard input cannot be read by the workers of a cluster")
        location = path if "://" in path else os.path.abspath(path)
        with _reading(location) as stream:
            compressed = is_gzip(location, stream.read(2))
            total = stream.seek(0, os.SEEK_END)
        if compressed:
            partitions.append(Partition(path, location, 0, total, True))
            continue
        count = max(1, -(-total // size))
        cuts = [total * index // count for index in range(count + 1)]
        partitions.extend(
            Partition(path, location, start, end, False) for start, end in itertools.pairwise(cuts)
        )
    return partitions


def read_partition(partition: Partition, block_size: int) -> Iterator[tuple[int, bytes]]:
    """The lines a partition owns, in blocks of about `block_size` bytes of whole lines,
    each with its offset in the file (in the decompressed content of a compressed file)."""
    with _reading(partition.location) as stream:
        if partition.compressed:
            begin = 0
            content = cast(IO[bytes], gzip.GzipFile(fileobj=stream))
        else:
            begin = _line_start(stream, partition.start)
            finish = _line_start(stream, partition.end)
            stream.seek(begin)
            content = cast(IO[bytes], _Window(stream, finish - begin))
        for block in blocks_of_lines(content, block_size):
            yield begin, block
            begin += len(block)


def _line_start(stream: IO[bytes], offset: int) -> int:
    """Where the first line that starts at or after `offset` starts (the end if none does)."""
    if offset == 0:
        return 0
    stream.seek(offset - 1)
    position = offset - 1
    while block := stream.read(_SCAN_BYTES):
        newline = block.find(b"\n")
        if newline >= 0:
            return position + newline + 1
        position += len(block)
    return position


class _Window:
    """At most `length` bytes of a stream from where it stands: what `blocks_of_lines` reads."""

    def __init__(self, stream: IO[bytes], length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, size: int) -> bytes:
        data = self._stream.read(min(size, self._left))
        self._left -= len(data)
        return data


@contextmanager
def _reading(location: str) -> Iterator[IO[bytes]]:
    """A log opened for reading as bytes (a path or an fsspec URL); errors are InputFileError."""
    try:
        stream = _open(location)
    except OSError as exc:
        raise InputFileError(location, exc.strerror or str(exc)) from None
    try:
        yield stream
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputFileError(location, str(exc)) from None
    finally:
        stream.close()


def _open(location: str) -> IO[bytes]:
    if "://" not in location:
        return open(location, "rb")
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError("reading a URL", "dask") from None
    try:
        return cast(IO[bytes], fsspec.open(location, "rb").open())
    except ValueError as exc:  # an unknown protocol, or a malformed URL
        raise InputFileError(location, str(exc)) from None
