"""The man pages of every pentools command, written to ``man/`` in the checkout.

    python -m pentools.manpages            # regenerate man/*.1 after changing a command
    python -m pentools.manpages --check    # exit 1 if a page differs from its command

Each page is drawn from the command's click definitions and the prose in the
``manual.py`` next to it.  The pages are committed (a source checkout and a
wheel need no build step) and installed under ``share/man/man1`` of the
install prefix (pyproject.toml, data-files); tests/packaging checks both.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import click

from pentools.core.cli import run_command
from pentools.core.manpage import Manual, render
from pentools.mergelogs import cli as mergelogs_cli
from pentools.mergelogs import manual as mergelogs_manual
from pentools.pen import cli as pen_cli
from pentools.pen import manual as pen_manual
from pentools.penctl import cli as penctl_cli
from pentools.penctl import manual as penctl_manual
from pentools.penlog import cli as penlog_cli
from pentools.penlog import manual as penlog_manual
from pentools.penlogd import cli as penlogd_cli
from pentools.penlogd import manual as penlogd_manual
from pentools.webresolve import cli as webresolve_cli
from pentools.webresolve import manual as webresolve_manual
from pentools.webresolve import splitwr
from pentools.webstats import cli as webstats_cli
from pentools.webstats import manual as webstats_manual

CHECKOUT = Path(__file__).resolve().parent.parent
#: Where the committed pages live.
MAN_DIRECTORY = CHECKOUT / "man"


def checkout_version() -> str:
    """The version in pyproject.toml: the pages are built from the checkout, whatever
    version an older install left in the package metadata."""
    with open(CHECKOUT / "pyproject.toml", "rb") as stream:
        return str(tomllib.load(stream)["project"]["version"])


def commands() -> dict[str, tuple[click.Command, Manual]]:
    """Every console script: its click command and its manual."""
    return {
        "pen": (pen_cli.command, pen_manual.MANUAL),
        "penctl": (penctl_cli.command, penctl_manual.MANUAL),
        "penlog": (penlog_cli.command, penlog_manual.MANUAL),
        "penlogd": (penlogd_cli.command, penlogd_manual.MANUAL),
        "mergelogs": (mergelogs_cli.command, mergelogs_manual.MANUAL),
        "webresolve": (webresolve_cli.command, webresolve_manual.WEBRESOLVE),
        "splitwr": (splitwr.command, webresolve_manual.SPLITWR),
        "webstats": (webstats_cli.command, webstats_manual.MANUAL),
    }


def pages() -> dict[str, str]:
    """File name (``pen.1``) to roff source, for every command."""
    version = checkout_version()
    return {
        f"{name}.1": render(name, command, manual, version)
        for name, (command, manual) in commands().items()
    }


def stale_pages(directory: Path) -> list[str]:
    """The pages in `directory` that are missing, differ from their command, or are extra."""
    wanted = pages()
    present = {path.name for path in directory.glob("*.1")}
    stale = [name for name, text in wanted.items() if _read(directory / name) != text]
    return sorted(stale + sorted(present - set(wanted)))


def write_pages(directory: Path) -> None:
    """Write every page into `directory`, removing pages of commands that are gone."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = pages()
    for path in directory.glob("*.1"):
        if path.name not in wanted:
            path.unlink()
    for name, text in wanted.items():
        (directory / name).write_text(text, encoding="utf-8")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--check", is_flag=True, help="Only compare; exit 1 if a page is out of date.")
@click.argument(
    "directory", type=click.Path(file_okay=False, path_type=Path), default=MAN_DIRECTORY
)
def command(check: bool, directory: Path) -> None:
    """Write the man pages of every command into DIRECTORY (default: man/ of the checkout)."""
    if not check:
        write_pages(directory)
        return
    stale = stale_pages(directory)
    if stale:
        raise click.ClickException(
            f"out of date in {directory}: {', '.join(stale)} "
            "(regenerate them with: python -m pentools.manpages)"
        )


if __name__ == "__main__":
    run_command(command, "manpages")
