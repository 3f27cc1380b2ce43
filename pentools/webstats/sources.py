"""Reading logs into a State: whole, or only what a saved state has not counted.

An incremental run (``webstats report --state``) must count every line once,
whatever logrotate did between two runs.  A file is known again by its
content, not its name: a `Cursor` keeps the device and inode of the file, a
hash of its first bytes (decompressed) and the offset counted to.  Then:

* ``mv access.log access.log.1`` keeps the inode and the first bytes: the
  old file is read on from its offset, the new ``access.log`` from 0;
* ``access.log.2.gz``, the compressed copy of a counted file, has the same
  first bytes: when gzip's trailer says its length is the offset counted,
  it is skipped without decompressing, else read on from the offset;
* copytruncate leaves the inode but the file is shorter than the offset, or
  starts with other bytes: it is read from 0.

Only whole lines are counted; a line still being written is read next time.
A run costs in proportion to the new lines (plus the size of the state).
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from pentools.core.accesslog import is_gzip, open_binary
from pentools.core.errors import InputFileError
from pentools.webstats.parse import CHUNK_CHARS, ChunkParser, read_blocks
from pentools.webstats.state import Cursor, State

#: Bytes of a file's content that identify it.
HEAD_SIZE = 4096
#: Cursors kept in a state (one per rotated file: years of daily rotations).
MAX_CURSORS = 2000


def count_files(
    paths: list[str],
    state: State,
    *,
    resume: bool = False,
    chunk_chars: int = CHUNK_CHARS,
) -> State:
    """Count the lines of `paths` into `state` (in place) and return it.

    With `resume`, each file is matched with the cursors of `state` and read
    from where they stopped, only whole lines, and the cursors are updated.
    """
    parser = ChunkParser(state.log_format)
    if not resume:
        for path in paths:
            for block in read_blocks(path, 0, chunk_chars):
                state.add(parser.parse(block.lines, block.start), path)
        return state
    unclaimed = list(state.cursors)
    plans = _plan(paths, unclaimed)
    new_cursors: list[Cursor] = []
    for path, known in plans:
        identity = _Identity.of(path)
        offset = 0 if known is None else known.offset
        if known is not None and identity.compressed and identity.gzip_size == offset % 2**32:
            end = offset  # a compressed copy of what was counted: nothing new
        else:
            if not identity.compressed and identity.size < offset:
                offset = 0  # copytruncate: the file was emptied and written again
            end = offset
            for block in read_blocks(path, offset, chunk_chars):
                if not block.complete:
                    break
                state.add(parser.parse(block.lines, block.start), path)
                end = block.end
        new_cursors.append(identity.cursor(end))
    state.cursors = (unclaimed + new_cursors)[-MAX_CURSORS:]
    return state


def _plan(paths: list[str], unclaimed: list[Cursor]) -> list[tuple[str, Cursor | None]]:
    """Each path with the cursor it resumes (None: read from 0); claimed cursors
    are taken out of `unclaimed`.  The same inode goes first, then the same head."""
    heads = {path: _Identity.of(path) for path in paths}
    known: dict[str, Cursor | None] = dict.fromkeys(paths)
    for same_inode in (True, False):
        for path in paths:
            if known[path] is not None:
                continue
            identity = heads[path]
            matches = [
                cursor
                for cursor in unclaimed
                if cursor.head_size
                and identity.starts_like(cursor)
                and (not same_inode or (cursor.device, cursor.inode) == identity.inode_key)
            ]
            if matches:
                best = max(matches, key=lambda cursor: cursor.offset)
                known[path] = best
                unclaimed.remove(best)
    # A counted inode whose start changed was truncated and rewritten: its cursor goes.
    for path in paths:
        if known[path] is None:
            key = heads[path].inode_key
            unclaimed[:] = [c for c in unclaimed if (c.device, c.inode) != key]
    return [(path, known[path]) for path in paths]


@dataclass(frozen=True)
class _Identity:
    """What is known of a file before reading it."""

    path: str
    device: int
    inode: int
    size: int
    compressed: bool
    head: bytes
    gzip_size: int | None

    @classmethod
    def of(cls, path: str) -> _Identity:
        if path == "-":
            raise InputFileError(path, "standard input cannot be resumed with --state")
        try:
            info = os.stat(path)
            with open(path, "rb") as raw:
                compressed = is_gzip(path, raw.read(2))
                gzip_size = None
                if compressed and info.st_size >= 18:
                    raw.seek(-4, os.SEEK_END)
                    gzip_size = struct.unpack("<I", raw.read(4))[0]
        except OSError as exc:
            raise InputFileError(path, exc.strerror or str(exc)) from None
        stream = open_binary(path)
        try:
            head = stream.read(HEAD_SIZE)
        except (OSError, EOFError) as exc:
            raise InputFileError(path, str(exc)) from None
        finally:
            stream.close()
        return cls(path, info.st_dev, info.st_ino, info.st_size, compressed, head, gzip_size)

    @property
    def inode_key(self) -> tuple[int, int]:
        return (self.device, self.inode)

    def starts_like(self, cursor: Cursor) -> bool:
        prefix = self.head[: cursor.head_size]
        return len(prefix) == cursor.head_size and _digest(prefix) == cursor.head

    def cursor(self, offset: int) -> Cursor:
        """The cursor of this file counted to `offset`."""
        size = min(offset, len(self.head))
        head = self.head[:size]
        return Cursor(self.path, self.device, self.inode, _digest(head), size, offset)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()
