"""Access control lists (penctl ``acl``, ``client_acl``, ``control_acl``, ``server N acl``).

Sans-IO: a client address (pen's canonical text, IPv4-mapped already made
IPv4) in, permit or deny out.  The rules are the C pen 0.34.1's, found by
experiment against it (tests/pen/test_acl_e2e.py repeats them):

* ten lists, 0 to 9; the client check, the control check and every
  server (the emergency server too) use list 0 until told otherwise, so
  entries in list 0 apply to all three;
* an empty list permits everyone;
* entries are tried in order and the first that matches decides;
* when none matches, the answer is the opposite of the *last* entry's: a
  list of denies lets everyone else in, a list ending in a permit keeps
  everyone else out;
* a denied client is closed at once (the C pen accepts, then closes: the
  client sees EOF, or a reset if it had already sent bytes);
* ``client_acl`` / ``control_acl`` reply with the list number, also when
  setting it; ``write`` saves ``no acl N`` then the entries of every list.

Where we differ, on purpose (a demanding sysadmin would call these bugs):

* bits under the mask are ignored: the C pen compares ``client & mask``
  with the address as typed, so ``permit 10.0.0.5 255.255.255.0`` (or
  ``::1/127``) matches nobody; here it means 10.0.0.0/24.  ``write``
  saves the network address, which the C pen reads the same way;
* a mask must be contiguous (255.0.255.0 is refused with an error; the
  C pen accepts it, but it is almost always a typo);
* an IPv4 client of a dual-stack listener (``::ffff:a.b.c.d``) is matched
  as IPv4, and IPv6 entries inside ``::ffff:0:0/96`` are kept as IPv4
  entries: the C pen matches such a client only against IPv6 entries, so
  its IPv4 entries silently stop working when pen listens on every address;
* a bad entry, a list number outside 0..9 or ``country`` (the C pen needs
  GeoIP for it) is an error, where the C pen ignores the command or falls
  back to list 0 without a word;
* a client denied by the client list is closed, full stop: the C pen sends
  it to its abuse server (``-B``, which we do not have) and, without one,
  fails over to the emergency server (``-e``) when that one's list (0)
  permits it, which lets denied clients in whenever ``-e`` is given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from pentools.core.errors import PentoolsError

#: Lists are numbered 0 to LIST_COUNT - 1.
LIST_COUNT = 10

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


class AccessListError(PentoolsError, ValueError):
    """An access list command that cannot be carried out."""


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One line of a list: permit or deny the clients inside `network`."""

    permit: bool
    network: Network

    def command(self, number: int) -> str:
        """The penctl line that adds this entry to list `number` (what ``write`` saves)."""
        verb = "permit" if self.permit else "deny"
        network = self.network
        if network.version == 4:
            return f"acl {number} {verb} {network.network_address} {network.netmask}"
        return f"acl {number} {verb} {network.network_address}/{network.prefixlen}"


