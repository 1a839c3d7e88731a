"""The per-day usage chart as an SVG document drawn by us: one bar per day of the billing period.

Pure: the same days give the same markup, so the page's first render and the live stream draw it alike. Colours
come from classes the stylesheet sets (no style attributes: the Content-Security-Policy allows no inline styles);
the chart is an image with a title and a description that say what a sighted reader sees, and each bar's own
title names its day and count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

from clawhost_control_api.dashboard.usage_gauge import tokens

# Narrow enough that its labels stay readable scaled down to a phone's width (the stylesheet caps it on desktops).
WIDTH, HEIGHT = 400, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 28  # room for the axis labels
GRID_LINES = 4


@dataclass(frozen=True)
class ChartDay:
    day: date
    tokens: int


def period_days(start: datetime, end: datetime) -> list[date]:
    """Each calendar day (UTC) the period touches; an end at midnight does not start a day of its own."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (at least 1000), so grid labels are round."""
    if value <= 1_000:
        return 1_000
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return int(step * power)
    return 10 * power  # pragma: no cover - the loop always returns


def fill_days(series: list[ChartDay], days: list[date]) -> list[ChartDay]:
    """The period's days in order, zero where nothing was used; days outside the period are dropped."""
    by_day: dict[date, int] = {}
    for entry in series:
        by_day[entry.day] = by_day.get(entry.day, 0) + entry.tokens
    return [ChartDay(day, by_day.get(day, 0)) for day in days]


def _label(day: date) -> str:
    return f"{day.day} {day:%b}"


def render_usage_chart(series: list[ChartDay], start: datetime, end: datetime, today: date) -> str:
    days = fill_days(series, period_days(start, end))
    top = nice_ceiling(max((d.tokens for d in days), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="usage-chart" role="img"'
        ' aria-labelledby="usage-chart-title usage-chart-desc">',
        '<title id="usage-chart-title">Tokens used per day this period</title>',
        f'<desc id="usage-chart-desc">{escape(describe_series(days))}</desc>',
    ]
    for i in range(GRID_LINES + 1):
        value = top * i // GRID_LINES
        y = TOP + plot_h - plot_h * i / GRID_LINES
        parts.append(f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="chart-label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tokens(value)}</text>'
        )
    every = max(1, math.ceil(len(days) / 4))  # at most about four date labels, so they never overlap
    for i, entry in enumerate(days):
        x = LEFT + slot * i + (slot - bar_w) / 2
        height = plot_h * entry.tokens / top
        y = TOP + plot_h - height
        kind = "chart-bar chart-today" if entry.day == today else "chart-bar"
        parts.append(
            f'<rect class="{kind}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{height:.1f}">'
            f"<title>{_label(entry.day)}: {entry.tokens:,} tokens</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text class="chart-label" x="{x + bar_w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{_label(entry.day)}</text>"
            )
    parts.append(f'<line class="chart-axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>')
    parts.append("</svg>")
    return "".join(parts)


def describe_series(days: list[ChartDay]) -> str:
    if not days:
        return "No days in this period."
    span = f"from {_label(days[0].day)} to {_label(days[-1].day)}"
    total = sum(d.tokens for d in days)
    if total == 0:
        return f"No tokens used {span}."
    busiest = max(days, key=lambda d: d.tokens)
    return f"{total:,} tokens used {span}; the most on {_label(busiest.day)}: {busiest.tokens:,}."
