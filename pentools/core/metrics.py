"""Prometheus text at ``/metrics`` for every daemon, through prometheus-client.

How a daemon uses it::

    address = parse_metrics_address("9100")          # --metrics [HOST:]PORT
    registry = new_registry([MyCollector(state)])
    server = MetricsServer(address, registry)
    server.bind()                                     # before detaching: errors on the terminal
    ...                                               # fork, chroot, drop privileges
    server.serve()                                    # a thread answers the scrapes
    ...
    server.close()

A collector is any object with a ``collect()`` method yielding prometheus-client
metric families (`CounterMetricFamily`, `GaugeMetricFamily`).  It reads the
daemon's own counters *when scraped*: the hot path keeps incrementing plain
ints and never touches a prometheus object.  ``collect()`` runs in the
server's thread, so it only reads (ints and small objects are read whole
under the GIL), never changes the daemon's state.

Each daemon builds its own registry (`new_registry`): nothing goes into the process-wide
default registry, so two daemons (or tests) in one process never see each
other's metrics, and no Python process or GC metrics are mixed in.
`counters_json` renders the same registry as JSON, for the daemons' USR1
reports and control ports: one set of numbers, two formats.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric

from pentools.core.addresses import (
    HostPort,
    address_family,
    format_host_port,
    parse_host_port,
    resolve_host,
)
from pentools.core.errors import ListenError

#: Where a bare ``--metrics PORT`` listens: loopback, never every interface.
DEFAULT_HOST = "127.0.0.1"

#: The one path served; anything else is 404, so a typo is not mistaken for data.
METRICS_PATH = "/metrics"


class Collector(Protocol):
    """What a daemon registers: metric families read from its state at scrape time."""

    def collect(self) -> Iterable[Metric]: ...


def parse_metrics_address(text: str) -> HostPort:
    """``--metrics [HOST:]PORT``: a bare port (or ``:PORT``) listens on loopback.

    ``[::1]:9100`` listens on IPv6 loopback; ``0.0.0.0:9100`` or ``[::]:9100``
    on every address, which the user has to ask for.
    """
    return parse_host_port(text, default_host=DEFAULT_HOST)


def new_registry(collectors: Iterable[Collector]) -> CollectorRegistry:
    """A private registry holding `collectors` (never the process-wide default)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    return registry


class _QuietHandler(WSGIRequestHandler):
    """No access line per scrape on stderr: a daemon's diagnostics are for problems."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _metrics_only(app: Callable[..., Any]) -> Callable[..., Any]:
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"not found: the metrics are at {METRICS_PATH}\n".encode()]
        return app(environ, start_response)

    return serve


class MetricsServer:
    """The ``/metrics`` endpoint of one daemon: bound early, served from a thread.

    Two phases because daemons detach by forking, which keeps sockets but not
    threads: `bind` reports a busy port while the terminal still shows it,
    `serve` starts the thread in the process that stays.
    """

    def __init__(self, address: HostPort, registry: CollectorRegistry) -> None:
        self.address = address
        self.registry = registry
        self._httpd: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> None:
        """Listen on the address; `ListenError` if it cannot be used."""
        host = resolve_host(self.address.host)[0]

        class Server(ThreadingWSGIServer):
            address_family = address_family(host)

        app = _metrics_only(make_wsgi_app(self.registry))
        try:
            self._httpd = make_server(
                host, self.address.port, app, Server, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ListenError(str(self.address), exc.strerror or str(exc)) from None

    @property
    def listening(self) -> str:
        """``host:port`` actually bound (the port chosen by the kernel for port 0)."""
        assert self._httpd is not None, "bind() first"
        host, port = self._httpd.socket.getsockname()[:2]
        return format_host_port(host, port)

    def sockets(self) -> list[socket.socket]:
        """The listening socket, for a forked child to close (it serves no scrapes)."""
        return [] if self._httpd is None else [self._httpd.socket]

    def serve(self) -> None:
        """Answer scrapes from a daemon thread until `close`."""
        assert self._httpd is not None, "bind() first"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._httpd is None:
            return
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self._httpd = None


def counters_json(registry: CollectorRegistry) -> dict[str, Any]:
    """The registry's samples as one JSON-ready object, the names as in ``/metrics``.

    A sample without labels is a number; a labelled one nests by its label
    values in label order: ``{"penlogd_lines_total": {"exact": 3, ...}}``.
    A value that is not finite (a gauge's NaN) is kept as a float, which
    `json.dumps` writes as ``NaN``.
    """
    result: dict[str, Any] = {}
    for family in registry.collect():
        for sample in family.samples:
            value: int | float = sample.value
            if math.isfinite(value) and value == int(value):
                value = int(value)  # counters are whole: 3, not 3.0
            if not sample.labels:
                result[sample.name] = value
                continue
            node = result.setdefault(sample.name, {})
            *outer, last = sample.labels.values()
            for label in outer:
                node = node.setdefault(label, {})
            node[last] = value
    return result


def counters_json_text(registry: CollectorRegistry) -> str:
    """`counters_json` as one line of JSON (keys sorted, for diffs and ``jq``)."""
    return json.dumps(counters_json(registry), sort_keys=True)


#: getsockopt(SO_MEMINFO) (Linux 4.6): the socket's memory counters, u32 each.
_SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
_MEMINFO = struct.Struct("9I")


@dataclass(frozen=True)
class ReceiveBuffer:
    """How full a socket's receive buffer is, and what the kernel dropped.

    `queued` is the memory the waiting datagrams take (with the kernel's
    overhead per datagram, as in /proc/net/udp's rx_queue), `size` what the
    kernel grants (the doubled SO_RCVBUF): datagrams are dropped while
    queued exceeds size, and `drops` counts them since the socket was made
    (/proc/net/udp's drops column, SO_RXQ_OVFL's counter).
    """

    queued: int
    size: int
    drops: int


def receive_buffer(sock: socket.socket) -> ReceiveBuffer | None:
    """The receive buffer of `sock`, read from the kernel; None where SO_MEMINFO is missing.

    One getsockopt: no /proc (which a chrooted daemon cannot see), and no
    cost on the receiving path as SO_RXQ_OVFL's per-datagram control data.
    """
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
    except OSError:
        return None
    rmem_alloc, rcvbuf, *_, drops = _MEMINFO.unpack(raw)
    return ReceiveBuffer(queued=rmem_alloc, size=rcvbuf, drops=drops)
