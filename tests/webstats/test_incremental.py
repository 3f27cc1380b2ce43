"""``webstats report --state``: after any run of rotations, the figures of one run over all lines.

Real files, real renames, gzip and truncation, the real command; after each
run the JSON must equal a single run over every whole line written so far.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

from benchmarks.weblog import generate_lines
from pentools.webstats.aggregate import Report
from pentools.webstats.render import render_json
from pentools.webstats.sources import count_files
from pentools.webstats.state import State
from tests.conftest import run_tool
from tests.webstats.test_goaccess import EDGE_LINES

LINES = list(generate_lines(3000, 300, seed=7, days=2))
LINES[50:50] = [line + "\n" for line in EDGE_LINES]


class Farm:
    """A log directory, the lines written to it so far, and the cron job."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.next = 0
        self.written: list[str] = []
        self.everything = root / "everything.txt"

    def append(self, name: str, count: int, partial: str = "") -> None:
        """Write the next `count` lines to `name`, then `partial` (a line cut short)."""
        lines = LINES[self.next : self.next + count]
        self.next += count
        self.written += lines
        with open(self.root / name, "a", encoding="latin-1") as stream:
            stream.write("".join(lines) + partial)

    def cron(self, *names: str) -> dict:
        out = self.root / "report.json"
        paths = [str(self.root / name) for name in names]
        state = str(self.root / "state")
        result = run_tool("webstats", "report", *paths, "--state", state, "--json", str(out))
        assert result.returncode == 0, result.stderr
        return _without_paths(json.loads(out.read_text(encoding="utf-8")))

    def one_run(self) -> dict:
        """The report of one run over every whole line written so far."""
        self.everything.write_text("".join(self.written), encoding="latin-1")
        state = count_files([str(self.everything)], State.empty())
        return _without_paths(json.loads(render_json(Report.build(state))))


def _without_paths(document: dict) -> dict:
    document["general"].pop("log_path")
    return document


def test_rotations_count_every_line_once(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    farm = Farm(logs)
    farm.everything = tmp_path / "everything.log"

    farm.append("access.log", 400)
    assert farm.cron("access.log") == farm.one_run()
    assert farm.cron("access.log") == farm.one_run()  # nothing new: nothing changes

    # a line being written when cron runs is counted once it is whole
    cut = LINES[farm.next]
    farm.append("access.log", 200, partial=cut[:30])
    assert farm.cron("access.log") == farm.one_run()
    with open(logs / "access.log", "a", encoding="latin-1") as stream:
        stream.write(cut[30:])
    farm.written.append(cut)
    farm.next += 1

    # logrotate's default: rename, and a new file (lines written before the rename too)
    farm.append("access.log", 100)
    os.rename(logs / "access.log", logs / "access.log.1")
    farm.append("access.log", 150)
    assert farm.cron("access.log", "access.log.1") == farm.one_run()

    # delaycompress: .1 becomes .2.gz (a new inode, the same content), the live file .1
    farm.append("access.log", 80)
    with open(logs / "access.log.1", "rb") as src, gzip.open(logs / "access.log.2.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(logs / "access.log.1")
    os.rename(logs / "access.log", logs / "access.log.1")
    farm.append("access.log", 120)
    rotated = ("access.log", "access.log.1", "access.log.2.gz")
    assert farm.cron(*rotated) == farm.one_run()
    assert farm.cron(*rotated) == farm.one_run()

    # compress at once: lines written since the last run are read from the .gz
    farm.append("access.log", 90)
    with open(logs / "access.log", "rb") as src, gzip.open(logs / "access.log.3.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.truncate(logs / "access.log", 0)
    farm.append("access.log", 60)
    assert farm.cron(*rotated, "access.log.3.gz") == farm.one_run()

    # copytruncate: the copy holds the new lines, the same inode starts again
    farm.append("access.log", 70)
    shutil.copyfile(logs / "access.log", logs / "access.log.copy")
    os.truncate(logs / "access.log", 0)
    farm.append("access.log", 40)
    assert farm.cron(*rotated, "access.log.3.gz", "access.log.copy") == farm.one_run()

    # truncated, and nothing written since: shorter than the offset, read from 0 later
    os.truncate(logs / "access.log", 0)
    assert farm.cron("access.log") == farm.one_run()
    farm.append("access.log", 30)
    assert farm.cron("access.log") == farm.one_run()
    assert farm.next > 1300


def test_state_of_another_format_is_one_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("".join(LINES[:20]), encoding="latin-1")
    state = tmp_path / "state"
    first = run_tool("webstats", "report", str(log), "--state", str(state), "--json", os.devnull)
    assert first.returncode == 0, first.stderr
    again = run_tool(
        "webstats", "report", str(log), "--state", str(state), "-f", "vhost_common",
        "--json", os.devnull,
    )  # fmt: skip
    message = again.stderr.decode()
    assert again.returncode == 1 and message.count("\n") == 1, message
    assert "common/combined" in message and "vhost_common" in message
    piped = run_tool("webstats", "report", "-", "--state", str(state), input=b"")
    assert piped.returncode == 1 and b"standard input" in piped.stderr


def test_input_that_does_not_parse_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 40)
    pen_log = Path(__file__).resolve().parents[2] / "sample_logs" / "pen.log"
    combined = tmp_path / "access.log"
    combined.write_text("".join(LINES[:100]), encoding="latin-1")
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    for path, args, fmt in (
        (junk, [], "common/combined"),
        (pen_log, [], "common/combined"),
        (combined, ["-f", "vhost_common"], "vhost_common"),
    ):
        out = tmp_path / "r.json"
        out.unlink(missing_ok=True)
        result = run_tool("webstats", "report", str(empty), str(path), *args, "--json", str(out))
        message = result.stderr.decode()
        assert result.returncode == 3, message
        assert message.count("\n") == 1 and message.startswith("webstats: WARNING: ")
        assert str(path) in message and fmt in message and "one that does not: " in message
        assert str(empty) not in message  # no line, nothing wrong
        assert json.loads(out.read_text())["general"]["valid_requests"] == 0  # still written
    # under the threshold: a quarter of the lines are junk
    mixed = tmp_path / "mixed.log"
    mixed.write_text("".join(LINES[:30]) + "junk\n" * 10, encoding="latin-1")
    result = run_tool("webstats", "report", str(mixed), "--json", os.devnull)
    assert result.returncode == 3 and b"30 of 40 lines (75.0%) parse as" in result.stderr
    assert b"one that does not: 'junk'" in result.stderr
    lenient = run_tool(
        "webstats", "report", str(mixed), "--min-parsed", "0.5", "--json", os.devnull
    )
    assert lenient.returncode == 0 and lenient.stderr == b""
