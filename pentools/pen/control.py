"""The control port: penctl's commands, their replies, and the server that takes them.

A control connection carries one command line; the reply is the rest of
the stream, then pen closes it (the original's protocol).  `Controller`
is sans-IO (a command line in, reply text out) and is also what ``-F`` and
``-o`` feed at start and on HUP.  Reply formats are the C pen's.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import time
from collections.abc import Callable

from pentools.core.addresses import address_family, normalize_ip, resolve_host
from pentools.core.errors import ConfigError, PentoolsError
from pentools.pen.acl import list_number, parse_entry
from pentools.pen.config import parse_listen, parse_log_target
from pentools.pen.connection import client_of
from pentools.pen.metrics import metrics_json
from pentools.pen.state import State
from pentools.pen.status import render_status

#: Longest command line accepted on the control port.
_LINE_LIMIT = 4096

_SWITCHES = ("hash", "roundrobin", "stubborn", "weight", "prio")
#: The commands that take a ``no`` in front (besides the switches).
_NEGATABLE = (
    "acl",
    "http",
    "log",
    "web_stats",
    "ascii",
    "tcp_nodelay",
    "source",
    "queue_at_conn_max",
)
_FASTCLOSE = ("off", "up", "down", "both")
#: A connection's state in ``connection N``, as bits (the original's shape):
#: 1 connecting to the server, 2 connected, 4 the server closed its side,
#: 8 the client closed its side.
_CONNECTING, _CONNECTED, _SERVER_CLOSED, _CLIENT_CLOSED = 1, 2, 4, 8


#: How every refusal on the control port begins (the original's prefix, in
#: `ControlProtocol.answer` and the replies below), so that penctl can tell a
#: refused command from a reply.
REFUSED = "do_cmd: "


def command_names() -> list[tuple[str, bool]]:
    """Every command the control port takes and whether ``no`` may precede it
    (``penctl help``), read from `Controller`'s handlers so it cannot go stale."""
    names = {name.removeprefix("_cmd_") for name in dir(Controller) if name.startswith("_cmd_")}
    negatable = {*_SWITCHES, *_NEGATABLE}
    return [(name, name in negatable) for name in sorted(names | set(_SWITCHES))]


class CommandError(PentoolsError, ValueError):
    """A control command that pen does not know or cannot carry out."""


def _int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"{what} must be a whole number, not {text!r}") from None
    if value < 0:
        raise CommandError(f"{what} must not be negative")
    return value


def _positive(text: str, what: str) -> int:
    value = _int(text, what)
    if value == 0:
        raise CommandError(f"{what} must be at least 1")
    return value


def _signed(text: str, what: str) -> int:
    """A whole number that may be out of range (the reply then says so)."""
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"{what} must be a whole number, not {text!r}") from None


