"""The statistics page (self-contained HTML) and its JSON twin.

Every value that comes from a log (URLs, referrers, user agents, host names,
even status codes) is attacker-controlled: it goes through `esc` and nothing
else reaches the page.  The page loads nothing: inline CSS, SVG charts drawn
here (`pentools.webstats.charts`), and one inline script (`SCRIPT`: sortable
tables, and on ``webstats live`` pages the updates) that the
Content-Security-Policy allows by its SHA-256 and nothing else.  Even if an
escape were ever missed, no other script runs and nothing is fetched.

`render_report` draws the inside of the page; a live page receives it again
through Server-Sent Events and swaps it in, keeping open panels and sorting.
"""

from __future__ import annotations

import base64
import hashlib
import http
import json
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from pentools.webstats.aggregate import Report
from pentools.webstats.charts import Series, column_chart, share_chart
from pentools.webstats.text import display, esc

#: The policy of a page with no script (pen's status page): styles inline,
#: images as data: only, no fetch, no frame, no form.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)

#: The page's only script: sort a table by the header clicked (numbers by
#: their ``data-v``), and on a live page (``<body data-live=URL>``) swap in the
#: report each Server-Sent Event carries, keeping open panels and sorting.
SCRIPT = """"use strict";
(() => {
  const sorting = new Map();
  const key = (row, column) => {
    const cell = row.cells[column];
    if (!cell) return "";
    return cell.dataset.v === undefined ? cell.textContent.toLowerCase() : Number(cell.dataset.v);
  };
  const sort = (table, column, descending) => {
    const body = table.tBodies[0];
    if (!body || !table.tHead) return;
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a, column), y = key(b, column);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    body.append(...rows);
    for (const th of table.tHead.rows[0].cells) th.removeAttribute("aria-sort");
    const order = descending ? "descending" : "ascending";
    table.tHead.rows[0].cells[column].setAttribute("aria-sort", order);
  };
  const choose = (event) => {
    const th = event.target.closest && event.target.closest("table.sort th");
    if (!th) return;
    if (event.type === "keydown" && event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    const table = th.closest("table");
    const saved = sorting.get(table.id);
    const descending = saved && saved[0] === th.cellIndex ? !saved[1] : th.classList.contains("n");
    sorting.set(table.id, [th.cellIndex, descending]);
    sort(table, th.cellIndex, descending);
  };
  document.addEventListener("click", choose);
  document.addEventListener("keydown", choose);
  const url = document.body.dataset.live;
  if (!url) return;
  const report = document.getElementById("report");
  const status = document.getElementById("live");
  const events = new EventSource(url);
  events.onopen = () => { status.textContent = "live"; status.className = "live on"; };
  events.onerror = () => {
    status.textContent = "reconnecting\\u2026";
    status.className = "live off";
  };
  events.onmessage = (event) => {
    const open = new Map();
    for (const panel of report.querySelectorAll("details[id]")) open.set(panel.id, panel.open);
    report.innerHTML = event.data;
    for (const panel of report.querySelectorAll("details[id]")) {
      if (open.has(panel.id)) panel.open = open.get(panel.id);
    }
    for (const table of report.querySelectorAll("table.sort")) {
      const saved = sorting.get(table.id);
      if (saved) sort(table, saved[0], saved[1]);
    }
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  };
})();
"""

#: The CSP source of `SCRIPT`, computed from its text so it cannot go stale.
SCRIPT_SOURCE = (
    "'sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode() + "'"
)


def page_csp(live: bool = False) -> str:
    """The policy of the report: `CSP`, plus our script; a live page may also
    open its event stream (same origin only)."""
    policy = f"{CSP}; script-src {SCRIPT_SOURCE}"
    return policy + "; connect-src 'self'" if live else policy


