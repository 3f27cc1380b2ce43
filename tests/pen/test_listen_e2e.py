"""End-to-end: ``listen ADDRESS`` moves pen's listener while it runs (plain, TLS, Unix
socket, UDP); a refused address is a reply, and pen goes on where it was."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import Processes, free_port
from tests.pen.support import (
    http_get,
    penctl,
    read_response,
    self_signed_certificate,
    start_backend,
    start_with_control,
    tls_client,
    wait_bound,
)

PEN_HOST = "127.0.67.1"
BACKEND = "127.0.67.2"


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def start(processes: Processes, *args: str) -> tuple:
    """Our pen with a control port in front of one test backend: (process, port, control)."""
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    return start_with_control(processes, PEN_HOST, [backend], *args)


def test_listen_moves_the_listener_and_open_connections_go_on(processes: Processes) -> None:
    _, port, control = start(processes)
    with socket.create_connection((PEN_HOST, port)) as old_client:
        old_client.sendall(b"GET /before HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(old_client)[0] == "b"
        new_port = free_port(PEN_HOST)
        assert penctl(PEN_HOST, control, "listen", f"{PEN_HOST}:{new_port}") == (
            f"{PEN_HOST}:{new_port}\n"
        )
        assert penctl(PEN_HOST, control, "listen") == f"{PEN_HOST}:{new_port}\n"
        assert refused(PEN_HOST, port)
        assert http_get(PEN_HOST, new_port, "/after")[0] == "b"
        old_client.sendall(b"GET /still HTTP/1.1\r\nHost: t\r\n\r\n")  # kept across the move
        name, head = read_response(old_client)
        assert name == "b" and head.startswith(b"GET /still ")


def test_a_refused_address_is_a_reply_and_pen_stays(processes: Processes) -> None:
    process, port, control = start(processes)
    with socket.socket() as taken:
        taken.bind((PEN_HOST, 0))
        taken.listen()
        busy = taken.getsockname()[1]
        reply = penctl(PEN_HOST, control, "listen", f"{PEN_HOST}:{busy}")
    assert reply == (
        f"do_cmd: cannot listen on {PEN_HOST}:{busy} (listen address): Address already in use\n"
    )
    assert penctl(PEN_HOST, control, "listen", "nohost.invalid:80").startswith("do_cmd: ")
    assert penctl(PEN_HOST, control, "listen") == f"{PEN_HOST}:{port}\n"
    assert http_get(PEN_HOST, port, "/")[0] == "b"
    assert process.poll() is None


def test_listen_again_on_the_same_address_changes_nothing(processes: Processes) -> None:
    _, port, control = start(processes)
    assert penctl(PEN_HOST, control, "listen", f"{PEN_HOST}:{port}") == f"{PEN_HOST}:{port}\n"
    assert http_get(PEN_HOST, port, "/")[0] == "b"


def test_listen_moves_to_and_from_a_unix_socket(processes: Processes, tmp_path: Path) -> None:
    _, port, control = start(processes)
    path = tmp_path / "pen.sock"
    assert penctl(PEN_HOST, control, "listen", str(path)) == f"{path}\n"
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
        client.sendall(b"GET /unix HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(client)[0] == "b"
    assert refused(PEN_HOST, port)
    new_port = free_port(PEN_HOST)
    assert penctl(PEN_HOST, control, "listen", f"{PEN_HOST}:{new_port}") == (
        f"{PEN_HOST}:{new_port}\n"
    )
    assert not path.exists()  # the Unix socket's name goes with it
    assert http_get(PEN_HOST, new_port, "/")[0] == "b"


def test_listen_moves_the_tls_listener(processes: Processes, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    process, port, control = start(processes, "-E", str(cert), "-K", str(key))
    new_port = free_port(PEN_HOST)
    assert penctl(PEN_HOST, control, "listen", f"{PEN_HOST}:{new_port}") == (
        f"{PEN_HOST}:{new_port}\n"
    )
    wait_bound(PEN_HOST, new_port, process)
    with tls_client(PEN_HOST, new_port, cert) as conn:
        conn.sendall(b"GET /tls HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(conn)[0] == "b"
    assert refused(PEN_HOST, port)


def test_listen_moves_the_udp_listener(processes: Processes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as echo:
        echo.bind((BACKEND, 0))
        backend = f"{BACKEND}:{echo.getsockname()[1]}"
        process, _, control = start_with_control(processes, PEN_HOST, [backend], "-U")
        new_port = free_port(PEN_HOST, socket.SOCK_DGRAM)
        assert penctl(PEN_HOST, control, "listen", f"{PEN_HOST}:{new_port}") == (
            f"{PEN_HOST}:{new_port}\n"
        )
        wait_bound(PEN_HOST, new_port, process, socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"ping", (PEN_HOST, new_port))
            data, relay = echo.recvfrom(100)
            assert data == b"ping"
            echo.sendto(b"pong", relay)
            assert client.recvfrom(100) == (b"pong", (PEN_HOST, new_port))