def list_number(text: str) -> int:
    """A list number from penctl text: 0 to 9."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number < LIST_COUNT:
        raise AccessListError(f"access list number must be 0 to {LIST_COUNT - 1}, not {text!r}")
    return number


def parse_entry(words: Sequence[str]) -> AccessEntry:
    """``permit|deny SOURCE [MASK]`` (the words after ``acl N``) as an entry.

    SOURCE is IPv4 with an optional dotted MASK, IPv6 with an optional
    ``/LENGTH``, or (our addition) IPv4 with ``/LENGTH``.
    """
    if len(words) < 2:
        raise AccessListError("acl N needs permit|deny and a source address")
    verb, source, *rest = words
    if verb not in ("permit", "deny"):
        raise AccessListError(f"acl: expected permit or deny, not {verb!r}")
    if source == "country":
        raise AccessListError("acl: country entries need GeoIP, which this pen does not have")
    if ":" in source:
        if rest:
            raise AccessListError("acl: an IPv6 entry takes ADDRESS[/LENGTH], no mask")
        address, _, length = source.partition("/")
        network = _network(address, length or "128", source)
    else:
        if len(rest) > 1 or ("/" in source and rest):
            raise AccessListError("acl: an IPv4 entry takes ADDRESS [MASK] or ADDRESS/LENGTH")
        if "/" in source:  # CIDR, our extension: write saves it as address and mask
            source, _, length = source.partition("/")
            if not length.isdigit() or int(length) > 32:
                raise AccessListError(f"acl: bad prefix length {length!r}")
            rest = [str(ipaddress.IPv4Network(f"0.0.0.0/{length}").netmask)]
        mask = rest[0] if rest else "255.255.255.255"
        if not _is_ipv4(source) or not _is_ipv4(mask):
            given = " ".join(words[1:])
            raise AccessListError(f"acl: expected an IPv4 address and mask, not {given!r}")
        network = _network(source, str(_prefix_length(mask)), f"{source} {mask}")
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        # an IPv4 client is matched as IPv4 whatever socket it came in on
        offset = int(network.network_address) - int(_MAPPED.network_address)
        network = ipaddress.IPv4Network((offset, network.prefixlen - 96))
    return AccessEntry(verb == "permit", network)


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _prefix_length(mask: str) -> int:
    """The prefix length of a dotted mask; ipaddress would take 0.0.0.255 as a host mask."""
    bits = int(ipaddress.IPv4Address(mask))
    inverted = ~bits & 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise AccessListError(f"acl: mask {mask} is not contiguous (ones, then zeros)")
    return 32 - inverted.bit_length()


def _network(address: str, mask: str, text: str) -> Network:
    try:
        return ipaddress.ip_network(f"{address}/{mask}", strict=False)
    except ValueError as exc:
        raise AccessListError(f"acl: bad address or mask {text!r}: {exc}") from None


@lru_cache(maxsize=4096)
def _client_address(client: str) -> Address | None:
    try:
        return ipaddress.ip_address(client)
    except ValueError:
        return None


class AccessLists:
    """The ten lists and which of them guards clients and the control port."""

    def __init__(self) -> None:
        self.lists: list[tuple[AccessEntry, ...]] = [()] * LIST_COUNT
        self.client = 0
        self.control = 0
        #: Any entry in any list?  When not (the usual case) every check is
        #: one attribute test: nothing is parsed or matched.
        self.active = False

    def add(self, number: int, entry: AccessEntry) -> None:
        self.lists[number] += (entry,)
        self.active = True

    def clear(self, number: int) -> None:
        """``no acl N``: the list is empty again, so it permits everyone."""
        self.lists[number] = ()
        self.active = any(self.lists)

    def permits(self, number: int, client: str) -> bool:
        """Whether list `number` lets `client` (an IP address's text) in."""
        entries = self.lists[number]
        if not entries:
            return True
        address = _client_address(client)
        if address is None:  # a Unix socket's client: the C pen permits it too
            return True
        for entry in entries:
            if address in entry.network:
                return entry.permit
        return not entries[-1].permit

    def permits_client(self, client: str) -> bool:
        """The check at accept time (``client_acl``)."""
        return not self.active or self.permits(self.client, client)

    def permits_control(self, client: str) -> bool:
        """The check of a control connection (``control_acl``)."""
        return not self.active or self.permits(self.control, client)

    def commands(self) -> list[str]:
        """Every list as penctl lines, each emptied first (so that a reload does not double it)."""
        lines = []
        for number, entries in enumerate(self.lists):
            lines.append(f"no acl {number}")
            lines.extend(entry.command(number) for entry in entries)
        return lines

    def describe(self) -> list[tuple[int, int, str, str]]:
        """(list, entry, permit|deny, network) for every entry, for the status page."""
        return [
            (number, index, "permit" if entry.permit else "deny", str(entry.network))
            for number, entries in enumerate(self.lists)
            for index, entry in enumerate(entries)
        ]
