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
from typing import IO, TYPE_CHECKING, Any

from apachelogs import COMBINED, COMMON
from apachelogs.directives import format2regex
from apachelogs.errors import Error as ApachelogsError
from apachelogs.timeutil import assemble_datetime

from pentools.core.errors import InputFileError, LogFormatError
from pentools.core.records import REQUEST_MAX, request_key

if TYPE_CHECKING:
    import pandas as pd

#: Names users may give instead of a LogFormat string.
NAMED_FORMATS = {
    "common": COMMON,
    "combined": COMBINED,
    "vhost_common": '%v %h %l %u %t "%r" %>s %b',
    "common_port": COMMON + " %{remote}p",
    "combined_port": COMBINED + " %{remote}p",
    # what mergelogs and penlogd write with --tag-backend: the backend as %A
    "common_backend": COMMON + " %A",
    "combined_backend": COMBINED + " %A",
}

#: A quoted field's content with Apache's backslash escapes (``\"``, ``\\``),
#: written as an unrolled loop: several times faster than an alternation.
_QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'

#: Common, combined and their extensions: the host, identd and user fields
#: (the user may hold spaces), the time in brackets, the quoted request with
#: Apache's backslash escapes.
_CLF_HEAD = (
    r"(?P<client>[^ ]+) [^ ]+ .*?"
    r"\[(?P<time>\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    rf'"(?P<request>{_QUOTED})"'
)
#: For the join: the head, then status and size and (combined) the referrer
#: and the user agent, a client's fingerprint; whatever follows is not needed.
_CLF_PREFIX = re.compile(_CLF_HEAD + rf'(?:$| (?:[^ ]+ [^ ]+ "{_QUOTED}" "(?P<agent>{_QUOTED})")?)')

#: Common or combined, then the balancer's upstream port (``%{remote}p``): the
#: extended join's formats, read as fast as the plain ones (apachelogs'
#: general regex takes over ten times as long).  The whole line must fit, with
#: status and size shaped as apachelogs wants them.
_STATUS_SIZE = r" (?:[0-9]{3}|-) (?:-?[0-9]+|-)"
_PORT_FORMATS = {
    COMMON + " %{remote}p": re.compile(_CLF_HEAD + _STATUS_SIZE + r" (?P<port>[0-9]+)"),
    COMBINED + " %{remote}p": re.compile(
        _CLF_HEAD + _STATUS_SIZE + rf' "{_QUOTED}" "(?P<agent>{_QUOTED})" (?P<port>[0-9]+)'
    ),
}

#: The same head followed by status, size and, for combined, the quoted
#: referrer and user agent; anything after them (extensions) is allowed.
_CLF_FIELDS = (
    "^"
    + _CLF_HEAD
    + rf' (?P<status>[^ ]*) (?P<size>[^ ]*)(?: "(?P<referer>{_QUOTED})" "(?P<agent>{_QUOTED})")?.*$'
)

#: The field names of `field_regex`, by the directives that log them.
_FIELD_DIRECTIVES = {
    "%h": "client",
    "%a": "client",
    "%{c}a": "client",
    "%t": "time",
    "%r": "request",
    "%>s": "status",
    "%s": "status",
    "%b": "size",
    "%B": "size",
    "%O": "size",
    "%{referer}i": "referer",
    "%{user-agent}i": "agent",
    "%A": "backend",
}


