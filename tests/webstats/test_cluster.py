"""webstats report --scheduler: a real Dask scheduler and workers give the one-process report.

The cluster is real: a ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1 (free ports, no dashboard, one thread each), started here and
stopped by PID.  The workers import pentools from this checkout.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pty
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.weblog import generate_lines
from tests.conftest import (
    Processes,
    free_port,
    require_module,
    run_tool,
    tool_argv,
    tool_env,
)
from tests.webstats.hostile import hostile_log

#: Markup in every field a page shows: the JSON must carry it as text, alike.
PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', '\\" x']

#: Seconds a cluster gets to start on a loaded 2-core machine.
START_DEADLINE = 120


@dataclass
class Cluster:
    """A running scheduler and its workers: address, and each worker's address and process."""

    scheduler: str
    workers: dict[str, subprocess.Popen[bytes]]
    logs: Path


def start_scheduler(processes: Processes, logs: Path) -> str:
    """A ``dask scheduler`` on a port of its choosing on 127.0.0.1 (no race for a free
    port), its log in `logs`: its address, once it listens."""
    require_module("distributed")
    with open(logs / "scheduler", "wb") as log:
        scheduler = processes.start(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard"],
            env=tool_env(), stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    return announced(logs / "scheduler", scheduler, "Scheduler at:")


def announced(log: Path, process: subprocess.Popen[bytes], label: str) -> str:
    """The address that a Dask process logs after `label`, waiting for it to be logged."""
    deadline = time.monotonic() + START_DEADLINE
    while True:
        for line in log.read_text(errors="replace").splitlines():
            if label in line:
                return line.split(label, 1)[1].strip()
        assert process.poll() is None, f"{log.name} died at start: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, f"{log.name} never logged {label!r}"
        time.sleep(0.1)


@pytest.fixture
def cluster(processes: Processes, tmp_path: Path) -> Cluster:
    """A ``dask scheduler`` and two ``dask worker`` processes (no nanny: a SIGKILL is a death)."""
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    scheduler = start_scheduler(processes, logs)
    started = []
    for index in range(2):
        argv = [sys.executable, "-m", "dask", "worker", scheduler, "--host", "127.0.0.1",
                "--nthreads", "1", "--no-nanny", "--no-dashboard",
                "--name", f"worker-{index}", "--death-timeout", "60"]  # fmt: skip
        with open(logs / f"worker-{index}", "wb") as log:
            started.append(
                processes.start(argv, env=tool_env(), stdout=subprocess.DEVNULL, stderr=log)
            )
    workers = {}
    for index, worker in enumerate(started):
        worker_log = logs / f"worker-{index}"
        workers[announced(worker_log, worker, "Start worker at:")] = worker
        announced(worker_log, worker, "Registered to:")
    return Cluster(scheduler, workers, logs)


@pytest.fixture(scope="module")
def farm_logs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Logs a farm leaves: several days, IPv4 and IPv6 clients, hostile fields, malformed
    lines, CRLF, a very long line, a last line without newline, and .gz rotations."""
    folder = tmp_path_factory.mktemp("farm")
    lines = list(generate_lines(24_000, 2_000, seed=7, days=3))
    extra = [
        '2001:db8::7 - - [02/Mar/2026:10:00:00 +0100] "GET /v6 HTTP/1.1" 200 10 "-" "curl/8"\r\n',
        '::1 - - [03/Mar/2026:23:59:59 -0500] "GET /late HTTP/1.1" 404 5 "-" "Firefox/1"\n',
        f'192.0.2.5 - - [01/Mar/2026:00:00:01 +0100] "GET /{"x" * 100_000} HTTP/1.1" 200 1 '
        '"-" "long"\n',
        "\n",
        "not a log line at all\n",
    ]
    logs = [folder / "access.log.2.gz", folder / "access.log.1", folder / "access.log"]
    with gzip.open(logs[0], "wt", encoding="latin-1", newline="") as rotated:
        rotated.writelines(lines[:8_000])
        rotated.write(hostile_log(PAYLOADS))
    logs[1].write_text(
        "".join(lines[8_000:16_000] + extra) + hostile_log(PAYLOADS), "latin-1", newline=""
    )
    last = "".join(lines[16_000:] + extra).rstrip("\n") + "\n" + lines[0].rstrip("\n")
    logs[2].write_text(last, "latin-1", newline="")
    return logs


def report_json(logs: list[Path], out: Path, *options: str) -> bytes:
    result = run_tool("webstats", "report", *map(str, logs), "--json", str(out), *options)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""  # no noise from Dask when stderr is no terminal
    return out.read_bytes()


@pytest.mark.realpart
@pytest.mark.parametrize("partition_size", ["100000000", "65536", "7777"])
def test_cluster_report_is_the_single_process_report(
    cluster: Cluster, farm_logs: list[Path], tmp_path: Path, partition_size: str
) -> None:
    alone = report_json(farm_logs, tmp_path / "alone.json")
    options = ("--scheduler", cluster.scheduler, "--partition-size", partition_size)
    assert report_json(farm_logs, tmp_path / "cluster.json", *options) == alone
    assert b'"data": "2001:db8:' in alone and b"<script>alert(1)<" in alone


@pytest.mark.realpart
@pytest.mark.parametrize("workers", [1, 2])
def test_local_cluster_report_is_the_single_process_report(
    farm_logs: list[Path], tmp_path: Path, workers: int
) -> None:
    require_module("distributed")
    alone = report_json(farm_logs, tmp_path / "alone.json")
    options = ("--scheduler", f"local:{workers}", "--partition-size", "50000")
    assert report_json(farm_logs, tmp_path / "local.json", *options) == alone


@pytest.mark.realpart
def test_progress_is_drawn_on_a_terminal_and_only_there(
    farm_logs: list[Path], tmp_path: Path
) -> None:
    require_module("distributed")
    leader, follower = pty.openpty()
    options = ("--scheduler", "local:1", "--partition-size", "100000")
    with open(tmp_path / "page.html", "wb") as page:  # stdout: the page, never the bar
        run = subprocess.Popen(
            tool_argv("webstats", "report", *map(str, farm_logs), *options),
            env=tool_env(), stdin=subprocess.DEVNULL, stdout=page, stderr=follower,
        )  # fmt: skip
    os.close(follower)
    screen = b""
    with contextlib.suppress(OSError):  # EIO once the command has closed the terminal
        while chunk := os.read(leader, 65536):
            screen += chunk
    os.close(leader)
    assert run.wait(timeout=300) == 0, screen
    assert b"| 100% Completed |" in screen
    page_text = (tmp_path / "page.html").read_bytes()
    assert page_text.startswith(b"<!DOCTYPE html>") and b"Completed" not in page_text


@pytest.mark.realpart
def test_a_worker_error_reaches_the_command_as_one_line(tmp_path: Path) -> None:
    require_module("distributed")
    broken = tmp_path / "access.log.1.gz"  # planned on the driver, unreadable on the worker
    broken.write_bytes(gzip.compress(b"a line\n" * 10_000)[:-30])
    result = run_tool("webstats", "report", str(broken), "--scheduler", "local:1")
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"webstats: cannot read {broken}: ")
    assert result.stderr.count(b"\n") == 1, result.stderr


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log long enough that its many partitions keep both workers busy for seconds."""
    log = tmp_path_factory.mktemp("big") / "access.log"
    log.write_text("".join(generate_lines(150_000, 20_000, seed=3)), "latin-1", newline="")
    return log


@pytest.mark.realpart
def test_a_worker_killed_mid_run_does_not_change_the_report(
    cluster: Cluster, big_log: Path, tmp_path: Path
) -> None:
    from distributed import Client

    alone = report_json([big_log], tmp_path / "alone.json")
    out = tmp_path / "cluster.json"
    run = subprocess.Popen(
        tool_argv("webstats", "report", str(big_log), "--json", str(out),
                  "--scheduler", cluster.scheduler, "--partition-size", "200000"),
        env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    victim_address, victim = next(iter(cluster.workers.items()))
    with Client(cluster.scheduler, timeout=30) as observer:
        deadline = time.monotonic() + START_DEADLINE
        while True:  # until the victim works on a partition of this run
            processing = observer.processing().get(victim_address, ())
            if any(str(key).startswith("count_partition") for key in processing):
                break
            assert run.poll() is None, "the run ended before the worker could be killed"
            assert time.monotonic() < deadline, "the victim never got a task"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        deadline = time.monotonic() + START_DEADLINE
        while victim_address in observer.scheduler_info()["workers"]:
            assert time.monotonic() < deadline, "the scheduler never noticed the death"
            time.sleep(0.05)
        assert run.poll() is None, "the kill did not land in the middle of the run"
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr.decode()
    assert victim.returncode == -signal.SIGKILL
    assert out.read_bytes() == alone


@pytest.mark.realpart
def test_an_unreachable_scheduler_is_one_line_within_the_time_out(tmp_path: Path) -> None:
    require_module("distributed")
    log = tmp_path / "a.log"
    log.write_text('192.0.2.1 - - [01/Mar/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "u"\n')
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        refused = f"tcp://127.0.0.1:{free_port()}"
        for address in (refused, f"tcp://127.0.0.1:{silent.getsockname()[1]}"):
            started = time.monotonic()
            result = run_tool(
                "webstats", "report", str(log), "--json", str(tmp_path / "r.json"),
                "--scheduler", address, "--scheduler-timeout", "3",
            )  # fmt: skip
            took = time.monotonic() - started
            assert result.returncode == 1
            assert result.stderr.decode().count("\n") == 1, result.stderr
            assert result.stderr.startswith(f"webstats: Dask scheduler {address}: ".encode())
            assert took < 3 + 30  # the time-out plus starting Python on a loaded machine
    assert not (tmp_path / "r.json").exists()


@pytest.mark.realpart
def test_a_cluster_without_workers_is_one_line_within_the_time_out(
    processes: Processes, tmp_path: Path
) -> None:
    scheduler = start_scheduler(processes, tmp_path)
    log = tmp_path / "a.log"
    log.write_text('192.0.2.1 - - [01/Mar/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "u"\n')
    result = run_tool(
        "webstats", "report", str(log), "--json", str(tmp_path / "r.json"),
        "--scheduler", scheduler, "--scheduler-timeout", "2",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"webstats: Dask scheduler {scheduler}: no worker joined within 2 s\n"
    )


def test_without_dask_the_message_names_the_extra(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for module in ("dask", "distributed"):  # as if the extra were not installed
        (hidden / f"{module}.py").write_text(f"raise ImportError('No module named {module}')\n")
    log = tmp_path / "a.log"
    log.write_text("")
    env = tool_env()
    env["PYTHONPATH"] = os.pathsep.join([str(hidden), env["PYTHONPATH"]])
    result = run_tool("webstats", "report", str(log), "--scheduler", "local:1", env=env)
    assert result.returncode == 1
    assert result.stderr == (
        b"webstats: --scheduler needs the 'dask' extra: pip install 'pentools[dask]'\n"
    )


def test_bad_cluster_options_are_usage_errors(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("")
    for options in (
        ["--scheduler", "local:0"],
        ["--scheduler", "local:two"],
        ["--scheduler", "local", "--partition-size", "0"],
        ["--scheduler", "local", "--state", str(tmp_path / "s")],
    ):
        result = run_tool("webstats", "report", str(log), *options)
        assert result.returncode == 2, options
        assert result.stderr.count(b"\n") == 1, result.stderr
