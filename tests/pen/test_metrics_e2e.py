"""pen's metrics (issue 10): ``--metrics`` scraped under traffic, and penctl ``metrics``.

The scrape is parsed with prometheus_client's own parser, so a malformed
exposition fails here as it would in Prometheus.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Processes, free_port, run_tool
from tests.pen.support import (
    DEADLINE,
    http_get,
    penctl,
    start_backend,
    start_with_control,
    wait_bound,
)

PEN_HOST = "127.0.90.1"
BACKENDS = ("127.0.90.2", "127.0.90.3")
DENIED = "127.0.91.9"
REQUESTS = 20


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of pen's /metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://{PEN_HOST}:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_traffic_pen_relayed(processes: Processes, tmp_path: Path) -> None:
    servers = [f"{host}:{start_backend(processes, host, host)}" for host in BACKENDS]
    dead = f"{BACKENDS[0]}:{free_port(BACKENDS[0])}"  # nothing listens: blacklisted
    metrics_port = free_port(PEN_HOST)
    log = tmp_path / "pen.log"
    process, port, control = start_with_control(
        processes,
        PEN_HOST,
        [*servers, dead],
        "-r",
        "-l",
        str(log),
        "--metrics",
        f"{PEN_HOST}:{metrics_port}",
        "-o",
        f"acl 1 deny {DENIED}",
        "-o",
        "client_acl 1",
    )
    wait_bound(PEN_HOST, metrics_port, process)
    for _ in range(REQUESTS):
        http_get(PEN_HOST, port)
    with socket.create_connection((PEN_HOST, port), source_address=(DENIED, 0)) as denied:
        assert denied.recv(1) == b""  # closed at once
    kept = socket.create_connection((PEN_HOST, port))  # open while scraped
    deadline = time.monotonic() + DEADLINE
    while True:  # until pen has taken the kept connection
        samples = scrape(metrics_port)
        if samples[("pen_open_connections", ())] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    kept.close()

    def per_server(name: str, **labels: str) -> list[float]:
        return [
            samples[(name, tuple(sorted({"server": str(n), **labels}.items())))] for n in range(3)
        ]

    connections = per_server("pen_connections_total")
    # round robin over three servers; the dead one's clients went on to a live one
    assert sum(connections[:2]) == REQUESTS + 1  # and the one kept open
    assert connections[2] == per_server("pen_connect_failures_total")[2] == 1
    assert samples[("pen_blacklisted_servers", ())] == 1
    assert samples[("pen_open_connections", ())] == 1
    to_server = per_server("pen_relayed_bytes_total", direction="to_server")
    to_client = per_server("pen_relayed_bytes_total", direction="to_client")
    assert to_server[2] == to_client[2] == 0
    assert min(to_server[:2]) > 0 and min(to_client[:2]) > to_server[0]
    records = len(log.read_bytes().splitlines())
    assert samples[("pen_records_written_total", ())] == REQUESTS == records
    assert samples[("pen_records_dropped_total", ())] == 0
    assert samples[("pen_acl_denied_total", (("port", "client"),))] == 1
    assert samples[("pen_accept_errors_total", ())] == 0

    reply = json.loads(penctl(PEN_HOST, control, "metrics"))
    assert reply["pen_connections_total"]["0"] == connections[0]
    assert reply["pen_records_written_total"] == REQUESTS
    assert reply["pen_acl_denied_total"] == {"client": 1, "control": 0}


def test_a_busy_metrics_port_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind((PEN_HOST, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        listen = f"{PEN_HOST}:{free_port(PEN_HOST)}"
        result = run_tool("pen", "-f", "--metrics", f"{PEN_HOST}:{taken}", listen, BACKENDS[0])
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1
    assert f"{taken}" in result.stderr.decode()
