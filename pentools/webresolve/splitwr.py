"""splitwr ACCESS_LOG: the classic name for resolving a log file (same engine, same output)."""

from __future__ import annotations

from typing import Any

import click

from pentools.core.cli import run_command, version_option
from pentools.webresolve.cli import EPILOG, resolver_options, run


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@version_option()
@click.argument("access_log", metavar="ACCESS_LOG")
@resolver_options
def command(access_log: str, **options: Any) -> None:
    """Resolve the client addresses of ACCESS_LOG to host names, in parallel.

    Writes the resolved log to stdout in the original order; '-' reads stdin.
    """
    run(access_log, **options)


def main() -> None:
    """Entry point: usage errors are one line, like every pentools command."""
    run_command(command, "splitwr")


if __name__ == "__main__":
    main()
