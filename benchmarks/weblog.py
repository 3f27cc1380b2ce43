"""A deterministic combined-format access log for statistics and DNS benchmarks.

What /work/shared/WORKLOADS.md asks of "Access logs for statistics and DNS":
tens of thousands of clients (IPv4 and some IPv6) with Zipf frequency, a
Zipf catalogue of URLs (static and dynamic, query strings), a status mix,
sizes logged as ``-``, Apache-escaped quotes, hostile markup in URLs,
referrers and user agents, a few malformed lines, several days of time.

Everything comes from one seeded ``random.Random``: the same arguments give
the same bytes.  Lines are produced one by one (streaming), so a log of
millions of lines needs no memory.

    python -m benchmarks.weblog --lines 1000000 --clients 50000 -o big.log
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: Where generated logs are kept between runs (gitignored).
WORKLOADS = Path(__file__).resolve().parent / "workloads"

#: Where the log starts (UTC) and the zone its times are written in.
START = 1_772_323_200  # 2026-03-01 00:00:00 UTC
ZONE = "+0100"
_ZONE_OFFSET = 3600

#: One malformed line in this many (and at least a few in any log of 1000+).
MALFORMED_EVERY = 20_000

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: Payloads that must be shown as text by any page built from the log.
HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(document.domain)>',
    "javascript:alert(1)",
    "'><svg onload=alert(1)>",
    "</title><script>document.body.innerHTML=''</script>",
    "<a href=\"javascript:alert('x')\">click</a>",
    "<iframe src=//evil.example/>",
    '\\"; alert(1); //',
)

_STATIC_EXT = ("css", "js", "png", "jpg", "gif", "ico", "svg", "woff2", "pdf", "txt")
_DYNAMIC = ("index.php", "search", "api/items", "login", "cart", "article", "view.cgi", "")
_WORDS = ("news", "docs", "blog", "shop", "about", "files", "media", "help", "en", "fr", "img")

_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{v2} Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v2} like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.{v2} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
)
_BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.31.0",
    "-",
)
_SITES = (
    "https://www.google.com/",
    "https://www.bing.com/search?q=pen+load+balancer",
    "https://duckduckgo.com/",
    "https://news.ycombinator.com/item?id=4242",
    "https://t.co/abc123",
    "https://example.org/links.html",
)

_STATUSES = (200, 304, 301, 302, 404, 403, 500, 206, 400, 503, 201, 204)
_STATUS_WEIGHTS = (740, 80, 20, 25, 80, 10, 10, 8, 5, 4, 4, 4)
_METHODS = ("GET", "POST", "HEAD", "OPTIONS", "PUT")
_METHOD_WEIGHTS = (900, 60, 30, 5, 5)
_PROTOCOLS = ("HTTP/1.1", "HTTP/1.0", "HTTP/2.0")
_PROTOCOL_WEIGHTS = (80, 5, 15)


def escape(text: str) -> str:
    """Text as Apache writes it into a quoted log field (``\\"``, ``\\\\``, ``\\xhh``)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(f"\\x{ord(char):02x}")
    return "".join(out)


def _zipf_cumulative(count: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, count + 1)))


_FIRST_OCTETS = [n for n in range(1, 224) if n not in (10, 127, 169, 172, 192)]


def _address(rng: random.Random, seen: set[str]) -> str:
    while True:
        if rng.random() < 0.12:
            groups = [rng.randrange(0x10000) for _ in range(4)]
            address = "2001:db8:{:x}:{:x}::{:x}:{:x}".format(*groups)
        else:
            first = rng.choice(_FIRST_OCTETS)
            address = f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if address not in seen:
            seen.add(address)
            return address


