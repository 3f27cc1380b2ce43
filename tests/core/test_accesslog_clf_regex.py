"""The fast common/combined regex reads requests exactly as the plain alternation does."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from pentools.core.accesslog import _CLF_PREFIX

_PLAIN = re.compile(
    r"(?P<client>[^ ]+) [^ ]+ .*?"
    r"\[(?P<time>\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    r'"(?P<request>(?:[^"\\]|\\.)*)"(?: |$)'
)


@given(st.text(alphabet='a "\\[]x-\n', max_size=30))
def test_same_groups_as_the_plain_alternation(tail: str) -> None:
    text = '10.0.0.1 - - [21/Nov/2026:14:00:00 +0000] "' + tail
    fast, plain = _CLF_PREFIX.match(text), _PLAIN.match(text)
    fields = ("client", "time", "request")
    assert (fast and fast.group(*fields)) == (plain and plain.group(*fields))