def _directive_key(directive: str) -> str:
    """A directive as the tables above spell it: header names (``%{...}i``) are
    case-insensitive, as in HTTP and Apache; every other directive is not."""
    if directive.startswith("%{") and directive.endswith("}i"):
        return directive.lower()
    return directive


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
    (from the logged time and its zone), or None when the format has none;
    `agent` is the User-Agent when the format logs it.
    """

    text: str
    start: int
    end: int
    time: float | None
    request: str
    remote_port: int | None
    agent: str | None = None

    @property
    def client(self) -> str:
        return self.text[self.start : self.end]

    def with_client(self, client: str) -> str:
        """The line with only its client field replaced, every other byte kept."""
        return self.text[: self.start] + client + self.text[self.end :]

    def request_key(self) -> str:
        """The request as pen records it (unescaped, first line, 100 bytes, ASCII)."""
        request = self.request
        short, plain = len(request) <= REQUEST_MAX, "\\" not in request
        if short and plain and request.isascii() and request.isprintable():
            return request  # the common case: already what pen records
        return request_key(unescape(request).encode("latin-1"))


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
        year, day = int(stamp[7:11]), int(stamp[0:2])
        hour, minute, second = int(stamp[12:14]), int(stamp[15:17]), int(stamp[18:20])
        zone_hours, zone_minutes = int(stamp[22:24]), int(stamp[24:26])
        # The ranges parse_clf_times checks too (timegm would roll 25:00 over).
        if not (1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
            raise ValueError
        if zone_minutes > 59 or len(stamp) != 26:
            raise ValueError
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        offset = sign * (zone_hours * 3600 + zone_minutes * 60)
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"bad time stamp {text!r}") from None
    if len(_time_cache) > 100_000:
        _time_cache.clear()
    _time_cache[text] = value = float(seconds - offset)
    return value


def with_backend(text: str, server: str) -> str:
    """A log line (newline kept, if any) with the backend that served it as a last
    field: ``--tag-backend`` of mergelogs and penlogd, read as ``%A``."""
    line = text.rstrip("\r\n")
    return f"{line} {server}" + ("\n" if line != text else "")


def field_regex(log_format: str | None = None) -> str:
    """One anchored regex for a whole line, with a named group per field.

    The fields are ``client``, ``time`` (``%t``, brackets allowed), ``request``,
    ``status``, ``size``, ``referer`` and ``agent``; a format may lack any but
    the client and the time.  Every other group is named too (``_1``, ``_2``...)
    so that ``Series.str.extract`` on pyarrow strings runs it with RE2, in bulk.
    ``None`` means common or combined, recognised as `LogFormat(None)` does.
    """
    text = NAMED_FORMATS.get(log_format or "", log_format)
    if text is None:
        return _CLF_FIELDS
    try:
        group_defs, pattern = format2regex(text)
    except ApachelogsError as exc:
        raise LogFormatError(text, str(exc)) from None
    names: list[str] = []
    for index, (_, directive, _) in enumerate(group_defs, start=1):
        name = _FIELD_DIRECTIVES.get(_directive_key(directive))
        names.append(name if name and name not in names else f"_{index}")
    for needed, directive in (("client", "%h or %a"), ("time", "%t")):
        if needed not in names:
            raise LogFormatError(text, f"statistics need the {needed} field ({directive})")
    return "^" + _name_groups(pattern, names) + "$"


def _name_groups(pattern: str, names: list[str]) -> str:
    """`pattern` with its capturing groups named `names`, in order."""
    out: list[str] = []
    position, in_class, index = 0, False, 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\":
            out.append(pattern[position : position + 2])
            position += 2
            continue
        if in_class:
            # `]` right after `[` or `[^` is a member, not the end of the class.
            if char == "]" and pattern[position - 1] not in "[^":
                in_class = False
        elif char == "[":
            in_class = True
        elif char == "(" and not pattern.startswith("(?", position):
            out.append(f"(?P<{names[index]}>")
            index += 1
            position += 1
            continue
        out.append(char)
        position += 1
    return "".join(out)


#: A whole ``%t`` stamp, brackets removed; the range checks follow in numbers.
_CLF_TIME_TEXT = r"^\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d\d\d\d$"


def parse_clf_times(stamps: pd.Series) -> pd.DataFrame:
    """`parse_clf_time` for a whole column at once (pyarrow kernels, no Python loop).

    Returns float columns ``local`` (the wall-clock time as logged, in seconds
    since 1970-01-01 of that zone, so its day and hour are the logged ones)
    and ``unix`` (Unix time); both NaN where the stamp is not a valid ``%t``:
    unknown month (English abbreviations only, never the locale's), day not
    1-31, hour over 23, minute over 59, second over 60.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    # A log has far fewer distinct seconds than lines: parse each stamp once.
    codes, uniques = pd.factorize(stamps)
    text = pc.utf8_trim(pa.array(uniques, type=pa.large_string()), "[]")
    shaped = pc.fill_null(pc.match_substring_regex(text, _CLF_TIME_TEXT), False)
    text = pc.if_else(shaped, text, "01/Jan/1970:00:00:00 +0000")

    def number(start: int, stop: int) -> np.ndarray:
        piece = pc.utf8_slice_codeunits(text, start, stop)
        return pc.cast(piece, pa.int64()).to_numpy(zero_copy_only=False)

    names = pa.array(list(_MONTHS), type=pa.large_string())
    month_index = pc.index_in(pc.utf8_slice_codeunits(text, 3, 6), value_set=names)
    month = pc.fill_null(month_index, -1).to_numpy(zero_copy_only=False) + 1
    day, year = number(0, 2), number(7, 11)
    hour, minute, second = number(12, 14), number(15, 17), number(18, 20)
    zone_hours, zone_minutes = number(22, 24), number(24, 26)
    west = pc.equal(pc.utf8_slice_codeunits(text, 21, 22), "-").to_numpy(zero_copy_only=False)
    sign = np.where(west, -1, 1)
    valid = (
        shaped.to_numpy(zero_copy_only=False)
        & (month >= 1)
        & (day >= 1)
        & (day <= 31)
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 60)
        & (zone_minutes <= 59)
    )
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    shifted = year - (month <= 2)
    era = shifted // 400
    year_of_era = shifted - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    local = (days * 86400 + hour * 3600 + minute * 60 + second).astype("float64")
    offset = sign * (zone_hours * 3600 + zone_minutes * 60)
    local[~valid] = np.nan
    # factorize gives -1 for a missing stamp: index a trailing NaN for it.
    local = np.append(local, np.nan)[codes]
    offset = np.append(offset, 0)[codes]
    return pd.DataFrame({"local": local, "unix": local - offset}, index=stamps.index)


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
        self._agent_group: int | None = None
        text = self.text
        fast = _CLF_PREFIX if text is None else _PORT_FORMATS.get(text)
        if fast is not None:
            self._regex = fast
            self._client_group = fast.groupindex["client"]
            self._plain_time_group = fast.groupindex["time"]
            self._request_group = fast.groupindex["request"]
            self._agent_group = fast.groupindex.get("agent")
            self._port_group = fast.groupindex.get("port")
            self._full_match = text is not None  # a named format must fit whole
            return
        assert text is not None  # no format given is the fast path above
        try:
            group_defs, pattern = format2regex(text)
        except ApachelogsError as exc:
            raise LogFormatError(text, str(exc)) from None
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
            elif _directive_key(directive) == "%{user-agent}i":
                self._agent_group = index
            elif isinstance(name, tuple) and name[0] == "request_time_fields":
                self._time_groups.append((index, name[1], converter))
        if client_group is None:
            raise LogFormatError(text, "it has no client address field (%h or %a)")
        self._client_group = client_group
        if [key for _, key, _ in self._time_groups] == ["timestamp"] and text.count("%t") == 1:
            self._plain_time_group = self._time_groups[0][0]

    @property
    def has_time(self) -> bool:
        return self._plain_time_group is not None or bool(self._time_groups)

    @property
    def has_request(self) -> bool:
        return self._request_group is not None

    def check_joinable(self, *, needs_time: bool) -> None:
        """Refuse a format the join cannot use: it needs the request line, and the
        time when lines are joined by their time stamps (mergelogs), not on arrival."""
        if needs_time and not self.has_time:
            raise LogFormatError(self.text or "", "it has no time stamp (%t)")
        if not self.has_request:
            raise LogFormatError(self.text or "", 'it has no request line ("%r")')

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
        agent = match.group(self._agent_group) if self._agent_group else None
        return AccessLine(text, start, end, time, request or "", port, agent)

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