class Controller:
    """Executes penctl command lines against pen's running `State`."""

    def __init__(
        self,
        state: State,
        *,
        request_exit: Callable[[], None] = lambda: None,
        write_webstats: Callable[[], None] = lambda: None,
        reopen: Callable[[str], str] | None = None,
    ) -> None:
        self.state = state
        self.request_exit = request_exit
        self.write_webstats = write_webstats
        #: ``listen ADDRESS``: moves the listener, returns where it listens now
        #: (None on the start-up check, which only parses the address).
        self.reopen = reopen

    def execute(self, line: str) -> str:
        """The reply to one command line (empty for the commands that set something)."""
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise CommandError(f"cannot parse {line!r}: {exc}") from None
        if not words:
            return ""
        negate = words[0] == "no"
        if negate:
            words = words[1:]
            if not words:
                raise CommandError("'no' needs a command")
        name, args = words[0], words[1:]
        handler = getattr(self, f"_cmd_{name}", None)
        if name in _SWITCHES:
            return self._switch(name, not negate)
        if handler is None or (negate and name not in _NEGATABLE):
            raise CommandError(f"ignoring command starting with '{words[0]}'")
        reply: str = handler(*args, negate=True) if negate else handler(*args)
        self.state.refresh()  # a setting may decide whether relays look at the bytes
        return reply

    def run_lines(self, lines: list[str], source: str) -> None:
        """Commands from -F or -o; raises on the first bad one, naming where it was."""
        for number, line in enumerate(lines, 1):
            try:
                self.execute(line)
            except (PentoolsError, TypeError) as exc:
                raise ConfigError(line, f"{source} line {number}: {exc}") from None

    # -- policy switches -----------------------------------------------------------

    def _switch(self, name: str, value: bool) -> str:
        setattr(self.state.selector.policy, name, value)
        return ""

    def _cmd_mode(self) -> str:
        return self.state.selector.policy.mode() + "\n"

    def _cmd_http(self, *_: object, negate: bool = False) -> str:
        self.state.settings.http = not negate
        return ""

    # -- numbers that may be read or set ----------------------------------------------

    def _cmd_blacklist(self, value: str | None = None) -> str:
        policy = self.state.selector.policy
        if value is None:
            return f"{int(policy.blacklist)}\n"
        policy.blacklist = _int(value, "blacklist time")
        return ""

    def _cmd_timeout(self, value: str | None = None) -> str:
        if value is None:
            return f"{self.state.settings.timeout:g}\n"
        self.state.settings.timeout = _positive(value, "timeout")
        return ""

    def _cmd_tracking(self, value: str | None = None) -> str:
        policy = self.state.selector.policy
        if value is None:
            return f"{int(policy.tracking)}\n"
        policy.tracking = _int(value, "tracking time")
        return ""

    def _cmd_clients_max(self, value: str | None = None) -> str:
        selector = self.state.selector
        if value is not None:
            selector.set_clients_max(_int(value, "clients_max"))
        return f"{selector.clients_max}\n"

    def _cmd_conn_max(self, value: str | None = None) -> str:
        if value is not None:
            self.state.settings.conn_max = _positive(value, "conn_max")
        return f"{self.state.settings.conn_max}\n"

    def _cmd_pending_max(self, value: str | None = None) -> str:
        if value is None:  # the original answers nothing; the number is more use
            return f"{self.state.settings.pending_max}\n"
        self.state.settings.pending_max = _positive(value, "pending_max")
        return ""

    def _cmd_idle_timeout(self, value: str | None = None) -> str:
        if value is not None:
            self.state.settings.idle_timeout = _int(value, "idle timeout")
        return f"Idle timeout: {self.state.settings.idle_timeout} seconds\n"

    # -- no lock-out: what to do at the -x cap ---------------------------------------

    def _cmd_queue_at_conn_max(self, *_: object, negate: bool = False) -> str:
        self.state.settings.queue_at_conn_max = not negate
        return ""

    def _cmd_conn_max_per_client(self, value: str | None = None) -> str:
        if value is not None:
            self.state.settings.conn_max_per_client = _int(value, "conn_max_per_client")
        return f"{self.state.settings.conn_max_per_client}\n"

    def _cmd_first_byte_timeout(self, value: str | None = None) -> str:
        if value is not None:
            self.state.settings.first_byte_timeout = _int(value, "first_byte_timeout")
        return f"{self.state.settings.first_byte_timeout}\n"

    def _cmd_tcp_fastclose(self, value: str | None = None) -> str:
        if value is None:
            return "do_cmd: ignoring tcp_fastclose without argument\n"
        if value not in _FASTCLOSE:
            raise CommandError(f"tcp_fastclose takes {'|'.join(_FASTCLOSE)}, not {value!r}")
        self.state.settings.fastclose = value
        return ""

    def _cmd_tcp_nodelay(self, *_: object, negate: bool = False) -> str:
        self.state.settings.tcp_nodelay = not negate  # for connections opened from now on
        return ""

    def _cmd_source(self, address: str | None = None, negate: bool = False) -> str:
        state = self.state
        if negate:
            state.settings.source = None
            return ""
        if address is None:
            return f"{state.settings.source}\n" if state.settings.source else ""
        ip = normalize_ip(address)
        if ip is None:
            raise CommandError(f"source must be an IP address, not {address!r}")
        family = address_family(ip)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:  # an address that is not this machine's would fail every connection
                probe.bind((ip, 0))
            except OSError as exc:
                raise CommandError(f"cannot connect from {ip}: {exc.strerror}") from None
        state.settings.source = ip
        return ""

    def _cmd_ascii(self, *_: object, negate: bool = False) -> str:
        self.state.settings.ascii_dumps = not negate
        return ""

    def _cmd_epoll(self) -> str:
        """The original's choice of event mechanism (epoll, poll, select): pen
        always uses epoll through its event loop, so this changes nothing."""
        return ""

    _cmd_poll = _cmd_select = _cmd_epoll

    def _cmd_debug(self, value: str | None = None) -> str:
        if value is None:
            return f"{self.state.settings.debug}\n"
        self.state.settings.debug = _int(value, "debug level")
        return ""

    # -- access lists (pentools.pen.acl has the rules) ---------------------------------

    def _cmd_acl(self, number: str | None = None, *words: str, negate: bool = False) -> str:
        if number is None:
            raise CommandError("acl needs a list number (0 to 9)")
        access = self.state.selector.access
        if negate:
            if words:
                raise CommandError("'no acl N' takes nothing after the list number")
            access.clear(list_number(number))
        else:
            access.add(list_number(number), parse_entry(words))
        return ""

    def _cmd_client_acl(self, number: str | None = None) -> str:
        access = self.state.selector.access
        if number is not None:
            access.client = list_number(number)
        return f"{access.client}\n"

    def _cmd_control_acl(self, number: str | None = None) -> str:
        access = self.state.selector.access
        if number is not None:
            access.control = list_number(number)
        return f"{access.control}\n"

    # -- what pen is ---------------------------------------------------------------------

    def _cmd_pid(self) -> str:
        return f"{os.getpid()}\n"

    def _cmd_listen(self, address: str | None = None) -> str:
        if address is None:
            return f"{self.state.listen_description}\n"
        if self.reopen is None:
            parse_listen(address)
            return ""
        return f"{self.reopen(address)}\n"

    def _cmd_control(self) -> str:
        return f"{self.state.control_description}\n"

    def _cmd_servers(self) -> str:
        lines = []
        for s in self.state.selector.servers:
            lines.append(
                f"{s.index} addr {s.address} port {s.port} conn {s.conn} max {s.max_conn} "
                f"hard {s.hard} weight {s.weight} prio {s.prio} sx {s.sent} rx {s.received}\n"
            )
        return "".join(lines)

    def _cmd_recent(self, seconds: str | None = None) -> str:
        window = 300 if seconds is None else _int(seconds, "seconds")
        now = self.state.clock()
        return "".join(
            f"{c.address} connects {c.connects} sx {c.sent} rx {c.received}\n"
            for c in self.state.selector.recent(now, window)
        )

    def _cmd_status(self) -> str:
        return render_status(self.state)

    def _cmd_metrics(self) -> str:
        """The counters of ``--metrics`` as one line of JSON (ours, not the original's)."""
        return metrics_json(self.state) + "\n"

    # -- single connections -------------------------------------------------------------

    def _cmd_connection(self, text: str) -> str:
        number = _signed(text, "connection number")
        if not 0 <= number < self.state.settings.conn_max:
            return f"Connection {number} out of range\n"
        connection = self.state.connections.get(number)
        if connection is None:  # a free slot, as the original shows it
            return (
                f"Connection {number}:\nstate = 0\ndownfd = -1, upfd = -1\n"
                f"client = -1, server = -1\npend = 0\n"
            )
        down_fd, up_fd, to_client, to_server = connection.status()
        if connection.connecting_now():
            state = _CONNECTING
        else:
            server_closed, client_closed = connection.closed_sides()
            state = _CONNECTED
            state |= _SERVER_CLOSED if server_closed else 0
            state |= _CLIENT_CLOSED if client_closed else 0
        clients = list(self.state.selector.clients)  # the status page's client numbers
        client = clients.index(connection.client) if connection.client in clients else -1
        return (
            f"Connection {number}:\nstate = {state}\ndownfd = {down_fd}, upfd = {up_fd}\n"
            f"client = {client}, server = {connection.server_index}\n"
            f"pend = {to_client + to_server}\n"
        )

    def _cmd_socket(self, text: str) -> str:
        fd = _signed(text, "socket number")
        owner = next(
            (
                number
                for number, connection in self.state.connections.items()
                if fd in connection.status()[:2]
            ),
            -1,
        )
        return f"Socket {fd} belongs to connection {owner}\n"

    def _cmd_close(self, text: str) -> str:
        number = _signed(text, "connection number")
        connection = self.state.connections.get(number)
        if connection is not None:
            connection.close()
        return f"Forcibly closing connection {number}\n"

    # -- files -----------------------------------------------------------------------------

    def _cmd_log(self, path: str | None = None, negate: bool = False) -> str:
        if negate:
            self.state.set_log(None)
            return ""
        if path is None:
            target = self.state.log_target
            return f"{target}\n" if target else ""
        self.state.set_log(parse_log_target(path))
        return ""

    def _cmd_web_stats(self, path: str | None = None, negate: bool = False) -> str:
        if negate:
            self.state.settings.webstats = None
            return ""
        if path is None:
            return f"{self.state.settings.webstats}\n" if self.state.settings.webstats else ""
        self.state.settings.webstats = path
        return ""

    def _cmd_write(self, path: str | None = None) -> str:
        target = path or self.state.config.cfgfile
        if not target:
            raise CommandError("write needs a file name (pen was started without -F)")
        try:
            with open(target, "w", encoding="utf-8") as out:
                out.write(self.configuration())
        except OSError as exc:
            raise CommandError(f"cannot write {target}: {exc.strerror}") from None
        return ""

    def _cmd_include(self, path: str) -> str:
        try:
            with open(path, encoding="utf-8") as source:
                lines = source.read().splitlines()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        self.run_lines(lines, path)
        return ""

    def configuration(self) -> str:
        """The running configuration as penctl commands (what ``write`` saves)."""
        state = self.state
        policy = state.selector.policy
        lines = [f"# Generated by pen {time.strftime('%Y-%m-%d %H:%M:%S')}"]
        access = state.selector.access
        lines.extend(access.commands())

        def flag(name: str, value: bool) -> None:
            lines.append(name if value else f"no {name}")

        flag("ascii", state.settings.ascii_dumps)
        lines.append(f"blacklist {int(policy.blacklist)}")
        lines.append(f"client_acl {access.client}")
        lines.append(f"control_acl {access.control}")
        lines.append(f"debug {state.settings.debug}")
        flag("hash", policy.hash)
        flag("http", state.settings.http)
        target = state.log_target
        lines.append(f"log {shlex.quote(str(target))}" if target else "no log")
        flag("roundrobin", policy.roundrobin)
        for s in state.selector.servers:
            lines.append(
                f"server {s.index} acl {s.acl} address {s.address} port {s.port} max {s.max_conn} "
                f"hard {s.hard} weight {s.weight} prio {s.prio}"
            )
        if state.settings.source:
            lines.append(f"source {state.settings.source}")
        flag("stubborn", policy.stubborn)
        lines.append(f"idle_timeout {state.settings.idle_timeout}")
        flag("queue_at_conn_max", state.settings.queue_at_conn_max)
        lines.append(f"conn_max_per_client {state.settings.conn_max_per_client}")
        lines.append(f"first_byte_timeout {state.settings.first_byte_timeout}")
        lines.append(f"pending_max {state.settings.pending_max}")
        lines.append(f"tcp_fastclose {state.settings.fastclose}")
        flag("tcp_nodelay", state.settings.tcp_nodelay)
        lines.append(f"timeout {state.settings.timeout:g}")
        lines.append(f"tracking {int(policy.tracking)}")
        webstats = state.settings.webstats
        lines.append(f"web_stats {shlex.quote(webstats)}" if webstats else "no web_stats")
        flag("weight", policy.weight)
        flag("prio", policy.prio)
        return "\n".join(lines) + "\n"

    # -- changing a server -----------------------------------------------------------------

    def _cmd_server(self, index_text: str, *settings: str) -> str:
        selector = self.state.selector
        index = _int(index_text, "server number")
        if index >= len(selector.servers):
            raise CommandError(f"no server {index} (there are {len(selector.servers)})")
        if len(settings) % 2:
            raise CommandError("server N expects KEYWORD VALUE pairs")
        server = selector.servers[index]
        for keyword, value in zip(settings[::2], settings[1::2], strict=True):
            if keyword == "address":
                try:
                    server.address = resolve_host(value)[0]
                except PentoolsError as exc:
                    raise CommandError(str(exc)) from None
                server.host = value
            elif keyword == "port":
                port = _int(value, "port")
                if not 0 < port < 65536:
                    raise CommandError("port must be from 1 to 65535")
                server.port = port
            elif keyword == "max":
                server.max_conn = _int(value, "max")
            elif keyword == "hard":
                server.hard = _int(value, "hard")
            elif keyword == "weight":
                server.weight = _int(value, "weight")
            elif keyword == "prio":
                server.prio = _int(value, "prio")
            elif keyword == "blacklist":
                selector.blacklist(index, _int(value, "blacklist"), self.state.clock())
            elif keyword == "acl":
                server.acl = list_number(value)
            else:
                raise CommandError(f"unknown server setting {keyword!r}")
        return ""

    def _cmd_exit(self) -> str:
        if not self.state.config.allow_exit:
            raise CommandError("ignoring command starting with 'exit' (start pen with -X)")
        self.request_exit()
        return ""


