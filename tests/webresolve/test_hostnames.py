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


#: Labels of host-name characters with now and then one of log syntax inside:
#: random text alone is almost never a host name, so the property would
#: rarely be checked on a name that passes.
_LABEL_LIKE = r'[A-Za-z0-9-]{0,6}[ "\t\n\[\]\\:]?[A-Za-z0-9-]{1,6}'
_NAME_LIKE = st.from_regex(rf"{_LABEL_LIKE}(\.{_LABEL_LIKE}){{0,4}}\.?", fullmatch=True)


@given(st.text(max_size=80) | _NAME_LIKE)
def test_an_accepted_name_never_carries_log_syntax(text: str) -> None:
    if is_valid_host_name(text):
        assert not set(text) & set(' "\t\r\n[]\\:')
        assert text.rstrip(".").split(".")[-1].isdigit() is False
