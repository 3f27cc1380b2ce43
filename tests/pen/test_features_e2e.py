"""End-to-end: -H, the PROXY protocol, TLS (-E/-K), UDP (-U), IPv6 and Unix sockets."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.conftest import Processes, free_port, tool_argv, tool_env
from tests.pen.support import (
    DEADLINE,
    http_get,
    read_response,
    self_signed_certificate,
    start_backend,
    start_pen,
    tls_client,
)

PEN_HOST = "127.0.60.1"
BACKEND = "127.0.60.2"


def test_forwarded_for_is_appended_not_only_added(processes: Processes) -> None:
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-H", "--", backend)
    _, seen = http_get(PEN_HOST, port, source="127.0.61.1")
    assert b"\r\nX-Forwarded-For: 127.0.61.1\r\n" in seen
    _, seen = http_get(PEN_HOST, port, source="127.0.61.2", headers=b"X-Forwarded-For: 6.6.6.6\r\n")
    assert b"\r\nX-Forwarded-For: 6.6.6.6, 127.0.61.2\r\n" in seen
    # a head that arrives in pieces is still rewritten, once
    with socket.create_connection((PEN_HOST, port), source_address=("127.0.61.3", 0)) as conn:
        conn.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        conn.sendall(b"Accept: */*\r\n\r\n")
        _, seen = read_response(conn)
        conn.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        _, second = read_response(conn)
    assert seen.count(b"X-Forwarded-For: 127.0.61.3") == 1
    assert second.startswith(b"GET /next") and b"X-Forwarded-For: 127.0.61.3" in second


def test_proxy_protocol_header_reaches_the_backend(processes: Processes) -> None:
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    for version, expected in (("1", b"PROXY TCP4 127.0.62.1 "), ("2", b"\r\n\r\n\x00\r\nQUIT\n")):
        port = free_port(PEN_HOST)
        start_pen(processes, PEN_HOST, port, "--proxy-protocol", version, "--", backend)
        _, seen = http_get(PEN_HOST, port, source="127.0.62.1")
        assert seen.startswith(expected)


def test_tls_termination(processes: Processes, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    port = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, port, "-E", str(cert), "-K", str(key), "--", backend)
    with tls_client(PEN_HOST, port, cert) as conn:
        conn.sendall(b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n")
        name, seen = read_response(conn)  # type: ignore[arg-type]
    assert name == "b" and seen.startswith(b"GET /secret ")


def test_udp_balancing(processes: Processes) -> None:
    echo_servers = []
    for host in ("127.0.63.2", "127.0.63.3"):
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind((host, 0))
        server.settimeout(5)
        echo_servers.append(server)
    port = free_port(PEN_HOST, socket.SOCK_DGRAM)
    backends = [
        f"{h}:{s.getsockname()[1]}"
        for h, s in zip(("127.0.63.2", "127.0.63.3"), echo_servers, strict=True)
    ]
    start_pen(processes, PEN_HOST, port, "-U", "-r", "--", *backends)
    clients = []
    for i in range(2):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((f"127.0.64.{i + 1}", 0))
        client.settimeout(5)
        client.sendto(f"hello {i}".encode(), (PEN_HOST, port))
        clients.append(client)
    for i, server in enumerate(echo_servers):
        data, peer = server.recvfrom(100)
        assert data == f"hello {i}".encode()
        server.sendto(b"reply " + data, peer)
    for i, client in enumerate(clients):
        assert client.recvfrom(100)[0] == f"reply hello {i}".encode()
    for sock in [*clients, *echo_servers]:
        sock.close()


def test_ipv6_listen_and_backend(processes: Processes) -> None:
    backend = f"[::1]:{start_backend(processes, '::1', 'v6')}"
    port = free_port("::1")
    start_pen(processes, "::1", port, "--", backend)
    name, _ = http_get("::1", port)
    assert name == "v6"


def test_unix_socket_listen(processes: Processes, tmp_path: Path) -> None:
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    path = tmp_path / "pen.sock"
    pen = processes.start(
        [*tool_argv("pen"), "-f", str(path), backend],
        env=tool_env(),
    )
    with socket.socket(socket.AF_UNIX) as conn:
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                conn.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if pen.poll() is not None:
                    raise AssertionError("pen exited") from None
                assert time.monotonic() < deadline, f"pen never listened on {path}"
                time.sleep(0.02)
        conn.sendall(b"GET /unix HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(conn)[1].startswith(b"GET /unix ")
