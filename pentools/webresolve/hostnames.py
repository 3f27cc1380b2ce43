"""Which PTR answers may go into a log: strict host names, never addresses.

A PTR record is written by whoever controls the reverse zone of the client,
that is, by the client. Its target is copied into the first field of a log
line, so anything but a plain LDH host name (letters, digits, hyphens, dots)
could inject spaces, quotes or line breaks into the log, and a name such as
``10.0.0.1.`` would make the line read as if another client had sent it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence

from pentools.core.addresses import is_ip_address

#: RFC 1035 limits: 63 bytes per label, 253 characters for the dotted name.
MAX_LABEL_LENGTH = 63
MAX_NAME_LENGTH = 253

#: One LDH label (RFC 952/1123): no leading or trailing hyphen.
_LABEL = re.compile(rb"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def host_name_from_labels(labels: Sequence[bytes]) -> str | None:
    """The dotted host name of raw DNS labels (root label allowed), or None if unsafe."""
    if labels and labels[-1] == b"":
        labels = labels[:-1]
    if not labels or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    name = b".".join(labels).decode("ascii")
    return name if _is_safe_name(name, labels[-1]) else None


def is_valid_host_name(text: str) -> bool:
    """True if `text` (one trailing dot allowed) is a host name safe to log."""
    name = text[:-1] if text.endswith(".") else text
    try:
        labels = name.encode("ascii").split(b".")
    except UnicodeEncodeError:
        return False
    return host_name_from_labels(labels) == name


def _is_safe_name(name: str, last_label: bytes) -> bool:
    if len(name) > MAX_NAME_LENGTH:
        return False
    # A numeric top label is never a real domain (RFC 3696 section 2) and is
    # how IPv4 addresses look; inet_aton also reads forms like 0x7f.1 or 2130706433.
    if last_label.isdigit() or is_ip_address(name):
        return False
    try:
        socket.inet_aton(name)
    except OSError:
        return True
    return False
