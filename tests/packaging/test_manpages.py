"""The man pages: one per command, in sync with the click definitions, rendered by man."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import click
import pytest

from pentools.core.manpage import Manual, render
from pentools.manpages import MAN_DIRECTORY, commands, stale_pages, write_pages
from tests.conftest import require_program
from tests.packaging.conftest import Installed, console_scripts

SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "FILES", "EXAMPLES")


def man_text(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`man ARGS` as plain text, 80 columns, warnings from groff on stderr."""
    man = require_program("man")
    environment = {**(env or os.environ), "MANWIDTH": "80", "MANPAGER": "cat", "LC_ALL": "C"}
    environment["MAN_KEEP_FORMATTING"] = ""
    return subprocess.run(
        [man, "--warnings", *args], capture_output=True, text=True, env=environment, timeout=60
    )


def test_every_console_script_has_a_page() -> None:
    assert set(commands()) == set(console_scripts())
    assert {path.stem for path in MAN_DIRECTORY.glob("*.1")} == set(console_scripts())


def test_the_committed_pages_match_the_commands() -> None:
    """Change an option or a manual.py and this fails until `python -m pentools.manpages`."""
    stale = stale_pages(MAN_DIRECTORY)
    assert stale == [], f"regenerate {stale} with: python -m pentools.manpages"


def test_the_check_sees_a_changed_a_missing_and_an_extra_page(tmp_path: Path) -> None:
    write_pages(tmp_path)
    assert stale_pages(tmp_path) == []
    page = tmp_path / "pen.1"
    page.write_text(page.read_text().replace("Balance UDP instead of TCP", "Balance UDP"))
    (tmp_path / "penctl.1").unlink()
    (tmp_path / "gone.1").write_text(".TH GONE 1\n")
    assert stale_pages(tmp_path) == ["gone.1", "pen.1", "penctl.1"]
    write_pages(tmp_path)
    assert stale_pages(tmp_path) == []


@pytest.mark.realpart
@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_each_page_renders_every_section_and_option(name: str) -> None:
    result = man_text("-l", str(MAN_DIRECTORY / f"{name}.1"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no groff warning: the roff is well formed
    text = result.stdout
    headings = [line for line in text.splitlines() if re.fullmatch(r"[A-Z][A-Z ]+", line)]
    assert [h for h in headings if h in SECTIONS] == list(SECTIONS)
    assert "SEE ALSO" in headings
    command, manual = commands()[name]
    ctx = click.Context(command, info_name=name)
    params = list(command.get_params(ctx))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            params += sub.get_params(click.Context(sub, parent=ctx))
    for param in params:
        if isinstance(param, click.Option) and not param.hidden:
            for option in param.opts:
                assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", text), option
    # the manual's prose is there, hyphens as typed (a reader copies options from it)
    assert " ".join(manual.summary.split()) in " ".join(text.split())


@pytest.mark.parametrize("name", sorted(console_scripts()))
def test_each_manual_says_more_than_click(name: str) -> None:
    """Every page has its own description, signals, files, examples and related pages."""
    _, manual = commands()[name]
    assert manual.description and manual.signals and manual.files and manual.examples
    for page in manual.see_also:
        assert re.fullmatch(r"[a-z0-9]+\([18]\)", page), page
        title = page.split("(")[0]
        assert title != name
        if page.endswith("(1)") and title.startswith(("pen", "merge", "web", "split")):
            assert title in console_scripts(), page


@pytest.mark.realpart
def test_prose_cannot_inject_roff(tmp_path: Path) -> None:
    """A leading dot or quote, a backslash, and quoted words stay text."""

    @click.command()
    @click.option("--level", type=int, default=3, show_default=True, help=".SH FAKE\\fB")
    def probe(level: int) -> None:
        """First paragraph.

        'quoted start and a back\\slash."""

    manual = Manual(
        summary="a probe",
        description=(".TH OTHER 8", "literal:\n    .B not bold\n    x\\y"),
        signals=(("HUP", "`reopen` it"),),
        files=(("/tmp/x", "a file"),),
        examples=(("run it", "probe --level 4"),),
        see_also=("pen(1)",),
    )
    page = tmp_path / "probe.1"
    page.write_text(render("probe", probe, manual, "9.9"))
    result = man_text("-l", str(page))
    assert result.stderr == ""
    text = result.stdout
    for shown in (".SH FAKE\\fB", ".TH OTHER 8", ".B not bold", "x\\y", "back\\slash"):
        assert shown in text
    assert "'quoted start" in text
    assert "--level N" in text and "(default: 3)" in text
    assert "pentools 9.9" in text


@pytest.mark.realpart
def test_man_finds_the_installed_pages(installed: Installed) -> None:
    """Through MANPATH, and (venv or /usr/local) through bin/ on PATH without it."""
    man1 = installed.share / "man" / "man1"
    for name in console_scripts():
        assert (man1 / f"{name}.1").read_bytes() == (MAN_DIRECTORY / f"{name}.1").read_bytes()
    plain = {key: value for key, value in os.environ.items() if key != "MANPATH"}
    found = man_text("-w", "pen", env={**plain, "MANPATH": str(installed.share / "man")})
    assert found.stdout.strip() == str(man1 / "pen.1"), found.stderr
    found = man_text("-w", "penlogd", env={**plain, "PATH": f"{installed.bin}:{plain['PATH']}"})
    assert found.stdout.strip() == str(man1 / "penlogd.1"), found.stderr
    shown = man_text("pen", env={**plain, "MANPATH": str(installed.share / "man")})
    assert "load balancer for TCP and UDP services" in shown.stdout, shown.stderr
