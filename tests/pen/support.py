"""Helpers for pen's end-to-end tests: backends, pen itself, clients, penctl."""

from __future__ import annotations

import errno
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import (
    REPO_ROOT,
    Processes,
    free_port,
    require_program,
    tool_argv,
    tool_env,
)

DEADLINE = 10.0


def start_backend(processes: Processes, host: str, name: str, port: int = 0) -> int:
    """Start a test backend on host (a free port unless given); return its port."""
    port = port or free_port(host)
    process = processes.start(
        [sys.executable, "-m", "tests.pen.backend", host, str(port), name],
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=tool_env(),
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"ready\n", f"backend {name} did not start"
    return port


def wait_bound(
    host: str, port: int, process: subprocess.Popen[bytes], kind: int = socket.SOCK_STREAM
) -> None:
    """Wait until `process` has bound host:port (probing by bind, not by connecting,
    so that the probe is not a client of pen)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:  # ignore TIME_WAIT; for UDP it would share the port
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return
                raise
        time.sleep(0.02)
    raise AssertionError(f"pen did not bind {host}:{port}")


def as_root_args() -> list[str]:
    """-u root when running as root: the control port needs it (like the C pen)."""
    return ["-u", "root"] if os.geteuid() == 0 else []


def start_pen(
    processes: Processes, host: str, port: int, *args: str, **kwargs: object
) -> subprocess.Popen[bytes]:
    """Start our pen in the foreground listening on host:port, wait until it is bound."""
    kwargs.setdefault("stderr", subprocess.PIPE)
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # callers pass options, "--", then the servers; the listen address goes between
    split = args.index("--") if "--" in args else len(args)
    argv = tool_argv("pen", "-f", *args[:split], listen, *args[split + 1 :])
    process = processes.start(argv, env=tool_env(), **kwargs)
    wait_bound(host, port, process, socket.SOCK_DGRAM if "-U" in args else socket.SOCK_STREAM)
    return process


def start_with_control(
    processes: Processes, host: str, servers: list[str], *args: str
) -> tuple[subprocess.Popen[bytes], int, int]:
    """Our pen on `host` with a control port there, in front of `servers` (HOST:PORT);
    `args` are more options. Waits for both ports: (process, port, control port)."""
    kind = socket.SOCK_DGRAM if "-U" in args else socket.SOCK_STREAM
    port, control = free_port(host, kind), free_port(host)
    control_address = f"[{host}]:{control}" if ":" in host else f"{host}:{control}"
    process = start_pen(
        processes, host, port, "-C", control_address, *as_root_args(), *args, "--", *servers
    )
    wait_bound(host, control, process)
    return process, port, control


def http_get(
    host: str,
    port: int,
    path: str = "/",
    *,
    source: str | None = None,
    headers: bytes = b"",
    timeout: float = 5.0,
) -> tuple[str, bytes]:
    """One request on a new connection: (backend name, head the backend saw)."""
    with socket.create_connection(
        (host, port), timeout=timeout, source_address=(source, 0) if source else None
    ) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n".encode() + headers + b"\r\n")
        return read_response(conn)


def read_response(conn: socket.socket) -> tuple[str, bytes]:
    """Read one response of the test backend: (backend name, head it saw)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response (got {data!r})")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of a response")
        body += chunk
    name, _, seen = body.partition(b"\n")
    return name.decode(), seen


def penctl(host: str, port: int, *command: str) -> str:
    """The reply of pen's control port to one command (the protocol penctl speaks)."""
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(" ".join(command).encode() + b"\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    return reply.decode()


@contextmanager
def tls_client(
    host: str, port: int, cert: Path, source: str | None = None
) -> Iterator[ssl.SSLSocket]:
    """A TLS connection to pen on host:port that trusts the throw-away certificate `cert`."""
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    source_address = (source, 0) if source else None
    with (
        socket.create_connection((host, port), timeout=5, source_address=source_address) as raw,
        context.wrap_socket(raw) as conn,
    ):
        yield conn


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for localhost and its key, made with openssl: (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"]
    output = ["-days", "1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run([require_program("openssl"), *request, *output], check=True, capture_output=True)
    return cert, key


def listen_queue(port: int) -> tuple[int, int]:
    """The listening TCP socket on `port`: (connections waiting to be accepted, backlog)."""
    (line,) = _ss("listening", f"sport = :{port}")
    waiting, backlog = line.split()[:2]
    return int(waiting), int(backlog)


def unread_bytes(local: tuple[str, int], peer: tuple[str, int]) -> int:
    """Bytes in the receive queue of the TCP socket local -> peer, not yet read by its owner."""
    (line,) = _ss("established", f"src {local[0]}:{local[1]} and dst {peer[0]}:{peer[1]}")
    return int(line.split()[0])


def _ss(state: str, selector: str) -> list[str]:
    """``ss -tn`` for the TCP sockets in `state` that match `selector`, one line each:
    Recv-Q, Send-Q, local address, peer address."""
    argv = [require_program("ss"), "-Htn", "state", state, selector]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.splitlines()
