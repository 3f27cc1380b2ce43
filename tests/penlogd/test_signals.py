"""penlogd's signals on a live stream: HUP rotates, TERM drains, USR1 reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import Processes, free_port, tool_argv, tool_env
from tests.daemons import USER, owner, process_user, require_root, user_dir
from tests.penlogd.live import Penlogd, common_line, sender, wait_until

WEB = "127.0.0.11"


def stream_lines(port: int, count: int, rate: float, stop: threading.Event | None = None) -> None:
    """Send `count` numbered lines at about `rate` per second from the web server."""
    with sender(WEB) as sock:
        start = time.monotonic()
        for number in range(count):
            if stop is not None and stop.is_set():
                return
            sock.sendto(common_line(f"/n{number}"), ("127.0.0.1", port))
            if number % 100 == 99:
                ahead = start + (number + 1) / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)


def numbers(lines: list[bytes]) -> list[int]:
    return [int(re.search(rb"GET /n(\d+) ", line)[1]) for line in lines]  # type: ignore[index]


def test_hup_while_streaming_loses_and_duplicates_nothing(
    processes: Processes, tmp_path: Path
) -> None:
    daemon = Penlogd(processes, tmp_path, "--wait", "0")
    count = 30_000
    sending = threading.Thread(target=stream_lines, args=(daemon.port, count, 10_000.0))
    sending.start()
    rotated: list[Path] = []
    try:
        for index in range(4):
            wait_until(lambda: daemon.logfile.exists() and daemon.logfile.stat().st_size > 0)
            target = tmp_path / f"access_log.{index}"
            daemon.logfile.rename(target)  # mv access_log access_log.N
            rotated.append(target)
            daemon.process.send_signal(signal.SIGHUP)
            time.sleep(0.3)
    finally:
        sending.join()
    lines, _ = daemon.stop()
    every = [line for path in rotated for line in path.read_bytes().splitlines(True)] + lines
    got = numbers(every)
    assert len(got) == count
    assert sorted(got) == list(range(count))
    assert all(path.stat().st_size > 0 for path in rotated)  # each file got its share


def test_term_writes_everything_received_and_removes_the_pid_file(
    processes: Processes, tmp_path: Path
) -> None:
    # --wait 600: the lines are still waiting for records when TERM comes
    daemon = Penlogd(processes, tmp_path, "--wait", "600")
    count = 20_000
    stream_lines(daemon.port, count, rate=1e9)  # as fast as we can: a backlog builds up
    daemon.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    lines, _ = daemon.stop()
    # waiting lines do not delay the exit (they would by 600 s; a busy machine, by little)
    assert time.monotonic() - started < 60
    assert sorted(numbers(lines)) == list(range(count))
    assert not daemon.pidfile.exists()


def test_usr1_reports_the_counters(processes: Processes, tmp_path: Path) -> None:
    """The join's report in mergelogs' --stats layout, then penlogd's own; JSON too."""
    stats_json = tmp_path / "stats.json"
    daemon = Penlogd(processes, tmp_path, "--wait", "0.2", "--stats-json", str(stats_json))
    with sender("127.0.0.1") as pen:
        pen.sendto(f"+ 10.0.0.1 {WEB} GET /n0 HTTP/1.1\n".encode(), ("127.0.0.1", daemon.port))
        pen.sendto(b"+ bad record", ("127.0.0.1", daemon.port))
    stream_lines(daemon.port, 3, rate=1e9)
    wait_until(lambda: len(daemon.lines()) == 3, what="lines")
    assert daemon.process.stderr is not None
    os.kill(daemon.process.pid, signal.SIGUSR1)
    report = daemon.process.stderr.readline().decode()
    assert report == (
        "penlogd: lines 3 (attributed 33.33%), exact 0, matched 1, ambiguous 0, unmatched 2, "
        "malformed 0, records 1, records_unused 0, records_expired 0; "
        "received 5, refused 0, waited 2, dropped 1, waiting 0\n"
    )
    wait_until(stats_json.exists, what="--stats-json")
    counters = json.loads(stats_json.read_text())
    assert (counters["lines"], counters["matched"], counters["unmatched"]) == (3, 1, 2)
    assert (counters["received"], counters["dropped"]) == (5, 1)
    daemon.stop()


def test_chroot_and_user_rotate_then_a_failed_rotation_keeps_logging(
    processes: Processes, tmp_path: Path
) -> None:
    # Like the C penlogd, -l and -p are opened as -u's user inside -j's jail.
    require_root()
    jail = tmp_path / "jail"
    jail.mkdir()
    logs = user_dir(jail, "logs")
    port = free_port("::", socket.SOCK_DGRAM)
    argv = ["-f", "--wait", "0", "-j", str(jail), "-u", USER]
    argv += ["-l", "/logs/access_log", "-p", "/logs/penlogd.pid", str(port)]
    process = processes.start(tool_argv("penlogd", *argv), stderr=subprocess.PIPE, env=tool_env())
    wait_until(lambda: (logs / "penlogd.pid").exists(), what="the PID file")
    log = logs / "access_log"
    stream_lines(port, 10, rate=1e9)
    wait_until(lambda: len(log.read_bytes().splitlines()) == 10, what="lines before HUP")
    log.rename(logs / "access_log.1")
    process.send_signal(signal.SIGHUP)  # the rotation works: nobody may write in logs/
    assert process.stderr is not None
    assert process.stderr.readline() == b"penlogd: reopened /logs/access_log\n"
    assert owner(log) == USER
    # Now the directory is root's: the reopen fails, the old file stays in
    # use and nothing is lost.
    os.chown(logs, 0, 0)
    log.rename(logs / "access_log.2")
    process.send_signal(signal.SIGHUP)
    assert b"still writing" in process.stderr.readline()
    with sender(WEB) as sock:
        sock.sendto(common_line("/n10"), ("127.0.0.1", port))
    wait_until(lambda: (logs / "access_log.2").read_bytes().count(b"\n") == 1, what="after HUP")
    assert process_user(process.pid) == USER
    assert os.readlink(f"/proc/{process.pid}/root") == str(jail)
    shutil.chown(logs, USER)
    process.terminate()
    assert process.wait(timeout=20) == 0
    assert not (logs / "penlogd.pid").exists()
    lines = [logs / name for name in ("access_log.1", "access_log.2")]
    assert sorted(numbers([line for f in lines for line in f.read_bytes().splitlines()])) == list(
        range(11)
    )
