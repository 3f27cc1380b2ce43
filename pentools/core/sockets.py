"""Listening sockets, the same in every daemon: where they bind and how big they buffer.

One rule for every tool: no host means every address, IPv6 and IPv4 on one
dual-stack socket where the system has IPv6 (else every IPv4 address); a
given address means that address only (an IPv6 one is IPv6 only, so that
``::`` and ``0.0.0.0`` can be bound side by side); a path means a Unix
socket.  Failures are `ListenError` naming the address and what it was for.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from pentools.core.addresses import address_family, format_host_port, resolve_host
from pentools.core.errors import ListenError

#: SO_RCVBUFFORCE goes past net.core.rmem_max when we may (root, CAP_NET_ADMIN).
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def bind_socket(
    host: str | None,
    port: int = 0,
    *,
    path: str | None = None,
    udp: bool = False,
    backlog: int = 1024,
    receive_buffer: int | None = None,
    reuse_port: bool = False,
    what: str = "",
) -> socket.socket:
    """A bound, non-blocking socket (listening, for TCP, with a queue of `backlog`).

    `receive_buffer` is asked for before binding, so that no datagram
    arrives into a small one; see `size_receive_buffer` for what is granted.
    `reuse_port` lets sockets bound the same way share the address
    (SO_REUSEPORT: the kernel spreads the clients over them).
    Raises ListenError (AddressError for a host that does not resolve).
    """
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    label = f" ({what})" if what else ""
    address: str | tuple[str, int]
    if path is not None:
        family, address = socket.AF_UNIX, path
        where = path
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket of an earlier run
    elif not host:
        dual = socket.has_dualstack_ipv6()
        family = socket.AF_INET6 if dual else socket.AF_INET
        address = ("::" if dual else "0.0.0.0", port)
        where = format_host_port(address[0], port)
    else:
        ip = resolve_host(host)[0]
        family, address = address_family(ip), (ip, port)
        where = format_host_port(ip, port)
    try:
        sock = socket.socket(family, kind)
    except OSError as exc:
        raise ListenError(where + label, exc.strerror or str(exc)) from None
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if host else 0)
        if not udp and family != socket.AF_UNIX:  # for UDP it would let a second daemon share
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if receive_buffer is not None:
            size_receive_buffer(sock, receive_buffer)
        sock.bind(address)
        if not udp:
            sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(where + label, exc.strerror or str(exc)) from None
    return sock


def size_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a receive buffer of `size` bytes; return what the kernel granted.

    Without privilege the kernel caps the request at net.core.rmem_max; the
    figure returned is the kernel's own (Linux reports twice the request, its
    bookkeeping included), so a log line or a metric can show the truth.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:  # not privileged
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