def _user_agent(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.004:
        return rng.choice(HOSTILE)
    if roll < 0.12:
        return rng.choice(_BOTS)
    return rng.choice(_BROWSERS).format(v=rng.randrange(110, 126), v2=rng.randrange(0, 6))


def _catalogue(rng: random.Random, size: int) -> list[tuple[str, int]]:
    """URLs with a typical response size each, most popular first."""
    urls = ["/", "/favicon.ico", "/robots.txt", "/css/site.css", "/js/app.js"]
    while len(urls) < size:
        depth = rng.randrange(1, 4)
        path = "/" + "/".join(rng.choice(_WORDS) + str(rng.randrange(50)) for _ in range(depth))
        roll = rng.random()
        if roll < 0.45:
            path += f"/{rng.choice(_WORDS)}{rng.randrange(1000)}.{rng.choice(_STATIC_EXT)}"
        else:
            path += "/" + rng.choice(_DYNAMIC)
            if rng.random() < 0.25:
                path += f"?id={rng.randrange(10**6)}&page={rng.randrange(20)}"
                if rng.random() < 0.05:
                    path += "&token=" + "".join(rng.choice("abcdef0123456789") for _ in range(90))
        if rng.random() < 0.003:
            path += "?q=" + rng.choice(HOSTILE)
        urls.append(path)
    return [(url, int(rng.lognormvariate(8.5, 1.5))) for url in urls]


def _referrer(rng: random.Random, urls: list[tuple[str, int]]) -> str:
    roll = rng.random()
    if roll < 0.40:
        return "-"
    if roll < 0.75:
        return "https://www.example.com" + rng.choice(urls[:200])[0]
    if roll < 0.997:
        return rng.choice(_SITES)
    return rng.choice(HOSTILE)


class _Clock:
    """``%t`` text of Unix times, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def text(self, unix: int) -> str:
        if unix != self._second:
            t = time.gmtime(unix + _ZONE_OFFSET)
            self._second = unix
            self._text = (
                f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {ZONE}"
            )
        return self._text


def _malformed(rng: random.Random, good_line: str) -> str:
    """One line that no combined-format parser should accept."""
    kind = rng.randrange(4)
    if kind == 0:  # cut inside the request: an unterminated quote
        quote = good_line.index('"')
        return good_line[: quote + rng.randrange(2, 8)] + "\n"
    if kind == 1:  # an impossible month
        return good_line.replace("/Mar/", "/Foo/", 1)
    if kind == 2:  # text that is not a log line at all
        return "\x16\x03\x01\x02\x00 garbage written by something else \xff\xfe\n"
    return "\n"


def generate_entries(
    lines: int, clients: int, seed: int = 1, days: int = 3
) -> Iterator[tuple[str, bool]]:
    """Each line (newline included) with True when it is deliberately malformed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    population = [(_address(rng, seen), _user_agent(rng)) for _ in range(clients)]
    client_weights = _zipf_cumulative(clients, 1.0)
    catalogue = _catalogue(rng, max(50, min(5000, lines // 20)))
    url_weights = _zipf_cumulative(len(catalogue), 1.1)
    step = days * 86400 / max(lines, 1)
    clock = _Clock()
    users = ("-",) * 40 + ("alice", "bob", "admin")
    batch = 4096
    index = 0
    while index < lines:
        count = min(batch, lines - index)
        who = rng.choices(population, cum_weights=client_weights, k=count)
        what = rng.choices(catalogue, cum_weights=url_weights, k=count)
        statuses = rng.choices(_STATUSES, weights=_STATUS_WEIGHTS, k=count)
        methods = rng.choices(_METHODS, weights=_METHOD_WEIGHTS, k=count)
        protocols = rng.choices(_PROTOCOLS, weights=_PROTOCOL_WEIGHTS, k=count)
        for offset in range(count):
            address, agent = who[offset]
            url, typical = what[offset]
            status = statuses[offset]
            if rng.random() < 0.03:  # a second device or an updated browser
                agent = _user_agent(rng)
            if status in (304, 204) or (status in (301, 302) and rng.random() < 0.5):
                size = "-"
            elif status >= 400:
                size = str(200 + rng.randrange(300))
            else:
                size = str(max(0, typical + rng.randrange(-64, 64)))
            when = START + int((index + offset) * step) + rng.randrange(-2, 3)
            request = f"{methods[offset]} {escape(url)} {protocols[offset]}"
            if rng.random() < 0.0005:
                request, status, size = "-", 408, "-"
            elif rng.random() < 0.0003:
                request, status, size = escape("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03"), 400, "-"
            line = (
                f"{address} - {rng.choice(users)} [{clock.text(when)}] "
                f'"{request}" {status} {size} '
                f'"{escape(_referrer(rng, catalogue))}" "{escape(agent)}"\n'
            )
            if (index + offset) % MALFORMED_EVERY == MALFORMED_EVERY // 2:
                yield _malformed(rng, line), True
            else:
                yield line, False
        index += count


def generate_lines(lines: int, clients: int, seed: int = 1, days: int = 3) -> Iterator[str]:
    """The lines of the log (newline included), streamed."""
    for line, _ in generate_entries(lines, clients, seed, days):
        yield line


def workload(lines: int, clients: int, seed: int = 1) -> Path:
    """The log of these arguments (3 days) under `WORKLOADS`, generated on first use.

    It is written under a temporary name and renamed, so an interrupted run
    never leaves a truncated log for the next one to measure.
    """
    path = WORKLOADS / f"weblog-{lines}-{clients}-{seed}.log"
    if not path.exists():
        WORKLOADS.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w", encoding="latin-1", newline="") as out:
            out.writelines(generate_lines(lines, clients, seed, 3))
        temporary.rename(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines to write (100000)")
    parser.add_argument("--clients", type=int, default=20_000, help="client population (20000)")
    parser.add_argument("--days", type=int, default=3, help="days the log covers (3)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("-o", "--output", default="-", help="file to write (default stdout)")
    args = parser.parse_args(argv)
    if args.lines < 0 or args.clients < 1 or args.days < 1:
        parser.error("--lines must be >= 0, --clients and --days >= 1")
    # Latin-1 writes each character as its byte (the log holds \xff bytes).
    target = sys.stdout.fileno() if args.output == "-" else args.output
    with open(target, "w", encoding="latin-1", newline="", closefd=args.output != "-") as out:
        out.writelines(generate_lines(args.lines, args.clients, args.seed, args.days))
    return 0


if __name__ == "__main__":
    sys.exit(main())
