"""Command line of webstats: ``report`` (access-log statistics) and ``pen`` (pen's status page)."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from pentools.core.errors import PentoolsError


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


def run_report(config: ReportConfig) -> None:
    from pentools.webstats.aggregate import Report, collect
    from pentools.webstats.output import write_atomically
    from pentools.webstats.render import render_html, render_json

    stats = collect(
        list(config.logs), config.log_format, config.since, config.until, config.static_extensions
    )
    report = Report.build(stats, limit=config.top)
    if config.json_path:
        write_atomically(config.json_path, render_json(report))
    if config.html_path:
        write_atomically(config.html_path, render_html(report, config.title))


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


def _guarded(action: Callable[[], Any]) -> None:
    """Run `action`; a pentools error becomes one line on stderr and exit status 1."""
    try:
        action()
    except PentoolsError as exc:
        click.echo(f"webstats: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Statistics pages: access-log reports and pen's live status, as static HTML."""


@main.command()
@click.argument("logs", nargs=-1, required=True, metavar="ACCESS_LOG...")
@click.option(
    "-o", "--output", "html_path", metavar="FILE", help="Write the HTML page here (- for stdout)."
)
@click.option("--json", "json_path", metavar="FILE", help="Write the statistics as JSON here.")
@click.option(
    "-f",
    "--format",
    "log_format",
    metavar="LOGFORMAT",
    help="Apache LogFormat string or name (common, combined, vhost_common...); "
    "default: common or combined, recognised line by line.",
)
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
) -> None:
    """Statistics of access logs as one self-contained HTML page (and JSON).

    Reads every ACCESS_LOG in turn (plain, .gz, or - for stdin) in bulk, with
    bounded memory: requests, valid and failed lines, unique visitors and
    bandwidth as GoAccess counts them; requests per day and hour as logged
    (time zones are kept); status codes; top URLs, 404s, hosts, referrers,
    browsers and systems.  Every log value is escaped; the page loads nothing.
    Files are replaced atomically, so cron can write into a web root.
    """
    if not html_path and not json_path:
        html_path = "-"
    from pentools.webstats.aggregate import STATIC_EXTENSIONS

    extensions = tuple(e if e.startswith(".") else "." + e for e in static_ext) or tuple(
        STATIC_EXTENSIONS
    )
    if top < 1:
        raise click.BadParameter("must be at least 1", param_hint="--top")
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
    )
    _guarded(lambda: run_report(config))
