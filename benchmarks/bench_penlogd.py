"""penlogd against the C penlogd: loss and attribution on a replayed farm.

    python -m benchmarks.bench_penlogd                    # the full plan
    python -m benchmarks.bench_penlogd --quick            # a smaller farm, fewer rates
    python -m benchmarks.bench_penlogd --shapes held-out  # the join's accuracy per farm shape

The farm generator's ``events.tsv`` (records when pen forwards, lines when a
backend completes) is replayed as UDP datagrams from the right loopback source
addresses, evenly paced at each rate, into the C penlogd and ours in turn
(same run, alternating, median of --runs).  For each: the rate the sender
achieved, loss (lines sent but not written), attribution accuracy (lines
written with their true client), the fullest the receive buffer got, and the
rate the daemon read at (datagrams from the first sent to the last read).
The floor is a plain consuming first-in-first-out join over the same events in
arrival order, computed here.  A last row replays the extended farm
(``SERVER#PORT`` records, backends logging ``%{remote}p``) into ours.

Sustained, not a burst: each replay sends --duration seconds of traffic (the
first RATE x DURATION events of one farm generated large enough for the
highest rate), so that ours' large receive buffer cannot hide a reader slower
than the rate; the output says how many datagrams the buffer holds, and what
deficit the replay length would still hide.

``--shapes SEEDS`` measures the join alone on every named shape of
benchmarks.farm, for each seed of the set (as bench_mergelogs does): each
farm's events go to penlogd's join (LiveJoin) at their own arrival times, in
this process, so that a 100 req/s farm takes seconds rather than its real
duration; against the FIFO join in arrival order.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_mergelogs import shape_report
from benchmarks.farm import SEED_SETS, SHAPES, FarmEvent, read_events, shape_config
from benchmarks.farm import generate_farm as generate_shape_farm
from pentools.core.accesslog import LogFormat
from pentools.core.addresses import address_family
from pentools.core.records import parse_datagram
from pentools.core.sockets import size_receive_buffer
from pentools.penlogd.config import DEFAULT_RCVBUF
from pentools.penlogd.join import JoinConfig, LiveJoin

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "penlogd"


def generate_farm(directory: Path, requests: int, farm_rate: float, extended: bool) -> None:
    argv = [sys.executable, "-m", "benchmarks.farm", "--requests", str(requests)]
    argv += ["--rate", str(farm_rate), "--out", str(directory)]
    if extended:
        argv.append("--extended")
    subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def identity(line: bytes) -> bytes:
    """A line without its first field: the part a join leaves alone."""
    return line.rstrip(b"\n").split(b" ", 1)[-1]


def truth_of(events: list[FarmEvent]) -> Counter[tuple[bytes, str]]:
    return Counter((identity(e.payload), e.client) for e in events if e.client is not None)


def score(lines: list[bytes], truth: Counter[tuple[bytes, str]]) -> int:
    """Lines written with their true client (identical lines are interchangeable)."""
    found = Counter((identity(line), line.split(b" ", 1)[0].decode("latin-1")) for line in lines)
    return sum(min(count, truth[key]) for key, count in found.items())


def fifo_floor(events: list[FarmEvent], log_format: str | None) -> int:
    """Lines a plain consuming FIFO join in arrival order gets right."""
    parser = LogFormat(log_format)
    queues: dict[tuple[str, str], deque[str]] = defaultdict(deque)
    right = 0
    for event in events:
        if event.client is None:
            record = parse_datagram(event.payload, 0.0)
            queues[(record.server, record.request)].append(record.client)
            continue
        line = parser.parse(event.payload.decode("latin-1"))
        queue = queues.get((event.source, line.request_key())) if line else None
        if queue and queue.popleft() == event.client:
            right += 1
    return right


def join_offline(events: list[FarmEvent]) -> list[bytes]:
    """The lines penlogd's join writes for `events`, each handled at its arrival time."""
    join = LiveJoin(JoinConfig())
    lines: list[bytes] = []
    for event in events:
        join.release_due(event.time)
        join.receive(event.payload, event.source, event.time)
        lines.extend(join.take_output())
    join.release_all()
    lines.extend(join.take_output())
    return lines


def run_shapes(seed_set: str, requests: int, only: list[str]) -> None:
    """The join's accuracy and FIFO's on each shape and seed; medians and worst leads."""
    seeds = SEED_SETS[seed_set]
    results: dict[str, list[dict[str, float]]] = {}
    for shape in only or list(SHAPES):
        for seed in seeds:
            directory = OUT / "shapes" / f"{shape}-{requests}-s{seed}"
            if not (directory / "events.tsv").exists():
                generate_shape_farm(shape_config(shape, directory, seed, requests, events=True))
            events = list(read_events(directory))
            truth = truth_of(events)
            total = sum(truth.values())
            accuracy = {
                "pentools": 100 * score(join_offline(events), truth) / total,
                "FIFO": 100 * fifo_floor(events, None) / total,
            }
            results.setdefault(shape, []).append(accuracy)
            cells = "  ".join(f"{tool} {value:.2f}%" for tool, value in accuracy.items())
            print(f"{shape} seed {seed}: {cells}", file=sys.stderr, flush=True)
    print(shape_report(results, seeds))


