"""What penlogd's man page says beyond its click options (pentools/manpages.py draws the page)."""

from pentools.core.manpage import Manual

MANUAL = Manual(
    summary="join pen's records with the web servers' log lines, live, into one access log",
    description=(
        "A datagram that starts with `+` is a balancer record from pen(1) (`pen -l "
        "HOST:PORT`); any other is an access-log line from a web server's penlog(1), and "
        "the web server is its source address.  Each line is written exactly once, its "
        "first field replaced by the client of the record with the same server and "
        "request nearest in arrival time; a record is used by one line only.  A line "
        "whose record has not arrived yet waits up to --wait seconds for it; a line no "
        "record matches is written unchanged.  Junk and embedded line breaks are escaped, "
        "never written as a new line.",
        "nginx, which cannot pipe its log, sends it as syslog datagrams "
        "(`access_log syslog:server=loghost:10000,tag=web1 combined;`): a datagram that "
        "starts with a complete RFC 3164 header (with or without the host name) or RFC "
        "5424 header is stripped of it and joined like a penlog line; the web server is "
        "the datagram's source address, or the address given for its tag with --tag "
        "NAME=ADDRESS (NAT, containers).  Anything else, even a line that starts with "
        "`<`, is a plain log line.",
        "With pen's extended records (`pen --log-upstream-port`, the server written as "
        "`SERVER#PORT`) and backends logging `%{remote}p` (`--log-format common_port` or "
        "`combined_port`) the join is exact: the upstream port names the connection.",
        "penlogd listens on every IPv6 and IPv4 address unless -a is given, and asks for "
        "a large receive buffer (--rcvbuf) so that bursts are not lost while it is busy.  "
        "Unless -f is given it detaches once the socket is bound and the log open; it "
        "then reports to syslog.  As root with -u it switches to USER after that, and "
        "with -j it runs chrooted.",
    ),
    signals=(
        (
            "HUP",
            "Close and reopen LOGFILE: rotate with `mv access_log access_log.1` and then "
            "HUP; no line is lost.",
        ),
        (
            "TERM, INT",
            "Read what is still in the socket, write every line received, remove the "
            "PID file and exit 0.",
        ),
        (
            "USR1",
            "Write the counters (received, records, refused, lines, matched, waited, "
            "unmatched, malformed, expired) to stderr, or to syslog when detached; with "
            "--stats-json, also replace that file with them as JSON (again at exit).",
        ),
    ),
    files=(
        ("-l LOGFILE", "The joined access log, appended to; reopened on HUP."),
        ("-p PIDFILE", "The process id; removed at exit."),
        (
            "--metrics [HOST:]PORT",
            "Prometheus text at http://HOST:PORT/metrics (127.0.0.1 unless HOST is "
            "given): datagrams, lines by result, records, the receive queue and the "
            "kernel's drops.",
        ),
        (
            "share/pentools/systemd/penlogd.service",
            "Under the install prefix: a systemd unit running `penlogd -f` with the "
            "settings of /etc/default/penlogd.",
        ),
        (
            "share/pentools/logrotate/pentools",
            "Under the install prefix: a logrotate snippet that rotates the logs of pen "
            "and penlogd and sends HUP through their PID files.",
        ),
        (
            "share/pentools/nginx/penlogd.conf",
            "Under the install prefix: nginx's `access_log syslog:` lines that send the "
            "log to penlogd.",
        ),
    ),
    examples=(
        (
            "On the log host, detached, with a PID file for log rotation:",
            "penlogd -l /var/log/penlogd/access_log -p /run/penlogd.pid 10000",
        ),
        (
            "Under systemd, records accepted only from the balancer 10.0.0.5:",
            "penlogd -f --balancer 10.0.0.5 -l /var/log/penlogd/access_log 10000",
        ),
        (
            "The other ends: the balancer, and each web server's Apache:",
            "pen -l loghost:10000 80 10.0.0.1 10.0.0.2\n"
            'CustomLog "|penlog loghost 10000 10.0.0.1" common',
        ),
        (
            "Rotate the log by hand:",
            "mv /var/log/penlogd/access_log /var/log/penlogd/access_log.1\n"
            'kill -HUP "$(cat /run/penlogd.pid)"',
        ),
    ),
    see_also=("penlog(1)", "pen(1)", "mergelogs(1)", "logrotate(8)"),
)
