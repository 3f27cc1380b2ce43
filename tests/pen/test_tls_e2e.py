"""End-to-end: pen's TLS options (-E -K -G -A -R -L -Z) and -q -m -P, on loopback.

A private PKI is made with the openssl command line: a CA, a server
certificate and a client certificate it signed, and a client certificate
of another CA that pen must not accept with -R.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    Processes,
    free_port,
    require_c_tool,
    require_program,
    run_tool,
    tool_argv,
    tool_env,
)
from tests.pen.support import (
    DEADLINE,
    listen_queue,
    read_response,
    start_backend,
    start_pen,
    wait_bound,
)

PEN_HOST = "127.0.66.1"
BACKEND = "127.0.66.2"

_LEAF_EXTENSIONS = """\
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost
"""


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: tuple[Path, Path]
    good_client: tuple[Path, Path]
    wrong_client: tuple[Path, Path]


def _openssl(*args: str | Path) -> None:
    subprocess.run([require_program("openssl"), *map(str, args)], check=True, capture_output=True)


def _key_args(key: Path) -> list[str | Path]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl("req", "-x509", *_key_args(key), "-subj", f"/CN={name}", "-days", "2", "-out", cert)
    return cert, key


def _make_leaf(directory: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr"))
    extensions = directory / "leaf.cnf"
    extensions.write_text(_LEAF_EXTENSIONS)
    _openssl("req", "-new", *_key_args(key), "-subj", f"/CN={name}", "-out", csr)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-days", "2", "-extfile", extensions, "-extensions", "leaf", "-out", cert,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other_ca = _make_ca(directory, "test-ca"), _make_ca(directory, "other-ca")
    return Pki(
        ca=ca[0],
        server=_make_leaf(directory, "localhost", ca),
        good_client=_make_leaf(directory, "good-client", ca),
        wrong_client=_make_leaf(directory, "wrong-client", other_ca),
    )


def client_context(
    pki: Pki, cert: tuple[Path, Path] | None, version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A client that trusts the test CA, shows `cert` (or none) and speaks `version` only."""
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.check_hostname = False
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


def request(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """One HTTP request over TLS: (backend name, TLS version) or ("refused", reason)."""
    try:
        with (
            socket.create_connection((PEN_HOST, port), timeout=DEADLINE) as raw,
            context.wrap_socket(raw) as conn,
        ):
            version = conn.version() or ""
            conn.sendall(b"GET /tls HTTP/1.1\r\nHost: x\r\n\r\n")
            name, seen = read_response(conn)  # type: ignore[arg-type]
            assert seen.startswith(b"GET /tls ")
            return name, version
    except ssl.SSLError as exc:
        return "refused", str(exc.reason)
    except ConnectionError as exc:  # closed without an alert; a timeout is a failure
        return "refused", type(exc).__name__


def start_tls_pen(
    processes: Processes, pki: Pki, *args: str
) -> tuple[int, subprocess.Popen[bytes]]:
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    port = free_port(PEN_HOST)
    cert, key = map(str, pki.server)
    process = start_pen(processes, PEN_HOST, port, "-E", cert, "-K", key, *args, "--", backend)
    return port, process


def stderr_after_term(process: subprocess.Popen[bytes]) -> str:
    process.terminate()
    _, err = process.communicate(timeout=DEADLINE)
    return err.decode()


def hashed_ca_dir(pki: Pki, directory: Path) -> Path:
    directory.mkdir()
    shutil.copy(pki.ca, directory / "test-ca.pem")
    _openssl("rehash", directory)
    return directory


@pytest.mark.parametrize("where", ["-G", "-A"])
def test_required_client_certificate(
    processes: Processes, pki: Pki, tmp_path: Path, where: str
) -> None:
    cas = str(pki.ca) if where == "-G" else str(hashed_ca_dir(pki, tmp_path / "cas"))
    port, process = start_tls_pen(processes, pki, where, cas, "-R")
    good = client_context(pki, pki.good_client)
    assert request(port, good)[0] == "b"
    assert request(port, client_context(pki, None))[0] == "refused"
    assert request(port, client_context(pki, pki.wrong_client))[0] == "refused"
    assert request(port, good)[0] == "b"  # the refusals did not disturb pen
    assert "Traceback" not in stderr_after_term(process)


def test_without_r_no_certificate_is_asked_for(processes: Processes, pki: Pki) -> None:
    port, process = start_tls_pen(processes, pki, "-G", str(pki.ca))
    for cert in (None, pki.good_client, pki.wrong_client):
        assert request(port, client_context(pki, cert))[0] == "b"
    assert "client certificates are not asked for" in stderr_after_term(process)


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [("ssl23", "TLSv1.3"), ("tls1.2", "TLSv1.2"), ("tls1.3", "TLSv1.3")],
)
def test_protocol_choice_is_what_is_negotiated(
    processes: Processes, pki: Pki, protocol: str, expected: str
) -> None:
    port, _ = start_tls_pen(processes, pki, "-L", protocol, "-Z")
    assert request(port, client_context(pki, None)) == ("b", expected)
    other = ssl.TLSVersion.TLSv1_2 if expected == "TLSv1.3" else ssl.TLSVersion.TLSv1_3
    outcome = request(port, client_context(pki, None, other))[0]
    assert outcome == ("b" if protocol == "ssl23" else "refused")