def udp_socket_state(port: int) -> tuple[int, int] | None:
    """(bytes queued, datagrams dropped) of the socket bound to UDP `port`, from /proc."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as handle:
            next(handle)
            for row in handle:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return int(fields[4].split(":")[1], 16), int(fields[-1])
    return None


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def datagrams_held(events: list[FarmEvent], buffer_bytes: int) -> int:
    """How many of these datagrams a receive buffer of `buffer_bytes` (as granted) holds.

    The kernel charges each queued datagram its whole buffer (truesize), not
    its payload: measured here on a socket that does not read.
    """
    sample = events[:2000]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        size_receive_buffer(sink, 8 << 20)
        sink.bind(("127.0.0.1", 0))
        port = sink.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as source:
            for event in sample:
                source.sendto(event.payload, ("127.0.0.1", port))
        state = udp_socket_state(port)
    per_datagram = state[0] / len(sample) if state and state[0] else 1024.0
    return int(buffer_bytes / per_datagram)


def replay(events: list[FarmEvent], port: int, rate: float, peak: list[int]) -> float:
    """Send every event from its source address at `rate` per second; the rate achieved.

    Every 50 ms of traffic the receiver's queue is looked at in /proc: the
    largest (bytes) is appended to `peak`.
    """
    sockets: dict[str, socket.socket] = {}
    for source in {e.source for e in events}:
        sock = socket.socket(address_family(source), socket.SOCK_DGRAM)
        sock.bind((source, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        sock.connect(("127.0.0.1", port))
        sockets[source] = sock
    # A collection of the millions of events would stop the sender for a
    # second, which it would then make up in a burst: none while sending.
    gc.disable()
    plan = [(sockets[e.source].send, e.payload) for e in events]
    batch = max(1, int(rate / 2000))  # check the clock every half millisecond of traffic
    look_every = max(1, int(rate / 20 / batch))  # batches in 50 ms
    queued = 0
    start = time.perf_counter()
    for number, index in enumerate(range(0, len(plan), batch)):
        for send, payload in plan[index : index + batch]:
            with contextlib.suppress(OSError):  # a full buffer: lost, as the score shows
                send(payload)
        if number % look_every == 0:
            state = udp_socket_state(port)
            queued = max(queued, state[0] if state else 0)
        ahead = start + (index + batch) / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.perf_counter() - start
    gc.enable()
    peak.append(queued)
    for sock in sockets.values():
        sock.close()
    return len(plan) / elapsed


@dataclass
class Result:
    sent_rate: float
    lines: int
    written: int
    correct: int
    kernel_drops: int
    read_rate: float  # datagrams per second from the first sent to the last read
    buffer_peak: float  # the fullest the receive buffer got, in % of what was granted

    @property
    def loss(self) -> float:
        return 100.0 * (self.lines - self.written) / self.lines

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.lines


def run_one(
    tool: str,
    events: list[FarmEvent],
    truth: Counter,
    rate: float,
    work: Path,
    log_format: str | None,
) -> Result:
    port = free_udp_port()
    output = work / f"{tool}-{int(rate)}-{port}.log"
    if tool == "C":
        argv = ["/usr/bin/penlogd", "-f", "-l", str(output), str(port)]
    else:
        argv = [sys.executable, "-m", "pentools.penlogd", "-f", "-l", str(output), str(port)]
        if log_format:
            argv[-1:-1] = ["--log-format", log_format]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while udp_socket_state(port) is None:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{tool} penlogd did not start")
            time.sleep(0.02)
        time.sleep(0.2)  # ours binds before its loop runs: let it settle
        granted = receive_buffer(port)
        started = time.perf_counter()
        peak: list[int] = []
        sent_rate = replay(events, port, rate, peak)
        state = udp_socket_state(port)
        deadline = time.monotonic() + 60
        while state is not None and state[0] > 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until it has read everything
            state = udp_socket_state(port)
        read_rate = len(events) / (time.perf_counter() - started)
        time.sleep(0.7)  # lines waiting for a record (ours: 0.5 s) are written
        drops = state[1] if state else 0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    lines = output.read_bytes().splitlines(keepends=True) if output.exists() else []
    output.unlink(missing_ok=True)
    sent_lines = sum(1 for e in events if e.client is not None)
    buffer_peak = 100.0 * peak[0] / granted if granted else 0.0
    return Result(
        sent_rate, sent_lines, len(lines), score(lines, truth), drops, read_rate, buffer_peak
    )


def receive_buffer(port: int) -> int:
    """The receive buffer (bytes) the kernel granted the socket on UDP `port` (0 if unknown)."""
    try:
        shown = subprocess.run(
            ["ss", "-uamnH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    found = re.search(r"\brb(\d+)", shown)
    return int(found.group(1)) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds of traffic replayed at each rate (default 10)",
    )
    parser.add_argument("--farm-rate", type=float, default=1000.0, help="farm requests per second")
    parser.add_argument("--rates", default="10000,50000,100000,200000", help="datagrams per second")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--tools", default="C,ours", help="which penlogds to replay into (default C,ours)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 s of traffic, rates 10000 and 50000 (a burst)"
    )
    parser.add_argument(
        "--shapes",
        choices=sorted(SEED_SETS),
        help="the join's accuracy per farm shape, these seeds",
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests per shape farm")
    parser.add_argument("--only", nargs="*", default=[], help="--shapes: just these shapes")
    args = parser.parse_args()
    if args.shapes:
        run_shapes(args.shapes, args.requests, args.only)
        return
    if args.quick:
        args.duration, args.rates = 2.0, "10000,50000"
    rates = [float(r) for r in args.rates.split(",")]
    tools = args.tools.split(",")
    OUT.mkdir(parents=True, exist_ok=True)

    # One farm large enough for the highest rate; each rate replays its first
    # RATE x DURATION events (a prefix of a farm is a farm: every line's
    # record comes before it).  About 2.04 datagrams per request.
    requests = int(max(rates) * args.duration / 2.0) + 1000
    farms = {}
    for extended in (False, True):
        directory = OUT / f"farm-{requests}-{int(args.farm_rate)}{'-ext' if extended else ''}"
        if not (directory / "events.tsv").exists():
            print(f"generating {directory.name} ...", flush=True)
            generate_farm(directory, requests, args.farm_rate, extended)
        farms[extended] = list(read_events(directory))
    events = farms[False]
    granted = 2 * DEFAULT_RCVBUF  # what Linux grants for the default --rcvbuf
    held = datagrams_held(events, granted)
    print(
        f"farm: {requests} requests at {args.farm_rate:g}/s, {len(events)} datagrams; each rate "
        f"replays {args.duration:g} s of traffic ({args.runs} runs each, medians)"
    )
    print(
        f"ours' receive buffer ({granted >> 20} MiB granted) holds about {held} of these "
        f"datagrams: a replay hides a reader slower than the rate by up to "
        f"{held / args.duration:.0f} datagrams/s (see buffer %, read/s)"
    )
    print(
        f"{'rate/s':>8} {'tool':>4} {'sent/s':>8} {'loss %':>8} {'true client %':>14} "
        f"{'FIFO %':>7} {'buffer %':>8} {'kernel drops':>12} {'read/s':>8}"
    )
    loss_free: dict[str, float] = {}
    sustained: dict[str, float] = {}  # loss-free without leaning on the buffer
    for rate in rates:
        replayed = events[: int(rate * args.duration)]
        truth = truth_of(replayed)
        floor = 100.0 * fifo_floor(replayed, None) / sum(truth.values())
        results: dict[str, list[Result]] = {tool: [] for tool in tools}
        for _ in range(args.runs):
            for tool in tools:
                results[tool].append(run_one(tool, replayed, truth, rate, OUT, None))
        for tool, runs in results.items():
            loss = statistics.median(r.loss for r in runs)
            print(
                f"{rate:8.0f} {tool:>4} {statistics.median(r.sent_rate for r in runs):8.0f} "
                f"{loss:8.3f} {statistics.median(r.accuracy for r in runs):14.2f} "
                f"{floor:7.2f} {statistics.median(r.buffer_peak for r in runs):8.1f} "
                f"{statistics.median(r.kernel_drops for r in runs):12.0f} "
                f"{statistics.median(r.read_rate for r in runs):8.0f}"
            )
            if loss < 0.1 and loss_free.get(tool, 0) == rate_before(rates, rate):
                loss_free[tool] = rate
                peak = statistics.median(r.buffer_peak for r in runs)
                if peak < 50 and sustained.get(tool, 0) == rate_before(rates, rate):
                    sustained[tool] = rate
        sys.stdout.flush()
    for tool in tools:
        print(
            f"highest rate with loss under 0.1% ({tool}): {loss_free.get(tool, 0):.0f}/s; "
            f"and with the receive buffer never half full: {sustained.get(tool, 0):.0f}/s"
        )
    if "ours" not in tools:
        return
    # Extended records: exact, whatever the order (combined_port is read by
    # accesslog's fast port regex, as quick as plain combined).
    for rate in sorted({rates[0], loss_free.get("ours", rates[0])}):
        ext = farms[True][: int(rate * args.duration)]
        runs = [
            run_one("ours", ext, truth_of(ext), rate, OUT, "combined_port")
            for _ in range(args.runs)
        ]
        print(
            f"extended records at {rate:.0f}/s (ours, --log-format combined_port): "
            f"sent {statistics.median(r.sent_rate for r in runs):.0f}/s, "
            f"loss {statistics.median(r.loss for r in runs):.3f}%, "
            f"true client {statistics.median(r.accuracy for r in runs):.2f}%, "
            f"buffer {statistics.median(r.buffer_peak for r in runs):.1f}%, "
            f"read {statistics.median(r.read_rate for r in runs):.0f}/s"
        )


def rate_before(rates: list[float], rate: float) -> float:
    """The rate tried before `rate` (0 for the first): loss-free means at every rate up to it."""
    index = rates.index(rate)
    return rates[index - 1] if index else 0


if __name__ == "__main__":
    main()
