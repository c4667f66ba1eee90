"""Report charts are self-contained, well-formed SVG that show their data and escape every text (README, Reports)."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest

from analytics.charts import bar_chart_svg, grouped_bar_chart_svg, line_chart_svg, timeline_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2024, 1, 2, tzinfo=UTC)


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def test_line_chart_draws_each_series_with_axes_and_a_legend() -> None:
    x = [T0 + timedelta(days=i) for i in range(300)]
    equity = [100_000 * (1 + 0.001 * i) for i in range(300)]
    benchmark = [100_000 * (1 + 0.0005 * i) for i in range(300)]

    root = _parse(
        line_chart_svg(x, {"equity": equity, "benchmark": benchmark}, title="Equity", y_label="USD")
    )

    paths = root.findall(f"{SVG}path")
    assert [p.get("data-series") for p in paths] == ["equity", "benchmark"]
    assert all(p.get("d", "").startswith("M") and p.get("d", "").count("L") == 299 for p in paths)
    texts = _texts(root)
    assert "Equity" in texts
    assert "USD" in texts
    assert {"equity", "benchmark"} <= set(texts)
    assert "2024-01-02" in texts  # the first time tick
    assert sum(t.replace(",", "").isdigit() for t in texts) >= 3  # value ticks


def test_titles_and_labels_are_escaped() -> None:
    x = [T0, T0 + timedelta(days=1)]

    for svg in (
        line_chart_svg(x, {"a<b & c": [1.0, 2.0]}, title="<P&L>", y_label='"quoted"'),
        bar_chart_svg(["<script>"], [1.0], title="<P&L>"),
        timeline_svg([(x[0], x[1], "crisis & <panic>")], title="<P&L>"),
    ):
        assert "<P&L>" not in svg
        assert "&lt;P&amp;L&gt;" in svg
        root = _parse(svg)
        assert root.find(f"{SVG}title").text == "<P&L>"
        assert "<script>" not in svg


def test_long_series_are_thinned_but_keep_their_extremes() -> None:
    n = 100_000
    x = [T0 + timedelta(minutes=i) for i in range(n)]
    values = [math.sin(i / 500) for i in range(n)]
    values[54_321] = -5.0  # a one-minute crash

    svg = line_chart_svg(x, {"equity": values}, title="Minutes", max_points=2_000)

    path = _parse(svg).find(f"{SVG}path")
    assert path is not None
    points = path.get("d", "").split()
    assert len(points) <= 2_100
    lowest_y = max(float(p[1:].split(",")[1]) for p in points)
    assert lowest_y == pytest.approx(260 - 40)  # the crash sits on the bottom of the plot
    assert len(svg) < 150_000


def test_missing_values_break_the_line() -> None:
    x = [T0 + timedelta(days=i) for i in range(5)]

    path = _parse(line_chart_svg(x, {"ic": [0.1, 0.2, math.nan, 0.1, 0.0]}, title="IC")).find(f"{SVG}path")

    assert path is not None
    assert path.get("d", "").count("M") == 2


def test_daily_dates_are_accepted_on_the_time_axis() -> None:
    x = [date(2024, 3, 1) + timedelta(days=i) for i in range(10)]

    root = _parse(line_chart_svg(x, {"drawdown": [0.01 * i for i in range(10)]}, title="Drawdown"))

    assert "2024-03-01" in _texts(root)


def test_bar_chart_puts_losses_below_the_zero_line() -> None:
    root = _parse(bar_chart_svg(["momentum", "breakout"], [120.0, -80.0], title="P&L by signal type"))

    gain, loss = root.findall(f"{SVG}rect")[1:]
    zero_lines = [line for line in root.findall(f"{SVG}line") if line.get("stroke") == "#444444"]
    zero = float(zero_lines[-1].get("y1", "nan"))
    assert float(gain.get("y", "nan")) + float(gain.get("height", "nan")) == pytest.approx(zero, abs=0.2)
    assert float(loss.get("y", "nan")) == pytest.approx(zero, abs=0.2)
    assert float(gain.get("height", "0")) > float(loss.get("height", "0")) > 0
    assert {"momentum", "breakout"} <= set(_texts(root))


def test_timeline_colours_each_label_and_lists_it_in_the_legend() -> None:
    hours = [T0 + timedelta(hours=i) for i in range(5)]
    segments = [
        (hours[0], hours[1], "trending"),
        (hours[1], hours[2], "crisis"),
        (hours[2], hours[3], "trending"),
        (hours[3], hours[4], "trending"),  # continues the previous band
    ]

    root = _parse(timeline_svg(segments, title="Regimes"))

    bands = [r for r in root.findall(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert [b.find(f"{SVG}title").text for b in bands] == ["trending", "crisis", "trending"]
    assert bands[0].get("fill") == bands[2].get("fill") != bands[1].get("fill")
    assert {"trending", "crisis"} <= set(_texts(root))


@pytest.mark.parametrize(
    "svg",
    [
        line_chart_svg([], {}, title="Equity"),
        line_chart_svg([T0], {"equity": [math.nan]}, title="Equity"),
        bar_chart_svg([], [], title="P&L"),
        timeline_svg([], title="Regimes"),
    ],
    ids=["line", "line-all-nan", "bar", "timeline"],
)
def test_empty_input_shows_a_no_data_placeholder(svg: str) -> None:
    assert "no data" in _texts(_parse(svg))


def test_charts_need_no_network() -> None:
    x = [T0, T0 + timedelta(days=1)]
    svgs = [
        line_chart_svg(x, {"a": [1.0, 2.0]}, title="t"),
        bar_chart_svg(["a"], [1.0], title="t"),
        timeline_svg([(x[0], x[1], "a")], title="t"),
    ]

    for svg in svgs:
        assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "<script" not in svg


def _time_ticks(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "time-tick"]


@pytest.mark.parametrize(
    ("span", "label"),
    [
        (timedelta(0), r"\d\d:\d\d"),  # one snapshot
        (timedelta(seconds=10), r"\d\d:\d\d:\d\d"),
        (timedelta(hours=5), r"\d\d:\d\d"),
        (timedelta(hours=30), r"\d\d-\d\d \d\d:\d\d"),  # crosses midnight: the date too
        (timedelta(days=3), r"\d{4}-\d\d-\d\d"),
        (timedelta(days=400), r"\d{4}-\d\d-\d\d"),
        (timedelta(days=3_000), r"\d{4}-\d\d-\d\d"),
    ],
    ids=["instant", "seconds", "hours", "over-midnight", "days", "a-year", "years"],
)
def test_time_ticks_are_distinct_and_formatted_by_span(span: timedelta, label: str) -> None:
    start = T0 + timedelta(hours=20 if span == timedelta(hours=30) else 10, minutes=17)
    x = [start + span * k / 10 for k in range(11)] if span else [start]

    ticks = _time_ticks(_parse(line_chart_svg(x, {"equity": [100.0] * len(x)}, title="Equity")))

    assert 2 <= len(ticks) <= 7, ticks
    assert len(set(ticks)) == len(ticks), ticks
    assert all(re.fullmatch(label, tick) for tick in ticks), ticks


def test_a_single_day_is_drawn_as_a_dot_on_an_axis_around_that_day() -> None:
    root = _parse(line_chart_svg([date(2024, 1, 5)], {"ic": [0.03]}, title="Daily IC"))

    assert len(root.findall(f"{SVG}circle")) == 1
    ticks = _time_ticks(root)
    assert len(set(ticks)) == len(ticks) >= 2
    assert "01-05 00:00" in ticks


def test_value_ticks_of_a_narrow_range_are_distinct() -> None:
    x = [T0 + timedelta(days=i) for i in range(3)]

    root = _parse(line_chart_svg(x, {"ic": [0.0012, 0.0015, 0.0019]}, title="IC"))

    ticks = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "value-tick"]
    assert len(ticks) >= 3
    assert len(set(ticks)) == len(ticks), ticks


def test_the_lowest_point_is_ringed_and_labelled_with_its_value() -> None:
    x = [T0 + timedelta(hours=i) for i in range(5)]

    root = _parse(
        line_chart_svg(
            x, {"drawdown": [0.0, -0.1, -0.4, -0.2, 0.0]}, title="Drawdown", mark_lowest=lambda v: f"{v}"
        )
    )

    [ring] = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "lowest"]
    [label] = [t for t in root.iter(f"{SVG}text") if t.get("class") == "lowest"]
    path = root.find(f"{SVG}path")
    assert path is not None
    points = [tuple(map(float, p[1:].split(","))) for p in path.get("d", "").split()]
    assert (float(ring.get("cx", "nan")), float(ring.get("cy", "nan"))) == points[2]
    assert label.text == "-0.4"


def test_a_timeline_given_its_period_shows_a_band_that_starts_late_where_it_starts() -> None:
    hours = [T0 + timedelta(hours=i) for i in range(5)]

    root = _parse(
        timeline_svg([(hours[2], hours[4], "crisis")], title="Regimes", start=hours[0], end=hours[4])
    )

    [band] = [r for r in root.findall(f"{SVG}rect") if r.get("data-label")]
    assert float(band.get("x", "nan")) == pytest.approx(64 + (800 - 16 - 64) / 2, abs=0.1)
    assert float(band.get("data-start", "nan")) == hours[2].timestamp()


def test_grouped_bar_chart_puts_each_series_side_by_side_per_label_with_a_legend() -> None:
    root = _parse(
        grouped_bar_chart_svg(
            ["fold 1", "fold 2"],
            {"in-sample": [2.0, 1.5], "out-of-sample": [-0.5, math.nan]},
            title="Sharpe <per fold>",
        )
    )

    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    shown = [r.find(f"{SVG}title").text for r in bars]  # type: ignore[union-attr]
    assert shown == ["fold 1 in-sample: 2", "fold 1 out-of-sample: -0.5", "fold 2 in-sample: 1.5"]
    x = [float(r.get("x", "nan")) for r in bars]
    assert x[0] < x[1] < x[2]  # side by side within a fold, folds left to right
    texts = _texts(root)
    assert {"fold 1", "fold 2", "in-sample", "out-of-sample", "Sharpe <per fold>"} <= set(texts)
