"""End-to-end: bulk bytes through pen's relay, with slow readers on both sides.

A slow reader fills pen's buffer towards it; pen must then stop reading the
other side (flow control), resume when the buffer drains, lose nothing and
pass each half-close on only after the bytes before it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

from tests.conftest import Processes, free_port
from tests.pen.support import start_pen

PEN_HOST = "127.0.41.1"
ECHO_HOST = "127.0.41.2"
SIZE = 16 * 1024 * 1024


class SlowEcho:
    """A loopback echo server (one connection) that reads slowly at first."""

    def __init__(self) -> None:
        self.listener = socket.create_server((ECHO_HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(30)
            time.sleep(0.5)  # let pen's buffer towards the backend fill up
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)  # the backend's EOF after its last byte

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=30)


def test_bulk_echo_with_slow_readers_loses_nothing(processes: Processes) -> None:
    echo = SlowEcho()
    try:
        port = free_port(PEN_HOST)
        start_pen(processes, PEN_HOST, port, "--", f"{ECHO_HOST}:{echo.port}")
        payload = os.urandom(SIZE)
        client = socket.create_connection((PEN_HOST, port), timeout=30)

        def send() -> None:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)  # the client's EOF after its last byte

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(1.0)  # a slow client: pen's buffer towards it fills up too
        received = hashlib.sha256()
        count = 0
        while chunk := client.recv(65536):  # EOF only after every byte
            received.update(chunk)
            count += len(chunk)
        sender.join(timeout=30)
        client.close()
        assert count == SIZE
        assert received.digest() == hashlib.sha256(payload).digest()
    finally:
        echo.close()
