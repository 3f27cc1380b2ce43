"""The sans-IO server selection, driven event by event with an explicit clock."""

from __future__ import annotations

from collections import Counter

from pentools.pen.selection import Policy, Selector, Server, client_hash


def selector(count: int = 3, emergency: bool = False, **policy: object) -> Selector:
    servers = [Server(i, f"s{i}", f"10.0.0.{i + 1}", 80) for i in range(count)]
    spare = Server(count, "e", "10.0.0.99", 80) if emergency else None
    return Selector(servers, spare, Policy(**policy))  # type: ignore[arg-type]


def test_round_robin_spreads_evenly_and_tracks_nobody_special() -> None:
    table = selector(roundrobin=True)
    picks = [table.choose("192.0.2.1", 0.0) for _ in range(9)]
    assert picks == [0, 1, 2] * 3


def test_new_clients_round_robin_known_clients_return() -> None:
    table = selector()
    first = {f"192.0.2.{i}": table.choose(f"192.0.2.{i}", 0.0) for i in range(6)}
    assert Counter(first.values()) == {0: 2, 1: 2, 2: 2}
    for client, server in first.items():
        assert table.choose(client, 1.0) == server


def test_lru_throws_out_the_least_recently_used_client() -> None:
    table = selector(count=2)
    table.clients_max = 2
    assert table.choose("a", 0) == 0
    assert table.choose("b", 0) == 1
    assert table.choose("a", 1) == 0  # a is now the most recent
    assert table.choose("c", 2) == 1  # round-robin after a's 0; b is thrown out
    assert list(table.clients) == ["a", "c"]


def test_tracking_time_expires_clients() -> None:
    table = selector(count=2, tracking=10)
    assert table.choose("a", 0) == 0
    assert table.choose("a", 5) == 0
    assert table.choose("x", 6) == 1
    # 11 s after its last visit: forgotten, placed anew (round-robin after 1 is 0)
    assert table.choose("a", 16) == 0
    assert table.clients["a"].connects == 1


#: Expected values from outside the code under test: the CRC-32 of each address's
#: ASCII text (IEEE 802.3 polynomial, reflected, as zlib and PNG use it), worked
#: out with a bitwise CRC-32 that gives the standard check value 0xCBF43926 for
#: b"123456789"; the first choice of 3 servers is that CRC mod 3.
HASHED = {
    "198.51.100.0": (0x0D29705E, 2),
    "198.51.100.1": (0x7A2E40C8, 0),
    "198.51.100.2": (0xE3271172, 1),
    "198.51.100.3": (0x942021E4, 0),
    "198.51.100.4": (0x0A44B447, 2),
    "203.0.113.5": (0xB2B8145A, 1),
}


def test_hash_is_stable() -> None:
    """The same values on every run and machine: the CRC-32 of the address."""
    table = selector(hash=True)
    for client, (crc, server) in HASHED.items():
        assert client_hash(client) == crc, client
        assert table.choose(client, 0) == server, client
    assert {server for _, server in HASHED.values()} == {0, 1, 2}


def test_blacklisted_server_is_skipped_then_used_again() -> None:
    table = selector(roundrobin=True, blacklist=30)
    assert table.choose("c", 0) == 0
    table.connect_failed(0, 0)
    picks = [table.choose("c", 1) for _ in range(4)]
    assert 0 not in picks
    table.last_used = 2
    assert table.choose("c", 31) == 0  # its blacklist time is over


def test_failover_goes_to_the_next_after_the_most_recently_used() -> None:
    table = selector(count=4)
    assert table.choose("a", 0) == 0
    table.connect_failed(0, 0)
    assert table.choose("a", 0, exclude=[0]) == 1  # a's server failed: the next one


def test_stubborn_closes_when_the_first_choice_is_unavailable() -> None:
    table = selector(hash=True, stubborn=True)
    table.connect_failed(1, 0)  # the first choice of 203.0.113.5 (HASHED)
    assert table.choose("203.0.113.5", 1) is None
    assert table.choose("198.51.100.1", 1) == 0  # a client whose first choice is up
    table.policy.stubborn = False
    assert table.choose("203.0.113.5", 1) not in (None, 1)


def test_emergency_server_only_when_all_are_unavailable() -> None:
    table = selector(count=2, emergency=True)
    assert table.choose("a", 0) == 0
    table.connect_failed(0, 0)
    table.connect_failed(1, 0)
    assert table.choose("b", 1) == 2
    assert table.server(2).address == "10.0.0.99"
    assert table.choose("c", 100) in (0, 1)  # both back after the blacklist time


def test_soft_limit_for_new_clients_hard_limit_for_returning_ones() -> None:
    table = selector(count=1)
    table.servers[0].max_conn, table.servers[0].hard = 2, 3
    assert table.choose("a", 0) == 0
    assert table.choose("b", 0) == 0
    assert table.choose("new", 0) is None  # soft limit 2 reached
    assert table.choose("a", 0) == 0  # a returning client may use up to hard
    assert table.choose("b", 0) is None  # hard limit 3 reached
    table.release(0)
    assert table.choose("b", 0) == 0


def test_weight_prefers_fewest_connections_per_weight() -> None:
    table = selector(count=2, weight=True, roundrobin=True)
    table.servers[0].weight, table.servers[1].weight = 3, 1
    picks = Counter(table.choose("c", 0) for _ in range(8))
    assert picks == {0: 6, 1: 2}


def test_prio_prefers_the_lowest_prio_that_is_available() -> None:
    table = selector(count=3, prio=True, roundrobin=True)
    for server, prio in zip(table.servers, (2, 1, 3), strict=True):
        server.prio = prio
    assert table.choose("c", 0) == 1
    table.connect_failed(1, 0)
    assert table.choose("c", 0, exclude=[1]) == 0


def test_mode_reply_matches_the_original() -> None:
    assert Policy().mode() == "no hash no roundrobin no stubborn no weight no prio"
    assert Policy(hash=True, prio=True).mode() == "hash no roundrobin no stubborn no weight prio"
