"""Statistics of access-log chunks, merged into one model.

Each parsed chunk is reduced to small partial tables (counts by key); the
partials of all chunks are summed, and compacted as they grow, so memory
depends on the number of distinct keys, not on the size of the log.  The
rules are GoAccess's, so that the headline numbers can be compared:

* a request is (method, URL as decoded, protocol); an unknown method gives
  ``---`` and the whole request as URL, a bad protocol gives ``---``/``-``;
* 404 responses go to "not found", static files (by extension, no query
  string) to "static requests", everything else to "requests";
* a unique visitor is a distinct (logged day, client, full user agent) among
  the responses that are not 4xx; bandwidth sums the sizes of valid lines.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pentools.webstats.parse import ParsedChunk

#: What GoAccess's configuration ships as static files (goaccess.conf).
STATIC_EXTENSIONS = [
    ".css",
    ".js",
    ".jpg",
    ".png",
    ".gif",
    ".ico",
    ".jpeg",
    ".pdf",
    ".csv",
    ".mpeg",
    ".mpg",
    ".swf",
    ".woff",
    ".woff2",
    ".xls",
    ".xlsx",
    ".doc",
    ".docx",
    ".ppt",
    ".pptx",
    ".txt",
    ".zip",
    ".ogg",
    ".mp3",
    ".mp4",
    ".exe",
    ".iso",
    ".gz",
    ".rar",
    ".svg",
    ".bmp",
    ".tar",
    ".tgz",
    ".tiff",
    ".tif",
    ".ttf",
    ".flv",
    ".dmg",
    ".xz",
    ".zst",
]

#: Methods GoAccess recognises at the start of a request line.
HTTP_METHODS = frozenset(
    [
        "OPTIONS",
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "TRACE",
        "CONNECT",
        "PATCH",
        "SEARCH",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "VERSION-CONTROL",
        "REPORT",
        "CHECKOUT",
        "CHECKIN",
        "UNCHECKOUT",
        "MKWORKSPACE",
        "UPDATE",
        "LABEL",
        "MERGE",
        "BASELINE-CONTROL",
        "MKACTIVITY",
        "ORDERPATCH",
    ]
)

#: Protocols a request line may end with, as GoAccess names them.
HTTP_PROTOCOLS = {
    "HTTP/1.0": "HTTP/1.0",
    "HTTP/1.1": "HTTP/1.1",
    "HTTP/2": "HTTP/2",
    "HTTP/2.0": "HTTP/2",
    "HTTP/3": "HTTP/3",
    "HTTP/3.0": "HTTP/3",
}

#: Browser families by a user-agent pattern; the first that matches wins
#: (Edge and Opera say "Chrome", Chrome says "Safari", phones say "Mac OS X").
BROWSERS = (
    ("Crawlers", r"bot\b|bot/|crawl|spider|slurp|facebookexternalhit|bingpreview"),
    ("Tools", r"^curl/|^wget/|python-|^go-http|libwww|okhttp|^java/|^-$"),
    ("Edge", r"Edg/|Edge/"),
    ("Opera", r"OPR/|Opera"),
    ("Chrome", r"Chrome/|CriOS/"),
    ("Firefox", r"Firefox/|FxiOS/"),
    ("Safari", r"Safari/"),
    ("Internet Explorer", r"MSIE |Trident/"),
)
OPERATING_SYSTEMS = (
    ("Android", r"Android"),
    ("iOS", r"iPhone|iPad|iPod"),
    ("Windows", r"Windows"),
    ("macOS", r"Macintosh|Mac OS X"),
    ("Linux", r"Linux|X11|CrOS"),
)


def split_request(request: str) -> tuple[str, str, str]:
    """(method, URL, protocol) of a logged request line, as GoAccess keys requests."""
    head, space, rest = request.partition(" ")
    method = head.upper()
    if not space or method not in HTTP_METHODS:
        return "---", decode_url(request), "---"
    url, space, protocol = rest.strip(" ").rpartition(" ")
    if not space or protocol.upper() not in HTTP_PROTOCOLS:
        return "---", "-", "---"
    return method, decode_url(url.strip(" ")), HTTP_PROTOCOLS[protocol.upper()]


def decode_url(url: str) -> str:
    """``%xx`` decoded once, byte for byte (Latin-1 text in, Latin-1 text out)."""
    if "%" in url:
        url = urllib.parse.unquote(url, encoding="latin-1")
    return url.strip(" \t\r\n")


def is_static(url: str, extensions: tuple[str, ...]) -> bool:
    """A static file: its extension is listed and it has no query string."""
    if "?" in url:
        return False
    lowered = url.lower()
    return any(lowered.endswith(ext) and len(lowered) > len(ext) for ext in extensions)


def classify(agent: str, table: tuple[tuple[str, str], ...]) -> str:
    for name, pattern in table:
        if re.search(pattern, agent, re.IGNORECASE):
            return name
    return "Others"


class Tally:
    """Sums by key over many chunks, compacted when the partial tables grow."""

    def __init__(self, compact_every: int = 16) -> None:
        self._parts: list[pd.DataFrame] = []
        self._compact_every = compact_every

    def add(self, part: pd.DataFrame) -> None:
        if len(part):
            self._parts.append(part)
        if len(self._parts) >= self._compact_every:
            self._parts = [self.total()]

    def total(self) -> pd.DataFrame:
        if not self._parts:
            return pd.DataFrame({"hits": [], "bytes": []}, dtype="int64")
        merged = pd.concat(self._parts)
        if len(self._parts) == 1:
            return merged
        return merged.groupby(level=list(range(merged.index.nlevels)), sort=False).sum()


class Visitors:
    """Distinct (day, client, user agent) as 64-bit hashes with their day."""

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []
        self._rows = 0
        self._compacted = 0

    def add(self, days: pd.Series, clients: pd.Series, agents: pd.Series) -> None:
        keys = pd.DataFrame({"day": days, "client": clients, "agent": agents})
        hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy()
        part = pd.DataFrame({"day": days.to_numpy(), "key": hashes}).drop_duplicates("key")
        self._parts.append(part)
        self._rows += len(part)
        if self._rows > 2 * self._compacted + 1_000_000:
            self._compact()

    def _compact(self) -> None:
        merged = pd.concat(self._parts).drop_duplicates("key") if self._parts else None
        self._parts = [] if merged is None else [merged]
        self._rows = self._compacted = 0 if merged is None else len(merged)

    def per_day(self) -> pd.Series:
        self._compact()
        if not self._parts:
            return pd.Series(dtype="int64")
        return self._parts[0].groupby("day").size()


@dataclass
class Statistics:
    """Everything a report shows, accumulated chunk by chunk."""

    static_extensions: tuple[str, ...] = tuple(STATIC_EXTENSIONS)
    since: float | None = None
    until: float | None = None
    lines: int = 0
    failed: int = 0
    excluded: int = 0
    valid: int = 0
    bandwidth: int = 0
    first_local: float = np.inf
    last_local: float = -np.inf
    first_unix: float = np.inf
    last_unix: float = -np.inf
    status: Tally = field(default_factory=Tally)
    days: Tally = field(default_factory=Tally)
    hours: Tally = field(default_factory=Tally)
    requests: Tally = field(default_factory=Tally)
    hosts: Tally = field(default_factory=Tally)
    referers: Tally = field(default_factory=Tally)
    agents: Tally = field(default_factory=Tally)
    visitors: Visitors = field(default_factory=Visitors)
    files: list[str] = field(default_factory=list)

    def add(self, chunk: ParsedChunk) -> None:
        frame = chunk.frame
        self.lines += chunk.lines
        self.failed += chunk.failed
        if self.since is not None or self.until is not None:
            keep = np.ones(len(frame), dtype=bool)
            if self.since is not None:
                keep &= frame["local"].to_numpy() >= self.since
            if self.until is not None:
                keep &= frame["local"].to_numpy() < self.until
            self.excluded += int(len(frame) - keep.sum())
            frame = frame[keep]
        if not len(frame):
            return
        self.valid += len(frame)
        size = frame["size"]
        self.bandwidth += int(size.sum())
        local, unix = frame["local"], frame["unix"]
        self.first_local = min(self.first_local, float(local.min()))
        self.last_local = max(self.last_local, float(local.max()))
        self.first_unix = min(self.first_unix, float(unix.min()))
        self.last_unix = max(self.last_unix, float(unix.max()))
        day = (local // 86400).astype("int64")
        hour = ((local % 86400) // 3600).astype("int64")
        counted = {"hits": np.ones(len(frame), dtype="int64"), "bytes": size.to_numpy()}
        by = pd.DataFrame(counted, index=frame.index)
        self.status.add(by.groupby(frame["status"].to_numpy(), sort=False).sum())
        self.days.add(by.groupby(day.to_numpy(), sort=False).sum())
        self.hours.add(by.groupby(hour.to_numpy(), sort=False).sum())
        not_found = (frame["status"] == 404).to_numpy()
        self.requests.add(by.groupby([frame["request"], not_found], sort=False).sum())
        self.hosts.add(by.groupby(frame["client"], sort=False).sum())
        self.referers.add(by.groupby(frame["referer"], sort=False).sum())
        self.agents.add(by.groupby(frame["agent"], sort=False).sum())
        # GoAccess leaves 4xx responses out of unique visitors.
        counted_visit = ~((frame["status"] >= 400) & (frame["status"] <= 499)).to_numpy()
        self.visitors.add(
            day[counted_visit], frame["client"][counted_visit], frame["agent"][counted_visit]
        )

    def report(self) -> Report:
        return Report.build(self)


def _top(frame: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    if not len(frame):
        return pd.DataFrame({"hits": [], "bytes": []}, dtype="int64")
    ordered = frame.sort_values(["hits", "bytes"], ascending=False, kind="stable")
    return ordered if limit is None else ordered.head(limit)


@dataclass
class Report:
    """The finished statistics: the general numbers and one table per panel."""

    general: dict[str, Any]
    panels: dict[str, pd.DataFrame]

    @classmethod
    def build(cls, stats: Statistics, limit: int = 50) -> Report:
        requests = stats.requests.total()
        keyed = _request_table(requests, stats.static_extensions)
        visitors_per_day = stats.visitors.per_day()
        days = stats.days.total().sort_index()
        if len(days):
            days["visitors"] = visitors_per_day.reindex(days.index, fill_value=0)
        hours = stats.hours.total().reindex(range(24), fill_value=0)
        # "-" (no referrer) is listed and counted, as GoAccess does; it is no site.
        referers = stats.referers.total()
        sites = referers.drop(index="-", errors="ignore") if len(referers) else referers
        agents = stats.agents.total()
        panels = {
            "visitors": days,
            "visit_time": hours,
            "status_codes": stats.status.total().sort_index(),
            "requests": _top(keyed[~keyed["static"] & ~keyed["not_found"]], limit),
            "static_requests": _top(keyed[keyed["static"] & ~keyed["not_found"]], limit),
            "not_found": _top(keyed[keyed["not_found"]], limit),
            "hosts": _top(stats.hosts.total(), limit),
            "referrers": _top(referers, limit),
            "referring_sites": _top(_regroup(sites, _site), limit),
            "browsers": _top(_regroup(agents, lambda a: classify(a, BROWSERS)), None),
            "os": _top(_regroup(agents, lambda a: classify(a, OPERATING_SYSTEMS)), None),
            "user_agents": _top(agents, limit),
        }
        static_hits = int(keyed.loc[keyed["static"] & ~keyed["not_found"], "hits"].sum())
        general = {
            "start_date": _day_text(stats.first_local),
            "end_date": _day_text(stats.last_local),
            "first_time_unix": None if stats.valid == 0 else int(stats.first_unix),
            "last_time_unix": None if stats.valid == 0 else int(stats.last_unix),
            "total_requests": stats.valid + stats.failed,
            "valid_requests": stats.valid,
            "failed_requests": stats.failed,
            "excluded_hits": stats.excluded,
            "unique_visitors": int(visitors_per_day.sum()),
            "unique_files": int((~keyed["static"] & ~keyed["not_found"]).sum()),
            "unique_static_files": int((keyed["static"] & ~keyed["not_found"]).sum()),
            "unique_not_found": int(keyed["not_found"].sum()),
            "unique_referrers": len(referers),
            "static_requests": static_hits,
            "dynamic_requests": stats.valid - static_hits,
            "bandwidth": stats.bandwidth,
            "log_path": list(stats.files),
        }
        return cls(general, panels)


def _request_table(requests: pd.DataFrame, extensions: tuple[str, ...]) -> pd.DataFrame:
    """Raw request lines regrouped by (method, URL, protocol, 404) with static flags."""
    if not len(requests):
        empty = pd.DataFrame(
            {"not_found": [], "hits": [], "bytes": [], "static": []},
            index=pd.MultiIndex.from_arrays([[], [], []], names=["method", "url", "protocol"]),
        )
        return empty.astype({"not_found": bool, "hits": "int64", "bytes": "int64", "static": bool})
    raw = requests.index.get_level_values(0)
    split = {text: split_request(text) for text in pd.unique(raw)}
    parts = [split[text] for text in raw]
    table = pd.DataFrame(
        {
            "method": [p[0] for p in parts],
            "url": [p[1] for p in parts],
            "protocol": [p[2] for p in parts],
            "not_found": requests.index.get_level_values(1).to_numpy(dtype=bool),
            "hits": requests["hits"].to_numpy(),
            "bytes": requests["bytes"].to_numpy(),
        }
    )
    table = table.groupby(["method", "url", "protocol", "not_found"], sort=False).sum()
    table = table.reset_index().set_index(["method", "url", "protocol"])
    urls = table.index.get_level_values("url")
    static = {url: is_static(url, extensions) for url in pd.unique(urls)}
    table["static"] = [static[url] for url in urls]
    return table


def _regroup(frame: pd.DataFrame, key: Any) -> pd.DataFrame:
    if not len(frame):
        return frame
    labels = {value: key(value) for value in frame.index}
    return frame.groupby([labels[value] for value in frame.index]).sum()


def _site(referer: str) -> str:
    """The host part of a referrer URL (GoAccess's "referring sites")."""
    rest = referer.split("://", 1)[-1]
    return re.split(r"[/?#]", rest, maxsplit=1)[0] or referer


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day_text(local: float) -> str | None:
    if not np.isfinite(local):
        return None
    day = pd.Timestamp(int(local), unit="s")
    return f"{day.day:02d}/{_MONTHS[day.month - 1]}/{day.year}"


def collect(
    paths: list[str],
    log_format: str | None = None,
    since: float | None = None,
    until: float | None = None,
    static_extensions: tuple[str, ...] = tuple(STATIC_EXTENSIONS),
) -> Statistics:
    """The statistics of several logs (plain, ``.gz`` or ``-``), read chunk by chunk."""
    from pentools.webstats.parse import parse_log

    stats = Statistics(static_extensions=static_extensions, since=since, until=until)
    for path in paths:
        stats.files.append(path)
        for chunk in parse_log(path, log_format):
            stats.add(chunk)
    return stats
