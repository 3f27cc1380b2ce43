"""A deterministic, realistic load-balanced web farm, with its ground truth.

Simulates clients talking through pen to K backends (WORKLOADS.md, "A farm
behind the balancer" and "The UDP path") and writes what each part would log:

* ``pen.log``: the balancer's records in forwarding order (``pen -l FILE``),
  including the extra record the C pen writes for a POST body that arrives as
  a separate chunk (it matches no log line, exactly as with the real pen);
* ``access_log.SERVER``: each backend's combined log in *completion* order,
  its first field the balancer's address, ``%t`` by the backend's own clock
  (constant offset, network delay, its own time zone);
* ``truth.tsv``: for every backend line, the client that really sent it;
* ``events.tsv``: the same farm as datagrams in the order they happen (a record
  when pen forwards, a line when the backend completes), for the UDP path;
* ``farm.json``: parameters, servers and counts.

Everything comes from one ``random.Random(seed)``: the same configuration
gives the same bytes.  Files are written while simulating; memory holds only
the clients, the URL catalogue and the requests in flight.

    python -m benchmarks.farm --requests 3000 --rate 20 --out benchmarks/out/farm
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import ipaddress
import itertools
import json
import math
import random
import re
import string
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from pentools.core.records import REQUEST_MAX, BalancerRecord, request_key

DELAY_MODELS = ("lan", "metro", "wan", "wide")
SERVICE_MODELS = ("web", "fast", "heavy")
#: Who the clients are: a mix of browsers, bots and scripts; one app's agent
#: for all (an API behind the farm); several users behind each of many NAT
#: addresses (offices, carrier-grade NAT: one address, several User-Agents);
#: a few hundred regulars.
POPULATIONS = ("mixed", "monoculture", "nat", "few")
#: What the backend's time stamp is: Apache's %t (request received) or
#: nginx's $time_local (response written).
STAMPS = ("arrival", "completion")
DEFAULT_ZONES = ("+0000", "+0100", "-0500", "+0530")
#: 2024-03-11 08:00:00 UTC: a fixed start keeps the output reproducible.
DEFAULT_START = 1710144000
SITE = "https://www.example.com"

#: Linux's default ephemeral range (net.ipv4.ip_local_port_range) and TIME_WAIT.
EPHEMERAL_LOW, EPHEMERAL_HIGH = 32768, 60999
TIME_WAIT = 60.0
#: Apache's default KeepAliveTimeout: a longer pause means a new connection.
KEEPALIVE_TIMEOUT = 5.0

_F = TypeVar("_F", bound=Callable[..., Any])
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ZONE = re.compile(r"[+-](\d\d)(\d\d)")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class FarmConfig:
    """What to generate.  `backend_tz` gives one zone per server (cycled)."""

    out: Path
    requests: int = 3000
    rate: float = 20.0
    delay: str = "lan"
    extended: bool = False
    seed: int = 1
    servers: int = 2
    offset_max: float = 1.5
    offset_min: float | None = None  # None: -offset_max
    service: str = "web"
    keepalive: float = 0.5  # probability that a keep-alive connection carries another request
    population: str = "mixed"
    stamp: str = "arrival"
    lost: float = 0.0  # share of backend lines never written (a crash, a rotation gap)
    backend_tz: tuple[str, ...] = ()
    clients: int | None = None
    urls: int = 3000
    start: int = DEFAULT_START
    balancer: str = "127.0.0.1"
    events: bool = True

    def __post_init__(self) -> None:
        if self.requests < 1:
            raise ValueError("--requests must be at least 1")
        if not self.rate > 0:
            raise ValueError("--rate must be positive")
        if self.delay not in DELAY_MODELS:
            raise ValueError(f"--delay must be one of {', '.join(DELAY_MODELS)}")
        if not 1 <= self.servers <= 200:
            raise ValueError("--servers must be from 1 to 200")
        if self.offset_max < 0:
            raise ValueError("--offset-max must not be negative")
        if self.offset_min is not None and self.offset_min > self.offset_max:
            raise ValueError("--offset-min must not exceed --offset-max")
        for name, value, allowed in (
            ("--service", self.service, SERVICE_MODELS),
            ("--population", self.population, POPULATIONS),
            ("--stamp", self.stamp, STAMPS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if not 0 <= self.lost < 1:
            raise ValueError("--lost must be from 0 to below 1")
        if not 0 <= self.keepalive < 1:
            raise ValueError("--keepalive must be from 0 to below 1")
        for zone in self.backend_tz:
            zone_seconds(zone)
        if self.clients is not None and self.clients < 1:
            raise ValueError("--clients must be at least 1")
        if self.urls < 100:
            raise ValueError("--urls must be at least 100")
        if self.start < 0:
            raise ValueError("--start must not be negative")

    @property
    def client_count(self) -> int:
        """Thousands of clients, more for big farms (a few hundred regulars for "few")."""
        if self.clients is not None:
            return self.clients
        if self.population == "few":
            return 300
        return max(2000, min(200_000, self.requests // 3))

    def server_addresses(self) -> list[str]:
        return [f"127.0.0.{11 + index}" for index in range(self.servers)]

    def zones(self) -> list[str]:
        zones = self.backend_tz or DEFAULT_ZONES
        return [zones[index % len(zones)] for index in range(self.servers)]


@dataclass(frozen=True)
class Shape:
    """A named farm shape (WORKLOADS.md): what it stands for, and its settings."""

    about: str
    settings: dict[str, object]


_LAN = {"delay": "lan", "offset_min": 0.0, "offset_max": 1.0}
_FAR = {"offset_min": 0.0, "offset_max": 2.0}

#: The shapes the join is measured on: timing from LAN to WAN, service-time
#: tails, both kinds of backend time stamp, client populations, keep-alive
#: mixes and 2-8 backends.  Offsets are per server, uniform in the range.
SHAPES: dict[str, Shape] = {
    "lan-10": Shape("LAN, offsets 0-1 s, 10 req/s", {**_LAN, "rate": 10.0}),
    "lan-100": Shape("LAN, offsets 0-1 s, 100 req/s", {**_LAN, "rate": 100.0}),
    "lan-1000": Shape("LAN, offsets 0-1 s, 1000 req/s", {**_LAN, "rate": 1000.0}),
    "metro-100": Shape("delays of tens of ms, offsets 0-2 s", {**_FAR, "delay": "metro"}),
    "wan-300": Shape(
        "WAN delays (long tail), offsets 0-2 s", {**_FAR, "delay": "wan", "rate": 300.0}
    ),
    "wide-100": Shape("delays 0-2 s, offsets +-1.5 s", {"delay": "wide", "rate": 100.0}),
    "wide-1000": Shape("delays 0-2 s, offsets +-1.5 s", {"delay": "wide", "rate": 1000.0}),
    "tails-100": Shape("LAN, 5% of requests take 1-30 s", {**_LAN, "service": "heavy"}),
    "nginx-100": Shape("LAN, stamped at completion", {**_LAN, "stamp": "completion"}),
    "nginx-tails-300": Shape(
        "stamped at completion, heavy tails",
        {**_LAN, "stamp": "completion", "service": "heavy", "rate": 300.0},
    ),
    "nat-300": Shape(
        "LAN, users behind shared NAT addresses", {**_LAN, "population": "nat", "rate": 300.0}
    ),
    "app-300": Shape(
        "LAN, one app's User-Agent for all", {**_LAN, "population": "monoculture", "rate": 300.0}
    ),
    "lossy-300": Shape(
        "LAN, 1% of lines never logged (records without a line)",
        {**_LAN, "lost": 0.01, "rate": 300.0},
    ),
    "regulars-100": Shape("LAN, 300 regular clients", {**_LAN, "population": "few"}),
    "no-keepalive-300": Shape(
        "LAN, a connection per request", {**_LAN, "keepalive": 0.0, "rate": 300.0}
    ),
    "keepalive-300": Shape(
        "LAN, mostly reused connections", {**_LAN, "keepalive": 0.8, "rate": 300.0}
    ),
    "four-300": Shape(
        "4 backends, WAN, offsets 0-2 s", {**_FAR, "delay": "wan", "servers": 4, "rate": 300.0}
    ),
    "eight-1000": Shape(
        "8 backends, metro, offsets 0-2 s", {**_FAR, "delay": "metro", "servers": 8, "rate": 1000.0}
    ),
}


#: Seeds to tune on, and seeds kept for the reported figures (never tuned on).
TUNING_SEEDS = (1, 2, 3)
HELD_OUT_SEEDS = (1001, 1002, 1003, 1004, 1005)
SEED_SETS = {"tuning": TUNING_SEEDS, "held-out": HELD_OUT_SEEDS}


def shape_config(shape: str, out: Path, seed: int, requests: int, **more: object) -> FarmConfig:
    """The FarmConfig of a named shape (`more` overrides its settings)."""
    settings = {"rate": 100.0, **SHAPES[shape].settings, **more}
    return FarmConfig(out=out, seed=seed, requests=requests, **settings)  # type: ignore[arg-type]


def zone_seconds(zone: str) -> int:
    """Seconds east of UTC of a ``+0100`` style zone; ValueError if malformed."""
    match = _ZONE.fullmatch(zone)
    if match is None or int(match.group(1)) > 14 or int(match.group(2)) > 59:
        raise ValueError(f"bad time zone {zone!r}: expected +HHMM or -HHMM")
    seconds = int(match.group(1)) * 3600 + int(match.group(2)) * 60
    return -seconds if zone.startswith("-") else seconds


class FarmError(ValueError):
    """A farm that cannot be simulated as configured."""


@dataclass
class ServerSummary:
    address: str
    zone: str
    clock_offset: float
    lines: int = 0
    log: str = ""


@dataclass
class FarmSummary:
    """What was generated (also written as farm.json)."""

    parameters: dict[str, object]
    balancer: str
    servers: list[ServerSummary]
    start: int
    duration: float = 0.0
    rate_achieved: float = 0.0
    requests: int = 0
    records: int = 0
    body_records: int = 0
    connections: int = 0
    keepalive_requests: int = 0
    posts: int = 0
    query_requests: int = 0
    long_requests: int = 0
    clients_seen: int = 0
    ipv6_clients_seen: int = 0
    same_second_collisions: int = 0
    lost_lines: int = 0
    files: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


# ----------------------------------------------------------------- realistic content

_WORDS = (  # noqa: SIM905 - a word list reads best as text
    "alpine anchor amber arctic atlas aurora basil beacon birch blaze breeze "
    "cedar cobalt comet coral crystal delta drift ember falcon fern fjord flint "
    "forest garnet glacier granite harbor hazel horizon indigo iris jade juniper "
    "lagoon lantern maple marble meadow mesa nebula oak onyx orbit pebble pine "
    "prairie quartz raven ridge river sage sierra slate solar spruce summit "
    "tidal timber topaz tundra valley velvet willow zephyr"
).split()

_BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/121.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.3; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
)
_MOBILE_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/122.0.6261.89 Mobile/15E148 Safari/604.1",
)
_CRAWLER_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html) Chrome/122.0.6261.94 Safari/537.36",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile "
    "Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; "
    "+https://openai.com/gptbot)",
)
_SCRIPT_AGENTS = (
    "curl/7.88.1",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Wget/1.21.3",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Feedly/1.0 (+http://www.feedly.com/fetcher.html; 4 subscribers; like FeedFetcher-Google)",
)
_SCANNER_AGENTS = (
    "-",
    "Mozilla/5.0 zgrab/0.x",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/81.0.4044.129 Safari/537.36",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
)
_EXTERNAL_REFERRERS = (
    "https://www.google.com/",
    "https://www.google.com/",
    "https://www.google.de/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://t.co/",
    "https://www.facebook.com/",
    "https://l.instagram.com/",
    "https://news.ycombinator.com/",
    "https://www.reddit.com/",
    "android-app://com.google.android.gm/",
)
#: Paths scanners try on every public address; some long, some with
#: backslashes, quotes or non-ASCII bytes, as seen in real logs.
_PROBES = (
    "/.env",
    "/.git/config",
    "/wp-login.php",
    "/xmlrpc.php",
    "/wp-admin/setup-config.php",
    "/phpmyadmin/index.php",
    "/admin/config.php",
    "/cgi-bin/luci/;stok=/locale",
    "/boaform/admin/formLogin",
    "/actuator/health",
    "/server-status",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array"
    "&vars[0]=md5&vars[1][]=HelloThinkPHP21",
    "/cgi-bin/.%2e/.%2e/.%2e/.%2e/.%2e/.%2e/.%2e/.%2e/.%2e/bin/sh",
    '/search?q="><script>alert(1)</script>',
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/caf\xc3\xa9/men\xc3\xba.html",
    "/?XDEBUG_SESSION_START=phpstorm",
)
#: Short query strings many clients share (campaigns, pagination, sorting).
_SHARED_QUERIES = (
    "page=2",
    "page=3",
    "page=2",
    "sort=price_asc",
    "sort=newest",
    "ref=home",
    "lang=de",
    "utm_source=newsletter&utm_medium=email&utm_campaign=spring",
    "utm_source=twitter&utm_medium=social",
    "color=blue&size=M",
)
_USERS = ("alice", "bob", "carol", "dave", "editor", "admin")

_KINDS = ("browser", "mobile", "crawler", "script", "scanner")
_KIND_WEIGHTS = (70, 20, 4, 4, 2)


@dataclass(slots=True)
class _Client:
    address: str
    kind: str
    agent: str
    keepalive: bool  # HTTP/1.1 with keep-alive, or one request per connection


@dataclass(slots=True)
class _Connection:
    client: _Client
    server: int
    port: int
    requests: int = 0


@dataclass(slots=True)
class _Url:
    path: str
    kind: str  # page, static, api, feed
    size: int


def _slug(rng: random.Random, words: int) -> str:
    return "-".join(rng.choice(_WORDS) for _ in range(words))


def _catalogue(rng: random.Random, count: int) -> list[_Url]:
    """URLs in popularity order: the home page and shared assets first."""
    head = [
        _Url("/", "page", 24_310),
        _Url("/static/css/main.3f9a1c.css", "static", 48_211),
        _Url("/static/js/app.8b21e4.js", "static", 187_402),
        _Url("/favicon.ico", "static", 1_150),
        _Url("/images/logo.svg", "static", 3_918),
        _Url("/products/", "page", 31_877),
        _Url("/api/v1/cart", "api", 412),
        _Url("/robots.txt", "static", 212),
        _Url("/static/fonts/inter-var.woff2", "static", 96_320),
        _Url("/blog/", "page", 19_004),
    ]
    rest: list[_Url] = []
    seen = {url.path for url in head}
    while len(head) + len(rest) < count:
        roll = rng.random()
        ident = rng.randint(100, 99_999)
        if roll < 0.22:
            path = f"/products/{_slug(rng, 2)}-{ident}.html"
            url = _Url(path, "page", int(rng.lognormvariate(math.log(22_000), 0.4)))
        elif roll < 0.32:
            year, month = rng.randint(2016, 2024), rng.randint(1, 12)
            path = f"/blog/{year}/{month:02d}/{_slug(rng, rng.randint(2, 6))}/"
            url = _Url(path, "page", int(rng.lognormvariate(math.log(17_000), 0.5)))
        elif roll < 0.38:
            path = f"/docs/{rng.choice(_WORDS)}/{_slug(rng, 2)}"
            url = _Url(path, "page", int(rng.lognormvariate(math.log(12_000), 0.5)))
        elif roll < 0.42:
            path = f"/category/{rng.choice(_WORDS)}/"
            url = _Url(path, "page", int(rng.lognormvariate(math.log(28_000), 0.3)))
        elif roll < 0.72:
            width = rng.choice((320, 640, 800, 1200))
            extension = rng.choice(("jpg", "jpg", "webp", "png"))
            path = f"/images/products/{ident}-{width}x{width * 3 // 4}.{extension}"
            url = _Url(path, "static", int(rng.lognormvariate(math.log(width * 60), 0.6)))
        elif roll < 0.82:
            digest = f"{rng.getrandbits(32):08x}"
            extension = rng.choice(("js", "js", "css"))
            path = f"/static/{extension}/chunk-{digest}.{extension}"
            url = _Url(path, "static", int(rng.lognormvariate(math.log(30_000), 1.0)))
        elif roll < 0.95:
            if rng.random() < 0.4:
                path = f"/api/v1/reviews?product={ident}&limit=20"
            else:
                path = f"/api/v1/products/{ident}"
            url = _Url(path, "api", int(rng.lognormvariate(math.log(2_500), 0.8)))
        else:
            path = f"/feeds/{rng.choice(_WORDS)}.xml"
            url = _Url(path, "feed", int(rng.lognormvariate(math.log(40_000), 0.3)))
        if url.path not in seen:
            seen.add(url.path)
            rest.append(url)
    rng.shuffle(rest)
    return head + rest


def _zipf_cumulative(count: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, count + 1)))


def _ipv4(rng: random.Random) -> str:
    reserved = {0, 10, 100, 127, 169, 172, 192, 198}
    while True:
        first = rng.randint(1, 223)
        if first not in reserved:
            return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> str:
    prefix = [rng.choice((0x2A01, 0x2A02, 0x2A00, 0x2001, 0x2600, 0x2803, 0x2409))]
    prefix += [rng.getrandbits(16) for _ in range(3)]
    if rng.random() < 0.3:  # a short interface id: written with "::"
        interface = [0, 0, 0, rng.randint(1, 0xFFFF)]
    else:
        interface = [rng.getrandbits(16) for _ in range(4)]
    return str(ipaddress.IPv6Address(":".join(f"{g:x}" for g in prefix + interface)))


#: The one agent of a "monoculture" population: every client is the same app.
APP_AGENT = "ExampleShop/5.1.0 (iPhone; iOS 17.3.1; Scale/3.00)"


def _clients(rng: random.Random, count: int, population: str = "mixed") -> list[_Client]:
    """`count` users; under "nat" a third of the addresses carry 2-8 users each."""
    clients: list[_Client] = []
    seen: set[str] = set()
    while len(clients) < count:
        address = _ipv6(rng) if rng.random() < 0.12 else _ipv4(rng)
        if address in seen:
            continue
        seen.add(address)
        users = rng.randint(2, 8) if population == "nat" and rng.random() < 0.33 else 1
        for _ in range(users):
            kind = rng.choices(_KINDS, _KIND_WEIGHTS)[0]
            agent = rng.choice(
                {
                    "browser": _BROWSER_AGENTS,
                    "mobile": _MOBILE_AGENTS,
                    "crawler": _CRAWLER_AGENTS,
                    "script": _SCRIPT_AGENTS,
                    "scanner": _SCANNER_AGENTS,
                }[kind]
            )
            if population == "monoculture":
                kind, agent = "browser", APP_AGENT
            keepalive = kind in ("browser", "mobile", "crawler") or rng.random() < 0.3
            clients.append(_Client(address, kind, agent, keepalive))
    return clients


# ------------------------------------------------------------------- log formatting

_ESCAPED = re.compile(r'[^\x20-\x7e]|["\\]')


def apache_escape(text: str) -> str:
    """Escape a field as Apache's mod_log_config does (``\\"``, ``\\\\``, ``\\xhh``)."""
    return _ESCAPED.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in '"\\':
        return "\\" + char
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\x{ord(char):02x}")


