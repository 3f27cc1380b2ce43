"""Access-log lines: LogFormat-driven parsing and byte-exact client replacement.

Lines are handled as text decoded from Latin-1, which maps every byte to one
character and back: whatever a log holds (invalid UTF-8, control bytes,
overlong lines) comes out byte for byte as it went in, and spans found in the
text are byte offsets in the file.

Two ways to read a line, one table each:

* the common and combined formats (and any format that starts like them) are
  recognised without being named, with one fast, lenient regex;
* any other Apache LogFormat string is compiled by apachelogs, whose
  directive table knows every ``%`` directive; we keep its regex and
  converters and read only the fields the tools need.
"""

from __future__ import annotations

import calendar
import gzip
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from apachelogs import COMBINED, COMMON
from apachelogs.directives import format2regex
from apachelogs.errors import Error as ApachelogsError
from apachelogs.timeutil import assemble_datetime

from pentools.core.errors import InputFileError, LogFormatError
from pentools.core.records import request_key

#: Names users may give instead of a LogFormat string.
NAMED_FORMATS = {
    "common": COMMON,
    "combined": COMBINED,
    "vhost_common": '%v %h %l %u %t "%r" %>s %b',
    "common_port": '%h %l %u %t "%r" %>s %b %{remote}p',
    "combined_port": COMBINED + " %{remote}p",
}

#: Common, combined and their extensions: the host, identd and user fields
#: (the user may hold spaces), the time in brackets, the quoted request with
#: Apache's backslash escapes; whatever follows is not needed for the join.
#: The request is matched as runs of plain characters between escapes (the
#: "unrolled loop"), three times faster than one alternation per character.
_CLF_PREFIX = re.compile(
    r"(?P<client>[^ ]+) [^ ]+ .*?"
    r"\[(?P<time>\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    r'"(?P<request>[^"\\]*(?:\\.[^"\\]*)*)"(?: |$)'
)

#: Locale-independent month names of ``%t`` (never ``strptime('%b')``).
_MONTHS = {
    name: number
    for number, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
        start=1,
    )
}

#: Directives whose field is the client address that the join replaces.
_CLIENT_DIRECTIVES = ("%h", "%a", "%{c}a")

_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "b": "\b", "f": "\f"}


@dataclass(slots=True)
class AccessLine:
    """The fields of one access-log line that the tools need.

    `start` and `end` delimit the client field in `text`; `time` is Unix time
    (from the logged time and its zone), or None when the format has none.
    """

    text: str
    start: int
    end: int
    time: float | None
    request: str
    remote_port: int | None

    @property
    def client(self) -> str:
        return self.text[self.start : self.end]

    def with_client(self, client: str) -> str:
        """The line with only its client field replaced, every other byte kept."""
        return self.text[: self.start] + client + self.text[self.end :]

    def request_key(self) -> str:
        """The request as pen records it (unescaped, first line, 100 bytes, ASCII)."""
        return request_key(unescape(self.request).encode("latin-1"))


