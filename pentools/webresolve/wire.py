"""DNS wire format for reverse look-ups, at a few microseconds a message.

dnspython builds and parses a whole object tree per message (about 200 µs
for a PTR answer); a log of 20,000 addresses spent most of its time there.
Queries are a fixed header and a question built once per look-up. Answers
of the shapes servers actually send to a plain PTR query are read here:

* positive: every answer record owned by the question's name (a compression
  pointer to it) of type PTR, class IN; no authority, no additional records;
* negative (NXDOMAIN, or NOERROR without answers): no answer and no
  additional records, at most one authority record, an SOA above the name.

`read_reply` returns None for anything else (a CNAME chain as RFC 2317
delegations use, records in other sections, an odd encoding) and the caller
hands the datagram to dnspython; `tests/webresolve/test_wire.py` checks both
agree on whatever the fast path accepts. Names are read with the same rules
as dnspython's: compression pointers strictly backwards, no overlap, at
most 255 bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

import dns.exception
import dns.message

PTR = 12
SOA = 6
CLASS_IN = 1
NOERROR = 0
FORMERR = 1
NXDOMAIN = 3
#: dnspython's TTL for a negative answer without an SOA (dns.message).
NEGATIVE_TTL_WITHOUT_SOA = 300
MAX_TTL = 2**31 - 1  # dns.ttl.MAX_TTL
MAX_NAME = 255
MAX_POINTER_HOPS = 16  # dnspython: MAX_COMPRESSION_POINTER_CHAIN

#: A standard query, recursion desired, one question (the id is put in front).
_QUERY_FLAGS_COUNTS = struct.pack("!HHHHH", 0x0100, 1, 0, 0, 0)
_RR_HEADER = struct.Struct("!HHIH")  # type, class, ttl, rdata length
_COUNTS = struct.Struct("!HHHH")
_OCTET_LABELS = [bytes([len(str(n))]) + str(n).encode() for n in range(256)]
_NIBBLE_LABELS = [b"\x01" + f"{n:x}".encode() for n in range(16)]
_IN_ADDR_ARPA = b"\x07in-addr\x04arpa\x00"
_IP6_ARPA = b"\x03ip6\x04arpa\x00"


class FormError(ValueError):
    """A message the fast path cannot read (dnspython decides about it)."""


class Reply(NamedTuple):
    """What a simple answer says: its rcode, the PTR targets (labels), the TTL to cache."""

    rcode: int
    targets: list[list[bytes]]
    ttl: int


def reverse_question(address: str) -> bytes:
    """The wire question ``<reversed address>.in-addr.arpa. PTR IN`` (or ip6.arpa).

    An IPv4-mapped IPv6 address is asked as IPv4, as dnspython does.
    """
    packed = ipaddress.ip_address(address).packed
    if packed[:12] == b"\0" * 10 + b"\xff\xff":
        packed = packed[12:]
    if len(packed) == 4:
        name = b"".join(_OCTET_LABELS[octet] for octet in reversed(packed)) + _IN_ADDR_ARPA
    else:
        nibbles = [_NIBBLE_LABELS[n] for octet in packed for n in (octet >> 4, octet & 15)]
        name = b"".join(reversed(nibbles)) + _IP6_ARPA
    return name + struct.pack("!HH", PTR, CLASS_IN)


def query(query_id: int, question: bytes) -> bytes:
    """A query datagram: header with `query_id`, then the question as built once."""
    return query_id.to_bytes(2, "big") + _QUERY_FLAGS_COUNTS + question


def answers_question(data: bytes, question: bytes) -> bool:
    """A response (QR) with exactly our question (names compared without case)."""
    return (
        len(data) >= 12 + len(question)
        and data[2] & 0x80 != 0
        and data[4:6] == b"\x00\x01"
        and data[12 : 12 + len(question)].lower() == question
    )


def read_name(data: bytes, offset: int) -> tuple[list[bytes], int]:
    """The labels of the name at `offset` (without the root) and the offset after it."""
    labels: list[bytes] = []
    after = -1  # where the name ends in the message, once a pointer was followed
    start = offset  # the segment being read; a pointer must land before it
    limit = len(data)  # a segment reached through a pointer may not run into the last
    length = 1
    hops = 0
    while True:
        if offset >= limit:
            raise FormError("name runs past its end")
        count = data[offset]
        if count == 0:
            return labels, (offset + 1 if after < 0 else after)
        if count < 64:
            end = offset + 1 + count
            if end > limit:
                raise FormError("label runs past its end")
            labels.append(data[offset + 1 : end])
            length += count + 1
            if length > MAX_NAME:
                raise FormError("name too long")
            offset = end
        elif count >= 192:
            if offset + 1 >= limit:
                raise FormError("pointer runs past its end")
            target = (count & 0x3F) << 8 | data[offset + 1]
            if target >= start:
                raise FormError("pointer does not point backwards")
            hops += 1
            if hops > MAX_POINTER_HOPS:
                raise FormError("pointer chain too long")
            if after < 0:
                after = offset + 2
            limit = start
            start = offset = target
        else:
            raise FormError("bad label type")


def read_reply(data: bytes, question: bytes) -> Reply | None:
    """The reply to a PTR query; None if malformed (to be ignored, like a stray datagram).

    `data` must already have passed `answers_question` for `question`.
    """
    return read_simple_reply(data, question) or read_reply_slowly(data)


def read_simple_reply(data: bytes, question: bytes) -> Reply | None:
    """The reply if it has one of the simple shapes, else None."""
    try:
        return _read_simple_reply(data, question)
    except (FormError, struct.error, IndexError):
        return None


def _read_simple_reply(data: bytes, question: bytes) -> Reply | None:
    flags = data[2] << 8 | data[3]
    if flags & 0x7A00:  # opcode not QUERY, or truncated
        return None
    rcode = flags & 0x0F
    answers, authority, additional = _COUNTS.unpack_from(data, 4)[1:]
    if additional or rcode not in (NOERROR, NXDOMAIN):
        return None
    offset = 12 + len(question)
    if answers:
        if authority or rcode == NXDOMAIN:
            return None
        targets: list[list[bytes]] = []
        seen: set[tuple[bytes, ...]] = set()
        ttl = MAX_TTL
        for _ in range(answers):
            if data[offset : offset + 2] != b"\xc0\x0c":  # owner: a pointer to the question
                return None
            rtype, rclass, rttl, rdlength = _RR_HEADER.unpack_from(data, offset + 2)
            offset += 12
            if rtype != PTR or rclass != CLASS_IN:
                return None
            labels, end = read_name(data, offset)
            if end != offset + rdlength:
                return None
            offset = end
            key = tuple(label.lower() for label in labels)
            if key not in seen:  # an RRset holds each name once (dnspython)
                seen.add(key)
                targets.append(labels)
            ttl = min(ttl, rttl)
        return Reply(rcode, targets, ttl) if offset == len(data) else None
    if authority == 0:
        return Reply(rcode, [], NEGATIVE_TTL_WITHOUT_SOA) if offset == len(data) else None
    if authority > 1:
        return None
    owner, offset = read_name(data, offset)
    rtype, rclass, rttl, rdlength = _RR_HEADER.unpack_from(data, offset)
    offset += 10
    if rtype != SOA or rclass != CLASS_IN or offset + rdlength != len(data):
        return None
    qname = read_name(question, 0)[0]
    if not _is_suffix([label.lower() for label in owner], [label.lower() for label in qname]):
        return None
    _, at = read_name(data, offset)  # primary server
    _, at = read_name(data, at)  # responsible mailbox
    if at + 20 != len(data):
        return None
    minimum = struct.unpack_from("!I", data, at + 16)[0]
    return Reply(rcode, [], min(MAX_TTL, rttl, minimum))


def _is_suffix(owner: list[bytes], name: list[bytes]) -> bool:
    return len(owner) <= len(name) and name[len(name) - len(owner) :] == owner


def read_reply_slowly(data: bytes) -> Reply | None:
    """Any reply to a PTR query, parsed by dnspython (CNAME chains and all); None if malformed.

    A reply dnspython reads but cannot follow (an answer with NXDOMAIN, a
    chain too long) is a server failure (FORMERR).
    """
    try:
        message = dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None
    rcode = message.rcode()
    if rcode not in (NOERROR, NXDOMAIN):
        return Reply(rcode, [], 0)
    try:
        chain = message.resolve_chaining()  # type: ignore[attr-defined]
    except dns.exception.DNSException:
        return Reply(FORMERR, [], 0)
    targets = [list(rdata.target.labels[:-1]) for rdata in chain.answer or ()]
    return Reply(rcode, targets, int(chain.minimum_ttl))
