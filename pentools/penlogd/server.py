"""penlogd's IO: UDP sockets (asyncio-dgram), the output file, signals.

All decisions are in `LiveJoin` (sans-IO); this module only moves datagrams
from the sockets to it and joined lines from it to the log file.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from typing import IO, cast

import asyncio_dgram
from asyncio_dgram.aio import DatagramStream

from pentools.core import process
from pentools.core.addresses import format_host_port
from pentools.core.cli import tool_logger
from pentools.core.errors import OutputFileError, PentoolsError, StartupError
from pentools.core.output import atomic_output
from pentools.core.sockets import bind_socket
from pentools.penlogd.config import PenlogdConfig
from pentools.penlogd.join import JoinCounters, LiveJoin
from pentools.penlogd.metrics import PenlogdMetrics
from pentools.penlogd.receiver import BatchReceiver

log = logging.getLogger("pentools.penlogd")

#: How often waiting lines are released and the output flushed: a joined
#: line reaches the file at most this late (plus its wait).
TICK = 0.1

#: Reads of up to BatchReceiver.size datagrams in a row before the event loop
#: gets a turn.
BATCHES = 8


def open_sockets(config: PenlogdConfig) -> list[socket.socket]:
    """Bind the UDP sockets: the given addresses, or every address (IPv6 and IPv4)."""
    addresses: tuple[str | None, ...] = config.addresses or (None,)
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            sockets.append(
                bind_socket(address, config.port, udp=True, receive_buffer=config.rcvbuf)
            )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class LogOutput:
    """The joined log: a file opened for appending (reopened on HUP) or stdout."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stream: IO[bytes] | None = None

    def open(self) -> None:
        if self.path is None:
            self._stream = sys.stdout.buffer
            return
        try:
            self._stream = open(self.path, "ab", buffering=256 * 1024)  # noqa: SIM115
        except OSError as exc:
            raise OutputFileError(self.path, exc.strerror or str(exc)) from None

    def write(self, lines: list[bytes]) -> None:
        assert self._stream is not None
        self._stream.writelines(lines)

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def reopen(self) -> None:
        """Open the file again (after ``mv`` for rotation), then close the old one.

        If the new one cannot be opened, the old one stays in use: a failed
        rotation must not stop the logging.  stdout is only flushed.
        """
        old = self._stream
        if self.path is None:
            self.flush()
            return
        self.open()
        if old is not None:
            old.close()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.flush()
            if self.path is not None:
                self._stream.close()
            self._stream = None


class PenlogdServer:
    """Receives on the sockets, joins, writes; stops on TERM after draining."""

    def __init__(self, config: PenlogdConfig) -> None:
        self.config = config
        self.join = LiveJoin(config.join)
        self.output = LogOutput(config.logfile)
        self.sockets: list[socket.socket] = []  # filled in place: the metrics read this list
        self.metrics = PenlogdMetrics(self.join, self.sockets, config.metrics)

    def start(self) -> None:
        """Bind the sockets and the metrics port (as root if so started: ports under 1024)."""
        self.sockets[:] = open_sockets(self.config)
        try:
            self.metrics.bind()
        except BaseException:
            self.close_sockets()
            raise

    def close_sockets(self) -> None:
        self.metrics.close()
        for sock in self.sockets:
            sock.close()

    def describe(self) -> str:
        parts = []
        for sock in self.sockets:
            host, port = sock.getsockname()[:2]
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            parts.append(f"{format_host_port(host, port)} (receive buffer {granted} bytes)")
        if self.metrics.server is not None:
            parts.append(f"metrics at http://{self.metrics.server.listening}/metrics")
        return "listening on " + ", ".join(parts)

    async def serve(self, ready: Callable[[], None] = lambda: None) -> JoinCounters:
        """Run until TERM or INT; then drain, flush and return the counters.

        `ready` is called once the sockets are read and the signals obeyed.
        """
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        streams = [await asyncio_dgram.from_socket(sock) for sock in self.sockets]
        forget_signals = process.handle_signals(
            loop,
            {
                signal.SIGHUP: self._rotate,
                signal.SIGUSR1: self._report,
                signal.SIGTERM: self._stopping.set,
                signal.SIGINT: self._stopping.set,
            },
        )
        receivers = [BatchReceiver(sock) for sock in self.sockets]
        readers = [
            asyncio.create_task(self._read(stream, receiver))
            for stream, receiver in zip(streams, receivers, strict=True)
        ]
        ticker = asyncio.create_task(self._tick())
        self.metrics.serve()
        ready()
        await self._stopping.wait()
        ticker.cancel()
        # Nothing that reached us is lost: what the kernel still holds is read
        # now, then what asyncio-dgram queued is handled before it, in order.
        late = [datagram for receiver in receivers for datagram in _drain(receiver)]
        for stream in streams:
            stream.close()  # the readers end after the queued datagrams
        await asyncio.gather(*readers)
        for data, source in late:
            self.join.receive(data, source, loop.time())
        self.join.release_all()
        self._write_output()
        forget_signals()
        self.output.close()
        return self.join.sync_counters()

    async def _read(self, stream: DatagramStream, receiver: BatchReceiver) -> None:
        join, now = self.join, asyncio.get_running_loop().time
        debug = log.isEnabledFor(logging.DEBUG)
        while True:
            try:
                data, address = cast(tuple[bytes, tuple[str, int]], await stream.recv())
            except asyncio_dgram.TransportClosed:
                return
            if debug:
                log.debug("from %s: %r", address[0], data[:200])
            join.receive(data, address[0], now())
            # asyncio-dgram hands over one datagram per turn of the event loop,
            # which costs more than the join itself at tens of thousands a
            # second: read on straight from the socket, many datagrams per
            # system call, while it has more.  Arrival order is kept because
            # asyncio's own (selector) loop reads one datagram per readiness
            # event, the one just taken; uvloop reads ahead into the queue, so
            # penlogd stays on asyncio's loop.
            for _ in range(BATCHES):
                batch = receiver.receive()
                for data, source in batch:
                    if debug:
                        log.debug("from %s: %r", source, data[:200])
                    join.receive(data, source, now())
                if len(batch) < receiver.size:
                    break  # the socket is empty
            else:
                await asyncio.sleep(0)  # a long run: let signals and the tick run
            if join.has_output:
                self.output.write(join.take_output())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK)
            self.join.release_due(loop.time())
            self._write_output()
            self.output.flush()

    def _write_output(self) -> None:
        lines = self.join.take_output()
        if lines:
            self.output.write(lines)

    def _rotate(self) -> None:
        self._write_output()
        try:
            self.output.reopen()
        except OutputFileError as exc:
            log.error("%s; still writing to the file open before", exc)
            return
        log.info("reopened %s", self.output.path or "stdout")

    def _report(self) -> None:
        counters = self.join.sync_counters()
        log.info("%s", counters.summary())
        write_stats_json(self.config.stats_json, counters)


