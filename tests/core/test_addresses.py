import socket

import pytest

from pentools.core.addresses import (
    HostPort,
    address_family,
    normalize_ip,
    parse_host_port,
    resolve_host,
    split_host_prefix,
)
from pentools.core.errors import AddressError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("[::1]", "::1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("10.0.0.1.", None),
        ("10.0.0.1\x00", None),
        ("10.0.0.\u0661", None),
        ("127.1", None),
        ("010.0.0.1", None),
        ("host.example", None),
        ("", None),
    ],
)
def test_normalize_ip(text: str, expected: str | None) -> None:
    assert normalize_ip(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:80", HostPort("127.0.0.1", 80)),
        ("[::1]:8080", HostPort("::1", 8080)),
        ("localhost:10000", HostPort("localhost", 10000)),
        ("8080", HostPort("0.0.0.0", 8080)),
    ],
)
def test_parse_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text, default_host="0.0.0.0") == expected


def test_parse_host_port_defaults_and_errors() -> None:
    assert parse_host_port("::1", default_port=53) == HostPort("::1", 53)
    assert str(HostPort("::1", 53)) == "[::1]:53"
    for bad in ("host:0", "host:99999", "host:http", "[::1", "[nothost]:1", ""):
        with pytest.raises(AddressError):
            parse_host_port(bad)
    with pytest.raises(AddressError):
        parse_host_port("host")  # a port is required


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("10.0.0.1:access_log", ("10.0.0.1", "access_log")),
        ("web1:/var/log/a:b.log", ("web1", "/var/log/a:b.log")),
        ("[2001:db8::1]:access_log", ("2001:db8::1", "access_log")),
        ("2001:db8::1:access_log", ("2001:db8::1", "access_log")),
        ("::1:x.log", ("::1", "x.log")),
    ],
)
def test_split_host_prefix(spec: str, expected: tuple[str, str]) -> None:
    assert split_host_prefix(spec) == expected


def test_split_host_prefix_rejects_missing_server() -> None:
    for bad in ("access_log", ":access_log", "[::1]access_log"):
        with pytest.raises(AddressError):
            split_host_prefix(bad)


def test_resolve_host() -> None:
    assert resolve_host("2001:db8::1") == ["2001:db8::1"]
    assert "127.0.0.1" in resolve_host("localhost") or "::1" in resolve_host("localhost")
    with pytest.raises(AddressError):
        resolve_host("no-such-host.invalid")


def test_address_family() -> None:
    assert address_family("192.0.2.1") == socket.AF_INET
    assert address_family("2001:db8::1") == socket.AF_INET6
    assert address_family("::ffff:192.0.2.1") == socket.AF_INET6
