"""Where pen's records go: a local file (``-l FILE``) or penlogd (``-l HOST:PORT``).

The formats are `pentools.core.records`; each sink writes a record in the
form its destination takes (`write`), so callers need not know which it is.
The file is written once per event-loop turn (all records of one turn in
one write), so a record costs no system call of its own and is on disk
before pen waits for the network again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from pentools.core.addresses import HostPort, address_family, resolve_host
from pentools.core.errors import ConfigError
from pentools.core.records import BalancerRecord
from pentools.pen.config import LogTarget


class FileSink:
    """``-l FILE``: appended, flushed at the end of each loop turn, reopened on HUP."""

    def __init__(self, path: str, call_soon: Callable[[Callable[[], None]], object]) -> None:
        self.description = path
        self._path = path
        self._call_soon = call_soon
        self._pending: list[bytes] = []
        self._fd = self._open()
        #: Records written (the metrics); a file drops none: a write error is pen's error.
        self.written = 0
        self.dropped = 0

    def _open(self) -> int:
        try:
            return os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(self._path, f"cannot open log file: {exc.strerror}") from None

    def write(self, record: BalancerRecord) -> None:
        """Queue the record's local line; it is written at the end of the loop turn."""
        if not self._pending:
            self._call_soon(self.flush)
        self._pending.append(record.to_local())
        self.written += 1

    def flush(self) -> None:
        if self._pending and self._fd >= 0:
            data = b"".join(self._pending)
            self._pending.clear()
            while data:
                written = os.write(self._fd, data)
                data = data[written:]

    def reopen(self) -> None:
        """HUP: flush and open the path again (log rotation).

        The new file is opened before the old one is closed: if it cannot be
        (raises ConfigError), records go on to the old one, not to a closed fd.
        """
        self.flush()
        fd = self._open()
        os.close(self._fd)
        self._fd = fd

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class UdpSink:
    """``-l HOST:PORT``: one datagram per record to penlogd; never blocks, never fails.

    A datagram that cannot be sent (penlogd down, buffer full) is counted and
    dropped: the balancer must not slow down for its log.
    """

    def __init__(self, address: HostPort, ip: str) -> None:
        self.description = str(address)
        self._socket = socket.socket(address_family(ip), socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._socket.connect((ip, address.port))
        self.written = 0
        self.dropped = 0

    def write(self, record: BalancerRecord) -> None:
        """Send the record's datagram now, or count it as dropped."""
        try:
            self._socket.send(record.to_datagram())
        except OSError:
            self.dropped += 1
        else:
            self.written += 1

    def reopen(self) -> None:
        """Nothing to reopen: datagrams are sent as they come."""

    def close(self) -> None:
        self._socket.close()


def open_sink(
    target: LogTarget, call_soon: Callable[[Callable[[], None]], object]
) -> FileSink | UdpSink:
    """The sink for ``-l`` (or penctl ``log``): penlogd's address is resolved here, once."""
    if target.address is not None:
        return UdpSink(target.address, resolve_host(target.address.host)[0])
    assert target.path is not None
    return FileSink(target.path, call_soon)
