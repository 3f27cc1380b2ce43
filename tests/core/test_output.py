import os
from pathlib import Path

import pytest

from pentools.core.errors import OutputFileError
from pentools.core.output import atomic_output


def test_replaces_whole_and_keeps_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "page.html"
    target.write_text("old")
    os.chmod(target, 0o640)
    with atomic_output(str(target)) as stream:
        stream.write(b"new")
        assert target.read_text() == "old"  # readers see the old file meanwhile
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "access_log"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(str(target)) as stream:
        stream.write(b"half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["access_log"]


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    with (
        pytest.raises(OutputFileError, match="cannot write"),
        atomic_output(str(tmp_path / "missing-dir" / "file")),
    ):
        pass
