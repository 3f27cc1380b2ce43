"""Attribution accuracy of a merged log against the farm generator's truth.

A merged log is reordered and its first fields replaced, so a line is
recognised by the rest of it, without the client and the time stamp (the C
mergelogs rewrites time stamps).  Lines identical in everything but the
client are interchangeable, so the score counts, for each such line text,
how many of its clients are right: a multiset intersection.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from benchmarks.farm import load_truth

_CLIENT_AND_TIME = re.compile(r"^\S+ (.*?)\[[^\]]*\](.*)$", re.S)


def line_identity(line: str) -> str:
    """The line without its first field and its time stamp."""
    match = _CLIENT_AND_TIME.match(line.rstrip("\n"))
    return match.group(1) + match.group(2) if match else line.rstrip("\n")


def read_truth(farm_dir: Path) -> Counter[tuple[str, str]]:
    """(line identity, true client) of every backend line of a generated farm."""
    truth_rows: dict[str, dict[int, str]] = {}
    for (server, line_number), client in load_truth(farm_dir).items():
        truth_rows.setdefault(server, {})[line_number] = client
    expected: Counter[tuple[str, str]] = Counter()
    for server, clients in truth_rows.items():
        log = farm_dir / f"access_log.{server}"
        with log.open(encoding="latin-1", newline="\n") as handle:
            for number, line in enumerate(handle, start=1):
                if number in clients:
                    expected[(line_identity(line), clients[number])] += 1
    return expected


def score(merged: Path, truth: Counter[tuple[str, str]]) -> tuple[int, int]:
    """(lines attributed to their true client, lines in the truth)."""
    found: Counter[tuple[str, str]] = Counter()
    with merged.open(encoding="latin-1", newline="\n") as handle:
        for line in handle:
            client = line.split(" ", 1)[0]
            found[(line_identity(line), client)] += 1
    correct = sum(min(count, truth[key]) for key, count in found.items())
    return correct, sum(truth.values())


def main() -> None:
    """``python -m benchmarks.scoring MERGED FARM_DIR``: print the accuracy."""
    import sys

    merged, farm_dir = Path(sys.argv[1]), Path(sys.argv[2])
    correct, total = score(merged, read_truth(farm_dir))
    print(f"true client on {correct} of {total} lines ({100 * correct / max(total, 1):.2f}%)")


if __name__ == "__main__":
    main()
