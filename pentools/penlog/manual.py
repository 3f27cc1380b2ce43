"""What penlog's man page says beyond its click options (pentools/manpages.py draws the page)."""

from pentools.core.manpage import Manual

MANUAL = Manual(
    summary="send access-log lines from stdin to penlogd over UDP",
    description=(
        "penlog is meant for a web server's log pipe (Apache's `CustomLog \"|...\"`): each "
        "line read becomes one UDP datagram, without its line break, which penlogd(1) joins "
        "with pen's records.  Without MY_IP the kernel picks the source address, and that "
        "must then be the address pen(1) was given for this server.",
        "penlog never blocks the web server: every send is non-blocking, and a penlogd "
        "that is down, a full socket buffer or an ICMP error only counts the line as "
        "dropped.  A line longer than the UDP limit (65507 bytes over IPv4, 65527 over "
        "IPv6) is cut there and counted as truncated.",
    ),
    signals=(
        (
            "TERM, INT",
            "Send what was read, then exit 0 (with --stats, after writing the counts).",
        ),
    ),
    files=(
        (
            "share/pentools/apache/penlog.conf",
            "Under the install prefix: the Apache `CustomLog` and `LogFormat` lines, "
            "including the exact-join format with `%{remote}p`.",
        ),
    ),
    examples=(
        (
            "In the configuration of the web server 10.0.0.1 (pen was given 10.0.0.1):",
            'CustomLog "|/usr/local/bin/penlog loghost 10000 10.0.0.1" combined',
        ),
        (
            "Try it by hand and see what became of the lines:",
            "tail -n 100 access_log | penlog --stats 127.0.0.1 10000",
        ),
    ),
    see_also=("penlogd(1)", "pen(1)", "mergelogs(1)"),
)
