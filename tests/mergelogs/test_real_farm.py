"""The join on a real farm: our pen in front of two real nginx, unpaced clients.

Every client sends the same User-Agent and asks for a handful of pages in
bursts: within a second, only the order of pen's records and of nginx's lines
tells the requests apart.  The balancer's clock is then taken to be a fraction
of a second off the backends' (``-t``), as on a LAN where clocks are not
synchronised: with a whole-second time stamp on both sides, each second's
records now straddle two seconds of lines.  mergelogs must still give nearly
every line its true client, whatever the offset, and never fewer than the plain
first-in-first-out join.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.real_farm import join_accuracy, run_farm, score
from tests.conftest import REPO_ROOT, require_program, tool_env


@pytest.mark.realpart
def test_bursts_through_real_pen_and_nginx_keep_their_true_clients(tmp_path: Path) -> None:
    require_program("nginx")
    pen_log, logs, _ = run_farm(tmp_path, requests=3000, workers=16, one_agent=True)
    accuracy = join_accuracy(pen_log, logs)
    assert accuracy["mergelogs"] >= max(99.0, accuracy["FIFO"]), accuracy
    sources = [f"{server}:{log}" for server, log in logs.items()]
    for offset in ("0.6", "-0.4", "1.7"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pentools.mergelogs",
                "-t",
                offset,
                "-p",
                str(pen_log),
                *sources,
            ],
            cwd=REPO_ROOT,
            env=tool_env(),
            capture_output=True,
            check=True,
        )
        right, total = score(result.stdout.decode("latin-1"))
        assert total == 3000 and right >= 0.99 * total, (offset, right)
