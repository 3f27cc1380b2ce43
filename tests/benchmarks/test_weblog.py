"""The benchmark access-log generator: deterministic, varied, parseable."""

from __future__ import annotations

import hashlib

from benchmarks.weblog import generate_entries, generate_lines, main
from pentools.core.accesslog import LogFormat


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("".join(lines).encode("latin-1")).hexdigest()


def test_same_seed_same_bytes_and_another_seed_differs() -> None:
    first = list(generate_lines(5000, 1000, seed=7, days=2))
    assert _digest(first) == _digest(list(generate_lines(5000, 1000, seed=7, days=2)))
    assert _digest(first) != _digest(list(generate_lines(5000, 1000, seed=8, days=2)))


def test_every_line_parses_except_the_intended_malformed_ones() -> None:
    fmt = LogFormat(None)
    entries = list(generate_entries(60_000, 20_000, seed=3, days=4))
    assert len(entries) == 60_000
    malformed = [line for line, bad in entries if bad]
    assert len(malformed) == 3
    parsed = [fmt.parse(line) for line, bad in entries if not bad]
    assert all(line is not None for line in parsed)
    assert all(fmt.parse(line) is None for line in malformed)
    clients = {line.client for line in parsed if line}
    assert 10_000 < len(clients) <= 20_000
    assert any(":" in client for client in clients)
    days = {int(line.time // 86400) for line in parsed if line and line.time}
    assert len(days) >= 4


def test_hostile_markup_and_dashes_are_present() -> None:
    text = "".join(generate_lines(60_000, 20_000, seed=3, days=4))
    assert "<script>" in text
    assert '\\"><img src=x onerror=' in text
    assert '"javascript:alert(1)"' in text
    assert '" 304 - "' in text


def test_command_writes_the_same_log(tmp_path) -> None:
    out = tmp_path / "w.log"
    assert main(["--lines", "2000", "--clients", "500", "--seed", "5", "-o", str(out)]) == 0
    assert out.read_bytes() == "".join(generate_lines(2000, 500, 5, 3)).encode("latin-1")
