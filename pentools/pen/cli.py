"""pen's command line: the original's single letters, into one frozen PenConfig."""

from __future__ import annotations

import click

from pentools.core.addresses import parse_host_port
from pentools.core.cli import run_command, tool_logger, version_option
from pentools.core.errors import ConfigError
from pentools.core.metrics import parse_metrics_address
from pentools.pen import config as cfg

_COMMANDS_HELP = "penctl command to run at start (repeatable), e.g. -o 'server 0 weight 2'."


def _emergency(text: str | None, default_port: int) -> cfg.ServerSpec | None:
    return None if text is None else cfg.parse_server(text, default_port)


@click.command(
    context_settings={"help_option_names": ["--help"], "max_content_width": 100},
    epilog="Servers: HOST[:PORT[:MAXC[:HARD[:WEIGHT[:PRIO]]]]], [IPv6]:PORT:... "
    "PORT defaults to the listen port; MAXC is the soft connection limit for new clients, "
    "HARD the limit for returning ones (0 = none).  Signals: HUP reopens the log and "
    "rereads -F, USR1 writes statistics, TERM stops accepting, lets connections finish "
    "and exits.",
)
@version_option()
@click.option(
    "-b",
    "blacklist",
    type=click.IntRange(0),
    default=cfg.DEFAULT_BLACKLIST,
    show_default=True,
    help="Seconds a server that failed to connect is left out.",
)
@click.option(
    "-c",
    "clients_max",
    type=click.IntRange(0),
    default=cfg.DEFAULT_CLIENTS,
    show_default=True,
    help="Slots in the client tracking table.",
)
@click.option(
    "-e",
    "emergency",
    metavar="HOST:PORT",
    help="Emergency server, used when every other server is unavailable.",
)
@click.option(
    "-t",
    "timeout",
    type=click.FloatRange(0.001),
    default=cfg.DEFAULT_TIMEOUT,
    show_default=True,
    help="Connect timeout in seconds.",
)
@click.option(
    "-x",
    "conn_max",
    type=click.IntRange(1),
    default=cfg.DEFAULT_CONNECTIONS,
    show_default=True,
    help="Maximum simultaneous client connections.",
)
@click.option(
    "-j", "chroot", metavar="DIR", help="chroot to DIR after opening sockets (-l, -p, -F inside)."
)
@click.option(
    "-u", "user", metavar="USER", help="Run as USER after opening sockets; -l and -p as USER."
)
@click.option(
    "-F", "cfgfile", metavar="FILE", help="File of penctl commands, read at start and on HUP."
)
@click.option(
    "-l",
    "log",
    metavar="FILE|HOST:PORT",
    help="Write records to FILE, or send them to penlogd at HOST:PORT.",
)
@click.option("-p", "pidfile", metavar="FILE", help="Write the process id to FILE.")
@click.option("-w", "webstats", metavar="FILE", help="HTML status page written on USR1.")
@click.option(
    "-C",
    "control",
    metavar="[HOST:]PORT",
    help="Control port for penctl (127.0.0.1 unless a host is given).",
)
@click.option(
    "-T",
    "tracking",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Seconds a client is remembered (0 = until its slot is reused).",
)
@click.option("-U", "udp", is_flag=True, help="Balance UDP instead of TCP.")
@click.option(
    "-H",
    "http",
    is_flag=True,
    help="Append the client address to X-Forwarded-For in HTTP requests.",
)
@click.option("-W", "weight", is_flag=True, help="Weight-based server selection.")
@click.option("-X", "allow_exit", is_flag=True, help="Enable the control command 'exit'.")
@click.option("-a", "ascii_dumps", is_flag=True, help="With -dd, dump bytes in ASCII, not hex.")
@click.option("-d", "debug", count=True, help="Debug messages on stderr; -dd dumps relayed bytes.")
@click.option("-f", "foreground", is_flag=True, help="Stay in the foreground.")
@click.option("-h", "hash_", is_flag=True, help="Hash of the client address picks the server.")
@click.option("-r", "roundrobin", is_flag=True, help="Round-robin, no client tracking.")
@click.option(
    "-s", "stubborn", is_flag=True, help="If the first choice is unavailable, close the client."
)
@click.option("-E", "certfile", metavar="PEM", help="Terminate TLS with this certificate.")
@click.option("-K", "keyfile", metavar="PEM", help="Key for -E (default: in the certificate).")
@click.option(
    "-G", "cacertfile", metavar="PEM", help="CA certificate(s) that client certificates must match."
)
@click.option(
    "-A",
    "cacertdir",
    metavar="DIR",
    help="Directory of CA certificates in hashed format (openssl rehash DIR).",
)
@click.option(
    "-R",
    "require_peer_cert",
    is_flag=True,
    help="Require a client certificate signed by a CA of -G/-A (system CAs without them); "
    "without -R no certificate is asked for, as in the original.",
)
@click.option(
    "-L",
    "tls_protocol",
    type=click.Choice([*cfg.TLS_PROTOCOLS, *cfg.RETIRED_PROTOCOLS]),
    help="TLS version: ssl23 (default) negotiates the best the local OpenSSL allows; "
    "tls1, tls1.1, tls1.2, tls1.3 allow that version only (tls1.1 and up are ours; "
    "OpenSSL's security level usually refuses tls1 and tls1.1); ssl2 and ssl3 are gone.",
)
@click.option(
    "-Z",
    "tls_compat",
    is_flag=True,
    help="SSL compatibility mode: OpenSSL's bug workarounds (SSL_OP_ALL); Python's ssl "
    "already sets them, -Z sets them explicitly.",
)
@click.option(
    "-S",
    "old_servers",
    type=click.IntRange(0),
    hidden=True,
    help="Number of servers (obsolete, ignored).",
)
@click.option(
    "-q",
    "backlog",
    metavar="N",
    type=click.IntRange(1),
    default=cfg.DEFAULT_BACKLOG,
    show_default=True,
    help="Listen queue length (the original's default is 500; the kernel caps it "
    "at net.core.somaxconn).",
)
@click.option(
    "-m",
    "multi_accept",
    metavar="N",
    type=click.IntRange(1),
    default=cfg.DEFAULT_MULTI_ACCEPT,
    show_default=True,
    help="Connections accepted per wake-up, plain TCP (the original's default is 100).",
)
@click.option(
    "-P",
    "use_poll",
    is_flag=True,
    help="Accepted for compatibility (the original's poll()); "
    "our pen always uses epoll through its event loop.",
)
@click.option("-o", "options", multiple=True, metavar="COMMAND", help=_COMMANDS_HELP)
@click.option("-O", "more_options", multiple=True, metavar="COMMAND", help=_COMMANDS_HELP)
@click.option("--prio", is_flag=True, help="Priority-based server selection.")
@click.option(
    "--xff-replace",
    is_flag=True,
    help="With -H, replace a client-sent X-Forwarded-For instead of appending.",
)
@click.option(
    "--proxy-protocol",
    type=click.Choice(["1", "2"]),
    help="Send a PROXY protocol v1/v2 header to the backends.",
)
@click.option(
    "--log-upstream-port",
    is_flag=True,
    help="Add the upstream local port to records (pentools' extended format).",
)
@click.option(
    "--drain",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Seconds open connections may finish after TERM.",
)
@click.option(
    "--queue-at-conn-max",
    is_flag=True,
    help="At the -x cap, let new clients wait in the listen queue (up to about -t "
    "seconds) instead of refusing them; plain TCP only.",
)
@click.option(
    "--conn-max-per-client",
    metavar="N",
    type=click.IntRange(0),
    default=0,
    help="Refuse a client address's connections beyond N open ones (0: no cap).",
)
@click.option(
    "--first-byte-timeout",
    metavar="SECONDS",
    type=click.IntRange(0),
    default=0,
    help="Once the -x cap is reached, close connections whose client has sent nothing "
    "for SECONDS (0: never).",
)
@click.option(
    "--metrics",
    metavar="[HOST:]PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (127.0.0.1 unless a host is given).",
)
@click.option(
    "--workers",
    metavar="N",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Processes serving the listen address (one core each); a client's connections "
    "always reach the same one.",
)
@click.argument("listen", metavar="[HOST:]PORT|PATH")
@click.argument("servers", nargs=-1, metavar="SERVER...")
def command(**options: object) -> None:
    """pen: TCP/UDP load balancer with client tracking (compatible with the C pen)."""
    config = build_config(options)
    from pentools.pen.workers import run

    run(config)


