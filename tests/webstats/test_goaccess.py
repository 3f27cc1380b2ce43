"""webstats' headline numbers equal GoAccess's on the same log.

GoAccess (Debian ``goaccess``) runs with ``--no-global-config
--log-format=COMBINED`` and, since its static-file list comes from its
configuration, with our list given as ``--static-file`` options.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.weblog import generate_lines
from pentools.webstats.aggregate import STATIC_EXTENSIONS
from tests.conftest import require_program, run_tool

pytestmark = pytest.mark.realpart

#: Lines GoAccess and we must both count as failed, or both accept.
EDGE_LINES = [
    '10.0.0.1 - - [01/Foo/2026:10:00:00 +0100] "GET /bad-month HTTP/1.1" 200 5 "-" "a"',
    '10.0.0.1 - - [01/Mar/2026:24:00:00 +0100] "GET /bad-hour HTTP/1.1" 200 5 "-" "a"',
    '10.0.0.1 - - [01/Mar/2026:10:00:00] "GET /no-zone HTTP/1.1" 200 5 "-" "a"',
    '10.0.0.1 - - [01/Mar/2026:10:00:00 +0100] "GET /cut HTT',
    '10.0.0.1 - - [01/Mar/2026:10:00:00 +0100] "GET /bad-status HTTP/1.1" 999 5 "-" "a"',
    '10.0.0.1 - - [01/Mar/2026:10:00:00 +0100] "GET /status-text HTTP/1.1" abc 5 "-" "a"',
    "   ",
    "\x16\x03\x01 not a log line",
    "",
    '10.0.0.2 - - [01/Mar/2026:10:00:00 +0100] "-" 408 - "-" "-"',
    '10.0.0.3 - - [01/Mar/2026:10:00:00 +0100] "get /Lower%20Case%3F HTTP/2.0" 200 7 "-" "b"',
    '10.0.0.3 - - [01/Mar/2026:10:00:00 +0100] "FOO /unknown-method HTTP/1.1" 200 7 "-" "b"',
    '10.0.0.3 - - [01/Mar/2026:10:00:00 +0100] "GET /no-protocol" 200 7 "-" "b"',
    '10.0.0.3 - - [01/Mar/2026:10:00:00 +0100] "GET /a.CSS?v=1 HTTP/1.1" 200 7 "-" "b"',
    '10.0.0.3 - - [01/Mar/2026:10:00:00 +0100] "GET /img/A.PNG HTTP/1.1" 200 12abc "-" "b"',
    '10.0.0.4 - john smith [01/Mar/2026:23:59:59 -0500] "GET /late HTTP/1.1" 404 9 "-" "c"',
    '2001:db8::7 - - [02/Mar/2026:00:00:00 -0500] "GET /late HTTP/1.1" 200 9 "-" "c \\"q\\""',
]


def _goaccess_json(goaccess: str, log: Path, out: Path) -> dict:
    argv = [goaccess, str(log), "--no-global-config", "--log-format=COMBINED", "-o", str(out)]
    argv += [f"--static-file={ext}" for ext in STATIC_EXTENSIONS]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)
    return json.loads(out.read_text(encoding="utf-8", errors="replace"))


def _by_key(items: list[dict]) -> dict[tuple[str | None, str, str | None], int]:
    # GoAccess leaves out the method and protocol of a request that has none
    return {(i.get("method"), i["data"], i.get("protocol")): i["hits"]["count"] for i in items}


def _assert_same_top(ours: list[dict], theirs: list[dict], count: int = 10) -> None:
    """Our top `count` are GoAccess's: same hits for each key, same ranking up to ties."""
    their_hits = _by_key(theirs)
    our_top = ours[:count]
    assert len(our_top) == min(count, len(theirs))
    for item in our_top:
        key = (item["method"], item["data"], item["protocol"])
        assert their_hits.get(key) == item["hits"]["count"], key
    ranked = sorted(their_hits.values(), reverse=True)[:count]
    assert [item["hits"]["count"] for item in our_top] == ranked


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    goaccess = require_program("goaccess")
    work = tmp_path_factory.mktemp("goaccess")
    log = work / "access.log"
    lines = list(generate_lines(40_000, 8_000, seed=11, days=3))
    lines[1000:1000] = [line + "\n" for line in EDGE_LINES]
    log.write_bytes("".join(lines).encode("latin-1"))
    theirs = _goaccess_json(goaccess, log, work / "goaccess.json")
    result = run_tool("webstats", "report", str(log), "--json", str(work / "ours.json"))
    assert result.returncode == 0, result.stderr
    ours = json.loads((work / "ours.json").read_text(encoding="utf-8"))
    return ours, theirs


def test_general_numbers_equal_goaccess(both: tuple[dict, dict]) -> None:
    ours, theirs = both
    for key in (
        "total_requests",
        "valid_requests",
        "failed_requests",
        "unique_visitors",
        "bandwidth",
        "unique_files",
        "unique_static_files",
        "unique_not_found",
        "unique_referrers",
    ):
        assert ours["general"][key] == theirs["general"][key], key
    assert ours["general"]["failed_requests"] >= 8


def test_status_codes_equal_goaccess(both: tuple[dict, dict]) -> None:
    ours, theirs = both

    def codes(document: dict) -> dict[str, int]:
        return {
            item["data"][:3]: item["hits"]["count"]
            for group in document["status_codes"]["data"]
            for item in group["items"]
        }

    assert codes(ours) == codes(theirs)


@pytest.mark.parametrize("panel", ["requests", "static_requests", "not_found"])
def test_top_urls_equal_goaccess(both: tuple[dict, dict], panel: str) -> None:
    ours, theirs = both
    _assert_same_top(ours[panel]["data"], theirs[panel]["data"])


def test_visitors_per_day_equal_goaccess(both: tuple[dict, dict]) -> None:
    ours, theirs = both

    def days(document: dict) -> dict[str, tuple[int, int]]:
        return {
            i["data"]: (i["hits"]["count"], i["visitors"]["count"])
            for i in document["visitors"]["data"]
        }

    assert days(ours) == days(theirs)
