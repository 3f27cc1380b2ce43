"""penlogd's counters for Prometheus (``--metrics``).

`PenlogdCollector` reads the join's counters (the same `JoinCounters` that
USR1 and ``--stats-json`` write) and the sockets' receive buffers at scrape
time; `PenlogdMetrics` holds its registry and the ``/metrics`` endpoint.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from pentools.core.addresses import HostPort, format_host_port
from pentools.core.metrics import (
    MetricsServer,
    new_registry,
    receive_buffer,
)
from pentools.penlogd.join import LiveJoin

#: The results a written line can have, in the order of the report.
LINE_RESULTS = ("exact", "matched", "ambiguous", "unmatched", "malformed")


def join_accounting(join: LiveJoin) -> dict[str, int]:
    """The join's numbers, read in this one place: the join's report (lines by
    result, `LINE_RESULTS`, and records), then penlogd's own counters.

    Read from the metrics thread, so only plain numbers are read, nothing the
    event loop's thread may be changing under it is walked.
    """
    counters = join.counters
    report = counters.report
    return {
        **{result: getattr(report, result) for result in LINE_RESULTS},
        "records": report.records,
        "records_expired": report.records_expired,
        "records_refused": counters.refused,
        "datagrams": counters.received,
        "datagrams_dropped": counters.dropped,
        "waiting": join.waiting,
    }


class PenlogdCollector:
    """penlogd's metrics, read from the join and the sockets when scraped."""

    def __init__(self, join: LiveJoin, sockets: list[socket.socket]) -> None:
        self.join = join
        self.sockets = sockets

    def collect(self) -> Iterator[Metric]:
        numbers = join_accounting(self.join)
        yield CounterMetricFamily(
            "penlogd_datagrams",
            "Datagrams received: balancer records, web lines, syslog messages.",
            value=numbers["datagrams"],
        )
        lines = CounterMetricFamily(
            "penlogd_lines", "Web lines written, by how the client was found.", labels=["result"]
        )
        for result in LINE_RESULTS:
            lines.add_metric([result], numbers[result])
        yield lines
        yield GaugeMetricFamily(
            "penlogd_lines_waiting",
            "Lines waiting for the record of their request.",
            value=numbers["waiting"],
        )
        yield CounterMetricFamily(
            "penlogd_records", "Balancer records accepted.", value=numbers["records"]
        )
        yield CounterMetricFamily(
            "penlogd_records_expired",
            "Balancer records no line claimed within --window.",
            value=numbers["records_expired"],
        )
        discarded = CounterMetricFamily(
            "penlogd_datagrams_discarded",
            "Datagrams not written: records from a non --balancer address, "
            "bad records and empty datagrams.",
            labels=["reason"],
        )
        discarded.add_metric(["refused"], numbers["records_refused"])
        discarded.add_metric(["malformed"], numbers["datagrams_dropped"])
        yield discarded
        yield from self._receive_buffers()

    def _receive_buffers(self) -> Iterable[Metric]:
        queued = GaugeMetricFamily(
            "penlogd_receive_queue_bytes",
            "Memory the datagrams waiting in the socket take (as /proc/net/udp rx_queue).",
            labels=["address"],
        )
        size = GaugeMetricFamily(
            "penlogd_receive_buffer_bytes",
            "Receive buffer the kernel granted; datagrams are dropped while the queue exceeds it.",
            labels=["address"],
        )
        drops = CounterMetricFamily(
            "penlogd_receive_drops",
            "Datagrams the kernel dropped for this socket (/proc/net/udp drops).",
            labels=["address"],
        )
        for sock in self.sockets:
            buffer = receive_buffer(sock)
            if buffer is None:
                continue
            host, port = sock.getsockname()[:2]
            address = [format_host_port(host, port)]
            queued.add_metric(address, buffer.queued)
            size.add_metric(address, buffer.size)
            drops.add_metric(address, buffer.drops)
        yield from (queued, size, drops)


class PenlogdMetrics:
    """The registry of penlogd's counters and its ``/metrics`` endpoint."""

    def __init__(
        self, join: LiveJoin, sockets: list[socket.socket], address: HostPort | None
    ) -> None:
        self.registry = new_registry([PenlogdCollector(join, sockets)])
        self.server = None if address is None else MetricsServer(address, self.registry)

    def bind(self) -> None:
        if self.server is not None:
            self.server.bind()

    def serve(self) -> None:
        if self.server is not None:
            self.server.serve()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
