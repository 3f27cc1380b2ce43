"""webstats report on a Dask cluster: the one `State`, built by many workers.

Each task reads one partition of the logs (`pentools.webstats.partitions`),
parses and counts it into a `State` exactly as the single-process run counts
a file, and the states are merged pairwise in a tree, each with its
neighbour, so that the tables keep the order of the lines.  The caller draws
the one state left with the one renderer.  Dask reruns the tasks of a worker
that dies: a lost worker costs time, not lines.

Dask is an optional extra and is imported only here, only when asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pentools.core.errors import ClusterError, ConfigError, MissingExtraError, PentoolsError
from pentools.webstats.parse import CHUNK_CHARS, ChunkParser, split_lines
from pentools.webstats.partitions import Partition, plan_partitions, read_partition
from pentools.webstats.state import State, merge

#: ``--scheduler local`` or ``local:N``: a LocalCluster of N worker processes here.
LOCAL = "local"

logger = logging.getLogger("pentools.webstats")


@dataclass(frozen=True)
class ClusterConfig:
    """Where to run: a scheduler address or ``local[:N]``, and how finely to cut the logs."""

    scheduler: str
    partition_size: int = 64 * 1024 * 1024
    timeout: float = 10.0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.partition_size < 1:
            raise ConfigError(str(self.partition_size), "a partition needs at least one byte")
        if self.timeout <= 0:
            raise ConfigError(str(self.timeout), "the time-out must be positive")
        self.local_workers()  # validates local:N

    def local_workers(self) -> int | None:
        """N of ``local:N`` (the cores of this machine for ``local``); None for an address."""
        name, colon, count = self.scheduler.partition(":")
        if name != LOCAL:
            return None
        if not colon:
            return os.cpu_count() or 1
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(self.scheduler, "local:N needs a number of workers of at least 1")
        return int(count)


def count_on_cluster(paths: Sequence[str], reading: State, config: ClusterConfig) -> State:
    """The state of `paths`, counted on the cluster of `config`.

    `reading` is an empty state that says how lines are read (format,
    ``--from``/``--to``); the files must be readable by every worker at the
    same path, or be fsspec URLs.
    """
    partitions = plan_partitions(paths, config.partition_size)
    how = (reading.log_format, reading.since, reading.until)
    with _client(config) as client:
        level = [
            client.submit(count_partition, partition, *how, pure=False) for partition in partitions
        ]
        logger.info("%d partitions on %s", len(level), config.scheduler)
        while len(level) > 1:  # neighbours merged with neighbours: the order of the lines
            paired = [
                client.submit(merge, level[index], level[index + 1], pure=False)
                for index in range(0, len(level) - 1, 2)
            ]
            level = paired + level[len(level) - len(level) % 2 :]
        (total,) = level
        if config.progress:
            _show_progress(total)
        try:
            state: State = total.result()
        except PentoolsError:
            raise
        except Exception as exc:  # a worker's error, or KilledWorker after repeated deaths
            reason = f"{type(exc).__name__}: {_first_line(exc)}"
            raise ClusterError(config.scheduler, reason) from None
    return state


def count_partition(
    partition: Partition, log_format: str | None, since: float | None, until: float | None
) -> State:
    """The state of one partition: what the single-process run counts for these lines."""
    state = State.empty(log_format, since, until)
    parser = ChunkParser(log_format)
    for start, block in read_partition(partition, CHUNK_CHARS):
        state.add(parser.parse(split_lines(block), start), partition.path)
    return state


@contextlib.contextmanager
def _client(config: ClusterConfig) -> Iterator[Any]:
    """A Dask client of the scheduler (or of a new LocalCluster) with at least one worker."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingExtraError("--scheduler", "dask") from None
    workers = config.local_workers()
    with contextlib.ExitStack() as stack:
        if workers is not None:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,  # a failed task is reported once, by us
            )
            stack.enter_context(cluster)
            client = stack.enter_context(Client(cluster))
        else:
            _shake_hands(config.scheduler, config.timeout)
            client = stack.enter_context(Client(config.scheduler, timeout=config.timeout))
        try:
            client.wait_for_workers(1, timeout=config.timeout)
        except TimeoutError:
            raise ClusterError(
                config.scheduler, f"no worker joined within {config.timeout:g} s"
            ) from None
        yield client


def _shake_hands(address: str, timeout: float) -> None:
    """Connect to the scheduler and shake hands within `timeout`, or raise ClusterError.

    distributed's connect waits for the peer's handshake without a time-out:
    a port that accepts and never answers would hang the Client for ever.
    """
    from distributed.comm import connect

    async def shake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
        await comm.close()

    try:
        asyncio.run(shake())
    except TimeoutError:
        raise ClusterError(address, f"no answer within {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        raise ClusterError(address, _first_line(exc)) from None


def _show_progress(total: Any) -> None:
    """Dask's progress bar of every task of the run, on stderr: stdout may carry the page."""
    from distributed import progress

    with contextlib.redirect_stdout(sys.stderr):
        progress(total, notebook=False, multi=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
