"""``pen --workers 2``, end to end: real pen processes, real clients from many loopback addresses.

Which worker serves a client is `worker_of` of its address (the steering
program); the status page's Workers table names each worker's pid and
counts the clients it tracks, so a test can check that every client went
where the program sends it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pentools.pen.steering import worker_of
from tests.conftest import Processes, free_port, run_tool
from tests.pen.support import (
    DEADLINE,
    http_get,
    penctl,
    read_response,
    start_backend,
    start_with_control,
)

PEN_HOST = "127.0.97.1"
BACKENDS = ("127.0.97.2", "127.0.97.3")
WORKERS = 2
#: The status page's Workers table: worker, pid, connections, clients.
_WORKER_ROW = re.compile(r"<tr>\n<td>(\d+)</td>\n<td>(\d+)</td>\n<td>(\d+)</td>\n<td>(\d+)</td>")
_RESTARTS = re.compile(r"(\d+) workers, (\d+) restarted")
#: A record of -l FILE: CLIENT TIME SERVER REQUEST.
_RECORD = re.compile(rb"127\.0\.98\.\d+ \d+ 127\.0\.97\.[23] GET /\S+ HTTP/1\.1\n")


def clients(count: int, third: int = 98) -> list[str]:
    """`count` loopback client addresses."""
    return [f"127.0.{third}.{n}" for n in range(1, count + 1)]


def client_of_worker(worker: int) -> str:
    """A client address that the steering program sends to `worker`."""
    return next(c for c in clients(50) if worker_of(c, WORKERS) == worker)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 3 * DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Pen:
    process: subprocess.Popen[bytes]
    port: int
    control: int

    def ctl(self, *command: str) -> str:
        return penctl(PEN_HOST, self.control, *command)

    def get(self, client: str, path: str = "/") -> tuple[str, bytes]:
        return http_get(PEN_HOST, self.port, path, source=client)

    def workers(self) -> dict[int, tuple[int, int, int]]:
        """Worker -> (pid, open connections, tracked clients), from ``status``."""
        status = self.ctl("status")
        table = status.split("<h2>Workers</h2>", 1)[1]
        return {int(w): (int(p), int(c), int(n)) for w, p, c, n in _WORKER_ROW.findall(table)}

    def restarts(self) -> int:
        match = _RESTARTS.search(self.ctl("status"))
        assert match is not None
        return int(match.group(2))

    def metrics(self) -> dict[str, object]:
        return json.loads(self.ctl("metrics"))  # type: ignore[no-any-return]


def start_workers(processes: Processes, servers: list[str], *args: str) -> Pen:
    process, port, control = start_with_control(
        processes, PEN_HOST, servers, "--workers", str(WORKERS), *args
    )
    pen = Pen(process, port, control)
    wait_until(lambda: len(pen.workers()) == WORKERS, "both workers")
    return pen


@pytest.fixture
def backends(processes: Processes) -> list[str]:
    return [
        f"{host}:{start_backend(processes, host, f'web{n}')}" for n, host in enumerate(BACKENDS)
    ]


def test_each_client_stays_on_its_worker_and_its_server(
    processes: Processes, backends: list[str]
) -> None:
    pen = start_workers(processes, backends)
    addresses = clients(40)
    served: dict[str, set[str]] = {}
    for _ in range(3):
        for client in addresses:
            served.setdefault(client, set()).add(pen.get(client)[0])
    # tracking: a returning client goes back to its server (each worker alone
    # would send a client it has not seen to its own next server)
    assert all(len(names) == 1 for names in served.values()), served
    assert set().union(*served.values()) == {"web0", "web1"}
    expected = Counter(worker_of(client, WORKERS) for client in addresses)
    workers = pen.workers()
    assert {w: clients for w, (_, _, clients) in workers.items()} == dict(expected)
    pids = {pid for pid, _, _ in workers.values()}
    assert len(pids) == WORKERS and pen.process.pid not in pids
    assert pen.ctl("pid") == f"{pen.process.pid}\n"
    # the whole pen's numbers: every connection counted once
    total = 3 * len(addresses)
    servers = pen.ctl("servers").splitlines()
    assert sum(int(line.split()[6]) for line in servers) == 0  # conn: none open now
    connections = pen.metrics()["pen_connections_total"]
    assert isinstance(connections, dict) and sum(connections.values()) == total
    assert all(int(line.split()[-1]) > 0 for line in servers)  # rx from every server


def test_without_a_choice_by_client_connections_spread_over_the_workers(
    processes: Processes, backends: list[str]
) -> None:
    pen = start_workers(processes, backends, "-r")
    many, single = clients(2)
    for _ in range(40):  # new source ports: the kernel's 4-tuple hash picks the worker
        pen.get(many)
    assert [clients for _, _, clients in pen.workers().values()] == [1, 1]
    assert pen.ctl("no", "roundrobin") == ""  # tracking: steered by address again
    for _ in range(10):
        pen.get(single)
    tracked = {w: clients for w, (_, _, clients) in pen.workers().items()}
    assert tracked[worker_of(single, WORKERS)] == 2 and sum(tracked.values()) == 3


def test_a_blacklisting_reaches_every_worker_within_a_second(processes: Processes) -> None:
    live = f"{BACKENDS[0]}:{start_backend(processes, BACKENDS[0], 'web0')}"
    dead = f"{BACKENDS[1]}:{free_port(BACKENDS[1])}"  # nothing listens: refused at once
    pen = start_workers(processes, [dead, live])
    assert pen.get(client_of_worker(0))[0] == "web0"  # worker 0 tried the dead one first
    noticed = time.monotonic()
    assert pen.metrics()["pen_connect_failures_total"] == {"0": 1, "1": 0}
    time.sleep(max(0.0, noticed + 1.0 - time.monotonic()))  # the promise: within a second
    # worker 1's round-robin starts at the dead server and would come back to it
    for client in [c for c in clients(50) if worker_of(c, WORKERS) == 1][:4]:
        assert pen.get(client)[0] == "web0"
    assert pen.metrics()["pen_connect_failures_total"] == {"0": 1, "1": 0}


def test_a_penctl_setting_reaches_every_worker(processes: Processes, backends: list[str]) -> None:
    pen = start_workers(processes, backends)
    for worker in range(WORKERS):
        assert b"X-Forwarded-For" not in pen.get(client_of_worker(worker))[1]
    assert pen.ctl("http") == ""
    for worker in range(WORKERS):
        client = client_of_worker(worker)
        assert f"X-Forwarded-For: {client}".encode() in pen.get(client)[1]
    assert pen.ctl("no", "http") == ""
    assert pen.ctl("blacklist") == "30\n"
    assert pen.ctl("nonsense").startswith("do_cmd: ")
    assert pen.ctl("listen", "127.0.0.1:1").startswith("do_cmd: ")


def _load(pen: Pen, client: str, requests: int, failures: list[BaseException]) -> None:
    """`requests` requests on one keep-alive connection from `client`."""
    try:
        with socket.create_connection(
            (PEN_HOST, pen.port), timeout=10, source_address=(client, 0)
        ) as conn:
            for n in range(requests):
                conn.sendall(f"GET /{client}/{n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                read_response(conn)
    except BaseException as exc:  # reported by the test
        failures.append(exc)


def _run_load(pen: Pen, addresses: list[str], requests: int) -> None:
    failures: list[BaseException] = []
    threads = [
        threading.Thread(target=_load, args=(pen, client, requests, failures))
        for client in addresses
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def test_records_of_both_workers_are_whole_lines_in_one_file(
    processes: Processes, backends: list[str], tmp_path: Path
) -> None:
    log = tmp_path / "pen.log"
    pen = start_workers(processes, backends, "-l", str(log))
    addresses = clients(16)
    assert {worker_of(c, WORKERS) for c in addresses} == {0, 1}
    _run_load(pen, addresses, 200)
    expected = 16 * 200
    wait_until(lambda: log.read_bytes().count(b"\n") >= expected, "every record")
    lines = log.read_bytes().splitlines(keepends=True)
    assert len(lines) == expected
    bad = [line for line in lines if not _RECORD.fullmatch(line)]
    assert not bad, bad[:5]
    assert {line.split()[0].decode() for line in lines} == set(addresses)


def test_hup_reopens_the_log_in_every_worker(
    processes: Processes, backends: list[str], tmp_path: Path
) -> None:
    log = tmp_path / "pen.log"
    pen = start_workers(processes, backends, "-l", str(log))
    first, second = client_of_worker(0), client_of_worker(1)
    for client in (first, second):
        pen.get(client, "/before")
    wait_until(lambda: log.read_bytes().count(b"\n") == 2, "the first records")
    log.rename(tmp_path / "pen.log.1")
    os.kill(pen.process.pid, signal.SIGHUP)
    wait_until(log.exists, "the log reopened")

    def both_in_new_log() -> bool:
        for client in (first, second):
            pen.get(client, "/after")
        text = log.read_bytes()
        return f"{first} ".encode() in text and f"{second} ".encode() in text

    wait_until(both_in_new_log, "records of both workers in the new log")
    assert b"/after" not in (tmp_path / "pen.log.1").read_bytes()


def test_a_killed_worker_is_started_again_and_counted(
    processes: Processes, backends: list[str]
) -> None:
    pen = start_workers(processes, backends)
    assert pen.ctl("http") == ""  # given before the restart: the new worker has it too
    victim = pen.workers()[1][0]
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: pen.workers().get(1, (victim,))[0] not in (victim, 0) and pen.restarts() == 1,
        "worker 1 started again",
    )
    assert pen.metrics()["pen_worker_restarts_total"] == 1
    client = client_of_worker(1)
    name, head = pen.get(client)  # its clients are served, by a worker with -H on
    assert name in {"web0", "web1"} and f"X-Forwarded-For: {client}".encode() in head
    assert pen.process.poll() is None


def test_usr1_writes_the_status_page_of_the_whole_pen(
    processes: Processes, backends: list[str], tmp_path: Path
) -> None:
    page = tmp_path / "status.html"
    pen = start_workers(processes, backends, "-w", str(page))
    for worker in range(WORKERS):
        pen.get(client_of_worker(worker))
    pids = {pid for pid, _, _ in pen.workers().values()}
    os.kill(pen.process.pid, signal.SIGUSR1)
    wait_until(lambda: page.exists() and "</html>" in page.read_text(), "the status page")
    text = page.read_text()
    assert all(f"<td>{pid}</td>" in text for pid in pids)
    for worker in range(WORKERS):
        assert f"<td>{client_of_worker(worker)}</td>" in text


def test_term_drains_every_worker_then_pen_exits(processes: Processes, backends: list[str]) -> None:
    pen = start_workers(processes, backends)
    pids = [pid for pid, _, _ in pen.workers().values()]
    open_connections = []
    for worker in range(WORKERS):
        conn = socket.create_connection(
            (PEN_HOST, pen.port), timeout=10, source_address=(client_of_worker(worker), 0)
        )
        conn.sendall(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(conn)
        open_connections.append(conn)
    pen.process.send_signal(signal.SIGTERM)
    wait_until(_refused(pen.port), "pen to stop listening")
    for conn in open_connections:  # open connections are served to their end
        conn.sendall(b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(conn)[1].startswith(b"GET /second")
        conn.close()
    assert pen.process.wait(timeout=3 * DEADLINE) == 0
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), "the workers")


def _refused(port: int) -> Callable[[], bool]:
    def refused() -> bool:
        try:
            with socket.create_connection((PEN_HOST, port), timeout=1):
                return False
        except ConnectionRefusedError:
            return True

    return refused


@pytest.fixture
def pidfile(tmp_path: Path, daemon_pidfiles: list[Path]) -> Iterator[Path]:
    path = tmp_path / "pen.pid"
    daemon_pidfiles.append(path)
    yield path


def test_the_starting_command_returns_once_every_worker_listens(
    processes: Processes, backends: list[str], pidfile: Path
) -> None:
    port = free_port(PEN_HOST)
    started = run_tool(
        "pen", "--workers", str(WORKERS), "-p", str(pidfile), f"{PEN_HOST}:{port}", *backends
    )
    assert (started.returncode, started.stderr) == (0, b"")
    supervisor = int(pidfile.read_text())
    for worker in range(WORKERS):  # ready means every worker serves: no waiting
        assert http_get(PEN_HOST, port, source=client_of_worker(worker))[0] in {"web0", "web1"}
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    assert len(children) == WORKERS
    os.kill(supervisor, signal.SIGTERM)
    wait_until(lambda: not pidfile.exists(), "pen to exit")


def test_a_worker_that_cannot_start_fails_the_start(
    processes: Processes, backends: list[str], tmp_path: Path
) -> None:
    port = free_port(PEN_HOST)
    log = tmp_path / "missing" / "pen.log"
    started = run_tool(
        "pen", "--workers", str(WORKERS), "-l", str(log), f"{PEN_HOST}:{port}", *backends
    )
    assert started.returncode == 1
    assert b"cannot open log file" in started.stderr
    assert _refused(port)()


def test_a_listen_command_in_a_config_file_fails_the_start(
    processes: Processes, backends: list[str], tmp_path: Path
) -> None:
    # Each worker has its own socket of one group: `listen ADDRESS` cannot move them.
    port, elsewhere = free_port(PEN_HOST), free_port(PEN_HOST)
    config = tmp_path / "pen.cfg"
    config.write_text(f"hash\nlisten {PEN_HOST}:{elsewhere}\n", encoding="utf-8")
    started = run_tool(
        "pen", "--workers", str(WORKERS), "-F", str(config), f"{PEN_HOST}:{port}", *backends
    )
    assert started.returncode == 1
    assert started.stderr == (
        f"pen: {config}: listen ADDRESS: not with --workers (each has its socket)\n".encode()
    )
    assert _refused(port)() and _refused(elsewhere)()


def test_ipv6_clients_are_steered_to_their_worker(
    processes: Processes, backends: list[str]
) -> None:
    _, port, control = start_with_control(processes, "::1", backends, "--workers", str(WORKERS))
    for _ in range(5):
        assert http_get("::1", port)[0] in {"web0", "web1"}
    status = penctl("::1", control, "status").split("<h2>Workers</h2>", 1)[1]
    tracked = {int(w): int(n) for w, _, _, n in _WORKER_ROW.findall(status)}
    assert tracked == {w: int(w == worker_of("::1", WORKERS)) for w in range(WORKERS)}
