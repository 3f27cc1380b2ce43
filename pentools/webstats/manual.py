"""What webstats' man page says beyond its click options (pentools/manpages.py draws the page)."""

from pentools.core.manpage import Manual

MANUAL = Manual(
    summary="statistics of access logs and pen's status, as static HTML pages",
    description=(
        "`webstats report` counts as GoAccess does: a line whose time, status or shape "
        "does not parse is failed; a request is the method, the decoded URL and the "
        "protocol; a unique visitor is a distinct day, address and user agent among "
        "responses that are not 4xx; bandwidth sums the sizes of every valid line.  "
        "Days and hours are those logged, time zones kept.  The page shows totals, "
        "requests, visitors and bytes per day and per hour, status codes, top URLs, "
        "static files, 404s, hosts, referrers, browsers and operating systems.",
        "`webstats pen` draws pen(1)'s status page (servers, clients, connections) from "
        "its control port, or as the original cron or CGI script did, by sending USR1 "
        "to the PID in pen's PID file and reading the page pen writes to its -w file.  "
        "It works with the C pen and with pentools' pen.",
        "Every value taken from a log or from pen is HTML-escaped; the pages hold no "
        "script and load nothing (inline CSS and SVG, a Content-Security-Policy of "
        "`default-src 'none'`).",
    ),
    signals=(
        (
            "INT",
            "Stop and exit with status 130; pages not yet written are left as they were.",
        ),
    ),
    files=(
        (
            "-o FILE, --json FILE",
            "Written as a temporary file in the same directory and renamed over FILE, so "
            "that a web server never serves half a page; FILE keeps its mode.",
        ),
        ("--pidfile FILE, --webfile FILE", "pen's -p and -w files, for `webstats pen`."),
    ),
    examples=(
        (
            "A nightly report of the current and rotated logs, HTML and JSON:",
            "webstats report /var/log/apache2/access.log /var/log/apache2/access.log.*.gz \\\n"
            "    -o /var/www/stats/index.html --json /var/www/stats/stats.json",
        ),
        (
            "One week, of logs in a virtual-host format:",
            "webstats report vhosts.log -f vhost_common --from 2026-03-01 --to 2026-03-07 "
            "-o week.html",
        ),
        (
            "pen's status page from its control port, or as a CGI from its -w file:",
            "webstats pen --control 127.0.0.1:8888 -o /var/www/stats/pen.html\n"
            "webstats pen --pidfile /run/pen.pid --webfile /tmp/pen.html --cgi",
        ),
    ),
    see_also=("pen(1)", "penctl(1)", "mergelogs(1)", "webresolve(1)", "goaccess(1)"),
)
