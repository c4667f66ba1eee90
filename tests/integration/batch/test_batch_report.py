"""The daily report: one self-contained HTML file with its charts."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

from batch_records import SystemOfRecord

from flows.daily_report import write_report
from flows.sync import sync


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
