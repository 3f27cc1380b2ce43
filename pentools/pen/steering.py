"""``--workers`` (issue 14, first step): each client's connections reach the same worker.

N worker processes each accept on their own socket of one SO_REUSEPORT
group.  The kernel's own choice among them hashes the whole 4-tuple, so
one client's connections would spread over the workers, and client
tracking, ``-s`` and ``-h`` would lose their meaning.  A classic BPF
program attached to the group picks the socket by a hash of the client's
address alone; `worker_of` makes the same choice in Python (for tests and
for telling which worker serves a client).

The program reads the source address from the IP header (IPv4, or the
last 32 bits of an IPv6 address; IPv4 clients of a dual-stack socket come
as IPv4), multiplies it by Knuth's constant, keeps the upper 16 bits and
takes them modulo N.  The sockets' order in the group is the order they
were bound: the process that binds them keeps them all open, so a worker
that is restarted gets its socket, and its clients, back.

Where no choice depends on the client (``-r`` without ``-h``, no cap per
client), steering would only cost: every connection of a client that
opens many, a load tester or a proxy in front, would load one worker.
`spread_connections` then attaches a program that answers no socket, and
the kernel falls back to its own hash of the 4-tuple (net/core/sock_reuseport.c:
"no bpf or invalid bpf result: fall back to hash usage").
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct

from pentools.core.errors import ListenError

#: setsockopt(SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF) (Linux 4.5), not in Python's socket module.
SO_ATTACH_REUSEPORT_CBPF = 51
#: Classic BPF loads at this offset and beyond address the network (IP) header.
_NET = -0x100000
_KNUTH = 2654435761
_INSTRUCTION = struct.Struct("HBBI")
#: Opcodes (linux/filter.h): loads, shift, jumps, multiply, modulo, return A.
_LDB_ABS, _LDW_ABS, _RSH_K, _JEQ_K, _JA = 0x30, 0x20, 0x74, 0x15, 0x05
_MUL_K, _MOD_K, _RET_A, _RET_K = 0x24, 0x94, 0x16, 0x06


def _op(code: int, k: int = 0, jump_true: int = 0) -> bytes:
    return _INSTRUCTION.pack(code, jump_true, 0, k & 0xFFFFFFFF)


def client_hash_program(workers: int) -> bytes:
    """The classic BPF program: the socket index for a packet's source address."""
    return b"".join(
        (
            _op(_LDB_ABS, _NET),  # the IP version, in the first byte's upper half
            _op(_RSH_K, 4),
            _op(_JEQ_K, 6, jump_true=2),
            _op(_LDW_ABS, _NET + 12),  # IPv4 source address
            _op(_JA, 1),
            _op(_LDW_ABS, _NET + 20),  # IPv6 source address, last 32 bits
            _op(_MUL_K, _KNUTH),
            _op(_RSH_K, 16),
            _op(_MOD_K, workers),
            _op(_RET_A),
        )
    )


def steer_by_client(sock: socket.socket, workers: int) -> None:
    """Attach the program to `sock`'s SO_REUSEPORT group of `workers` sockets.

    Raises ListenError where the kernel refuses (before Linux 4.5).
    """
    _attach(sock, client_hash_program(workers), workers)


def spread_connections(sock: socket.socket, workers: int) -> None:
    """Let the kernel spread connections over the group by their 4-tuple (ListenError)."""
    _attach(sock, _op(_RET_K, 0xFFFFFFFF), workers)


def _attach(sock: socket.socket, code: bytes, workers: int) -> None:
    """Attach (or replace) the group's program."""
    program = ctypes.create_string_buffer(code)
    count = len(program.raw) // _INSTRUCTION.size
    fprog = struct.pack("HP", count, ctypes.addressof(program))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as exc:
        what = f"{workers} workers"
        raise ListenError(what, f"cannot steer clients to workers: {exc.strerror}") from None


def needs_steering(*, roundrobin: bool, hash_: bool, conn_max_per_client: int) -> bool:
    """Whether a choice depends on the client: tracking (no ``-r``), ``-h``, a cap per client."""
    return not roundrobin or hash_ or conn_max_per_client > 0


def worker_of(client: str, workers: int) -> int:
    """The worker whose socket `steer_by_client`'s program picks for `client` (an IP address)."""
    address = ipaddress.ip_address(client)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    last32 = int(address) & 0xFFFFFFFF
    return (((last32 * _KNUTH) & 0xFFFFFFFF) >> 16) % workers
