"""End-to-end: our pen as a subprocess on loopback in front of real test backends."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from pentools.core.records import parse_local
from pentools.webstats.penstatus import parse_status
from tests.conftest import Processes, free_port, run_tool
from tests.pen.support import (
    as_root_args,
    http_get,
    penctl,
    read_response,
    start_backend,
    start_pen,
    start_with_control,
)

PEN_HOST = "127.0.40.1"
BACKENDS = ("127.0.40.2", "127.0.40.3", "127.0.40.4")


def refused_soon(host: str, port: int) -> bool:
    """Whether connections to host:port are refused within 5 s (pen handles TERM)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=5).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.02)
    return False


def backends(processes: Processes, count: int = 2) -> list[str]:
    """Start `count` backends named after their addresses; return their server specs."""
    specs = []
    for host in BACKENDS[:count]:
        port = start_backend(processes, host, host)
        specs.append(f"{host}:{port}")
    return specs


def test_round_robin_spreads_evenly(processes: Processes) -> None:
    servers = backends(processes, 3)
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-r", "--", *servers)
    seen = Counter(http_get(PEN_HOST, port)[0] for _ in range(30))
    assert seen == {host: 10 for host in BACKENDS}


def test_tracked_client_returns_to_its_server(processes: Processes) -> None:
    servers = backends(processes, 2)
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "--", *servers)
    clients = [f"127.0.41.{i}" for i in range(1, 7)]
    first = {client: http_get(PEN_HOST, port, source=client)[0] for client in clients}
    assert set(first.values()) == set(BACKENDS[:2])  # new clients are spread
    for _ in range(3):
        for client in clients:
            assert http_get(PEN_HOST, port, source=client)[0] == first[client]


#: The first choice of each client under -h, worked out outside the code under
#: test: the CRC-32 of the address's ASCII text (zlib's; derivation in
#: test_selection.HASHED) mod the number of servers. E.g. "127.0.42.3" has the
#: CRC 0xE20CD17B, which is 0 mod 3. (The C pen's -h is no reference here:
#: 0.34.1 hashes the client's port too, so one address goes anywhere.)
FIRST_OF_THREE = {
    "127.0.42.1": 1,  # 0x0C02B057
    "127.0.42.2": 1,  # 0x950BE1ED
    "127.0.42.3": 0,  # 0xE20CD17B
    "127.0.42.4": 2,  # 0x7C6844D8
    "127.0.42.5": 1,  # 0x0B6F744E
    "127.0.42.8": 2,  # 0x75DE08F3
}
FIRST_OF_TWO = {
    "127.0.43.1": 0,  # 0x0DC0DA60
    "127.0.43.2": 0,  # 0x94C98BDA
    "127.0.43.4": 1,  # 0x7DAA2EEF
    "127.0.43.5": 1,  # 0x0AAD1E79
    "127.0.43.8": 0,  # 0x741C62C4
    "127.0.43.10": 1,  # 0xB9647EA3
}


def test_hash_is_deterministic(processes: Processes) -> None:
    servers = backends(processes, 3)
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-h", "-r", "--", *servers)
    placement = {
        client: {http_get(PEN_HOST, port, source=client)[0] for _ in range(3)}
        for client in FIRST_OF_THREE
    }
    assert placement == {client: {BACKENDS[i]} for client, i in FIRST_OF_THREE.items()}
    assert set.union(*placement.values()) == set(BACKENDS)  # every server has its clients


def test_stubborn_closes_instead_of_failing_over(processes: Processes) -> None:
    alive = backends(processes, 1)[0]
    dead = f"{BACKENDS[1]}:{free_port(BACKENDS[1])}"
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-s", "-h", "-r", "--", alive, dead)
    outcomes: dict[str, str | None] = {}  # client -> the backend that answered it
    for client in FIRST_OF_TWO:
        try:
            outcomes[client] = http_get(PEN_HOST, port, source=client)[0]
        except ConnectionError:
            outcomes[client] = None
    # first choice up: served there; first choice down: closed, not sent to the other
    assert outcomes == {
        client: BACKENDS[0] if first == 0 else None for client, first in FIRST_OF_TWO.items()
    }
    assert set(outcomes.values()) == {BACKENDS[0], None}  # both outcomes happened


def blacklist_seconds(ctl: int) -> dict[str, int]:
    """Each server's remaining blacklist time (address -> seconds) from the status page."""
    servers = parse_status(penctl(PEN_HOST, ctl, "status")).tables["servers"].records()
    return {server["address"]: int(server["status"]) for server in servers}


