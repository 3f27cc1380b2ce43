"""The plain first-in-first-out consuming join: the floor mergelogs must beat.

For each backend line in file order, take the oldest unconsumed record of the
same server and request within the jitter window.  It uses the same parsing
as mergelogs (pentools.core), so only the matching rule differs.

``python -m benchmarks.fifo_join -j JITTER PENLOG SERVER:LOG... > merged``
"""

from __future__ import annotations

import sys
from collections import defaultdict, deque

from pentools.core.accesslog import LogFormat, read_lines, text_writer
from pentools.core.addresses import resolve_host, split_host_prefix
from pentools.core.errors import RecordError
from pentools.core.records import parse_local


def fifo_join(
    pen_log: str, sources: list[tuple[str, str]], jitter: float, log_format: str | None
) -> None:
    queues: dict[tuple[str, str], deque[tuple[float, str]]] = defaultdict(deque)
    for text in read_lines(pen_log):
        try:
            record = parse_local(text)
        except RecordError:
            continue
        queues[(record.server, record.request)].append((record.time, record.client))
    parser = LogFormat(log_format)
    out = text_writer(sys.stdout.buffer)
    for server, path in sources:
        for text in read_lines(path):
            line = parser.parse(text)
            if line is None or line.time is None:
                out.write(text)
                continue
            queue = queues.get((server, line.request_key()))
            while queue and queue[0][0] < line.time - jitter:
                queue.popleft()  # too old for this line and every later one
            if queue and queue[0][0] <= line.time + jitter:
                text = line.with_client(queue.popleft()[1])
            out.write(text)
    out.flush()


def main() -> None:
    args = sys.argv[1:]
    jitter, log_format = 600.0, None
    if args[:1] == ["-j"]:
        jitter, args = float(args[1]), args[2:]
    if args[:1] == ["--log-format"]:
        log_format, args = args[1], args[2:]
    pen_log, specs = args[0], args[1:]
    sources = []
    for spec in specs:  # SERVER:LOG as mergelogs reads it ([IPv6]:LOG, names too)
        host, path = split_host_prefix(spec)
        sources.append((resolve_host(host)[0], path))
    fifo_join(pen_log, sources, jitter, log_format)


if __name__ == "__main__":
    main()
