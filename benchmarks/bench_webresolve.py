"""webresolve against Apache's logresolve: the same log, the same loopback DNS server.

    python -m benchmarks.bench_webresolve [--lines 1000000] [--runs 3]
        [--latency-lines 20000] [--full-latency]

The log comes from ``benchmarks.weblog`` (about 20,000 distinct clients).
dnsmasq on 127.0.84.53:53 holds PTR and A/AAAA records for 9 addresses in
10 and answers NXDOMAIN for the rest; ``benchmarks.dns_delay`` on
127.0.84.54:53 forwards to it and delays each answer by 20 ms. logresolve
uses the system resolver, so it runs under ``unshare -m`` with a private
resolv.conf bind-mounted over /etc/resolv.conf; ours is given the same
server with ``--nameserver``. Runs alternate; the medians of wall time
(and CPU time, peak memory from /usr/bin/time) are printed with ratios.

With latency logresolve needs about 20 ms per distinct address, serially
(20,000 addresses: 400 s a run), so that case uses the first
``--latency-lines`` lines of the same log unless ``--full-latency`` is given.
Needs root (port 53, unshare, mount) and dnsmasq, apache2-utils, time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pentools.core.accesslog import first_field_end
from pentools.core.addresses import normalize_ip

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "workloads"
OUT = ROOT / "benchmarks" / "out"
DNSMASQ_ADDRESS = "127.0.84.53"
DELAY_ADDRESS = "127.0.84.54"


@dataclass
class Run:
    wall: float
    cpu: float
    max_rss_kib: int


def make_log(lines: int, clients: int, seed: int) -> Path:
    path = WORKLOADS / f"weblog-{lines}-{clients}-{seed}.log"
    if not path.exists():
        WORKLOADS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "benchmarks.weblog", "--lines", str(lines),
             "--clients", str(clients), "--seed", str(seed), "-o", str(path)],
            check=True, cwd=ROOT,
        )  # fmt: skip
    return path


def distinct_addresses(path: Path, limit: int | None = None) -> list[str]:
    seen: dict[str, None] = {}
    with open(path, encoding="latin-1", newline="\n") as stream:
        for number, line in enumerate(stream):
            if limit is not None and number >= limit:
                break
            address = normalize_ip(line[: first_field_end(line)])
            if address is not None:
                seen.setdefault(address)
    return list(seen)


def write_hosts(addresses: list[str], path: Path) -> int:
    """PTR (and forward) records for 9 addresses in 10; NXDOMAIN for the others."""
    named = 0
    with open(path, "w") as stream:
        for number, address in enumerate(addresses):
            if number % 10 != 9:
                stream.write(f"{address} client-{number}.dyn.example.net\n")
                named += 1
    return named


def head(path: Path, lines: int) -> Path:
    target = WORKLOADS / f"{path.stem}-head{lines}.log"
    if not target.exists():
        with open(path, "rb") as source, open(target, "wb") as sink:
            for number, line in enumerate(source):
                if number >= lines:
                    break
                sink.write(line)
    return target


def timed(argv: list[str], stdin: Path, stdout: Path) -> Run:
    """Run under /usr/bin/time; wall time measured here, CPU and memory from time."""
    report = OUT / "time.txt"
    started = time.perf_counter()
    with open(stdin, "rb") as source, open(stdout, "wb") as sink:
        subprocess.run(
            ["/usr/bin/time", "-o", str(report), "-f", "%U %S %M", *argv],
            stdin=source, stdout=sink, check=True, cwd=ROOT,
        )  # fmt: skip
    wall = time.perf_counter() - started
    user, system, rss = report.read_text().split()[-3:]
    return Run(wall, float(user) + float(system), int(rss))


def logresolve_argv(resolv_conf: Path) -> list[str]:
    script = f'mount --bind "{resolv_conf}" /etc/resolv.conf && exec "$0" "$@"'
    return ["unshare", "-m", "sh", "-c", script, "/usr/bin/logresolve"]


def webresolve_argv(server: str) -> list[str]:
    return [sys.executable, "-m", "pentools.webresolve", "--nameserver", server, "--no-progress"]


def compare(original: Path, ours: Path, theirs: Path) -> tuple[int, int, int]:
    """Lines both resolved and agree on, lines both resolved and disagree, lines only one did.

    Lines are paired by everything after the first field, because logresolve
    drops empty lines and merges a line holding a NUL byte with the next one.
    """

    def by_rest(path: Path) -> dict[bytes, bytes]:
        with open(path, "rb") as stream:
            return {line[line.find(b" ") :]: line[: line.find(b" ")] for line in stream}

    before, mine, other = by_rest(original), by_rest(ours), by_rest(theirs)
    agree = disagree = one_sided = 0
    for rest, address in before.items():
        name, their_name = mine.get(rest, address), other.get(rest, address)
        if name != address and their_name != address:
            agree += name == their_name
            disagree += name != their_name
        elif name != their_name:
            one_sided += 1
    return agree, disagree, one_sided


def bench(name: str, log: Path, server: str, resolv_conf: Path, runs: int) -> None:
    ours_out, theirs_out = OUT / f"{name}.webresolve", OUT / f"{name}.logresolve"
    mine: list[Run] = []
    theirs: list[Run] = []
    for _ in range(runs):
        theirs.append(timed(logresolve_argv(resolv_conf), log, theirs_out))
        mine.append(timed(webresolve_argv(server), log, ours_out))
    agree, disagree, one_sided = compare(log, ours_out, theirs_out)
    with open(log, "rb") as stream:
        lines = sum(1 for _ in stream)
    print(
        f"\n{name}: {lines} lines, {len(distinct_addresses(log))} distinct addresses, {runs} runs"
    )
    for label, results in (("logresolve", theirs), ("webresolve", mine)):
        walls = ", ".join(f"{run.wall:.2f}" for run in results)
        print(
            f"  {label:<10} wall median {statistics.median(r.wall for r in results):8.2f} s"
            f"  cpu {statistics.median(r.cpu for r in results):7.2f} s"
            f"  peak rss {max(r.max_rss_kib for r in results) / 1024:6.1f} MiB  [{walls}]"
        )
    ratio = statistics.median(r.wall for r in theirs) / statistics.median(r.wall for r in mine)
    print(f"  webresolve is {ratio:.1f}x as fast as logresolve")
    print(
        f"  output: {agree} lines resolved identically by both, {disagree} differ, "
        f"{one_sided} resolved by only one"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per answer")
    parser.add_argument("--latency-lines", type=int, default=20_000)
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--full-latency", action="store_true", help="the whole log with latency")
    parser.add_argument("--skip-plain", action="store_true", help="only the latency case")
    args = parser.parse_args()
    for program in ("/usr/sbin/dnsmasq", "/usr/bin/logresolve", "/usr/bin/time"):
        if not os.access(program, os.X_OK):
            sys.exit(f"bench_webresolve: {program} is needed (scripts/setup installs it)")
    OUT.mkdir(parents=True, exist_ok=True)
    log = make_log(args.lines, args.clients, args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-webresolve."))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        hosts = work / "hosts"
        named = write_hosts(distinct_addresses(log), hosts)
        print(f"DNS: dnsmasq with {named} names; NXDOMAIN for 1 address in 10")
        processes.append(
            subprocess.Popen(
                [
                    "/usr/sbin/dnsmasq",
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--user=root",
                    "--port=53",
                    f"--listen-address={DNSMASQ_ADDRESS}",
                    "--bind-interfaces",
                    f"--addn-hosts={hosts}",
                    "--local=/arpa/",
                    "--local=/net/",
                    "--local-ttl=3600",
                    "--log-facility=/dev/null",
                    f"--pid-file={work / 'dnsmasq.pid'}",
                ],
            )
        )
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.dns_delay",
                    "--listen",
                    f"{DELAY_ADDRESS}:53",
                    "--upstream",
                    f"{DNSMASQ_ADDRESS}:53",
                    "--delay",
                    str(args.latency),
                ],
                cwd=ROOT,
            )
        )
        wait_for_dns(DNSMASQ_ADDRESS)
        wait_for_dns(DELAY_ADDRESS)
        direct, delayed = work / "resolv.direct", work / "resolv.delayed"
        direct.write_text(f"nameserver {DNSMASQ_ADDRESS}\n")
        delayed.write_text(f"nameserver {DELAY_ADDRESS}\n")
        if not args.skip_plain:
            bench("no-latency", log, f"{DNSMASQ_ADDRESS}:53", direct, args.runs)
        latency_log = log if args.full_latency else head(log, args.latency_lines)
        name = f"latency-{args.latency * 1000:.0f}ms"
        bench(name, latency_log, f"{DELAY_ADDRESS}:53", delayed, args.latency_runs)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def wait_for_dns(host: str) -> None:
    import dns.exception
    import dns.message
    import dns.query

    query = dns.message.make_query("1.0.0.127.in-addr.arpa.", "PTR")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            dns.query.udp(query, host, port=53, timeout=0.2)
            return
        except (dns.exception.Timeout, OSError):
            continue
    sys.exit(f"bench_webresolve: no DNS answer from {host}:53")


if __name__ == "__main__":
    main()
