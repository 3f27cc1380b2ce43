"""Command line of mergelogs (compatible with the original's options)."""

from __future__ import annotations

import sys
from typing import IO

import click

from pentools.core.accesslog import text_writer
from pentools.core.addresses import split_host_prefix
from pentools.core.cli import log_format_option, run_command, version_option
from pentools.core.output import atomic_output
from pentools.mergelogs.merge import LogSource, MergeConfig, MergeStats, merge_logs

EPILOG = """\b
Example:
  mergelogs -p pen.log 10.0.0.1:access_log.1 10.0.0.2:access_log.2 > access_log
  mergelogs --stats -p pen.log.gz '[2001:db8::1]:access_log.gz' -o access_log

Every input line is written exactly once: lines with no matching record keep
their own first field (or get the server's address with --unmatched=server),
lines that do not parse are passed through unchanged; --stats counts them.
If nothing, or less than --min-parsed, of a backend log parses, mergelogs says which file,
the format tried and a line that does not parse, and exits with status 1.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["--help"]})
@version_option()
@click.option(
    "-p",
    "pen_log",
    required=True,
    metavar="PENLOG",
    help="pen's log file (pen -l FILE); .gz is read too.",
)
@click.option(
    "-c", "no_cache", is_flag=True, help="Accepted for compatibility; records are always indexed."
)
@click.option("-d", "debug", count=True, help="Debugging: report the learned clock offsets.")
@click.option(
    "-j",
    "jitter",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="Largest difference between a record's and its line's time stamps.",
)
@click.option(
    "-t",
    "clock_offset",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="The balancer's clock minus UTC, in seconds.",
)
@click.option(
    "--reorder",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long after later-stamped lines of its own log a line may come and still "
    "be put in time order (a request that ran longer is written where it was logged, "
    "and counted).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write here (atomically) instead of to stdout.",
)
@log_format_option(join=True)
@click.option(
    "--unmatched",
    type=click.Choice(["keep", "server"]),
    default="keep",
    show_default=True,
    help="First field of a line without a record: its own, or the server's "
    "address (the original's behaviour).",
)
@click.option(
    "--tag-backend",
    is_flag=True,
    help="Append the backend's address to each line (webstats -f combined_backend).",
)
@click.option(
    "--stats",
    "show_stats",
    is_flag=True,
    help="Print a summary (read, matched, ambiguous, unmatched...) on stderr.",
)
@click.option(
    "--stats-json",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Write the same summary as JSON to FILE.",
)
@click.option(
    "--min-parsed",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    metavar="FRACTION",
    help="Exit non-zero, saying which file and with a sample line, if less than this "
    "share of a backend log's lines parse (they are passed through all the same).",
)
@click.argument("logs", nargs=-1, required=True, metavar="SERVER:LOGFILE...")
def command(
    pen_log: str,
    no_cache: bool,
    debug: int,
    jitter: float,
    clock_offset: float,
    reorder: float,
    output: str | None,
    log_format: str | None,
    unmatched: str,
    tag_backend: bool,
    show_stats: bool,
    stats_json: str | None,
    min_parsed: float,
    logs: tuple[str, ...],
) -> None:
    """Merge pen's log and the backends' access logs into one access log.

    Each line's first field (the balancer's address, as the backend saw it)
    is replaced by the real client's address; the output is in time order
    and keeps every line's own time stamp.  SERVER is the backend's address
    or name as pen knows it ([IPv6]:LOGFILE for IPv6).
    """
    try:
        sources = tuple(LogSource.from_spec(*split_host_prefix(spec)) for spec in logs)
        config = MergeConfig(
            pen_log,
            sources,
            jitter,
            clock_offset,
            reorder,
            log_format,
            unmatched,
            min_parsed,
            tag_backend,
        )
        stats = _run(config, output)
    except BrokenPipeError:
        sys.stderr.close()  # a closed pipe (| head) is not an error worth a traceback
        raise SystemExit(1) from None
    if show_stats or debug:
        click.echo(f"mergelogs: {stats.summary()}", err=True)
    if stats_json is not None:
        with atomic_output(stats_json) as binary:
            binary.write(stats.to_json().encode() + b"\n")
    # Every line is written by now: too little that parses is reported, not lost.
    stats.check_parsed(config.min_parsed, config.log_format)


def _run(config: MergeConfig, output: str | None) -> MergeStats:
    if output is None:
        return _merge_into(config, sys.stdout.buffer)
    with atomic_output(output) as binary:
        return _merge_into(config, binary)


def _merge_into(config: MergeConfig, binary: IO[bytes]) -> MergeStats:
    writer = text_writer(binary)
    stats = merge_logs(config, writer)
    writer.flush()
    writer.detach()  # its owner closes it: click (stdout), or atomic_output after syncing
    return stats


def main() -> None:
    """Entry point: usage errors are one line, like every pentools command."""
    run_command(command, "mergelogs")
