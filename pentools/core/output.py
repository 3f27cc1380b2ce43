"""Output files written whole or not at all (for cron jobs and the readers of their files)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from pentools.core.errors import OutputFileError


@contextmanager
def atomic_output(path: str, default_mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` only when the block ends without error.

    It is written as a temporary file in the same directory, synced, and
    renamed over `path`: a reader sees the old file or the new one, never
    half of one.  The new file keeps the mode of the one it replaces, or
    gets `default_mode`.  On error the temporary file is removed and
    `path` is left as it was; OS errors become `OutputFileError`.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = default_mode
    except OSError as exc:
        raise OutputFileError(path, exc.strerror or str(exc)) from None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    except OSError as exc:
        raise OutputFileError(path, exc.strerror or str(exc)) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException as exc:
        os.unlink(temporary)
        if isinstance(exc, OSError) and not isinstance(exc, OutputFileError):
            raise OutputFileError(path, exc.strerror or str(exc)) from None
        raise
