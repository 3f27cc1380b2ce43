"""core/metrics: a real HTTP scrape of a private registry, and the kernel's socket counters."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator

import prometheus_client
import pytest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from pentools.core.addresses import HostPort
from pentools.core.errors import ListenError
from pentools.core.metrics import (
    MetricsServer,
    counters_json,
    new_registry,
    parse_metrics_address,
    receive_buffer,
)
from tests.conftest import free_port


class Counting:
    """A daemon's plain counters, read by the collector only when scraped."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_server = {"10.0.0.1:80": 0, "[2001:db8::1]:80": 0}


class CountingCollector:
    def __init__(self, state: Counting) -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily("demo_requests", "Requests seen.", value=self.state.requests)
        per_server = GaugeMetricFamily("demo_open", "Open per server.", labels=["server"])
        for server, count in self.state.by_server.items():
            per_server.add_metric([server], count)
        yield per_server


@pytest.fixture
def served() -> Iterator[tuple[MetricsServer, Counting]]:
    state = Counting()
    server = MetricsServer(
        HostPort("127.0.0.1", free_port()), new_registry([CountingCollector(state)])
    )
    server.bind()
    server.serve()
    try:
        yield server, state
    finally:
        server.close()


def scrape(where: str, path: str = "/metrics") -> dict[str, float]:
    with urllib.request.urlopen(f"http://{where}{path}", timeout=10) as reply:
        text = reply.read().decode()
    return {
        f"{sample.name}{sorted(sample.labels.items()) or ''}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9100", HostPort("127.0.0.1", 9100)),
        (":9100", HostPort("127.0.0.1", 9100)),
        ("[::1]:9100", HostPort("::1", 9100)),
        ("0.0.0.0:9100", HostPort("0.0.0.0", 9100)),
        ("localhost:9100", HostPort("localhost", 9100)),
    ],
)
def test_a_bare_port_means_loopback(text: str, expected: HostPort) -> None:
    assert parse_metrics_address(text) == expected


def test_values_are_read_at_scrape_time(served: tuple[MetricsServer, Counting]) -> None:
    server, state = served
    assert scrape(server.listening)["demo_requests_total"] == 0
    state.requests = 42
    state.by_server["[2001:db8::1]:80"] = 3
    metrics = scrape(server.listening)
    assert metrics["demo_requests_total"] == 42
    assert metrics["demo_open[('server', '[2001:db8::1]:80')]"] == 3
    assert metrics["demo_open[('server', '10.0.0.1:80')]"] == 0


def test_only_metrics_is_served(served: tuple[MetricsServer, Counting]) -> None:
    server, _ = served
    with pytest.raises(urllib.error.HTTPError) as caught:
        scrape(server.listening, "/")
    with caught.value:  # the error is the reply: close it
        assert caught.value.code == 404


def test_the_process_wide_registry_is_left_alone(served: tuple[MetricsServer, Counting]) -> None:
    server, _ = served
    names = {metric.name for metric in prometheus_client.REGISTRY.collect()}
    assert "demo_requests" not in names
    assert not any(name.startswith(("python_", "process_")) for name in scrape(server.listening))


def test_ipv6_loopback() -> None:
    server = MetricsServer(
        HostPort("::1", free_port("::1")), new_registry([CountingCollector(Counting())])
    )
    server.bind()
    server.serve()
    try:
        assert server.listening.startswith("[::1]:")
        assert scrape(server.listening)["demo_requests_total"] == 0
    finally:
        server.close()


def test_a_busy_port_is_a_listen_error(served: tuple[MetricsServer, Counting]) -> None:
    server, _ = served
    port = int(server.listening.rsplit(":", 1)[1])
    second = MetricsServer(HostPort("127.0.0.1", port), new_registry([]))
    with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
        second.bind()


def test_json_has_the_same_numbers_nested_by_label() -> None:
    state = Counting()
    state.requests = 7
    state.by_server["10.0.0.1:80"] = 2
    assert counters_json(new_registry([CountingCollector(state)])) == {
        "demo_requests_total": 7,
        "demo_open": {"10.0.0.1:80": 2, "[2001:db8::1]:80": 0},
    }


def proc_net_udp(inode: str, port: int) -> tuple[int, int] | None:
    """(rx_queue, drops) of the UDP socket `inode` bound to `port`, as /proc/net/udp{,6} show."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as rows:
            for row in rows:
                fields = row.split()
                if fields[9] == inode and fields[1].endswith(f":{port:04X}"):
                    return int(fields[4].split(":")[1], 16), int(fields[12])
    return None


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_receive_buffer_agrees_with_proc_net_udp(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as receiver:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel's minimum
        receiver.bind((host, 0))
        empty = receive_buffer(receiver)
        assert empty is not None
        assert (empty.queued, empty.drops) == (0, 0)
        assert empty.size == receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        with socket.socket(family, socket.SOCK_DGRAM) as sender:
            for _ in range(200):  # far more than fits
                sender.sendto(b"x" * 500, receiver.getsockname())
        full = receive_buffer(receiver)
        assert full is not None
        assert full.queued > 0
        assert full.drops > 0
        inode = str(os.fstat(receiver.fileno()).st_ino)
        port = receiver.getsockname()[1]
        assert (full.queued, full.drops) == proc_net_udp(inode, port)
