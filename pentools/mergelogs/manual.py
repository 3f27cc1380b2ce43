"""What mergelogs' man page says beyond its click options (pentools/manpages.py draws the page)."""

from pentools.core.manpage import Manual

MANUAL = Manual(
    summary="merge pen's log and the backends' access logs into one access log",
    description=(
        "PENLOG is pen's record log (`pen -l FILE`).  Files ending in .gz are read decompressed.",
        "A line is attributed to a record of the same server and request written "
        "within -j seconds of it, and each record is used for at most one line.  To "
        "choose among several, mergelogs learns each backend's clock offset and spread "
        "from unambiguous matches (keeping the balancer's order within that band) and "
        "each client's User-Agent.  With "
        "pen's extended records (`pen --log-upstream-port`) and backends logging "
        "`%{remote}p` the join is exact.",
        "Every input line is written exactly once, in time order, with its own time "
        "stamp and zone: a line without a record keeps its first field (or gets the "
        "server's address with `--unmatched server`), a line that does not parse is "
        "passed through unchanged.  Memory follows the -j and --reorder windows and "
        "the request rate, not the size of the files.",
    ),
    signals=(
        (
            "INT",
            "Stop and exit with status 130; with -o, the output file is left as it was "
            "(the temporary file is removed).",
        ),
        ("PIPE", "A reader that goes away (`| head`) ends mergelogs with status 1, quietly."),
    ),
    files=(
        (
            "-o FILE",
            "Written as a temporary file `.FILE.*` in the same directory, synced and "
            "renamed over FILE at the end; FILE keeps its mode.",
        ),
    ),
    examples=(
        (
            "Merge two backends' logs of a day:",
            "mergelogs -p pen.log 10.0.0.1:access_log.1 10.0.0.2:access_log.2 > access_log",
        ),
        (
            "Compressed logs, an IPv6 backend, a summary on stderr:",
            "mergelogs --stats -p pen.log.1.gz web1:access_log.1.gz \\\n"
            "    '[2001:db8::2]:access_log.2.gz' -o access_log",
        ),
        (
            "Exact join: pen with --log-upstream-port, Apache logging %{remote}p:",
            "mergelogs --log-format combined_port -p pen.log 10.0.0.1:access_log -o merged",
        ),
    ),
    see_also=("pen(1)", "penlogd(1)", "webresolve(1)", "webstats(1)"),
)
