"""Reads log lines from a stream and sends each as one UDP datagram, never blocking.

penlog sits in Apache's log pipe: if it stalls, Apache stalls.  So every send
is non-blocking and every send error (penlogd down, ICMP port unreachable, a
full buffer) is counted and skipped; only end of input ends it.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import BinaryIO

from pentools.core.addresses import normalize_ip, resolve_host
from pentools.core.errors import AddressError

#: The largest UDP payload over IPv4 and IPv6 (65535 minus the headers).
UDP_MAX = {socket.AF_INET: 65507, socket.AF_INET6: 65527}

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
    """What happened to the lines read: sent, dropped (send failed), truncated."""

    sent: int = 0
    dropped: int = 0
    truncated: int = 0

    def summary(self) -> str:
        return f"sent {self.sent}, dropped {self.dropped}, truncated {self.truncated}"


def _family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def choose_addresses(config: SenderConfig) -> tuple[str, str | None]:
    """The destination and source addresses: one family, resolved once."""
    source = None
    if config.source is not None:
        source = normalize_ip(config.source)
        if source is None:
            source = resolve_host(config.source)[0]
    candidates = resolve_host(config.server)
    if source is not None:
        wanted = _family_of(source)
        same_family = [a for a in candidates if _family_of(a) == wanted]
        if not same_family:
            raise AddressError(config.server, f"has no address of the family of {source}")
        candidates = same_family
    return candidates[0], source


class Sender:
    """A non-blocking UDP socket connected to penlogd."""

    def __init__(self, config: SenderConfig) -> None:
        destination, source = choose_addresses(config)
        self.family = _family_of(destination)
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
                if exc.errno == errno.ECONNREFUSED:
                    continue  # the error was an earlier datagram's: this one may still go
                if exc.errno in _TRANSIENT:
                    break
                raise
            else:
                self.stats.sent += 1
                return True
        self.stats.dropped += 1
        return False

    def pump(self, stream: BinaryIO) -> SenderStats:
        """Send every line of `stream`, one datagram each, until end of input."""
        limit = self.max_datagram
        while True:
            line = stream.readline(limit)
            if not line:
                return self.stats
            if len(line) == limit and not line.endswith(b"\n"):
                line = line[: limit - 1] + b"\n"
                self.stats.truncated += 1
                _skip_rest_of_line(stream, limit)
            elif not line.endswith(b"\n"):
                line += b"\n"  # the last line, unterminated: still one line for penlogd
            self.send(line)

    def close(self) -> None:
        self._socket.close()


def _skip_rest_of_line(stream: BinaryIO, chunk: int) -> None:
    while True:
        rest = stream.readline(chunk)
        if not rest or rest.endswith(b"\n"):
            return
