"""--workers' first step: a BPF program on an SO_REUSEPORT group sends each client to one socket."""

from __future__ import annotations

import select
import socket
from collections import Counter
from collections.abc import Iterator

import pytest

from pentools.pen.steering import (
    needs_steering,
    spread_connections,
    steer_by_client,
    worker_of,
)

WORKERS = 3
DEADLINE = 10.0


def reuseport_group(family: int, host: str, count: int) -> list[socket.socket]:
    """`count` listening sockets sharing one port, in binding order."""
    group: list[socket.socket] = []
    port = 0
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        port = sock.getsockname()[1]
        sock.listen(64)
        group.append(sock)
    return group


def accepting_socket(group: list[socket.socket]) -> int:
    """The index of the socket whose queue the last connection went to."""
    ready, _, _ = select.select(group, [], [], DEADLINE)
    assert len(ready) == 1, "a connection must wait on exactly one socket"
    conn, _ = ready[0].accept()
    conn.close()
    return group.index(ready[0])


@pytest.fixture
def group_v4() -> Iterator[list[socket.socket]]:
    group = reuseport_group(socket.AF_INET, "127.0.95.1", WORKERS)
    steer_by_client(group[0], WORKERS)
    yield group
    for sock in group:
        sock.close()


def test_each_client_address_always_reaches_its_worker(group_v4: list[socket.socket]) -> None:
    port = group_v4[0].getsockname()[1]
    seen = Counter[int]()
    for n in range(1, 61):
        client = f"127.0.96.{n}"
        for _ in range(3):  # a new source port each time: the choice must not change
            with socket.create_connection(("127.0.95.1", port), source_address=(client, 0)):
                assert accepting_socket(group_v4) == worker_of(client, WORKERS)
        seen[worker_of(client, WORKERS)] += 1
    assert min(seen.values()) >= 10, f"clients spread unevenly: {seen}"


def test_ipv6_clients_are_steered_too() -> None:
    group = reuseport_group(socket.AF_INET6, "::1", WORKERS)
    try:
        steer_by_client(group[0], WORKERS)
        port = group[0].getsockname()[1]
        with socket.create_connection(("::1", port)):
            assert accepting_socket(group) == worker_of("::1", WORKERS)
    finally:
        for sock in group:
            sock.close()


def test_ipv4_mapped_addresses_hash_as_ipv4() -> None:
    assert worker_of("::ffff:127.0.96.7", 5) == worker_of("127.0.96.7", 5)


def test_spreading_lets_the_kernel_hash_each_connection(group_v4: list[socket.socket]) -> None:
    spread_connections(group_v4[0], WORKERS)
    port = group_v4[0].getsockname()[1]
    seen = Counter[int]()
    for _ in range(60):  # one client, new source ports: every socket gets some
        with socket.create_connection(("127.0.95.1", port), source_address=("127.0.96.1", 0)):
            seen[accepting_socket(group_v4)] += 1
    assert len(seen) == WORKERS, seen


def test_steering_is_needed_only_where_a_choice_depends_on_the_client() -> None:
    assert not needs_steering(roundrobin=True, hash_=False, conn_max_per_client=0)
    assert needs_steering(roundrobin=False, hash_=False, conn_max_per_client=0)
    assert needs_steering(roundrobin=True, hash_=True, conn_max_per_client=0)
    assert needs_steering(roundrobin=True, hash_=False, conn_max_per_client=2)
