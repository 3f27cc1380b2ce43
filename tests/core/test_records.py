import pytest

from pentools.core.errors import RecordError
from pentools.core.records import (
    BalancerRecord,
    is_record_datagram,
    parse_datagram,
    parse_local,
    request_key,
)


def test_request_key_is_what_pen_records() -> None:
    assert request_key(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == "GET / HTTP/1.1"
    long_request = b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n"
    assert request_key(long_request) == "GET /" + "a" * 95
    # non-ASCII (as the C pen) and control bytes (beyond it) become "."
    assert request_key(b"GET /\xc3\xa9\t\x00x HTTP/1.0") == "GET /....x HTTP/1.0"
    assert request_key(b"only\rline") == "only"


def test_local_form_round_trip() -> None:
    record = BalancerRecord("203.0.113.7", "10.0.0.1", "GET /index.html HTTP/1.1", 1700000000)
    line = record.to_local()
    assert line == b"203.0.113.7 1700000000 10.0.0.1 GET /index.html HTTP/1.1\n"
    assert parse_local(line) == record


def test_extended_forms_carry_the_upstream_port() -> None:
    record = BalancerRecord("2001:db8::7", "10.0.0.1", "GET / HTTP/1.1", 1700000000, 40123)
    assert record.to_local() == b"2001:db8::7 1700000000 10.0.0.1#40123 GET / HTTP/1.1\n"
    assert parse_local(record.to_local()) == record
    assert record.to_datagram() == b"+ 2001:db8::7 10.0.0.1#40123 GET / HTTP/1.1\n"
    parsed = parse_datagram(record.to_datagram(), 5.0)
    assert (parsed.upstream_port, parsed.time) == (40123, 5.0)


def test_c_pen_record_with_control_bytes_still_parses() -> None:
    # Written by the real C pen 0.34.1 for "GET /a\tb\x01c\xc3\xa9\x7f~ HTTP/1.0".
    record = parse_local(b"127.0.0.1 1795272913 127.0.0.21 GET /a\tb\x01c..\x7f~ HTTP/1.0\n")
    assert record.request == "GET /a.b.c...~ HTTP/1.0"
    assert record.request == request_key(b"GET /a\tb\x01c\xc3\xa9\x7f~ HTTP/1.0")


def test_datagram_kinds() -> None:
    assert is_record_datagram(b"+ 1.2.3.4 10.0.0.1 GET / HTTP/1.0")
    assert not is_record_datagram(b'1.2.3.4 - - [..] "GET / HTTP/1.0" 200 1')
    record = parse_datagram(b"+ 1.2.3.4 10.0.0.1 GET / HTTP/1.0\n", 1.5)
    assert (record.client, record.server, record.request) == (
        "1.2.3.4",
        "10.0.0.1",
        "GET / HTTP/1.0",
    )


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"1.2.3.4 notatime 10.0.0.1 GET /",
        b"not-an-ip 1700000000 10.0.0.1 GET /",
        b"1.2.3.4 1700000000 web1 GET /",
        b"1.2.3.4 1700000000 10.0.0.1#99999 GET /",
    ],
)
def test_bad_local_records(line: bytes) -> None:
    with pytest.raises(RecordError):
        parse_local(line)


def test_bad_datagrams() -> None:
    for datagram in (b"+", b"+ 1.2.3.4", b"+ x y z", b"-- 1.2.3.4 10.0.0.1 GET"):
        with pytest.raises(RecordError):
            parse_datagram(datagram, 0.0)


def test_the_shared_client_strings_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from pentools.core import records

    monkeypatch.setattr(records, "_CACHE_LIMIT", 10)
    monkeypatch.setattr(records, "_clients", {})
    parsed = [parse_local(f"192.0.2.{n} 100 10.0.0.1 GET / HTTP/1.1") for n in range(25)]
    assert [r.client for r in parsed] == [f"192.0.2.{n}" for n in range(25)]
    assert len(records._clients) <= 10
