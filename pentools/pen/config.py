"""pen's configuration: what the command line says, validated, frozen.

Two-phase like the rest of pentools: parsing here only checks text; the
server (`pentools.pen.server`) opens sockets and files.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from pentools.core.addresses import HostPort, parse_host_port, parse_port, split_listen_address
from pentools.core.errors import ConfigError

#: The original's defaults (pen 0.34.1 man page; SPEC §5).
DEFAULT_CLIENTS = 2048
DEFAULT_CONNECTIONS = 500
DEFAULT_BLACKLIST = 30
DEFAULT_TIMEOUT = 5
DEFAULT_PENDING_MAX = 100
#: Our own defaults where the original's differ (it uses 500 and 100): a longer
#: listen queue costs nothing, a shorter accept batch keeps the loop fair.
DEFAULT_BACKLOG = 1024
DEFAULT_MULTI_ACCEPT = 64

#: -L: the original's protocol names and ours, and the one TLS version each
#: allows (None: whatever the local OpenSSL negotiates, TLS 1.2 and up today).
TLS_PROTOCOLS: dict[str, ssl.TLSVersion | None] = {
    "ssl23": None,
    "tls1": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}
#: -L names the original knows for protocols no current OpenSSL speaks.
RETIRED_PROTOCOLS = {"ssl2": "SSL 2.0", "ssl3": "SSL 3.0"}


@dataclass(frozen=True)
class ServerSpec:
    """One backend ``h[:p[:maxc[:hard[:weight[:prio]]]]]`` (0 = unlimited / unset)."""

    host: str
    port: int
    max_conn: int = 0
    hard: int = 0
    weight: int = 0
    prio: int = 0


@dataclass(frozen=True)
class ListenSpec:
    """Where to listen: a TCP host and port (host "" = every address) or a Unix path."""

    host: str = ""
    port: int = 0
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        return str(HostPort(self.host or "0.0.0.0", self.port))


@dataclass(frozen=True)
class LogTarget:
    """``-l``: a local file (path) or penlogd's UDP address (address)."""

    path: str | None = None
    address: HostPort | None = None

    def __str__(self) -> str:
        """As ``-l`` takes it (and ``write`` saves it)."""
        return self.path if self.path is not None else str(self.address)


@dataclass(frozen=True)
class PenConfig:
    """Everything pen is told at start; runtime changes (penctl) live in the balancer."""

    listen: ListenSpec
    servers: tuple[ServerSpec, ...]
    emergency: ServerSpec | None = None
    blacklist: int = DEFAULT_BLACKLIST
    clients_max: int = DEFAULT_CLIENTS
    conn_max: int = DEFAULT_CONNECTIONS
    timeout: float = DEFAULT_TIMEOUT
    tracking: int = 0
    roundrobin: bool = False
    hash: bool = False
    stubborn: bool = False
    weight: bool = False
    prio: bool = False
    http: bool = False
    xff_replace: bool = False
    proxy_protocol: int = 0
    udp: bool = False
    foreground: bool = False
    debug: int = 0
    ascii_dumps: bool = False
    log: LogTarget | None = None
    log_upstream_port: bool = False
    pidfile: str | None = None
    webstats: str | None = None
    control: ListenSpec | None = None
    allow_exit: bool = False
    cfgfile: str | None = None
    user: str | None = None
    chroot: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    cacertfile: str | None = None
    cacertdir: str | None = None
    require_peer_cert: bool = False
    tls_protocol: str = "ssl23"
    tls_compat: bool = False
    backlog: int = DEFAULT_BACKLOG
    multi_accept: int = DEFAULT_MULTI_ACCEPT
    commands: tuple[str, ...] = field(default_factory=tuple)
    drain_seconds: float = 10.0
    #: No lock-out (issue 14): at the -x cap new clients wait in the listen
    #: queue; at most this many connections per client address (0: no cap);
    #: at the cap, close connections that sent nothing for this long (0: never).
    queue_at_conn_max: bool = False
    conn_max_per_client: int = 0
    first_byte_timeout: int = 0
    #: ``--metrics``: where Prometheus scrapes pen's counters.
    metrics: HostPort | None = None
    #: ``--workers``: processes serving the listen address (1: pen is one process).
    workers: int = 1


def _number(text: str, what: str) -> int:
    if not text.isdigit():
        raise ConfigError(text, f"{what} must be a non-negative whole number")
    return int(text)


def parse_listen(text: str, *, default_host: str = "") -> ListenSpec:
    """``[host:]port``, ``[v6]:port`` or a Unix socket path (anything with a ``/``)."""
    path = split_listen_address(text)
    if path is not None:
        return ListenSpec(path=path)
    address = parse_host_port(text, default_host=default_host)
    return ListenSpec(address.host, address.port)


def parse_server(text: str, default_port: int) -> ServerSpec:
    """``h[:p[:maxc[:hard[:weight[:prio]]]]]``; an IPv6 host goes in brackets."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(text, "expected [IPv6-address]:port:...")
        fields = rest[1:].split(":") if rest else []
    else:
        host, *fields = text.split(":")
    if not host:
        raise ConfigError(text, "a server needs a host")
    if len(fields) > 5:
        raise ConfigError(text, "expected host[:port[:maxc[:hard[:weight[:prio]]]]]")
    try:
        port = parse_port(fields[0]) if fields and fields[0] else default_port
    except ValueError as exc:
        raise ConfigError(text, str(exc)) from None
    if not port:
        raise ConfigError(text, "a port is required (the listen address has none)")
    numbers = [_number(value, "maxc, hard, weight and prio") for value in fields[1:]]
    return ServerSpec(host, port, *numbers)


def parse_log_target(text: str) -> LogTarget:
    """``-l``: ``HOST:PORT`` (or ``[v6]:PORT``) sends to penlogd, anything else is a file.

    Like the original, a value with a colon and no slash is a network address.
    """
    if ":" in text and "/" not in text:
        try:
            return LogTarget(address=parse_host_port(text))
        except ValueError as exc:
            raise ConfigError(text, str(exc)) from None
    return LogTarget(path=text)


def parse_tls_protocol(name: str) -> str:
    """``-L``: a name of `TLS_PROTOCOLS`; the SSL names get a reason, not a silent downgrade."""
    if name in RETIRED_PROTOCOLS:
        raise ConfigError(
            f"-L {name}",
            f"{RETIRED_PROTOCOLS[name]} is insecure and no current OpenSSL supports it; "
            "use ssl23 (the default) or tls1.2",
        )
    if name not in TLS_PROTOCOLS:
        raise ConfigError(f"-L {name}", f"expected one of {', '.join(TLS_PROTOCOLS)}")
    return name
