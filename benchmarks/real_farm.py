"""A real farm: our pen in front of real nginx backends, unpaced clients, then mergelogs.

    python -m benchmarks.real_farm --requests 20000 --workers 32

Clients on their own loopback addresses (127.0.2.x), each with its own
browser's User-Agent (or all the same one, ``--one-agent``), fire requests for
a small Zipf-popular set of pages as fast as pen answers: bursts of identical
requests within the same second, which is what whole-second time stamps
cannot order.  Each request carries its client as the Referer (the truth,
which no join looks at).  pen writes ``pen.log``; nginx writes combined lines
stamped with ``$time_local`` (when the response is written, to the second).
Then mergelogs and the FIFO join are scored: the share of lines whose first
field is the client in its Referer.
"""

from __future__ import annotations

import argparse
import itertools
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.farm import _BROWSER_AGENTS, _MOBILE_AGENTS

ROOT = Path(__file__).resolve().parent.parent
TRUTH = "http://truth.invalid/"
#: nginx's combined format (its default ``combined``), spelled out.
NGINX_COMBINED = (
    '\'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"\''
)


def wait_accepting(address: str, port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.args!r} did not start") from None
            time.sleep(0.05)


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@contextmanager
def nginx(
    directory: Path, address: str, log_format: str = NGINX_COMBINED
) -> Iterator[tuple[int, Path]]:
    """A private nginx on `address` logging to a file: yields (port, log); stopped by PID."""
    directory.mkdir(parents=True)
    docroot = Path(tempfile.mkdtemp(prefix="pentools-nginx-"))  # world-readable: workers
    docroot.chmod(0o755)
    for name in ("index.html", "a.html", "b.html"):
        (docroot / name).write_text("hello\n")
        (docroot / name).chmod(0o644)
    port, log = free_port(address), directory / "access.log"
    temp = "".join(
        f"{kind}_temp_path {directory}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = directory / "nginx.conf"
    config.write_text(
        f"daemon off; worker_processes 1; pid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{ {temp} log_format farm {log_format};\n"
        f"  server {{ listen {address}:{port}; root {docroot}; access_log {log} farm;\n"
        "    error_page 404 =200 /index.html; } }\n"
    )
    process = subprocess.Popen(
        ["nginx", "-p", str(directory), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_accepting(address, port, process)
        yield port, log
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: the log is complete once it exits
        process.wait(timeout=15)
        for path in docroot.iterdir():
            path.unlink()
        docroot.rmdir()


@contextmanager
def pen(pen_log: Path, backends: list[str], *options: str) -> Iterator[int]:
    """Our pen on 127.0.0.1 writing records to `pen_log`: yields its port."""
    port = free_port("127.0.0.1")
    argv = [sys.executable, "-m", "pentools.pen", "-f", "-l", str(pen_log), *options]
    process = subprocess.Popen(
        [*argv, f"127.0.0.1:{port}", *backends], cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        wait_accepting("127.0.0.1", port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def drive(
    port: int, requests: int, workers: int, clients: int, one_agent: bool, seed: int
) -> float:
    """Fire `requests` requests from `workers` threads, unpaced; return the rate reached."""
    rng = random.Random(seed)
    agents = _BROWSER_AGENTS + _MOBILE_AGENTS
    population = [
        (f"127.0.2.{index + 1}", agents[0] if one_agent else rng.choice(agents))
        for index in range(clients)
    ]
    paths = ["/", "/a.html", "/b.html", "/?page=2", "/missing"]
    plan = [
        (rng.choices(population, cum_weights=_zipf(len(population)))[0],
         rng.choices(paths, cum_weights=_zipf(len(paths)))[0])
        for _ in range(requests)
    ]  # fmt: skip
    items = iter(plan)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                return
            (address, agent), path = item
            request = (
                f"GET {path} HTTP/1.0\r\nHost: farm\r\nUser-Agent: {agent}\r\n"
                f"Referer: {TRUTH}{address}\r\n\r\n"
            ).encode()
            with socket.create_connection(("127.0.0.1", port), source_address=(address, 0)) as s:
                s.sendall(request)
                while s.recv(65536):
                    pass

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return requests / (time.monotonic() - started)


def _zipf(count: int) -> list[float]:
    return list(itertools.accumulate(1.0 / rank for rank in range(1, count + 1)))


def run_farm(
    directory: Path, requests: int, workers: int, clients: int = 200, one_agent: bool = False
) -> tuple[Path, dict[str, Path], float]:
    """Run the farm into `directory`: (pen.log, {server: access log}, requests/s)."""
    pen_log, logs = directory / "pen.log", {}
    with ExitStack() as stack:
        backends = []
        for address in ("127.0.0.11", "127.0.0.12"):
            port, log = stack.enter_context(nginx(directory / address, address))
            backends.append(f"{address}:{port}")
            logs[address] = log
        with pen(pen_log, backends) as port:
            rate = drive(port, requests, workers, clients, one_agent, seed=requests)
    return pen_log, logs, rate


def score(merged: str) -> tuple[int, int]:
    """(lines whose first field is the client in their Referer, lines)."""
    right = total = 0
    for line in merged.splitlines():
        total += 1
        client = line.split(" ", 1)[0]
        right += f'"{TRUTH}{client}"' in line
    return right, total


def join_accuracy(pen_log: Path, logs: dict[str, Path]) -> dict[str, float]:
    """Accuracy (%) of mergelogs and of the FIFO join on one run."""
    sources = [f"{server}:{log}" for server, log in logs.items()]
    commands = {
        "mergelogs": [sys.executable, "-m", "pentools.mergelogs", "-p", str(pen_log), *sources],
        "FIFO": [sys.executable, "-m", "benchmarks.fifo_join", str(pen_log), *sources],
    }
    accuracy = {}
    for name, command in commands.items():
        result = subprocess.run(command, cwd=ROOT, capture_output=True, check=True)
        right, total = score(result.stdout.decode("latin-1"))
        accuracy[name] = 100 * right / max(total, 1)
    return accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--one-agent", action="store_true", help="every client the same agent")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="pentools-realfarm-") as directory:
            pen_log, logs, rate = run_farm(
                Path(directory), args.requests, args.workers, args.clients, args.one_agent
            )
            accuracy = join_accuracy(pen_log, logs)
        cells = "  ".join(f"{name} {value:.2f}%" for name, value in accuracy.items())
        print(f"run {run + 1}: {args.requests} requests at {rate:.0f}/s: {cells}", flush=True)


if __name__ == "__main__":
    main()