def test_killed_backend_is_blacklisted_and_clients_fail_over(processes: Processes) -> None:
    first_port = start_backend(processes, BACKENDS[0], BACKENDS[0])
    victim = processes.started[-1]
    other = backends(processes, 2)[1]
    port, ctl = free_port(PEN_HOST), free_port(PEN_HOST)
    pen = start_pen(
        processes,
        PEN_HOST,
        port,
        "-b",
        "60",
        "-C",
        f"{PEN_HOST}:{ctl}",
        *as_root_args(),
        "--",
        f"{BACKENDS[0]}:{first_port}",
        other,
    )
    clients = [f"127.0.44.{i}" for i in range(1, 9)]
    before = {client: http_get(PEN_HOST, port, source=client)[0] for client in clients}
    assert set(before.values()) == set(BACKENDS[:2])
    assert blacklist_seconds(ctl) == {BACKENDS[0]: 0, BACKENDS[1]: 0}
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # Every client, those of the dead backend too, is served without an error.
    for client in clients:
        assert http_get(PEN_HOST, port, source=client)[0] == BACKENDS[1]
    remaining = blacklist_seconds(ctl)
    assert 0 < remaining[BACKENDS[0]] <= 60 and remaining[BACKENDS[1]] == 0
    # Back up, but still blacklisted: new clients are kept away from it.
    start_backend(processes, BACKENDS[0], BACKENDS[0], port=first_port)
    assert http_get(PEN_HOST, port, source="127.0.45.99")[0] == BACKENDS[1]
    # Its blacklist time, cut to 2 s, runs out: then new clients reach it again.
    assert penctl(PEN_HOST, ctl, "server", "0", "blacklist", "2") == ""
    assert 0 < blacklist_seconds(ctl)[BACKENDS[0]] <= 2
    deadline = time.monotonic() + 30
    while blacklist_seconds(ctl)[BACKENDS[0]] > 0:
        assert time.monotonic() < deadline, "the blacklist time never ran out"
        time.sleep(0.05)
    seen = {http_get(PEN_HOST, port, source=f"127.0.45.{i}")[0] for i in range(1, 7)}
    assert seen == set(BACKENDS[:2])
    assert pen.poll() is None


def test_emergency_server_takes_over_when_all_are_down(processes: Processes) -> None:
    dead = [f"{host}:{free_port(host)}" for host in BACKENDS[:2]]
    emergency_port = start_backend(processes, BACKENDS[2], "emergency")
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-e", f"{BACKENDS[2]}:{emergency_port}", "--", *dead)
    assert {http_get(PEN_HOST, port)[0] for _ in range(4)} == {"emergency"}


def _open_requests(port: int, count: int) -> tuple[list[socket.socket], int]:
    """Open `count` connections at once, each with one request; (served, refused)."""
    connections = [socket.create_connection((PEN_HOST, port), timeout=5) for _ in range(count)]
    for conn in connections:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    served, refused = [], 0
    for conn in connections:
        try:
            read_response(conn)
            served.append(conn)
        except (ConnectionError, TimeoutError):
            refused += 1
            conn.close()
    return served, refused


def test_connection_limit_holds_under_a_burst(processes: Processes) -> None:
    servers = backends(processes, 2)
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-x", "5", "--", *servers)
    served, refused = _open_requests(port, 12)
    assert (len(served), refused) == (5, 7)
    for conn in served:
        conn.close()


def test_per_server_soft_limits_hold_under_a_burst(processes: Processes) -> None:
    servers = [f"{spec}:2" for spec in backends(processes, 2)]  # maxc 2 each
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-r", "--", *servers)
    served, refused = _open_requests(port, 9)
    assert (len(served), refused) == (4, 5)
    for conn in served:
        conn.close()


def test_garbage_idle_and_half_closed_clients_do_not_disturb_others(
    processes: Processes,
) -> None:
    servers = backends(processes, 2)
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "--", *servers)
    idle = [socket.create_connection((PEN_HOST, port)) for _ in range(5)]
    garbage = socket.create_connection((PEN_HOST, port))
    garbage.sendall(bytes(range(256)) * 64)
    half = socket.create_connection((PEN_HOST, port))
    half.sendall(b"GET /half HTTP/1.1\r\nHost: x\r\n\r\n")
    half.shutdown(socket.SHUT_WR)
    for _ in range(10):
        assert http_get(PEN_HOST, port)[0] in BACKENDS
    # the half-closed client still gets its whole reply
    name, seen = read_response(half)
    assert name in BACKENDS and seen.startswith(b"GET /half ")
    for conn in [*idle, garbage, half]:
        conn.close()


