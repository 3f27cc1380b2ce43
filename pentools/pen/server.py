"""pen's process: open the sockets, go to the background, run the loop, obey signals.

Sockets are bound before daemonizing, chroot and setuid, so that "address
in use" or "permission denied" reach the terminal with a non-zero exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable

from pentools.core.errors import ConfigError, PentoolsError
from pentools.core.output import atomic_output
from pentools.pen.balancer import Balancer
from pentools.pen.config import PenConfig
from pentools.pen.control import Controller, ControlProtocol
from pentools.pen.front import Front, describe, open_listener
from pentools.pen.status import render_status
from pentools.pen.tls import server_context


def _daemonize() -> None:
    """The classic double fork: detach from the terminal, keep running in the background."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _drop_privileges(config: PenConfig) -> None:
    import pwd

    user = None
    if config.user is not None:
        try:
            user = pwd.getpwnam(config.user)
        except KeyError:
            raise ConfigError(config.user, "no such user") from None
    if config.chroot is not None:
        try:
            os.chroot(config.chroot)
            os.chdir("/")
        except OSError as exc:
            raise ConfigError(config.chroot, f"cannot chroot: {exc.strerror}") from None
    if user is not None and user.pw_uid != os.geteuid():
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # plain asyncio works, only slower
        return asyncio.new_event_loop
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def run(config: PenConfig) -> None:
    """Run pen until TERM (or ``exit``); raises PentoolsError for what the user must fix."""
    if config.control is not None and os.geteuid() == 0 and config.user is None:
        raise ConfigError(
            str(config.control), "won't open a control port running as root; use -u USER"
        )
    tls = server_context(config)
    _check_start_up(config)
    listener = open_listener(
        config.listen, "listen address", udp=config.udp, backlog=config.backlog
    )
    control = open_listener(config.control, "control port") if config.control else None
    if not config.foreground:
        _daemonize()
    _drop_privileges(config)
    if config.pidfile:  # whole or not at all: a script may read it at any moment
        with atomic_output(config.pidfile) as out:
            out.write(f"{os.getpid()}\n".encode("ascii"))
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(config, listener, control, tls))
    finally:
        if config.pidfile:
            with contextlib.suppress(OSError):
                os.unlink(config.pidfile)


def _check_start_up(config: PenConfig) -> None:
    """Resolve the servers, open the log and run -F and -o on a throw-away balancer.

    Done before going to the background, so that a typo in any of them is a
    one-line error and a non-zero exit on the terminal, not a silent death.
    """
    loop = asyncio.new_event_loop()
    try:
        balancer = Balancer(config, loop)
        try:
            controller = Controller(balancer)
            if config.cfgfile:
                controller.run_lines(_read_commands(config.cfgfile), config.cfgfile)
            controller.run_lines(list(config.commands), "-o")
        finally:
            balancer.close()
    finally:
        loop.close()


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
) -> None:
    """The event loop's part: serve until told to stop, then drain."""
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

    for signum, handler in (
        (signal.SIGTERM, stop.set),
        (signal.SIGINT, stop.set),
        (signal.SIGHUP, reload),
        (signal.SIGUSR1, write_webstats),
    ):
        loop.add_signal_handler(signum, handler)

    await front.start()
    control_server = None
    if control is not None:
        control_server = await loop.create_server(lambda: ControlProtocol(controller), sock=control)
    balancer.debug(f"listening on {balancer.listen_description}")
    await stop.wait()
    front.stop()
    if control_server is not None:
        control_server.close()
    await balancer.drain(config.drain_seconds)
    front.close()
    balancer.close()
