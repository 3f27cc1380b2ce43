"""Charts as inline SVG, drawn on the server: no script, no library, nothing fetched.

Colours are not in the markup: each series carries a class (``c-hits``,
``c-2xx``, ``c-s0`` ...) that the page's stylesheet maps to a colour of its
light or dark theme.  Every label can come from a log, so every label goes
through `esc`; numbers are formatted here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pentools.webstats.text import esc

#: Drawing area of the column charts, in SVG units (the SVG scales to its box).
WIDTH, HEIGHT = 1000, 200
LEFT, RIGHT, BOTTOM, TOP = 46, 24, 20, 8
#: Slices of a share chart before the rest is summed as "Others".
SLICES = 6


@dataclass(frozen=True)
class Series:
    """One named row of values, drawn in the colour of its CSS class."""

    name: str
    values: list[int]
    css: str


def short_number(value: float) -> str:
    """1234 as 1.2k, 5600000 as 5.6M: axis labels stay short."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            scaled = value / limit
            return (
                f"{scaled:.0f}{suffix}"
                if scaled >= 10
                else f"{scaled:.1f}{suffix}".replace(".0" + suffix, suffix)
            )
    return f"{value:.0f}"


def nice_top(value: float) -> float:
    """The top of an axis of four ticks at or above `value`: each tick a round
    number (1, 2, 2.5 or 5 times a power of ten, at least 1)."""
    tick = max(value / 4, 1)
    power = 10 ** math.floor(math.log10(tick))
    return 4 * next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= tick)


def legend(series: list[tuple[str, str]]) -> str:
    """A legend under a chart: (name, css class) chips."""
    items = "".join(f'<span><i class="chip {css}"></i>{esc(name)}</span>' for name, css in series)
    return f'<div class="legend">{items}</div>'


def column_chart(
    title: str, labels: list[str], bars: list[Series], line: Series | None = None
) -> str:
    """Columns per label, the `bars` series stacked, and an optional `line` over them."""
    count = len(labels)
    stacked = [sum(values) for values in zip(*(s.values for s in bars), strict=True)] or [0]
    top = nice_top(max([*stacked, *(line.values if line else [])], default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - BOTTOM - TOP
    step = plot_w / max(count, 1)
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{esc(title)}"><title>{esc(title)}</title>'
    ]
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"></line>'
            f'<text class="axis" x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{short_number(value)}</text>"
        )
    every = max(1, math.ceil(count / 12))
    for index, label in enumerate(labels):
        x = LEFT + index * step
        base = float(TOP + plot_h)
        for series in bars:
            value = series.values[index]
            if value <= 0:
                continue
            height = plot_h * value / top
            base -= height
            out.append(
                f'<rect class="{series.css}" x="{x + step * 0.12:.1f}" y="{base:.1f}" '
                f'width="{max(step * 0.76, 0.5):.1f}" height="{height:.1f}">'
                f"<title>{esc(label)} · {esc(series.name)}: {value:,}</title></rect>"
            )
        if index % every == 0:
            out.append(
                f'<text class="axis" x="{x + step / 2:.1f}" y="{HEIGHT - 5}" '
                f'text-anchor="middle">{esc(label)}</text>'
            )
    if line is not None and count:
        points = [
            (LEFT + (i + 0.5) * step, TOP + plot_h - plot_h * v / top)
            for i, v in enumerate(line.values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<polyline class="line {line.css}" points="{path}"></polyline>')
        if count <= 62:
            out += [
                f'<circle class="dot {line.css}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{esc(label)} · {esc(line.name)}: {value:,}</title></circle>"
                for (x, y), label, value in zip(points, labels, line.values, strict=True)
            ]
    out.append("</svg>")
    names = [(s.name, s.css) for s in bars] + ([(line.name, line.css)] if line else [])
    return "".join(out) + legend(names)


def share_chart(title: str, items: list[tuple[str, int]]) -> str:
    """A ring of the shares of `items` (label, count), the largest first, and its legend."""
    items = sorted(items, key=lambda item: -item[1])
    if len(items) > SLICES:
        items = [*items[: SLICES - 1], ("Others", sum(v for _, v in items[SLICES - 1 :]))]
    total = sum(value for _, value in items)
    # A circle of circumference 100: a slice of p percent is a dash of length p.
    out = [
        f'<figure class="share"><figcaption>{esc(title)}</figcaption>'
        f'<svg class="ring" viewBox="0 0 42 42" role="img" aria-label="{esc(title)}">'
        f"<title>{esc(title)}</title>"
        '<circle class="hole" cx="21" cy="21" r="15.915"></circle>'
    ]
    rows = []
    start = 0.0
    for index, (label, value) in enumerate(items):
        share = 100 * value / total if total else 0
        css = f"c-s{index}"
        out.append(
            f'<circle class="slice {css}" cx="21" cy="21" r="15.915" '
            f'stroke-dasharray="{share:.3f} {100 - share:.3f}" '
            f'stroke-dashoffset="{25 - start:.3f}"><title>{esc(label)}: {value:,} '
            f"({share:.1f}%)</title></circle>"
        )
        rows.append(
            f'<li><i class="chip {css}"></i><span class="label">{esc(label)}</span>'
            f'<span class="n">{share:.1f}%</span></li>'
        )
        start += share
    out.append(
        f'<text class="total" x="21" y="23" text-anchor="middle">{short_number(total)}</text>'
    )
    out.append(f'</svg><ul class="keys">{"".join(rows)}</ul></figure>')
    return "".join(out)
