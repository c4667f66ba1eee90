"""Replaying bars from files: a good file round-trips, a bad one is refused naming its line and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from live.domain import Bar
from live.feeds import FeedError, ReplayFeed, SimFeed

HEADER = "timestamp,symbol,open,high,low,close,volume"


def _sim_bars(days: float = 0.05) -> list[list[Bar]]:
    return list(SimFeed(symbols=("AAPL", "MSFT", "JPM"), sim_days=days).batches())


def _frame(batches: list[list[Bar]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "timestamp": bar.timestamp,
                "symbol": bar.symbol,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
                "spread": bar.spread,
            }
            for batch in batches
            for bar in batch
        ]
    )


def _csv(tmp_path: Path, *lines: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_written_from_bars_replays_the_same_bars(tmp_path: Path) -> None:
    batches = _sim_bars()
    path = tmp_path / "bars.csv"
    _frame(batches).with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_csv(path)

    feed = ReplayFeed.from_path(path)

    assert list(feed.batches()) == batches
    assert feed.symbols == ("AAPL", "JPM", "MSFT")
    assert feed.bar_seconds == 60


def test_a_parquet_file_written_from_bars_replays_the_same_bars(tmp_path: Path) -> None:
    batches = _sim_bars()
    path = tmp_path / "bars.parquet"
    _frame(batches).write_parquet(path)

    assert list(ReplayFeed.from_path(path).batches()) == batches


def test_a_parquet_file_with_naive_datetimes_is_read_as_utc(tmp_path: Path) -> None:
    batches = _sim_bars()
    path = tmp_path / "bars.pq"
    _frame(batches).with_columns(pl.col("timestamp").dt.replace_time_zone(None)).write_parquet(path)

    assert list(ReplayFeed.from_path(path).batches()) == batches


def test_offsets_are_converted_to_utc_and_naive_timestamps_taken_as_utc(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        HEADER,
        "2026-01-05T01:00:00+01:00,AAPL,10,11,9,10,100",
        "2026-01-05 00:01:00,AAPL,10,11,9,10,100",
        "2026-01-05T00:02:00Z,AAPL,10,11,9,10,100",
    )
    times = [batch[0].timestamp for batch in ReplayFeed.from_path(path).batches()]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    assert times == [start, start + timedelta(minutes=1), start + timedelta(minutes=2)]
    assert all(ts.utcoffset() == timedelta(0) for ts in times)


def test_bars_are_grouped_by_timestamp_and_extra_columns_ignored(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        HEADER + ",venue,spread",
        "2026-01-05T00:00:00Z,MSFT,10,11,9,10.5,100,X,0.02",
        "2026-01-05T00:00:00Z,AAPL,20,21,19,20.5,0,X,0.03",
        "2026-01-05T00:05:00Z,AAPL,20.5,21,20,20.7,50,X,0.01",
    )
    feed = ReplayFeed.from_path(path)
    batches = list(feed.batches())
    assert [[bar.symbol for bar in batch] for batch in batches] == [["MSFT", "AAPL"], ["AAPL"]]
    assert batches[0][1] == Bar(
        timestamp=datetime(2026, 1, 5, tzinfo=UTC),
        symbol="AAPL",
        open=20.0,
        high=21.0,
        low=19.0,
        close=20.5,
        volume=0.0,
        spread=0.03,
    )
    assert feed.bar_seconds == 300
    assert feed.symbols == ("AAPL", "MSFT")


def test_a_file_with_a_single_timestamp_assumes_one_minute_bars(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER, "2026-01-05T00:00:00Z,AAPL,10,11,9,10,100")
    feed = ReplayFeed.from_path(path)
    assert feed.bar_seconds == 60
    assert feed.batches().__next__()[0].spread == 0.0


def test_a_blank_line_is_skipped_and_later_errors_still_name_the_file_line(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        HEADER,
        "2026-01-05T00:00:00Z,AAPL,10,11,9,10,100",
        "",
        "2026-01-05T00:01:00Z,AAPL,10,11,9,10,-5",
    )
    with pytest.raises(FeedError, match="line 4: volume must not be negative"):
        ReplayFeed.from_path(path)


GOOD = "2026-01-05T00:00:00Z,AAPL,10,11,9,10,100"


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("2026-13-05T00:01:00Z,AAPL,10,11,9,10,100", "unparsable timestamp '2026-13-05T00:01:00Z'"),
        (",AAPL,10,11,9,10,100", "missing timestamp"),
        ("2026-01-05T00:01:00Z,,10,11,9,10,100", "missing symbol"),
        ("2026-01-05T00:01:00Z,AAPL,10,11,9,ten,100", "non-numeric value 'ten' in column close"),
        ("2026-01-05T00:01:00Z,AAPL,10,,9,10,100", "missing value in column high"),
        ("2026-01-05T00:01:00Z,AAPL,10,11,9,NaN,100", "close is nan, not a finite number"),
        ("2026-01-05T00:01:00Z,AAPL,10,11,9,10,inf", "volume is inf, not a finite number"),
        ("2026-01-05T00:01:00Z,AAPL,10,11,0,10,100", "low must be positive"),
        ("2026-01-05T00:01:00Z,AAPL,-1,11,-2,10,100", "open must be positive"),
        ("2026-01-05T00:01:00Z,AAPL,10,11,9,10,-1", "volume must not be negative"),
        ("2026-01-05T00:01:00Z,AAPL,10,10.5,9,10.8,100", "high is below max(open, close)"),
        ("2026-01-05T00:01:00Z,AAPL,10,11,9.8,9.5,100", "low is above min(open, close)"),
        ("2026-01-04T23:59:00Z,AAPL,10,11,9,10,100", "goes backwards"),
        (
            "2026-01-05T00:00:00Z,AAPL,10,11,9,10,100",
            "duplicate bar for AAPL at 2026-01-05T00:00:00Z (first on line 2)",
        ),
    ],
)
def test_a_bad_csv_row_is_refused_naming_the_file_its_line_and_the_reason(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    path = _csv(tmp_path, HEADER, GOOD, bad_line, "2026-01-05T00:02:00Z,AAPL,10,11,9,10,100")
    with pytest.raises(FeedError) as caught:
        ReplayFeed.from_path(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 3: ")
    assert reason in message


def test_the_earliest_bad_line_is_reported_when_several_are_bad(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        HEADER,
        GOOD,
        "2026-01-05T00:01:00Z,AAPL,10,11,9,10,-1",
        "2026-01-05T00:02:00Z,AAPL,0,11,9,10,100",
    )
    with pytest.raises(FeedError, match=r"line 3: volume must not be negative"):
        ReplayFeed.from_path(path)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp,symbol,open,low,close", "2026-01-05T00:00:00Z,AAPL,10,9,10")
    with pytest.raises(FeedError, match=r"bars.csv: missing column\(s\) high, volume"):
        ReplayFeed.from_path(path)


def test_a_symbol_outside_the_requested_ones_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER, GOOD, "2026-01-05T00:00:00Z,TSLA,10,11,9,10,100")
    with pytest.raises(
        FeedError, match=r"line 3: symbol 'TSLA' is not one of the requested symbols \(AAPL, MSFT\)"
    ):
        ReplayFeed.from_path(path, symbols=("AAPL", "MSFT"))


def test_a_negative_spread_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, HEADER + ",spread", GOOD + ",-0.01")
    with pytest.raises(FeedError, match="line 2: spread must not be negative"):
        ReplayFeed.from_path(path)


@pytest.mark.parametrize("content", ["", HEADER + "\n"], ids=["no bytes", "header only"])
def test_an_empty_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(FeedError, match=r"empty\.csv: the file is empty"):
        ReplayFeed.from_path(path)


def test_a_bad_parquet_row_is_named_by_its_one_based_row_number(tmp_path: Path) -> None:
    frame = _frame(_sim_bars(0.01)).with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(-1.0).otherwise(pl.col("volume")).alias("volume")
    )
    path = tmp_path / "bars.parquet"
    frame.write_parquet(path)
    with pytest.raises(FeedError, match=r"bars\.parquet, row 5: volume must not be negative"):
        ReplayFeed.from_path(path)


def test_an_unknown_file_type_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="unsupported file type '.json'"):
        ReplayFeed.from_path(tmp_path / "bars.json")
    with pytest.raises(FeedError, match="no such file"):
        ReplayFeed.from_path(tmp_path / "absent.csv")


def _gappy_csv(tmp_path: Path) -> Path:
    # MSFT misses the second minute and a blank line sits in the middle: windows and copies count bars, not lines.
    return _csv(
        tmp_path,
        HEADER,
        "2026-01-05T00:00:00Z,AAPL,1,2,1,1.5,10",
        "2026-01-05T00:00:00Z,MSFT,3,4,3,3.5,10",
        "2026-01-05T00:01:00Z,AAPL,1.5,2,1,1.25,10",
        "",
        "2026-01-05T00:02:00Z,AAPL,1.25,2,1,1.75,10",
        "2026-01-05T00:02:00Z,MSFT,3.5,4,3,3.25,10",
    )


def test_a_window_replays_exactly_the_bars_between_its_bounds(tmp_path: Path) -> None:
    feed = ReplayFeed.from_path(_gappy_csv(tmp_path))
    start = datetime(2026, 1, 5, 0, 1, tzinfo=UTC)

    window = feed.window(start, start + timedelta(minutes=1))
    tail = feed.window(start)

    assert [[(b.timestamp, b.symbol, b.close) for b in batch] for batch in window.batches()] == [
        [(start, "AAPL", 1.25)]
    ]
    assert list(tail.batches()) == list(feed.batches())[1:]
    assert len(tail) == 3
    assert list(feed.window(start + timedelta(hours=1)).batches()) == []


def test_a_head_copy_keeps_the_first_timestamps_as_the_file_wrote_them(tmp_path: Path) -> None:
    feed = ReplayFeed.from_path(_gappy_csv(tmp_path))

    copy = feed.write_head(tmp_path / "head.csv", cross_sections=2)

    window = feed.window(datetime(2026, 1, 5, 0, 1, tzinfo=UTC))
    window_copy = window.write_head(tmp_path / "window.csv", cross_sections=window.cross_sections)

    assert list(ReplayFeed.from_path(window_copy).batches()) == list(window.batches())
    assert list(ReplayFeed.from_path(copy).batches()) == list(feed.batches())[:2]
    assert copy.read_text().splitlines()[1:] == [
        "2026-01-05T00:00:00Z,AAPL,1,2,1,1.5,10",
        "2026-01-05T00:00:00Z,MSFT,3,4,3,3.5,10",
        "2026-01-05T00:01:00Z,AAPL,1.5,2,1,1.25,10",
    ]


def test_the_bars_frame_holds_every_bar_in_file_order(tmp_path: Path) -> None:
    feed = ReplayFeed.from_path(_gappy_csv(tmp_path))

    frame = feed.frame()

    assert frame.select("timestamp", "symbol", "close").rows() == [
        (bar.timestamp, bar.symbol, bar.close) for batch in feed.batches() for bar in batch
    ]
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
