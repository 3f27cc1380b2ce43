"""webresolve against Apache's logresolve: the same log, the same loopback DNS server.

    python -m benchmarks.bench_webresolve [--lines 1000000] [--runs 3]
        [--latency-lines 20000] [--full-latency] [--server unbound|dnsmasq]

The log comes from ``benchmarks.weblog`` (about 20,000 distinct clients).
The DNS server on 127.0.84.53:53 is unbound (multi-threaded; the default)
or dnsmasq, with its own configuration in a temporary directory: PTR
records for 9 addresses in 10, NXDOMAIN for the rest, ``--silent`` addresses
whose queries are dropped (never answered; unbound only) and ``--hostile``
PTR names no log should get (one reads as an IP address, one holds a
space). ``benchmarks.dns_delay`` on 127.0.84.54:53 forwards to it and
delays each answer by 20 ms. logresolve uses the system resolver, so it
runs under ``unshare -m`` with a private resolv.conf bind-mounted over
/etc/resolv.conf, with ``options timeout:2 attempts:3``, webresolve's
defaults; ours is given the same server with ``--nameserver``. Runs
alternate; the medians of wall time (and CPU time, peak memory from
/usr/bin/time) are printed with ratios.

With latency logresolve needs about 20 ms per distinct address, serially
(20,000 addresses: 400 s a run), so that case gives logresolve the first
``--latency-lines`` lines of the same log unless ``--full-latency`` is
given, and prints its time extrapolated by distinct addresses; ours runs on
the whole log. Needs root (port 53, unshare, mount), unbound or dnsmasq,
apache2-utils and time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dns.reversename

from benchmarks.weblog import WORKLOADS, workload
from pentools.core.accesslog import first_field_end
from pentools.core.addresses import normalize_ip

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
SERVER_ADDRESS = "127.0.84.53"
DELAY_ADDRESS = "127.0.84.54"
PROGRAMS = {"unbound": "/usr/sbin/unbound", "dnsmasq": "/usr/sbin/dnsmasq"}
#: PTR targets a log must never get: one fakes a client, one breaks the fields.
HOSTILE_TARGETS = ("10.0.0.1.", "evil\\032name.example.")


@dataclass
class Run:
    wall: float
    cpu: float
    max_rss_kib: int


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


@dataclass
class Zone:
    """What the benchmark's DNS server knows, by address."""

    named: dict[str, str]
    silent: list[str]  # queries dropped: never answered
    hostile: dict[str, str]  # PTR targets no log should get


