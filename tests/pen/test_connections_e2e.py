"""End-to-end: single connections through penctl (connection, socket, close),
idle_timeout, tcp_fastclose and the -dd byte dumps (hex, or ASCII with -a)."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import Processes, free_port, run_tool
from tests.pen.support import (
    as_root_args,
    listen_queue,
    penctl,
    read_response,
    self_signed_certificate,
    start_backend,
    start_pen,
    start_with_control,
    tls_client,
)

PEN_HOST = "127.0.64.1"
BACKEND = "127.0.64.2"
CLIENT = "127.0.65.1"


def controlled_pen(processes: Processes, *args: str, backend: str | None = None) -> tuple:
    """Our pen with a control port in front of `backend` (a test HTTP backend if None)."""
    if backend is None:
        backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    return start_with_control(processes, PEN_HOST, [backend], *args)


def request(conn: socket.socket, path: str) -> str:
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return read_response(conn)[0]


def closed_by_peer(conn: socket.socket, within: float) -> bool:
    """Whether the other end closes `conn` within `within` seconds."""
    conn.settimeout(within)
    try:
        return conn.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_connection_socket_and_close(processes: Processes) -> None:
    _, port, control = controlled_pen(processes)
    first = socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0))
    second = socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0))
    with first, second:
        assert request(first, "/1") == "b" and request(second, "/2") == "b"
        reply = penctl(PEN_HOST, control, "connection", "0").splitlines()
        assert reply[0] == "Connection 0:" and reply[1] == "state = 2"
        down_fd, up_fd = (int(part.split("= ")[1]) for part in reply[2].split(", "))
        assert reply[3] == "client = 0, server = 0" and reply[4] == "pend = 0"
        for fd in (down_fd, up_fd):
            assert penctl(PEN_HOST, control, "socket", str(fd)) == (
                f"Socket {fd} belongs to connection 0\n"
            )
        assert penctl(PEN_HOST, control, "socket", "9999") == (
            "Socket 9999 belongs to connection -1\n"
        )
        assert penctl(PEN_HOST, control, "connection", "500") == "Connection 500 out of range\n"
        assert penctl(PEN_HOST, control, "close", "0") == "Forcibly closing connection 0\n"
        assert closed_by_peer(first, 5)
        assert request(second, "/still") == "b"  # the other connection goes on
        assert penctl(PEN_HOST, control, "connection", "0").splitlines()[1] == "state = 0"
        # a new connection takes the lowest free number, as in the original's table
        with socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0)) as third:
            assert request(third, "/3") == "b"
            assert penctl(PEN_HOST, control, "connection", "0").splitlines()[1] == "state = 2"


def test_idle_timeout_closes_only_quiet_connections(processes: Processes) -> None:
    _, port, control = controlled_pen(processes)
    assert penctl(PEN_HOST, control, "idle_timeout") == "Idle timeout: 0 seconds\n"
    assert penctl(PEN_HOST, control, "idle_timeout", "3") == "Idle timeout: 3 seconds\n"
    quiet = socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0))
    busy = socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0))
    with quiet, busy:
        quiet_since = time.monotonic()  # before pen reads its last byte
        assert request(quiet, "/q") == "b"
        deadline = quiet_since + 60
        # the busy one talks every 0.2 s (well within 3 s) until pen closes the quiet one
        while not closed_by_peer(quiet, 0.2):
            assert time.monotonic() < deadline, "the quiet connection was never closed"
            assert request(busy, "/b") == "b"
        took = time.monotonic() - quiet_since
        assert took >= 3  # not before its idle time (a busy machine only makes it later)
        assert request(busy, "/still") == "b"
    # 0 turns it off again: a connection quiet for longer than that one stays open
    assert penctl(PEN_HOST, control, "idle_timeout", "0") == "Idle timeout: 0 seconds\n"
    with socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0)) as quiet:
        assert request(quiet, "/q") == "b"
        assert not closed_by_peer(quiet, took + 1.5)


@contextmanager
def raw_backend() -> Iterator[tuple[socket.socket, str]]:
    """A listening socket the test drives by hand: (listener, "host:port")."""
    listener = socket.create_server((BACKEND, 0))
    listener.settimeout(5)
    with listener:
        yield listener, f"{BACKEND}:{listener.getsockname()[1]}"


def test_tcp_fastclose(processes: Processes) -> None:
    with raw_backend() as (listener, backend):
        _, port, control = controlled_pen(processes, backend=backend)
        assert penctl(PEN_HOST, control, "tcp_fastclose") == (
            "do_cmd: ignoring tcp_fastclose without argument\n"
        )
        assert penctl(PEN_HOST, control, "tcp_fastclose", "sometimes").startswith("do_cmd: ")

        def pair() -> tuple[socket.socket, socket.socket]:
            client = socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0))
            server, _ = listener.accept()
            server.settimeout(5)
            return client, server

        # off (the default): a half-close travels on, the other direction stays open
        client, server = pair()
        with client, server:
            client.sendall(b"ping")
            client.shutdown(socket.SHUT_WR)
            assert server.recv(10) == b"ping" and server.recv(10) == b""
            # connected (2) with the client's side closed (8)
            assert penctl(PEN_HOST, control, "connection", "0").splitlines()[1] == "state = 10"
            server.sendall(b"late answer")
            assert client.recv(100) == b"late answer"
        # down: the client's close ends the connection at once
        penctl(PEN_HOST, control, "tcp_fastclose", "down")
        client, server = pair()
        with client, server:
            client.sendall(b"ping")
            client.shutdown(socket.SHUT_WR)
            assert server.recv(10) == b"ping"
            assert closed_by_peer(server, 5)
            assert closed_by_peer(client, 5)
        # up: the server's close ends it; with "down" alone it would not
        penctl(PEN_HOST, control, "tcp_fastclose", "up")
        client, server = pair()
        with client, server:
            server.sendall(b"bye")
            server.shutdown(socket.SHUT_WR)
            assert client.recv(10) == b"bye"
            assert closed_by_peer(client, 5)
            with pytest.raises(OSError):  # pen closed the client side entirely
                for _ in range(50):
                    client.sendall(b"more")
                    time.sleep(0.02)
            assert closed_by_peer(server, 5)
        penctl(PEN_HOST, control, "tcp_fastclose", "off")
        client, server = pair()
        with client, server:
            server.sendall(b"bye")
            server.shutdown(socket.SHUT_WR)
            assert client.recv(10) == b"bye" and client.recv(10) == b""
            client.sendall(b"more")  # the client may still talk to a half-closed server
            assert server.recv(10) == b"more"


@pytest.mark.parametrize("ascii_dumps", [False, True])
def test_debug_dumps_in_hex_or_ascii(processes: Processes, ascii_dumps: bool) -> None:
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    port = free_port(PEN_HOST)
    options = ["-dd", "-a"] if ascii_dumps else ["-dd"]
    pen = start_pen(processes, PEN_HOST, port, *options, "--", backend)
    with socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0)) as conn:
        assert request(conn, "/dumped\nFAKE") == "b"
    pen.send_signal(signal.SIGTERM)
    _, err = pen.communicate(timeout=10)
    text = err.decode()
    assert f"pen: connection 0 {CLIENT} -> server 0: " in text
    assert f"pen: connection 0 {CLIENT} <- server 0: " in text
    if ascii_dumps:  # control characters escaped: a dump line cannot be split or faked
        assert "GET /dumped\\nFAKE HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n" in text
        assert "\nFAKE" not in text
    else:
        assert b"GET /dumped".hex(" ") in text


def test_source_address_of_upstream_connections(processes: Processes) -> None:
    with raw_backend() as (listener, backend):
        _, port, control = controlled_pen(processes, backend=backend)
        assert penctl(PEN_HOST, control, "source") == ""
        # not an address of this machine: refused, nothing changes
        assert penctl(PEN_HOST, control, "source", "192.0.2.1").startswith("do_cmd: cannot")
        assert penctl(PEN_HOST, control, "source", "127.0.66.7") == ""
        assert penctl(PEN_HOST, control, "source") == "127.0.66.7\n"
        with socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0)):
            server, peer = listener.accept()
            server.close()
        assert peer[0] == "127.0.66.7"
        penctl(PEN_HOST, control, "no", "source")
        with socket.create_connection((PEN_HOST, port), source_address=(CLIENT, 0)):
            server, peer = listener.accept()
            server.close()
        assert peer[0] != "127.0.66.7"


def test_source_address_on_the_tls_path(processes: Processes, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with raw_backend() as (listener, backend):
        tls = ("-E", str(cert), "-K", str(key), "-o", "source 127.0.66.8")
        _, port, _ = controlled_pen(processes, *tls, backend=backend)
        with tls_client(PEN_HOST, port, cert) as conn:
            conn.sendall(b"hello")
            server, peer = listener.accept()
            with server:
                assert server.recv(5) == b"hello"
        assert peer[0] == "127.0.66.8"


def test_tls_path_fails_over_from_a_refusing_server(processes: Processes, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    dead = f"{BACKEND}:{free_port(BACKEND)}"  # nothing listens: the connect is refused
    with raw_backend() as (listener, backend):
        port, control = free_port(PEN_HOST), free_port(PEN_HOST)
        start_pen(
            processes, PEN_HOST, port, "-r", "-E", str(cert), "-K", str(key),
            "-C", f"{PEN_HOST}:{control}", *as_root_args(), "--", dead, backend,
        )  # fmt: skip
        with tls_client(PEN_HOST, port, cert) as conn:
            conn.sendall(b"hello")
            server, _ = listener.accept()
            with server:
                assert server.recv(5) == b"hello"
                server.sendall(b"hi")
                assert conn.recv(2) == b"hi"
        servers = penctl(PEN_HOST, control, "servers").splitlines()
        assert " conn 0 " in servers[0]  # the refused attempt gave its slot back


def test_penctl_errors_are_one_line() -> None:
    closed = f"{PEN_HOST}:{free_port(PEN_HOST)}"  # nothing listens there
    result = run_tool("penctl", closed, "servers")
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.decode() == f"penctl: {closed}: Connection refused\n"
    result = run_tool("penctl")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(b"penctl: Missing argument")


@contextmanager
def blackhole() -> Iterator[str]:
    """A server address whose connects hang: a listener with its queue full, SYNs dropped."""
    with socket.socket() as listener:
        listener.bind((BACKEND, 0))
        listener.listen(0)
        host, port = listener.getsockname()
        fillers = [socket.create_connection((host, port), timeout=5)]  # backlog 0 holds one
        try:
            yield f"{host}:{port}"
        finally:
            for filler in fillers:
                filler.close()


def connections_used(control: int) -> int:
    page = penctl(PEN_HOST, control, "status")
    return int(page.split("Number of connections: ")[1].split(" max, ")[1].split(" used")[0])


def wait_used(control: int, count: int) -> None:
    deadline = time.monotonic() + 10
    while connections_used(control) != count:
        assert time.monotonic() < deadline, f"never {count} connections"
        time.sleep(0.05)


def test_pending_max_holds_clients_back_while_connects_hang(processes: Processes) -> None:
    with blackhole() as server:
        _, port, control = controlled_pen(
            processes, "-t", "1", "-b", "0", "-o", "pending_max 1", backend=server
        )
        first = socket.create_connection((PEN_HOST, port))
        second = socket.create_connection((PEN_HOST, port))
        wait_used(control, 1)
        # The second waits in pen's accept queue (the kernel finished its handshake
        # before pen answered the control port), and stays there while pen serves
        # more control requests: pen holds it back, whatever the machine's speed.
        for _ in range(5):
            assert listen_queue(port)[0] == 1 and connections_used(control) == 1
        penctl(PEN_HOST, control, "pending_max", "100")
        assert closed_by_peer(first, within=30)  # its connect timed out: the next client is in
        assert listen_queue(port)[0] == 0
        wait_used(control, 1)
        third = socket.create_connection((PEN_HOST, port))
        wait_used(control, 2)  # with room for more attempts, accepted at once
        for client in (first, second, third):
            client.close()
