"""penlog as a real process: stdin lines to UDP datagrams on loopback."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

from pentools.core.addresses import address_family
from tests.conftest import free_port, run_tool, tool_argv, tool_env


def receiver(host: str) -> socket.socket:
    sock = socket.socket(address_family(host), socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((host, 0))
    sock.settimeout(5)
    return sock


def receive(sock: socket.socket, count: int) -> list[tuple[bytes, str]]:
    return [(data, address[0]) for data, address in (sock.recvfrom(70000) for _ in range(count))]


@pytest.mark.parametrize(("server", "source"), [("127.0.0.1", "127.0.0.21"), ("::1", "::1")])
def test_each_line_is_one_datagram_from_my_ip(server: str, source: str) -> None:
    with receiver(server) as sock:
        lines = b"first line\n\nthird \xff\x00 line\nlast line without newline"
        result = run_tool(
            "penlog", "--stats", server, str(sock.getsockname()[1]), source, input=lines
        )
        assert result.returncode == 0, result.stderr
        got = receive(sock, 4)
    assert [data for data, _ in got] == [
        b"first line\n",
        b"\n",
        b"third \xff\x00 line\n",
        b"last line without newline\n",
    ]
    assert {address for _, address in got} == {source}
    assert result.stderr == b"penlog: sent 4, dropped 0, truncated 0\n"


def test_long_lines_are_kept_whole_up_to_the_udp_limit_then_truncated() -> None:
    with receiver("127.0.0.1") as sock:
        long_line = b"a" * 60000 + b"\n"
        huge_line = b"b" * 200000 + b"\n"
        result = run_tool(
            "penlog",
            "--stats",
            "localhost",
            str(sock.getsockname()[1]),
            "127.0.0.21",
            input=long_line + huge_line + b"after\n",
        )
        got = [data for data, _ in receive(sock, 3)]
    assert result.returncode == 0
    assert got == [long_line, b"b" * 65506 + b"\n", b"after\n"]
    assert result.stderr == b"penlog: sent 3, dropped 0, truncated 1\n"


def test_penlogd_down_is_counted_not_fatal() -> None:
    port = free_port("127.0.0.1", socket.SOCK_DGRAM)  # nobody listens: ICMP port unreachable
    lines = b"".join(b"line %d\n" % n for n in range(2000))
    result = run_tool("penlog", "--stats", "127.0.0.1", str(port), input=lines)
    assert result.returncode == 0
    found = re.fullmatch(rb"penlog: sent (\d+), dropped (\d+), truncated 0\n", result.stderr)
    assert found, result.stderr
    sent, dropped = int(found[1]), int(found[2])
    assert sent + dropped == 2000
    assert dropped > 0


def test_term_ends_it_cleanly_with_its_counters() -> None:
    with receiver("127.0.0.1") as sock:
        process = subprocess.Popen(
            tool_argv("penlog", "--stats", "127.0.0.1", str(sock.getsockname()[1])),
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=tool_env(),
        )
        try:
            assert process.stdin is not None
            process.stdin.write(b"one\n")
            process.stdin.flush()
            assert receive(sock, 1)[0][0] == b"one\n"  # it is running and reading
            process.terminate()
            _, stderr = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0
    assert stderr == b"penlog: sent 1, dropped 0, truncated 0\n"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["127.0.0.1"],
        ["127.0.0.1", "port"],
        ["127.0.0.1", "0"],
        ["127.0.0.1", "10000", "not-an-address.invalid"],
        ["nosuchhost.invalid", "10000"],
        ["127.0.0.1", "10000", "::1"],
        ["127.0.0.1", "10000", "192.0.2.1"],  # not an address of this host
        ["127.0.0.1", "10000", "127.0.0.1", "extra"],
    ],
)
def test_bad_arguments_give_one_line_and_a_failure(args: list[str]) -> None:
    result = run_tool("penlog", *args, input=b"x\n")
    assert result.returncode != 0
    assert result.stderr.startswith(b"penlog: ")
    assert result.stderr.count(b"\n") == 1