def make_zone(addresses: list[str], silent: int, hostile: int) -> Zone:
    """PTR records for 9 addresses in 10, NXDOMAIN for the rest; a few silent, a few hostile.

    Silent addresses are spread over the log, hostile ones come early.
    """
    spread = {len(addresses) * k // (silent + 1) for k in range(1, silent + 1)}
    zone = Zone({}, [], {})
    for number, address in enumerate(addresses):
        if number % 10 == 9:
            continue
        if number in spread:
            zone.silent.append(address)
        elif len(zone.hostile) < hostile and number % 10 == 1:
            zone.hostile[address] = HOSTILE_TARGETS[len(zone.hostile) % len(HOSTILE_TARGETS)]
        else:
            zone.named[address] = f"client-{number}.dyn.example.net"
    return zone


def start_unbound(zone: Zone, work: Path) -> subprocess.Popen[bytes]:
    """unbound with two threads answering from local data only."""
    records = work / "records.conf"
    with open(records, "w") as stream:
        for address, name in zone.named.items():
            stream.write(f'    local-data-ptr: "{address} {name}"\n')
        for address, target in zone.hostile.items():
            reverse = dns.reversename.from_address(address).to_text()
            stream.write(f"    local-data: '{reverse} 3600 IN PTR {target}'\n")
        for address in zone.silent:  # 'deny' drops the query without an answer
            stream.write(f'    local-zone: "{dns.reversename.from_address(address)}" deny\n')
    config = work / "unbound.conf"
    config.write_text(
        f"""server:
    interface: {SERVER_ADDRESS}@53
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{work}"
    pidfile: "{work / "unbound.pid"}"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 2
    so-reuseport: yes
    so-rcvbuf: 8m
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    num-queries-per-thread: 4096
    local-zone: "in-addr.arpa." static
    local-zone: "ip6.arpa." static
    include: "{records}"
remote-control:
    control-enable: no
"""
    )
    return subprocess.Popen([PROGRAMS["unbound"], "-d", "-c", str(config)])


def start_dnsmasq(zone: Zone, work: Path) -> subprocess.Popen[bytes]:
    """dnsmasq (single-threaded) with PTR and forward records from a hosts file."""
    hosts = work / "hosts"
    with open(hosts, "w") as stream:
        for address, name in zone.named.items():
            stream.write(f"{address} {name}\n")
    return subprocess.Popen(
        [
            PROGRAMS["dnsmasq"], "--keep-in-foreground", "--no-resolv", "--no-hosts",
            "--user=root", "--port=53", f"--listen-address={SERVER_ADDRESS}",
            "--bind-interfaces", f"--addn-hosts={hosts}", "--local=/arpa/", "--local=/net/",
            "--local-ttl=3600", "--log-facility=/dev/null", f"--pid-file={work / 'dnsmasq.pid'}",
        ]
    )  # fmt: skip


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


@dataclass
class Agreement:
    agree: int = 0  # lines both resolved to the same name
    differ: int = 0  # lines both resolved, to different names
    only_ours: int = 0
    only_theirs: int = 0


def compare(original: Path, ours: Path, theirs: Path) -> Agreement:
    """How the two outputs agree on the lines of `original` (logresolve's input).

    Lines are paired by everything after the first field, because logresolve
    drops empty lines and merges a line holding a NUL byte with the next one.
    """

    def by_rest(path: Path) -> dict[bytes, bytes]:
        with open(path, "rb") as stream:
            return {line[line.find(b" ") :]: line[: line.find(b" ")] for line in stream}

    before, mine, other = by_rest(original), by_rest(ours), by_rest(theirs)
    result = Agreement()
    for rest, address in before.items():
        name, their_name = mine.get(rest, address), other.get(rest, address)
        if name != address and their_name != address:
            result.agree += name == their_name
            result.differ += name != their_name
        elif name != address:
            result.only_ours += 1
        elif their_name != address:
            result.only_theirs += 1
    return result


def summary(label: str, results: list[Run]) -> str:
    walls = ", ".join(f"{run.wall:.2f}" for run in results)
    return (
        f"  {label:<10} wall median {statistics.median(r.wall for r in results):8.2f} s"
        f"  cpu {statistics.median(r.cpu for r in results):7.2f} s"
        f"  peak rss {max(r.max_rss_kib for r in results) / 1024:6.1f} MiB  [{walls}]"
    )


def count_lines(path: Path) -> int:
    with open(path, "rb") as stream:
        return sum(1 for _ in stream)


def bench(
    name: str, log: Path, server: str, resolv_conf: Path, runs: int, their_log: Path | None = None
) -> None:
    """Alternate logresolve (on `their_log`, default `log`) and webresolve (on `log`)."""
    their_log = their_log or log
    ours_out, theirs_out = OUT / f"{name}.webresolve", OUT / f"{name}.logresolve"
    mine: list[Run] = []
    theirs: list[Run] = []
    for _ in range(runs):
        theirs.append(timed(logresolve_argv(resolv_conf), their_log, theirs_out))
        mine.append(timed(webresolve_argv(server), log, ours_out))
    ours_distinct, their_distinct = len(distinct_addresses(log)), len(distinct_addresses(their_log))
    print(f"\n{name}: {runs} runs each")
    for label, path, distinct in (
        ("logresolve", their_log, their_distinct),
        ("webresolve", log, ours_distinct),
    ):
        print(f"  {label} input: {count_lines(path)} lines, {distinct} distinct addresses")
    print(summary("logresolve", theirs))
    print(summary("webresolve", mine))
    their_wall = statistics.median(r.wall for r in theirs)
    our_wall = statistics.median(r.wall for r in mine)
    if their_log == log:
        print(f"  webresolve is {their_wall / our_wall:.1f}x as fast as logresolve")
    else:
        # logresolve's time is one serial look-up per distinct address, hence the scale.
        scaled = their_wall * ours_distinct / their_distinct
        print(
            f"  logresolve extrapolated to {ours_distinct} addresses: {scaled:.0f} s; "
            f"webresolve on the whole log is {scaled / our_wall:.1f}x as fast"
        )
    agreement = compare(their_log, ours_out, theirs_out)
    print(
        f"  output on logresolve's lines: {agreement.agree} resolved identically, "
        f"{agreement.differ} differ, {agreement.only_ours} only by webresolve, "
        f"{agreement.only_theirs} only by logresolve (names webresolve refuses)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server", choices=sorted(PROGRAMS), default="unbound")
    parser.add_argument("--silent", type=int, default=3, help="addresses never answered")
    parser.add_argument("--hostile", type=int, default=2, help="addresses with unsafe PTR names")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per answer")
    parser.add_argument("--latency-lines", type=int, default=20_000)
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--full-latency", action="store_true", help="the whole log with latency")
    parser.add_argument("--skip-plain", action="store_true", help="only the latency case")
    parser.add_argument("--skip-latency", action="store_true", help="only the direct case")
    args = parser.parse_args()
    # Stopped by PID (TERM), it still stops its DNS servers on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    for program in (PROGRAMS[args.server], "/usr/bin/logresolve", "/usr/bin/time"):
        if not os.access(program, os.X_OK):
            sys.exit(f"bench_webresolve: {program} is needed (scripts/setup installs it)")
    OUT.mkdir(parents=True, exist_ok=True)
    log = workload(args.lines, args.clients, args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-webresolve."))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        zone = make_zone(distinct_addresses(log), args.silent, args.hostile)
        if args.server == "dnsmasq":
            zone.named.update(dict.fromkeys(zone.silent, "silent.not-supported.example.net"))
            zone.silent.clear()
            zone.hostile.clear()
            processes.append(start_dnsmasq(zone, work))
        else:
            processes.append(start_unbound(zone, work))
        print(
            f"DNS: {args.server} on {SERVER_ADDRESS}:53 with {len(zone.named)} names, "
            f"{len(zone.silent)} silent addresses, {len(zone.hostile)} hostile names; "
            "NXDOMAIN for 1 address in 10"
        )
        delay_argv = [
            sys.executable, "-m", "benchmarks.dns_delay",
            "--listen", f"{DELAY_ADDRESS}:53", "--upstream", f"{SERVER_ADDRESS}:53",
            "--delay", str(args.latency),
        ]  # fmt: skip
        processes.append(subprocess.Popen(delay_argv, cwd=ROOT))
        wait_for_dns(SERVER_ADDRESS)
        wait_for_dns(DELAY_ADDRESS)
        # glibc doubles the time-out at each attempt: 2 s then 4 s before giving up.
        options = "options timeout:2 attempts:2\n"
        direct, delayed = work / "resolv.direct", work / "resolv.delayed"
        direct.write_text(f"nameserver {SERVER_ADDRESS}\n{options}")
        delayed.write_text(f"nameserver {DELAY_ADDRESS}\n{options}")
        if not args.skip_plain:
            bench("no-latency", log, f"{SERVER_ADDRESS}:53", direct, args.runs)
        if not args.skip_latency:
            their_log = None if args.full_latency else head(log, args.latency_lines)
            name = f"latency-{args.latency * 1000:.0f}ms"
            bench(name, log, f"{DELAY_ADDRESS}:53", delayed, args.latency_runs, their_log)
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
