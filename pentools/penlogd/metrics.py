"""penlogd's counters for Prometheus (``--metrics``) and as JSON (USR1, ``--stats-file``).

`PenlogdCollector` reads the join's counters and the sockets' receive
buffers at scrape time; `PenlogdMetrics` holds the one registry both the
``/metrics`` endpoint and the JSON report are drawn from.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from pentools.core.addresses import HostPort, format_host_port
from pentools.core.errors import OutputFileError
from pentools.core.metrics import (
    MetricsServer,
    counters_json_text,
    new_registry,
    receive_buffer,
)
from pentools.core.output import atomic_output
from pentools.penlogd.join import LiveJoin

log = logging.getLogger("penlogd")

#: The results a written line can have, in the order of the report.
LINE_RESULTS = ("exact", "matched", "ambiguous", "unmatched", "malformed")


def join_accounting(join: LiveJoin) -> dict[str, int]:
    """The join's numbers, read in this one place for every report.

    Lines by result (`LINE_RESULTS`), then records accepted, expired unused
    and refused, datagrams received, dropped as malformed, lines waiting.  A
    malformed line is written without reaching the engine, so it is the
    difference of the lines written and the lines the engine saw.
    """
    counters, stats = join.counters, join.engine.stats
    malformed_lines = max(0, counters.lines - stats.lines)
    return {
        "exact": stats.exact,
        "matched": stats.matched,
        "ambiguous": stats.ambiguous,
        "unmatched": stats.unmatched,
        "malformed": malformed_lines,
        "records": counters.records,
        "records_expired": stats.records_expired,
        "records_refused": counters.refused,
        "datagrams": counters.received,
        "datagrams_malformed": max(0, counters.malformed - malformed_lines),
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
        discarded.add_metric(["malformed"], numbers["datagrams_malformed"])
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
    """The registry of penlogd's counters, its ``/metrics`` endpoint and JSON file."""

    def __init__(
        self,
        join: LiveJoin,
        sockets: list[socket.socket],
        address: HostPort | None,
        stats_file: str | None,
    ) -> None:
        self.registry = new_registry([PenlogdCollector(join, sockets)])
        self.server = None if address is None else MetricsServer(address, self.registry)
        self.stats_file = stats_file

    def bind(self) -> None:
        if self.server is not None:
            self.server.bind()

    def serve(self) -> None:
        if self.server is not None:
            self.server.serve()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def write_json(self) -> None:
        """Replace the --stats-file with the counters, one JSON object (no file: nothing)."""
        if self.stats_file is None:
            return
        try:
            with atomic_output(self.stats_file) as stream:
                stream.write((counters_json_text(self.registry) + "\n").encode())
        except OutputFileError as exc:
            log.error("%s", exc)