class ControlProtocol(asyncio.Protocol):
    """One control connection: read a line, execute it, reply, close.

    A client that ``control_acl``'s list denies is closed before anything
    is read (as the C pen does: it sees EOF, or a reset if it sent already).
    """

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        state = self.controller.state
        access = state.selector.access
        if not access.active:
            return
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):  # a Unix control socket has no address to check
            client = client_of(peer)
            if not access.permits_control(client):
                state.counters.control_denied += 1
                state.debug(f"control connection from {client} denied by access list")
                transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\n" in self.buffer:
            self.answer(self.buffer.split(b"\n", 1)[0])
        elif len(self.buffer) > _LINE_LIMIT:
            self.answer(None)

    def eof_received(self) -> bool:
        self.answer(self.buffer)
        return False

    def answer(self, line: bytes | None) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(answer_line(self.controller.execute, line).encode("utf-8", "replace"))
        transport.close()


def answer_line(execute: Callable[[str], str], line: bytes | None) -> str:
    """The control port's reply to `line` (None: too long), refusals included."""
    if line is None:
        return f"{REFUSED}command line too long\n"
    text = line.decode("utf-8", "replace").strip()
    try:
        return execute(text)
    except PentoolsError as exc:
        return f"{REFUSED}{exc}\n"
    except TypeError:
        return f"{REFUSED}wrong arguments for '{text.split()[0]}'\n"
