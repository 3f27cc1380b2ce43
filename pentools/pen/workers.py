"""``--workers N``: N processes serve pen's address, a supervisor keeps them going.

With one worker (the default) pen is one process, exactly `pentools.pen.server`.
With more, the supervisor binds N sockets of one SO_REUSEPORT group and
steers each client address to one of them (`pentools.pen.steering`), so that
client tracking, ``-s`` and ``-h`` keep their meaning; it forks one worker
per socket, each running today's relay on its socket with its own state.
The supervisor keeps every socket open, so a worker that dies is started
again on the same socket and gets its clients back.

The supervisor owns what there is one of: the control port, the metrics
port, the PID file, the signals.  Over a link to each worker
(`pentools.pen.link`) it passes every penctl command to every worker, and
runs it on a State of its own too, which thus holds the settings of the
whole pen; for ``servers``, ``status``, ``metrics``, ``recent`` and the
connection commands it adds the workers' snapshots into that State and
answers from it.  A worker tells it of each server it blacklists, and it
tells the others.  HUP and TERM are passed on to every worker; USR1 writes
the status page of the whole pen.  Each worker appends its records to the
log itself: a file opened with O_APPEND, each batch of whole lines in one
write(), so lines of two workers never mix; datagrams to penlogd as ever.

The supervisor is a plain loop (`selectors`), with no event loop of its
own to hand down to the workers it forks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import selectors
import shlex
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric

from pentools.core import process
from pentools.core.errors import PentoolsError, StartupError
from pentools.core.metrics import MetricsServer, new_registry
from pentools.core.records import BalancerRecord
from pentools.pen import server
from pentools.pen.config import LogTarget, PenConfig
from pentools.pen.connection import client_of
from pentools.pen.control import CommandError, Controller, answer_line
from pentools.pen.front import describe, open_listener
from pentools.pen.link import Decoder, Message, link_pair, merge, send
from pentools.pen.metrics import PenCollector
from pentools.pen.selection import Selector
from pentools.pen.state import Counters, State
from pentools.pen.steering import needs_steering, spread_connections, steer_by_client
from pentools.pen.tlscontext import server_context

log = logging.getLogger("pentools.pen")

#: Seconds the supervisor waits for the workers' replies to a command.
_ASK_TIMEOUT = 3.0
#: A worker that dies sooner than this after its start is started again this much later.
_RESTART_DELAY = 1.0
#: Seconds between two refreshes of the metrics that ``--metrics`` serves.
_METRICS_REFRESH = 1.0
#: Seconds a worker may take after the drain before it is killed.
_EXIT_GRACE = 5.0
#: Commands the supervisor answers alone, and those it answers from the workers' snapshots.
_SUPERVISOR_ONLY = frozenset({"pid", "exit", "write", "control"})
_MERGED = frozenset({"servers", "status", "metrics", "recent", "connection", "socket", "close"})
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD)
_CONTROL_LINE_LIMIT = 4096


def run(config: PenConfig) -> None:
    """Run pen with ``config.workers`` processes (one: `pentools.pen.server.run`)."""
    if config.workers == 1:
        server.run(config)
    else:
        Supervisor(config).run()


class _NoSink:
    """The supervisor writes no records: its State's log only names the workers'."""

    written = 0
    dropped = 0

    def write(self, record: BalancerRecord) -> None:
        """Never called: the supervisor relays nothing."""

    def reopen(self) -> None:
        """Nothing open."""

    def close(self) -> None:
        """Nothing open."""


class _MergedCollector(PenCollector):
    """The whole pen's metrics, read while the supervisor is not merging."""

    def __init__(self, state: State, lock: threading.Lock) -> None:
        super().__init__(state)
        self.lock = lock

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            metrics = list(super().collect())
        yield from metrics


@dataclass
class Worker:
    """One worker process as the supervisor keeps it."""

    index: int
    listener: socket.socket
    pid: int = 0
    link: socket.socket | None = None
    decoder: Decoder = field(default_factory=Decoder)
    ready: bool = False
    error: str = ""
    started: float = 0.0
    #: When to start it again (0: it runs, or must not be).
    restart_at: float = 0.0


