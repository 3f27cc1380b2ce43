"""pen throughput and latency: the C pen, HAProxy and pentools' pen, same run, same load.

    python -m benchmarks.bench_pen [--runs 3] [--seconds 5] [--connections 50]
        [--workers N]... [--scenario NAME]... [--log] [--skip-failover | --only-failover]

Two nginx backends on loopback (config written to a temp dir, stopped by
PID), each balancer in turn in front of them, wrk as the client:

* small responses, keep-alive;
* small responses, a new connection per request (``Connection: close``);
* 100 KB responses, keep-alive (MB/s);

then a failover run: wrk with a new connection per request through our pen
while one backend is stopped for 3 s and restarted.  Prints medians of
``--runs`` rounds (balancers alternate within a round) and ratios against
the C pen (``pen -r``) measured in the same round.

Our pen runs once per ``--workers`` count (default 1 and 2: ``ours -r`` and
``ours -r w2``); its CPU is that of the supervisor and all its workers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

BALANCER_HOST = "127.0.20.1"
BACKEND_HOSTS = ("127.0.20.2", "127.0.20.3")

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log {access_log};
    keepalive_requests 1000000;
    server {{
        listen {host}:{port} backlog=4096;
        root {dir};
        location = /small {{ return 200 "hello from {host}\\n"; }}
    }}
}}
"""

