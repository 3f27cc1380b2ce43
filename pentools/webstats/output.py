"""Writing pages for cron: whole or not at all."""

from __future__ import annotations

import os
import sys
import tempfile

from pentools.core.errors import PentoolsError


class OutputError(PentoolsError, OSError):
    """A page that cannot be written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


def write_atomically(path: str, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file and a rename.

    A reader (a web server, a browser) sees the old page or the new one,
    never half of one; ``-`` writes to stdout.  The page keeps the mode of
    the file it replaces, or gets 0644: it is meant to be published.
    """
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    except OSError as exc:
        raise OutputError(path, exc.strerror or str(exc)) from None
    temp = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=directory, prefix=".webstats-", delete=False
        ) as handle:
            temp = handle.name
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        if temp is not None and os.path.exists(temp):
            os.unlink(temp)
        raise OutputError(path, exc.strerror or str(exc)) from None