class Supervisor:
    """The parent of ``--workers``: sockets, workers, control and metrics ports."""

    def __init__(self, config: PenConfig) -> None:
        self.config = config
        self.workers: list[Worker] = []
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.supervising = False
        #: Whether the group's program steers by client address (else the kernel spreads).
        self.by_client = True
        self.stop_deadline = 0.0
        self.own = Counters()  # the supervisor's counts: restarts, denied control connections
        self.lock = threading.Lock()
        self._next_id = 0
        self._replies: dict[tuple[int, int], Message] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self.control: socket.socket | None = None
        self.metrics: MetricsServer | None = None
        self.state: State
        self.controller: Controller
        self.addresses: dict[str, str] = {}
        self.tls: ssl.SSLContext | None = None
        self.startup = process.Startup()
        self.loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop

    # -- start -------------------------------------------------------------------------

    def run(self) -> None:
        """Bind, detach, start the workers, then supervise until TERM (or ``exit``)."""
        config = self.config
        server.check_control_user(config)
        server.log_to_stderr()
        self.tls = server_context(config)
        self.addresses = server.resolve_servers(config)
        listeners = self._bind_group()
        self.workers = [Worker(index, sock) for index, sock in enumerate(listeners)]
        if config.control is not None:
            self.control = open_listener(config.control, "control port")
        self.state = State(
            config,
            Selector.from_config(config, self.addresses),
            clock=time.monotonic,
            open_log=self._no_sink,
            started=time.time(),
        )
        self.state.listen_description = describe(listeners[0], config.listen)
        if self.control is not None and config.control is not None:
            self.state.control_description = describe(self.control, config.control)
        if config.metrics is not None:
            collector = _MergedCollector(self.state, self.lock)
            self.metrics = MetricsServer(config.metrics, new_registry([collector]))
            self.metrics.bind()
        account = process.lookup_user(config.user)
        self.loop_factory = server.pick_loop_factory()
        try:
            with process.start(foreground=config.foreground) as startup:
                self.startup = startup
                process.confine(config.chroot, account)
                self.controller = Controller(
                    self.state, request_exit=self._stop, write_webstats=self._write_webstats
                )
                self._run_start_commands()
                with process.pid_file(config.pidfile, log.warning):
                    try:
                        self._start_workers()
                        if self.metrics is not None:
                            self.metrics.serve()
                        startup.ready()
                        self._supervise()
                    finally:
                        self._end_workers()
        finally:
            if self.metrics is not None:
                self.metrics.close()

    @staticmethod
    def _no_sink(target: LogTarget) -> _NoSink:
        return _NoSink()

    def _bind_group(self) -> list[socket.socket]:
        """The SO_REUSEPORT group, in the order that steering numbers it."""
        config = self.config
        spec = config.listen
        group: list[socket.socket] = []
        try:
            for _ in range(config.workers):
                sock = open_listener(
                    spec, "listen address", udp=config.udp, backlog=config.backlog, reuse_port=True
                )
                group.append(sock)
                spec = dataclasses.replace(spec, port=sock.getsockname()[1])  # port 0: the same
            steer_by_client(group[0], config.workers)  # until -F and -o are read
        except PentoolsError:
            for sock in group:
                sock.close()
            raise
        return group

    def _run_start_commands(self) -> None:
        """-F and -o on the supervisor's State, as each worker runs them on its own."""
        if self.config.cfgfile:
            self._run_lines(server.read_commands(self.config.cfgfile), self.config.cfgfile)
        self._run_lines(list(self.config.commands), "-o")
        self._steer()

    def _run_lines(self, lines: list[str], source: str) -> None:
        """Command lines of -F or -o on the supervisor's State; a `listen ADDRESS`
        among them is refused before any is run, as from penctl."""
        for line in lines:
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue  # a quoting error: the controller reports it with its line
            try:
                _refuse_moving_the_listener(words)
            except CommandError as exc:
                raise CommandError(f"{source}: {exc}") from None
        self.controller.run_lines(lines, source)

    def _steer(self) -> None:
        """Steer clients to workers while a choice depends on the client, else spread them."""
        if self.stopping:
            return
        state = self.state
        policy = state.selector.policy
        by_client = needs_steering(
            roundrobin=policy.roundrobin,
            hash_=policy.hash,
            conn_max_per_client=state.settings.conn_max_per_client,
        )
        if by_client != self.by_client:
            attach = steer_by_client if by_client else spread_connections
            attach(self.workers[0].listener, self.config.workers)
            self.by_client = by_client

    def _start_workers(self) -> None:
        """Fork every worker and wait until each listens (StartupError if one cannot)."""
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._signalled)
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno())
        for signum in _SIGNALS:
            signal.signal(signum, lambda *_: None)  # the wake-up socket tells the loop
        for worker in self.workers:
            self._spawn(worker, self.config)
        while not all(worker.ready for worker in self.workers):
            self._turn(None)
            for worker in self.workers:
                if worker.pid == 0 and not worker.ready:
                    reason = worker.error or f"worker {worker.index} died during start-up"
                    raise StartupError(reason)
            if self.stopping:
                raise StartupError("stopped during start-up")
        if self.control is not None:
            self.selector.register(self.control, selectors.EVENT_READ, self._control_ready)
        self.supervising = True

    def _spawn(self, worker: Worker, config: PenConfig) -> None:
        """Fork `worker`'s process; it serves its socket until TERM or the supervisor goes."""
        ours, theirs = link_pair()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            ours.close()
            self._become_worker(worker, config, theirs)
        theirs.close()
        worker.pid, worker.link, worker.decoder = pid, ours, Decoder()
        worker.ready, worker.error, worker.restart_at = False, "", 0.0
        worker.started = time.monotonic()
        self.selector.register(ours, selectors.EVENT_READ, lambda: self._from_worker(worker))

    def _become_worker(self, worker: Worker, config: PenConfig, link: socket.socket) -> None:
        """In the forked child: drop the supervisor's parts, serve, and exit."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in _SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            self.startup.close_in_child()
            self.selector.close()
            for sock in self._supervisor_sockets(worker):
                sock.close()
            with asyncio.Runner(loop_factory=self.loop_factory) as runner:
                runner.run(
                    server.serve(
                        config,
                        self.addresses,
                        worker.listener,
                        None,
                        self.tls,
                        PenCollector(),
                        lambda: send(link, {"op": "ready"}),
                        link=link,
                    )
                )
            status = 0
        except BaseException as exc:  # told to the supervisor, then exit
            with contextlib.suppress(OSError):
                send(link, {"op": "error", "text": process.error_text(exc)})
        finally:
            logging.shutdown()
            os._exit(status)

    def _supervisor_sockets(self, worker: Worker) -> Iterable[socket.socket]:
        """What a new worker closes: every socket but its own listener."""
        yield self._wake_r
        yield self._wake_w
        if self.control is not None:
            yield self.control
        if self.metrics is not None:
            yield from self.metrics.sockets()
        for other in self.workers:
            if other is not worker:
                yield other.listener
            if other.link is not None:
                yield other.link

    # -- the loop ----------------------------------------------------------------------

    def _supervise(self) -> None:
        """Until TERM: answer penctl, pass messages on, start dead workers again."""
        next_refresh = time.monotonic() + _METRICS_REFRESH
        while not self.stopping or any(worker.pid for worker in self.workers):
            now = time.monotonic()
            timeout = 1.0
            for worker in self.workers:
                if worker.restart_at:
                    timeout = min(timeout, max(0.0, worker.restart_at - now))
            self._turn(timeout)
            now = time.monotonic()
            if self.stopping:
                if now > self.stop_deadline:
                    self._signal_workers(signal.SIGKILL)
                continue
            for worker in self.workers:
                if worker.restart_at and now >= worker.restart_at:
                    self._restart(worker)
            if self.metrics is not None and now >= next_refresh:
                self.refresh()
                next_refresh = now + _METRICS_REFRESH

    def _turn(self, timeout: float | None) -> None:
        for key, _ in self.selector.select(timeout):
            key.data()

    def _signalled(self) -> None:
        try:
            signals = self._wake_r.recv(256)
        except BlockingIOError:
            return
        for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._stop()
            elif signum == signal.SIGHUP:
                self._reload()
            elif signum == signal.SIGUSR1:
                self._write_webstats()
            elif signum == signal.SIGCHLD:
                self._reap()

    def _stop(self) -> None:
        """TERM: stop listening, let every worker drain, then exit."""
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.config.drain_seconds + _EXIT_GRACE
        for worker in self.workers:
            worker.listener.close()  # the workers' copies go on until each stops
            worker.restart_at = 0.0
        if self.control is not None:
            self.selector.unregister(self.control)
            self.control.close()
            self.control = None
        self._signal_workers(signal.SIGTERM)

    def _reload(self) -> None:
        """HUP: every worker reopens its log and rereads -F; so does the supervisor's State."""
        self._signal_workers(signal.SIGHUP)
        if self.config.cfgfile:
            try:
                self._run_lines(server.read_commands(self.config.cfgfile), self.config.cfgfile)
                self._steer()
            except PentoolsError as exc:
                log.error("HUP: %s", exc)

    def _write_webstats(self) -> None:
        self.refresh()
        server.report_status(self.controller)

    def _signal_workers(self, signum: int) -> None:
        for worker in self.workers:
            if worker.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def _reap(self) -> None:
        """SIGCHLD: note each worker that ended; start it again unless pen is stopping."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is None:
                continue
            worker.pid = 0
            self._read_rest(worker)  # its last word, an error at start-up, may wait there
            self._drop_link(worker)
            if self.stopping or not self.supervising:
                continue  # during start-up a dead worker fails the start
            how = f"signal {-os.waitstatus_to_exitcode(status)}"
            if os.WIFEXITED(status):
                how = f"exit status {os.WEXITSTATUS(status)}"
            log.error("worker %d (pid %d) ended with %s: starting it again", worker.index, pid, how)
            worker.restart_at = max(time.monotonic(), worker.started + _RESTART_DELAY)

    def _restart(self, worker: Worker) -> None:
        """Start a dead worker again, with the settings penctl gave the others since."""
        self.own.worker_restarts += 1
        running = self.controller.configuration().splitlines()
        config = dataclasses.replace(self.config, commands=(*self.config.commands, *running))
        self._spawn(worker, config)

    def _end_workers(self) -> None:
        """Leaving (start-up failed, or after TERM): no worker outlives the supervisor."""
        self._signal_workers(signal.SIGTERM)
        deadline = time.monotonic() + self.config.drain_seconds + _EXIT_GRACE
        for worker in self.workers:
            while worker.pid:
                try:
                    pid, _ = os.waitpid(worker.pid, os.WNOHANG)
                except ChildProcessError:
                    pid = worker.pid
                if pid:
                    worker.pid = 0
                elif time.monotonic() > deadline:
                    os.kill(worker.pid, signal.SIGKILL)
                else:
                    time.sleep(0.05)
        signal.set_wakeup_fd(-1)

    # -- the links to the workers ------------------------------------------------------

    def _from_worker(self, worker: Worker) -> None:
        link = worker.link
        if link is None:
            return
        try:
            data = link.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop_link(worker)
            return
        for message in worker.decoder.feed(data):
            self._dispatch(worker, message)

    def _read_rest(self, worker: Worker) -> None:
        """What an ended worker sent before it ended, not read yet."""
        while worker.link is not None:
            try:
                data = worker.link.recv(65536, socket.MSG_DONTWAIT)
            except OSError:
                return
            if not data:
                return
            for message in worker.decoder.feed(data):
                self._dispatch(worker, message)

    def _dispatch(self, worker: Worker, message: Message) -> None:
        op = message.get("op")
        if op == "reply":
            self._replies[(message.get("id", -1), worker.index)] = message
        elif op == "ready":
            worker.ready = True
        elif op == "error":
            worker.error = str(message.get("text", ""))
            log.error("worker %d: %s", worker.index, worker.error)
        elif op == "blacklist":
            for other in self.workers:
                if other is not worker:
                    self._tell(other, message)

    def _tell(self, worker: Worker, message: Message) -> bool:
        """Send to a running worker; one whose link is stuck or gone is killed (and restarted)."""
        if worker.link is None or not worker.ready:
            return False
        try:
            send(worker.link, message)
        except OSError:
            log.error("worker %d does not listen to its supervisor: killed", worker.index)
            self._drop_link(worker)
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            return False
        return True

    def _drop_link(self, worker: Worker) -> None:
        if worker.link is not None:
            self.selector.unregister(worker.link)
            worker.link.close()
            worker.link = None

    def ask(self, message: Message) -> list[Message | None]:
        """Every worker's reply to `message`, by worker (None: no reply in time)."""
        self._next_id += 1
        request = {**message, "id": self._next_id}
        self._replies.clear()
        waiting = {w.index: w for w in self.workers if self._tell(w, request)}
        deadline = time.monotonic() + _ASK_TIMEOUT
        while waiting:
            remaining = deadline - time.monotonic()
            links = {w.link: w for w in waiting.values() if w.link is not None}
            if remaining <= 0 or not links:
                break
            ready = selectors.DefaultSelector()
            with ready:
                for link in links:
                    ready.register(link, selectors.EVENT_READ)
                for key, _ in ready.select(remaining):
                    self._from_worker(links[key.fileobj])  # type: ignore[index]
            for index in list(waiting):
                if (self._next_id, index) in self._replies:
                    del waiting[index]
        return [self._replies.get((self._next_id, w.index)) for w in self.workers]

    def refresh(self) -> None:
        """Add the workers' snapshots into the supervisor's State."""
        replies = self.ask({"op": "snapshot"})
        snapshots = [r.get("snapshot") if r else None for r in replies]
        with self.lock:
            merge(self.state, snapshots, self._close_remote, self.own)

    def _close_remote(self, worker: int, number: int) -> None:
        self._tell(self.workers[worker], {"op": "command", "line": f"close {number}"})

    # -- the control port --------------------------------------------------------------

    def _control_ready(self) -> None:
        """One penctl connection: its line, the reply, closed (the original's protocol)."""
        assert self.control is not None
        try:
            conn, peer = self.control.accept()
        except OSError:
            return
        with conn:
            access = self.state.selector.access
            if (
                access.active
                and isinstance(peer, tuple)
                and not access.permits_control(client_of(peer))
            ):
                self.own.control_denied += 1
                return
            conn.settimeout(1.0)  # penctl sends its line at once; nobody holds pen up long
            with contextlib.suppress(OSError):
                conn.sendall(answer_line(self.execute, _read_line(conn)).encode("utf-8"))

    def execute(self, line: str) -> str:
        """A penctl command for the whole pen (raises PentoolsError, as `Controller`)."""
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = []
        if not words or words[0] in _SUPERVISOR_ONLY:
            return self.controller.execute(line)
        name = words[1] if words[0] == "no" and len(words) > 1 else words[0]
        if name == "listen":
            _refuse_moving_the_listener(words)
            return self.controller.execute(line)
        if name in _MERGED:
            self.refresh()
            with self.lock:
                return self.controller.execute(line)
        replies = [r for r in self.ask({"op": "command", "line": line}) if r is not None]
        if not replies:
            raise CommandError("no worker answered")
        for reply in replies:
            if "error" in reply:
                raise CommandError(str(reply["error"]))
        with self.lock:
            try:
                self.controller.execute(line)  # the whole pen's settings, for write and status
            except PentoolsError as exc:
                log.error("supervisor: %s: %s", line, exc)
        try:
            self._steer()
        except PentoolsError as exc:
            log.error("%s", exc)
        return str(replies[0].get("reply", ""))


def _read_line(conn: socket.socket) -> bytes | None:
    """A control connection's command line (None: longer than the limit)."""
    buffer = b""
    while b"\n" not in buffer:
        if len(buffer) > _CONTROL_LINE_LIMIT:
            return None
        try:
            chunk = conn.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        buffer += chunk
    return buffer.split(b"\n", 1)[0]


def _refuse_moving_the_listener(words: list[str]) -> None:
    """`listen ADDRESS` cannot move N sockets of one SO_REUSEPORT group: refused."""
    if words[:1] == ["listen"] and len(words) > 1:
        raise CommandError("listen ADDRESS: not with --workers (each has its socket)")
