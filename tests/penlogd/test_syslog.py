"""Syslog headers as real senders write them, taken off strictly, then joined as penlog's lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pentools.penlogd.join import JoinConfig, LiveJoin
from pentools.penlogd.syslog import parse_syslog

LINE = (
    b'127.0.0.1 - - [05/Dec/2026:08:11:50 +0000] "GET /index.html?a=%22b%0a HTTP/1.1" 200 3 '
    b'"-" "Python-urllib/3.11"'
)

#: Captured from nginx 1.22 (access_log syslog:server=...,tag=web1 combined;
#: with and without nohostname, and without a tag) and from util-linux logger
#: (--rfc5424, --rfc5424=notq, --rfc3164), each logging LINE.
CAPTURED = [
    ("rfc3164", "web1", "vm", b"<190>Dec  5 08:11:50 vm web1: " + LINE),
    ("rfc3164-nohostname", "web2", None, b"<190>Dec  5 08:11:50 web2: " + LINE),
    ("rfc3164", "nginx", "vm", b"<190>Dec  5 08:11:50 vm nginx: " + LINE),
    (
        "rfc5424",
        "web1",
        "vm",
        b"<190>1 2026-12-05T08:21:00.508132+00:00 vm web1 - - "
        b'[timeQuality tzKnown="1" isSynced="0"] ' + LINE,
    ),
    ("rfc5424", "web1", "vm", b"<190>1 2026-12-05T08:21:00.512091+00:00 vm web1 - - - " + LINE),
    ("rfc3164", "web1", "vm", b"<190>Dec  5 08:21:00 vm web1: " + LINE),
]


@pytest.mark.parametrize(("kind", "tag", "host", "datagram"), CAPTURED)
def test_real_headers_come_off_and_leave_the_line(
    kind: str, tag: str, host: str | None, datagram: bytes
) -> None:
    message = parse_syslog(datagram)
    assert message is not None
    assert (message.format, message.tag, message.host, message.message) == (kind, tag, host, LINE)


@pytest.mark.parametrize(
    ("datagram", "tag", "message"),
    [
        # a process id after the tag, and an IPv6 address as the host name
        (b"<13>Nov 21 14:00:00 2001:db8::1 httpd[123]: x", "httpd", b"x"),
        (b"<13>Nov 21 14:00:00 tag:  two spaces", "tag", b" two spaces"),
        # RFC 5424 without a time stamp, with a quoted "]" and a byte-order mark
        (b'<0>1 - h app 1 ID [a@1 k="v\\]w"][b@2] \xef\xbb\xbfx y', "app", b"x y"),
        # RFC 5424 with no message at all
        (b"<191>1 2026-12-05T08:21:00Z h app - - -", "app", b""),
    ],
)
def test_other_valid_headers(datagram: bytes, tag: str, message: bytes) -> None:
    parsed = parse_syslog(datagram)
    assert parsed is not None
    assert (parsed.tag, parsed.message) == (tag, message)


@pytest.mark.parametrize(
    "datagram",
    [
        LINE,
        b'<script>alert(1)</script> - - [05/Dec/2026:08:11:50 +0000] "GET / HTTP/1.1" 200 3',
        b"<190> " + LINE,  # no time stamp
        b"<192>Dec  5 08:11:50 web2: " + LINE,  # no such priority
        b"<019>Dec  5 08:11:50 web2: " + LINE,  # a leading zero
        b"<190>Dez  5 08:11:50 web2: " + LINE,  # not an English month
        b"<190>Dec 5 08:11:50 web2: " + LINE,  # the day is two characters wide
        b"<190>Dec  5 08:11:50 vm web1 " + LINE,  # no colon after the tag
        b"<190>Dec  5 08:11:50 web1:" + LINE,  # no space after it
        b"<190>2 2026-12-05T08:21:00Z vm web1 - - - " + LINE,  # an unknown version
        b"<190>1 2026-12-05T08:21:00Z vm web1 - - [unclosed " + LINE,
        b"",
    ],
)
def test_anything_without_a_whole_header_is_not_syslog(datagram: bytes) -> None:
    assert parse_syslog(datagram) is None


@given(
    message=st.binary(max_size=300),
    tag=st.from_regex(r"[A-Za-z0-9_]{1,32}", fullmatch=True),
    host=st.one_of(st.none(), st.from_regex(r"[a-z0-9.-]{0,20}[a-z0-9]", fullmatch=True)),
    priority=st.integers(0, 191),
    day=st.integers(1, 31),
)
def test_any_message_behind_an_nginx_header_comes_back_whole(
    message: bytes, tag: str, host: str | None, priority: int, day: int
) -> None:
    hostname = "" if host is None else f"{host} "
    header = f"<{priority}>Jan {day:2d} 23:59:59 {hostname}{tag}: ".encode()
    parsed = parse_syslog(header + message)
    assert parsed is not None
    assert (parsed.tag, parsed.host, parsed.message) == (tag, host, message)


WEB1, WEB2, PEN, NGINX_HOST = "127.0.0.11", "127.0.0.12", "127.0.0.1", "127.0.0.1"


def record(client: str, server: str, path: str = "/index.html?a=%22b%0a") -> bytes:
    return f"+ {client} {server} GET {path} HTTP/1.1\n".encode()


def test_a_tag_names_the_server_else_the_source_address_does() -> None:
    join = LiveJoin(JoinConfig(wait=0, syslog_tags={"web1": WEB1, "web2": WEB2}))
    join.receive(record("10.0.0.1", WEB1), PEN, 1.0)
    join.receive(record("10.0.0.2", WEB2), PEN, 1.0)
    join.receive(record("10.0.0.3", NGINX_HOST), PEN, 1.0)
    # both nginx send from the same address: only their tags tell them apart
    join.receive(CAPTURED[1][3], NGINX_HOST, 1.1)  # web2
    join.receive(CAPTURED[0][3], NGINX_HOST, 1.1)  # web1
    join.receive(CAPTURED[2][3], NGINX_HOST, 1.1)  # tag nginx: not mapped
    assert [entry.split(b" ", 1)[0] for entry in join.take_output()] == [
        b"10.0.0.2",
        b"10.0.0.1",
        b"10.0.0.3",
    ]
    assert join.sync_counters().report.matched == 3


def test_a_syslog_message_is_never_a_record_and_a_line_starting_with_lt_is_kept() -> None:
    join = LiveJoin(JoinConfig(wait=0))
    forged = b"<190>Dec  5 08:11:50 web2: " + record("10.6.6.6", WEB1)
    junk = b"<not syslog> whatever\n"
    join.receive(forged, WEB1, 1.0)
    join.receive(junk, WEB1, 1.0)
    join.receive(b"<190>Dec  5 08:11:50 web2: " + LINE, WEB1, 1.1)
    output = join.take_output()
    assert output == [record("10.6.6.6", WEB1), junk, LINE + b"\n"]
    report = join.sync_counters().report
    assert (report.records, report.lines, report.unmatched) == (0, 3, 1)
