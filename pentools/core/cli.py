"""What every command line shares: one-line errors, ``--version``, the ``--log-format`` option."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pentools.core.accesslog import NAMED_FORMATS
from pentools.core.errors import PentoolsError

F = TypeVar("F", bound=Callable[..., Any])

#: A command group run without a subcommand (click 8.2 and later): its help is the message.
_HELP_INSTEAD = getattr(click.exceptions, "NoArgsIsHelpError", ())


def run_command(command: click.Command, name: str, args: list[str] | None = None) -> None:
    """Run a click command; a usage error becomes ``NAME: message`` and exit status 2,
    a pentools error or a system error ``NAME: message`` and exit status 1.

    Daemons and piped loggers report to logs that keep one line per event, so
    a bad argument gets one line there too (``--help`` explains the rest).
    """
    try:
        status = command.main(args=args, prog_name=name, standalone_mode=False)
    except _HELP_INSTEAD as exc:
        exc.show()
        raise SystemExit(2) from None
    except click.UsageError as exc:
        hint = "" if exc.ctx is None else f" (try {name} --help)"
        print(f"{name}: {exc.format_message()}{hint}", file=sys.stderr)
        raise SystemExit(2) from None
    except click.ClickException as exc:
        print(f"{name}: {exc.format_message()}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        raise SystemExit(130) from None
    except PentoolsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:
        print(f"{name}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(status if isinstance(status, int) else 0)


def version_option() -> Callable[[F], F]:
    """The ``--version`` option of every command: its name and pentools' installed version."""
    return click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_show_version,
        help="Show the version and exit.",
    )


def package_version() -> str:
    """pentools' version from the package metadata (one place: pyproject.toml)."""
    import importlib.metadata  # only for --version: it costs every command 2 MB at start

    try:
        return importlib.metadata.version("pentools")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown (not installed)"


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"{ctx.find_root().info_name} (pentools) {package_version()}")
    ctx.exit()


def log_format_option(*short_names: str, join: bool = False) -> Callable[[F], F]:
    """The ``--log-format`` option, the same in every tool that reads access logs.

    `join` adds what the format means to mergelogs and penlogd.
    """
    help_text = (
        f"Apache LogFormat string of the access logs, or one of {', '.join(NAMED_FORMATS)} "
        "(default: recognise common and combined line by line)."
    )
    if join:
        help_text += "  With %{remote}p and pen's extended records the join is exact."
    return click.option(
        *short_names, "--log-format", "log_format", metavar="FORMAT", help=help_text
    )


def tool_logger(tool: str, *, level: int = logging.INFO, syslog: bool = False) -> logging.Logger:
    """The logger ``pentools.TOOL``, writing ``TOOL: message`` lines to stderr.

    With `syslog` (a daemon whose stderr is gone) it writes to the local
    syslog instead, facility user, as the C tools do; calling it again
    replaces the handler, so a daemon switches when it detaches.
    """
    handler: logging.Handler
    if syslog and os.path.exists("/dev/log"):
        from logging.handlers import SysLogHandler  # only daemons that detach need it

        handler = SysLogHandler(address="/dev/log")
        handler.setFormatter(logging.Formatter(f"{tool}[%(process)d]: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{tool}: %(message)s"))
    log = logging.getLogger(f"pentools.{tool}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(level)
    return log
