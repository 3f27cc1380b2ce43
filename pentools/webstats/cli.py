"""Command line of webstats: ``report`` (access-log statistics) and ``pen`` (pen's status page)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from pentools.core.cli import log_format_option, run_command, version_option
from pentools.core.errors import PentoolsError, UnparsedInputError

if TYPE_CHECKING:
    from pentools.webstats.cluster import ClusterConfig
    from pentools.webstats.state import State

log = logging.getLogger("pentools.webstats")

#: Exit status of a report written from input that mostly did not parse.
EXIT_UNPARSED = 3


@dataclass(frozen=True)
class ReportConfig:
    """What ``webstats report`` was asked to do."""

    logs: tuple[str, ...]
    html_path: str | None
    json_path: str | None
    log_format: str | None
    since: float | None
    until: float | None
    static_extensions: tuple[str, ...]
    top: int
    title: str
    state_path: str | None = None
    min_parsed: float = 0.9
    cluster: ClusterConfig | None = None


def run_report(config: ReportConfig) -> list[str]:
    """Count the logs (all, or what `config.state_path` has not counted), write the
    pages; return a warning for each file of which too few new lines parsed."""
    import pyarrow

    from pentools.webstats.aggregate import Report
    from pentools.webstats.output import write_atomically
    from pentools.webstats.render import render_html, render_json
    from pentools.webstats.sources import count_files
    from pentools.webstats.state import State, merge

    # pyarrow's default pool (mimalloc) keeps the buffers of parsed chunks: the
    # system allocator gives them back, about 40 MB less peak for the same speed.
    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    reading = (config.log_format, config.since, config.until)
    fresh = State.empty(*reading)
    if config.cluster is not None:
        from pentools.webstats.cluster import count_on_cluster

        state = fresh = count_on_cluster(config.logs, fresh, config.cluster)
    elif config.state_path is None:
        state = count_files(list(config.logs), fresh)
    else:
        try:
            saved = State.load(config.state_path, *reading)
        except FileNotFoundError:
            saved = State.empty(*reading)
        # The new lines are counted apart, then merged: the cursors move to them.
        fresh.cursors, saved.cursors = saved.cursors, []
        count_files(list(config.logs), fresh, resume=True)
        state = merge(saved, fresh)
        state.save(config.state_path)
    report = Report.build(state, config.top, config.static_extensions)
    if config.json_path:
        write_atomically(config.json_path, render_json(report))
    if config.html_path:
        write_atomically(config.html_path, render_html(report, config.title))
    return unparsed_warnings(fresh, config.min_parsed)


def unparsed_warnings(state: State, min_parsed: float) -> list[str]:
    """One line per file of which nothing, or less than `min_parsed` of the lines, parsed."""
    from pentools.webstats.state import format_name

    warnings = []
    for path, counts in state.files.items():
        sample = "" if counts.bad is None else counts.bad[1]
        error = UnparsedInputError.if_too_few(
            path,
            format_name(state.log_format),
            counts.lines,
            counts.lines - counts.failed,
            sample,
            min_parsed,
        )
        if error is not None:
            warnings.append(f"{error} (wrong -f?)")
    return warnings


def _moment(value: str | None, option: str, end: bool) -> float | None:
    """Seconds of a wall-clock time as logged; a bare date in --to means the whole day."""
    if value is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        message = f"{value!r} is not YYYY-MM-DD[THH:MM[:SS]]"
        raise click.BadParameter(message, param_hint=option) from None
    if end and len(value) <= 10:
        moment += datetime.timedelta(days=1)
    return (moment.replace(tzinfo=None) - datetime.datetime(1970, 1, 1)).total_seconds()


def _guarded(action: Callable[[], Any]) -> Any:
    """Run `action`; a pentools error becomes one line on stderr and exit status 1."""
    try:
        return action()
    except PentoolsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_option()
def command() -> None:
    """Statistics pages: access-log reports and pen's live status, as static HTML."""


