"""Host, address and host:port handling shared by every command (IPv4 and IPv6)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache

from pentools.core.errors import AddressError


@dataclass(frozen=True)
class HostPort:
    """A host (name or address, brackets removed) and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def normalize_ip(text: str) -> str | None:
    """The canonical text of an IP address, or None if `text` is not one.

    IPv6 is compressed and lower-cased, brackets are accepted, and IPv4-mapped
    IPv6 (``::ffff:192.0.2.1``, what a dual-stack socket reports) becomes IPv4,
    so that one client or server always compares equal to itself.
    """
    # Fast path for the common case, a canonical dotted quad: it is called
    # for every record, and millions of clients would thrash any cache.
    try:
        if socket.inet_ntoa(socket.inet_aton(text)) == text and text.count(".") == 3:
            return text
    except (OSError, ValueError):  # not an address, a NUL byte, non-ASCII
        pass
    return _normalize_other(text)


@lru_cache(maxsize=65536)
def _normalize_other(text: str) -> str | None:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def is_ip_address(text: str) -> bool:
    """True if `text` is an IPv4 or IPv6 address (no port, brackets allowed)."""
    return normalize_ip(text) is not None


def address_family(address: str) -> socket.AddressFamily:
    """The socket family of an IP address: AF_INET6 if it has a colon, else AF_INET."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def format_host_port(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_port(text: str, what: str = "port") -> int:
    """A TCP/UDP port number from text, 1..65535."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise AddressError(text, f"{what} must be a number from 1 to 65535")
    return int(text)


def parse_host_port(
    text: str, *, default_host: str | None = None, default_port: int | None = None
) -> HostPort:
    """Parse ``host:port``, ``[v6]:port``, a bare ``port`` or a bare host.

    A bare number is a port (with `default_host`); a bare IPv6 address or a
    name without a port needs `default_port`.
    """
    if not text:
        raise AddressError(text, "empty")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or normalize_ip(host) is None or ":" not in host:
            raise AddressError(text, "expected [IPv6-address]:port")
        if not rest:
            port_text = None
        elif rest.startswith(":"):
            port_text = rest[1:]
        else:
            raise AddressError(text, "unexpected text after ]")
    elif text.isdigit():
        host, port_text = "", text
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None  # a name, an IPv4 or a bare IPv6 address
    if not host:
        if default_host is None:
            raise AddressError(text, "a host is required")
        host = default_host
    if port_text is None:
        if default_port is None:
            raise AddressError(text, "a port is required (host:port or [IPv6]:port)")
        return HostPort(host, default_port)
    return HostPort(host, parse_port(port_text))


def split_host_prefix(text: str) -> tuple[str, str]:
    """Split ``HOST:REST`` where HOST may be a name, IPv4, ``[IPv6]`` or bare IPv6.

    Used for mergelogs' ``SERVER:LOGFILE``: a bare IPv6 server is taken as the
    longest prefix before a colon that reads as an address.
    """
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]:")
        if sep and normalize_ip(host):
            return host, rest
        raise AddressError(text, "expected [IPv6-address]:REST")
    colons = [i for i, char in enumerate(text) if char == ":"]
    for index in reversed(colons):
        if ":" in text[:index] and normalize_ip(text[:index]):
            return text[:index], text[index + 1 :]
    if not colons or colons[0] == 0:
        raise AddressError(text, "expected SERVER:REST")
    return text[: colons[0]], text[colons[0] + 1 :]


def resolve_host(host: str, family: int = socket.AF_UNSPEC) -> list[str]:
    """The normalized IP addresses of a name or address, in resolver order."""
    literal = normalize_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressError(host, f"cannot resolve: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        address = normalize_ip(str(info[4][0]))
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise AddressError(host, "no address found")
    return addresses


def split_listen_address(text: str) -> str | None:
    """The Unix socket path if `text` names one (it contains a ``/``), else None.

    The original's rule: ``pen /run/pen.sock ...`` listens on a Unix socket,
    anything else is ``[host:]port``.
    """
    return text if "/" in text else None
