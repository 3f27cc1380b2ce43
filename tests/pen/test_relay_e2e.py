"""End-to-end: bulk bytes through pen's relay, with stalled readers on both sides.

A reader that stops reading fills pen's buffer towards it; pen must then stop
reading the other side (flow control), so the sender blocks after a bounded
amount; pen resumes when the reader does, loses nothing and passes each
half-close on only after the bytes before it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable

from tests.conftest import Processes, free_port
from tests.pen.support import start_pen, unread_bytes

PEN_HOST = "127.0.41.1"
ECHO_HOST = "127.0.41.2"
SIZE = 64 * 1024 * 1024
#: What may be in flight while a reader stalls: the kernel's socket buffers on
#: the way (they grow to a few MB each on loopback) and pen's own buffers.
#: An unbounded pen takes the whole SIZE.
BOUND = SIZE // 2


class StalledEcho:
    """A loopback echo server for one connection that reads nothing until released."""

    def __init__(self) -> None:
        self.listener = socket.create_server((ECHO_HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.release = threading.Event()
        self.accepted = threading.Event()
        self.pen_side: tuple[str, int] = ("", 0)  # pen's end of the connection
        self.echoed = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, self.pen_side = self.listener.accept()
        self.accepted.set()
        with conn:
            conn.settimeout(60)
            self.release.wait(timeout=120)
            while data := conn.recv(65536):
                conn.sendall(data)
                self.echoed += len(data)
            conn.shutdown(socket.SHUT_WR)  # the backend's EOF after its last byte

    def close(self) -> None:
        self.release.set()
        self.listener.close()
        self.thread.join(timeout=30)


def held_back(unread: Callable[[], int], progress: Callable[[], int]) -> int:
    """Wait until pen leaves bytes unread in a socket while the sender's `progress`
    stands still (ten looks in a row): flow control at work. That progress."""
    looks: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    while True:
        looks = [*looks[-9:], (unread(), progress())]
        if len(looks) == 10 and all(n > 0 for n, _ in looks) and len({p for _, p in looks}) == 1:
            return looks[-1][1]
        assert time.monotonic() < deadline, f"pen never held the sender back: {looks}"
        time.sleep(0.1)


def test_bulk_echo_with_slow_readers_loses_nothing(processes: Processes) -> None:
    echo = StalledEcho()
    try:
        port = free_port(PEN_HOST)
        start_pen(processes, PEN_HOST, port, "--", f"{ECHO_HOST}:{echo.port}")
        payload = os.urandom(SIZE)
        client = socket.create_connection((PEN_HOST, port), timeout=60)
        sent = 0

        def send() -> None:
            nonlocal sent
            view = memoryview(payload)
            while sent < SIZE:
                sent += client.send(view[sent : sent + 65536])
            client.shutdown(socket.SHUT_WR)  # the client's EOF after its last byte

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        # The backend reads nothing: pen stops reading the client, which blocks.
        from_client = held_back(
            lambda: unread_bytes((PEN_HOST, port), client.getsockname()), lambda: sent
        )
        assert from_client < BOUND
        # The backend echoes, the client reads nothing: pen stops reading the backend.
        echo.release.set()
        assert echo.accepted.wait(timeout=60)
        upstream = (ECHO_HOST, echo.port)
        from_backend = held_back(lambda: unread_bytes(echo.pen_side, upstream), lambda: echo.echoed)
        assert from_backend < BOUND
        received = hashlib.sha256()
        count = 0
        while chunk := client.recv(65536):  # EOF only after every byte
            received.update(chunk)
            count += len(chunk)
        sender.join(timeout=60)
        client.close()
        assert count == SIZE
        assert received.digest() == hashlib.sha256(payload).digest()
    finally:
        echo.close()
