"""webstats report in one process and on a Dask cluster (``bench_webstats --scheduler``).

    python -m benchmarks.bench_webstats --scheduler local:2 --lines 5000000 --files 10

The workload is one `benchmarks.weblog` log of LINES lines cut into FILES
files, as a farm's servers leave them.  Both commands run alternately RUNS
times; each run's wall time, and the peak memory (VmHWM) of every process of
its tree, sampled from /proc: the driver (client, and for ``local:N`` the
scheduler and the nannies) and each worker.  The outputs must be the same
JSON.  Then the costs an estimate for a larger cluster needs: the start and
stop of the cluster alone (a one-line log), and the merge of two states of a
file, with its pickled size (what a worker sends to another).
"""

from __future__ import annotations

import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.weblog import WORKLOADS, generate_lines

#: Seconds between two looks at the process tree.
SAMPLE_EVERY = 0.1


def farm_files(lines: int, clients: int, seed: int, files: int) -> list[Path]:
    """One generated log of `lines` lines in `files` files of consecutive lines (cached)."""
    folder = WORKLOADS / f"farm-{lines}-{clients}-{seed}-{files}"
    paths = [folder / f"access-{index:02d}.log" for index in range(files)]
    if not folder.exists():
        temporary = folder.with_suffix(".tmp")
        temporary.mkdir(parents=True, exist_ok=True)
        generated = generate_lines(lines, clients, seed)
        for index, path in enumerate(paths):
            count = lines // files + (1 if index < lines % files else 0)
            with open(temporary / path.name, "w", encoding="latin-1", newline="") as out:
                out.writelines(next(generated) for _ in range(count))
        temporary.rename(folder)
    return paths


def _tree(root: int) -> list[int]:
    """`root` and every process under it, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def _peak_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "driver"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "other"
    if b"resource_tracker" in command:
        return "resource tracker"
    return "worker" if b"spawn_main" in command else "other"


def measure_tree(
    argv: list[str], env: dict[str, str]
) -> tuple[float, float, dict[str, list[float]]]:
    """Wall and CPU seconds of one run (CPU of the processes it waited for: the
    LocalCluster's workers too), and the peak MB of each process of its tree by role."""
    peaks: dict[int, tuple[str, float]] = {}
    with tempfile.TemporaryFile() as errors:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        while process.poll() is None:
            for pid in _tree(process.pid):
                peak = _peak_mb(pid)
                if peak is not None:  # the role again: a child starts as a fork of its parent
                    peaks[pid] = (_role(pid, process.pid), peak)
            time.sleep(SAMPLE_EVERY)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
        if process.returncode != 0:
            errors.seek(0)
            sys.exit(f"bench_webstats: {argv} failed: {errors.read().decode()[-2000:]}")
    by_role: dict[str, list[float]] = {}
    for role, peak in peaks.values():
        by_role.setdefault(role, []).append(peak)
    return wall, cpu, by_role


def merge_cost(path: Path) -> tuple[float, int]:
    """Seconds to merge two states of `path` (as a tree of merges does), and a state's
    pickled size in bytes: what a worker sends to the one that merges."""
    from pentools.webstats.sources import count_files
    from pentools.webstats.state import State, merge

    first = count_files([str(path)], State.empty())
    second = count_files([str(path)], State.empty())
    size = len(pickle.dumps(first))
    started = time.perf_counter()
    merge(first, second)
    return time.perf_counter() - started, size


def bench_cluster(
    scheduler: str, lines: int, clients: int, seed: int, files: int, runs: int, out: Path
) -> int:
    """Print the comparison of one process and the cluster on the farm's files."""
    paths = farm_files(lines, clients, seed, files)
    env = dict(os.environ)
    here = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(here), env.get("PYTHONPATH")]))
    report = [sys.executable, "-m", "pentools.webstats", "report", *map(str, paths)]
    commands = {
        "one process": [*report, "--json", str(out / "alone.json")],
        scheduler: [*report, "--json", str(out / "cluster.json"), "--scheduler", scheduler],
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    memory: dict[str, dict[str, list[float]]] = {name: {} for name in commands}
    counts: dict[str, int] = {}
    for _ in range(runs):
        for name, argv in commands.items():  # alternately, so both see the same noise
            wall, cpu, peaks = measure_tree(argv, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
            for role, values in peaks.items():  # the largest process of each role
                memory[name].setdefault(role, []).append(max(values))
                counts[role] = len(values)
        if (out / "alone.json").read_bytes() != (out / "cluster.json").read_bytes():
            sys.exit("bench_webstats: the cluster's JSON differs from the single process's")
    empty = out / "one-line.log"
    empty.write_text('192.0.2.1 - - [01/Mar/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "u"\n')
    alone_argv = [*report[:4], str(empty), "--json", os.devnull, "--scheduler", scheduler]
    overhead = statistics.median(measure_tree(alone_argv, env)[0] for _ in range(runs))
    merge_seconds, state_bytes = merge_cost(paths[0])
    size = sum(path.stat().st_size for path in paths)
    print(f"{lines} lines, {size / 1e6:.0f} MB in {files} files; medians of {runs} runs")
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        shown = "  ".join(
            f"{role} {statistics.median(values):.0f} MB"
            + (f" (largest of {counts[role]})" if counts[role] > 1 else "")
            for role, values in memory[name].items()
        )
        print(
            f"  {name:12} wall {wall:6.2f} s ({lines / wall / 1e3:.0f}k lines/s)  "
            f"cpu {cpu:6.2f} s ({lines / cpu / 1e3:.0f}k lines per CPU second)  peak: {shown}"
        )
    alone, cluster = (statistics.median(walls[name]) for name in commands)
    print(f"  cluster/one process wall x{cluster / alone:.2f}; identical JSON")
    print(f"  {scheduler} start and stop alone (one-line log): {overhead:.2f} s")
    workers = counts.get("worker", 0)
    if workers:  # a LocalCluster: its workers are in the tree
        rate = lines / max(cluster - overhead, 1e-9) / workers
        print(f"  per worker, start and stop left out: {rate / 1e3:.0f}k lines/s")
    print(
        f"  merge of two states of one file ({lines // files} lines): {merge_seconds:.2f} s, "
        f"a state pickled: {state_bytes / 1e6:.1f} MB"
    )
    return 0
