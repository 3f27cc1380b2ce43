"""Sans-IO pieces: server specs, -l targets, X-Forwarded-For, the PROXY protocol header."""

from __future__ import annotations

import pytest

from pentools.core.addresses import HostPort
from pentools.core.errors import ConfigError
from pentools.pen.config import ServerSpec, parse_listen, parse_log_target, parse_server
from pentools.pen.httpheaders import add_forwarded_for, header_block_complete
from pentools.pen.proxyproto import proxy_header_for


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("www1", ServerSpec("www1", 8080)),
        ("www1:8000:10", ServerSpec("www1", 8000, 10)),
        ("10.0.0.1:80:10:20:3:1", ServerSpec("10.0.0.1", 80, 10, 20, 3, 1)),
        ("10.0.0.1::5", ServerSpec("10.0.0.1", 8080, 5)),
        ("[::1]:81:1", ServerSpec("::1", 81, 1)),
        ("[2001:db8::2]", ServerSpec("2001:db8::2", 8080)),
    ],
)
def test_server_specs(text: str, spec: ServerSpec) -> None:
    assert parse_server(text, 8080) == spec


@pytest.mark.parametrize("text", ["", ":80", "h:0", "h:80:-1", "h:1:2:3:4:5:6", "[::1", "h:x"])
def test_bad_server_specs(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_server(text, 8080)


def test_listen_addresses_and_log_targets() -> None:
    assert parse_listen("8080").port == 8080 and parse_listen("8080").host == ""
    assert parse_listen("[::1]:80").host == "::1"
    assert parse_listen("/run/pen.sock").path == "/run/pen.sock"
    assert parse_log_target("pen.log").path == "pen.log"
    assert parse_log_target("/var/log/a:b").path == "/var/log/a:b"
    assert parse_log_target("loghost:10000").address == HostPort("loghost", 10000)
    assert parse_log_target("[::1]:10000").address == HostPort("::1", 10000)


def test_forwarded_for_is_added_when_absent() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"
    assert add_forwarded_for(head, "192.0.2.1") == (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\n\r\nbody"
    )


def test_forwarded_for_is_appended_to_a_client_sent_one() -> None:
    head = b"GET / HTTP/1.1\r\nx-forwarded-for: 6.6.6.6 \r\nHost: a\r\n\r\n"
    assert add_forwarded_for(head, "2001:db8::1") == (
        b"GET / HTTP/1.1\r\nx-forwarded-for: 6.6.6.6, 2001:db8::1\r\nHost: a\r\n\r\n"
    )


def test_forwarded_for_replace_drops_client_sent_ones() -> None:
    head = (
        b"GET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\nHost: a\r\nX-Forwarded-For: 7.7.7.7\r\n\r\n"
    )
    assert add_forwarded_for(head, "192.0.2.1", replace=True) == (
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
    )


def test_incomplete_head_is_left_alone() -> None:
    assert not header_block_complete(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert add_forwarded_for(b"GET / HTTP/1.1\r\n", "1.2.3.4") == b"GET / HTTP/1.1\r\n"


def test_proxy_protocol_v1_and_v2() -> None:
    src, dst = ("192.0.2.1", 5555), ("198.51.100.2", 80)
    assert proxy_header_for(1, src, dst) == b"PROXY TCP4 192.0.2.1 198.51.100.2 5555 80\r\n"
    v2 = proxy_header_for(2, src, dst)
    assert v2[:12] == b"\r\n\r\n\x00\r\nQUIT\n" and v2[12:16] == b"\x21\x11\x00\x0c"
    assert v2[16:] == bytes([192, 0, 2, 1, 198, 51, 100, 2]) + (5555).to_bytes(2) + (80).to_bytes(2)
    assert proxy_header_for(1, ("::1", 1), ("::1", 2)) == b"PROXY TCP6 ::1 ::1 1 2\r\n"
    assert proxy_header_for(1, None, None) == b"PROXY UNKNOWN\r\n"


def test_core_split_listen_address() -> None:
    from pentools.core.addresses import split_listen_address

    assert split_listen_address("/run/pen.sock") == "/run/pen.sock"
    assert split_listen_address("./pen.sock") == "./pen.sock"
    assert split_listen_address("8080") is None
    assert split_listen_address("[::1]:80") is None