HAPROXY_CONF = """
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend in
    bind {host}:{port}
    default_backend farm
backend farm
    balance roundrobin
{servers}
"""


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_listening(host: str, port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} does not listen on {host}:{port}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and of its children (pen's workers) that run now."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return own + sum(cpu_seconds(int(child)) for child in children)


class Nginx:
    """One nginx backend in its own directory, run in the foreground, stopped by PID."""

    def __init__(self, root: Path, host: str, access_log: bool) -> None:
        self.dir = root / f"nginx-{host}"
        self.dir.mkdir()
        self.host = host
        self.port = free_port(host)
        (self.dir / "big").write_bytes(bytes(range(256)) * 400)  # 100 KB
        log = f"{self.dir}/access.log" if access_log else "off"
        conf = NGINX_CONF.format(dir=self.dir, host=host, port=self.port, access_log=log)
        (self.dir / "nginx.conf").write_text(conf)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = ["nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        wait_listening(self.host, self.port, self.process, "nginx")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def requests_logged(self) -> int:
        log = self.dir / "access.log"
        return log.read_text().count("\n") if log.exists() else 0


@dataclass
class Balancer:
    name: str
    argv: list[str]
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_listening(BALANCER_HOST, self.port, self.process, self.name)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


def ours_name(workers: int) -> str:
    return "ours -r" if workers == 1 else f"ours -r w{workers}"


def balancers(
    root: Path, backends: list[Nginx], log: bool = False, workers: tuple[int, ...] = (1,)
) -> list[Balancer]:
    targets = [f"{b.host}:{b.port}" for b in backends]
    pen_port, haproxy_port = (free_port(BALANCER_HOST) for _ in range(2))
    listen = f"{BALANCER_HOST}:{pen_port}"
    servers = "\n".join(f"    server s{i} {t}" for i, t in enumerate(targets))
    haproxy_conf = root / "haproxy.cfg"
    haproxy_conf.write_text(
        HAPROXY_CONF.format(host=BALANCER_HOST, port=haproxy_port, servers=servers)
    )
    ours = [sys.executable, "-m", "pentools.pen", "-f", "-r", "-x", "10000"]
    c_pen = ["pen", "-f", "-r", "-x", "10000"]
    if log:  # both pens write a record per request to a local file
        c_pen += ["-l", str(root / "c-pen.log")]
        ours += ["-l", str(root / "ours.log")]
    candidates = [Balancer("C pen -r", [*c_pen, listen, *targets], pen_port)]
    for count in workers:
        port = free_port(BALANCER_HOST)
        argv = [*ours, "--workers", str(count), f"{BALANCER_HOST}:{port}", *targets]
        candidates.append(Balancer(ours_name(count), argv, port))
    candidates.append(
        Balancer("haproxy", ["haproxy", "-db", "-f", str(haproxy_conf)], haproxy_port)
    )
    return candidates


_UNITS = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def _scaled(number: str, unit: str) -> float:
    return float(number) * _UNITS.get(unit, 1)


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        return float("nan")
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[match.group(2)]
    return float(match.group(1)) * factor


@dataclass
class WrkResult:
    requests_per_second: float
    bytes_per_second: float
    p99_ms: float
    errors: int
    cpu: float  # balancer CPU seconds per wall second


def run_wrk(url: str, seconds: float, connections: int, close: bool, pid: int) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    cpu = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(
        rps,
        _scaled(transfer.group(1), transfer.group(2)) if transfer else 0.0,
        _latency_ms(p99.group(1)) if p99 else float("nan"),
        errors,
        cpu,
    )


SCENARIOS = (
    ("keep-alive small", "/small", False),
    ("new connection small", "/small", True),
    ("keep-alive 100 KB", "/big", False),
)


def scenarios(args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    return [s for s in SCENARIOS if not args.scenario or s[0] in args.scenario]


def benchmark(args: argparse.Namespace, root: Path) -> None:
    backends = [Nginx(root, host, access_log=False) for host in BACKEND_HOSTS]
    for backend in backends:
        backend.start()
    candidates = balancers(root, backends, args.log, tuple(args.workers))
    results: dict[tuple[str, str], list[WrkResult]] = {}
    try:
        for round_number in range(args.runs):
            order = candidates if round_number % 2 == 0 else list(reversed(candidates))
            for balancer in order:
                balancer.start()
                try:
                    assert balancer.process is not None
                    for scenario, path, close in scenarios(args):
                        url = f"http://{BALANCER_HOST}:{balancer.port}{path}"
                        result = run_wrk(
                            url, args.seconds, args.connections, close, balancer.process.pid
                        )
                        results.setdefault((balancer.name, scenario), []).append(result)
                        print(
                            f"  round {round_number + 1} {balancer.name:11} {scenario:22} "
                            f"{result.requests_per_second:9.0f} req/s "
                            f"{result.bytes_per_second / 1e6:8.1f} MB/s "
                            f"p99 {result.p99_ms:7.2f} ms cpu {result.cpu:4.2f} "
                            f"errors {result.errors}",
                            flush=True,
                        )
                finally:
                    balancer.stop()
    finally:
        for backend in backends:
            backend.stop()
    report(candidates, results, scenarios(args))


def report(
    candidates: list[Balancer],
    results: dict[tuple[str, str], list[WrkResult]],
    chosen: list[tuple[str, str, bool]],
) -> None:
    print(
        f"\nmedians of {len(next(iter(results.values())))} runs; ratio = ours / C pen -r; "
        "cpu = balancer CPU seconds per second; the machine's other load makes req/s noisy, "
        "cpu us/req less so"
    )
    header = (
        f"{'scenario':22} {'balancer':11} {'req/s':>9} {'MB/s':>8} {'p99 ms':>8} {'cpu':>5} "
        f"{'cpu us/req':>10}"
    )
    print(header)
    reference = candidates[0].name
    for scenario, _, _ in chosen:
        medians = {}
        for balancer in candidates:
            runs = results[(balancer.name, scenario)]
            medians[balancer.name] = (
                statistics.median(r.requests_per_second for r in runs),
                statistics.median(r.bytes_per_second for r in runs) / 1e6,
                statistics.median(r.p99_ms for r in runs),
                statistics.median(r.cpu for r in runs),
            )
            rps, mbs, p99, cpu = medians[balancer.name]
            print(
                f"{scenario:22} {balancer.name:11} {rps:9.0f} {mbs:8.1f} {p99:8.2f} {cpu:5.2f} "
                f"{cpu / rps * 1e6:10.1f}"
            )
        ref = medians[reference]
        for name, ours in medians.items():
            if name.startswith("ours"):
                print(
                    f"{'':22} {'ratio ' + name.removeprefix('ours -r').strip() or 'ratio':11} "
                    f"{ours[0] / ref[0]:9.2f} {ours[1] / ref[1]:8.2f} "
                    f"{ours[2] / ref[2]:8.2f} {ours[3] / ref[3]:5.2f} "
                    f"{(ours[3] / ours[0]) / (ref[3] / ref[0]):10.2f}"
                )


def failover(args: argparse.Namespace, root: Path) -> None:
    """Stop one backend for 3 s under load, for our pen and the C pen in turn."""
    blacklist = 2
    runs = [
        (ours_name(count), [sys.executable, "-m", "pentools.pen", "--workers", str(count)])
        for count in args.workers
    ]
    for name, program in (*runs, ("C pen -r", ["pen"])):
        failover_one(args, root / name.replace(" ", "-"), name, program, blacklist)


def failover_one(
    args: argparse.Namespace, root: Path, name: str, program: list[str], blacklist: int
) -> None:
    """Count client errors while a backend is down; check that it is used again after."""
    root.mkdir()
    backends = [Nginx(root, host, access_log=True) for host in BACKEND_HOSTS]
    for backend in backends:
        backend.start()
    port = free_port(BALANCER_HOST)
    targets = [f"{b.host}:{b.port}" for b in backends]
    argv = [*program, "-f", "-r", "-x", "10000", "-b", str(blacklist)]
    balancer = Balancer(name, [*argv, f"{BALANCER_HOST}:{port}", *targets], port)
    balancer.start()
    victim = backends[0]
    url = f"http://{BALANCER_HOST}:{port}/small"
    duration = 12
    wrk = subprocess.Popen(
        ["wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "-H", "Connection: close", url],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        victim.stop()
        time.sleep(3)
        victim.start()
        restarted = victim.requests_logged()
        output, _ = wrk.communicate(timeout=duration + 30)
    finally:
        balancer.stop()
        for backend in backends:
            backend.stop()
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non2xx.group(1)) if non2xx else 0
    requests = re.search(r"(\d+) requests in", output)
    kinds = re.search(r"Socket errors: (.*)", output)
    after = victim.requests_logged() - restarted
    print(
        f"\nfailover ({name} -b {blacklist}, wrk {duration}s new connection per request, "
        f"backend {victim.host} stopped 3 s at t=2 s): "
        f"{requests.group(1) if requests else '?'} requests, {errors} client errors "
        f"({kinds.group(1) if kinds else 'none'}; non-2xx {non2xx.group(1) if non2xx else 0}), "
        f"{after} requests served by the restarted backend "
        f"({'OK' if errors <= 30 and after > 0 else 'FAILED'})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        help="run our pen with --workers N (repeatable; default: 1 and 2)",
    )
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--only-failover", action="store_true")
    parser.add_argument(
        "--scenario",
        action="append",
        help="run only these (repeatable): " + ", ".join(name for name, _, _ in SCENARIOS),
    )
    parser.add_argument(
        "--log", action="store_true", help="run both pens with -l FILE (a record per request)"
    )
    args = parser.parse_args()
    args.workers = args.workers or [1, 2]
    for program in ("wrk", "nginx", "pen", "haproxy"):
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is not installed (scripts/setup installs it)")
    with tempfile.TemporaryDirectory(prefix="pen-bench-") as temp:
        root = Path(temp)
        root.chmod(0o755)  # nginx workers run as nobody and must read the files
        if not args.only_failover:
            benchmark(args, root)
        if not args.skip_failover:
            failover(args, root)


if __name__ == "__main__":
    main()
