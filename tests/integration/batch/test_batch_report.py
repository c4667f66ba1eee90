"""The daily report: one self-contained HTML file with its charts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from batch_records import START, SystemOfRecord, apply_schema, build_system_of_record, write_system_of_record

from flows.daily_report import write_report
from flows.sync import sync

SVG = "{http://www.w3.org/2000/svg}"


def test_the_report_is_self_contained_and_holds_its_charts(
    loaded_database: str, tradeos_home: Path, system_of_record: SystemOfRecord
) -> None:
    sync(tradeos_home, loaded_database)
    reports = tradeos_home / "reports"

    path = write_report(tradeos_home, reports, through=None, annualization=252, now=datetime.now(UTC))

    last_day = max(e["timestamp"] for e in system_of_record.equity).date()
    assert path == reports / f"{last_day.isoformat()}.html"
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no scripts, stylesheets, images or fonts from anywhere (the SVG namespace is only a name).
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"url\(|@import|<script|<link|<img|<iframe", html, re.IGNORECASE)
    assert html.count("<svg") == 6
    for title in (
        "Equity",
        "Drawdown",
        "P&amp;L of closed trades by signal type",
        "Mean IC by signal type",
        "Market regime",
    ):
        assert f"<title>{title}</title>" in html
    assert "momentum" in html
    assert "mean_reversion" in html
    assert "crisis" in html


def test_a_report_for_an_earlier_day_uses_only_data_up_to_that_day(
    loaded_database: str, tradeos_home: Path
) -> None:
    sync(tradeos_home, loaded_database)
    path = write_report(
        tradeos_home,
        tradeos_home / "reports",
        through=date(2026, 1, 6),
        annualization=252,
        now=datetime.now(UTC),
    )
    html = path.read_text(encoding="utf-8")
    assert path.name == "2026-01-06.html"
    assert '<td>Days</td><td class="num">2</td>' in html


# ---- A short history: one simulated morning (README, Reports; issue 9, item 8) ----

SHORT_HOURS = 6


@pytest.fixture(scope="module")
def short_record() -> SystemOfRecord:
    return build_system_of_record(sim_days=SHORT_HOURS / 24)


@pytest.fixture
def short_report(database_url: str, tradeos_home: Path, short_record: SystemOfRecord) -> str:
    """The report after six hours of trading on the first day, as `tradeos up --sim-days` would leave it."""
    apply_schema(database_url)
    write_system_of_record(database_url, short_record, until=START + timedelta(hours=SHORT_HOURS))
    sync(tradeos_home, database_url)
    path = write_report(tradeos_home, tradeos_home / "reports", through=None, annualization=252, now=START)
    return path.read_text(encoding="utf-8")


def _key_figures(html: str) -> dict[str, str]:
    """The key-figures table as {figure: shown text} (tags stripped)."""
    table = html.split("<h2>Key figures</h2>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td class=\"num\">(.*?)</td></tr>", table)
    return {name: re.sub(r"<[^>]+>", "", value) for name, value in rows}


def _charts(html: str) -> dict[str, ET.Element]:
    """Every inline SVG chart by its title."""
    charts = {}
    for svg in re.findall(r"<svg .*?</svg>", html, re.DOTALL):
        root = ET.fromstring(svg)
        charts[root.findtext(f"{SVG}title") or ""] = root
    return charts


def test_annualized_figures_after_one_short_day_are_n_a_with_the_reason(short_report: str) -> None:
    figures = _key_figures(short_report)

    assert figures["Days"] == "1"
    for name in ("Annualized return", "Sharpe ratio", "Sortino ratio"):
        assert figures[name] == "n/a (needs at least 20 daily returns; 1 so far)", name
    assert figures["Total return"].endswith(" %")  # what the day did is still shown


def test_the_max_drawdown_figure_is_the_trough_of_the_drawdown_chart(
    short_report: str, short_record: SystemOfRecord
) -> None:
    values = [
        float(e["total_value"])
        for e in sorted(short_record.equity, key=lambda e: e["timestamp"])
        if e["timestamp"] <= START + timedelta(hours=SHORT_HOURS)
    ]
    running_high = [max(values[: i + 1]) for i in range(len(values))]
    intraday = max((h - v) / h for h, v in zip(running_high, values, strict=True))
    closing = max(0.0, 1.0 - values[-1] / values[0])
    assert intraday > closing, "the fixture must have an intraday drawdown the day's close does not show"
    chart = _charts(short_report)["Drawdown"]
    [label] = [t for t in chart.iter(f"{SVG}text") if t.get("class") == "lowest"]
    [ring] = [c for c in chart.iter(f"{SVG}circle") if c.get("class") == "lowest"]
    path = chart.find(f"{SVG}path")
    assert path is not None
    points = [tuple(map(float, point[1:].split(","))) for point in path.get("d", "").split()]

    assert float(label.get("data-value", "nan")) == pytest.approx(-100.0 * intraday, rel=1e-12)
    assert label.text == f"max drawdown {100.0 * intraday:.2f} %"
    assert _key_figures(short_report)["Max drawdown"] == f"{100.0 * intraday:.2f} %"
    # The ring sits on the lowest point the line reaches.
    assert (float(ring.get("cx", "nan")), float(ring.get("cy", "nan"))) == max(points, key=lambda p: p[1])


def test_every_time_axis_has_distinct_readable_ticks(short_report: str) -> None:
    charts = _charts(short_report)
    time_charts = ("Equity", "Drawdown", "Daily mean IC by signal type", "Market regime")

    for title in time_charts:
        ticks = [t.text or "" for t in charts[title].iter(f"{SVG}text") if t.get("class") == "time-tick"]
        assert len(ticks) >= 2, (title, ticks)
        assert len(set(ticks)) == len(ticks), (title, ticks)
    # Six hours: times of day, the date said once; a single day of IC: the hours around that day.
    equity_ticks = [
        t.text or "" for t in charts["Equity"].iter(f"{SVG}text") if t.get("class") == "time-tick"
    ]
    assert all(re.fullmatch(r"\d\d:\d\d", tick) for tick in equity_ticks), equity_ticks
    assert [t.text for t in charts["Equity"].iter(f"{SVG}text") if t.get("class") == "time-day"] == [
        "2026-01-05"
    ]
    # The one day of IC is drawn (a dot), not an empty frame.
    assert charts["Daily mean IC by signal type"].findall(f"{SVG}circle")


def test_money_axes_carry_their_currency(short_report: str) -> None:
    charts = _charts(short_report)

    def axis_label(title: str) -> str:
        [label] = [
            t.text or "" for t in charts[title].iter(f"{SVG}text") if "rotate(-90" in t.get("transform", "")
        ]
        return label

    assert axis_label("Equity") == "total value (USD)"
    assert axis_label("P&L of closed trades by signal type") == "P&L (USD)"
    assert axis_label("Drawdown") == "% below high-water mark"


def test_the_regime_timeline_starts_at_the_first_bar_with_the_regime_then_in_force(
    short_report: str, short_record: SystemOfRecord
) -> None:
    timeline = _charts(short_report)["Market regime"]
    bands = [r for r in timeline.iter(f"{SVG}rect") if r.get("data-label")]
    first_bar = min(b.timestamp for b in short_record.bars)
    first_change = short_record.regime_changes[0]
    assert first_change["previous"] is None  # the engine records no change for the regime it starts in
    assert first_change["timestamp"] > first_bar

    assert bands[0].get("data-label") == short_record.signals[0]["regime"] == "trending"
    assert float(bands[0].get("data-start", "nan")) == first_bar.timestamp()
    assert float(bands[0].get("x", "nan")) == 64.0  # the left end of the time axis
    assert float(bands[0].get("data-end", "nan")) == first_change["timestamp"].timestamp()
    assert bands[1].get("data-label") == first_change["current"]