def build_config(options: dict[str, object]) -> cfg.PenConfig:
    """The frozen configuration for the parsed options (raises PentoolsError)."""
    listen = cfg.parse_listen(str(options["listen"]))
    servers = tuple(cfg.parse_server(text, listen.port) for text in options["servers"])  # type: ignore[attr-defined]
    control = None
    if options["control"]:
        control = cfg.parse_listen(str(options["control"]), default_host="127.0.0.1")
    log = cfg.parse_log_target(str(options["log"])) if options["log"] else None
    emergency = options["emergency"]
    if emergency is not None:
        parse_host_port(str(emergency), default_port=listen.port or None)
    commands = (*options["options"], *options["more_options"])  # type: ignore[misc]
    metrics = options["metrics"]
    _check_tls_options(options)
    _check_switches(options)
    return cfg.PenConfig(
        listen=listen,
        servers=servers,
        emergency=_emergency(emergency, listen.port),  # type: ignore[arg-type]
        blacklist=options["blacklist"],  # type: ignore[arg-type]
        clients_max=options["clients_max"],  # type: ignore[arg-type]
        conn_max=options["conn_max"],  # type: ignore[arg-type]
        timeout=options["timeout"],  # type: ignore[arg-type]
        tracking=options["tracking"],  # type: ignore[arg-type]
        roundrobin=bool(options["roundrobin"]),
        hash=bool(options["hash_"]),
        stubborn=bool(options["stubborn"]),
        weight=bool(options["weight"]),
        prio=bool(options["prio"]),
        http=bool(options["http"]),
        xff_replace=bool(options["xff_replace"]),
        proxy_protocol=int(options["proxy_protocol"] or 0),  # type: ignore[call-overload]
        udp=bool(options["udp"]),
        foreground=bool(options["foreground"]),
        debug=options["debug"],  # type: ignore[arg-type]
        ascii_dumps=bool(options["ascii_dumps"]),
        log=log,
        log_upstream_port=bool(options["log_upstream_port"]),
        pidfile=options["pidfile"],  # type: ignore[arg-type]
        webstats=options["webstats"],  # type: ignore[arg-type]
        control=control,
        allow_exit=bool(options["allow_exit"]),
        cfgfile=options["cfgfile"],  # type: ignore[arg-type]
        user=options["user"],  # type: ignore[arg-type]
        chroot=options["chroot"],  # type: ignore[arg-type]
        certfile=options["certfile"],  # type: ignore[arg-type]
        keyfile=options["keyfile"],  # type: ignore[arg-type]
        cacertfile=options["cacertfile"],  # type: ignore[arg-type]
        cacertdir=options["cacertdir"],  # type: ignore[arg-type]
        require_peer_cert=bool(options["require_peer_cert"]),
        tls_protocol=cfg.parse_tls_protocol(str(options["tls_protocol"] or "ssl23")),
        tls_compat=bool(options["tls_compat"]),
        backlog=options["backlog"],  # type: ignore[arg-type]
        multi_accept=options["multi_accept"],  # type: ignore[arg-type]
        commands=tuple(str(c) for c in commands),
        drain_seconds=options["drain"],  # type: ignore[arg-type]
        queue_at_conn_max=bool(options["queue_at_conn_max"]),
        conn_max_per_client=options["conn_max_per_client"],  # type: ignore[arg-type]
        first_byte_timeout=options["first_byte_timeout"],  # type: ignore[arg-type]
        metrics=parse_metrics_address(str(metrics)) if metrics else None,
        workers=options["workers"],  # type: ignore[arg-type]
    )