_CSS = """
:root{color-scheme:light dark;--fg:#1c2330;--bg:#f4f6f9;--card:#fff;--line:#e1e5eb;
--muted:#66707f;--a:#3867d6;--b:#e8912d;--c1:#8a94a6;--c2:#2f9e60;--c3:#3867d6;--c4:#e8912d;
--c5:#d63838;--s0:#3867d6;--s1:#2f9e60;--s2:#e8912d;--s3:#8e5bd6;--s4:#d63876;--s5:#8a94a6}
@media (prefers-color-scheme:dark){:root{--fg:#e3e7ee;--bg:#12161c;--card:#1b2129;
--line:#2c3440;--muted:#97a1b0;--a:#6f98ff;--b:#f3a34c;--c1:#9aa4b5;--c2:#4cc382;--c3:#6f98ff;
--c4:#f3a34c;--c5:#ff6b6b;--s0:#6f98ff;--s1:#4cc382;--s2:#f3a34c;--s3:#b38cff;--s4:#ff6fa8;
--s5:#9aa4b5}}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:var(--fg);background:var(--bg)}
header{padding:.7em 1.2em;border-bottom:1px solid var(--line);background:var(--card);
display:flex;align-items:baseline;gap:1em;flex-wrap:wrap}
h1{font-size:1.35em;margin:0}main{padding:0 1.2em 2em;max-width:1280px;margin:auto}
.muted{color:var(--muted);font-size:.85em}
.live{font-size:.8em;padding:.1em .6em;border-radius:1em;border:1px solid var(--line)}
.live.on{color:var(--c2);border-color:var(--c2)}.live.off{color:var(--c5);border-color:var(--c5)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(11em,1fr));gap:.6em;margin:1em 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.5em .8em}
.card b{display:block;font-size:1.45em;font-variant-numeric:tabular-nums}
.card span{color:var(--muted);font-size:.85em}
details{background:var(--card);border:1px solid var(--line);border-radius:8px;margin:.8em 0;
padding:0 .9em}
details[open]{padding-bottom:.8em}
summary{cursor:pointer;padding:.55em 0;list-style-position:outside}
summary h2{display:inline;font-size:1.05em;margin:0}
summary .muted{margin-left:.6em}
.scroll{overflow-x:auto;max-height:36em;overflow-y:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
td,th{border-bottom:1px solid var(--line);padding:.25em .5em;text-align:left;vertical-align:top}
th{position:sticky;top:0;background:var(--card);font-weight:600;white-space:nowrap}
table.sort th{cursor:pointer;user-select:none}table.sort th:hover{color:var(--a)}
th[aria-sort=ascending]::after{content:" \\25B4"}th[aria-sort=descending]::after{content:" \\25BE"}
td.n,th.n{text-align:right;white-space:nowrap}td.t{overflow-wrap:anywhere;min-width:12em;
max-width:42em}
.tables{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,36em),1fr));
gap:0 .8em}.tables details{margin:.4em 0}
.bar{display:inline-block;width:5em;height:.45em;border-radius:.2em;background:var(--line);
margin-right:.5em;vertical-align:middle}
.bar i{display:block;height:100%;border-radius:.2em;background:var(--a)}
svg.chart{width:100%;height:auto;display:block}
svg text{font-size:10px;fill:var(--muted)}
line.grid{stroke:var(--line);stroke-width:1}
polyline.line{fill:none;stroke:var(--c);stroke-width:2}
svg rect,circle.dot{fill:var(--c)}
.chip{display:inline-block;width:.8em;height:.8em;border-radius:.2em;background:var(--c);
margin-right:.35em;vertical-align:-.05em}
.legend{display:flex;gap:1.2em;flex-wrap:wrap;font-size:.85em;color:var(--muted);margin:.3em 0 .6em}
.c-hits{--c:var(--a)}.c-visitors{--c:var(--b)}.c-1xx{--c:var(--c1)}.c-2xx{--c:var(--c2)}
.c-3xx{--c:var(--c3)}.c-4xx{--c:var(--c4)}.c-5xx{--c:var(--c5)}.c-s0{--c:var(--s0)}
.c-s1{--c:var(--s1)}.c-s2{--c:var(--s2)}.c-s3{--c:var(--s3)}.c-s4{--c:var(--s4)}.c-s5{--c:var(--s5)}
.shares{display:grid;grid-template-columns:repeat(auto-fit,minmax(16em,1fr));gap:1em}
figure.share{margin:0;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
figcaption{flex-basis:100%;font-weight:600;font-size:.9em}
svg.ring{width:8.5em;height:8.5em;flex:none}
circle.hole{fill:none;stroke:var(--line);stroke-width:6}
circle.slice{fill:none;stroke:var(--c);stroke-width:6}
text.total{font-size:7px;fill:var(--fg);font-weight:600}
ul.keys{list-style:none;margin:0;padding:0;font-size:.85em;flex:1;min-width:10em}
ul.keys li{display:flex;gap:.3em;padding:.1em 0}
ul.keys .label{flex:1;word-break:break-all}ul.keys .n{color:var(--muted)}
tr.down td{color:var(--c5)}
details p{margin:.3em 0;font-size:.9em}details h3{font-size:.95em;margin:.8em 0 .3em}
"""


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


