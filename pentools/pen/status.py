"""The HTML status page (``status``, ``-w`` on USR1): the original's three tables.

The layout is the C pen's, so scripts that scrape it keep working; every
value is HTML-escaped (a server name or a path is user input).
"""

from __future__ import annotations

import time
from html import escape

from pentools.pen.state import State

_HEAD_CELL = '<td bgcolor="#80f080">{}</td>\n'
_TABLE = '<table bgcolor="#c0c0c0">\n'


def _row(values: list[object], cell: str = "<td>{}</td>\n") -> str:
    return "<tr>\n" + "".join(cell.format(escape(str(v))) for v in values) + "</tr>\n"


def _heading(names: list[str]) -> str:
    return _row(list(names), _HEAD_CELL)


def render_status(state: State) -> str:
    """The whole page, as the original lays it out."""
    selector = state.selector
    now = state.clock()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    parts = [
        "<html>\n<head>\n<title>Pen status page</title>\n</head>\n",
        '<body bgcolor="#ffffff"><h1>Pen status page</h1>\n',
        f"Time {stamp}, {len(selector.servers)} servers, {len(state.table)} current<p>\n",
        _TABLE,
        _heading(
            [
                "server",
                "address",
                "status",
                "port",
                "connections",
                "max soft",
                "max hard",
                "sent",
                "received",
                "weight",
                "prio",
            ]
        ),
    ]
    for server in selector.servers:
        # status: seconds the server stays blacklisted (0 = in service)
        status = max(0, int(server.blacklisted_until - now + 0.999))
        parts.append(
            _row(
                [
                    server.index,
                    server.address,
                    status,
                    server.port,
                    server.conn,
                    server.max_conn,
                    server.hard,
                    server.sent,
                    server.received,
                    server.weight,
                    server.prio,
                ]
            )
        )
    parts.append("</table>\n")
    parts.append(f"<h2>Active clients</h2>Max number of clients: {selector.clients_max}<p>{_TABLE}")
    parts.append(
        _heading(["client", "address", "age(secs)", "last server", "connects", "sent", "received"])
    )
    client_index = {}
    for index, client in enumerate(selector.clients.values()):
        client_index[client.address] = index
        parts.append(
            _row(
                [
                    index,
                    client.address,
                    int(now - client.last_seen),
                    client.server,
                    client.connects,
                    client.sent,
                    client.received,
                ]
            )
        )
    parts.append("</table>\n")
    parts.append(
        f"<h2>Active connections</h2>Number of connections: {state.settings.conn_max} max, "
        f"{len(state.table)} used, {len(state.table)} last<p>{_TABLE}"
    )
    parts.append(
        _heading(
            [
                "connection",
                "downfd",
                "upfd",
                "pending data down",
                "pending data up",
                "client",
                "server",
            ]
        )
    )
    for index, connection in sorted(state.connections.items()):
        down_fd, up_fd, to_client, to_server = connection.status()
        parts.append(
            _row(
                [
                    index,
                    down_fd,
                    up_fd,
                    to_client,
                    to_server,
                    client_index.get(connection.client, -1),
                    connection.server_index,
                ]
            )
        )
    parts.append("</table>\n")
    parts.append(_access_lists(state))
    if state.workers:
        parts.append(_workers(state))
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def _access_lists(state: State) -> str:
    """Our addition, after the original's tables (scrapers find those by their headers)."""
    access = state.selector.access
    counters = state.counters
    parts = [
        f"<h2>Access lists</h2>Clients checked against list {access.client}, "
        f"control port against list {access.control}; denied: {counters.acl_denied} clients, "
        f"{counters.control_denied} control connections<p>\n{_TABLE}",
        _heading(["acl", "entry", "action", "source"]),
    ]
    parts.extend(_row(list(entry)) for entry in access.describe())
    parts.append("</table>\n")
    return "".join(parts)


def _workers(state: State) -> str:
    """``--workers``: which process serves what, and how many were restarted."""
    parts = [
        f"<h2>Workers</h2>{len(state.workers)} workers, "
        f"{state.counters.worker_restarts} restarted<p>\n{_TABLE}",
        _heading(["worker", "pid", "connections", "clients"]),
    ]
    parts.extend(_row([row.index, row.pid, row.connections, row.clients]) for row in state.workers)
    parts.append("</table>\n")
    return "".join(parts)
