"""Start ``webstats live`` for a test and read what it serves."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from typing import Any

from tests.conftest import Processes, free_port, tool_argv, tool_env


def start_live(
    processes: Processes, *args: str, host: str = "127.0.0.1"
) -> tuple[subprocess.Popen[bytes], str]:
    """``webstats live ARGS --listen HOST:PORT``; waits until it answers: (process, base URL)."""
    port = free_port(host)
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    process = processes.start(
        tool_argv("webstats", "live", *args, "--listen", where),
        stderr=subprocess.PIPE,
        env=tool_env(),
    )
    base = f"http://{where}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/stats.json", timeout=5).close()
            return process, base
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read() if process.stderr else b""
                raise AssertionError(f"webstats live did not start: {stderr!r}") from None
            time.sleep(0.05)


def stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/stats.json", timeout=10) as reply:
        return json.load(reply)  # type: ignore[no-any-return]


def wait_for_total(base: str, total: int, timeout: float = 30.0) -> dict[str, Any]:
    """The statistics once ``total_requests`` reaches `total` (they must not pass it)."""
    deadline = time.monotonic() + timeout
    while True:
        document = stats(base)
        seen = document["general"]["total_requests"]
        assert seen <= total, f"counted {seen} lines of {total}"
        if seen == total:
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"webstats live counted {seen} of {total} lines")
        time.sleep(0.05)