class _ClfClock:
    """``%t`` of one backend: its clock offset and zone, formatted like Apache."""

    def __init__(self, start: int, offset: float, zone: str) -> None:
        self.base = start + offset
        self.zone = zone
        self.shift = zone_seconds(zone)
        self._cache: dict[int, str] = {}

    def stamp(self, true_time: float) -> str:
        second = math.floor(self.base + true_time)
        text = self._cache.get(second)
        if text is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            moment = time.gmtime(second + self.shift)
            text = (
                f"[{moment.tm_mday:02d}/{_MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
                f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} {self.zone}]"
            )
            self._cache[second] = text
        return text


# ---------------------------------------------------------------------- simulation

# Event kinds, in the order they are handled when times are equal.
_LINE, _BODY, _NEXT, _CONNECT = range(4)


@dataclass(slots=True)
class _Request:
    method: str
    target: str  # raw bytes as Latin-1 text
    version: str
    status: int
    size: str
    referrer: str
    user: str
    body_chunks: list[bytes]
    service: float
    query: bool


class _Farm:
    """The simulation state: one RNG, the event heap and the open output files."""

    def __init__(self, config: FarmConfig) -> None:
        self.config = config
        self.rng = rng = random.Random(config.seed)
        self.servers = config.server_addresses()
        zones = config.zones()
        low = -config.offset_max if config.offset_min is None else config.offset_min
        self.offsets = [round(rng.uniform(low, config.offset_max), 3) for _ in self.servers]
        self.clocks = [
            _ClfClock(config.start, offset, zone)
            for offset, zone in zip(self.offsets, zones, strict=True)
        ]
        self.urls = _catalogue(rng, config.urls)
        self.url_weights = _zipf_cumulative(len(self.urls), 1.0)
        self.pages = [url for url in self.urls if url.kind == "page"]
        self.clients = _clients(rng, config.client_count, config.population)
        self.client_weights = _zipf_cumulative(len(self.clients), 0.8)
        self.scanners = [client for client in self.clients if client.kind == "scanner"]
        self.assigned: dict[str, int] = {}  # pen's client table: client -> server
        self.next_server = 0
        self.cursor = [rng.randrange(EPHEMERAL_LOW, EPHEMERAL_HIGH) for _ in self.servers]
        self.port_free_at: list[dict[int, float]] = [{} for _ in self.servers]
        # Connections that may keep alive carry another request with
        # probability p (default 1/2: half the requests reuse a connection).
        self.continue_probability = config.keepalive
        self.connection_rate = config.rate * (1.0 - config.keepalive)
        self.heap: list[tuple[float, int, int, object]] = []
        self.sequence = itertools.count()
        self.summary = FarmSummary(
            parameters={
                key: (str(value) if isinstance(value, Path) else value)
                for key, value in asdict(config).items()
                if key != "out"
            },
            balancer=config.balancer,
            servers=[
                ServerSummary(address, zone, offset, log=f"access_log.{address}")
                for address, zone, offset in zip(self.servers, zones, self.offsets, strict=True)
            ],
            start=config.start,
        )
        self.summary.parameters["clients"] = config.client_count
        self.seen_clients: set[str] = set()
        self.collision_second = -1
        self.collision_groups: dict[tuple[int, str], set[str]] = {}

    # ---- choices

    def _zipf(self, cumulative: list[float]) -> int:
        return bisect.bisect_left(cumulative, self.rng.random() * cumulative[-1])

    def _server_for(self, client: _Client) -> int:
        """pen's client tracking: back to the last server, a first visit round-robin."""
        server = self.assigned.get(client.address)
        if server is None:
            server = self.assigned[client.address] = self.next_server
            self.next_server = (self.next_server + 1) % len(self.servers)
        return server

    def _upstream_port(self, server: int, now: float) -> int:
        """An ephemeral port like Linux picks: sequential from a random offset,
        skipping ports still open or in TIME_WAIT; reused once free again."""
        free_at = self.port_free_at[server]
        span = EPHEMERAL_HIGH - EPHEMERAL_LOW + 1
        port = self.cursor[server]
        fallback = None
        for attempt in range(span):
            port = EPHEMERAL_LOW + (port + 1 - EPHEMERAL_LOW) % span
            busy_until = free_at.get(port, 0.0)
            if busy_until <= now:
                break
            if fallback is None and busy_until != math.inf:
                fallback = port  # in TIME_WAIT: reusable, as with tcp_tw_reuse
            if attempt >= 256 and fallback is not None:
                port = fallback
                break
        else:
            raise FarmError(
                f"more than {span} connections open to one backend at once: "
                "lower --rate or add --servers"
            )
        self.cursor[server] = port
        free_at[port] = math.inf
        return port

    def _delay(self) -> float:
        """Balancer to backend: LAN (ms), metro (tens of ms), WAN (long tail), 0-2 s."""
        delay, rng = self.config.delay, self.rng
        if delay == "wide":
            return rng.uniform(0.0, 2.0)
        if delay == "metro":
            return min(rng.expovariate(100.0), 0.1)
        if delay == "wan":
            return min(rng.lognormvariate(math.log(0.06), 0.8), 2.0)
        return min(rng.expovariate(500.0), 0.02)

    def _service(self) -> float:
        """Service time: "web" tens of ms and a 1% tail of seconds; "fast" a cache;
        "heavy" slower with a 5% tail up to half a minute (reports, uploads)."""
        rng, service = self.rng, self.config.service
        if service == "fast":
            return min(rng.lognormvariate(math.log(0.004), 0.5), 0.5)
        if service == "heavy":
            if rng.random() < 0.05:
                return rng.uniform(1.0, 30.0)
            return min(rng.lognormvariate(math.log(0.08), 1.2), 30.0)
        if rng.random() < 0.01:  # the long tail: slow queries, big reports
            return rng.uniform(1.0, 6.0)
        return min(rng.lognormvariate(math.log(0.03), 0.9), 10.0)

    # ---- request content

    def _request(self, client: _Client, follow_up: bool) -> _Request:
        rng = self.rng
        kind = client.kind
        method, version, user, body_chunks = "GET", "HTTP/1.1", "-", []
        query = False
        referrer = "-"
        if kind == "scanner":
            target = rng.choice(_PROBES)
            version = rng.choice(("HTTP/1.1", "HTTP/1.0"))
            if target == "/wp-login.php" and rng.random() < 0.5:
                method = "POST"
                body_chunks = [b"log=admin&pwd=" + _token(rng, 8).encode() + b"&wp-submit=Log+In"]
            status = 400 if "\xc3" in target else rng.choice((404, 404, 404, 403, 301))
            return self._finish(method, target, version, status, None, referrer, user, body_chunks)
        if kind == "crawler":
            url = self.urls[7] if rng.random() < 0.05 else rng.choice(self.pages)  # robots.txt
            target = url.path
            if rng.random() < 0.1:
                target += "?page=" + str(rng.randint(2, 40))
                query = True
            return self._finish(method, target, version, None, url, referrer, user, [], query)
        if kind == "script":
            roll = rng.random()
            if roll < 0.3:
                method = "HEAD"
                url = self.urls[0]
                target = "/"
            elif roll < 0.45:
                target = "/healthz"
                url = _Url(target, "api", 2)
            else:
                url = self.urls[self._zipf(self.url_weights)]
                target = url.path
            if not client.keepalive:
                version = rng.choice(("HTTP/1.0", "HTTP/1.1"))
            return self._finish(method, target, version, None, url, referrer, user, [])
        # Browsers.
        if rng.random() < 0.05:
            return self._post(client)
        url = self.urls[self._zipf(self.url_weights)]
        target = url.path
        query = "?" in target
        roll = rng.random()
        if roll < 0.075 and url.kind == "page":
            target += "?" + _long_tracking(rng)
            query = True
        elif roll < 0.175 and url.kind == "page":
            target += "?" + rng.choice(_SHARED_QUERIES)
            query = True
        elif roll < 0.20 and url.kind == "static":
            target += f"?v={rng.randint(1, 4)}.{rng.randint(0, 9)}.{rng.randint(0, 20)}"
            query = True
        elif roll < 0.24:
            words = rng.randint(1, 4) if rng.random() < 0.9 else rng.randint(10, 16)
            target = "/search?q=" + "+".join(rng.choice(_WORDS) for _ in range(words))
            url = _Url(target, "page", int(rng.lognormvariate(math.log(15_000), 0.5)))
            query = True
        if url.kind == "static" or follow_up:
            referrer = SITE + self.pages[self._zipf(self.url_weights) % len(self.pages)].path
        else:
            referrer_roll = rng.random()
            if referrer_roll < 0.4:
                referrer = "-"
            elif referrer_roll < 0.8:
                referrer = SITE + rng.choice(self.pages).path
            else:
                referrer = rng.choice(_EXTERNAL_REFERRERS)
        if target.startswith("/account") or rng.random() < 0.005:
            user = rng.choice(_USERS)
        return self._finish(method, target, version, None, url, referrer, user, [], query)

    def _post(self, client: _Client) -> _Request:
        rng = self.rng
        roll = rng.random()
        if roll < 0.3:
            target, status = "/cart/add", rng.choice((200, 200, 302))
            body = f"product_id={rng.randint(100, 99_999)}&qty={rng.randint(1, 3)}"
            chunks = [body.encode()]
        elif roll < 0.5:
            target, status = "/login", rng.choice((302, 302, 200, 401))
            body = f"username={rng.choice(_WORDS)}{rng.randint(1, 99)}&password={_token(rng, 12)}"
            chunks = [body.encode()]
        elif roll < 0.7:
            target, status = "/api/v1/cart", rng.choice((200, 201, 400))
            body = f'{{"product_id":{rng.randint(100, 99_999)},"qty":{rng.randint(1, 5)}}}'
            chunks = [body.encode()]
        elif roll < 0.8:
            target, status = "/graphql", rng.choice((200, 200, 400))
            body = '{"query":"query Product($id: ID!) { product(id: $id) { name price } }",'
            chunks = [body.encode() + f'"variables":{{"id":"{rng.randint(1, 9999)}"}}}}'.encode()]
        elif roll < 0.93:
            target, status = "/contact", rng.choice((302, 200))
            message = "+".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 40)))
            body = f"name={rng.choice(_WORDS)}&email={rng.choice(_WORDS)}%40example.org&message="
            chunks = [(body + message).encode()]
        else:  # an upload: several chunks, the later ones mid-file
            target, status = "/account/upload", rng.choice((201, 201, 413))
            boundary = "----WebKitFormBoundary" + _token(rng, 16)
            head = f'{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"'
            chunks = [head.encode()] + [rng.randbytes(120) for _ in range(rng.randint(1, 3))]
        # Small bodies often travel with the headers: then pen sees one chunk.
        separate = target == "/account/upload" or rng.random() < 0.6
        url = _Url(target, "api", rng.randint(150, 2_000))
        referrer = SITE + rng.choice(self.pages).path
        user = rng.choice(_USERS) if target.startswith("/account") else "-"
        return self._finish(
            "POST", target, "HTTP/1.1", status, url, referrer, user, chunks if separate else []
        )

    def _finish(
        self,
        method: str,
        target: str,
        version: str,
        status: int | None,
        url: _Url | None,
        referrer: str,
        user: str,
        body_chunks: list[bytes],
        query: bool | None = None,
    ) -> _Request:
        rng = self.rng
        if status is None:
            roll = rng.random()
            if url is not None and url.kind == "static":
                status = 200 if roll < 0.70 else 304 if roll < 0.95 else 404 if roll < 0.98 else 206
            else:
                status = (
                    200
                    if roll < 0.88
                    else 304
                    if roll < 0.92
                    else 302
                    if roll < 0.95
                    else 404
                    if roll < 0.985
                    else 500
                    if roll < 0.995
                    else 503
                )
        if method == "HEAD" or status in (204, 304):
            size = "-"
        elif status in (301, 302):
            size = str(rng.randint(220, 260))
        elif status in (400, 401, 403, 404, 413):
            size = str(rng.choice((196, 199, 209, 275, 318)))
        elif status >= 500:
            size = str(rng.choice((607, 299)))
        elif status == 206:
            size = str(rng.randint(1, (url.size if url else 4096)))
        else:
            base = url.size if url else 1_000
            size = str(max(1, base + (rng.randint(-40, 40) if url and url.kind == "page" else 0)))
        if query is None:
            query = "?" in target
        return _Request(
            method,
            target,
            version,
            status,
            size,
            referrer,
            user,
            body_chunks,
            self._service(),
            query,
        )

    # ---- events

    def _push(self, when: float, kind: int, payload: object) -> None:
        heapq.heappush(self.heap, (when, next(self.sequence), kind, payload))

    def run(self, out: Path) -> FarmSummary:
        config = self.config
        out.mkdir(parents=True, exist_ok=True)
        summary = self.summary
        with contextlib.ExitStack() as files:

            def create(name: str) -> IO[str]:
                summary.files.append(name)
                return files.enter_context(
                    open(out / name, "w", encoding="latin-1", newline="\n", buffering=1 << 20)
                )

            self.pen_log = create("pen.log")
            self.access_logs = [create(server.log) for server in summary.servers]
            self.truth = create("truth.tsv")
            self.truth.write("server\tline\tclient\n")
            self.events = create("events.tsv") if config.events else None
            if self.events is not None:
                self.events.write("time\tsource\tpayload\tclient\n")
            self._simulate()
            self._close_collision_second()
        summary.clients_seen = len(self.seen_clients)
        summary.ipv6_clients_seen = sum(1 for client in self.seen_clients if ":" in client)
        summary.files.append("farm.json")
        (out / "farm.json").write_text(summary.to_json(), encoding="ascii")
        return summary

    def _simulate(self) -> None:
        rng = self.rng
        remaining = self.config.requests
        self._push(rng.expovariate(self.connection_rate), _CONNECT, None)
        heap = self.heap
        last = 0.0
        while heap:
            now, _, kind, payload = heapq.heappop(heap)
            last = now
            if kind == _LINE:
                self._write_line(now, payload)  # type: ignore[arg-type]
            elif kind == _BODY:
                self.summary.body_records += 1
                self._write_record(now, *payload)  # type: ignore[misc]
            elif kind == _NEXT:
                connection: _Connection = payload  # type: ignore[assignment]
                if remaining > 0:
                    remaining -= 1
                    self._serve(now, connection, follow_up=True)
                else:
                    self.port_free_at[connection.server][connection.port] = now + TIME_WAIT
            elif remaining > 0:  # _CONNECT: a new connection and its first request
                remaining -= 1
                if self.scanners and rng.random() < 0.03:
                    client = rng.choice(self.scanners)  # the background noise of the Internet
                else:
                    client = self.clients[self._zipf(self.client_weights)]
                server = self._server_for(client)
                connection = _Connection(client, server, self._upstream_port(server, now))
                self.summary.connections += 1
                self._serve(now, connection, follow_up=False)
                if remaining > 0:
                    self._push(now + rng.expovariate(self.connection_rate), _CONNECT, None)
        self.summary.duration = round(last, 6)
        self.summary.rate_achieved = round(self.summary.requests / max(last, 1e-9), 3)

    def _serve(self, now: float, connection: _Connection, follow_up: bool) -> None:
        """pen forwards one request on `connection` at `now`; the backend answers later."""
        rng = self.rng
        client = connection.client
        request = self._request(client, follow_up)
        summary = self.summary
        summary.requests += 1
        summary.keepalive_requests += follow_up
        summary.posts += request.method == "POST"
        summary.query_requests += request.query
        connection.requests += 1
        raw_line = f"{request.method} {request.target} {request.version}"
        if len(raw_line) > REQUEST_MAX:
            summary.long_requests += 1
        key = request_key(raw_line.encode("latin-1") + b"\r\nHost: www.example.com\r\n")
        self._write_record(now, connection, key)
        received = now + self._delay()
        ready = received
        gap = now
        for chunk in request.body_chunks:
            gap += min(rng.expovariate(100.0), 0.2) + 0.0002
            self._push(gap, _BODY, (connection, request_key(chunk)))
            ready = max(ready, gap + (received - now))
        done = ready + request.service
        server = connection.server
        stamped = received if self.config.stamp == "arrival" else done
        text = (
            f"{self.config.balancer} - {request.user} {self.clocks[server].stamp(stamped)} "
            f'"{apache_escape(raw_line)}" {request.status} {request.size} '
            f'"{request.referrer}" "{client.agent}"'
        )
        if self.config.extended:
            text += f" {connection.port}"
        self._push(done, _LINE, (server, text, client.address))
        # Keep-alive: the next request follows a think time after the answer,
        # unless the client is done or pauses past the server's timeout.
        think = rng.expovariate(1.0) + 0.05
        if (
            client.keepalive
            and request.version == "HTTP/1.1"
            and rng.random() < self.continue_probability
            and think < KEEPALIVE_TIMEOUT
        ):
            self._push(done + think, _NEXT, connection)
        else:
            self.port_free_at[server][connection.port] = done + TIME_WAIT

    def _write_record(self, now: float, connection: _Connection, key: str) -> None:
        address = connection.client.address
        server = self.servers[connection.server]
        record = BalancerRecord(
            address,
            server,
            key,
            self.config.start + now,
            connection.port if self.config.extended else None,
        )
        self.pen_log.write(record.to_local().decode("latin-1"))
        self.summary.records += 1
        self.seen_clients.add(address)
        if self.events is not None:
            payload = record.to_datagram().decode("latin-1").rstrip("\n")
            self.events.write(f"{now:.6f}\t{self.config.balancer}\t{payload}\t-\n")
        second = int(now)
        if second != self.collision_second:
            self._close_collision_second()
            self.collision_second = second
        self.collision_groups.setdefault((connection.server, key), set()).add(address)

    def _close_collision_second(self) -> None:
        """Count records that share server, second and request with another client."""
        for clients in self.collision_groups.values():
            if len(clients) > 1:
                self.summary.same_second_collisions += len(clients)
        self.collision_groups.clear()

    def _write_line(self, now: float, payload: tuple[int, str, str]) -> None:
        server, text, client = payload
        if self.config.lost and self.rng.random() < self.config.lost:
            self.summary.lost_lines += 1
            return
        info = self.summary.servers[server]
        info.lines += 1
        self.access_logs[server].write(text + "\n")
        self.truth.write(f"{info.address}\t{info.lines}\t{client}\n")
        if self.events is not None:
            self.events.write(f"{now:.6f}\t{info.address}\t{text}\t{client}\n")


