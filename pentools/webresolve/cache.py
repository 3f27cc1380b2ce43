"""The persistent cache file: answers kept between runs until their TTL runs out.

JSON lines, one answer per line after a header line that marks the file as
ours (so that ``--cache access_log`` by mistake is refused, not overwritten).
Negative answers (no PTR record, a refused name) are kept too. Time-outs and
server failures are not: the next run asks again. The file is rewritten
atomically (a temporary file in the same directory, then rename), so an
interrupted run leaves the old cache intact.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from pentools.core.addresses import normalize_ip
from pentools.core.errors import OutputFileError, PentoolsError
from pentools.core.output import atomic_output
from pentools.webresolve.hostnames import is_valid_host_name
from pentools.webresolve.resolver import Answer, Status

HEADER = {"format": "pentools-webresolve-cache", "version": 1}

#: Statuses worth keeping: what the DNS said, not that it failed to say it.
PERSISTENT = frozenset(
    {Status.RESOLVED, Status.CONFIRMED, Status.MISMATCH, Status.NOT_FOUND, Status.INVALID}
)


class CacheFileError(PentoolsError, OSError):
    """A cache file that cannot be read, is not ours, or cannot be written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cache file {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(slots=True)
class CacheEntry:
    answer: Answer
    expires: float


class CacheFile:
    """Answers by normalized address, loaded from and saved to one file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: dict[str, CacheEntry] = {}
        self.skipped = 0  # malformed or unsafe lines found while loading

    def load(self, now: float) -> None:
        """Read the unexpired entries; a missing or empty file is an empty cache."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as stream:
                first = stream.readline()
                if not first:
                    return
                if _json_or_none(first) != HEADER:
                    raise CacheFileError(
                        self.path, "not a webresolve cache file; refusing to use it"
                    )
                for line in stream:
                    entry = _parse_entry(line)
                    if entry is None:
                        self.skipped += 1
                    elif entry[1].expires > now:
                        self.entries[entry[0]] = entry[1]
        except FileNotFoundError:
            return
        except OSError as exc:
            raise CacheFileError(self.path, exc.strerror or str(exc)) from None

    def get(self, address: str, now: float, *, confirm: bool) -> Answer | None:
        """The cached answer if still valid and good enough for this run's mode."""
        entry = self.entries.get(address)
        if entry is None or entry.expires <= now:
            return None
        if confirm and entry.answer.status is Status.RESOLVED:
            return None  # the name was never checked forward
        return entry.answer

    def put(self, address: str, answer: Answer, now: float) -> None:
        if answer.status in PERSISTENT and answer.ttl > 0:
            self.entries[address] = CacheEntry(answer, now + answer.ttl)

    def save(self, now: float) -> None:
        """Write every unexpired entry atomically."""
        try:
            with atomic_output(self.path, default_mode=0o600) as binary:
                stream = io.TextIOWrapper(binary, encoding="utf-8")
                stream.write(json.dumps(HEADER) + "\n")
                for address, entry in self.entries.items():
                    if entry.expires > now:
                        record = {
                            "address": address,
                            "status": entry.answer.status.value,
                            "name": entry.answer.name,
                            "expires": round(entry.expires, 3),
                        }
                        stream.write(json.dumps(record) + "\n")
                stream.flush()
                stream.detach()
        except OutputFileError as exc:
            raise CacheFileError(self.path, exc.reason) from None


def _json_or_none(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _parse_entry(line: str) -> tuple[str, CacheEntry] | None:
    """One entry, re-checked as strictly as a fresh answer (the file may be edited)."""
    record = _json_or_none(line)
    if not isinstance(record, dict):
        return None
    address, name, expires = record.get("address"), record.get("name"), record.get("expires")
    try:
        status = Status(str(record.get("status")))
    except ValueError:
        return None
    if status not in PERSISTENT or not isinstance(address, str) or normalize_ip(address) != address:
        return None
    if not isinstance(expires, int | float):
        return None
    has_name = status in (Status.RESOLVED, Status.CONFIRMED, Status.MISMATCH)
    if has_name != (isinstance(name, str) and is_valid_host_name(name)):
        return None
    return address, CacheEntry(Answer(status, name if has_name else None, 0), float(expires))
