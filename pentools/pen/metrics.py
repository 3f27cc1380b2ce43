"""pen's metrics: its running state's counters as Prometheus metric families.

Read when scraped (``--metrics``, from the metrics server's thread) or asked
for (penctl ``metrics``, as JSON): the relays only add to plain ints, and
this module only reads them.  A server is labelled by its number, as
``servers`` and ``server N`` name it (its address may change under penctl).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from pentools.core.metrics import counters_json_text, new_registry
from pentools.pen.selection import Server
from pentools.pen.state import State


class PenCollector:
    """The metric families of one pen (a `pentools.core.metrics.Collector`)."""

    def __init__(self, state: State | None = None) -> None:
        #: None until pen runs (the metrics port is bound before): nothing to show.
        self.state = state

    def collect(self) -> Iterator[Metric]:
        if self.state is not None:
            yield from self._collect(self.state)

    @staticmethod
    def _servers(state: State) -> list[Server]:
        selector = state.selector
        servers = list(selector.servers)
        if selector.emergency is not None:
            servers.append(selector.emergency)
        return servers

    def _collect(self, state: State) -> Iterator[Metric]:
        counters = state.counters
        servers = self._servers(state)
        connections = CounterMetricFamily(
            "pen_connections", "Client connections given to each server.", labels=["server"]
        )
        failures = CounterMetricFamily(
            "pen_connect_failures",
            "Connections a server did not accept in time (each blacklists it).",
            labels=["server"],
        )
        open_to = GaugeMetricFamily(
            "pen_server_open_connections", "Open connections of each server.", labels=["server"]
        )
        relayed = CounterMetricFamily(
            "pen_relayed_bytes",
            "Bytes relayed, by server and direction (to_server, to_client).",
            labels=["server", "direction"],
        )
        for server in servers:
            name = str(server.index)
            connections.add_metric([name], server.connections)
            failures.add_metric([name], server.failures)
            open_to.add_metric([name], server.conn)
            relayed.add_metric([name, "to_server"], server.sent)
            relayed.add_metric([name, "to_client"], server.received)
        yield from (connections, failures, open_to, relayed)
        now = state.clock()
        blacklisted = sum(server.is_blacklisted(now) for server in servers)
        yield GaugeMetricFamily(
            "pen_blacklisted_servers", "Servers left out now after failing.", value=blacklisted
        )
        yield GaugeMetricFamily(
            "pen_open_connections", "Client connections open now.", value=len(state.table)
        )
        written, dropped = state.records()
        yield CounterMetricFamily("pen_records_written", "Records written.", value=written)
        yield CounterMetricFamily(
            "pen_records_dropped", "Records to penlogd that could not be sent.", value=dropped
        )
        denied = CounterMetricFamily(
            "pen_acl_denied",
            "Connections an access list denied, by port (client, control).",
            labels=["port"],
        )
        denied.add_metric(["client"], counters.acl_denied)
        denied.add_metric(["control"], counters.control_denied)
        yield denied
        for name, value, text in (
            ("pen_accept_errors", counters.accept_errors, "Failed accepts (plain TCP)."),
            ("pen_refused", counters.refused, "Clients refused at the -x cap."),
            ("pen_no_server", counters.no_server, "Clients closed for want of a server."),
            (
                "pen_client_capped",
                counters.client_capped,
                "Connections refused by conn_max_per_client.",
            ),
            ("pen_idle_closed", counters.idle_closed, "Connections closed by idle_timeout."),
            (
                "pen_worker_restarts",
                counters.worker_restarts,
                "Workers (--workers) that died and were started again.",
            ),
            (
                "pen_first_byte_closed",
                counters.first_byte_closed,
                "Silent connections closed at the cap by first_byte_timeout.",
            ),
        ):
            yield CounterMetricFamily(name, text, value=value)
        yield GaugeMetricFamily(
            "pen_start_time_seconds", "When pen started, in seconds since the epoch.", state.started
        )


def metrics_json(state: State) -> str:
    """penctl ``metrics``: the same numbers as ``/metrics``, as one line of JSON."""
    return counters_json_text(new_registry([PenCollector(state)]))
