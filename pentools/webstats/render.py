"""The statistics page (self-contained HTML) and its JSON twin.

Every value that comes from a log (URLs, referrers, user agents, host names,
even status codes) is attacker-controlled: it goes through `html.escape` and
nothing else reaches the page.  The page loads nothing: inline CSS, inline
SVG charts, and a Content-Security-Policy that forbids scripts and any
network access even if an escape were ever missed.
"""

from __future__ import annotations

import html
import http
import json
import time
from typing import Any

import pandas as pd

from pentools.webstats.aggregate import Report

#: No scripts, no fetches, no frames: styles inline and images as data: only.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:0 .8em 2em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:.6em 0 .2em}
h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ccc}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(10em,1fr));gap:.5em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.4em .6em}
.card b{display:block;font-size:1.3em}.card span{color:#666;font-size:.85em}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}
td,th{border-bottom:1px solid #eee;padding:.2em .4em;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}td.t{word-break:break-all;max-width:40em}
svg{width:100%;height:auto;max-height:14em;background:#fff;border:1px solid #ddd}
svg rect{fill:#4a7bb7}svg text{font-size:10px;fill:#555}
.muted{color:#666;font-size:.85em}
"""


def esc(value: object) -> str:
    """Text for HTML (content or a quoted attribute), from any value."""
    return html.escape(display(value), quote=True)


def display(value: object) -> str:
    """A log value as Unicode: the bytes read as UTF-8 where they are, else kept as Latin-1."""
    text = str(value)
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def status_text(code: int) -> str:
    try:
        return f"{code} - {http.HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _day_label(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(day) * 86400))


def bar_chart(labels: list[str], values: list[int], title: str) -> str:
    """An inline SVG bar chart; labels and values are escaped like everything else."""
    width, height, top = 600, 160, max(max(values, default=0), 1)
    step = width / max(len(values), 1)
    bars = []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar = (height - 20) * value / top
        x = index * step
        bars.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{height - 15 - bar:.1f}" '
            f'width="{step * 0.8:.1f}" height="{bar:.1f}">'
            f"<title>{esc(label)}: {value}</title></rect>"
        )
        if len(values) <= 31:
            bars.append(
                f'<text x="{x + step / 2:.1f}" y="{height - 3}" text-anchor="middle">'
                f"{esc(label[-5:])}</text>"
            )
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">'
        f"<title>{esc(title)}</title>{''.join(bars)}</svg>"
    )


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="n">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if i in numeric else f'<td class="t">{cell}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>'
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _keyed_rows(frame: pd.DataFrame, valid: int, keys: int = 1) -> list[list[str]]:
    rows = []
    for key, record in zip(frame.index, frame.itertuples(index=False), strict=True):
        parts = key if isinstance(key, tuple) else (key,)
        share = 100 * record.hits / valid if valid else 0
        rows.append(
            [esc(part) for part in parts[:keys]]
            + [f"{record.hits:,}", f"{share:.2f}%", esc(human_bytes(record.bytes))]
        )
    return rows


def render_html(report: Report, title: str = "Access log statistics") -> str:
    """The whole page as one string."""
    g, p = report.general, report.panels
    valid = g["valid_requests"]
    cards = [
        ("Total requests", f"{g['total_requests']:,}"),
        ("Valid requests", f"{valid:,}"),
        ("Failed requests", f"{g['failed_requests']:,}"),
        ("Unique visitors", f"{g['unique_visitors']:,}"),
        ("Bandwidth", human_bytes(g["bandwidth"])),
        ("Requested files", f"{g['unique_files']:,}"),
        ("Static requests", f"{g['static_requests']:,}"),
        ("Dynamic requests", f"{g['dynamic_requests']:,}"),
        ("Not found (404)", f"{g['unique_not_found']:,} URLs"),
        ("Referrers", f"{g['unique_referrers']:,}"),
    ]
    if g["excluded_hits"]:
        cards.append(("Outside --from/--to", f"{g['excluded_hits']:,}"))
    span = "no valid line"
    if g["first_time_unix"] is not None:
        first = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(g["first_time_unix"]))
        last = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(g["last_time_unix"]))
        logged = f"{g['start_date']} to {g['end_date']}"
        span = f"{first} to {last} (days and hours below as logged: {logged})"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="muted">{esc(", ".join(g["log_path"]))}<br>{esc(span)}<br>'
        f"generated {esc(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}"
        " by pentools webstats</p>",
        '<div class="cards">',
        *(
            f'<div class="card"><b>{esc(value)}</b><span>{esc(name)}</span></div>'
            for name, value in cards
        ),
        "</div>",
    ]
    days = p["visitors"]
    if len(days):
        labels = [_day_label(day) for day in days.index]
        out += [
            "<h2>Requests per day</h2>",
            bar_chart(labels, [int(v) for v in days["hits"]], "Requests per day"),
            _table(
                ["Day", "Requests", "Visitors", "Bytes"],
                [
                    [esc(label), f"{r.hits:,}", f"{r.visitors:,}", esc(human_bytes(r.bytes))]
                    for label, r in zip(labels, days.itertuples(index=False), strict=True)
                ],
                {1, 2, 3},
            ),
        ]
    hours = p["visit_time"]
    out += [
        "<h2>Requests per hour of the day (as logged)</h2>",
        bar_chart(
            [f"{h:02d}h" for h in hours.index], [int(v) for v in hours["hits"]], "Requests per hour"
        ),
    ]
    statuses = p["status_codes"]
    out += [
        "<h2>Status codes</h2>",
        _table(
            ["Status", "Requests", "Share", "Bytes"],
            [
                [
                    esc(status_text(int(code))),
                    f"{r.hits:,}",
                    f"{100 * r.hits / valid:.2f}%",
                    esc(human_bytes(r.bytes)),
                ]
                for code, r in zip(statuses.index, statuses.itertuples(index=False), strict=True)
            ],
            {1, 2, 3},
        ),
    ]
    for key, heading in (
        ("requests", "Requested URLs (dynamic)"),
        ("static_requests", "Static requests"),
        ("not_found", "Not found (404)"),
    ):
        out += [
            f"<h2>{esc(heading)}</h2>",
            _table(
                ["Method", "URL", "Protocol", "Requests", "Share", "Bytes"],
                _keyed_rows(p[key], valid, 3),
                {3, 4, 5},
            ),
        ]
    for key, heading, label in (
        ("hosts", "Hosts", "Host"),
        ("referrers", "Referrers", "Referrer"),
        ("referring_sites", "Referring sites", "Site"),
        ("browsers", "Browsers", "Browser"),
        ("os", "Operating systems", "System"),
        ("user_agents", "User agents", "User agent"),
    ):
        out += [
            f"<h2>{esc(heading)}</h2>",
            _table([label, "Requests", "Share", "Bytes"], _keyed_rows(p[key], valid), {1, 2, 3}),
        ]
    out.append("</body></html>\n")
    return "\n".join(out)


def _items(frame: pd.DataFrame, keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    items = []
    for key, record in zip(frame.index, frame.itertuples(index=False), strict=True):
        item: dict[str, Any] = {
            "hits": {"count": int(record.hits)},
            "bytes": {"count": int(record.bytes)},
        }
        if hasattr(record, "visitors"):
            item["visitors"] = {"count": int(record.visitors)}
        if keys:
            for name, part in zip(keys, key, strict=True):
                item[name] = display(part)
            item["data"] = item.pop("url")
        else:
            item["data"] = display(key)
        items.append(item)
    return items


def render_json(report: Report) -> str:
    """The statistics as JSON, shaped like GoAccess's (``general`` and one object per panel)."""
    p = report.panels
    statuses = p["status_codes"]
    classes: dict[str, list[dict[str, Any]]] = {}
    for code, record in zip(statuses.index, statuses.itertuples(index=False), strict=True):
        classes.setdefault(f"{int(code) // 100}xx", []).append(
            {
                "hits": {"count": int(record.hits)},
                "bytes": {"count": int(record.bytes)},
                "data": str(int(code)),
            }
        )
    days = p["visitors"].copy()
    days.index = [_day_label(day).replace("-", "") for day in days.index]
    hours = p["visit_time"].copy()
    hours.index = [f"{h:02d}" for h in hours.index]
    document = {
        "general": report.general,
        "visitors": {"data": _items(days)},
        "visit_time": {"data": _items(hours)},
        "requests": {"data": _items(p["requests"], ("method", "url", "protocol"))},
        "static_requests": {"data": _items(p["static_requests"], ("method", "url", "protocol"))},
        "not_found": {"data": _items(p["not_found"], ("method", "url", "protocol"))},
        "hosts": {"data": _items(p["hosts"])},
        "referrers": {"data": _items(p["referrers"])},
        "referring_sites": {"data": _items(p["referring_sites"])},
        "browsers": {"data": _items(p["browsers"])},
        "os": {"data": _items(p["os"])},
        "user_agents": {"data": _items(p["user_agents"])},
        "status_codes": {
            "data": [
                {
                    "hits": {"count": sum(i["hits"]["count"] for i in items)},
                    "bytes": {"count": sum(i["bytes"]["count"] for i in items)},
                    "data": name,
                    "items": items,
                }
                for name, items in classes.items()
            ]
        },
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
