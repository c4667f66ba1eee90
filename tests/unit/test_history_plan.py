"""What a re-run of `tradeos data download` asks the venue for (live/feeds/history.py `missing_stretches`): only
the minutes of the range outside what the file covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from live.feeds.history import Stretch, joined, missing_stretches

DAY = datetime(2026, 1, 5, tzinfo=UTC)


def _s(start_hour: float, end_hour: float) -> Stretch:
    return Stretch(start=DAY + timedelta(hours=start_hour), end=DAY + timedelta(hours=end_hour))


def _missing(have: list[Stretch], since: float, until: float) -> list[Stretch]:
    return missing_stretches(have, since=DAY + timedelta(hours=since), until=DAY + timedelta(hours=until))


def test_a_file_without_the_symbol_gets_the_whole_range() -> None:
    assert _missing([], 0, 2) == [_s(0, 2)]


def test_a_covered_range_asks_for_nothing() -> None:
    assert _missing([_s(0, 5)], 1, 4) == []


def test_a_wider_range_asks_only_for_what_is_outside_the_covered_stretches() -> None:
    assert _missing([_s(1, 3), _s(5, 6)], 0, 8) == [_s(0, 1), _s(3, 5), _s(6, 8)]


def test_a_later_range_does_not_fetch_the_minutes_between() -> None:
    assert _missing([_s(0, 1)], 5, 6) == [_s(5, 6)]


def test_an_empty_range_asks_for_nothing() -> None:
    assert _missing([], 2, 2) == []


def test_touching_and_overlapping_stretches_are_joined() -> None:
    assert joined([_s(0, 1), _s(3, 4)], _s(1, 2)) == [_s(0, 2), _s(3, 4)]
    assert joined([_s(0, 1), _s(3, 4)], _s(0.5, 3.5)) == [_s(0, 4)]
