"""Command line of penlogd: the original's options, plus the join's knobs."""

from __future__ import annotations

import click

from pentools.core.accesslog import LogFormat
from pentools.core.addresses import parse_port, resolve_host
from pentools.core.cli import log_format_option, run_command, version_option
from pentools.core.errors import ConfigError
from pentools.core.metrics import parse_metrics_address
from pentools.penlogd.config import DEFAULT_RCVBUF, PenlogdConfig
from pentools.penlogd.join import JoinConfig

EPILOG = """\b
Examples:
  penlogd -l /var/log/access_log -p /run/penlogd.pid 10000
  penlogd -l access_log --metrics 9110 --tag web1=10.0.0.1 10000
  penlogd -f --balancer 10.0.0.5 -l access_log 10000     (under systemd)
  pen -l loghost:10000 80 10.0.0.1 10.0.0.2               (the balancer)
  CustomLog "|penlog loghost 10000 10.0.0.1" common       (each Apache)
  access_log syslog:server=loghost:10000,tag=web1 combined; (each nginx)

\b
Signals: HUP closes and reopens the log (rotation: mv the log, then HUP);
TERM and INT write what was received, remove the PID file and exit 0;
USR1 writes the counters to stderr (syslog when detached) and, with
--stats-json, as JSON to that file.

A datagram that starts with "+" is a balancer record.  One that starts with
a whole syslog header (RFC 3164 as nginx sends it, or RFC 5424) is a web line
behind that header, never a record; its web server is the address --tag
gives its tag, else its source address.  Anything else is a web server's log
line (from penlog), and the web server is the datagram's source address.
Each line is written exactly once, its first field replaced by the client of
the record with the same server and request nearest in arrival time; a
record is used by one line only.  Lines that match nothing are written
unchanged.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@version_option()
@click.option(
    "-d", "debug", count=True, help="Debugging: -d the sockets and counters, -dd every datagram."
)
@click.option(
    "-f", "foreground", is_flag=True, help="Stay in the foreground (for systemd and tests)."
)
@click.option(
    "-j",
    "chroot",
    metavar="DIR",
    help="Run chrooted in DIR; the -l and -p paths are then inside it.",
)
@click.option(
    "-l", "logfile", metavar="LOGFILE", help="Append the joined log here (default: stdout)."
)
@click.option(
    "-n",
    "max_records",
    type=click.IntRange(min=1),
    default=500_000,
    show_default=True,
    metavar="N",
    help="Most balancer records kept: a memory bound; records are used once and "
    "expire after --window anyway.",
)
@click.option(
    "-p", "pidfile", metavar="PIDFILE", help="Write the process id here; removed at exit."
)
@click.option(
    "-u",
    "user",
    metavar="USER",
    help="Run as USER once the port is bound; -l and -p are opened as USER.",
)
@click.option(
    "-a",
    "--address",
    "addresses",
    multiple=True,
    metavar="ADDR",
    help="Listen on this address only (repeatable; default: every IPv6 and IPv4 address).",
)
@click.option(
    "--balancer",
    "balancers",
    multiple=True,
    metavar="ADDR",
    help="Accept records only from this address (repeatable; default: from anyone, "
    "as the original).",
)
@log_format_option(join=True)
@click.option(
    "--window",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    metavar="SECONDS",
    help="A record no line has claimed within this time expires.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="How long a line whose record has not arrived yet waits for it.",
)
@click.option(
    "--rcvbuf",
    type=click.IntRange(min=4096),
    default=DEFAULT_RCVBUF,
    show_default=True,
    metavar="BYTES",
    help="Socket receive buffer asked for (-d shows what the kernel granted).",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="NAME=ADDR",
    help="Syslog lines tagged NAME come from the web server pen knows as ADDR "
    "(repeatable; default: the datagram's source address).",
)
@click.option(
    "--metrics",
    metavar="[HOST:]PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (a bare port: 127.0.0.1).",
)
@click.option(
    "--tag-backend",
    is_flag=True,
    help="Append the web server's address to each line (webstats -f combined_backend).",
)
@click.option(
    "--stats-json",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Also write the counters as JSON to FILE on USR1 and at exit (inside -j's jail).",
)
@click.argument("port")
def command(
    debug: int,
    foreground: bool,
    chroot: str | None,
    logfile: str | None,
    max_records: int,
    pidfile: str | None,
    user: str | None,
    addresses: tuple[str, ...],
    balancers: tuple[str, ...],
    log_format: str | None,
    window: float,
    wait: float,
    rcvbuf: int,
    tags: tuple[str, ...],
    metrics: str | None,
    tag_backend: bool,
    stats_json: str | None,
    port: str,
) -> None:
    """Join pen's records with the web servers' log lines, live, on UDP PORT.

    Receives the records of pen (-l HOST:PORT) and the lines of every web
    server's penlog on one port, IPv4 and IPv6, and writes each web line with
    the real client's address to LOGFILE or stdout.
    """
    from pentools.penlogd.server import run

    LogFormat(log_format).check_joinable(needs_time=False)  # on the terminal, not after detaching
    config = PenlogdConfig(
        port=parse_port(port),
        addresses=tuple(resolve_host(a)[0] for a in addresses),
        logfile=logfile,
        pidfile=pidfile,
        foreground=foreground,
        debug=debug,
        chroot=chroot,
        user=user,
        stats_json=stats_json,
        rcvbuf=rcvbuf,
        metrics=None if metrics is None else parse_metrics_address(metrics),
        join=JoinConfig(
            window=window,
            wait=wait,
            max_records=max_records,
            log_format=log_format,
            balancers=_balancers(balancers),
            syslog_tags=dict(_tag(text) for text in tags),
            tag_backend=tag_backend,
        ),
    )
    run(config)


def _balancers(texts: tuple[str, ...]) -> frozenset[str] | None:
    if not texts:
        return None
    return frozenset(address for text in texts for address in resolve_host(text))


def _tag(text: str) -> tuple[str, str]:
    """``NAME=ADDRESS`` of --tag: the address as the records name the server."""
    name, sep, address = text.partition("=")
    if not sep or not name or not address:
        raise ConfigError(text, "expected --tag NAME=ADDRESS")
    return name, resolve_host(address)[0]


def main() -> None:
    run_command(command, "penlogd")
