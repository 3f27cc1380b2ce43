"""Writing pages for cron: whole or not at all."""

from __future__ import annotations

import sys

from pentools.core.output import atomic_output


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
    with atomic_output(path) as stream:
        stream.write(text.encode("utf-8"))
