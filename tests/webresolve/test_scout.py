"""Reading ahead: the scout finds each address of a file once, and stops at its memory bound."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from pentools.webresolve import scout
from tests.conftest import tool_env

LOG = (
    b"192.0.2.1 - - first\n"
    b"\n"
    b"2001:DB8::1 - - upper case\n"
    b"::ffff:192.0.2.1 - - mapped: the same client\n"
    b"junk\xff - - not an address\n"
    b"[2001:db8::1] - - bracketed: the same again\n"
    b"198.51.100.7\r\n"
    b"192.0.2.1 - - again\n"
    b"203.0.113.9 - - no newline at the end"
)


def test_each_address_once_normalized(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_bytes(LOG)
    found = list(scout.addresses_in(str(log)))
    assert sorted(found) == sorted(["192.0.2.1", "2001:db8::1", "198.51.100.7", "203.0.113.9"])


def test_a_log_of_junk_cannot_grow_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "access_log"
    log.write_bytes(b"".join(b"junk%d x\n" % number for number in range(1000)) + LOG)
    monkeypatch.setattr(scout, "MAX_FIELDS", 500)
    assert list(scout.addresses_in(str(log))) == []  # gave up before the addresses


def test_the_process_prints_addresses_and_only_files_are_scouted(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_bytes(LOG)
    result = subprocess.run(
        [sys.executable, "-m", "pentools.webresolve.scout", str(log)],
        capture_output=True, env=tool_env(), check=True,
    )  # fmt: skip
    assert sorted(result.stdout.decode().split()) == sorted(scout.addresses_in(str(log)))
    assert scout.scout_source(str(log)) == scout.Source(str(log), 0)
    assert scout.scout_source(str(tmp_path)) is None
    packed = tmp_path / "access_log.gz"
    packed.write_bytes(gzip.compress(LOG))
    assert scout.scout_source(str(packed)) == scout.Source(str(packed), None)  # from the start
    assert list(scout.addresses_in(str(packed))) == list(scout.addresses_in(str(log)))


def test_from_an_offset_a_cut_line_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_bytes(b"12.3.4.5 - - one\n198.51.100.7 - - two\n")
    assert list(scout.addresses_in(str(log), 1)) == ["198.51.100.7"]  # not 2.3.4.5
    assert list(scout.addresses_in(str(log), 17)) == ["198.51.100.7"]  # a whole line
    assert scout.Source(str(log), 0).arguments(17) == [str(log), "17"]
    assert scout.Source(str(log), None).arguments(17) == [str(log)]


def test_standard_input_is_scouted_from_where_it_stands(tmp_path: Path) -> None:
    """`webresolve < access_log`: the scout reopens /dev/stdin and starts at its offset."""
    log = tmp_path / "access_log"
    log.write_bytes(LOG)
    code = (
        "import sys; sys.stdin.buffer.raw.read(20); "  # as if the first line were read already
        "from pentools.webresolve import scout; print(scout.scout_source('-'))"
    )
    with open(log, "rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-c", code], stdin=stdin, capture_output=True, env=tool_env()
        )
    assert result.stdout.decode().strip() == "Source(path='/dev/stdin', start=20)"
    assert "192.0.2.1" in scout.addresses_in(str(log), 0)
    rest = list(scout.addresses_in(str(log), 20))
    assert "192.0.2.1" in rest  # from the mapped and the last-but-one lines
    assert len(rest) == 4
    piped = subprocess.run(
        [sys.executable, "-c", code], input=LOG, capture_output=True, env=tool_env()
    )
    assert piped.stdout.decode().strip() == "None"  # a pipe cannot be read twice
