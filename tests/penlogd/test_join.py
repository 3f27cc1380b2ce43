"""The live join, event by event (sans-IO): datagrams in, lines out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pentools.penlogd.join import JoinConfig, LiveJoin, one_line

WEB = "127.0.0.11"
PEN = "127.0.0.1"


def line(path: str = "/a", client: str = "127.0.0.1", port: int | None = None) -> bytes:
    text = f'{client} - - [21/Nov/2026:14:00:00 +0000] "GET {path} HTTP/1.1" 200 5'
    if port is not None:
        text += f" {port}"
    return (text + "\n").encode()


def record(client: str, path: str = "/a", server: str = WEB) -> bytes:
    return f"+ {client} {server} GET {path} HTTP/1.1\n".encode()


def clients(output: list[bytes]) -> list[str]:
    return [entry.split(b" ", 1)[0].decode() for entry in output]


def test_record_then_line_gets_the_client_and_the_record_is_used_once() -> None:
    join = LiveJoin(JoinConfig())
    join.receive(record("10.0.0.1"), PEN, 1.0)
    join.receive(line(), WEB, 1.1)
    join.receive(line(), WEB, 1.2)  # its record never comes: waits, then unchanged
    assert clients(join.take_output()) == ["10.0.0.1"]
    join.release_due(1.2 + join.config.wait)
    assert clients(join.take_output()) == ["127.0.0.1"]
    counters = join.sync_counters()
    report = counters.report
    assert (report.lines, report.matched, report.unmatched, counters.waited) == (2, 1, 1, 1)


def test_two_clients_same_request_each_line_gets_a_different_one() -> None:
    join = LiveJoin(JoinConfig())
    join.receive(record("10.0.0.1"), PEN, 1.0)
    join.receive(record("10.0.0.2"), PEN, 1.001)
    join.receive(line(), WEB, 1.01)
    join.receive(line(), WEB, 1.02)
    assert sorted(clients(join.take_output())) == ["10.0.0.1", "10.0.0.2"]


def test_only_the_lines_server_is_searched() -> None:
    join = LiveJoin(JoinConfig(wait=0))
    join.receive(record("10.0.0.1", server="127.0.0.12"), PEN, 1.0)
    join.receive(line(), WEB, 1.1)
    assert clients(join.take_output()) == ["127.0.0.1"]


def test_a_line_waits_for_a_late_record_and_is_written_when_it_comes() -> None:
    join = LiveJoin(JoinConfig(wait=0.5))
    join.receive(line("/late"), WEB, 1.0)
    assert join.take_output() == [] and join.next_deadline == 1.5
    join.receive(record("10.0.0.9", "/late"), PEN, 1.2)
    assert clients(join.take_output()) == ["10.0.0.9"]
    assert join.next_deadline == 1.0 + 0.5  # the entry stays until its deadline, done
    join.release_due(2.0)
    assert join.take_output() == [] and join.next_deadline is None
    assert join.sync_counters().waited == 1


def test_waiting_is_bounded_in_time_and_number() -> None:
    join = LiveJoin(JoinConfig(wait=10, max_waiting=3))
    for index in range(5):
        join.receive(line(f"/{index}"), WEB, 1.0 + index)
    assert len(join.take_output()) == 2 and join.waiting == 3
    join.release_all()
    assert len(join.take_output()) == 3 and join.waiting == 0


def test_every_line_written_once_however_bad() -> None:
    join = LiveJoin(JoinConfig(wait=0))
    for datagram in [b"", b"\n", b"no quotes at all\n", b"\x00\xff\x80 binary", b"a\nb\rc\n"]:
        join.receive(datagram, WEB, 1.0)
    assert join.take_output() == [
        b"no quotes at all\n",
        b"\x00\xff\x80 binary\n",
        b"a\\x0ab\\x0dc\n",
    ]
    counters = join.sync_counters()
    assert (counters.received, counters.report.lines, counters.report.malformed) == (5, 3, 3)
    assert counters.dropped == 2  # the empty ones: not lines, not written


def test_bad_records_are_counted_not_written() -> None:
    join = LiveJoin(JoinConfig())
    for datagram in [b"+", b"+ notanip 127.0.0.11 GET /", b"+ 10.0.0.1 127.0.0.11#x GET /"]:
        join.receive(datagram, PEN, 1.0)
    assert join.take_output() == []
    assert join.sync_counters().dropped == 3
    assert join.sync_counters().report.records == 0


def test_records_from_an_unlisted_balancer_are_refused() -> None:
    join = LiveJoin(JoinConfig(balancers=frozenset({PEN}), wait=0))
    join.receive(record("6.6.6.6"), "127.0.0.66", 1.0)
    join.receive(record("10.0.0.1"), PEN, 1.0)
    join.receive(line(), WEB, 1.1)
    assert clients(join.take_output()) == ["10.0.0.1"]
    assert join.sync_counters().refused == 1


def test_ipv4_mapped_and_ipv6_sources_are_normalized() -> None:
    join = LiveJoin(JoinConfig(wait=0))
    join.receive(record("2001:db8::7", server="2001:db8::11"), "::ffff:127.0.0.1", 1.0)
    join.receive(record("10.0.0.1"), "::ffff:127.0.0.1", 1.0)
    join.receive(line(), "::ffff:127.0.0.11", 1.1)
    join.receive(line(), "2001:DB8:0::11", 1.1)
    assert clients(join.take_output()) == ["10.0.0.1", "2001:db8::7"]


def test_extended_records_join_exactly_on_the_upstream_port() -> None:
    join = LiveJoin(JoinConfig(log_format="common_port"))
    join.receive(b"+ 10.0.0.1 127.0.0.11#40001 GET /a HTTP/1.1\n", PEN, 1.0)
    join.receive(b"+ 10.0.0.2 127.0.0.11#40002 GET /a HTTP/1.1\n", PEN, 1.0)
    join.receive(line(port=40002), WEB, 1.1)
    join.receive(line(port=40001), WEB, 1.1)
    assert clients(join.take_output()) == ["10.0.0.2", "10.0.0.1"]
    assert join.engine.report.exact == 2


def test_records_beyond_the_bound_are_dropped_oldest_first() -> None:
    join = LiveJoin(JoinConfig(max_records=100, wait=0))
    for index in range(1000):
        join.receive(record(f"10.0.{index // 256}.{index % 256}", f"/{index}"), PEN, index * 0.001)
    assert join.engine.pending_records <= 100 + 100 // 8
    join.receive(line("/999"), WEB, 1.0)
    join.receive(line("/0"), WEB, 1.0)
    assert clients(join.take_output()) == ["10.0.3.231", "127.0.0.1"]
    assert join.sync_counters().report.records_expired >= 1000 - 100 - 100 // 8


def test_one_line_keeps_every_byte_but_line_breaks() -> None:
    assert one_line(b"a\r\n") == "a"
    assert one_line(b"\xe9t\xe9\n") == "\xe9t\xe9"
    assert one_line(b"x\ny\n") == "x\\x0ay"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=300), st.sampled_from([PEN, WEB, "::1"]))))
def test_any_datagrams_never_crash_and_lines_are_written_once(
    datagrams: list[tuple[bytes, str]],
) -> None:
    join = LiveJoin(JoinConfig())
    for index, (datagram, source) in enumerate(datagrams):
        join.receive(datagram, source, index * 0.01)
    join.release_all()
    output = join.take_output()
    web_lines = [d for d, _ in datagrams if d.strip() and not d.startswith(b"+")]
    assert len(output) == len(web_lines)
    assert all(entry.count(b"\n") == 1 and entry.endswith(b"\n") for entry in output)


def test_malformed_lines_are_not_counted_unmatched_too() -> None:
    """The join's counts are the engine's, as in mergelogs: a malformed line is only malformed."""
    join = LiveJoin(JoinConfig(wait=0))
    join.receive(record("10.0.0.1"), PEN, 1.0)
    join.receive(line(), WEB, 1.1)
    join.receive(b"not a log line\n", WEB, 1.2)
    join.receive(line("/nobody"), WEB, 1.3)
    report = join.sync_counters().report
    assert (report.lines, report.matched, report.unmatched, report.malformed) == (3, 1, 1, 1)
