"""Reading ahead for addresses: look-ups start long before their lines are due.

Output is written in input order, so an address that is never answered
holds its line, and every line after it, for the whole time-out, and only
the look-ahead window keeps the rest moving. When the log is a regular
file, a second process (on the other core) scans it from start to end and
prints each distinct client address as soon as it meets it; webresolve
submits them at once, so the look-ups, and their time-outs, are mostly over
by the time the lines reach the window.

    python -m pentools.webresolve.scout ACCESS_LOG

prints normalized addresses, one per line, each once. It remembers at most
`MAX_FIELDS` distinct first fields, so a log of junk cannot grow it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

from pentools.core.accesslog import first_field_end, open_binary
from pentools.core.addresses import normalize_ip
from pentools.core.errors import InputFileError

READ_SIZE = 1024 * 1024
MAX_FIELDS = 2_000_000


def addresses_in(path: str) -> Iterator[str]:
    """Each distinct address of the log's first fields, a megabyte of log at a time."""
    seen: set[str] = set()  # first fields
    found: set[str] = set()  # addresses (several fields may spell one)
    for lines in _blocks_of_lines(path):
        fields = {line[: first_field_end(line)] for line in lines}
        fields.difference_update(seen)
        if len(seen) + len(fields) > MAX_FIELDS:
            return
        seen.update(fields)
        for field in fields:
            address = normalize_ip(field)
            if address is not None and address not in found:
                found.add(address)
                yield address


def _blocks_of_lines(path: str) -> Iterator[list[str]]:
    with open_binary(path) as stream:
        carry = b""
        while chunk := stream.read(READ_SIZE):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            yield data[:cut].decode("latin-1").split("\n")
        if carry:
            yield [carry.decode("latin-1")]


def can_scout(path: str) -> bool:
    """Only a regular file can be read twice."""
    return path != "-" and os.path.isfile(path)


class Scout:
    """The scanning process and a thread collecting what it prints."""

    def __init__(self, path: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pentools.webresolve.scout", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._lock = threading.Lock()
        self._found: list[str] = []
        self._thread = threading.Thread(target=self._collect, name="webresolve-scout", daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self._found.append(line.decode("ascii", "replace").rstrip("\n"))

    def take(self) -> list[str]:
        """The addresses found since the last call."""
        with self._lock:
            found, self._found = self._found, []
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()
        self._thread.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def main() -> None:
    path = sys.argv[1]
    out = sys.stdout
    try:
        batch: list[str] = []
        for address in addresses_in(path):
            batch.append(address)
            if len(batch) >= 64:
                out.write("\n".join(batch) + "\n")
                out.flush()
                batch = []
        if batch:
            out.write("\n".join(batch) + "\n")
        out.flush()
    except (InputFileError, OSError, EOFError, KeyboardInterrupt):
        # The main process reads the file itself and reports its errors; a
        # broken pipe means it is done.
        sys.exit(0)


if __name__ == "__main__":
    main()
