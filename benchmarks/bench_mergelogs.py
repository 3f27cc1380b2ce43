"""mergelogs against the C mergelogs and a plain FIFO join, on generated farms.

    python -m benchmarks.bench_mergelogs            # the full plan (about 20-30 minutes)
    python -m benchmarks.bench_mergelogs --quick    # small farms, a couple of minutes
    python -m benchmarks.bench_mergelogs --shapes tuning     # accuracy per farm shape
    python -m benchmarks.bench_mergelogs --shapes held-out   # the same on the final seeds

``--shapes`` measures accuracy on every named shape of benchmarks.farm
(SHAPES), for each seed of a set (farm.SEED_SETS): TUNING_SEEDS are the ones to look at while
changing the join; HELD_OUT_SEEDS are only for the figures reported, so the
figures are on farms the tuning never saw.  The table gives medians over the
seeds and the worst seed's lead over FIFO and over the C mergelogs.

Each tool runs as a whole process under /usr/bin/time (wall time, peak RSS);
ours is repeated (median reported), the C tool too when it is quick; the
accuracy is the share of lines attributed to their true client
(benchmarks.scoring).  Workloads are generated once into
benchmarks/workloads/ by benchmarks.farm, deterministically.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.farm import SEED_SETS, SHAPES, generate_farm, shape_config
from benchmarks.scoring import read_truth, score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOADS = HERE / "workloads"
OUT = HERE / "out"


@dataclass(frozen=True)
class Workload:
    requests: int
    rate: int
    delay: str = "wide"
    extended: bool = False
    with_c: bool = True

    @property
    def name(self) -> str:
        size = (
            f"{self.requests // 1000}k"
            if self.requests < 1_000_000
            else f"{self.requests // 1_000_000}m"
        )
        return f"r{self.rate}-{size}-{self.delay}{'-ext' if self.extended else ''}"


def plan(quick: bool, full: bool) -> list[Workload]:
    if quick:
        return [
            Workload(10_000, 10),
            Workload(10_000, 100),
            Workload(10_000, 1000),
            Workload(10_000, 100, delay="lan"),
            Workload(10_000, 1000, extended=True, with_c=False),
        ]
    return [
        Workload(100_000, 10),
        Workload(100_000, 100),
        Workload(100_000, 1000),
        Workload(100_000, 100, delay="lan"),
        Workload(100_000, 10, extended=True, with_c=False),
        Workload(100_000, 100, extended=True, with_c=False),
        Workload(100_000, 1000, extended=True, with_c=False),
        Workload(1_000_000, 100, with_c=full),
        Workload(1_000_000, 1000, delay="lan", with_c=False),
    ]


def generate(workload: Workload) -> Path:
    directory = WORKLOADS / workload.name
    if (directory / "farm.json").exists():
        return directory
    command = [
        sys.executable,
        "-m",
        "benchmarks.farm",
        "--requests",
        str(workload.requests),
        "--rate",
        str(workload.rate),
        "--delay",
        workload.delay,
        "--seed",
        "7",
        "--out",
        str(directory),
        "--no-events",  # the UDP replay is penlogd's benchmark, not this one
    ]
    if workload.extended:
        command.append("--extended")
    subprocess.run(command, check=True, cwd=ROOT, env=_env())
    return directory


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")
    return env


def sources(directory: Path) -> list[str]:
    logs = sorted(directory.glob("access_log.*"))
    return [f"{log.name.removeprefix('access_log.')}:{log}" for log in logs]


def timed(command: list[str], output: Path, timeout: float) -> tuple[float, float] | None:
    """(wall seconds, peak MB) of one run writing stdout to `output`, or None on timeout."""
    with output.open("wb") as out:
        started = time.monotonic()
        try:
            result = subprocess.run(
                ["/usr/bin/time", "-f", "%M", *command],
                stdout=out,
                stderr=subprocess.PIPE,
                cwd=ROOT,
                env=_env(),
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return None
        wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.decode()[-500:]}")
    peak_kb = int(result.stderr.decode().strip().splitlines()[-1])
    return wall, peak_kb / 1024


@dataclass
class Row:
    workload: str
    tool: str
    wall: float | None
    peak_mb: float | None
    accuracy: float | None
    runs: int


def measure(workload: Workload, repeat: int, c_timeout: float) -> list[Row]:
    directory = generate(workload)
    truth = read_truth(directory)
    OUT.mkdir(exist_ok=True)
    fmt = ["--log-format", "combined_port"] if workload.extended else []
    ours = [
        sys.executable,
        "-m",
        "pentools.mergelogs",
        "-p",
        str(directory / "pen.log"),
        *fmt,
        *sources(directory),
    ]
    fifo = [
        sys.executable,
        "-m",
        "benchmarks.fifo_join",
        *fmt,
        str(directory / "pen.log"),
        *sources(directory),
    ]
    tools: list[tuple[str, list[str], int, float]] = [("pentools", ours, repeat, 3600)]
    if workload.with_c and shutil.which("mergelogs"):
        tools.append(
            (
                "C mergelogs",
                ["mergelogs", "-p", str(directory / "pen.log"), *sources(directory)],
                repeat,
                c_timeout,
            )
        )
    tools.append(("FIFO join", fifo, 1, 3600))
    rows = []
    for tool, command, runs, timeout in tools:
        output = OUT / f"{workload.name}.{tool.split()[0]}.log"
        results = []
        for _ in range(runs):
            measured = timed(command, output, timeout)
            if measured is None:
                break
            results.append(measured)
            if tool != "pentools" and measured[0] > 30:
                break  # one slow reference run is enough to compare with
        if not results:
            rows.append(Row(workload.name, tool, None, None, None, 0))
            continue
        correct, total = score(output, truth)
        rows.append(
            Row(
                workload.name,
                tool,
                statistics.median(r[0] for r in results),
                max(r[1] for r in results),
                100 * correct / total,
                len(results),
            )
        )
    return rows


def report(rows: list[Row]) -> str:
    lines = [
        f"{'workload':<22} {'tool':<12} {'wall s':>8} {'peak MB':>8} {'accuracy':>9} "
        f"{'runs':>4} {'speed-up':>9} {'vs C':>7} {'vs FIFO':>8}"
    ]
    by_workload: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_workload.setdefault(row.workload, {})[row.tool] = row
    for workload, tools in by_workload.items():
        c_row, fifo_row = tools.get("C mergelogs"), tools.get("FIFO join")
        for tool, row in tools.items():
            wall = f"{row.wall:8.2f}" if row.wall is not None else " timeout"
            peak = f"{row.peak_mb:8.0f}" if row.peak_mb is not None else "       -"
            accuracy = f"{row.accuracy:8.2f}%" if row.accuracy is not None else "        -"
            speedup = vs_c = vs_fifo = ""
            if tool == "pentools" and row.accuracy is not None:
                if c_row and c_row.wall and row.wall:
                    speedup = f"{c_row.wall / row.wall:8.1f}x"
                if c_row and c_row.accuracy is not None:
                    vs_c = f"{row.accuracy - c_row.accuracy:+6.1f}"
                if fifo_row and fifo_row.accuracy is not None:
                    vs_fifo = f"{row.accuracy - fifo_row.accuracy:+7.1f}"
            lines.append(
                f"{workload:<22} {tool:<12} {wall} {peak} {accuracy} {row.runs:>4} "
                f"{speedup:>9} {vs_c:>7} {vs_fifo:>8}"
            )
    lines.append("speed-up: C wall / ours; vs C, vs FIFO: accuracy difference in points")
    return "\n".join(lines)


def shape_accuracy(shape: str, seed: int, requests: int, with_c: bool) -> dict[str, float]:
    """Accuracy (%) of each join on one farm of `shape` generated from `seed`."""
    directory = WORKLOADS / "shapes" / f"{shape}-{requests}-s{seed}"
    if not (directory / "farm.json").exists():
        generate_farm(shape_config(shape, directory, seed, requests, events=False))
    truth = read_truth(directory)
    OUT.mkdir(exist_ok=True)
    pen_log, logs = str(directory / "pen.log"), sources(directory)
    commands = {
        "pentools": [sys.executable, "-m", "pentools.mergelogs", "-p", pen_log, *logs],
        "FIFO": [sys.executable, "-m", "benchmarks.fifo_join", pen_log, *logs],
    }
    if with_c:
        commands["C"] = ["mergelogs", "-p", pen_log, *logs]
    accuracy = {}
    for tool, command in commands.items():
        # The C tool does not change between runs: its score is kept with the farm.
        kept = directory / "c_accuracy.txt"
        if tool == "C" and kept.exists():
            accuracy[tool] = float(kept.read_text())
            continue
        output = OUT / f"shape.{tool}.log"
        if timed(command, output, 3600) is None:
            continue
        correct, total = score(output, truth)
        accuracy[tool] = 100 * correct / total
        if tool == "C":
            kept.write_text(f"{accuracy[tool]!r}\n")
    return accuracy


def shape_report(results: dict[str, list[dict[str, float]]], seeds: tuple[int, ...]) -> str:
    """Medians per shape, and the worst seed's lead of ours over FIFO and C."""
    lines = [
        f"seeds {', '.join(map(str, seeds))}; accuracy = lines given their true client, "
        "median over the seeds; min lead = the worst seed's",
        f"{'shape':<18} {'pentools':>9} {'FIFO':>7} {'C':>7} {'vs FIFO':>8} "
        f"{'min lead':>8} {'vs C':>6} {'min lead':>8}  what",
    ]
    for shape, runs in results.items():
        cells = []
        for tool in ("pentools", "FIFO", "C"):
            values = [run[tool] for run in runs if tool in run]
            cells.append(f"{statistics.median(values):6.2f}%" if values else "      -")
        leads = []
        for other in ("FIFO", "C"):
            differences = [run["pentools"] - run[other] for run in runs if other in run]
            if differences:
                leads.append(f"{statistics.median(differences):+8.2f}")
                leads.append(f"{min(differences):+8.2f}")
            else:
                leads.extend(["       -", "       -"])
        lines.append(
            f"{shape:<18} {cells[0]:>9} {cells[1]:>7} {cells[2]:>7} {leads[0]} {leads[1]} "
            f"{leads[2][2:]:>6} {leads[3]}  {SHAPES[shape].about}"
        )
    return "\n".join(lines)