def _token(rng: random.Random, length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(length))


def _long_tracking(rng: random.Random) -> str:
    """Ad-click parameters: what makes real request lines exceed 100 bytes."""
    if rng.random() < 0.5:
        return f"fbclid=IwAR{_token(rng, rng.randint(50, 70))}"
    return (
        f"utm_source=google&utm_medium=cpc&utm_campaign={rng.choice(_WORDS)}"
        f"&gclid={_token(rng, rng.randint(60, 90))}"
    )


def generate_farm(config: FarmConfig) -> FarmSummary:
    """Generate the farm described by `config` into ``config.out``; return its summary."""
    return _Farm(config).run(Path(config.out))


def load_truth(out: Path) -> dict[tuple[str, int], str]:
    """truth.tsv of a generated farm: (server, 1-based line number) -> true client."""
    truth: dict[tuple[str, int], str] = {}
    with open(Path(out) / "truth.tsv", encoding="ascii") as rows:
        next(rows)  # the header
        for row in rows:
            server, number, client = row.rstrip("\n").split("\t")
            truth[(server, int(number))] = client
    return truth


@dataclass(frozen=True, slots=True)
class FarmEvent:
    """One datagram of the UDP path, newline included, as pen and penlog send it.

    `client` is the truth for a line, None for a record.
    """

    time: float
    source: str
    payload: bytes
    client: str | None


