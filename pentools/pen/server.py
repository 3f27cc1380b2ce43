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
import stat
import sys
from collections.abc import Callable

from pentools.core.addresses import address_family, resolve_host
from pentools.core.errors import ConfigError, ListenError, PentoolsError
from pentools.core.output import atomic_output
from pentools.pen.balancer import Balancer
from pentools.pen.config import DEFAULT_BACKLOG, ListenSpec, PenConfig
from pentools.pen.control import Controller, ControlProtocol
from pentools.pen.proxy import Downstream
from pentools.pen.relay import RawRelay
from pentools.pen.status import render_status
from pentools.pen.tls import server_context


def bind_listener(
    spec: ListenSpec, *, udp: bool = False, backlog: int = DEFAULT_BACKLOG
) -> socket.socket:
    """A bound (and for TCP listening, with a queue of `backlog`) socket for `spec`."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    if spec.path is not None:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(spec.path).st_mode):
                os.unlink(spec.path)  # a stale socket of an earlier run
        sock = socket.socket(socket.AF_UNIX, kind)
        sock.bind(spec.path)
    elif not spec.host:
        if socket.has_dualstack_ipv6():
            sock = socket.socket(socket.AF_INET6, kind)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            address: tuple[str, int] = ("::", spec.port)
        else:
            sock = socket.socket(socket.AF_INET, kind)
            address = ("0.0.0.0", spec.port)
        if not udp:  # for UDP it would let a second process share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    else:
        ip = resolve_host(spec.host)[0]
        sock = socket.socket(address_family(ip), kind)
        if not udp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, spec.port))
        except OSError:
            sock.close()
            raise
    if not udp:
        sock.listen(backlog)
    sock.setblocking(False)
    return sock


def _open_listener(
    spec: ListenSpec, what: str, *, udp: bool = False, backlog: int = DEFAULT_BACKLOG
) -> socket.socket:
    try:
        return bind_listener(spec, udp=udp, backlog=backlog)
    except OSError as exc:
        raise ListenError(f"{spec} ({what})", exc.strerror or str(exc)) from None


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
    listener = _open_listener(
        config.listen, "listen address", udp=config.udp, backlog=config.backlog
    )
    control = _open_listener(config.control, "control port") if config.control else None
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
    balancer.listen_description = _describe(listener, config.listen)
    if control is not None:
        balancer.control_description = _describe(control, config.control)  # type: ignore[arg-type]
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

    controller = Controller(balancer, request_exit=stop.set, write_webstats=write_webstats)
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

    relay: RawRelay | None = None
    if config.udp:
        from pentools.pen.udp import serve_udp

        closer = await serve_udp(balancer, listener)
    elif tls is None:
        relay = RawRelay(balancer, listener)
        closer = relay.stop
    else:
        server = await loop.create_server(
            lambda: Downstream(balancer), sock=listener, ssl=tls, backlog=config.backlog
        )
        closer = server.close
    control_server = None
    if control is not None:
        control_server = await loop.create_server(lambda: ControlProtocol(controller), sock=control)
    balancer.debug(f"listening on {balancer.listen_description}")
    await stop.wait()
    closer()
    if control_server is not None:
        control_server.close()
    await balancer.drain(config.drain_seconds)
    if relay is not None:
        relay.close()
    balancer.close()
    if config.listen.path is not None:
        with contextlib.suppress(OSError):
            os.unlink(config.listen.path)


def _describe(sock: socket.socket, spec: ListenSpec) -> str:
    if spec.path is not None:
        return spec.path
    host, port = sock.getsockname()[:2]
    if host == "::":
        host = "0.0.0.0"  # dual-stack "every address", as the original shows it
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
