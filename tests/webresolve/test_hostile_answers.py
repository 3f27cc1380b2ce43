"""Answers a normal server will not give, from a hostile responder on loopback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name
import dns.rcode
import dns.reversename

from pentools.core.addresses import HostPort
from pentools.webresolve.resolver import ResolverConfig, Status, resolve_all
from tests.conftest import run_tool
from tests.webresolve.conftest import (
    Behaviour,
    HostileResponder,
    nxdomain,
    ptr_answer,
    rcode_only,
)


def named(*labels: bytes) -> Behaviour:
    """Answer with a PTR whose target has exactly these raw labels."""
    target = dns.name.Name([*labels, b""])
    return lambda query: [(0.0, ptr_answer(query, target))]


def spoofed_then_real(query: dns.message.Message) -> list[tuple[float, bytes]]:
    """A wrong id and a wrong question first (both must be ignored), then the answer."""
    wrong_id = dns.message.from_wire(ptr_answer(query, dns.name.from_text("spoof.example.")))
    wrong_id.id = (query.id + 1) % 65536
    other = dns.message.make_query(dns.reversename.from_address("192.0.2.1"), "PTR")
    other.id = query.id
    wrong_question = dns.message.make_response(other)
    real = ptr_answer(query, dns.name.from_text("real.example."))
    return [(0.0, wrong_id.to_wire()), (0.0, wrong_question.to_wire()), (0.05, real)]


BEHAVIOURS: dict[str, Behaviour] = {
    "10.66.0.1": named(b"evil name", b"example"),
    "10.66.0.2": named(b"line\nbreak", b"example"),
    "10.66.0.3": named(b"10", b"0", b"0", b"1"),
    "10.66.0.4": lambda query: None,  # never answers
    "10.66.0.5": lambda query: [(0.0, rcode_only(query, dns.rcode.SERVFAIL))],
    "10.66.0.6": lambda query: [(0.3, ptr_answer(query, dns.name.from_text("slow.example.")))],
    "10.66.0.7": named(b'quote"', b"example"),
    "10.66.0.8": named(b"-leading-hyphen", b"example"),
    "10.66.0.9": spoofed_then_real,
    "10.66.0.10": lambda query: [(0.0, nxdomain(query, soa_minimum=42))],
    "10.66.0.11": named(b"good", b"example"),
    "2001:db8::66": named(b"v6", b"example"),
    "10.66.0.12": named(b"a.b", b"example"),  # a dot inside a label
}


def config(responder: HostileResponder, **options: object) -> ResolverConfig:
    server = HostPort(responder.host, responder.port)
    options = {"timeout": 0.5, "retries": 1, **options}
    return ResolverConfig((server,), **options)  # type: ignore[arg-type]


def test_unsafe_names_are_refused_and_failures_reported(
    hostile: Callable[[dict[str, Behaviour]], HostileResponder],
) -> None:
    responder = hostile(BEHAVIOURS)
    answers = resolve_all(config(responder), list(BEHAVIOURS))
    statuses = {address: answer.status for address, answer in answers.items()}
    for address in ("10.66.0.1", "10.66.0.2", "10.66.0.3", "10.66.0.7", "10.66.0.8", "10.66.0.12"):
        assert statuses[address] is Status.INVALID, address
    assert statuses["10.66.0.4"] is Status.TIMEOUT
    assert statuses["10.66.0.5"] is Status.FAILED
    assert answers["10.66.0.6"].name == "slow.example"
    assert answers["10.66.0.9"].name == "real.example"  # the spoofed answers were ignored
    assert answers["10.66.0.10"].status is Status.NOT_FOUND
    assert answers["10.66.0.10"].ttl == 42  # negative TTL from the SOA
    assert answers["10.66.0.11"].name == "good.example"
    assert answers["2001:db8::66"].name == "v6.example"
    # The silent and failing addresses were tried twice (retries=1), no more.
    silent = dns.reversename.from_address("10.66.0.4").to_text()
    assert responder.queries.count(silent) == 2


def test_slow_answers_do_not_hold_up_others(
    hostile: Callable[[dict[str, Behaviour]], HostileResponder],
) -> None:
    slow = {f"10.67.0.{i}": BEHAVIOURS["10.66.0.6"] for i in range(1, 201)}
    responder = hostile(slow)
    answers = resolve_all(config(responder, concurrency=200, timeout=1.5), list(slow))
    assert {answer.name for answer in answers.values()} == {"slow.example"}
    assert len(responder.queries) == 200  # all in flight at once: no time-out, no retry


def test_no_answer_can_inject_text_into_the_log(
    hostile: Callable[[dict[str, Behaviour]], HostileResponder], tmp_path: Path
) -> None:
    responder = hostile(BEHAVIOURS)
    fields = list(BEHAVIOURS)
    data = "".join(f'{field} - - [x] "GET / HTTP/1.1" 200 1\n' for field in fields).encode()
    stats = tmp_path / "stats"
    result = run_tool(
        "webresolve", "--nameserver", responder.nameserver, "-t", "0.5", "-r", "1",
        "-s", str(stats), input=data,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = {"10.66.0.6": "slow.example", "10.66.0.9": "real.example"}
    names |= {"10.66.0.11": "good.example", "2001:db8::66": "v6.example"}
    expected = "".join(
        f'{names.get(field, field)} - - [x] "GET / HTTP/1.1" 200 1\n' for field in fields
    )
    assert result.stdout.decode() == expected
    report = stats.read_text()
    assert "  refused as invalid        : 6" in report
    assert "  timed out                 : 1" in report
    assert "  server failure            : 1" in report


def test_after_a_time_out_a_file_is_read_ahead(
    hostile: Callable[[dict[str, Behaviour]], HostileResponder], tmp_path: Path
) -> None:
    """An unanswered query starts the scout; the output is the same as without it."""
    silent: Behaviour = lambda query: None  # noqa: E731
    behaviours = {"10.66.1.1": silent, "10.66.1.2": silent, "10.66.1.3": named(b"good", b"example")}
    responder = hostile(behaviours)
    padding = "x" * 2000  # 10 MB: far more than the look-ahead window of 1,000 lines
    fields = ["10.66.1.1"] + ["10.66.1.3"] * 4000 + ["10.66.1.2"] + ["10.66.1.3"] * 999
    log = tmp_path / "access_log"
    log.write_text("".join(f"{field} - - {padding}\n" for field in fields))
    stats = tmp_path / "stats"
    result = run_tool(
        "webresolve.splitwr", "--nameserver", responder.nameserver, "-t", "0.5", "-r", "1",
        "-w", "1000", "-s", str(stats), str(log),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = {"10.66.1.3": "good.example"}
    assert result.stdout.decode() == "".join(
        f"{names.get(field, field)} - - {padding}\n" for field in fields
    )
    report = stats.read_text()
    assert "  timed out                 : 2\n" in report
    assert "Read ahead from byte        : no" not in report
    assert int(report.split("Read ahead from byte        : ")[1].split()[0]) > 0
