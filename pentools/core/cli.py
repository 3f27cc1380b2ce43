"""What every command line shares: one-line errors instead of click's usage blocks."""

from __future__ import annotations

import sys

import click


def run_command(command: click.Command, name: str, args: list[str] | None = None) -> None:
    """Run a click command; a usage error becomes ``NAME: message`` and exit status 2.

    Daemons and piped loggers report to logs that keep one line per event, so
    a bad argument gets one line there too (``--help`` explains the rest).
    """
    try:
        status = command.main(args=args, prog_name=name, standalone_mode=False)
    except click.UsageError as exc:
        hint = "" if exc.ctx is None else f" (try {name} --help)"
        print(f"{name}: {exc.format_message()}{hint}", file=sys.stderr)
        raise SystemExit(2) from None
    except click.ClickException as exc:
        print(f"{name}: {exc.format_message()}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        raise SystemExit(130) from None
    raise SystemExit(status if isinstance(status, int) else 0)
