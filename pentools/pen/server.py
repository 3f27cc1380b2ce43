"""pen's process: open the sockets, go to the background, run the loop, obey signals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable

from pentools.core import process
from pentools.core.errors import ConfigError, PentoolsError
from pentools.pen.balancer import Balancer
from pentools.pen.config import PenConfig
from pentools.pen.control import Controller, ControlProtocol
from pentools.pen.front import Front, describe, open_listener
from pentools.pen.status import render_status
from pentools.pen.tls import server_context


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # plain asyncio works, only slower
        return asyncio.new_event_loop
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def run(config: PenConfig) -> None:
    """Run pen until TERM (or ``exit``); raises PentoolsError for what the user must fix.

    Sockets are bound while errors still reach the terminal; then pen goes
    to the background (`pentools.core.process`), confines itself and opens
    the log and PID file as the user it runs as, like the C pen, so that HUP
    can reopen what start-up opened.  The starting command exits only once
    pen listens, with pen's own error if it could not.
    """
    if config.control is not None and os.geteuid() == 0 and config.user is None:
        raise ConfigError(
            str(config.control), "won't open a control port running as root; use -u USER"
        )
    tls = server_context(config)
    listener = open_listener(
        config.listen, "listen address", udp=config.udp, backlog=config.backlog
    )
    control = open_listener(config.control, "control port") if config.control else None
    account = process.lookup_user(config.user)
    # Imported now: after -j the package is out of reach.
    loop_factory = _loop_factory()
    if config.udp:
        import pentools.pen.udp  # noqa: F401  (front imports it when it serves)
    with process.start(foreground=config.foreground) as startup:
        process.confine(config.chroot, account)
        with (
            process.pid_file(config.pidfile, logging.getLogger("pentools.pen").warning),
            asyncio.Runner(loop_factory=loop_factory) as runner,
        ):
            runner.run(serve(config, listener, control, tls, startup.ready))


def _read_commands(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as source:
            return source.read().splitlines()
    except OSError as exc:
        raise ConfigError(path, f"cannot read -F file: {exc.strerror}") from None


async def serve(
    config: PenConfig,
    listener: socket.socket,
    control: socket.socket | None,
    tls: ssl.SSLContext | None,
    ready: Callable[[], None] = lambda: None,
) -> None:
    """The event loop's part: serve until told to stop, then drain.

    `ready` is called once pen listens (with -F and -o applied, the log open).
    """
    loop = asyncio.get_running_loop()
    balancer = Balancer(config, loop)
    front = Front(balancer, config, tls, listener)
    if control is not None:
        balancer.control_description = describe(control, config.control)  # type: ignore[arg-type]
    stop = asyncio.Event()

    def write_webstats() -> None:
        if balancer.webstats:
            try:
                with open(balancer.webstats, "w", encoding="utf-8") as out:
                    out.write(render_status(balancer))
            except OSError as exc:
                print(f"pen: cannot write {balancer.webstats}: {exc.strerror}", file=sys.stderr)
        else:
            controller_text = controller.execute("servers")
            print(
                f"pen: {len(balancer.connections)} connections\n{controller_text}",
                file=sys.stderr,
                end="",
                flush=True,
            )

    controller = Controller(
        balancer, request_exit=stop.set, write_webstats=write_webstats, reopen=front.reopen
    )
    if config.cfgfile:
        controller.run_lines(_read_commands(config.cfgfile), config.cfgfile)
    controller.run_lines(list(config.commands), "-o")

    def reload() -> None:
        try:
            balancer.reopen_log()
            if config.cfgfile:
                controller.run_lines(_read_commands(config.cfgfile), config.cfgfile)
        except (PentoolsError, OSError) as exc:
            print(f"pen: HUP: {exc}", file=sys.stderr, flush=True)

    process.handle_signals(
        loop,
        {
            signal.SIGTERM: stop.set,
            signal.SIGINT: stop.set,
            signal.SIGHUP: reload,
            signal.SIGUSR1: write_webstats,
        },
    )

    await front.start()
    control_server = None
    if control is not None:
        control_server = await loop.create_server(lambda: ControlProtocol(controller), sock=control)
    balancer.debug(f"listening on {balancer.listen_description}")
    ready()
    await stop.wait()
    front.stop()
    if control_server is not None:
        control_server.close()
    await balancer.drain(config.drain_seconds)
    front.close()
    balancer.close()
