"""Reading ahead for addresses: look-ups start long before their lines are due.

Output is written in input order, so an address that is never answered
holds its line, and every line after it, for the whole time-out, and only
the look-ahead window keeps the rest moving. When the log is a regular
file and a query has gone unanswered, a second process (on the other core)
scans the rest of the file and prints each distinct client address as soon
as it meets it; webresolve submits them at once, so the look-ups, and their
time-outs, are mostly over by the time the lines reach the window. Without
time-outs it is not started: the window hides round trips well enough, and
the second scan would only compete for the CPU.

    python -m pentools.webresolve.scout ACCESS_LOG [OFFSET]

prints normalized addresses, one per line, each once. It remembers at most
`MAX_FIELDS` distinct first fields, so a log of junk cannot grow it. With an
OFFSET the file is read as is (not decompressed) from the first whole line
there: that is how a log is scouted from where webresolve has got to, and
standard input when it is a regular file (``webresolve < access_log``), as
/dev/stdin reopened.
"""

from __future__ import annotations

import os
import queue
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from pentools.core.accesslog import blocks_of_lines, first_field_end, is_gzip, open_binary
from pentools.core.addresses import normalize_ip
from pentools.core.errors import InputFileError

READ_SIZE = 1024 * 1024
#: Distinct first fields remembered at most (about 100 MB of them).
MAX_FIELDS = 1_000_000
#: Chunks of addresses (up to 64 KiB of output each) waiting to be taken.
QUEUED_CHUNKS = 16


def addresses_in(path: str, offset: int | None = None) -> Iterator[str]:
    """Each distinct address of the log's first fields, a megabyte of log at a time."""
    seen: set[str] = set()  # first fields
    found: set[str] = set()  # addresses (several fields may spell one)
    for lines in _blocks_of_lines(path, offset):
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


def _blocks_of_lines(path: str, offset: int | None) -> Iterator[list[str]]:
    if offset is None:
        stream = open_binary(path)  # .gz too, as the main process reads it
    else:
        stream = open(path, "rb")  # noqa: SIM115 - closed below
        if offset > 0:
            stream.seek(offset - 1)
            if stream.read(1) != b"\n":
                stream.readline()  # the rest of a line cut in two: its field is no address
    with stream:
        for block in blocks_of_lines(stream, READ_SIZE):
            yield block.decode("latin-1").split("\n")


@dataclass(frozen=True)
class Source:
    """Where to scout the log: a path, and the offset webresolve started reading it at.

    `start` is None for a compressed file, which is scanned from its beginning.
    """

    path: str
    start: int | None

    def arguments(self, bytes_read: int) -> list[str]:
        """The scout's arguments once webresolve has read `bytes_read` bytes."""
        if self.start is None:
            return [self.path]
        return [self.path, str(self.start + bytes_read)]


def scout_source(path: str) -> Source | None:
    """How the log webresolve reads could be scouted, or None if it cannot be read twice."""
    if path != "-":
        if not os.path.isfile(path):
            return None
        try:
            with open(path, "rb") as stream:
                compressed = is_gzip(path, stream.read(2))
        except OSError:
            return None
        return Source(path, None if compressed else 0)
    try:
        fd = sys.stdin.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return Source("/dev/stdin", os.lseek(fd, 0, os.SEEK_CUR))
    except (OSError, ValueError):
        return None


class Scout:
    """The scanning process, and a thread passing on what it prints.

    At most `QUEUED_CHUNKS` chunks of its output wait here; beyond that the
    pipe fills and the scanning process waits, so reading ahead never holds
    more than that in memory.
    """

    def __init__(self, arguments: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pentools.webresolve.scout", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._found: queue.Queue[list[str]] = queue.Queue(QUEUED_CHUNKS)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="webresolve-scout", daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        carry = b""
        while not self._stopping.is_set():
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                addresses = data[:cut].decode("ascii", "replace").split()
                while not self._stopping.is_set():
                    try:
                        self._found.put(addresses, timeout=0.1)
                        break
                    except queue.Full:
                        continue

    def take(self) -> list[str]:
        """Addresses found since the last call (a chunk of them, or none yet)."""
        try:
            return self._found.get_nowait()
        except queue.Empty:
            return []

    def stop(self) -> None:
        self._stopping.set()
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait()
        self._thread.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def main() -> None:
    path = sys.argv[1]
    offset = int(sys.argv[2]) if len(sys.argv) > 2 else None
    out = sys.stdout
    try:
        batch: list[str] = []
        for address in addresses_in(path, offset):
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
