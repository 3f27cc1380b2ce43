"""Reads log lines from a stream and sends each as one UDP datagram, never blocking.

penlog sits in Apache's log pipe: if it stalls, Apache stalls.  So every send
is non-blocking and every send error (penlogd down, ICMP port unreachable, a
full buffer) is counted and skipped; only end of input ends it.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from collections.abc import Callable
from dataclasses import dataclass

from pentools.core.addresses import address_family, resolve_host
from pentools.core.errors import AddressError

#: The largest UDP payload over IPv4 and IPv6 (65535 minus the headers).
UDP_MAX = {socket.AF_INET: 65507, socket.AF_INET6: 65527}

#: Bytes read from stdin at a time.
READ_SIZE = 256 * 1024

#: Errors that a send may report about this or an earlier datagram; all mean
#: "this one did not go", none means "stop".
_TRANSIENT = {
    errno.EAGAIN,
    errno.ENOBUFS,
    errno.ECONNREFUSED,  # ICMP port unreachable from an earlier datagram
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EMSGSIZE,
    errno.EPERM,  # a firewall said no
    errno.ENETDOWN,
    errno.EHOSTDOWN,
}


@dataclass(frozen=True)
class SenderConfig:
    """Where to send (resolved once at start) and from which source address."""

    server: str
    port: int
    source: str | None = None


@dataclass
class SenderStats:
    """What happened to the lines read.

    `sent`: handed to the kernel and not reported refused; `dropped`: known
    not delivered (send failed, or refused by ICMP); `truncated`: longer than
    the UDP limit.
    """

    sent: int = 0
    dropped: int = 0
    truncated: int = 0

    def summary(self) -> str:
        return f"sent {self.sent}, dropped {self.dropped}, truncated {self.truncated}"


def choose_addresses(config: SenderConfig) -> tuple[str, str | None]:
    """The destination and source addresses: one family, resolved once."""
    source = None if config.source is None else resolve_host(config.source)[0]
    candidates = resolve_host(config.server)
    if source is not None:
        wanted = address_family(source)
        same_family = [a for a in candidates if address_family(a) == wanted]
        if not same_family:
            raise AddressError(config.server, f"has no address of the family of {source}")
        candidates = same_family
    return candidates[0], source


class Sender:
    """A non-blocking UDP socket connected to penlogd."""

    def __init__(self, config: SenderConfig) -> None:
        destination, source = choose_addresses(config)
        self.family = address_family(destination)
        self.max_datagram = UDP_MAX[self.family]
        self.stats = SenderStats()
        self._socket = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            if source is not None:
                self._socket.bind((source, 0))
            self._socket.connect((destination, config.port))
        except OSError as exc:
            self._socket.close()
            where = source if source is not None else destination
            raise AddressError(where, exc.strerror or str(exc)) from None
        self._socket.setblocking(False)

    def send(self, datagram: bytes) -> bool:
        """Send one datagram; False (and counted as dropped) if it could not go."""
        for _attempt in range(2):
            try:
                self._socket.send(datagram)
            except OSError as exc:
                if exc.errno == errno.ECONNREFUSED and self.stats.sent:
                    # An earlier datagram was refused (ICMP port unreachable:
                    # penlogd is down).  Count it as dropped; this one may go.
                    self.stats.sent -= 1
                    self.stats.dropped += 1
                    continue
                if exc.errno in _TRANSIENT:
                    break
                raise
            else:
                self.stats.sent += 1
                return True
        self.stats.dropped += 1
        return False

    def pump(self, fd: int, stopping: Callable[[], bool], wakeup: int) -> SenderStats:
        """Send every line read from `fd`, one datagram each, until end of input.

        `wakeup` is a descriptor that becomes readable when a signal arrives
        (``signal.set_wakeup_fd``); then `stopping()` says whether to finish:
        the lines already read are still sent, so TERM loses nothing.
        """
        splitter = LineSplitter(self.max_datagram)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wakeup, select.POLLIN)
        try:
            while not stopping():
                events = dict(poller.poll())
                if wakeup in events:
                    os.read(wakeup, 512)
                if fd not in events:
                    continue
                chunk = os.read(fd, READ_SIZE)
                if not chunk:
                    break
                for line in splitter.feed(chunk):
                    self.send(line)
            for line in splitter.finish():
                self.send(line)
        finally:
            self.stats.truncated = splitter.truncated
        return self.stats

    def close(self) -> None:
        self._socket.close()


class LineSplitter:
    """Cuts a byte stream into lines of at most `limit` bytes, newline included.

    A longer line is cut to `limit` bytes (its newline kept) and the rest of
    it skipped; an unterminated last line gets its newline at `finish`.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.truncated = 0
        self._partial = bytearray()
        self._skipping = False  # inside a line already sent truncated

    def feed(self, chunk: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start : end + 1]
            start = end + 1
            if self._skipping:
                self._skipping = False
                continue
            if self._partial:
                piece = bytes(self._partial) + piece
                self._partial.clear()
            if len(piece) > self.limit:
                piece = self._truncate(piece)
            lines.append(piece)
        if start < len(chunk) and not self._skipping:
            self._partial += chunk[start:]
            if len(self._partial) >= self.limit:  # cannot fit with its newline any more
                lines.append(self._truncate(bytes(self._partial)))
                self._partial.clear()
                self._skipping = True
        return lines

    def finish(self) -> list[bytes]:
        """The unterminated last line, if any, as a line."""
        if not self._partial:
            return []
        line = bytes(self._partial) + b"\n"
        self._partial.clear()
        return [line]

    def _truncate(self, line: bytes) -> bytes:
        self.truncated += 1
        return line[: self.limit - 1] + b"\n"
