"""penlogd's /metrics and JSON counters, scraped from a running penlogd under real traffic."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Processes, free_port, run_tool
from tests.core.test_metrics import proc_net_udp
from tests.daemons import USER, require_root, user_dir
from tests.penlogd.live import (
    COMMON_TIME,
    Penlogd,
    sender,
    tcp_accepts,
    wait_until,
)

PEN, WEB1, STRANGER = "127.0.0.1", "127.0.0.11", "127.0.0.99"
RESULTS = ("exact", "matched", "ambiguous", "unmatched", "malformed")


def scrape(where: str) -> dict[str, float]:
    """Every sample of ``http://WHERE/metrics``, keyed ``name`` or ``name{label=value}``."""
    with urllib.request.urlopen(f"http://{where}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def start(processes: Processes, tmp_path: Path, metrics: str, *args: str) -> Penlogd:
    daemon = Penlogd(processes, tmp_path, "--metrics", metrics, *args)
    port = int(metrics.rsplit(":", 1)[-1])
    host = "::1" if metrics.startswith("[") else "127.0.0.1"
    wait_until(
        lambda: tcp_accepts(port, host) or daemon.process.poll() is not None, what="/metrics"
    )
    return daemon


def web_line(path: str, port: int, remote: str = PEN) -> bytes:
    return f'{remote} - - {COMMON_TIME} "GET {path} HTTP/1.1" 200 5 {port}\n'.encode()


def test_counters_follow_the_traffic(processes: Processes, tmp_path: Path) -> None:
    metrics = f"{free_port()}"  # a bare port: loopback
    stats = tmp_path / "counters.json"
    daemon = start(
        processes,
        tmp_path,
        metrics,
        *("--wait", "0", "--window", "1", "--balancer", PEN, "--log-format", "common_port"),
        *("--tag", f"web1={WEB1}", "--stats-json", str(stats)),
    )
    where = f"127.0.0.1:{metrics}"
    before = scrape(where)
    assert before["penlogd_datagrams_total"] == 0
    assert before["penlogd_lines_total{result=exact}"] == 0

    target = ("127.0.0.1", daemon.port)
    with sender(PEN) as pen, sender(WEB1) as web, sender(STRANGER) as stranger:
        for record in (
            b"+ 10.0.0.1 127.0.0.11#40001 GET /exact HTTP/1.1\n",  # extended: exact
            b"+ 10.0.0.2 127.0.0.11 GET /same HTTP/1.1\n",  # two clients, one request:
            b"+ 10.0.0.3 127.0.0.11 GET /same HTTP/1.1\n",  # ambiguous, then matched
            b"+ 10.0.0.4 127.0.0.11 GET /one HTTP/1.1\n",  # matched
            b"+ 10.0.0.5 127.0.0.11 GET /syslog HTTP/1.1\n",  # matched, via syslog
            b"+ 10.0.0.6 127.0.0.11 GET /never HTTP/1.1\n",  # no line: expires
            b"+ bad record\n",  # malformed
        ):
            pen.sendto(record, target)
        stranger.sendto(b"+ 10.0.0.7 127.0.0.11 GET /one HTTP/1.1\n", target)  # refused
        for line in (
            web_line("/exact", 40001),
            web_line("/same", 40002),
            web_line("/same", 40003),
            web_line("/one", 40004),
            web_line("/nobody", 40005),  # unmatched
            b"not a log line\n",  # malformed, written as it came
        ):
            web.sendto(line, target)
        # nginx on this host: the source is the balancer's address, the tag says web1
        pen.sendto(b"<190>Dec  5 08:11:50 web1: " + web_line("/syslog", 40006).rstrip(), target)

    wait_until(lambda: len(daemon.lines()) == 7, what="seven lines")
    got = scrape(where)
    assert got["penlogd_datagrams_total"] == 15
    assert {result: got[f"penlogd_lines_total{{result={result}}}"] for result in RESULTS} == {
        "exact": 1,
        "matched": 3,
        "ambiguous": 1,
        "unmatched": 1,
        "malformed": 1,
    }
    assert got["penlogd_records_total"] == 6
    assert got["penlogd_datagrams_discarded_total{reason=refused}"] == 1
    assert got["penlogd_datagrams_discarded_total{reason=malformed}"] == 1
    assert got["penlogd_lines_waiting"] == 0
    address = f"[::]:{daemon.port}"  # penlogd listens on every address, IPv6 and IPv4
    assert got[f"penlogd_receive_buffer_bytes{{address={address}}}"] > 0
    assert got[f"penlogd_receive_drops_total{{address={address}}}"] == 0
    assert "python_info" not in got  # a private registry: only penlogd's own

    # The unclaimed record expires once the window has passed (checked as
    # datagrams arrive: keep sending something).
    def expired() -> bool:
        with sender(WEB1) as web:
            web.sendto(b"tick\n", target)
        return scrape(where)["penlogd_records_expired_total"] == 1

    wait_until(expired, timeout=20, what="the record to expire")

    # USR1: the same numbers as JSON in --stats-json, and the human line on stderr
    os.kill(daemon.process.pid, signal.SIGUSR1)
    assert daemon.process.stderr is not None
    assert daemon.process.stderr.readline().startswith(b"penlogd: lines ")
    wait_until(stats.exists, what="the JSON counters")
    counters = json.loads(stats.read_text())
    now = scrape(where)
    assert {result: counters[result] for result in RESULTS} == {
        result: now[f"penlogd_lines_total{{result={result}}}"] for result in RESULTS
    }
    assert counters["received"] == now["penlogd_datagrams_total"]
    assert counters["records_expired"] == now["penlogd_records_expired_total"] == 1
    assert now[f"penlogd_receive_drops_total{{address={address}}}"] == 0
    daemon.stop()
    final = json.loads(stats.read_text())  # written again at exit
    assert final["received"] == now["penlogd_datagrams_total"]


def test_a_full_receive_buffer_and_the_kernels_drops(processes: Processes, tmp_path: Path) -> None:
    metrics = f"[::1]:{free_port('::1')}"
    daemon = start(
        processes, tmp_path, metrics, "--wait", "0", "-a", "127.0.0.1", "--rcvbuf", "4096"
    )
    address = f"127.0.0.1:{daemon.port}"
    sent = 300
    # Stopped, penlogd reads nothing: the buffer fills, the kernel drops the rest.
    os.kill(daemon.process.pid, signal.SIGSTOP)
    try:
        with sender(WEB1) as web:
            for number in range(sent):
                web.sendto(web_line(f"/n{number}", 1), ("127.0.0.1", daemon.port))
        queued, drops = proc_net_udp_of(daemon.process.pid, daemon.port)
        assert queued > 0 and drops > 0
    finally:
        os.kill(daemon.process.pid, signal.SIGCONT)
    wait_until(lambda: len(daemon.lines()) == sent - drops, what="the lines that fit")
    got = scrape(metrics)
    assert got[f"penlogd_receive_drops_total{{address={address}}}"] == drops
    assert got["penlogd_datagrams_total"] == sent - drops
    assert got[f"penlogd_receive_queue_bytes{{address={address}}}"] == 0  # read it all
    assert got[f"penlogd_receive_buffer_bytes{{address={address}}}"] == 8192  # 4096, doubled
    daemon.stop()


def proc_net_udp_of(pid: int, port: int) -> tuple[int, int]:
    """(rx_queue, drops) of the UDP socket on `port` that process `pid` holds."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
        if link.startswith("socket:["):
            found = proc_net_udp(link[len("socket:[") : -1], port)
            if found is not None:
                return found
    raise AssertionError(f"no UDP socket on port {port} in process {pid}")


def test_a_busy_metrics_port_stops_the_start_on_the_terminal() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        metrics = holder.getsockname()[1]
        udp = free_port("::", socket.SOCK_DGRAM)
        result = run_tool("penlogd", "--metrics", str(metrics), str(udp))  # would detach
    assert result.returncode == 1
    assert result.stderr == (
        f"penlogd: cannot listen on 127.0.0.1:{metrics}: Address already in use\n".encode()
    )


def test_a_detached_penlogd_serves_metrics_as_nobody_in_a_jail(
    tmp_path: Path, daemon_pidfiles: list[Path]
) -> None:
    # The metrics port is bound before the jail; -l and -p are opened inside it, as nobody.
    require_root()
    jail = tmp_path / "jail"
    jail.mkdir()
    logs = user_dir(jail, "logs")
    port, metrics = free_port("::", socket.SOCK_DGRAM), free_port()
    pidfile = logs / "d.pid"
    daemon_pidfiles.append(pidfile)
    args = ["-p", "/logs/d.pid", "-l", "/logs/d.log", "--metrics", str(metrics)]
    args += ["-j", str(jail), "-u", USER]
    started = run_tool("penlogd", *args, str(port), timeout=20)
    assert started.returncode == 0, started.stderr
    assert pidfile.exists()  # the starting command returns once the daemon is ready
    with sender(WEB1) as web:
        web.sendto(web_line("/detached", 1), ("127.0.0.1", port))
    wait_until(lambda: scrape(f"127.0.0.1:{metrics}")["penlogd_datagrams_total"] == 1)
    got = scrape(f"127.0.0.1:{metrics}")
    assert got[f"penlogd_receive_drops_total{{address=[::]:{port}}}"] == 0  # no /proc needed
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="the daemon to exit")
    assert not pidfile.exists()  # its owner removed it, from inside the jail