def run_shapes(seed_set: str, requests: int, with_c: bool, only: list[str]) -> None:
    seeds = SEED_SETS[seed_set]
    results: dict[str, list[dict[str, float]]] = {}
    for shape in only or list(SHAPES):
        for seed in seeds:
            accuracy = shape_accuracy(shape, seed, requests, with_c)
            results.setdefault(shape, []).append(accuracy)
            cells = "  ".join(f"{tool} {value:.2f}%" for tool, value in accuracy.items())
            print(f"{shape} seed {seed}: {cells}", file=sys.stderr, flush=True)
    print(shape_report(results, seeds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small farms, a few minutes")
    parser.add_argument("--full", action="store_true", help="also run the C tool on 1M lines")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours per workload")
    parser.add_argument("--c-timeout", type=float, default=1200, help="seconds per C run")
    parser.add_argument(
        "--shapes", choices=sorted(SEED_SETS), help="accuracy per farm shape on this seed set"
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests per shape farm")
    parser.add_argument("--no-c", action="store_true", help="--shapes without the C tool")
    parser.add_argument("--only", nargs="*", default=[], help="--shapes: just these shapes")
    args = parser.parse_args()
    if args.shapes:
        run_shapes(
            args.shapes, args.requests, not args.no_c and bool(shutil.which("mergelogs")), args.only
        )
        return
    rows: list[Row] = []
    for workload in plan(args.quick, args.full):
        measured = measure(workload, args.repeat, args.c_timeout)
        rows.extend(measured)
        print("\n".join(report(measured).splitlines()[1:-1]), flush=True)
    print()
    print(report(rows))


if __name__ == "__main__":
    main()
