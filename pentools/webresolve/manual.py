"""What the man pages of webresolve and splitwr say beyond their click options.

The two commands share one engine, so they share their prose too;
pentools/manpages.py draws the pages.
"""

from pentools.core.manpage import Manual

_DESCRIPTION = (
    "Every byte but the first field (the client address) is written as read, in input "
    "order, whatever the line length or encoding.  IPv4 and IPv6 (ip6.arpa); an "
    "IPv4-mapped IPv6 address is looked up as IPv4.  Fields that are already names, "
    "empty lines and junk pass unchanged and are counted.",
    "At most -n look-ups are in flight, on a few UDP sockets.  The number adapts to the "
    "name server: it grows while answers come back and halves when they go missing.  "
    "Lines are held back (at most -w of them) until their look-ups end, so output starts "
    "before the input ends and memory stays bounded.",
    "A PTR answer is attacker-controlled text: only a strict host name (letters, digits, "
    "hyphens and dots, labels of at most 63 characters, never a name that reads as an "
    "IP address) is written; anything else keeps the address and is counted as refused.",
    "When the log is a file (an argument, or stdin redirected from one) and a query goes "
    "unanswered, a second process scans the rest of the file ahead and hands each new "
    "address over at once, so that the look-ups of addresses that never answer run long "
    "before their lines are due (--no-read-ahead turns this off).",
)

_SIGNALS = (
    ("INT", "Stop and exit with status 130; a --cache file is left as it was."),
    ("PIPE", "A reader that goes away (`| head`) ends the command with status 1, quietly."),
)

_FILES = (
    ("/etc/resolv.conf", "The name servers asked when no --nameserver is given."),
    (
        "--cache FILE",
        "Answers kept between runs (JSON lines), reused until their TTL runs out; "
        "negative answers are kept too, time-outs are not.  Rewritten atomically at the "
        "end; a file that is not a webresolve cache is refused, not overwritten.",
    ),
)

_SEE_ALSO = ("mergelogs(1)", "webstats(1)", "logresolve(8)")

WEBRESOLVE = Manual(
    summary="replace the client addresses of an access log by host names",
    description=_DESCRIPTION,
    signals=_SIGNALS,
    files=_FILES,
    examples=(
        (
            "Resolve a log, confirming names forward, with a cache and statistics:",
            "webresolve -c --cache ~/.cache/webresolve -s - < access_log > access_log.resolved",
        ),
        (
            "Ask a given name server:",
            "zcat access_log.1.gz | webresolve --nameserver 127.0.0.53 > resolved",
        ),
    ),
    see_also=("splitwr(1)", *_SEE_ALSO),
)

SPLITWR = Manual(
    summary="resolve the client addresses of an access-log file to host names",
    description=(
        "splitwr is webresolve(1) under the original suite's name, taking the log as an argument.",
        *_DESCRIPTION,
    ),
    signals=_SIGNALS,
    files=_FILES,
    examples=(
        (
            "Resolve a log file with a persistent cache:",
            "splitwr -c --cache /var/cache/webresolve.cache access_log > access_log.resolved",
        ),
    ),
    see_also=("webresolve(1)", *_SEE_ALSO),
)
