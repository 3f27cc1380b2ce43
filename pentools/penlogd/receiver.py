"""Many datagrams per system call: Linux's recvmmsg(2), through ctypes.

Python's socket module reads one datagram per call (and allocates a 64 KiB
buffer for each, then builds an address tuple); at tens of thousands of
datagrams a second that is a good part of penlogd's time.  `BatchReceiver`
reads up to `size` datagrams, in arrival order, with one call into the
kernel, into buffers set up once.  Where recvmmsg is not available it falls
back to reading one datagram at a time, with the same result.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import socket
import sys

from pentools.core.addresses import normalize_ip

#: Larger than any UDP payload (65527 bytes over IPv6): no datagram is cut.
RECEIVE_SIZE = 65536

#: Room for any socket address (sockaddr_storage).
_NAME_SIZE = 128


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IOVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _load_recvmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.recvmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    function.restype = ctypes.c_int
    return function


_recvmmsg = _load_recvmmsg()


class BatchReceiver:
    """Reads the datagrams waiting on a non-blocking UDP socket, many per call.

    `receive` returns up to `size` (payload, source address) pairs in arrival
    order, an empty list when none is waiting.  Source addresses are
    canonical (`normalize_ip`: an IPv4-mapped IPv6 address becomes IPv4).
    The buffers take ``size`` x 64 KiB of address space, of which only the
    pages datagrams were written to are ever touched.
    """

    #: Distinct source addresses remembered (penlogd hears from a few).
    MAX_SOURCES = 4096

    def __init__(self, sock: socket.socket, size: int = 128) -> None:
        self.sock = sock
        self.size = size
        self._sources: dict[bytes, str] = {}
        if sock.family == socket.AF_INET6:  # sockaddr_in6: sin6_addr, sin6_scope_id
            self._address_span = (8, 28)
        else:  # sockaddr_in: sin_addr
            self._address_span = (4, 8)
        self._fast = _recvmmsg is not None
        if self._fast:
            self._setup(size)

    def _setup(self, size: int) -> None:
        # Anonymous maps: zero pages until written, and slicing gives bytes.
        self._payloads = mmap.mmap(-1, size * RECEIVE_SIZE)
        self._names = mmap.mmap(-1, size * _NAME_SIZE)
        payload_base = ctypes.addressof(ctypes.c_char.from_buffer(self._payloads))
        name_base = ctypes.addressof(ctypes.c_char.from_buffer(self._names))
        self._iovecs = (_IOVec * size)()
        self._raw_headers = bytearray(ctypes.sizeof(_MMsgHdr) * size)
        self._headers = (_MMsgHdr * size).from_buffer(self._raw_headers)
        for index in range(size):
            self._iovecs[index].iov_base = payload_base + index * RECEIVE_SIZE
            self._iovecs[index].iov_len = RECEIVE_SIZE
            header = self._headers[index].msg_hdr
            header.msg_name = name_base + index * _NAME_SIZE
            header.msg_namelen = _NAME_SIZE
            header.msg_iov = ctypes.pointer(self._iovecs[index])
            header.msg_iovlen = 1
        # The fields the kernel writes, read (and reset) as 32-bit words.
        self._words = memoryview(self._raw_headers).cast("I")
        stride = ctypes.sizeof(_MMsgHdr) // 4
        self._length_words = [
            index * stride + _MMsgHdr.msg_len.offset // 4 for index in range(size)
        ]
        self._namelen_words = [
            index * stride + (_MMsgHdr.msg_hdr.offset + _MsgHdr.msg_namelen.offset) // 4
            for index in range(size)
        ]
        self._headers_address = ctypes.addressof(self._headers)

    def receive(self) -> list[tuple[bytes, str]]:
        """The datagrams waiting (at most `size`), oldest first."""
        if not self._fast:
            return self._receive_one_by_one()
        count = _recvmmsg(  # type: ignore[misc]
            self.sock.fileno(), self._headers_address, self.size, socket.MSG_DONTWAIT, None
        )
        if count <= 0:  # nothing waiting (EAGAIN), or an error the next wake-up reports
            return []
        words, payloads, names = self._words, self._payloads, self._names
        sources, source_of = self._sources, self._source
        start, end = self._address_span
        length_words, namelen_words = self._length_words, self._namelen_words
        received = []
        for index in range(count):
            offset = index * RECEIVE_SIZE
            payload = payloads[offset : offset + words[length_words[index]]]
            name = index * _NAME_SIZE
            raw = names[name + start : name + end]
            received.append((payload, sources.get(raw) or source_of(raw)))
            words[namelen_words[index]] = _NAME_SIZE  # value-result: room again
        return received

    def _source(self, raw: bytes) -> str:
        if len(raw) == 4:
            text = socket.inet_ntop(socket.AF_INET, raw)
        else:  # as recvfrom writes it: a link-local address with its interface
            text = socket.inet_ntop(socket.AF_INET6, raw[:16])
            scope = int.from_bytes(raw[16:], sys.byteorder)
            if scope:
                try:
                    text += "%" + socket.if_indextoname(scope)
                except OSError:
                    text += f"%{scope}"
        source = normalize_ip(text) or text
        if len(self._sources) >= self.MAX_SOURCES:
            self._sources.clear()
        self._sources[raw] = source
        return source

    def _receive_one_by_one(self) -> list[tuple[bytes, str]]:
        received = []
        for _ in range(self.size):
            try:
                data, address = self.sock.recvfrom(RECEIVE_SIZE)
            except OSError:  # empty (EAGAIN), or a stray ICMP error
                break
            received.append((data, normalize_ip(address[0]) or address[0]))
        return received