def test_tls1_runs_or_fails_at_start_with_one_line(processes: Processes, pki: Pki) -> None:
    """TLS 1.0 works where the local OpenSSL allows it; elsewhere pen says so at start."""
    cert, key = map(str, pki.server)
    port = free_port(PEN_HOST)
    argv = tool_argv("pen", "-f", "-E", cert, "-K", key, "-L", "tls1", f"{PEN_HOST}:{port}", "h:1")
    process = processes.start(argv, env=tool_env(), stderr=subprocess.PIPE)
    try:
        wait_bound(PEN_HOST, port, process)
    except AssertionError:
        if process.poll() is None:  # neither bound nor exited
            raise
    if process.poll() is None:  # it started: then TLS 1.0 must really be what it speaks
        old = client_context(pki, None, ssl.TLSVersion.TLSv1)
        with socket.create_connection((PEN_HOST, port)) as raw, old.wrap_socket(raw) as conn:
            assert conn.version() == "TLSv1"
    else:
        lines = process.communicate()[1].decode().splitlines()
        assert process.returncode == 1
        assert len(lines) == 1 and "-L tls1" in lines[0] and "refuses it" in lines[0], lines


def test_q_sets_the_backlog_plain_and_tls(processes: Processes, pki: Pki) -> None:
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    plain = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, plain, "-q", "77", "--", backend)
    assert listen_queue(plain)[1] == 77
    default = free_port(PEN_HOST)
    start_pen(processes, PEN_HOST, default, "--", backend)
    assert listen_queue(default)[1] == 1024
    tls, _ = start_tls_pen(processes, pki, "-q", "33")
    assert listen_queue(tls)[1] == 33
    assert request(tls, client_context(pki, None))[0] == "b"


def test_m_and_p_serve_a_burst(processes: Processes, tmp_path: Path) -> None:
    """-m N: at most N accepts per wake-up, N when that many wait; -P: still epoll.

    Seen in pen's system calls (strace): accept4 between two epoll waits.
    """
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    port, trace = free_port(PEN_HOST), tmp_path / "pen.strace"
    syscalls = "trace=accept4,epoll_wait,epoll_pwait,poll,ppoll,select,pselect6"
    strace = [require_program("strace"), "-f", "-qq", "-e", syscalls, "-o", str(trace)]
    pen_argv = tool_argv("pen", "-f", "-m", "4", "-P", f"{PEN_HOST}:{port}", backend)
    traced = processes.start([*strace, *pen_argv], env=tool_env(), stderr=subprocess.PIPE)
    wait_bound(PEN_HOST, port, traced)
    children = Path(f"/proc/{traced.pid}/task/{traced.pid}/children")
    (pen_pid,) = map(int, children.read_text().split())
    os.kill(pen_pid, signal.SIGSTOP)  # the whole burst waits in the queue before pen wakes
    clients = [socket.create_connection((PEN_HOST, port), timeout=DEADLINE) for _ in range(40)]
    try:
        for conn in clients:
            conn.sendall(b"GET /burst HTTP/1.1\r\nHost: x\r\n\r\n")
        os.kill(pen_pid, signal.SIGCONT)
        assert [read_response(conn)[0] for conn in clients] == ["b"] * 40
    finally:
        for conn in clients:
            conn.close()
    os.kill(pen_pid, signal.SIGTERM)
    assert traced.wait(timeout=DEADLINE) == 0  # strace exits with pen's status
    calls = re.findall(r"^\d+ +(\w+)\(.*= (-?\d+)", trace.read_text(), re.MULTILINE)
    accepts_per_wakeup, accepted = [], 0
    for name, result in calls:
        if name == "accept4":
            accepted += int(result) >= 0
        elif accepted:
            accepts_per_wakeup.append(accepted)
            accepted = 0
    assert accepts_per_wakeup == [4] * 10
    assert {name for name, _ in calls} <= {"accept4", "epoll_wait", "epoll_pwait"}


