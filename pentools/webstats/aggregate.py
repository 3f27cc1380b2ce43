"""The report drawn from a `State`: the general numbers and one table per panel.

The state (`pentools.webstats.state`) holds exact counts per key; here they
are regrouped into GoAccess's panels and cut to the top N, ties broken by
key so that any merge order gives the same page.  The rules are GoAccess's,
so that the headline numbers can be compared:

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pentools.webstats.state import State

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


def _top(frame: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The rows by hits, then bytes, then key: the same order whatever order the keys came in."""
    if not len(frame):
        return pd.DataFrame({"hits": [], "bytes": []}, dtype="int64")
    names = [f"_key{n}" for n in range(frame.index.nlevels)]
    flat = frame.rename_axis(names).reset_index()
    ascending = [False, False] + [True] * len(names)
    ordered = flat.sort_values(["hits", "bytes", *names], ascending=ascending, kind="stable")
    if limit is not None:
        ordered = ordered.head(limit)
    return ordered.set_index(names).rename_axis([None] * len(names))


def _counts(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """A state table as hits and bytes indexed by `keys`."""
    return table.set_index(keys)[["hits", "bytes"]]


@dataclass
class Report:
    """The finished statistics: the general numbers and one table per panel."""

    general: dict[str, Any]
    panels: dict[str, pd.DataFrame]

    @classmethod
    def build(
        cls,
        state: State,
        limit: int = 50,
        static_extensions: tuple[str, ...] = tuple(STATIC_EXTENSIONS),
    ) -> Report:
        """The report of a state: every panel from its tables, top N cut here."""
        series = state.table("series")
        valid, bandwidth = int(series["hits"].sum()), int(series["bytes"].sum())
        by_day = series.assign(day=series["hour"] // 24)
        days = by_day.groupby("day")[["hits", "bytes"]].sum()
        visitors = state.visitors()
        visitors_per_day = visitors.groupby("day").size()
        if len(days):
            days["visitors"] = visitors_per_day.reindex(days.index, fill_value=0)
        of_day = series.assign(hour=series["hour"] % 24).groupby("hour")[["hits", "bytes"]]
        hours = of_day.sum().reindex(range(24), fill_value=0)
        statuses = series.groupby("status")[["hits", "bytes"]].sum()
        keyed = _request_table(state.table("requests"), static_extensions)
        # "-" (no referrer) is listed and counted, as GoAccess does; it is no site.
        referers = _counts(state.table("referrers"), ["referrer"])
        sites = referers.drop(index="-", errors="ignore") if len(referers) else referers
        agents = _counts(state.table("agents"), ["agent"])
        panels = {
            "visitors": days,
            "visit_time": hours,
            "status_codes": statuses,
            "requests": _top(keyed[~keyed["static"] & ~keyed["not_found"]], limit),
            "static_requests": _top(keyed[keyed["static"] & ~keyed["not_found"]], limit),
            "not_found": _top(keyed[keyed["not_found"]], limit),
            "hosts": _top(_counts(state.table("hosts"), ["host"]), limit),
            "referrers": _top(referers, limit),
            "referring_sites": _top(_regroup(sites, _site), limit),
            "browsers": _top(_regroup(agents, lambda a: classify(a, BROWSERS)), None),
            "os": _top(_regroup(agents, lambda a: classify(a, OPERATING_SYSTEMS)), None),
            "user_agents": _top(agents, limit),
        }
        static_hits = int(keyed.loc[keyed["static"] & ~keyed["not_found"], "hits"].sum())
        failed = state.failed
        counted = valid > 0
        general = {
            "start_date": _day_text(state.first_local),
            "end_date": _day_text(state.last_local),
            "first_time_unix": int(state.first_unix) if counted else None,
            "last_time_unix": int(state.last_unix) if counted else None,
            "total_requests": valid + failed,
            "valid_requests": valid,
            "failed_requests": failed,
            "excluded_hits": state.excluded,
            "unique_visitors": len(visitors),
            "unique_files": int((~keyed["static"] & ~keyed["not_found"]).sum()),
            "unique_static_files": int((keyed["static"] & ~keyed["not_found"]).sum()),
            "unique_not_found": int(keyed["not_found"].sum()),
            "unique_referrers": len(referers),
            "static_requests": static_hits,
            "dynamic_requests": valid - static_hits,
            "bandwidth": bandwidth,
            "log_path": sorted(state.files),
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
    # Each distinct line is split once, in Python; rows take theirs by code.
    codes, uniques = pd.factorize(requests["request"])
    split = np.array([split_request(text) for text in uniques.tolist()], dtype=object)
    table = pd.DataFrame(
        {
            "method": split[codes, 0],
            "url": split[codes, 1],
            "protocol": split[codes, 2],
            "not_found": requests["not_found"].to_numpy(dtype=bool),
            "hits": requests["hits"].to_numpy(),
            "bytes": requests["bytes"].to_numpy(),
        }
    )
    table = table.groupby(["method", "url", "protocol", "not_found"], sort=False).sum()
    table = table.reset_index().set_index(["method", "url", "protocol"])
    codes, urls = pd.factorize(table.index.get_level_values("url"))
    static = np.array([is_static(url, extensions) for url in urls.tolist()], dtype=bool)
    table["static"] = static[codes]
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
