"""Command line of webresolve (stdin to stdout) and splitwr (a file to stdout)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from pentools.core.accesslog import text_writer
from pentools.core.cli import run_command, version_option
from pentools.core.errors import PentoolsError
from pentools.webresolve.pipeline import Stats, WebresolveConfig, resolve_log
from pentools.webresolve.resolver import ResolverConfig, parse_nameserver, system_nameservers

EPILOG = """\b
Examples:
  webresolve < access_log > access_log.resolved
  splitwr -c --cache /var/cache/webresolve.cache access_log > access_log.resolved
  webresolve --nameserver 127.0.0.53 --nameserver [::1]:5353 -s - < access_log

PTR answers are written only when they are plain host names (letters,
digits, hyphens, dots; not an IP address); anything else keeps the address
and is counted as refused."""


def resolver_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options webresolve and splitwr share."""
    options = [
        click.option(
            "-n",
            "--concurrency",
            type=click.IntRange(1, 20000),
            default=500,
            show_default=True,
            help="Look-ups in flight at most; below this the window adapts to what "
            "the server answers without dropping.",
        ),
        click.option(
            "--nameserver",
            "nameservers",
            multiple=True,
            metavar="HOST[:PORT]",
            help="Name server to ask (repeatable; IPv6 as [ADDR]:PORT). "
            "Default: those of /etc/resolv.conf.",
        ),
        click.option(
            "-t",
            "--timeout",
            type=click.FloatRange(0.01, 60),
            default=2.0,
            show_default=True,
            help="Seconds to wait for an answer at most; attempts before the last "
            "are retried sooner, after a few measured round trips.",
        ),
        click.option(
            "-r",
            "--retries",
            type=click.IntRange(0, 10),
            default=2,
            show_default=True,
            help="Attempts after the first, each on the next name server.",
        ),
        click.option(
            "-c",
            "--confirm",
            is_flag=True,
            help="Keep a name only if it resolves forward to the same address.",
        ),
        click.option(
            "--cache",
            "cache_path",
            metavar="FILE",
            help="Persistent cache: answers are reused until their TTL expires.",
        ),
        click.option(
            "-s",
            "--stats",
            "stats_path",
            metavar="FILE",
            help="Write statistics to FILE ('-' for stderr).",
        ),
        click.option(
            "-w",
            "--window",
            type=click.IntRange(1000, 100_000_000),
            default=100_000,
            show_default=True,
            help="Lines held back at most while their look-ups run.",
        ),
        click.option(
            "--read-ahead/--no-read-ahead",
            default=True,
            show_default=True,
            help="Scan a log file ahead (in a second process) so that look-ups, and "
            "their time-outs, start before the lines are due. Not for stdin.",
        ),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="Progress bar on stderr (default: when stderr is a terminal).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run(input_path: str, **options: Any) -> None:
    """Build the configuration, resolve the log to stdout, report; exit 1 on error."""
    try:
        nameservers = tuple(parse_nameserver(text) for text in options["nameservers"])
        config = WebresolveConfig(
            resolver=ResolverConfig(
                nameservers=nameservers or system_nameservers(),
                concurrency=options["concurrency"],
                timeout=options["timeout"],
                retries=options["retries"],
                confirm=options["confirm"],
            ),
            input_path=input_path,
            cache_path=options["cache_path"],
            window=options["window"],
            read_ahead=options["read_ahead"],
            progress=sys.stderr.isatty() if options["progress"] is None else options["progress"],
        )
        output = text_writer(sys.stdout.buffer)
        stats = resolve_log(config, output)
        output.flush()
        if options["stats_path"]:
            _write_stats(options["stats_path"], stats)
    except PentoolsError as exc:
        raise click.ClickException(str(exc)) from None
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): nothing more to say
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _write_stats(path: str, stats: Stats) -> None:
    if path == "-":
        sys.stderr.write(stats.report())
        return
    try:
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(stats.report())
    except OSError as exc:
        raise click.ClickException(f"cannot write statistics to {path}: {exc.strerror}") from None


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@version_option()
@click.argument("access_log", required=False, default="-", metavar="[ACCESS_LOG]")
@resolver_options
def command(access_log: str, **options: Any) -> None:
    """Replace the client address of each access-log line by its host name.

    Reads ACCESS_LOG (default stdin; .gz is read too), writes the log to stdout
    in the same order with the first field replaced by the PTR name of the
    address where one exists; every other byte is unchanged. Many look-ups run
    at once and each address is looked up once.
    """
    run(access_log, **options)


def main() -> None:
    """Entry point: usage errors are one line, like every pentools command."""
    run_command(command, "webresolve")