def test_c_pen_and_ours_refuse_the_same_clients(processes: Processes, pki: Pki) -> None:
    c_pen = require_c_tool("pen")
    backend = f"{BACKEND}:{start_backend(processes, BACKEND, 'b')}"
    cert, key = map(str, pki.server)
    options = ["-E", cert, "-K", key, "-G", str(pki.ca), "-R"]
    ports = {"ours": free_port(PEN_HOST), "c": free_port(PEN_HOST)}
    start_pen(processes, PEN_HOST, ports["ours"], *options, "--", backend)
    c_process = processes.start(
        [c_pen, "-f", *options, f"{PEN_HOST}:{ports['c']}", backend], stderr=subprocess.DEVNULL
    )
    wait_bound(PEN_HOST, ports["c"], c_process)
    outcomes = {
        name: [
            request(port, client_context(pki, cert))[0]
            for cert in (pki.good_client, None, pki.wrong_client, pki.good_client)
        ]
        for name, port in ports.items()
    }
    assert outcomes["ours"] == outcomes["c"] == ["b", "refused", "refused", "b"]


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["-G", "{ca}"], 1, "'-G {ca}': needs -E"),
        (["-A", "/tmp"], 1, "'-A /tmp': needs -E"),
        (["-R"], 1, "'-R': needs -E"),
        (["-Z"], 1, "'-Z': needs -E"),
        (["-L", "tls1.2"], 1, "'-L tls1.2': needs -E"),
        (["-K", "{key}"], 1, "needs -E"),
        (["-E", "{cert}", "-K", "{key}", "-L", "ssl3"], 1, "SSL 3.0 is insecure"),
        (["-E", "{cert}", "-K", "{key}", "-L", "ssl2"], 1, "SSL 2.0 is insecure"),
        (["-E", "{cert}", "-K", "{key}", "-L", "tls9"], 2, "Invalid value for '-L'"),
        (["-E", "{cert}", "-K", "{key}", "-U"], 1, "TLS needs TCP"),
        (["-E", "{tmp}/none.pem"], 1, "'{tmp}/none.pem': cannot read the -E file"),
        (["-E", "{cert}", "-K", "{tmp}"], 1, "'{tmp}': cannot read the -K file: Is a directory"),
        (["-E", "{cert}"], 1, "cannot use as PEM certificate and key"),
        (["-E", "{cert}", "-K", "{key}", "-G", "{tmp}/no"], 1, "'{tmp}/no': cannot read the -G"),
        (["-E", "{cert}", "-K", "{key}", "-G", "{key}"], 1, "no CA certificate in the -G"),
        (["-E", "{cert}", "-K", "{key}", "-A", "{tmp}"], 1, "no hashed CA certificates"),
        (["-E", "{cert}", "-K", "{key}", "-A", "{tmp}/no"], 1, "cannot read the -A directory"),
        (["-q", "0"], 2, "Invalid value for '-q'"),
        (["-q", "many"], 2, "Invalid value for '-q'"),
        (["-m", "0"], 2, "Invalid value for '-m'"),
    ],
)
def test_bad_tls_and_queue_options_give_one_line(
    pki: Pki, tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    names = {"ca": pki.ca, "cert": pki.server[0], "key": pki.server[1], "tmp": tmp_path}
    argv = [arg.format(**names) for arg in args]
    result = run_tool("pen", "-f", *argv, f"{PEN_HOST}:{free_port(PEN_HOST)}", "127.0.0.1:1")
    lines = result.stderr.decode().splitlines()
    assert result.returncode == status, lines
    assert len(lines) == 1 and message.format(**names) in lines[0], lines