def read_events(out: Path) -> Iterator[FarmEvent]:
    """events.tsv of a generated farm, in order (streamed)."""
    with open(Path(out) / "events.tsv", encoding="latin-1", newline="\n") as rows:
        next(rows)  # the header
        for row in rows:
            when, source, payload, client = row.rstrip("\n").split("\t")
            yield FarmEvent(
                float(when),
                source,
                (payload + "\n").encode("latin-1"),
                None if client == "-" else client,
            )


# ------------------------------------------------------------------------------ cli


def _choice(name: str, choices: Sequence[str], text: str) -> Callable[[_F], _F]:
    """An option taking one of `choices`, the first by default."""
    return click.option(
        name, type=click.Choice(choices), default=choices[0], show_default=True, help=text
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--requests", type=int, default=3000, show_default=True, help="Requests to simulate.")
@click.option("--rate", type=float, default=20.0, show_default=True, help="Requests per second.")
@click.option(
    "--delay",
    type=click.Choice(DELAY_MODELS),
    default="lan",
    show_default=True,
    help="Network delay balancer->backend: lan (ms, exponential) or wide (uniform 0-2 s).",
)
@click.option(
    "--extended", is_flag=True, help="Extended records (SERVER#PORT) and backends logging the port."
)
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed.")
@click.option("--servers", type=int, default=2, show_default=True, help="Backends (127.0.0.11...).")
@click.option(
    "--offset-max",
    type=float,
    default=1.5,
    show_default=True,
    help="Largest backend clock offset in seconds (each backend: uniform +-this).",
)
@click.option(
    "--offset-min",
    type=float,
    default=None,
    help="Smallest backend clock offset (default: -OFFSET_MAX); offsets uniform in between.",
)
@_choice(
    "--service",
    SERVICE_MODELS,
    "Service times: fast (ms), web (tens of ms, 1% of 1-6 s), heavy (5% of 1-30 s).",
)
@click.option(
    "--keepalive",
    type=float,
    default=0.5,
    show_default=True,
    help="Probability that a keep-alive connection carries another request.",
)
@_choice(
    "--population",
    POPULATIONS,
    "Clients: mixed, monoculture (one User-Agent), nat (users sharing addresses), few.",
)
@_choice(
    "--stamp", STAMPS, "Backend time stamp: arrival (Apache %t) or completion (nginx $time_local)."
)
@click.option(
    "--lost", type=float, default=0.0, show_default=True, help="Share of lines never logged."
)
@click.option(
    "--shape",
    type=click.Choice(sorted(SHAPES)),
    default=None,
    help="A named farm shape; options given explicitly override its settings.",
)
@click.option(
    "--backend-tz",
    multiple=True,
    help="Backend time zone like +0100, once per backend (cycled). "
    f"Default: {' '.join(DEFAULT_ZONES)}.",
)
@click.option(
    "--clients", type=int, default=None, help="Client population [requests/3, 2000-200000]."
)
@click.option("--urls", type=int, default=3000, show_default=True, help="URL catalogue size.")
@click.option("--start", type=int, default=DEFAULT_START, show_default=True, help="Unix start.")
@click.option("--no-events", is_flag=True, help="Do not write events.tsv (the UDP path).")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output dir."
)
def main(
    requests: int,
    rate: float,
    delay: str,
    extended: bool,
    seed: int,
    servers: int,
    offset_max: float,
    offset_min: float | None,
    service: str,
    keepalive: float,
    population: str,
    stamp: str,
    lost: float,
    shape: str | None,
    backend_tz: Sequence[str],
    clients: int | None,
    urls: int,
    start: int,
    no_events: bool,
    out: Path,
) -> None:
    """Generate a deterministic load-balanced web farm with its ground truth.

    Writes into --out: pen.log (the balancer's records, forwarding order),
    access_log.SERVER per backend (combined; --extended adds the upstream
    port), truth.tsv (server, line, true client), events.tsv (every record and
    line as the datagram it would be, in time order, for the UDP path) and
    farm.json (parameters, clock offsets, zones, counts).  The same options
    give the same bytes.
    """
    given = {
        "requests": requests,
        "rate": rate,
        "delay": delay,
        "extended": extended,
        "seed": seed,
        "servers": servers,
        "offset_max": offset_max,
        "offset_min": offset_min,
        "service": service,
        "keepalive": keepalive,
        "population": population,
        "stamp": stamp,
        "lost": lost,
        "backend_tz": tuple(backend_tz),
        "clients": clients,
        "urls": urls,
        "start": start,
    }
    settings = dict(SHAPES[shape].settings) if shape else {}
    context = click.get_current_context()
    for name, value in given.items():
        if name not in settings or context.get_parameter_source(name) is not (
            click.core.ParameterSource.DEFAULT
        ):
            settings[name] = value
    try:
        config = FarmConfig(out=out, events=not no_events, **settings)  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    began = time.perf_counter()
    try:
        summary = generate_farm(config)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    except FarmError as exc:
        raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - began
    lines = sum(server.lines for server in summary.servers)
    print(
        f"farm: {summary.requests} requests, {summary.records} records "
        f"({summary.body_records} body chunks), {lines} backend lines, "
        f"{summary.clients_seen} clients, {summary.duration:.1f} s simulated, "
        f"in {elapsed:.1f} s -> {out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
