"""The PROXY protocol header (HAProxy's spec, v1 text and v2 binary).

Sent first on the backend connection so that a backend configured for it
(HAProxy ``accept-proxy``, Apache ``RemoteIPProxyProtocol On``, nginx
``listen ... proxy_protocol``) sees the real client address (SPEC §8).
"""

from __future__ import annotations

import ipaddress
import struct

_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_PROXY_COMMAND = 0x21  # version 2, PROXY
_V2_TCP4 = 0x11
_V2_TCP6 = 0x21


def proxy_header_for(
    version: int, source: tuple[str, int] | None, destination: tuple[str, int] | None
) -> bytes:
    """The header for a connection from `source` to `destination` (pen's listen address)."""
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n" if version == 1 else _V2_SIGNATURE + bytes([0x20, 0, 0, 0])
    src = ipaddress.ip_address(source[0])
    dst = ipaddress.ip_address(destination[0])
    if src.version != dst.version:  # a v4 client on a dual-stack listener
        src = _as_v6(src)
        dst = _as_v6(dst)
    if version == 1:
        protocol = "TCP4" if src.version == 4 else "TCP6"
        return f"PROXY {protocol} {src} {dst} {source[1]} {destination[1]}\r\n".encode()
    family = _V2_TCP4 if src.version == 4 else _V2_TCP6
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return _V2_SIGNATURE + struct.pack("!BBH", _V2_PROXY_COMMAND, family, len(body)) + body


def _as_v6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address):
        return address
    return ipaddress.IPv6Address(f"::ffff:{address}")


def _endpoint(info: object) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


def proxy_header(version: int, peername: object, sockname: object) -> bytes:
    """The header for a client connection, from its socket's peer and local addresses."""
    return proxy_header_for(version, _endpoint(peername), _endpoint(sockname))