def test_records_match_what_was_forwarded(processes: Processes, tmp_path: Path) -> None:
    servers = backends(processes, 2)
    port = free_port(PEN_HOST)
    log = tmp_path / "pen.log"
    start_pen(processes, PEN_HOST, port, "-l", str(log), "--", *servers)
    expected = []
    with socket.create_connection((PEN_HOST, port), source_address=("127.0.46.1", 0)) as conn:
        for path in ("/one", "/two?x=1", "/" + "long" * 40):
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            name, seen = read_response(conn)
            expected.append((name, seen.split(b"\r\n")[0][:100].decode()))
        # a POST whose body comes as a chunk of its own: one record, not two
        conn.sendall(b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        name, _ = read_response(conn)
        expected.append((name, "POST /form HTTP/1.1"))
    before = time.time()
    deadline = time.monotonic() + 5
    while log.read_bytes().count(b"\n") < len(expected) and time.monotonic() < deadline:
        time.sleep(0.02)
    records = [parse_local(line) for line in log.read_bytes().splitlines(keepends=True)]
    assert [(r.server, r.request) for r in records] == expected
    assert all(r.client == "127.0.46.1" and abs(r.time - before) < 5 for r in records)


def test_udp_records_and_upstream_port(processes: Processes) -> None:
    servers = backends(processes, 1)
    port = free_port(PEN_HOST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.47.9", 0))
        collector.settimeout(5)
        target = f"127.0.47.9:{collector.getsockname()[1]}"
        start_pen(processes, PEN_HOST, port, "-l", target, "--log-upstream-port", "--", *servers)
        http_get(PEN_HOST, port, "/udp", source="127.0.47.1")
        datagram = collector.recv(2048)
    client, server_field, request = datagram.decode().rstrip("\n").split(" ", 3)[1:]
    assert (client, request) == ("127.0.47.1", "GET /udp HTTP/1.1")
    server, _, upstream_port = server_field.partition("#")
    assert server == BACKENDS[0] and 0 < int(upstream_port) < 65536


def test_signals_hup_reopens_usr1_writes_stats_term_exits_zero(
    processes: Processes, tmp_path: Path
) -> None:
    servers = backends(processes, 1)
    port = free_port(PEN_HOST)
    log, stats = tmp_path / "pen.log", tmp_path / "status.html"
    pen = start_pen(processes, PEN_HOST, port, "-l", str(log), "-w", str(stats), "--", *servers)
    http_get(PEN_HOST, port, "/before")
    log.rename(tmp_path / "pen.log.1")
    pen.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    http_get(PEN_HOST, port, "/after")
    pen.send_signal(signal.SIGUSR1)
    while not stats.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "<title>Pen status page</title>" in stats.read_text()
    # TERM with a connection open: pen lets it finish, then exits 0
    open_conn = socket.create_connection((PEN_HOST, port))
    open_conn.sendall(b"GET /during HTTP/1.1\r\nHost: x\r\n\r\n")
    read_response(open_conn)
    pen.send_signal(signal.SIGTERM)
    assert refused_soon(PEN_HOST, port)  # TERM handled: no longer listening
    assert pen.poll() is None  # but still draining the open connection
    open_conn.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(open_conn)[1].startswith(b"GET /last ")
    open_conn.close()
    assert pen.wait(timeout=5) == 0
    assert b"GET /before" in (tmp_path / "pen.log.1").read_bytes()
    assert b"GET /after" in log.read_bytes() and b"GET /last" in log.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-Q", "8080", "a"], "No such option"),
        (["8080", "host:port"], "port must be a number"),
        (["8080", "host:80:x"], "maxc, hard, weight and prio"),
        (["8080", "h:1:2:3:4:5:6"], "expected host[:port"),
        (["-x", "zero", "8080", "h"], "-x"),
        (["notaport"], "a port is required"),
    ],
)
def test_bad_command_lines_give_one_line_and_fail(args: list[str], message: str) -> None:
    result = run_tool("pen", "-f", *args)
    assert result.returncode != 0
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_a_listen_address_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind((PEN_HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_tool("pen", "-f", f"{PEN_HOST}:{port}", f"{BACKENDS[0]}:80")
    assert result.returncode != 0
    assert (
        result.stderr
        == (
            f"pen: cannot listen on {PEN_HOST}:{port} (listen address): Address already in use\n"
        ).encode()
    )


def test_control_port_as_root_needs_u(processes: Processes) -> None:
    if os.geteuid() == 0:
        result = run_tool("pen", "-f", "-C", str(free_port(PEN_HOST)), f"{PEN_HOST}:1", "h:80")
        assert result.returncode != 0 and b"use -u" in result.stderr
    else:  # the rule is root's only: any other user gets a control port without -u
        assert not as_root_args()
        _, _, ctl = start_with_control(processes, PEN_HOST, [f"{BACKENDS[0]}:80"])
        assert penctl(PEN_HOST, ctl, "mode").startswith("no hash ")


def test_daemon_mode_writes_pid_file_and_stops_on_term(
    processes: Processes, tmp_path: Path, daemon_pidfiles: list[Path]
) -> None:
    servers = backends(processes, 1)
    port, pidfile = free_port(PEN_HOST), tmp_path / "pen.pid"
    daemon_pidfiles.append(pidfile)
    result = run_tool("pen", "-p", str(pidfile), f"{PEN_HOST}:{port}", *servers)
    assert result.returncode == 0  # the foreground part returns once pen is in the background
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = int(pidfile.read_text())
    try:
        assert http_get(PEN_HOST, port)[0] == BACKENDS[0]
    finally:
        os.kill(pid, signal.SIGTERM)
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pidfile.exists()  # removed at a clean exit


def test_cfgfile_and_o_commands_at_start_and_on_hup(processes: Processes, tmp_path: Path) -> None:
    servers = backends(processes, 2)
    port, ctl = free_port(PEN_HOST), free_port(PEN_HOST)
    cfgfile = tmp_path / "pen.cfg"
    cfgfile.write_text("# comment\nhash\nserver 1 weight 4\n")
    pen = start_pen(
        processes,
        PEN_HOST,
        port,
        "-F",
        str(cfgfile),
        "-o",
        "blacklist 9",
        "-C",
        f"{PEN_HOST}:{ctl}",
        *as_root_args(),
        "--",
        *servers,
    )
    assert penctl(PEN_HOST, ctl, "mode").startswith("hash no roundrobin")
    assert penctl(PEN_HOST, ctl, "blacklist") == "9\n"
    assert " weight 4 " in penctl(PEN_HOST, ctl, "servers").splitlines()[1]
    cfgfile.write_text("no hash\nstubborn\n")
    pen.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "no hash" not in penctl(PEN_HOST, ctl, "mode") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert penctl(PEN_HOST, ctl, "mode") == "no hash no roundrobin stubborn no weight no prio\n"


def test_bad_start_commands_fail(tmp_path: Path) -> None:
    result = run_tool("pen", "-f", "-o", "server 7 max 1", f"{PEN_HOST}:1", "127.0.0.1:80")
    assert result.returncode != 0 and b"no server 7" in result.stderr
    result = run_tool("pen", "-f", "-F", str(tmp_path / "missing"), f"{PEN_HOST}:1", "h:80")
    assert result.returncode != 0 and len(result.stderr.splitlines()) == 1


def test_non_http_connection_gets_one_record(processes: Processes, tmp_path: Path) -> None:
    servers = backends(processes, 1)
    port, log = free_port(PEN_HOST), tmp_path / "pen.log"
    start_pen(processes, PEN_HOST, port, "-l", str(log), "--", *servers)
    with socket.create_connection((PEN_HOST, port)) as conn:
        conn.sendall(b"\x16\x03\x01binary hello\n")
        time.sleep(0.05)  # most likely a chunk of its own; as one chunk the record is the same
        conn.sendall(b"GET /not-a-request-start HTTP/1.1\r\n\r\n")
        read_response(conn)
    http_get(PEN_HOST, port, "/marker")
    deadline = time.monotonic() + 5
    while b"/marker" not in log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    requests = [parse_local(line).request for line in log.read_bytes().splitlines()]
    assert requests == ["...binary hello", "GET /marker HTTP/1.1"]


def test_server_that_does_not_answer_in_time_is_blacklisted(processes: Processes) -> None:
    good = backends(processes, 1)[0]
    # A listener whose backlog is full: the kernel drops further SYNs, connects hang.
    blackhole = socket.socket()
    blackhole.bind((BACKENDS[1], 0))
    blackhole.listen(0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(blackhole.getsockname())
        fillers.append(filler)
    port, ctl = free_port(PEN_HOST), free_port(PEN_HOST)
    start_pen(
        processes,
        PEN_HOST,
        port,
        "-r",
        "-t",
        "0.5",
        "-C",
        f"{PEN_HOST}:{ctl}",
        *as_root_args(),
        "--",
        f"{BACKENDS[1]}:{blackhole.getsockname()[1]}",
        good,
    )
    # Without -t the first connect would hang for minutes: http_get would time out.
    assert [http_get(PEN_HOST, port)[0] for _ in range(4)] == [BACKENDS[0]] * 4
    # one timeout, then the blacklist (30 s by default) keeps it out
    assert 0 < blacklist_seconds(ctl)[BACKENDS[1]] <= 30
    servers = penctl(PEN_HOST, ctl, "servers").splitlines()
    assert servers[0].split()[5:7] == ["conn", "0"]  # the timed-out slot was given back
    for sock in [*fillers, blackhole]:
        sock.close()
