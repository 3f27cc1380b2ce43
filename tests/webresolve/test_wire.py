"""The fast wire format against dnspython: same queries, same reading of every answer it takes."""

from __future__ import annotations

from typing import TypedDict

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.PTR
import dns.reversename
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from pentools.webresolve import wire

addresses = st.ip_addresses().map(str)
labels = st.binary(min_size=1, max_size=20).filter(
    lambda label: b"." not in label
) | st.sampled_from([b"host", b"Example", b"NET", b"10", b"a-b", b"evil name", b"x\ny", b"\x00"])
names = st.lists(labels, min_size=1, max_size=4).map(lambda parts: dns.name.Name([*parts, b""]))
ttls = st.integers(0, 2**31 - 1)


def question_of(address: str) -> tuple[dns.message.QueryMessage, bytes]:
    query = dns.message.make_query(dns.reversename.from_address(address), "PTR", id=0)
    return query, wire.reverse_question(address)


@given(addresses, st.integers(0, 65535))
def test_queries_are_byte_for_byte_dnspythons(address: str, query_id: int) -> None:
    query, question = question_of(address)
    query.id = query_id
    assert wire.query(query_id, question) == query.to_wire()


class ReplyPlan(TypedDict):
    """What a reply to a PTR query holds (the message is built outside the strategy)."""

    address: str
    rcode: dns.rcode.Rcode
    targets: list[tuple[dns.name.Name, int]]
    soa: tuple[int | dns.name.Name, int, int] | None  # (depth or owner, TTL, minimum)
    cname: bool
    additional: bool


@st.composite
def reply_plans(draw: st.DrawFn) -> ReplyPlan:
    address = draw(addresses)
    depth = len(dns.reversename.from_address(address).labels) - 1
    return {
        "address": address,
        "rcode": draw(st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL])),
        "targets": draw(st.lists(st.tuples(names, ttls), max_size=3)),
        "soa": draw(st.none() | st.tuples(st.integers(0, depth - 1) | names, ttls, ttls)),
        "cname": draw(st.booleans()),
        "additional": draw(st.booleans()),
    }


def build(plan: ReplyPlan) -> tuple[bytes, bytes, bool]:
    """The reply's wire, the question, and whether it has a shape the fast path must take."""
    query, question = question_of(plan["address"])
    response = dns.message.make_response(query)
    qname = query.question[0].name
    rcode = plan["rcode"]
    response.set_rcode(rcode)
    targets = plan["targets"]
    simple = rcode != dns.rcode.SERVFAIL
    if targets:
        rrset = response.find_rrset(
            response.answer, qname, dns.rdataclass.IN, dns.rdatatype.PTR, create=True
        )
        for target, ttl in targets:
            rrset.add(dns.rdtypes.ANY.PTR.PTR(dns.rdataclass.IN, dns.rdatatype.PTR, target), ttl)
        simple = simple and rcode == dns.rcode.NOERROR
    if plan["soa"] is not None:  # an SOA above the name (a depth), or anywhere (a name)
        where, ttl, minimum = plan["soa"]
        owner = qname.split(where + 1)[1] if isinstance(where, int) else where
        text = f"ns.test. admin.test. 1 3600 600 86400 {minimum}"
        response.authority.append(dns.rrset.from_text(owner, ttl, "IN", "SOA", text))
        simple = simple and not targets and qname.is_subdomain(owner)
    if plan["cname"]:
        response.answer.insert(0, dns.rrset.from_text(qname, 60, "IN", "CNAME", "alias.test."))
        simple = False
    if plan["additional"]:
        response.additional.append(dns.rrset.from_text("ns.test.", 60, "IN", "A", "192.0.2.1"))
        simple = False
    return response.to_wire(), question, simple


@settings(max_examples=500)
@given(reply_plans())
def test_the_fast_path_reads_what_dnspython_reads(plan: ReplyPlan) -> None:
    data, question, simple = build(plan)
    assert wire.answers_question(data, question)
    fast = wire.read_simple_reply(data, question)
    if simple:
        assert fast is not None  # the common shapes never pay for dnspython
    if fast is not None:
        assert fast == wire.read_reply_slowly(data)


@settings(max_examples=1000)
@given(reply_plans(), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
def test_a_damaged_reply_is_read_alike_or_left_to_dnspython(
    plan: ReplyPlan, damage: list[tuple[int, int]]
) -> None:
    reply = build(plan)
    data = bytearray(reply[0])
    for position, value in damage:
        if position < len(data):
            data[position] = value
    if damage and damage[0][0] >= len(data):
        del data[damage[0][0] % len(data) :]  # cut short
    question = reply[1]
    if not wire.answers_question(bytes(data), question):
        return
    fast = wire.read_simple_reply(bytes(data), question)
    if fast is not None:
        assert fast == wire.read_reply_slowly(bytes(data))


def test_names_follow_pointers_backwards_only() -> None:
    assert wire.read_name(b"\x01a\x00\x01b\xc0\x00", 3) == ([b"b", b"a"], 7)
    for bad in (b"\xc0\x00", b"\x01a\xc0\x02", b"\x40", b"\x05ab"):
        try:
            wire.read_name(bad, 0)
        except wire.FormError:
            continue
        raise AssertionError(bad)


def test_a_name_repeated_in_the_answer_counts_once_like_in_dnspython() -> None:
    plan: ReplyPlan = {
        "address": "192.0.2.7",
        "rcode": dns.rcode.NOERROR,
        "targets": [(dns.name.from_text("one.example."), 300)],
        "soa": None,
        "cname": False,
        "additional": False,
    }
    data, question, _ = build(plan)
    record = data[12 + len(question) :]
    upper = record.replace(b"one", b"ONE")  # the same name in other case, a lower TTL
    upper = upper[:6] + (100).to_bytes(4, "big") + upper[10:]
    doubled = data[:6] + b"\x00\x02" + data[8:] + upper
    fast = wire.read_simple_reply(doubled, question)
    assert fast == wire.read_reply_slowly(doubled)
    assert fast == wire.Reply(0, [[b"one", b"example"]], 100)
