"""``webstats live``: follow logs like ``tail -F`` and serve the report as it grows.

The logs are counted into one `State`, the same as a batch report's, by
`sources.count_files` resuming at its cursors, so appends, rename rotation
and truncation are handled by the one piece of code that knows files again.
What ``tail -F`` adds: a followed file is kept open, so that when its name
moves to a new file, the lines still written to the old one before the
writer reopened are read through the open descriptor, to its end.

The server (asyncio, stdlib) answers three paths:

* ``/``: the report, `render.render_html` with the live script: the page
  opens ``/events`` and swaps in each new report, keeping its panels and sorting;
* ``/events``: Server-Sent Events, one event per new report (at most one a
  `LiveConfig.refresh`), each the inside of the page (`render.render_report`);
* ``/stats.json``: the JSON of ``webstats report --json``.

Memory stays bounded over days of streaming: the state holds counts per
distinct key and per hour, never lines, and each rebuild compacts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass

from pentools.core.addresses import format_host_port
from pentools.core.errors import ListenError, PentoolsError
from pentools.webstats.aggregate import Report
from pentools.webstats.render import page_csp, panel, render_html, render_json, render_report
from pentools.webstats.sources import count_files
from pentools.webstats.state import State
from pentools.webstats.text import esc

log = logging.getLogger("pentools.webstats")

#: Largest request head we read; anything else is refused.
MAX_HEAD = 16 * 1024
#: Event-stream clients at once; more are refused (each holds a copy of a report).
MAX_STREAMS = 64
#: Seconds without news after which a comment keeps proxies from closing a stream.
KEEPALIVE = 15.0


@dataclass(frozen=True)
class LiveConfig:
    """What ``webstats live`` was asked to do."""

    logs: tuple[str, ...]
    host: str
    port: int
    log_format: str | None
    static_extensions: tuple[str, ...]
    top: int
    title: str
    pen_control: tuple[str, int] | None = None
    interval: float = 0.2
    refresh: float = 0.8  # with `interval`, pages hear of new lines within a second


class Follower:
    """The followed files, counted into one `State` as they grow."""

    def __init__(self, paths: tuple[str, ...], state: State) -> None:
        self.paths = paths
        self.state = state
        self._open: dict[str, int] = {}  # path -> descriptor of the file it named

    def poll(self) -> bool:
        """Count what was written since the last poll; whether any line was."""
        before = (self.state.lines, len(self.state.files))
        for path in self.paths:
            self._follow(path)
        present = [path for path in self.paths if path in self._open]
        if present:
            try:
                count_files(present, self.state, resume=True)
            except PentoolsError as exc:  # a file renamed or removed under our feet
                log.warning("%s", exc)
        return (self.state.lines, len(self.state.files)) != before

    def _follow(self, path: str) -> None:
        """Keep `path` open; when it names another file now, finish the old one first."""
        try:
            named = os.stat(path)
        except FileNotFoundError:
            named = None
        fd = self._open.get(path)
        if fd is not None:
            held = os.fstat(fd)
            if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                return
            through = f"/proc/self/fd/{fd}"
            try:
                count_files([through], self.state, resume=True, names={through: path})
            except PentoolsError as exc:
                log.warning("%s", exc)
            os.close(fd)
            del self._open[path]
            log.info("%s was rotated: following the new file", path)
        if named is not None:
            with contextlib.suppress(OSError):
                self._open[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


@dataclass(frozen=True)
class Pages:
    """One rendering of the report: the page, its inside (for events) and the JSON."""

    version: int
    page: bytes
    inside: bytes
    json: bytes


class LiveServer:
    """Follows the logs, rebuilds the report when they grow, serves it."""

    def __init__(self, config: LiveConfig) -> None:
        self.config = config
        self.follower = Follower(config.logs, State.empty(config.log_format))
        self.pages = Pages(0, b"", b"", b"")
        self._news = asyncio.Event()
        self._streams = 0
        self._closing = False
        self._report: Report | None = None

    # -- counting and drawing ------------------------------------------------

    def step(self, rebuild: bool) -> bool:
        """Poll the files; redraw if they grew (or `rebuild`): whether pages changed."""
        grew = self.follower.poll()
        if not (grew or rebuild or self._report is None):
            return False
        if grew or self._report is None:
            self._report = Report.build(
                self.follower.state, self.config.top, self.config.static_extensions
            )
        panels = [self._pen_panel()] if self.config.pen_control else []
        version = self.pages.version + 1
        self.pages = Pages(
            version,
            render_html(self._report, self.config.title, live="events", panels=panels).encode(),
            _event(version, render_report(self._report, panels)),
            render_json(self._report).encode(),
        )
        return True

    def _pen_panel(self) -> str:
        from pentools.webstats.penstatus import fetch_from_control, parse_status, render_tables

        assert self.config.pen_control is not None
        host, port = self.config.pen_control
        where = format_host_port(host, port)
        try:
            status = parse_status(fetch_from_control(host, port, timeout=2.0))
            content = "".join(render_tables(status, ("servers",)))
        except PentoolsError as exc:
            content = f'<p class="muted">{esc(exc)}</p>'
        return panel("pen", "pen: servers", content, f"control port {where}")

    async def follow(self, stop: asyncio.Event) -> None:
        """Poll every `interval`; publish a new rendering at most every `refresh`."""
        last = -float("inf")
        while not stop.is_set():
            started = time.monotonic()
            if started - last >= self.config.refresh:
                # pen's panel is news even when the logs are quiet
                changed = await asyncio.to_thread(self.step, bool(self.config.pen_control))
                if changed:
                    last = started  # a rendering per refresh, however long one takes
                    self._news.set()
                    self._news = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.interval)

    # -- serving ---------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            writer.close()
            return
        path = target.split("?", 1)[0]
        try:
            if method not in ("GET", "HEAD"):
                await _respond(writer, "405 Method Not Allowed", "text/plain", b"GET only\n")
            elif path == "/":
                await _respond(
                    writer, "200 OK", "text/html; charset=utf-8", self.pages.page, method
                )
            elif path == "/stats.json":
                await _respond(writer, "200 OK", "application/json", self.pages.json, method)
            elif path == "/events" and method == "GET":
                await self._stream(writer)
            else:
                await _respond(writer, "404 Not Found", "text/plain", b"not found\n")
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        """Send each new rendering as an event until the client goes away."""
        if self._streams >= MAX_STREAMS:
            await _respond(writer, "503 Service Unavailable", "text/plain", b"too many streams\n")
            return
        self._streams += 1
        try:
            writer.write(_head("200 OK", "text/event-stream", None) + b"retry: 2000\n\n")
            sent = 0
            while not self._closing:
                if self.pages.version != sent:
                    sent = self.pages.version
                    writer.write(self.pages.inside)
                await asyncio.wait_for(writer.drain(), KEEPALIVE)
                news = self._news
                try:
                    await asyncio.wait_for(news.wait(), KEEPALIVE)
                except TimeoutError:
                    writer.write(b": keepalive\n\n")
        finally:
            self._streams -= 1

    def close(self) -> None:
        """End the event streams (the server waits for its connections) and the follower."""
        self._closing = True
        self._news.set()
        self.follower.close()


def _event(version: int, text: str) -> bytes:
    """One Server-Sent Event carrying `text` (each line a ``data:`` line)."""
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"id: {version}\n{lines}\n".encode()


def _head(status: str, content_type: str, length: int | None) -> bytes:
    fields = [
        f"HTTP/1.1 {status}",
        f"Content-Type: {content_type}",
        "Cache-Control: no-store",
        f"Content-Security-Policy: {page_csp(live=True)}; frame-ancestors 'none'",
        "X-Content-Type-Options: nosniff",
        "Referrer-Policy: no-referrer",
        "Connection: close",
    ]
    if length is not None:
        fields.append(f"Content-Length: {length}")
    return ("\r\n".join(fields) + "\r\n\r\n").encode()


async def _respond(
    writer: asyncio.StreamWriter, status: str, content_type: str, body: bytes, method: str = "GET"
) -> None:
    writer.write(_head(status, content_type, len(body)) + (body if method != "HEAD" else b""))
    await asyncio.wait_for(writer.drain(), 30)


async def serve(config: LiveConfig) -> None:
    """Run until SIGTERM or SIGINT: follow the logs and serve the report."""
    missing = [path for path in config.logs if not os.path.exists(path)]
    for path in missing:
        log.warning("%s does not exist (yet): waiting for it", path)
    live = LiveServer(config)
    live.step(rebuild=True)  # a first page before the first client
    where = format_host_port(config.host, config.port)
    try:
        server = await asyncio.start_server(live.handle, config.host, config.port, limit=MAX_HEAD)
    except OSError as exc:
        raise ListenError(where, exc.strerror or str(exc)) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "serving %s on http://%s/",
        ", ".join(config.logs),
        format_host_port(config.host, config.port),
    )
    async with server:
        try:
            await live.follow(stop)
        finally:
            live.close()
            server.close()
