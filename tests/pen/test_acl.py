"""Access lists, sans-IO: entries, matching, the commands, and server selection.

The expected answers are the C pen 0.34.1's, seen by experiment (see
pentools/pen/acl.py; tests/pen/test_acl_e2e.py checks the same against the
real C pen), except where acl.py documents a deliberate difference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from pentools.pen.acl import AccessListError, AccessLists, list_number, parse_entry
from pentools.pen.config import ListenSpec, PenConfig, ServerSpec
from pentools.pen.control import CommandError, Controller
from pentools.pen.selection import Policy, Selector, Server
from pentools.pen.server import build_state


def lists(*lines: str) -> AccessLists:
    """Lists built from ``N permit|deny ...`` lines."""
    access = AccessLists()
    for line in lines:
        number, *words = line.split()
        access.add(int(number), parse_entry(words))
    return access


# -- entries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "saved"),
    [
        ("deny 10.1.2.3", "acl 4 deny 10.1.2.3 255.255.255.255"),
        ("permit 10.1.2.3 255.255.255.0", "acl 4 permit 10.1.2.0 255.255.255.0"),
        ("permit 0.0.0.0 0.0.0.0", "acl 4 permit 0.0.0.0 0.0.0.0"),
        ("permit 10.1.2.3/8", "acl 4 permit 10.0.0.0 255.0.0.0"),
        ("permit ::1", "acl 4 permit ::1/128"),
        ("deny fe80::1:2/64", "acl 4 deny fe80::/64"),
        ("permit ::1/127", "acl 4 permit ::/127"),
        # IPv4-mapped IPv6 entries are IPv4 entries (clients are matched as IPv4)
        ("deny ::ffff:127.0.33.2/120", "acl 4 deny 127.0.33.0 255.255.255.0"),
        ("deny ::ffff:127.0.33.2", "acl 4 deny 127.0.33.2 255.255.255.255"),
    ],
)
def test_entries_are_saved_as_penctl_lines(words: str, saved: str) -> None:
    assert parse_entry(words.split()).command(4) == saved


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("", "needs permit"),
        ("permit", "needs permit"),
        ("allow 10.0.0.1", "expected permit or deny"),
        ("permit country SE", "GeoIP"),
        ("permit 10.0.0", "expected an IPv4 address"),
        ("permit 10.0.0.1 255.255.255", "expected an IPv4 address"),
        ("permit 10.0.0.256", "expected an IPv4 address"),
        ("permit 10.0.0.0 255.0.255.0", "not contiguous"),
        ("permit 10.0.0.0 0.0.0.255", "not contiguous"),  # not a host mask either
        ("permit 10.0.0.0/33", "prefix length"),
        ("permit 10.0.0.0 255.0.0.0 extra", "takes ADDRESS"),
        ("permit ::1/129", "bad address or mask"),
        ("permit ::1 64", "no mask"),
        ("permit fe80::zz", "bad address or mask"),
    ],
)
def test_bad_entries_are_errors(words: str, message: str) -> None:
    with pytest.raises(AccessListError, match=message):
        parse_entry(words.split())


def test_list_numbers_are_zero_to_nine() -> None:
    assert list_number("0") == 0 and list_number("9") == 9
    for bad in ("10", "-1", "x", ""):
        with pytest.raises(AccessListError, match="0 to 9"):
            list_number(bad)


# -- matching --------------------------------------------------------------------------


def test_empty_lists_permit_everyone_and_cost_nothing() -> None:
    access = AccessLists()
    assert not access.active
    assert access.permits_client("192.0.2.1") and access.permits_control("::1")
    assert all(access.permits(n, "192.0.2.1") for n in range(10))


def test_first_match_decides() -> None:
    access = lists("1 deny 10.0.0.5", "1 permit 10.0.0.0 255.255.255.0")
    assert not access.permits(1, "10.0.0.5")
    assert access.permits(1, "10.0.0.6")
    access = lists("1 permit 10.0.0.0 255.255.255.0", "1 deny 10.0.0.5")
    assert access.permits(1, "10.0.0.5")


def test_no_match_means_the_opposite_of_the_last_entry() -> None:
    only_denies = lists("1 deny 10.0.0.5", "1 deny 10.0.0.6")
    assert only_denies.permits(1, "10.0.0.7")
    ends_with_permit = lists("1 deny 10.0.0.5", "1 permit 10.0.0.0 255.255.255.0")
    assert not ends_with_permit.permits(1, "10.0.1.1")
    # an entry of the other family still counts as "the last entry"
    mixed = lists("1 deny 10.0.0.5", "1 permit ::1")
    assert not mixed.permits(1, "10.0.0.7")
    assert mixed.permits(1, "::1")


def test_host_bits_under_the_mask_are_ignored() -> None:
    # the C pen would match nobody with these (it compares client&mask to the address as typed)
    access = lists("1 permit 10.0.0.5 255.255.255.0", "2 permit ::1/127")
    assert access.permits(1, "10.0.0.200") and not access.permits(1, "10.0.1.1")
    assert access.permits(2, "::1") and access.permits(2, "::") and not access.permits(2, "::2")


def test_ipv6_entries_and_mapped_clients() -> None:
    access = lists("1 deny 2001:db8::/32", "1 deny ::ffff:192.0.2.0/120", "1 permit ::/0")
    assert not access.permits(1, "2001:db8::1")
    assert access.permits(1, "2001:db9::1")
    # pen hands clients over IPv4-mapped made IPv4: the mapped entry is an IPv4 entry
    assert not access.permits(1, "192.0.2.9")
    # ::/0 is IPv6 only, so other IPv4 clients fall to "opposite of the last entry"
    assert not access.permits(1, "198.51.100.1")


def test_no_acl_empties_a_list_and_active_follows() -> None:
    access = lists("1 deny 10.0.0.5", "2 deny 10.0.0.6")
    access.clear(1)
    assert access.active and access.permits(1, "10.0.0.5")
    access.clear(2)
    assert not access.active


def test_client_and_control_lists_default_to_list_zero() -> None:
    access = lists("0 deny 10.0.0.5")
    assert not access.permits_client("10.0.0.5") and not access.permits_control("10.0.0.5")
    access.client, access.control = 3, 4
    assert access.permits_client("10.0.0.5") and access.permits_control("10.0.0.5")


def test_a_client_without_an_address_is_permitted() -> None:
    # like the C pen's Unix-socket clients (the relays do not even ask for those)
    assert lists("1 permit 10.0.0.1").permits(1, "not-an-address") is True


# -- server selection -------------------------------------------------------------------


def selector(count: int = 3, emergency: bool = False, **policy: object) -> Selector:
    servers = [Server(i, f"s{i}", f"10.0.0.{i + 1}", 80) for i in range(count)]
    spare = Server(count, "e", "10.0.0.99", 80) if emergency else None
    return Selector(servers, spare, Policy(**policy))  # type: ignore[arg-type]


def test_a_server_whose_list_denies_the_client_is_skipped() -> None:
    table = selector(roundrobin=True)
    table.access = lists("2 permit 192.0.2.1")
    table.servers[0].acl = 2
    picks = [table.choose("192.0.2.9", 0.0) for _ in range(6)]
    assert picks == [1, 2] * 3
    picks = [table.choose("192.0.2.1", 0.0) for _ in range(6)]
    assert set(picks) == {0, 1, 2}


def test_all_servers_denied_means_no_server_then_emergency_by_its_list() -> None:
    table = selector(count=2, emergency=True)
    table.access = lists("2 permit 192.0.2.1")
    for server in table.servers:
        server.acl = 2
    assert table.choose("192.0.2.9", 0.0) == 2  # the emergency server (list 0: empty)
    table.access.add(0, parse_entry(["deny", "192.0.2.9"]))
    assert table.choose("192.0.2.9", 0.0) is None


def test_known_client_denied_by_its_server_moves_or_stubborn_gives_up() -> None:
    table = selector(count=2)
    assert table.choose("192.0.2.9", 0.0) == 0
    table.release(0)
    table.access = lists("3 deny 192.0.2.9")
    table.servers[0].acl = 3
    assert table.choose("192.0.2.9", 1.0) == 1
    table.release(1)
    table.servers[1].acl = 3
    table.servers[0].acl = 0
    table.policy.stubborn = True
    assert table.choose("192.0.2.9", 2.0) is None


# -- the commands -------------------------------------------------------------------------


@pytest.fixture
def controller() -> Iterator[Controller]:
    loop = asyncio.new_event_loop()
    config = PenConfig(
        listen=ListenSpec("127.0.0.1", 8080),
        servers=(ServerSpec("127.0.0.2", 80), ServerSpec("127.0.0.3", 81)),
    )
    try:
        yield Controller(build_state(config, loop))
    finally:
        loop.close()


def test_acl_commands_replies_like_the_c_pen(controller: Controller) -> None:
    assert controller.execute("client_acl") == "0\n"
    assert controller.execute("control_acl") == "0\n"
    assert controller.execute("acl 1 deny 127.0.33.2") == ""
    assert controller.execute("acl 1 permit ::1/128") == ""
    assert controller.execute("client_acl 1") == "1\n"  # the C pen replies when setting too
    assert controller.execute("control_acl 2") == "2\n"
    assert controller.execute("server 1 acl 1") == ""
    access = controller.state.selector.access
    assert access.client == 1 and access.control == 2
    assert controller.state.selector.servers[1].acl == 1
    assert not access.permits_client("127.0.33.2")
    assert controller.execute("no acl 1") == ""
    assert access.permits_client("127.0.33.2") and not access.active


@pytest.mark.parametrize(
    ("line", "error", "message"),
    [
        ("acl", CommandError, "acl needs a list number (0 to 9)"),
        ("acl 10 permit 10.0.0.1", AccessListError, "must be 0 to 9, not '10'"),
        ("acl 1 allow 10.0.0.1", AccessListError, "expected permit or deny, not 'allow'"),
        ("acl 1 permit country SE", AccessListError, "country entries need GeoIP"),
        ("no acl", CommandError, "acl needs a list number (0 to 9)"),
        ("no acl 12", AccessListError, "must be 0 to 9, not '12'"),
        ("no acl 1 2", CommandError, "'no acl N' takes nothing after the list number"),
        ("client_acl 10", AccessListError, "must be 0 to 9, not '10'"),
        ("control_acl -1", AccessListError, "must be 0 to 9, not '-1'"),
        ("server 0 acl 10", AccessListError, "must be 0 to 9, not '10'"),
    ],
)
def test_bad_acl_commands_are_errors(
    controller: Controller, line: str, error: type[Exception], message: str
) -> None:
    controller.execute("acl 1 deny 127.0.33.2")
    controller.execute("client_acl 1")
    selector = controller.state.selector

    def state() -> tuple[object, ...]:
        access = selector.access
        return access.commands(), access.client, access.control, [s.acl for s in selector.servers]

    before = state()
    with pytest.raises(error) as raised:
        controller.execute(line)
    assert type(raised.value) is error and message in str(raised.value)
    assert state() == before  # refused: nothing changed


def test_write_saves_acls_and_reads_them_back(controller: Controller, tmp_path: Path) -> None:
    for line in (
        "acl 1 deny 127.0.33.7 255.255.255.0",
        "acl 1 permit ::1",
        "acl 3 permit 10.0.0.0/8",
        "client_acl 1",
        "control_acl 3",
        "server 1 acl 3",
    ):
        controller.execute(line)
    saved = tmp_path / "pen.cfg"
    controller.execute(f"write {saved}")
    text = saved.read_text()
    assert "no acl 0\nno acl 1\nacl 1 deny 127.0.33.0 255.255.255.0\nacl 1 permit ::1/128\n" in text
    assert "no acl 3\nacl 3 permit 10.0.0.0 255.0.0.0\nno acl 4\n" in text
    assert "\nclient_acl 1\ncontrol_acl 3\n" in text
    assert "\nserver 1 acl 3 address 127.0.0.3 port 81 " in text
    before = controller.state.selector.access.commands()
    for line in ("no acl 1", "no acl 3", "client_acl 0", "control_acl 0", "server 1 acl 0"):
        controller.execute(line)
    controller.execute(f"include {saved}")
    controller.execute(f"include {saved}")  # a reload (HUP) does not double the entries
    access = controller.state.selector.access
    assert access.commands() == before
    assert (access.client, access.control) == (1, 3)
    assert controller.state.selector.servers[1].acl == 3


def test_status_page_shows_lists_and_denials(controller: Controller) -> None:
    controller.execute("acl 2 deny 127.0.33.2")
    controller.execute("client_acl 2")
    assert not controller.state.admits("127.0.33.2")
    assert controller.state.admits("127.0.33.3")
    page = controller.execute("status")
    assert "Clients checked against list 2, control port against list 0; denied: 1 clients" in page
    assert "<td>2</td>\n<td>0</td>\n<td>deny</td>\n<td>127.0.33.2/32</td>" in page
