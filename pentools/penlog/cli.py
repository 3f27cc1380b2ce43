"""Command line of penlog: ``penlog SERVER PORT [MY_IP]``, as the original."""

from __future__ import annotations

import os
import signal
import sys

import click

from pentools.core.addresses import parse_port
from pentools.core.cli import run_command, tool_logger, version_option
from pentools.penlog.sender import Sender, SenderConfig

EPILOG = """\b
Example, in Apache's configuration:
  CustomLog "|/usr/bin/penlog loghost 10000 10.0.0.1" common

Each line read becomes one UDP datagram (lines longer than the UDP limit,
64 KiB, are truncated and counted).  penlog never blocks the web server: a
penlogd that is down or a full buffer only makes it count the line as
dropped.  It exits 0 at end of input or on TERM.
"""


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@version_option()
@click.option(
    "--stats",
    "show_stats",
    is_flag=True,
    help="At exit, print sent, dropped and truncated on stderr.",
)
@click.argument("server")
@click.argument("port")
@click.argument("my_ip", required=False)
def command(server: str, port: str, my_ip: str | None, show_stats: bool) -> None:
    """Send access-log lines read on stdin to penlogd at SERVER PORT.

    SERVER is a host name (resolved once, at start) or an IPv4 or IPv6
    address.  MY_IP is the source address to send from: penlogd knows the web
    server by it, so it must be the address pen was given for this server.
    """
    sender = Sender(SenderConfig(server, parse_port(port), my_ip))
    stop_signals: list[int] = []
    wakeup_read, wakeup_write = os.pipe()
    os.set_blocking(wakeup_write, False)
    signal.set_wakeup_fd(wakeup_write)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stop_signals.append(signum))
    try:
        sender.pump(sys.stdin.fileno(), lambda: bool(stop_signals), wakeup_read)
    finally:
        sender.close()
        if show_stats:
            tool_logger("penlog").info("%s", sender.stats.summary())


def main() -> None:
    run_command(command, "penlog")