def write_stats_json(path: str | None, counters: JoinCounters) -> None:
    """The counters as JSON to `path` (replaced atomically); a failure is only logged."""
    if path is None:
        return
    try:
        with atomic_output(path) as binary:
            binary.write(counters.to_json().encode() + b"\n")
    except OutputFileError as exc:
        log.error("%s", exc)


def _drain(receiver: BatchReceiver) -> Iterator[tuple[bytes, str]]:
    """Every datagram the kernel still holds for `receiver`'s socket."""
    while batch := receiver.receive():
        yield from batch


def setup_logging(config: PenlogdConfig, to_syslog: bool) -> None:
    """Diagnostics to stderr in the foreground, to syslog (facility user) detached."""
    level = logging.DEBUG if config.debug > 1 else logging.INFO
    tool_logger("penlogd", level=level, syslog=to_syslog)


def tune_garbage_collector() -> None:
    """Collect reference cycles rarely: the join allocates a few objects per
    datagram, and most live until their line or record comes (up to -n
    records), so Python's default thresholds had it traverse them over and
    over: about a microsecond per datagram.  penlogd makes few cycles; those
    are still collected, only later.
    """
    gc.freeze()  # what start-up made lives as long as the process
    gc.set_threshold(100_000, 50, 100)


def run(config: PenlogdConfig) -> JoinCounters:
    """Start penlogd: bind, detach (unless foreground), confine, open, serve.

    The log and PID file are opened after `confine`, as USER and inside the
    chroot, like the C penlogd: HUP can then reopen what start-up opened.
    The starting command exits once penlogd receives, or with its error.
    """
    setup_logging(config, to_syslog=False)
    account = process.lookup_user(config.user)
    server = PenlogdServer(config)  # compiles --log-format: a bad one is reported here
    server.start()
    if config.debug:
        log.info(server.describe())
    try:
        with process.start(
            foreground=config.foreground, keep_stdout=config.logfile is None
        ) as startup:
            if startup.detached:
                setup_logging(config, to_syslog=True)
            process.confine(config.chroot, account)
            server.output.open()
            with process.pid_file(config.pidfile, log.warning):
                tune_garbage_collector()
                counters = asyncio.run(server.serve(startup.ready))
    except StartupError:
        raise  # the starting command: the daemon's reason, said once, by the CLI
    except PentoolsError as exc:
        if not config.foreground:  # stderr is gone: say it in syslog too
            log.error("%s", exc)
        raise
    finally:
        server.close_sockets()
        server.output.close()
    if config.debug:
        log.info("exiting: %s", counters.summary())
    write_stats_json(config.stats_json, counters)
    return counters
