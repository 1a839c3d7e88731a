"""The per-day usage chart's SVG (pure logic): one bar per day of the period, round grid labels, words for readers."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from xml.etree import ElementTree

from clawhost_control_api.dashboard.usage_chart import ChartDay, nice_ceiling, period_days, render_usage_chart

SVG = "{http://www.w3.org/2000/svg}"
START, END = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


def test_a_period_has_each_day_it_touches_once() -> None:
    assert len(period_days(START, END)) == 31
    assert period_days(START, END)[-1] == date(2026, 12, 31), "an end at midnight starts no day"
    stripe = period_days(datetime(2026, 12, 3, 14, 5, tzinfo=UTC), datetime(2027, 1, 3, 14, 5, tzinfo=UTC))
    assert (stripe[0], stripe[-1], len(stripe)) == (date(2026, 12, 3), date(2027, 1, 3), 32)


def test_the_scale_is_round() -> None:
    assert [nice_ceiling(v) for v in (0, 999, 1_001, 1_900, 2_100, 4_000, 7_000, 12_345, 2_600_000)] == [
        1_000,
        1_000,
        2_000,
        2_000,
        2_500,
        5_000,
        10_000,
        20_000,
        5_000_000,
    ]


def test_bars_are_the_days_values_to_scale() -> None:
    series = [
        ChartDay(date(2026, 12, 3), 10_000),
        ChartDay(date(2026, 12, 10), 5_000),
        ChartDay(date(2026, 11, 30), 99),
    ]
    svg = render_usage_chart(series, START, END, today=date(2026, 12, 10))
    root = ElementTree.fromstring(svg)  # noqa: S314 - our own markup
    assert root.get("role") == "img"
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 31, "one bar a day, zero where nothing was used; the day before the period is left out"
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights[2] == max(heights) > 0
    assert abs(heights[9] * 2 - heights[2]) < 0.2, "half the tokens, half the height"
    assert sum(1 for h in heights if h > 0) == 2
    assert bars[9].get("class") == "chart-bar chart-today"
    titles = [b.findtext(f"{SVG}title") for b in bars]
    assert titles[2] == "3 Dec: 10,000 tokens"
    labels = [t.text for t in root.findall(f"{SVG}text")]
    assert labels[:5] == ["0", "2.5k", "5k", "7.5k", "10k"], "the grid is labelled in round numbers"
    assert "1 Dec" in labels
    desc = root.findtext(f"{SVG}desc")
    assert desc == "15,000 tokens used from 1 Dec to 31 Dec; the most on 3 Dec: 10,000."
    assert not re.search(r"\sstyle=", svg), "no inline styles: the CSP forbids them"


def test_an_empty_period_says_so() -> None:
    root = ElementTree.fromstring(render_usage_chart([], START, END, today=date(2026, 12, 2)))  # noqa: S314 - our own markup
    assert root.findtext(f"{SVG}desc") == "No tokens used from 1 Dec to 31 Dec."
    assert all(float(b.get("height") or 0) == 0 for b in root.findall(f"{SVG}rect"))
