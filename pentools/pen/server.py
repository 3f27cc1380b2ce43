"""pen's process: open the sockets, go to the background, run the loop, obey signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable

from pentools.core import process
from pentools.core.addresses import resolve_host
from pentools.core.errors import ConfigError, OutputFileError, PentoolsError
from pentools.core.metrics import MetricsServer, new_registry
from pentools.core.output import atomic_output
from pentools.pen.config import PenConfig
from pentools.pen.control import Controller, ControlProtocol
from pentools.pen.front import Front, describe, open_listener
from pentools.pen.link import WorkerLink
from pentools.pen.metrics import PenCollector
from pentools.pen.recordlog import open_sink
from pentools.pen.selection import Selector
from pentools.pen.state import State
from pentools.pen.status import render_status
from pentools.pen.tlscontext import server_context

log = logging.getLogger("pentools.pen")

#: Seconds between two looks at the connection table (idle and silent connections).
_TICK = 0.25


def resolve_servers(config: PenConfig) -> dict[str, str]:
    """Every server host of the config, resolved once at start (like the original)."""
    hosts = [spec.host for spec in config.servers]
    if config.emergency is not None:
        hosts.append(config.emergency.host)
    return {host: resolve_host(host)[0] for host in hosts}


def build_state(
    config: PenConfig,
    loop: asyncio.AbstractEventLoop,
    addresses: dict[str, str] | None = None,
) -> State:
    """pen's running state, its I/O bound to `loop`; `addresses` as `resolve_servers` gives."""
    if addresses is None:
        addresses = resolve_servers(config)
    return State(
        config,
        Selector.from_config(config, addresses),
        clock=loop.time,
        open_log=lambda target: open_sink(target, loop.call_soon),
        started=time.time(),
    )


def log_to_stderr() -> None:
    """pen's diagnostics (``pentools.pen``) as ``pen: message`` lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pen: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def pick_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # plain asyncio works, only slower
        return asyncio.new_event_loop
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def check_control_user(config: PenConfig) -> None:
    """Refuse a control port in a process that stays root (ConfigError)."""
    if config.control is not None and os.geteuid() == 0 and config.user is None:
        raise ConfigError(
            str(config.control), "won't open a control port running as root; use -u USER"
        )


def run(config: PenConfig) -> None:
    """Run pen until TERM (or ``exit``); raises PentoolsError for what the user must fix.

    Sockets are bound while errors still reach the terminal; then pen goes
    to the background (`pentools.core.process`), confines itself and opens
    the log and PID file as the user it runs as, like the C pen, so that HUP
    can reopen what start-up opened.  The starting command exits only once
    pen listens, with pen's own error if it could not.
    """
    check_control_user(config)
    log_to_stderr()
    tls = server_context(config)
    addresses = resolve_servers(config)
    listener = open_listener(
        config.listen, "listen address", udp=config.udp, backlog=config.backlog
    )
    control = open_listener(config.control, "control port") if config.control else None
    collector = PenCollector()  # reads the state once serve() has made it
    metrics = MetricsServer(config.metrics, new_registry([collector])) if config.metrics else None
    if metrics is not None:
        metrics.bind()
    account = process.lookup_user(config.user)
    loop_factory = pick_loop_factory()  # imported now: after -j the package is out of reach
    try:
        with process.start(foreground=config.foreground) as startup:
            process.confine(config.chroot, account)
            if metrics is not None:
                metrics.serve()  # a thread: started in the process that stays
            with (
                process.pid_file(config.pidfile, log.warning),
                asyncio.Runner(loop_factory=loop_factory) as runner,
            ):
                runner.run(
                    serve(config, addresses, listener, control, tls, collector, startup.ready)
                )
    finally:
        if metrics is not None:
            metrics.close()


def read_commands(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as source:
            return source.read().splitlines()
    except OSError as exc:
        raise ConfigError(path, f"cannot read -F file: {exc.strerror}") from None


async def serve(
    config: PenConfig,
    addresses: dict[str, str],
    listener: socket.socket,
    control: socket.socket | None,
    tls: ssl.SSLContext | None,
    collector: PenCollector,
    ready: Callable[[], None] = lambda: None,
    link: socket.socket | None = None,
) -> None:
    """The event loop's part: serve until told to stop, then drain.

    `ready` is called once pen listens (with -F and -o applied, the log open).
    A worker of ``--workers`` has a `link` to its supervisor
    (`pentools.pen.link`) instead of a control port.
    """
    loop = asyncio.get_running_loop()
    state = build_state(config, loop, addresses)
    collector.state = state
    front = Front(state, loop, config, tls, listener)
    if control is not None:
        state.control_description = describe(control, config.control)  # type: ignore[arg-type]
    stop = asyncio.Event()

    def write_webstats() -> None:
        report_status(controller)

    controller = Controller(
        state, request_exit=stop.set, write_webstats=write_webstats, reopen=front.reopen
    )
    worker = None if link is None else WorkerLink(link, state, controller, loop, stop.set)
    if config.cfgfile:
        controller.run_lines(read_commands(config.cfgfile), config.cfgfile)
    controller.run_lines(list(config.commands), "-o")

    def reload() -> None:
        try:
            state.reopen_log()
            if config.cfgfile:
                controller.run_lines(read_commands(config.cfgfile), config.cfgfile)
        except (PentoolsError, OSError) as exc:
            log.error("HUP: %s", exc)

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
    state.debug(f"listening on {state.listen_description}")

    def tick() -> None:
        state.tick(loop.time())
        if worker is not None:
            worker.tick()

    ticker = _periodically(loop, _TICK, tick)
    ready()
    await stop.wait()
    front.stop()
    if control_server is not None:
        control_server.close()
    await _drain(state, config.drain_seconds)
    ticker.cancel()
    if worker is not None:
        worker.close()
    front.close()
    state.close()


def report_status(controller: Controller) -> None:
    """USR1: the status page to the -w file, else the server table to the diagnostics."""
    state = controller.state
    path = state.settings.webstats
    if path:
        page = render_status(state).encode("utf-8")
        try:
            with atomic_output(path) as out:  # a reader never sees half a page
                out.write(page)
        except OutputFileError:
            try:  # a directory -u's user may not create in: rewrite the file in place
                with open(path, "wb") as out:
                    out.write(page)
            except OSError as exc:
                log.error("cannot write %s: %s", path, exc.strerror)
    else:
        servers = controller.execute("servers").rstrip("\n")
        log.info("%d connections\n%s", len(state.table), servers)


def _periodically(
    loop: asyncio.AbstractEventLoop, seconds: float, job: Callable[[], None]
) -> asyncio.Task[None]:
    """Run `job` every `seconds` until the task is cancelled."""

    async def repeat() -> None:
        while True:
            await asyncio.sleep(seconds)
            job()

    return loop.create_task(repeat())


async def _drain(state: State, seconds: float) -> None:
    """TERM: wait up to `seconds` for open connections to finish, then cut the rest."""
    table = state.table
    if len(table):
        drained = asyncio.Event()
        table.when_empty = drained.set
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), seconds)
        table.when_empty = None
    for connection in list(table.connections.values()):
        connection.close()