def first_field_end(line: str) -> int:
    """Where the first field of a line ends: at its first space, else before its line end.

    The first field of an access log is the client (``%h``) in every common
    format; tools that only replace it need no LogFormat.
    """
    end = line.find(" ")
    if end >= 0:
        return end
    return len(line.rstrip("\r\n"))


def is_gzip(path: str, start: bytes) -> bool:
    """Whether a file is gzip-compressed, by its first two bytes or its name."""
    return start == b"\x1f\x8b" or path.endswith(".gz")


def open_binary(path: str) -> IO[bytes]:
    """Open a log for reading as bytes: ``-`` is stdin, ``.gz`` is decompressed."""
    if path == "-":
        return sys.stdin.buffer
    try:
        raw = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from None
    if is_gzip(path, raw.peek(2)[:2]):
        raw.close()  # reopened by gzip, which then closes it too
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return raw


def blocks_of_lines(stream: IO[bytes], size: int, *, eager: bool = False) -> Iterator[bytes]:
    """`stream` in blocks of whole lines: each read of about `size` bytes, cut
    after its last ``\\n`` (the rest goes with the next read); the last block may
    lack the newline.  `eager` takes what a pipe has now (``read1``) instead of
    waiting for `size` bytes, for a reader that streams."""
    read = getattr(stream, "read1", stream.read) if eager else stream.read
    carry = b""
    while chunk := read(size):
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            yield data[:cut]
    if carry:
        yield carry


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


def text_writer(binary: IO[bytes]) -> io.TextIOWrapper:
    """A text stream over `binary` that writes each character back as its byte."""
    return io.TextIOWrapper(binary, encoding="latin-1", newline="", write_through=False)
