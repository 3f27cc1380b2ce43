"""Balancer records: which client pen sent to which server with which request.

Two wire forms, one table each (SPEC §1):

* local file (``pen -l FILE``): ``CLIENT UNIX_TIME SERVER REQUEST``
* UDP to penlogd (``pen -l HOST:PORT``): ``+ CLIENT SERVER REQUEST``

pentools' opt-in extended form appends ``#UPSTREAM_PORT`` to SERVER: the
local port of the balancer's connection to the backend, which a backend that
logs ``%{remote}p`` repeats, so the join becomes exact.  The C tools never
write it; they simply fail to match such records, which is why it is opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pentools.core.addresses import normalize_ip
from pentools.core.errors import RecordError

#: pen keeps at most this many bytes of a request (the original's limit).
REQUEST_MAX = 100

#: Every byte that is not printable ASCII becomes "." in a request key: the C
#: pen maps bytes >= 0x80 only (and writes control bytes, even NUL, as they
#: come); mapping control bytes too keeps our records one line of plain text
#: and still matches the C pen's records on every ordinary request.
_KEY_TABLE = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))

_PORT_SEPARATOR = "#"


def request_key(data: bytes) -> str:
    """What pen records of a request: the first line, at most 100 bytes, printable ASCII."""
    end = len(data)
    for terminator in (b"\r", b"\n"):
        index = data.find(terminator, 0, end)
        if index >= 0:
            end = index
    return data[: min(end, REQUEST_MAX)].translate(_KEY_TABLE).decode("ascii")


@dataclass(slots=True)
class BalancerRecord:
    """One record: `client` was sent to `server` with `request` (a request key).

    `time` is the balancer's Unix time (local form) or the arrival time at
    penlogd (UDP form); `upstream_port` is set only by the extended form.
    """

    client: str
    server: str
    request: str
    time: float = 0.0
    upstream_port: int | None = None

    def server_field(self) -> str:
        if self.upstream_port is None:
            return self.server
        return f"{self.server}{_PORT_SEPARATOR}{self.upstream_port}"

    def to_local(self) -> bytes:
        """The ``pen -l FILE`` line, newline included."""
        return f"{self.client} {int(self.time)} {self.server_field()} {self.request}\n".encode()

    def to_datagram(self) -> bytes:
        """The ``pen -l HOST:PORT`` datagram."""
        return f"+ {self.client} {self.server_field()} {self.request}\n".encode()


#: Normalized clients by their text: a log names its clients over and over,
#: and records that share the string share the memory.  Cleared when full.
_clients: dict[str, str] = {}
_CACHE_LIMIT = 100_000


def _parse_server_field(field: str, line: str) -> tuple[str, int | None]:
    server, sep, port_text = field.partition(_PORT_SEPARATOR)
    port = None
    if sep:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise _bad(line, f"bad upstream port {port_text!r}")
        port = int(port_text)
    address = _server_address(server)
    if address is None:
        raise _bad(line, f"server {server!r} is not an IP address")
    return address, port


@lru_cache(maxsize=4096)  # a farm has a few servers, named in every record
def _server_address(text: str) -> str | None:
    return normalize_ip(text)


def _client(field: str, line: str) -> str:
    address = _clients.get(field)
    if address is None:
        address = normalize_ip(field)
        if address is None:
            raise _bad(line, f"client {field!r} is not an IP address")
        if len(_clients) >= _CACHE_LIMIT:
            _clients.clear()
        _clients[field] = address
    return address


def _bad(line: str, reason: str) -> RecordError:
    return RecordError(line.encode("latin-1"), reason)


def _text_request_key(request: str) -> str:
    """`request_key` of text read as Latin-1 (one character per byte)."""
    if len(request) <= REQUEST_MAX and request.isascii() and request.isprintable():
        return request  # the common case, already what pen records
    return request_key(request.encode("latin-1"))


def parse_local(line: bytes | str) -> BalancerRecord:
    """Parse one line of a ``pen -l FILE`` log (bytes, or text read as Latin-1)."""
    text = line.decode("latin-1") if isinstance(line, bytes) else line
    parts = text.rstrip("\r\n").split(" ", 3)
    if len(parts) < 3:
        raise _bad(text, "expected CLIENT TIME SERVER REQUEST")
    client_text, time_text, server_text = parts[:3]
    try:
        time = float(time_text)
    except ValueError:
        raise _bad(text, f"time {time_text!r} is not a number") from None
    server, port = _parse_server_field(server_text, text)
    request = _text_request_key(parts[3]) if len(parts) == 4 else ""
    return BalancerRecord(_client(client_text, text), server, request, time, port)


def is_record_datagram(datagram: bytes) -> bool:
    """A datagram that starts with ``+`` is a balancer record; anything else a log line."""
    return datagram.startswith(b"+")


def parse_datagram(datagram: bytes, arrival_time: float) -> BalancerRecord:
    """Parse a ``+ CLIENT SERVER REQUEST`` datagram received at `arrival_time`."""
    text = datagram.decode("latin-1")
    parts = text.rstrip("\r\n").split(" ", 3)
    if len(parts) < 3 or parts[0] != "+":
        raise _bad(text, "expected + CLIENT SERVER REQUEST")
    server, port = _parse_server_field(parts[2], text)
    request = _text_request_key(parts[3]) if len(parts) == 4 else ""
    return BalancerRecord(_client(parts[1], text), server, request, arrival_time, port)
