"""The guards of the test suite itself (tests/conftest.py): each is shown to work.

- `require_c_tool` gives the Debian package's C tool even when our console
  script of the same name comes first on PATH, and refuses ours.
- Under ``CI=true`` every kind of skip fails the run.
- A crashing C pen leaves no core file behind.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import (
    C_TOOLS,
    REPO_ROOT,
    Processes,
    free_port,
    not_a_reference_tool,
    require_c_tool,
    require_program,
)
from tests.pen.support import wait_bound

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("name", C_TOOLS)
def test_our_console_script_first_on_path_is_not_taken_for_the_c_tool(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scripts = Path(sysconfig.get_path("scripts"))
    ours = scripts / name
    assert ours.exists(), f"our console script {ours} (scripts/setup installs it)"
    # an activated virtual environment: our script is what PATH finds first
    monkeypatch.setenv("PATH", f"{scripts}:/usr/bin:/bin")
    monkeypatch.setenv("VIRTUAL_ENV", str(scripts.parent))
    assert shutil.which(name) == str(ours)
    reference = require_c_tool(name)
    assert reference in (f"/usr/bin/{name}", f"/usr/sbin/{name}")
    assert not_a_reference_tool(Path(reference)) is None
    # ours is refused wherever it is: where it lives, through a link, as a copy
    assert "where our own tools are" in (not_a_reference_tool(ours) or "")
    link = tmp_path / "link"
    link.symlink_to(ours)
    assert "where our own tools are" in (not_a_reference_tool(link) or "")
    copy = tmp_path / name
    shutil.copy(ours, copy)
    assert "not an ELF binary" in (not_a_reference_tool(copy) or "")
    checkout_copy = REPO_ROOT / "pentools" / "__init__.py"
    assert "where our own tools are" in (not_a_reference_tool(checkout_copy) or "")
    with pytest.raises(AssertionError, match="require_c_tool"):
        require_program(name)


SKIPPING_TESTS = """
import pytest

def test_skip():
    pytest.skip("skipped in the body")

@pytest.mark.skipif(True, reason="a condition")
def test_skipif():
    pass

@pytest.fixture
def part():
    pytest.skip("skipped by a fixture")

def test_fixture(part):
    pass

@pytest.mark.xfail(reason="a known bug")
def test_xfail():
    assert False

def test_passes():
    pass
"""

SKIPPED_MODULE = """
import pytest

pytest.importorskip("no_such_module_anywhere")

def test_never_collected():
    pass
"""


def test_under_ci_every_skip_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_skipping=SKIPPING_TESTS, test_skipped_module=SKIPPED_MODULE)
    monkeypatch.delenv("CI", raising=False)
    outside = pytester.runpytest("-p", "tests.conftest")
    outside.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert outside.ret == pytest.ExitCode.OK
    monkeypatch.setenv("CI", "true")
    in_ci = pytester.runpytest("-p", "tests.conftest", "test_skipping.py")
    in_ci.assert_outcomes(passed=1, failed=2, errors=2)  # skipif and the fixture: at setup
    assert in_ci.ret == pytest.ExitCode.TESTS_FAILED
    for reason in ("skipped in the body", "a condition", "skipped by a fixture", "a known bug"):
        in_ci.stdout.fnmatch_lines([f"*skipped under CI=true*{reason}*"])
    module = pytester.runpytest("-p", "tests.conftest", "test_skipped_module.py")
    module.assert_outcomes(errors=1)  # its collection fails
    assert module.ret == pytest.ExitCode.INTERRUPTED
    module.stdout.fnmatch_lines(["*skipped under CI=true*no_such_module_anywhere*"])


def test_a_crashing_c_pen_leaves_no_core_file(processes: Processes, tmp_path: Path) -> None:
    port = free_port()
    pen = processes.start(
        [require_c_tool("pen"), "-f", f"127.0.0.1:{port}", "127.0.0.1:1"],
        cwd=tmp_path,  # where core_pattern "core" would put it
        stderr=subprocess.DEVNULL,
    )
    wait_bound("127.0.0.1", port, pen)
    limits = Path(f"/proc/{pen.pid}/limits").read_text()
    (core_limit,) = [line for line in limits.splitlines() if line.startswith("Max core file size")]
    assert core_limit.split()[4] == "0", core_limit  # the soft limit
    pen.send_signal(signal.SIGSEGV)
    assert pen.wait(timeout=10) == -signal.SIGSEGV
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("core")]
