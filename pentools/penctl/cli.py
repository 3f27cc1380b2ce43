"""penctl [HOST:]PORT|/path/to/socket COMMAND...: the original's protocol and output.

The command words are joined by spaces and sent as one line; everything pen
sends back until it closes the connection is the reply, printed unchanged on
stdout; a refusal goes to stderr with exit status 1, so that scripts can tell.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

import click

from pentools.core.addresses import parse_host_port, resolve_host, split_listen_address
from pentools.core.cli import run_command, version_option
from pentools.core.errors import PentoolsError
from pentools.pen.control import REFUSED, command_names


@dataclass(frozen=True)
class PenctlConfig:
    """Where pen's control port is and what to tell it."""

    target: str
    command: str
    timeout: float = 10.0


def send_command(config: PenctlConfig) -> bytes:
    """Send the command, return the whole reply (raises OSError, PentoolsError)."""
    path = split_listen_address(config.target)
    if path is not None:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(config.timeout)
        conn.connect(path)
    else:  # a bare port is pen's own default control address, as for pen -C
        address = parse_host_port(config.target, default_host="127.0.0.1")
        conn = socket.create_connection(
            (resolve_host(address.host)[0], address.port), timeout=config.timeout
        )
    with conn:
        conn.sendall(config.command.encode() + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class CommandRefused(PentoolsError):
    """pen did not carry the command out; the message is pen's reply."""


#: How a refusal begins: our pen's (and the original's) ``do_cmd:`` prefix, and
#: the one reply of the original that lacks it.
_REFUSALS = (REFUSED.encode(), b"Exit is not enabled")


def refused(reply: bytes) -> bool:
    """True if pen did not carry the command out (unknown, bad argument, not enabled)."""
    return reply.startswith(_REFUSALS)


def help_text() -> str:
    """``penctl help``: the commands pen's control port takes, from its own table."""
    lines = [f"{'[no] ' if negatable else ''}{name}" for name, negatable in command_names()]
    return "Commands (penctl TARGET COMMAND [ARGUMENTS]):\n  " + "\n  ".join(lines) + "\n"


@click.command(context_settings={"help_option_names": ["--help"]})
@version_option()
@click.option(
    "--timeout",
    type=click.FloatRange(0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for pen.",
)
@click.argument("target", metavar="[HOST:]PORT|/path/to/socket")
@click.argument("command", nargs=-1)
def command(target: str, command: tuple[str, ...], timeout: float) -> None:
    """Send COMMAND (e.g. `servers`, `status`, `no hash`) to pen's control port.

    A bare PORT is 127.0.0.1:PORT.  `penctl help` lists the commands.  A
    command pen refuses is printed on stderr and the exit status is 1.
    """
    if command == ("help",) or (target == "help" and not command):
        sys.stdout.write(help_text())
        return
    if not command:
        raise click.UsageError("missing COMMAND (penctl help lists them)")
    try:
        reply = send_command(PenctlConfig(target, " ".join(command), timeout))
    except OSError as exc:  # name the control port that did not answer
        raise PentoolsError(f"{target}: {exc.strerror or exc}") from None
    if refused(reply):
        raise CommandRefused(reply.decode("utf-8", "replace").strip())
    sys.stdout.buffer.write(reply)
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and an exit status, never a traceback."""
    run_command(command, "penctl", argv)
