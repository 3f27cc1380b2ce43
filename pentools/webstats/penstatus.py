"""pen's status page: fetched from the control port or the ``-w`` file, parsed, re-rendered.

pen (the C original and ours, SPEC §5) answers the control command ``status``
with an HTML page, and writes the same page to its ``-w`` file on SIGUSR1:
a time line, then tables of servers, active clients and active connections.
We read the tables by their header row (so a column added or moved does not
break us) and render a clean page where every cell is escaped: client
addresses and server names are not ours to trust.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser

from pentools.core.addresses import format_host_port
from pentools.core.errors import PentoolsError
from pentools.webstats.render import CSP
from pentools.webstats.text import esc

#: The largest status page we accept (pen with 2048 clients writes ~200 KB).
MAX_PAGE = 16 * 1024 * 1024

#: Tables of the page by the first cell of their header row.
TABLES = {"server": "servers", "client": "clients", "connection": "connections"}


class PenStatusError(PentoolsError):
    """pen's status could not be fetched or read."""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def records(self) -> list[dict[str, str]]:
        return [dict(zip(self.headers, row, strict=False)) for row in self.rows]


@dataclass
class PenStatus:
    """What a status page says: its text lines and its tables by name."""

    lines: list[str]
    tables: dict[str, Table]


class _StatusParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._text: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("title", "h1", "h2", "style", "script"):
            self._skip += 1
        elif tag == "table":
            self._flush()
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag in ("p", "br"):
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("title", "h1", "h2", "style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag == "table":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif not self._skip:
            self._text.append(data)

    def _flush(self) -> None:
        line = " ".join("".join(self._text).split())
        if line:
            self.lines.append(line)
        self._text = []

    def close(self) -> None:
        super().close()
        self._flush()


def parse_status(page: str) -> PenStatus:
    """The text lines and the servers/clients/connections tables of a status page."""
    if "<table" not in page.lower():
        raise PenStatusError("the reply is not pen's status page (no table in it)")
    parser = _StatusParser()
    parser.feed(page)
    parser.close()
    tables: dict[str, Table] = {}
    for rows in parser.tables:
        if rows and rows[0]:
            name = TABLES.get(rows[0][0].lower(), rows[0][0].lower())
            tables[name] = Table(rows[0], rows[1:])
    if "servers" not in tables:
        raise PenStatusError("pen's status page has no server table")
    return PenStatus(parser.lines, tables)


def fetch_from_control(host: str, port: int, timeout: float = 5.0) -> str:
    """Send ``status`` to pen's control port; the reply is the rest of the stream."""
    where = format_host_port(host, port)
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"status\n")
            conn.shutdown(socket.SHUT_WR)
            chunks, size = [], 0
            while data := conn.recv(65536):
                chunks.append(data)
                size += len(data)
                if size > MAX_PAGE:
                    raise PenStatusError(f"control port {where} sent more than {MAX_PAGE} bytes")
    except OSError as exc:
        raise PenStatusError(f"control port {where}: {exc.strerror or exc}") from None
    return b"".join(chunks).decode("latin-1")


def fetch_from_webfile(pidfile: str, webfile: str, timeout: float = 5.0) -> str:
    """Signal pen (SIGUSR1 to the PID in `pidfile`) and read the `webfile` it rewrites."""
    try:
        with open(pidfile, encoding="ascii") as handle:
            pid = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        reason = getattr(exc, "strerror", None) or "no process id in it"
        raise PenStatusError(f"cannot read pid file {pidfile}: {reason}") from None
    if pid <= 1:
        raise PenStatusError(f"pid file {pidfile} holds no usable process id ({pid})")
    before = _stamp(webfile)
    try:
        os.kill(pid, signal.SIGUSR1)
    except OSError as exc:
        raise PenStatusError(f"cannot signal pen (pid {pid}): {exc.strerror}") from None
    deadline = time.monotonic() + timeout
    # pen writes the file from its main loop after the signal: wait for a new,
    # complete page (it is written in place, so a half-written one can be seen).
    while time.monotonic() < deadline:
        now = _stamp(webfile)
        if now is not None and now != before:
            try:
                with open(webfile, encoding="latin-1") as handle:
                    page = handle.read(MAX_PAGE + 1)
            except OSError:
                page = ""
            if "</html>" in page.lower():
                return page
        time.sleep(0.02)
    raise PenStatusError(f"pen (pid {pid}) did not rewrite {webfile} within {timeout:g} s")


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:0 .8em 2em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:.6em 0 .2em}h3{font-size:1.1em;margin:1.4em 0 .4em}
.scroll{overflow-x:auto}table{border-collapse:collapse;background:#fff;min-width:50%}
td,th{border-bottom:1px solid #eee;padding:.2em .5em;text-align:left;white-space:nowrap}
td.n{text-align:right}.down{color:#b00}.muted{color:#666;font-size:.85em}
"""

_HEADINGS = {
    "servers": "Servers",
    "clients": "Active clients",
    "connections": "Active connections",
}


def render_status(status: PenStatus, source: str, title: str = "pen status") -> str:
    """Our page for pen's status: the same tables, escaped, readable on a phone."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">from {esc(source)}, fetched '
        f"{esc(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}</p>",
    ]
    out += render_tables(status)
    out.append("</body></html>\n")
    return "\n".join(out)


def render_tables(status: PenStatus, names: tuple[str, ...] = ()) -> list[str]:
    """The text lines and tables of pen's status (those in `names`, or all), escaped."""
    out = [f"<p>{esc(line)}</p>" for line in status.lines]
    for name, table in status.tables.items():
        if names and name not in names:
            continue
        heading = _HEADINGS.get(name, name.capitalize())
        out.append(f"<h3>{esc(heading)} ({len(table.rows)})</h3>")
        head = "".join(f"<th>{esc(h)}</th>" for h in table.headers)
        rows = []
        for row in table.rows:
            down = name == "servers" and _server_down(table.headers, row)
            cells = "".join(
                f'<td class="n">{esc(c)}</td>'
                if c.replace(".", "").isdigit()
                else f"<td>{esc(c)}</td>"
                for c in row
            )
            rows.append(f'<tr class="down">{cells}</tr>' if down else f"<tr>{cells}</tr>")
        if not rows:
            rows.append(f'<tr><td colspan="{len(table.headers)}" class="muted">none</td></tr>')
        out.append(f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>')
    return out


def _server_down(headers: list[str], row: list[str]) -> bool:
    """pen's server status is 0 when the server is in use (else it is blacklisted)."""
    if "status" not in headers:
        return False
    index = headers.index("status")
    return index < len(row) and row[index] not in ("0", "ok", "up", "")
