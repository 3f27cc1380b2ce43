"""penlogd's IO: UDP sockets (asyncio-dgram), the output file, signals.

All decisions are in `LiveJoin` (sans-IO); this module only moves datagrams
from the sockets to it and joined lines from it to the log file.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import logging.handlers
import os
import signal
import socket
import sys
from collections.abc import Iterator
from typing import IO, cast

import asyncio_dgram
from asyncio_dgram.aio import DatagramStream

from pentools.core.addresses import address_family, format_host_port
from pentools.core.errors import AddressError, ListenError, OutputFileError, PentoolsError
from pentools.core.output import atomic_output
from pentools.penlogd import daemon
from pentools.penlogd.config import PenlogdConfig
from pentools.penlogd.join import JoinCounters, LiveJoin
from pentools.penlogd.receiver import BatchReceiver

log = logging.getLogger("penlogd")

#: How often waiting lines are released and the output flushed: a joined
#: line reaches the file at most this late (plus its wait).
TICK = 0.1

#: Reads of up to BatchReceiver.size datagrams in a row before the event loop
#: gets a turn.
BATCHES = 8

#: SO_RCVBUFFORCE exceeds net.core.rmem_max when we may (root); else SO_RCVBUF.
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def open_sockets(config: PenlogdConfig) -> list[socket.socket]:
    """Bind the UDP sockets: the given addresses, or ``::`` for IPv6 and IPv4 both."""
    addresses = config.addresses or ("::",)
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            sockets.append(_bind(address, config.port, config.rcvbuf, dual=not config.addresses))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind(address: str, port: int, rcvbuf: int, dual: bool) -> socket.socket:
    family = address_family(address)
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        if dual:  # no IPv6 on this host: all of IPv4 then
            return _bind("0.0.0.0", port, rcvbuf, dual=False)
        raise AddressError(address, exc.strerror or str(exc)) from None
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
        _grow_receive_buffer(sock, rcvbuf)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise ListenError(format_host_port(address, port), exc.strerror or str(exc)) from None
    return sock


def _grow_receive_buffer(sock: socket.socket, size: int) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:  # not privileged: the kernel caps it at net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


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
        self.sockets: list[socket.socket] = []

    def start(self) -> None:
        """Bind the sockets and open the log: errors here are the user's to fix."""
        self.sockets = open_sockets(self.config)
        try:
            self.output.open()
        except BaseException:
            self.close_sockets()
            raise

    def close_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()

    def describe(self) -> str:
        parts = []
        for sock in self.sockets:
            host, port = sock.getsockname()[:2]
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            parts.append(f"{format_host_port(host, port)} (receive buffer {granted} bytes)")
        return "listening on " + ", ".join(parts)

    async def serve(self) -> JoinCounters:
        """Run until TERM or INT; then drain, flush and return the counters."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        streams = [await asyncio_dgram.from_socket(sock) for sock in self.sockets]
        loop.add_signal_handler(signal.SIGHUP, self._rotate)
        loop.add_signal_handler(signal.SIGUSR1, self._report)
        loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
        loop.add_signal_handler(signal.SIGINT, self._stopping.set)
        receivers = [BatchReceiver(sock) for sock in self.sockets]
        readers = [
            asyncio.create_task(self._read(stream, receiver))
            for stream, receiver in zip(streams, receivers, strict=True)
        ]
        ticker = asyncio.create_task(self._tick())
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
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
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
    handler: logging.Handler
    if to_syslog and os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(address="/dev/log")
        handler.setFormatter(logging.Formatter("penlogd[%(process)d]: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("penlogd: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG if config.debug > 1 else logging.INFO)


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
    """Start penlogd: bind, open, detach (unless foreground), confine, serve."""
    setup_logging(config, to_syslog=False)
    account = daemon.lookup_user(config.user)
    server = PenlogdServer(config)  # compiles --log-format: a bad one is reported here
    server.start()
    if config.debug:
        log.info(server.describe())
    if not config.foreground:
        daemon.detach(keep_stdout=config.logfile is None)
        setup_logging(config, to_syslog=True)
    try:
        if config.pidfile is not None:
            daemon.write_pidfile(config.pidfile)
        daemon.confine(config.chroot, account)
        tune_garbage_collector()
        counters = asyncio.run(server.serve())
    except PentoolsError as exc:
        if not config.foreground:  # stderr is gone: say it in syslog
            log.error("%s", exc)
        raise
    finally:
        server.close_sockets()
        server.output.close()
        if config.pidfile is not None:
            problem = daemon.remove_pidfile(config.pidfile)
            if problem:
                log.warning("could not remove %s: %s", config.pidfile, problem)
    if config.debug:
        log.info("exiting: %s", counters.summary())
    write_stats_json(config.stats_json, counters)
    return counters
