"""``--version`` on every command: its name and the version pyproject.toml gives."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pentools.manpages import checkout_version
from tests.conftest import tool_env
from tests.packaging.conftest import Installed, console_scripts


@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_every_command_says_its_version(name: str) -> None:
    module, function = console_scripts()[name].split(":")
    result = subprocess.run(
        [sys.executable, "-c", f"from {module} import {function}; {function}()", "--version"],
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"{name} (pentools) {checkout_version()}\n"


def test_the_installed_scripts_say_it_too(installed: Installed) -> None:
    for name in console_scripts():
        result = subprocess.run(
            [str(installed.bin / name), "--version"],
            capture_output=True,
            text=True,
            env=installed.env(),
            timeout=60,
        )
        assert result.stdout == f"{name} (pentools) {checkout_version()}\n", result.stderr
