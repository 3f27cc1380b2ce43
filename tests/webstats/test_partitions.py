"""Partitions of logs for a cluster: every line read exactly once, whatever the cuts."""

from __future__ import annotations

import gzip
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pentools.core.errors import ConfigError, InputFileError
from pentools.webstats import partitions as partitions_module
from pentools.webstats.partitions import Partition, plan_partitions, read_partition
from tests.conftest import require_module

#: Lines with what makes cutting hard: CRs, empty lines, runs of newlines, long lines.
LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")) | st.sampled_from(
    [b"", b"\r", b"x" * 300, b"GET / HTTP/1.1\r"]
)


def owned_lines(data: bytes, start: int, end: int) -> list[bytes]:
    """The oracle: the lines (newline kept) of `data` that start in [start, end)."""
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == 10 and i + 1 < len(data)]
    lines = []
    for index, first in enumerate(starts):
        if start <= first < end and first < len(data):
            last = starts[index + 1] if index + 1 < len(starts) else len(data)
            lines.append(data[first:last])
    return lines


def content(partition: Partition, block_size: int, data: bytes) -> bytes:
    """What a partition reads of `data`, checking that each block is whole lines at its offset."""
    blocks = list(read_partition(partition, block_size))
    for offset, block in blocks:
        assert data[offset : offset + len(block)] == block
    for _, block in blocks[:-1]:
        assert block.endswith(b"\n")  # whole lines in every block but a last unended line
    return b"".join(block for _, block in blocks)


def lines_of(data: bytes) -> list[bytes]:
    """The lines of `data` split at newlines only (a CR is part of its line), newline kept."""
    return [line + b"\n" for line in data.split(b"\n")[:-1]] + (
        [data.rsplit(b"\n", 1)[-1]] if data and not data.endswith(b"\n") else []
    )


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(LINE, max_size=30),
    final_newline=st.booleans(),
    parts=st.integers(min_value=1, max_value=40),
    block_size=st.integers(min_value=1, max_value=64),
    scan_size=st.integers(min_value=1, max_value=16),
)
def test_partitions_own_every_line_once(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    final_newline: bool,
    parts: int,
    block_size: int,
    scan_size: int,
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    assume(not data.startswith(b"\x1f\x8b"))  # gzip's magic: a compressed file, as everywhere
    log = tmp_path_factory.mktemp("cut") / "access.log"
    log.write_bytes(data)
    size = max(1, -(-len(data) // parts))
    partitions = plan_partitions([str(log)], size)
    assert len(partitions) == max(1, -(-len(data) // size))
    assert partitions[0].start == 0 and partitions[-1].end == len(data)
    read: list[bytes] = []
    for partition in partitions:
        # Small scans: the end of the line a range begins in is found across many reads.
        with mock.patch.object(partitions_module, "_SCAN_BYTES", scan_size):
            mine = lines_of(content(partition, block_size, data))
        assert mine == owned_lines(data, partition.start, partition.end)
        read += mine
    assert b"".join(read) == data


def test_compressed_files_are_one_partition_each(tmp_path: Path) -> None:
    data = b"".join(b"line %d\r\n" % n for n in range(5000)) + b"no newline"
    gz = tmp_path / "access.log.2.gz"
    gz.write_bytes(gzip.compress(data))
    hidden = tmp_path / "rotated"  # gzip recognised by its first bytes, as in the 1-process path
    hidden.write_bytes(gzip.compress(data))
    plain = tmp_path / "access.log"
    plain.write_bytes(data)
    partitions = plan_partitions([str(gz), str(plain), str(hidden)], 1000)
    cuts = -(-len(data) // 1000)
    assert [p.compressed for p in partitions] == [True] + [False] * cuts + [True]
    assert [p.location for p in partitions[:2]] == [str(gz), str(plain)]
    for partition in (partitions[0], partitions[-1]):
        assert content(partition, 4096, data) == data
    assert b"".join(content(p, 4096, data) for p in partitions[1:-1]) == data


def test_relative_paths_become_absolute_and_urls_are_read_through_fsspec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_module("fsspec")  # comes with the dask extra
    (tmp_path / "a.log").write_bytes(b"one\ntwo\nthree\n")
    monkeypatch.chdir(tmp_path)
    (local,) = plan_partitions(["a.log"], 100)
    assert local.location == str(tmp_path / "a.log")
    remote = plan_partitions([f"file://{tmp_path}/a.log"], 5)
    assert [p.location for p in remote] == [f"file://{tmp_path}/a.log"] * 3
    assert b"".join(content(p, 2, b"one\ntwo\nthree\n") for p in remote) == b"one\ntwo\nthree\n"
    assert [p.path for p in remote] == [f"file://{tmp_path}/a.log"] * 3 and local.path == "a.log"


def test_unreadable_inputs_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"missing\.log"):
        plan_partitions([str(tmp_path / "missing.log")], 100)
    with pytest.raises(ConfigError, match="standard input"):
        plan_partitions(["-"], 100)
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(gzip.compress(b"a line\n" * 1000)[:-20])
    (partition,) = plan_partitions([str(broken)], 100)
    with pytest.raises(InputFileError, match=r"broken\.log\.gz"):
        list(read_partition(partition, 100))
    with pytest.raises(InputFileError, match="nothing-here"):
        plan_partitions(["file:///nothing-here/a.log"], 100)