def main() -> None:
    """Entry point: usage errors are one line, like every pentools command."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("webstats: %(levelname)s: %(message)s"))
    log.addHandler(handler)
    run_command(command, "webstats")


@command.command()
@click.argument("logs", nargs=-1, required=True, metavar="ACCESS_LOG...")
@click.option(
    "-o", "--output", "html_path", metavar="FILE", help="Write the HTML page here (- for stdout)."
)
@click.option("--json", "json_path", metavar="FILE", help="Write the statistics as JSON here.")
@log_format_option("-f", "--format")
@click.option("--from", "since", metavar="DATE", help="Only lines logged at or after DATE[THH:MM].")
@click.option(
    "--to",
    "until",
    metavar="DATE",
    help="Only lines before DATE[THH:MM] (a date: through its end).",
)
@click.option(
    "--static-ext",
    "static_ext",
    multiple=True,
    metavar=".EXT",
    help="Extension of static files (repeatable; replaces the default list, GoAccess's).",
)
@click.option("--top", default=50, show_default=True, help="Rows in each top-N table.")
@click.option("--title", default="Access log statistics", show_default=True, help="Page title.")
@click.option(
    "--state",
    "state_path",
    metavar="FILE",
    help="Incremental run: count only what FILE has not counted yet, and save it there.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Count on a Dask cluster: its scheduler (tcp://HOST:8786), or local[:N] for "
    "N worker processes here.  Needs pip install 'pentools[dask]'.",
)
@click.option(
    "--partition-size",
    default=64 * 1024 * 1024,
    show_default=True,
    metavar="BYTES",
    help="With --scheduler: bytes of plain log per task (a .gz file is one task).",
)
@click.option(
    "--scheduler-timeout",
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="With --scheduler: how long to wait for the scheduler and a first worker.",
)
@click.option(
    "--min-parsed",
    default=0.9,
    show_default=True,
    metavar="FRACTION",
    help="Warn and exit 3 when less than this fraction of a file's lines parses.",
)
def report(
    logs: tuple[str, ...],
    html_path: str | None,
    json_path: str | None,
    log_format: str | None,
    since: str | None,
    until: str | None,
    static_ext: tuple[str, ...],
    top: int,
    title: str,
    state_path: str | None,
    scheduler: str | None,
    partition_size: int,
    scheduler_timeout: float,
    min_parsed: float,
) -> int:
    """Statistics of access logs as one self-contained HTML page (and JSON).

    Reads every ACCESS_LOG in turn (plain, .gz, or - for stdin) in bulk, with
    bounded memory: requests, valid and failed lines, unique visitors and
    bandwidth as GoAccess counts them; requests per day and hour as logged
    (time zones are kept); status codes; top URLs, 404s, hosts, referrers,
    browsers and systems.  Every log value is escaped; the page loads nothing.
    Files are replaced atomically, so cron can write into a web root.

    With --state, a cron job counts only new lines: files are known again by
    inode and first bytes after rotation (renamed, .gz, copytruncate).  A file
    of which too few lines parse (see --min-parsed) is named on stderr, with
    the format tried and a bad line; the report is written and the exit
    status is 3.

    With --scheduler, the logs are cut into partitions that the workers of a
    Dask cluster parse and count; the report is the same as without.  The
    workers read the files at the same paths (or fsspec URLs).
    """
    if not html_path and not json_path:
        html_path = "-"
    from pentools.webstats.aggregate import STATIC_EXTENSIONS

    extensions = tuple(e if e.startswith(".") else "." + e for e in static_ext) or tuple(
        STATIC_EXTENSIONS
    )
    if top < 1:
        raise click.BadParameter("must be at least 1", param_hint="--top")
    if not 0 <= min_parsed <= 1:
        raise click.BadParameter("must be from 0 to 1", param_hint="--min-parsed")
    cluster = None
    if scheduler is not None:
        if state_path is not None:
            raise click.UsageError("--state and --scheduler cannot be combined")
        from pentools.webstats.cluster import ClusterConfig

        try:
            cluster = ClusterConfig(
                scheduler, partition_size, scheduler_timeout, progress=sys.stderr.isatty()
            )
        except PentoolsError as exc:
            raise click.UsageError(str(exc)) from None
    config = ReportConfig(
        logs=logs,
        html_path=html_path,
        json_path=json_path,
        log_format=log_format,
        since=_moment(since, "--from", end=False),
        until=_moment(until, "--to", end=True),
        static_extensions=tuple(e.lower() for e in extensions),
        top=top,
        title=title,
        state_path=state_path,
        min_parsed=min_parsed,
        cluster=cluster,
    )
    warnings = _guarded(lambda: run_report(config))
    for warning in warnings:
        log.warning(warning)
    return EXIT_UNPARSED if warnings else 0


@dataclass(frozen=True)
class PenConfig:
    """What ``webstats pen`` was asked to do."""

    control: tuple[str, int] | None
    pidfile: str | None
    webfile: str | None
    output: str
    cgi: bool
    timeout: float
    title: str


def run_pen(config: PenConfig) -> None:
    from pentools.core.addresses import format_host_port
    from pentools.webstats.output import write_atomically
    from pentools.webstats.penstatus import (
        fetch_from_control,
        fetch_from_webfile,
        parse_status,
        render_status,
    )

    if config.control is not None:
        host, port = config.control
        page = fetch_from_control(host, port, config.timeout)
        source = f"control port {format_host_port(host, port)}"
    else:
        assert config.pidfile is not None and config.webfile is not None
        page = fetch_from_webfile(config.pidfile, config.webfile, config.timeout)
        source = f"{config.webfile} (pid file {config.pidfile})"
    html_page = render_status(parse_status(page), source, config.title)
    if config.cgi:
        sys.stdout.write(
            "Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n"
        )
        sys.stdout.write(html_page)
        sys.stdout.flush()
    else:
        write_atomically(config.output, html_page)


@command.command()
@click.option(
    "-C",
    "--control",
    metavar="[HOST:]PORT",
    help="pen's control port (pen -C); a bare port means 127.0.0.1.",
)
@click.option("--pidfile", metavar="FILE", help="pen's PID file (pen -p): signal it with USR1...")
@click.option(
    "-w", "--webfile", metavar="FILE", help="...and read the status page it writes (pen -w)."
)
@click.option("-o", "--output", default="-", show_default=True, help="Page to write (atomically).")
@click.option("--cgi", is_flag=True, help="Act as a CGI: Content-Type header, then the page.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for pen.")
@click.option("--title", default="pen status", show_default=True, help="Page title.")
def pen(
    control: str | None,
    pidfile: str | None,
    webfile: str | None,
    output: str,
    cgi: bool,
    timeout: float,
    title: str,
) -> None:
    """pen's live status page: servers, active clients and connections.

    Asks pen's control port for `status` (--control), or, as the original
    cron/CGI script did, sends SIGUSR1 to the PID in --pidfile and reads the
    page pen writes to its -w file (--webfile).  Works with the C pen and
    with pentools' pen.  The page is rebuilt from the tables, every cell
    escaped, and written atomically (for cron) or with a CGI header.
    """
    if (control is None) == (pidfile is None and webfile is None):
        raise click.UsageError("give either --control, or --pidfile with --webfile")
    if control is None and (pidfile is None or webfile is None):
        raise click.UsageError("--pidfile and --webfile go together")
    if timeout <= 0:
        raise click.BadParameter("must be positive", param_hint="--timeout")
    address = None
    if control is not None:
        from pentools.core.addresses import parse_host_port

        try:
            where = parse_host_port(control, default_host="127.0.0.1")
        except PentoolsError as exc:
            raise click.BadParameter(str(exc), param_hint="--control") from None
        address = (where.host, where.port)
    config = PenConfig(address, pidfile, webfile, output, cgi, timeout, title)
    _guarded(lambda: run_pen(config))


def _address(value: str, option: str) -> tuple[str, int]:
    """(host, port) of a [HOST:]PORT option; a bare port means 127.0.0.1."""
    from pentools.core.addresses import parse_host_port

    try:
        where = parse_host_port(value, default_host="127.0.0.1")
    except PentoolsError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    return where.host, where.port


@command.command()
@click.argument("logs", nargs=-1, required=True, metavar="ACCESS_LOG...")
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="[HOST:]PORT",
    help="Where to serve the page ([::1]:PORT for IPv6; a bare port means 127.0.0.1).",
)
@log_format_option("-f", "--format")
@click.option("--top", default=50, show_default=True, help="Rows in each top-N table.")
@click.option("--title", default="Live access log statistics", show_default=True)
@click.option(
    "--pen-control",
    metavar="[HOST:]PORT",
    help="pen's control port: add pen's servers (connections, blacklist, traffic).",
)
@click.option(
    "--interval", default=0.2, show_default=True, help="Seconds between looks at the files."
)
def live(
    logs: tuple[str, ...],
    listen: str,
    log_format: str | None,
    top: int,
    title: str,
    pen_control: str | None,
    interval: float,
) -> None:
    """Follow access logs like tail -F and serve their report, live.

    Counts what is appended to each ACCESS_LOG (and survives rename rotation
    and truncation), and serves the report at /, updated in open pages every
    second through Server-Sent Events (/events), and the JSON of report --json
    at /stats.json.  Loopback by default; the page loads nothing from outside.
    """
    from pentools.webstats.aggregate import STATIC_EXTENSIONS
    from pentools.webstats.live import LiveConfig, serve

    if top < 1:
        raise click.BadParameter("must be at least 1", param_hint="--top")
    if not 0 < interval <= 10:
        raise click.BadParameter("must be more than 0 and at most 10", param_hint="--interval")
    host, port = _address(listen, "--listen")
    config = LiveConfig(
        logs=logs,
        host=host,
        port=port,
        log_format=log_format,
        static_extensions=tuple(STATIC_EXTENSIONS),
        top=top,
        title=title,
        pen_control=_address(pen_control, "--pen-control") if pen_control else None,
        interval=interval,
    )
    _guarded(lambda: asyncio.run(serve(config)))
