"""The static checks as tests: ruff's lint and format, and mypy, all clean.

Each runs as a subprocess from the repository root, so it reads its configuration
from pyproject.toml exactly as a developer's run would. ruff and mypy are in the
`test` extra (scripts/setup installs it): a missing one fails, it never skips.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

#: The directories that hold Python (scripts/ holds only shell scripts).
PYTHON_PATHS = ("pentools", "tests", "benchmarks")


def run_checker(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m ARGS` in the repository root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        command = " ".join(str(arg) for arg in result.args[2:])
        pytest.fail(
            f"{command} exited with {result.returncode}:\n{result.stdout}{result.stderr}",
            pytrace=False,
        )


def test_ruff_check_is_clean() -> None:
    assert_clean(run_checker("ruff", "check", *PYTHON_PATHS))


def test_ruff_format_is_clean() -> None:
    assert_clean(run_checker("ruff", "format", "--check", *PYTHON_PATHS))


def test_mypy_is_clean() -> None:
    assert_clean(run_checker("mypy"))  # packages and options from [tool.mypy]
