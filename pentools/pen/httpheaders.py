"""``-H``: the client's address in ``X-Forwarded-For``, appended, never only added.

The original adds the header only when it is absent, so a header forged by
the client reaches the backend as if pen had written it.  pentools appends
the real address to the last ``X-Forwarded-For`` (the backend trusts the
right-most entry it did not write itself), or with ``replace`` drops every
client-sent one and writes its own (SPEC §8).
"""

from __future__ import annotations

import re

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_XFF_LINE = re.compile(rb"^x-forwarded-for[ \t]*:[^\r\n]*", re.IGNORECASE | re.MULTILINE)


def header_block_complete(data: bytes) -> bool:
    """True if `data` holds a whole request head (up to the empty line)."""
    return _HEAD_END.search(data) is not None


def add_forwarded_for(data: bytes, client: str, *, replace: bool = False) -> bytes:
    """`data` (a request head and maybe more) with `client` in X-Forwarded-For."""
    end = _HEAD_END.search(data)
    if end is None:
        return data
    line_end = data.find(b"\n") + 1  # headers start after the request line
    head, rest = data[line_end : end.start()], data[end.start() :]
    address = client.encode("ascii")
    existing = list(_XFF_LINE.finditer(head))
    if existing and not replace:
        last = existing[-1]
        head = head[: last.end()].rstrip(b" \t") + b", " + address + head[last.end() :]
    else:
        if existing:
            head = _XFF_LINE.sub(b"", head)
            head = re.sub(rb"(?:\r?\n){2,}", b"\r\n", head).strip(b"\r\n")
        newline = b"\r\n" if b"\r\n" in data[:line_end] else b"\n"
        header = b"X-Forwarded-For: " + address
        head = head + newline + header if head else header
    return data[:line_end] + head + rest
