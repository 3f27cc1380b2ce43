"""Command line of penlogd: the original's options, plus the join's knobs."""

from __future__ import annotations

import click

from pentools.core.accesslog import LogFormat
from pentools.core.addresses import parse_port, resolve_host
from pentools.core.cli import log_format_option, run_command
from pentools.penlogd.config import DEFAULT_RCVBUF, PenlogdConfig
from pentools.penlogd.join import JoinConfig

EPILOG = """\b
Examples:
  penlogd -l /var/log/access_log -p /run/penlogd.pid 10000
  penlogd -f --balancer 10.0.0.5 -l access_log 10000     (under systemd)
  pen -l loghost:10000 80 10.0.0.1 10.0.0.2               (the balancer)
  CustomLog "|penlog loghost 10000 10.0.0.1" common       (each web server)

\b
Signals: HUP closes and reopens the log (rotation: mv the log, then HUP);
TERM and INT write what was received, remove the PID file and exit 0;
USR1 writes the counters to stderr (syslog when detached).

A datagram that starts with "+" is a balancer record; anything else is a web
server's log line, and the web server is the datagram's source address.  Each
line is written exactly once, its first field replaced by the client of the
record with the same server and request nearest in arrival time; a record is
used by one line only.  Lines that match nothing are written unchanged.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
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
    help="Run chrooted in DIR (the log path is then inside it for HUP).",
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
    "-u", "user", metavar="USER", help="Run as USER once the port is bound and the log opened."
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
        join=JoinConfig(
            window=window,
            wait=wait,
            max_records=max_records,
            log_format=log_format,
            balancers=_balancers(balancers),
        ),
    )
    run(config)


def _balancers(texts: tuple[str, ...]) -> frozenset[str] | None:
    if not texts:
        return None
    return frozenset(address for text in texts for address in resolve_host(text))


def main() -> None:
    run_command(command, "penlogd")
