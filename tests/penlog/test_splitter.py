"""Cutting stdin into datagrams: the same lines however the input is chunked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pentools.penlog.sender import LineSplitter


def split(data: bytes, cuts: list[int], limit: int) -> tuple[list[bytes], int]:
    splitter = LineSplitter(limit)
    lines: list[bytes] = []
    previous = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        lines += splitter.feed(data[previous:cut])
        previous = cut
    return lines + splitter.finish(), splitter.truncated


def expected(data: bytes, limit: int) -> tuple[list[bytes], int]:
    pieces = data.split(b"\n")
    lines = [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1] + b"\n"] if pieces[-1] else [])
    kept = [line if len(line) <= limit else line[: limit - 1] + b"\n" for line in lines]
    return kept, sum(len(line) > limit for line in lines)


@given(
    st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"\n")),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
    st.integers(min_value=2, max_value=12),
)
def test_any_chunking_gives_the_lines_cut_to_the_limit(
    data: bytes, cuts: list[int], limit: int
) -> None:
    assert split(data, cuts, limit) == expected(data, limit)


def test_a_line_exactly_at_the_limit_is_kept_whole() -> None:
    assert split(b"abcd\nabcde\n", [3, 7], 5) == ([b"abcd\n", b"abcd\n"], 1)
