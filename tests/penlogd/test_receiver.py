"""BatchReceiver: many datagrams per system call, in order, nothing cut or lost."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from pentools.core.sockets import bind_socket
from pentools.penlogd.receiver import BatchReceiver
from tests.penlogd.live import sender


def _receiving(host: str, dual: bool = False) -> socket.socket:
    """penlogd's own kind of socket, with room for every datagram a test sends first."""
    return bind_socket(None if dual else host, udp=True, receive_buffer=8 << 20)


def _drain(receiver: BatchReceiver, one_by_one: bool = False) -> Iterator[tuple[bytes, str]]:
    while True:
        batch = receiver._receive_one_by_one() if one_by_one else receiver.receive()
        yield from batch
        if not batch:
            return


@pytest.mark.parametrize("one_by_one", [False, True], ids=["recvmmsg", "recvfrom"])
@pytest.mark.parametrize(
    ("listen", "dual", "destination", "sources", "expected"),
    [
        ("::", True, "127.0.0.1", ["127.0.0.41", "127.0.0.42"], ["127.0.0.41", "127.0.0.42"]),
        ("127.0.0.1", False, "127.0.0.1", ["127.0.0.41", "127.0.0.42"], None),
        ("::1", False, "::1", ["::1"], None),
    ],
    ids=["dual-stack (IPv4-mapped)", "IPv4", "IPv6"],
)
def test_every_datagram_in_order_with_its_canonical_source(
    listen: str,
    dual: bool,
    destination: str,
    sources: list[str],
    expected: list[str] | None,
    one_by_one: bool,
) -> None:
    receiving = _receiving(listen, dual)
    senders = [sender(source) for source in sources]
    port = receiving.getsockname()[1]
    try:
        receiver = BatchReceiver(receiving, size=16)
        sent = []
        for index in range(300):  # many batches, the last one partial
            payload = b"%d " % index + b"x" * (index % 300)
            senders[index % len(senders)].sendto(payload, (destination, port))
            sent.append((payload, (expected or sources)[index % len(senders)]))
        largest = b"y" * 65000  # far larger than any log line: not cut
        senders[0].sendto(largest, (destination, port))
        sent.append((largest, (expected or sources)[0]))
        assert list(_drain(receiver, one_by_one)) == sent
        assert receiver.receive() == []
    finally:
        receiving.close()
        for sock in senders:
            sock.close()


def test_source_memory_is_bounded() -> None:
    receiving = _receiving("127.0.0.1")
    port = receiving.getsockname()[1]
    receiver = BatchReceiver(receiving, size=8)
    receiver.MAX_SOURCES = 3
    try:
        for last in range(51, 56):
            with sender(f"127.0.0.{last}") as sock:
                sock.sendto(b"line", ("127.0.0.1", port))
        assert [source for _, source in _drain(receiver)] == [
            f"127.0.0.{last}" for last in range(51, 56)
        ]
        assert len(receiver._sources) <= 3
    finally:
        receiving.close()


def test_link_local_sources_keep_their_interface_as_recvfrom_writes_them() -> None:
    receiving = _receiving("::1")
    try:
        receiver = BatchReceiver(receiving)
        link_local = socket.inet_pton(socket.AF_INET6, "fe80::1")
        loopback_index = socket.if_nametoindex("lo")
        assert receiver._source(link_local + (0).to_bytes(4, sys.byteorder)) == "fe80::1"
        scoped = link_local + loopback_index.to_bytes(4, sys.byteorder)
        assert receiver._source(scoped) == "fe80::1%lo"
        mapped = socket.inet_pton(socket.AF_INET6, "::ffff:192.0.2.9") + bytes(4)
        assert receiver._source(mapped) == "192.0.2.9"
    finally:
        receiving.close()
