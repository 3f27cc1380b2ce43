"""What pen's man page says beyond its click options (pentools/manpages.py draws the page)."""

from pentools.core.manpage import Manual

MANUAL = Manual(
    summary="load balancer for TCP and UDP services, with client tracking",
    description=(
        "pen listens on `[HOST:]PORT` (every address when no host is given) or on a Unix "
        "socket `PATH`, and relays each client connection to one of the servers.  It takes "
        "the command line of the C pen, so existing init scripts work.  Unless `-f` is "
        "given it detaches from the terminal once its sockets are open.",
        "Each SERVER is `HOST[:PORT[:MAXC[:HARD[:WEIGHT[:PRIO]]]]]`, an IPv6 address in "
        "brackets (`[2001:db8::3]:80`).  PORT defaults to the listen port; MAXC caps the "
        "connections of new clients to that server and HARD those of returning clients "
        "(0: no limit); WEIGHT and PRIO are used with `-W` and `--prio`.",
        "Server selection: clients are tracked in a table of `-c` slots (least recently "
        "used slot reused first, forgotten after `-T` seconds when set) and sent back to "
        "the server they used last.  A new client goes to the next server round-robin, "
        "or by a hash of its address (`-h`), by weight (`-W`) or by priority (`--prio`); "
        "`-r` turns tracking off.  A server that does not accept a connection within "
        "`-t` seconds is left out for `-b` seconds, and the client goes on to the next "
        "server; when every server is unavailable it goes to the emergency server "
        "(`-e`), and with `-s` it is closed instead of being sent elsewhere.  `-x` caps "
        "the client connections overall.",
        "Records: with `-l FILE` pen appends one line `CLIENT TIME SERVER REQUEST` per "
        "request that starts a chunk (and for the first chunk of a non-HTTP connection); "
        "with `-l HOST:PORT` it sends the same record as a UDP datagram "
        "`+ CLIENT SERVER REQUEST` to penlogd.  These are the C pen's formats, read by "
        "mergelogs(1) and penlogd(1); `--log-upstream-port` writes the server as "
        "`SERVER#PORT` (the local port of the connection to the server) so that a "
        "backend logging `%{remote}p` is joined exactly.",
        "HTTP: with `-H` the client address is appended to the X-Forwarded-For header of "
        "each request (`--xff-replace` removes a header the client sent); "
        "`--proxy-protocol 1|2` sends a PROXY protocol header to the servers instead.",
        "TLS: `-E` terminates TLS with the certificate (and the key, unless `-K` names "
        "it); `-R` requires a client certificate signed by a CA of `-G` or `-A`.  Pen "
        "tries a handshake with itself at start, so a protocol the local OpenSSL refuses "
        "is an error at start, not at the first client.",
        "The control port (`-C`) takes the commands of penctl(1), one per connection; "
        "the same commands can be given with `-o` and in the `-F` file.  It listens on "
        "127.0.0.1 unless a host is given, and pen refuses to open it while running as "
        "root without `-u`.  Access lists (`acl N permit|deny ADDRESS [MASK]`, "
        "`client_acl N`, `control_acl N`, `server N acl A`) decide who may connect, who "
        "may use the control port and which clients a server takes.",
        "Every core: `--workers N` runs N processes on the listen address, each a whole "
        "pen with its own state, under a supervisor that owns the control port, the "
        "metrics port, the PID file and the signals.  While a choice depends on the "
        "client (tracking, `-h`, `--conn-max-per-client`) each client address always "
        "reaches the same worker, so those work as with one process; with `-r` the "
        "kernel spreads connections over the workers.  penctl commands apply to every "
        "worker; `servers`, `status`, `recent` and the metrics answer for the whole pen; "
        "a server one worker blacklists is left out by every worker within a second; "
        "each worker appends its records to the `-l` file in whole lines.  A worker "
        "that dies is started again and counted.  Not with a Unix socket, and "
        "`listen ADDRESS` is refused.",
    ),
    signals=(
        (
            "HUP",
            "Reopen the log file (after it was rotated) and read the -F file again "
            "(in every worker).",
        ),
        (
            "USR1",
            "Write the HTML status page to the -w file; without -w, write the number "
            "of connections and the server table (as `penctl servers` shows it) to stderr; "
            "with --workers, for the whole pen.",
        ),
        (
            "TERM, INT",
            "Stop accepting, let open connections finish for --drain seconds (in every "
            "worker), remove the PID file and exit 0.",
        ),
    ),
    files=(
        ("-l FILE", "The records, one line per request; reopened on HUP."),
        ("-p FILE", "The process id, written whole once pen runs; removed at exit."),
        ("-F FILE", "Control commands read at start and on HUP; written by `write`."),
        ("-w FILE", "The HTML status page, written on USR1."),
        (
            "share/pentools/systemd/pen@.service",
            "Under the install prefix: a systemd template unit that runs `pen -f` with "
            "the arguments of /etc/default/pen-INSTANCE.",
        ),
    ),
    examples=(
        (
            "Balance port 80 over three web servers, records to a file, control port "
            "8888, running as www-data once the sockets are open:",
            "pen -l /var/log/pen/pen.log -p /run/pen.pid -C 8888 -u www-data \\\n"
            "    80 www1:8080 www2:8080:100 [2001:db8::3]:80",
        ),
        (
            "Send the records to penlogd on loghost and add X-Forwarded-For:",
            "pen -l loghost:10000 -H 80 10.0.0.1 10.0.0.2",
        ),
        (
            "Exact records for backends that log %{remote}p:",
            "pen --log-upstream-port -l loghost:10000 80 10.0.0.1 10.0.0.2",
        ),
        (
            "Terminate TLS on 443 and balance by client address:",
            "pen -E /etc/pen/site.pem -h 443 10.0.0.1:80 10.0.0.2:80",
        ),
    ),
    see_also=("penctl(1)", "penlogd(1)", "mergelogs(1)", "webstats(1)", "penlog(1)"),
)
