from __future__ import annotations

import json
from pathlib import Path

import pytest

from pentools.webresolve.cache import CacheFile, CacheFileError
from pentools.webresolve.resolver import Answer, Status

NOW = 1_800_000_000.0


def test_answers_survive_a_save_and_load_until_their_ttl(tmp_path: Path) -> None:
    path = str(tmp_path / "cache")
    cache = CacheFile(path)
    cache.put("192.0.2.1", Answer(Status.RESOLVED, "one.example", 100), NOW)
    cache.put("2001:db8::1", Answer(Status.NOT_FOUND, None, 50), NOW)
    cache.put("192.0.2.3", Answer(Status.TIMEOUT, None, 100), NOW)  # never kept
    cache.put("192.0.2.4", Answer(Status.CONFIRMED, "four.example", 0), NOW)  # TTL 0: not kept
    cache.save(NOW)

    again = CacheFile(path)
    again.load(NOW + 10)
    assert again.get("192.0.2.1", NOW + 10, confirm=False) == Answer(
        Status.RESOLVED, "one.example", 0
    )
    assert again.get("2001:db8::1", NOW + 10, confirm=False).status is Status.NOT_FOUND  # type: ignore[union-attr]
    assert again.get("192.0.2.3", NOW + 10, confirm=False) is None
    assert again.get("192.0.2.4", NOW + 10, confirm=False) is None
    # An unconfirmed name is not good enough for a --confirm run.
    assert again.get("192.0.2.1", NOW + 10, confirm=True) is None
    assert again.get("192.0.2.1", NOW + 101, confirm=False) is None

    later = CacheFile(path)
    later.load(NOW + 60)  # the negative entry has expired
    assert set(later.entries) == {"192.0.2.1"}


def test_a_file_that_is_not_a_cache_is_refused_not_overwritten(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_text('192.0.2.1 - - [21/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1\n')
    with pytest.raises(CacheFileError, match="not a webresolve cache"):
        CacheFile(str(log)).load(NOW)
    assert log.read_text().startswith("192.0.2.1 ")


def test_edited_entries_are_checked_like_fresh_answers(tmp_path: Path) -> None:
    path = tmp_path / "cache"
    header = json.dumps({"format": "pentools-webresolve-cache", "version": 1})
    entries = [
        {"address": "192.0.2.1", "status": "resolved", "name": "ok.example", "expires": NOW + 99},
        {"address": "192.0.2.2", "status": "resolved", "name": "evil name", "expires": NOW + 99},
        {"address": "192.0.2.3", "status": "resolved", "name": "10.0.0.1", "expires": NOW + 99},
        {"address": "not-ip", "status": "resolved", "name": "x.example", "expires": NOW + 99},
        {"address": "192.0.2.5", "status": "timeout", "name": None, "expires": NOW + 99},
        {"address": "192.0.2.6", "status": "not-found", "name": "x.example", "expires": NOW + 99},
    ]
    lines = [header, *(json.dumps(entry) for entry in entries), "{broken"]
    path.write_text("\n".join(lines) + "\n")
    cache = CacheFile(str(path))
    cache.load(NOW)
    assert set(cache.entries) == {"192.0.2.1"}
    assert cache.skipped == 6


def test_missing_file_is_an_empty_cache_and_save_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "new-cache"
    cache = CacheFile(str(path))
    cache.load(NOW)
    assert cache.entries == {}
    cache.put("192.0.2.1", Answer(Status.INVALID, None, 30), NOW)
    cache.save(NOW)
    assert [p.name for p in tmp_path.iterdir()] == ["new-cache"]  # no temporary left behind
    assert json.loads(path.read_text().splitlines()[1])["status"] == "invalid"
