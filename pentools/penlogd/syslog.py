"""Syslog datagrams: the access log nginx sends without a pipe.

``access_log syslog:server=loghost:10000,tag=web1 combined;`` sends each line
as one UDP datagram with a syslog header in front; penlogd takes the header
off and joins the line as if penlog had sent it.

The rule that keeps a penlog line from being mistaken for syslog: a datagram
is syslog only if it starts with a *complete* header of one of the formats
below: ``<PRI>`` (0 to 191) followed at once by an RFC 3164 time stamp
(``Mmm dd hh:mm:ss``) or by RFC 5424's version ``1``, then the fields up to
the message.  An access-log line starts with its client (``%h``), so a line
that merely begins with ``<`` (a custom format, junk) does not have that
shape and stays a penlog line, written unchanged if it fits no format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: <PRI>: facility * 8 + severity, at most 23 * 8 + 7; no leading zero.
_PRI = rb"<(?:[0-9]|[1-9][0-9]|1[0-8][0-9]|19[01])>"

#: RFC 3164's time stamp: English month, day padded with a space, no year.
_BSD_TIME = rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 1-3][0-9] \d\d:\d\d:\d\d"

#: RFC 3164's TAG: a program name (nginx allows letters, digits and _),
#: optionally with a [pid]; a colon and a space after it end the header (the
#: space keeps ``2001:db8::1 web1: ...``, a host, from reading as a tag).
_BSD_TAG = rb"(?P<tag>[A-Za-z0-9_./-]{1,48})(?:\[\d{1,10}\])?: "

#: One table: each format and why it is there.  The first whose header
#: matches whole wins.  The two RFC 3164 forms exclude each other: the first
#: field is the tag if it ends in ":", which a host name never does.
FORMATS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    # nginx by default, logger --rfc3164, most network syslog senders (first:
    # the most common):
    #   <190>Dec  5 08:11:50 vm web1: 127.0.0.1 - - [...] "GET / HTTP/1.1" ...
    (
        "rfc3164",
        re.compile(_PRI + _BSD_TIME + rb" (?P<host>[!-~]{0,254}[!-9;-~]) " + _BSD_TAG),
    ),
    # nginx with `nohostname` (and syslog over a local socket):
    #   <190>Dec  5 08:11:50 web2: 127.0.0.1 - - [...] ...
    ("rfc3164-nohostname", re.compile(_PRI + _BSD_TIME + rb" " + _BSD_TAG)),
    # RFC 5424 (rsyslog forwarding, logger --rfc5424): version 1, time,
    # host, APP-NAME (the tag), PROCID, MSGID, structured data ("-" or
    # [elements], whose quoted values may hold an escaped "]"), then the
    # message, which may begin with a byte-order mark.
    #   <190>1 2026-12-05T08:21:00.508+00:00 vm web1 - - [timeQuality ...] 127.0.0.1 ...
    (
        "rfc5424",
        re.compile(
            _PRI + rb"1 (?:-|\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))"
            rb" (?P<host>[!-~]{1,255}) (?P<tag>[!-~]{1,48}) [!-~]{1,128} [!-~]{1,32}"
            rb' (?:-|(?:\[[^\]\s"=]{1,32}(?: [^\]\s"=]{1,32}="(?:[^"\\]|\\.)*")*\])+)'
            rb"(?: (?:\xef\xbb\xbf)?|\Z)",
            re.DOTALL,
        ),
    ),
)


@dataclass(slots=True)
class SyslogMessage:
    """A datagram's syslog header, taken apart: who sent it and the log line."""

    format: str
    tag: str  # RFC 3164 TAG or RFC 5424 APP-NAME; "-" if the sender gave none
    host: str | None  # the HOSTNAME field, if the header has one
    message: bytes  # the access-log line


def parse_syslog(datagram: bytes) -> SyslogMessage | None:
    """The syslog message in `datagram`, or None if it does not start with a whole header."""
    if datagram[:1] != b"<":
        return None
    for name, pattern in FORMATS:
        header = pattern.match(datagram)
        if header is not None:
            host = header["host"] if "host" in pattern.groupindex else None
            return SyslogMessage(
                name,
                header["tag"].decode("ascii"),
                None if host is None else host.decode("ascii"),
                datagram[header.end() :],
            )
    return None