#: The options that only mean something with -E, by the letter errors name them with.
_TLS_ONLY = {
    "keyfile": "-K",
    "cacertfile": "-G",
    "cacertdir": "-A",
    "require_peer_cert": "-R",
    "tls_protocol": "-L",
    "tls_compat": "-Z",
}


def _check_tls_options(options: dict[str, object]) -> None:
    """TLS options need -E, and -E needs TCP: say so instead of ignoring them."""
    if options["certfile"] is None:
        for name, letter in _TLS_ONLY.items():
            value = options[name]
            if value:
                text = letter if value is True else f"{letter} {value}"
                raise ConfigError(text, "needs -E (the certificate to serve TLS with)")
    elif options["udp"]:
        raise ConfigError(f"-E {options['certfile']}", "TLS needs TCP; -U balances UDP")


#: Switches that contradict each other: pen refuses them together (exit 2).
#: -h, -W and --prio each pick the first server; the selector would let
#: --prio silently override -W, and either override -h.
_CONTRADICTIONS = (
    ("weight", "prio", "-W and --prio", "both choose the server; give one"),
    ("hash_", "weight", "-h and -W", "both choose the server; give one"),
    ("hash_", "prio", "-h and --prio", "both choose the server; give one"),
    ("udp", "http", "-U and -H", "-H edits HTTP requests, which need TCP"),
    ("udp", "proxy_protocol", "-U and --proxy-protocol", "the PROXY header needs TCP"),
)
#: Switches that mean nothing without another: (switch, needed, message).
_NEEDS = (("xff_replace", "http", "--xff-replace needs -H"),)
#: -r with a switch that chooses the server: valid (that choice, without client
#: tracking), as in the C pen, but not round-robin: pen says so.
_CHOOSERS = (("hash_", "-h"), ("weight", "-W"), ("prio", "--prio"))


def _check_switches(options: dict[str, object]) -> None:
    """Refuse contradictory switches (exit 2), warn about surprising ones.

    The C pen takes all of these without a word.
    """
    for first, second, letters, reason in _CONTRADICTIONS:
        if options[first] and options[second]:
            raise click.UsageError(f"{letters}: {reason}")
    for switch, needed, message in _NEEDS:
        if options[switch] and not options[needed]:
            raise click.UsageError(message)
    if options["workers"] != 1 and cfg.parse_listen(str(options["listen"])).path is not None:
        raise click.UsageError("--workers needs a TCP or UDP port: a Unix socket has one listener")
    if not options["servers"] and options["emergency"] is None:
        raise click.UsageError(
            "no SERVER given: pen would refuse every client (servers cannot be added later)"
        )
    warn = tool_logger("pen").warning
    if options["roundrobin"]:
        for name, letter in _CHOOSERS:
            if options[name]:
                warn(
                    f"warning: -r with {letter}: {letter} chooses each connection's server "
                    "(not round-robin); -r only turns client tracking off"
                )
        if options["tracking"]:
            warn("warning: -T has no effect with -r (no client tracking)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and an exit status, never a traceback."""
    run_command(command, "pen", argv)
