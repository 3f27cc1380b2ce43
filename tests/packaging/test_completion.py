"""Shell completion, click's: each command prints its bash script, and bash completes with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from pentools.manpages import commands
from tests.conftest import REPO_ROOT, require_program, tool_env
from tests.packaging.conftest import console_scripts


def longest_option(command: click.Command) -> str:
    """The command's own longest long option: a prefix of it has one completion."""
    ctx = click.Context(command)
    names = [
        name
        for param in command.get_params(ctx)
        if isinstance(param, click.Option) and not param.hidden
        for name in param.opts
        if name.startswith("--")
    ]
    return max(names, key=len)


def complete(tmp_path: Path, name: str, words: list[str]) -> list[str]:
    """What bash offers for the last of `words`, with the script `NAME` prints sourced.

    The command on PATH is this checkout's, as the console script would run it.
    """
    bash = require_program("bash")
    module, function = console_scripts()[name].split(":")
    (tmp_path / name).write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'from {module} import {function}; {function}()' "
        '"$@"\n'
    )
    (tmp_path / name).chmod(0o755)
    variable = f"_{name.upper()}_COMPLETE"
    script = (
        f'eval "$({variable}=bash_source {name})" || exit 3\n'
        f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}\n"
        f"_{name}_completion {name}\n"  # complete -F passes the command as $1
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = tool_env(PATH=f"{tmp_path}:/usr/bin:/bin")
    result = subprocess.run(
        [bash, "--norc", "-c", script], capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.realpart
@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_bash_completes_an_option_of_every_command(tmp_path: Path, name: str) -> None:
    command, _ = commands()[name]
    option = longest_option(command)
    assert complete(tmp_path, name, [name, option[:-2]]) == [option]


@pytest.mark.realpart
def test_bash_completes_a_subcommand_and_a_choice(tmp_path: Path) -> None:
    assert complete(tmp_path, "webstats", ["webstats", "rep"]) == ["report"]
    assert complete(tmp_path, "pen", ["pen", "--proxy-protocol", ""]) == ["1", "2"]
