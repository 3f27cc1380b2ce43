"""webstats report against GoAccess on the same combined log, in the same run.

    python -m benchmarks.bench_webstats [--lines 1000000] [--runs 3]
    python -m benchmarks.bench_webstats --scheduler local:2 --lines 5000000 --files 10

Generates (once) a log with `benchmarks.weblog`, then runs GoAccess
(``--no-global-config --log-format=COMBINED``, JSON output) and ``webstats
report`` (HTML and JSON) alternately, each under ``/usr/bin/time -v``, and
prints the medians of wall time, CPU time and peak memory, and our ratios.

Then the cron case: a ``--state`` built over the whole log, 10,000 new lines
appended (``--new-lines``), and the incremental run that counts them timed.

    python -m benchmarks.bench_webstats --live [--rate 50000] [--seconds 20]

The live case: ``webstats live`` follows a file that lines of the same log
are appended to at --rate lines/s; it prints how far behind the served
counts were (the largest lag while writing, the time to catch up after the
last line) and the server's peak memory.

With ``--scheduler``, it compares one process with a Dask cluster instead
(`benchmarks.webstats_cluster`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.weblog import generate_lines, workload

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def measure(argv: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one run, from /usr/bin/time -v."""
    result = subprocess.run(
        ["/usr/bin/time", "-v", *argv], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        sys.exit(f"bench_webstats: {argv[0]} failed: {result.stderr.strip().splitlines()[-1:]}")
    fields = dict(re.findall(r"^\s*(.+?): (.+)$", result.stderr, re.MULTILINE))
    wall = 0.0
    for part in fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":"):
        wall = wall * 60 + float(part)
    cpu = float(fields["User time (seconds)"]) + float(fields["System time (seconds)"])
    return {
        "wall": wall,
        "cpu": cpu,
        "rss": int(fields["Maximum resident set size (kbytes)"]) / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--live", action="store_true", help="Measure webstats live instead.")
    parser.add_argument("--rate", type=int, default=50_000, help="Live: lines appended a second.")
    parser.add_argument("--seconds", type=float, default=20, help="Live: seconds of appending.")
    parser.add_argument("--new-lines", type=int, default=10_000, help="0: no incremental case")
    parser.add_argument("--scheduler", help="compare one process with this Dask cluster")
    parser.add_argument("--files", type=int, default=10, help="with --scheduler: log files")
    args = parser.parse_args(argv)
    if args.live:
        return live_case(args)
    if args.scheduler:
        from benchmarks.webstats_cluster import bench_cluster

        OUT.mkdir(parents=True, exist_ok=True)
        return bench_cluster(
            args.scheduler, args.lines, args.clients, args.seed, args.files, args.runs, OUT
        )
    log = workload(args.lines, args.clients, args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    commands = {
        "goaccess": [
            "goaccess", str(log), "--no-global-config", "--log-format=COMBINED",
            "-o", str(OUT / "goaccess.json"),
        ],
        "webstats": [
            sys.executable, "-m", "pentools.webstats", "report", str(log),
            "-o", str(OUT / "webstats.html"), "--json", str(OUT / "webstats.json"),
        ],
    }  # fmt: skip
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():  # alternate, so both see the same noise
            runs[name].append(measure(command, env))
    print(f"{args.lines} lines, {log.stat().st_size / 1e6:.0f} MB, medians of {args.runs} runs")
    medians = {
        name: {k: statistics.median(r[k] for r in results) for k in ("wall", "cpu", "rss")}
        for name, results in runs.items()
    }
    for name, m in medians.items():
        print(f"  {name:9} wall {m['wall']:6.2f} s  cpu {m['cpu']:6.2f} s  peak {m['rss']:6.0f} MB")
    ours, theirs = medians["webstats"], medians["goaccess"]
    print(
        "  webstats/goaccess: "
        + "  ".join(f"{k} x{ours[k] / theirs[k]:.2f}" for k in ("wall", "cpu", "rss"))
    )
    if args.new_lines:
        incremental(log, args.new_lines, args.runs, env)
    return 0


def live_case(args: argparse.Namespace) -> int:
    """Append at `args.rate` lines/s to a file ``webstats live`` follows; print its lag."""
    source = workload(args.lines, args.clients, args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    followed = OUT / "live.log"
    followed.write_bytes(b"")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "pentools.webstats", "live", str(followed), "--listen", str(port)]
    server = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/stats.json"
    try:
        counted = _served_total(url, deadline=time.monotonic() + 30)
        lines = iter(source.read_bytes().splitlines(keepends=True))
        appended, written, lag, start = 0, 0, 0, time.monotonic()
        with followed.open("ab") as out:
            while (elapsed := time.monotonic() - start) < args.seconds:
                due = int(elapsed * args.rate) - appended
                batch = [line for line, _ in zip(lines, range(due), strict=False)]
                appended += len(batch)
                out.write(b"".join(batch))
                out.flush()
                written += sum(1 for line in batch if line.strip())  # empty lines are no requests
                if written and int(elapsed * 10) % 10 == 0:  # about once a second
                    lag = max(lag, written - _served_total(url))
                time.sleep(0.05)
        stopped = time.monotonic()
        while (counted := _served_total(url)) < written:
            time.sleep(0.05)
        catch_up = time.monotonic() - stopped
        peak = _peak_rss(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=20)
    rate = appended / (stopped - start)
    print(f"webstats live: {appended} lines appended in {stopped - start:.1f} s ({rate:,.0f}/s)")
    print(f"  largest lag while writing {lag:,} lines ({lag / rate:.2f} s of input)")
    print(f"  all {counted:,} lines served {catch_up:.2f} s after the last was written")
    print(f"  peak memory {peak:.0f} MB")
    return 0


def _served_total(url: str, deadline: float = 0.0) -> int:
    """total_requests of /stats.json (waiting until `deadline` for the server to start)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                return int(json.load(reply)["general"]["total_requests"])
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _peak_rss(pid: int) -> float:
    """Peak resident memory of a running process, MB (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def incremental(log: Path, new_lines: int, runs: int, env: dict[str, str]) -> None:
    """Time ``report --state`` over `new_lines` appended to a log whose state is saved."""
    work = OUT / "incremental"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    live, state, saved = work / "access.log", work / "state", work / "state.saved"
    shutil.copyfile(log, live)
    command = [
        sys.executable, "-m", "pentools.webstats", "report", str(live), "--state", str(state),
        "-o", str(work / "report.html"), "--json", str(work / "report.json"),
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True)
    shutil.copyfile(state, saved)
    with open(live, "a", encoding="latin-1", newline="") as out:
        out.writelines(generate_lines(new_lines, 5_000, seed=99, days=1))
    results = []
    for _ in range(runs):
        shutil.copyfile(saved, state)  # the same new lines each time
        results.append(measure(command, env))
    wall = statistics.median(r["wall"] for r in results)
    rss = statistics.median(r["rss"] for r in results)
    print(
        f"  incremental: {new_lines} new lines on a state of {log.name} "
        f"({state.stat().st_size / 1e6:.1f} MB): wall {wall:.2f} s  peak {rss:.0f} MB"
    )


if __name__ == "__main__":
    sys.exit(main())
