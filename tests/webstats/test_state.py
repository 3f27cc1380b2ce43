"""The mergeable state: merged parts equal the whole; saved states come back or are refused."""

from __future__ import annotations

import functools
import itertools
import json
import random
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.weblog import generate_lines
from pentools.webstats.aggregate import Report
from pentools.webstats.parse import ChunkParser
from pentools.webstats.render import render_json
from pentools.webstats.state import State, StateError, merge
from tests.webstats.test_goaccess import EDGE_LINES

#: Few clients, URLs and agents, so that the top-N tables have ties to break.
LINES = [line.rstrip("\n") for line in generate_lines(400, 40, seed=3, days=3)]
LINES[100:100] = EDGE_LINES
PARSER = ChunkParser()


def state_of(lines: list[str], first: int, chunk: int = 50) -> State:
    """The state of `lines` (line `first` on of a log), added in chunks."""
    state = State.empty()
    for start in range(0, len(lines), chunk):
        block = pa.array(lines[start : start + chunk], type=pa.large_string())
        state.add(PARSER.parse(block, first + start), "access.log")
    return state


def report_json(state: State) -> str:
    return render_json(Report.build(state, limit=5))


WHOLE = state_of(LINES, 0)


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(LINES)), max_size=6),
    order=st.randoms(use_true_random=False),
    chunk=st.integers(min_value=30, max_value=500),
)
def test_merged_parts_equal_one_run_over_all(
    cuts: list[int], order: random.Random, chunk: int
) -> None:
    bounds = [0, *sorted(cuts), len(LINES)]
    parts = [state_of(LINES[a:b], a, chunk) for a, b in itertools.pairwise(bounds)]
    order.shuffle(parts)
    merged = functools.reduce(merge, parts)
    assert report_json(merged) == report_json(WHOLE)
    # the counts and the first bad line of the file (placed by chunk, so only its text compares)
    counts = merged.files["access.log"]
    whole = WHOLE.files["access.log"]
    assert (counts.lines, counts.failed) == (whole.lines, whole.failed) == (len(LINES) - 1, 8)
    assert counts.bad is not None and counts.bad[1] == EDGE_LINES[0]


def test_merge_leaves_its_inputs_alone() -> None:
    a, b = state_of(LINES[:200], 0), state_of(LINES[200:], 200)
    before = report_json(a), report_json(b)
    merge(a, b)
    merge(b, a)
    assert (report_json(a), report_json(b)) == before


def test_saved_state_comes_back_the_same(tmp_path: Path) -> None:
    path = tmp_path / "state"
    WHOLE.save(str(path))
    loaded = State.load(str(path))
    assert report_json(loaded) == report_json(WHOLE)
    assert loaded.files == WHOLE.files
    # loaded and merged with more lines: still one run over all
    more = state_of(LINES[:50], 0)
    assert report_json(merge(loaded, more)) == report_json(merge(WHOLE, more))


def test_foreign_or_newer_states_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "state"
    WHOLE.save(str(path))
    with pytest.raises(StateError, match="common/combined"):
        State.load(str(path), "vhost_common")
    with pytest.raises(StateError, match="--from/--to"):
        State.load(str(path), None, since=0.0)
    newer = tmp_path / "newer"
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(newer, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == "meta.json":
                meta = json.loads(data)
                meta["version"] += 1
                data = json.dumps(meta).encode()
            new.writestr(name, data)
    with pytest.raises(StateError, match="newer webstats"):
        State.load(str(newer))
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(StateError, match="not a readable webstats state"):
        State.load(str(junk))
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("meta.json", json.dumps({"hello": 1}))
    with pytest.raises(StateError, match="not a webstats state file"):
        State.load(str(other_zip))