def _hour_label(hour: int) -> str:
    return time.strftime("%m-%d %Hh", time.gmtime(int(hour) * 3600))


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


class Cell:
    """A table cell: escaped HTML, for a number the value it sorts by; a `wide`
    text (a URL, an agent) may wrap anywhere, a short one (a method) does not."""

    __slots__ = ("html", "value", "wide")

    def __init__(self, html: str, value: float | None = None, wide: bool = True) -> None:
        self.html, self.value, self.wide = html, value, wide


def number(value: int) -> Cell:
    return Cell(f"{value:,}", value)


def size(value: int) -> Cell:
    return Cell(esc(human_bytes(value)), value)


def share(hits: int, total: int, longest: int) -> Cell:
    """The share of `total`, with a bar as long as `hits` is of the largest row's."""
    percent = 100 * hits / total if total else 0.0
    width = 100 * hits / longest if longest else 0.0
    return Cell(f'{percent:.2f}%<span class="bar"><i style="width:{width:.1f}%"></i></span>', hits)


def table(ident: str, headers: list[str], rows: list[list[Cell]]) -> str:
    """A sortable table; numeric columns (the cells with a value) align right."""
    numeric = {i for i, cell in enumerate(rows[0]) if cell.value is not None} if rows else set()
    head = "".join(
        f'<th class="n" tabindex="0">{esc(h)}</th>'
        if i in numeric
        else f'<th tabindex="0">{esc(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            (f'<td class="t">{cell.html}</td>' if cell.wide else f"<td>{cell.html}</td>")
            if cell.value is None
            else f'<td class="n" data-v="{cell.value}">{cell.html}</td>'
            for cell in row
        )
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>'
    return (
        f'<div class="scroll"><table class="sort" id="t-{ident}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def panel(ident: str, heading: str, content: str, note: str = "", open_: bool = True) -> str:
    """A collapsible panel; its id keeps it open or closed across live updates."""
    extra = f'<span class="muted">{esc(note)}</span>' if note else ""
    return (
        f'<details id="p-{ident}"{" open" if open_ else ""}><summary><h2>{esc(heading)}</h2>'
        f"{extra}</summary>{content}</details>"
    )


def _keyed_rows(frame: pd.DataFrame, valid: int, keys: int = 1) -> list[list[Cell]]:
    rows = []
    longest = int(frame["hits"].max()) if len(frame) else 0
    for key, record in zip(frame.index, frame.itertuples(index=False), strict=True):
        parts = key if isinstance(key, tuple) else (key,)
        rows.append(
            [Cell(esc(part), wide=keys == 1 or i == 1) for i, part in enumerate(parts[:keys])]
            + [number(record.hits), share(record.hits, valid, longest), size(record.bytes)]
        )
    return rows


def _traffic(report: Report) -> str:
    """Requests and visitors per day; per hour when the log spans a day or less."""
    g, p = report.general, report.panels
    days, timeline = p["visitors"], p["timeline"]
    if not len(days):
        return '<p class="muted">no valid line</p>'
    if g["last_time_unix"] - g["first_time_unix"] <= 86400 and len(timeline):
        hours = range(int(timeline.index.min()), int(timeline.index.max()) + 1)
        hits = timeline.sum(axis=1).reindex(hours, fill_value=0)
        return column_chart(
            "Requests per hour",
            [_hour_label(h) for h in hours],
            [Series("Requests", [int(v) for v in hits], "c-hits")],
        )
    labels = [_day_label(day) for day in days.index]
    return column_chart(
        "Requests and visitors per day",
        labels,
        [Series("Requests", [int(v) for v in days["hits"]], "c-hits")],
        Series("Visitors", [int(v) for v in days["visitors"]], "c-visitors"),
    )


def _last_hour(report: Report) -> str:
    """Requests in each of the 60 minutes up to the newest line (as logged)."""
    minutes = report.panels["minutes"]["hits"]
    newest = int(minutes.index.max())
    steps = range(newest - 59, newest + 1)
    hits = minutes.reindex(steps, fill_value=0)
    labels = [time.strftime("%H:%M", time.gmtime(minute * 60)) for minute in steps]
    return column_chart(
        "Requests per minute", labels, [Series("Requests", [int(v) for v in hits], "c-hits")]
    )


def _status_over_time(report: Report) -> str:
    """Hits by status class, per hour for a short log, else per day."""
    g, timeline = report.general, report.panels["timeline"]
    if not len(timeline):
        return '<p class="muted">no valid line</p>'
    if g["last_time_unix"] - g["first_time_unix"] <= 2 * 86400:
        steps = range(int(timeline.index.min()), int(timeline.index.max()) + 1)
        frame, labels = timeline.reindex(steps, fill_value=0), [_hour_label(h) for h in steps]
    else:
        by_day = timeline.groupby(timeline.index // 24).sum()
        steps = range(int(by_day.index.min()), int(by_day.index.max()) + 1)
        frame, labels = by_day.reindex(steps, fill_value=0), [_day_label(d) for d in steps]
    bars = [
        Series(name, [int(v) for v in frame[name]], f"c-{name}")
        for name in frame.columns
        if frame[name].sum()
    ]
    return column_chart("Status classes over time", labels, bars)


def _shares(report: Report) -> str:
    p = report.panels
    statuses = p["status_codes"]["hits"]
    charts = [
        share_chart("Browsers", [(str(k), int(v)) for k, v in p["browsers"]["hits"].items()]),
        share_chart("Operating systems", [(str(k), int(v)) for k, v in p["os"]["hits"].items()]),
        share_chart("Status codes", [(str(int(k)), int(v)) for k, v in statuses.items()]),
    ]
    return f'<div class="shares">{"".join(charts)}</div>'


def render_report(report: Report, panels: Sequence[str] = ()) -> str:
    """The inside of the page: numbers, charts and tables (what a live page swaps in).

    `panels` are more panels, already escaped HTML (pen's servers on a live page).
    """
    g, p = report.general, report.panels
    valid = g["valid_requests"]
    cards = [
        ("Total requests", f"{g['total_requests']:,}", "total"),
        ("Valid requests", f"{valid:,}", "valid"),
        ("Failed requests", f"{g['failed_requests']:,}", "failed"),
        ("Unique visitors", f"{g['unique_visitors']:,}", "visitors"),
        ("Bandwidth", human_bytes(g["bandwidth"]), "bandwidth"),
        ("Requested files", f"{g['unique_files']:,}", "files"),
        ("Static requests", f"{g['static_requests']:,}", "static"),
        ("Dynamic requests", f"{g['dynamic_requests']:,}", "dynamic"),
        ("Not found (404)", f"{g['unique_not_found']:,} URLs", "not-found"),
        ("Referrers", f"{g['unique_referrers']:,}", "referrers"),
    ]
    if g["excluded_hits"]:
        cards.append(("Outside --from/--to", f"{g['excluded_hits']:,}", "excluded"))
    span = "no valid line"
    if g["first_time_unix"] is not None:
        logged = f"{g['start_date']} to {g['end_date']}"
        span = (
            f"{_utc(g['first_time_unix'])} to {_utc(g['last_time_unix'])} "
            f"(days and hours below as logged: {logged})"
        )
    out = [
        f'<p class="muted">{esc(", ".join(g["log_path"]))}<br>{esc(span)}<br>'
        f"generated {esc(_utc(time.time()))} by pentools webstats</p>",
        '<div class="cards">',
        *(
            f'<div class="card" id="n-{ident}"><b>{esc(value)}</b><span>{esc(name)}</span></div>'
            for name, value, ident in cards
        ),
        "</div>",
        *panels,
        panel("traffic", "Traffic", _traffic(report)),
    ]
    if len(p["minutes"]):  # open for a log of a day or less (a live one, often)
        short = g["last_time_unix"] - g["first_time_unix"] <= 86400
        chart = _last_hour(report)
        out.append(panel("minutes", "The last hour, per minute (as logged)", chart, open_=short))
    out += [
        panel("status-time", "Status classes over time", _status_over_time(report)),
        panel("shares", "Browsers, systems and status codes", _shares(report)),
    ]
    backends = p["backends"]
    if len(backends):  # the log says which backend served each line (--tag-backend)
        ring = share_chart(
            "Requests by backend", [(str(k), int(v)) for k, v in backends["hits"].items()]
        )
        listing = table(
            "backends", ["Backend", "Requests", "Share", "Bytes"], _keyed_rows(backends, valid)
        )
        out.append(panel("backends", "Backends", f'<div class="shares">{ring}{listing}</div>'))
    days = p["visitors"]
    if len(days) > 1:
        hours = p["visit_time"]
        chart = column_chart(
            "Requests per hour of the day",
            [f"{h:02d}h" for h in hours.index],
            [Series("Requests", [int(v) for v in hours["hits"]], "c-hits")],
        )
        out.append(panel("hours", "Requests per hour of the day (as logged)", chart))
    out.append('<div class="tables">')
    out.append(
        panel(
            "days",
            "Days",
            table(
                "days",
                ["Day", "Requests", "Visitors", "Bytes"],
                [
                    [Cell(esc(_day_label(day))), number(r.hits), number(r.visitors), size(r.bytes)]
                    for day, r in zip(days.index, days.itertuples(index=False), strict=True)
                ],
            ),
            f"{len(days)}",
            open_=len(days) <= 31,
        )
    )
    statuses = p["status_codes"]
    longest = int(statuses["hits"].max()) if len(statuses) else 0
    out.append(
        panel(
            "status",
            "Status codes",
            table(
                "status",
                ["Status", "Requests", "Share", "Bytes"],
                [
                    [
                        Cell(esc(status_text(int(code)))),
                        number(r.hits),
                        share(r.hits, valid, longest),
                        size(r.bytes),
                    ]
                    for code, r in zip(
                        statuses.index, statuses.itertuples(index=False), strict=True
                    )
                ],
            ),
        )
    )
    for key, heading in (
        ("requests", "Requested URLs (dynamic)"),
        ("static_requests", "Static requests"),
        ("not_found", "Not found (404)"),
    ):
        rows = _keyed_rows(p[key], valid, 3)
        headers = ["Method", "URL", "Protocol", "Requests", "Share", "Bytes"]
        out.append(panel(key, heading, table(key, headers, rows), f"top {len(rows)}"))
    for key, heading, label in (
        ("hosts", "Hosts", "Host"),
        ("referrers", "Referrers", "Referrer"),
        ("referring_sites", "Referring sites", "Site"),
        ("browsers", "Browsers", "Browser"),
        ("os", "Operating systems", "System"),
        ("user_agents", "User agents", "User agent"),
    ):
        rows = _keyed_rows(p[key], valid)
        headers = [label, "Requests", "Share", "Bytes"]
        out.append(panel(key, heading, table(key, headers, rows), f"top {len(rows)}"))
    out.append("</div>")
    return "\n".join(out)


def render_html(
    report: Report,
    title: str = "Access log statistics",
    *,
    live: str | None = None,
    panels: Sequence[str] = (),
) -> str:
    """The whole page as one string; with `live` (the URL of its event stream,
    relative to the page) the page keeps itself up to date."""
    body = f'<body data-live="{esc(live)}">' if live else "<body>"
    badge = '<span class="live off" id="live">connecting…</span>' if live else ""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{page_csp(bool(live))}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>{esc(title)}</title><style>{_CSS}</style></head>{body}",
            f"<header><h1>{esc(title)}</h1>{badge}</header>",
            f'<main id="report">{render_report(report, panels)}</main>',
            f"<script>{SCRIPT}</script>",
            "</body></html>\n",
        ]
    )


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
