from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pentools.webresolve.hostnames import host_name_from_labels, is_valid_host_name


@pytest.mark.parametrize(
    "name",
    [
        "host.example.com",
        "host.example.com.",
        "a",
        "x-1.y2.example",
        "A1.EXAMPLE.org",
        "1st.example",
    ],
)
def test_plain_host_names_are_accepted(name: str) -> None:
    assert is_valid_host_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "evil name.example",
        'quote".example',
        "line\nbreak.example",
        "tab\t.example",
        "-lead.example",
        "trail-.example",
        "under_score.example",
        "a..b",
        "10.0.0.1",
        "10.0.0.1.",
        "127.1",
        "2130706433",
        "0x7f.0x1",
        "::1",
        "2001:db8::1",
        "1.2.3.4.5",
        "caf\u00e9.example",
        "x" * 64 + ".example",
        ".".join(["abcdefghi"] * 26),
    ],
)
def test_unsafe_names_are_refused(name: str) -> None:
    assert not is_valid_host_name(name)


def test_labels_with_dots_or_spaces_inside_are_refused() -> None:
    assert host_name_from_labels([b"www", b"example", b""]) == "www.example"
    assert host_name_from_labels([b"a.b", b"example", b""]) is None
    assert host_name_from_labels([b"a b", b"example", b""]) is None
    assert host_name_from_labels([b"10", b"0", b"0", b"1", b""]) is None
    assert host_name_from_labels([b""]) is None


@given(st.text(max_size=80))
def test_an_accepted_name_never_carries_log_syntax(text: str) -> None:
    if is_valid_host_name(text):
        assert not set(text) & set(' "\t\r\n[]\\:')
        assert text.rstrip(".").split(".")[-1].isdigit() is False