def unescape(text: str) -> str:
    """Undo Apache's log escapes (``\\"``, ``\\\\``, ``\\xhh``, ``\\n``...)."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(_unescape_one, text)


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 3:
        return chr(int(code[1:], 16))
    return _SIMPLE_ESCAPES.get(code, code)


_time_cache: dict[str, float] = {}


def parse_clf_time(text: str) -> float:
    """Unix time of ``21/Nov/2026:14:55:00 +0100`` (brackets allowed); ValueError if bad."""
    cached = _time_cache.get(text)
    if cached is not None:
        return cached
    stamp = text.strip("[]")
    try:
        month = _MONTHS[stamp[3:6]]
        sign = -1 if stamp[21] == "-" else 1
        if stamp[2] != "/" or stamp[6] != "/" or stamp[11] != ":" or stamp[21] not in "+-":
            raise ValueError
        seconds = calendar.timegm(
            (
                int(stamp[7:11]),
                month,
                int(stamp[0:2]),
                int(stamp[12:14]),
                int(stamp[15:17]),
                int(stamp[18:20]),
                0,
                0,
                0,
            )
        )
        offset = sign * (int(stamp[22:24]) * 3600 + int(stamp[24:26]) * 60)
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"bad time stamp {text!r}") from None
    if len(_time_cache) > 100_000:
        _time_cache.clear()
    _time_cache[text] = value = float(seconds - offset)
    return value


class LogFormat:
    """Reads the fields the tools need from lines of one LogFormat.

    ``LogFormat(None)`` recognises common and combined (and formats that start
    like them); any other string is compiled with apachelogs.
    """

    def __init__(self, log_format: str | None = None) -> None:
        self.text = NAMED_FORMATS.get(log_format or "", log_format)
        self._time_groups: list[tuple[int, Any, Any]] = []
        self._plain_time_group: int | None = None
        self._request_group: int | None = None
        self._port_group: int | None = None
        if self.text is None:
            self._regex = _CLF_PREFIX
            self._client_group = self._regex.groupindex["client"]
            self._plain_time_group = self._regex.groupindex["time"]
            self._request_group = self._regex.groupindex["request"]
            self._full_match = False
            return
        try:
            group_defs, pattern = format2regex(self.text)
        except ApachelogsError as exc:
            raise LogFormatError(self.text, str(exc)) from None
        self._regex = re.compile(pattern)
        self._full_match = True
        client_group = None
        for index, (name, directive, converter) in enumerate(group_defs, start=1):
            if directive in _CLIENT_DIRECTIVES and client_group is None:
                client_group = index
            elif directive == "%r" and self._request_group is None:
                self._request_group = index
            elif directive == "%{remote}p":
                self._port_group = index
            elif isinstance(name, tuple) and name[0] == "request_time_fields":
                self._time_groups.append((index, name[1], converter))
        if client_group is None:
            raise LogFormatError(self.text, "it has no client address field (%h or %a)")
        self._client_group = client_group
        if [key for _, key, _ in self._time_groups] == ["timestamp"] and self.text.count("%t") == 1:
            self._plain_time_group = self._time_groups[0][0]

    @property
    def has_time(self) -> bool:
        return self._plain_time_group is not None or bool(self._time_groups)

    @property
    def has_request(self) -> bool:
        return self._request_group is not None

    def parse(self, text: str) -> AccessLine | None:
        """The fields of one line (newline allowed), or None if it does not fit the format."""
        body = text.rstrip("\r\n")
        match = self._regex.fullmatch(body) if self._full_match else self._regex.match(body)
        if match is None:
            return None
        try:
            time = self._time(match)
        except (ValueError, TypeError, OverflowError, ApachelogsError):
            return None
        request = match.group(self._request_group) if self._request_group else ""
        port = None
        if self._port_group is not None:
            port_text = match.group(self._port_group)
            port = int(port_text) if port_text and port_text.isdigit() else None
        start, end = match.span(self._client_group)
        return AccessLine(text, start, end, time, request or "", port)

    def _time(self, match: re.Match[str]) -> float | None:
        if self._plain_time_group is not None:
            return parse_clf_time(match.group(self._plain_time_group))
        if not self._time_groups:
            return None
        fields: dict[str, Any] = {}
        for index, key, converter in self._time_groups:
            value = converter(match.group(index))
            if value is not None:
                fields[key] = value
        moment = assemble_datetime(fields)
        if moment is None:
            return None
        if moment.tzinfo is None:  # a format without a zone: read as UTC
            return float(calendar.timegm(moment.timetuple())) + moment.microsecond / 1e6
        return moment.timestamp()


def open_binary(path: str) -> IO[bytes]:
    """Open a log for reading as bytes: ``-`` is stdin, ``.gz`` is decompressed."""
    if path == "-":
        return sys.stdin.buffer
    try:
        raw = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from None
    if raw.peek(2)[:2] == b"\x1f\x8b" or path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def open_text(path: str) -> IO[str]:
    """A log as Latin-1 text, split only at ``\\n`` and never translated."""
    return io.TextIOWrapper(open_binary(path), encoding="latin-1", newline="\n")


def read_lines(path: str) -> Iterator[str]:
    """Every line of a log, newline kept; errors while reading become InputFileError."""
    stream = open_text(path)
    try:
        yield from stream
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputFileError(path, str(exc)) from None
    finally:
        if path != "-":
            stream.close()


def text_writer(binary: IO[bytes]) -> IO[str]:
    """A text stream over `binary` that writes each character back as its byte."""
    return io.TextIOWrapper(binary, encoding="latin-1", newline="", write_through=False)
