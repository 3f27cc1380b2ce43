"""The per-backend panel: mergelogs --tag-backend appends the backend, webstats reads it.

Without the option, mergelogs' output is what it always was (byte for byte);
with it, each line gains one last field, and ``-f combined_backend`` counts
requests by backend, exactly as the backends' own logs do.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SAMPLE_LOGS, run_tool

SERVERS = ("127.0.0.11", "127.0.0.12")


def _merge(*options: str) -> bytes:
    logs = [f"{server}:{SAMPLE_LOGS / f'access_log.{server}'}" for server in SERVERS]
    result = run_tool("mergelogs", "-p", str(SAMPLE_LOGS / "pen.log"), *options, *logs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tagged_lines_are_the_plain_ones_plus_the_backend() -> None:
    plain, tagged = _merge().splitlines(), _merge("--tag-backend").splitlines()
    assert len(plain) == len(tagged) > 1000
    for before, after in zip(plain, tagged, strict=True):
        line, _, backend = after.rpartition(b" ")
        assert line == before and backend.decode() in SERVERS


def test_webstats_counts_requests_by_backend(tmp_path: Path) -> None:
    log = tmp_path / "farm.log"
    log.write_bytes(_merge("--tag-backend"))
    page, out = tmp_path / "farm.html", tmp_path / "farm.json"
    result = run_tool(
        "webstats", "report", str(log), "-f", "combined_backend", "-o", str(page),
        "--json", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = page.read_text()
    assert '<details id="p-backends" open><summary><h2>Backends</h2>' in html
    for server in SERVERS:
        own = (SAMPLE_LOGS / f"access_log.{server}").read_bytes().count(b"\n")
        assert f'<td class="t">{server}</td><td class="n" data-v="{own}">' in html
    # The rest of the report is the report of the untagged lines.
    plain, plain_out = tmp_path / "plain.log", tmp_path / "plain.json"
    plain.write_bytes(_merge())
    assert run_tool("webstats", "report", str(plain), "--json", str(plain_out)).returncode == 0
    tagged, untagged = json.loads(out.read_text()), json.loads(plain_out.read_text())
    for document in (tagged, untagged):
        document["general"].pop("log_path")
    assert tagged == untagged
