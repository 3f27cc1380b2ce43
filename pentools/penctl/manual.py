"""What penctl's man page says beyond its click options (pentools/manpages.py draws the page)."""

from pentools.core.manpage import Manual

MANUAL = Manual(
    summary="send a command to pen's control port and print the reply",
    description=(
        "The words of COMMAND are joined by spaces and sent as one line to the control "
        "port of a running pen(1) (`pen -C`), at HOST:PORT, at PORT alone (127.0.0.1, as "
        "for `pen -C`), or at a Unix socket path.  "
        "Everything pen sends back until it closes the connection is the reply, written "
        "to stdout unchanged.  It speaks the C pen's protocol, so it drives the C pen "
        "too.",
        "Commands that read pen's state: `mode`, `servers` (one line per server: "
        "address, port, connections, limits, weight, priority, bytes sent and "
        "received), `recent [SECONDS]` (clients seen lately), `status` (the HTML status "
        "page), `connection N`, `socket FD`, `pid`, `listen`, `control`, `log`, "
        "`web_stats`, `blacklist`, `timeout`, `tracking`, `clients_max`, `conn_max`, "
        "`pending_max`, `idle_timeout`, `debug`, `client_acl`, `control_acl`, `metrics` "
        "(pen's counters as one line of JSON).  `penctl HOST:PORT help` lists every "
        "command pen knows.",
        "Commands that change it: the switches `hash`, `roundrobin`, `stubborn`, "
        "`weight`, `prio`, `http`, `ascii`, `tcp_nodelay` (each undone by `no` in "
        "front); the numbers above followed by a value; `server N KEYWORD VALUE...` "
        "with `address`, `port`, `max`, `hard`, `weight`, `prio`, `blacklist SECONDS` "
        "or `acl A`; `acl N permit|deny ADDRESS [MASK]` and `no acl N`; "
        "`tcp_fastclose up|down|both|off`; `source IP`; `listen [ADDR:]PORT`; "
        "`close N`; `log FILE|HOST:PORT` and `no log`; `web_stats FILE`; "
        "`include FILE`; `write [FILE]` (save the running configuration, by default to "
        "the -F file); `exit` (only when pen was started with -X).",
    ),
    exit_status=(
        "0 when pen carried out the command; 1 when pen refused it (its reply goes to "
        "stderr, so that scripts can tell) or could not be reached; 2 for a usage error."
    ),
    signals=(("INT", "Stop waiting for the reply and exit with status 130."),),
    files=(
        (
            "/path/to/socket",
            "pen's control port when it listens on a Unix socket (`pen -C /path`).",
        ),
    ),
    examples=(
        ("List the servers and their connections:", "penctl localhost:8888 servers"),
        (
            "Take the second server out for ten minutes of maintenance:",
            "penctl localhost:8888 server 1 blacklist 600",
        ),
        (
            "Only the office network may reach the second server:",
            "penctl localhost:8888 acl 2 permit 10.1.0.0 255.255.0.0\n"
            "penctl localhost:8888 server 1 acl 2",
        ),
        ("Save the running configuration to the -F file:", "penctl localhost:8888 write"),
    ),
    see_also=("pen(1)", "webstats(1)"),
)
