"""Access lists end to end: real pen processes, clients bound to distinct loopback addresses.

One test sends the same commands to the C pen 0.34.1 and to ours and
compares who is served by which server; the others run our pen alone,
through the plain relay, TLS, UDP, the control port, IPv6 and -F.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections import Counter
from pathlib import Path

from tests.conftest import Processes, free_port, require_c_tool, tool_argv, tool_env
from tests.pen.support import (
    as_root_args,
    read_response,
    self_signed_certificate,
    start_backend,
    start_pen,
    start_with_control,
    tls_client,
    wait_bound,
)

PEN_HOST = "127.0.70.1"
BACKENDS = ("127.0.70.10", "127.0.70.11")
ALLOWED, DENIED, OTHER = "127.0.71.2", "127.0.71.3", "127.0.72.4"

#: A denied client: pen accepts, then closes without a byte (EOF, or a reset
#: when the request was already in pen's receive queue).
REFUSED = "refused"


def request(host: str, port: int, source: str) -> str:
    """The name of the backend that served one request from `source`, or REFUSED."""
    try:
        with socket.create_connection((host, port), timeout=5, source_address=(source, 0)) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: acl\r\n\r\n")
            return read_response(conn)[0]
    except ConnectionError:
        return REFUSED


def control(port: int, line: str, source: str = ALLOWED, host: str = PEN_HOST) -> str | None:
    """The control port's reply to `line` from `source`; None when closed without a reply."""
    try:
        with socket.create_connection((host, port), timeout=5, source_address=(source, 0)) as conn:
            conn.sendall(line.encode() + b"\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
    except ConnectionError:
        return None
    return reply.decode() or None


def start_farm(processes: Processes) -> list[str]:
    """The two backends, named one and two, as pen's server arguments."""
    return [
        f"{host}:{start_backend(processes, host, name)}"
        for host, name in zip(BACKENDS, ("one", "two"), strict=True)
    ]


def start_ours(
    processes: Processes, servers: list[str], *args: str, host: str = PEN_HOST
) -> tuple[int, int]:
    _, port, ctl = start_with_control(processes, host, servers, *args)
    return port, ctl


def served_by(port: int, source: str, times: int = 4, host: str = PEN_HOST) -> Counter[str]:
    return Counter(request(host, port, source) for _ in range(times))


def test_client_acl_refuses_one_address_and_serves_another(processes: Processes) -> None:
    port, ctl = start_ours(processes, start_farm(processes), "-r")
    assert control(ctl, "acl 1 deny " + DENIED) is None  # setting replies nothing
    assert control(ctl, "client_acl 1") == "1\n"
    assert request(PEN_HOST, port, DENIED) == REFUSED
    assert request(PEN_HOST, port, ALLOWED) in ("one", "two")
    # a silent client sees EOF at once, not a hang
    with socket.create_connection((PEN_HOST, port), timeout=5, source_address=(DENIED, 0)) as conn:
        assert conn.recv(10) == b""
    page = control(ctl, "status")
    assert page is not None and "denied: 2 clients" in page
    control(ctl, "no acl 1")
    assert request(PEN_HOST, port, DENIED) in ("one", "two")


def test_server_acl_steers_clients(processes: Processes) -> None:
    port, ctl = start_ours(processes, start_farm(processes), "-r")
    control(ctl, "acl 2 permit " + ALLOWED)
    control(ctl, "server 0 acl 2")
    assert served_by(port, ALLOWED) == {"one": 2, "two": 2}
    assert served_by(port, DENIED) == {"two": 4}
    control(ctl, "server 1 acl 2")
    assert served_by(port, DENIED, 2) == {REFUSED: 2}


def test_control_acl_refuses_penctl_from_elsewhere(processes: Processes) -> None:
    _, ctl = start_ours(
        processes, start_farm(processes), "-o", f"acl 3 permit {ALLOWED}", "-o", "control_acl 3"
    )
    no_hash = "no hash no roundrobin no stubborn no weight no prio\n"
    assert control(ctl, "control_acl", source=ALLOWED) == "3\n"
    # from elsewhere: closed without a reply, and the command is not carried out
    assert control(ctl, "mode", source=DENIED) is None
    assert control(ctl, "hash", source=DENIED) is None
    assert control(ctl, "mode", source=ALLOWED) == no_hash
    # our penctl connects from 127.0.0.1, which list 3 does not permit either: pen
    # closes without a word, so penctl prints no reply, and the command is not
    # carried out. (pen may close before it has read the command: then the close
    # is a reset, which penctl reports as an error.)
    result = subprocess.run(
        tool_argv("penctl", f"{PEN_HOST}:{ctl}", "hash"),
        env=tool_env(),
        capture_output=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout, result.stderr) in (
        (0, b"", b""),
        (1, b"", f"penctl: {PEN_HOST}:{ctl}: Connection reset by peer\n".encode()),
    )
    assert control(ctl, "mode", source=ALLOWED) == no_hash
    # the same command from the permitted address is carried out
    assert control(ctl, "hash", source=ALLOWED) is None  # setting replies nothing
    assert control(ctl, "mode", source=ALLOWED) == "hash" + no_hash[len("no hash") :]


def test_lists_in_a_cfg_file_round_trip(processes: Processes, tmp_path: Path) -> None:
    servers = start_farm(processes)
    cfg = tmp_path / "pen.cfg"
    cfg.write_text(f"acl 4 deny {DENIED}\nacl 4 permit 127.0.71.0 255.255.255.0\nclient_acl 4\n")
    port, ctl = start_ours(processes, servers, "-F", str(cfg))
    assert request(PEN_HOST, port, ALLOWED) != REFUSED
    assert request(PEN_HOST, port, DENIED) == REFUSED
    assert request(PEN_HOST, port, OTHER) == REFUSED  # no match: the opposite of the last entry
    saved = tmp_path / "saved.cfg"
    assert control(ctl, f"write {saved}") is None
    text = saved.read_text()
    assert (
        f"no acl 4\nacl 4 deny {DENIED} 255.255.255.255\nacl 4 permit 127.0.71.0 255.255.255.0\n"
        in text
    )
    assert "\nclient_acl 4\n" in text
    second_port, _ = start_ours(processes, servers, "-F", str(saved))
    assert [request(PEN_HOST, second_port, s) == REFUSED for s in (ALLOWED, DENIED, OTHER)] == [
        False,
        True,
        True,
    ]


def test_bad_acl_in_startup_commands_is_a_one_line_error() -> None:
    result = subprocess.run(
        tool_argv(
            "pen",
            "-f",
            "-o",
            "acl 1 permit country SE",
            f"{PEN_HOST}:{free_port(PEN_HOST)}",
            "127.0.70.10:80",
        ),
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1 and "GeoIP" in result.stderr


def test_tls_path_refuses_denied_clients(processes: Processes, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    port, ctl = start_ours(
        processes,
        start_farm(processes),
        "-E",
        str(cert),
        "-K",
        str(key),
        "-o",
        f"acl 0 deny {DENIED}",
    )

    def tls_request(source: str) -> str:
        try:
            with tls_client(PEN_HOST, port, cert, source) as conn:
                conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                return read_response(conn)[0]  # type: ignore[arg-type]
        except (ConnectionError, ssl.SSLError):
            return REFUSED

    assert tls_request(ALLOWED) in ("one", "two")
    assert tls_request(DENIED) == REFUSED
    page = control(ctl, "status")
    assert page is not None and "denied: 1 clients" in page


def test_udp_drops_datagrams_of_denied_clients(processes: Processes) -> None:
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind((BACKENDS[0], 0))
    echo.settimeout(5)
    port = free_port(PEN_HOST, socket.SOCK_DGRAM)
    backend = f"{BACKENDS[0]}:{echo.getsockname()[1]}"
    start_pen(processes, PEN_HOST, port, "-U", "-o", f"acl 0 deny {DENIED}", "--", backend)
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as denied,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as allowed,
    ):
        denied.bind((DENIED, 0))
        allowed.bind((ALLOWED, 0))
        denied.sendto(b"from denied", (PEN_HOST, port))
        allowed.sendto(b"from allowed", (PEN_HOST, port))
        # pen handles datagrams in order: the denied one would have come first
        data, peer = echo.recvfrom(100)
        assert data == b"from allowed"
        echo.sendto(b"reply", peer)
        allowed.settimeout(5)
        assert allowed.recvfrom(100)[0] == b"reply"
    echo.close()


def test_ipv6_client_lists(processes: Processes) -> None:
    port, ctl = start_ours(processes, start_farm(processes), host="::1")
    assert control(ctl, "acl 1 deny ::1/127", source="::1", host="::1") is None
    assert control(ctl, "client_acl 1", source="::1", host="::1") == "1\n"
    assert request("::1", port, "::1") == REFUSED
    control(ctl, "no acl 1", source="::1", host="::1")
    control(ctl, "acl 1 permit ::1", source="::1", host="::1")
    assert request("::1", port, "::1") in ("one", "two")


def test_same_commands_same_behaviour_as_the_c_pen(processes: Processes) -> None:
    """The C pen and ours get the same acl commands; the same clients reach the same servers."""
    c_pen = require_c_tool("pen")
    servers = start_farm(processes)
    commands = [
        "roundrobin",
        f"acl 1 deny {DENIED}",
        "acl 1 permit 127.0.71.0 255.255.255.0",
        "client_acl 1",
        f"acl 2 permit {ALLOWED}",
        "server 0 acl 2",
    ]
    sources = (ALLOWED, DENIED, "127.0.71.9", OTHER)

    def behaviour(ctl: int, port: int) -> dict[str, object]:
        replies = [control(ctl, line) for line in commands]
        reads = [control(ctl, line) for line in ("client_acl", "control_acl")]
        return {
            "replies": replies,
            "reads": reads,
            "served": {s: sorted(set(served_by(port, s))) for s in sources},
        }

    c_port, c_ctl = free_port(PEN_HOST), free_port(PEN_HOST)
    c_process = processes.start(
        [
            c_pen,
            "-f",
            *as_root_args(),
            "-C",
            f"{PEN_HOST}:{c_ctl}",
            f"{PEN_HOST}:{c_port}",
            *servers,
        ],
        stderr=subprocess.DEVNULL,
    )
    wait_bound(PEN_HOST, c_ctl, c_process)
    reference = behaviour(c_ctl, c_port)
    assert reference["served"] == {
        ALLOWED: ["one", "two"],
        DENIED: [REFUSED],
        "127.0.71.9": ["two"],
        OTHER: [REFUSED],
    }
    port, ctl = start_ours(processes, servers)
    assert behaviour(ctl, port) == reference


def test_denied_clients_do_not_fall_through_to_the_emergency_server(
    processes: Processes,
) -> None:
    # the C pen sends them to -e when that server's list (0) permits them; we close them
    one, two = start_farm(processes)
    port, _ = start_ours(
        processes, [one], "-e", two, "-o", f"acl 1 deny {DENIED}", "-o", "client_acl 1"
    )
    assert request(PEN_HOST, port, ALLOWED) == "one"
    assert request(PEN_HOST, port, DENIED) == REFUSED
