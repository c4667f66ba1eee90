"""Trades -> 1-minute OHLCV bars, per symbol, the way the live market feed (live/feeds/ccxt.py) builds them. Pure:
trades, quotes and the time are handed in; cross-sections of bars come out.

- A bar is the minute's trades: open = first, high/low = extremes, close = last (in the venue's trade order),
  volume = summed amounts; `timestamp` is the minute's start. A minute without a trade has no bar (never invented).
- `spread` is ask - bid of the latest best bid/ask quoted before the minute's end (0.0 if none was ever seen).
- A minute is emitted only once it is over: `close(now)` emits every minute that ended at or before `now` (the
  caller passes the venue time minus a short grace for trades still on the wire).
- A late trade (stamped in a minute already emitted) is dropped and counted in `late_trades`: an emitted bar is
  final, as the engine has traded on it.
- Coverage: while the stream is down trades are missed, so `lost(at)` / `resumed(at)` mark the minutes touched by
  the outage. `close` does not build those from trades: it stops at the first such minute and asks for it
  (`needs_backfill`); the caller fetches the venue's own bars for them (`backfilled`), and closing goes on, in
  order, without a duplicate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from live.domain import Bar

MINUTE = timedelta(minutes=1)


def minute_of(at: datetime) -> datetime:
    """The start of the UTC minute holding `at`."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


@dataclass(slots=True)
class _Forming:
    open: float
    high: float
    low: float
    close: float
    volume: float

    def add(self, price: float, amount: float) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += amount


@dataclass(frozen=True, slots=True, kw_only=True)
class Backfill:
    """Minutes [start, end) the stream did not fully see: their bars must come from the venue's history."""

    start: datetime
    end: datetime


@dataclass(slots=True)
class MinuteBars:
    """Builds the bars of `symbols` (see the module docstring)."""

    symbols: tuple[str, ...]
    late_trades: int = 0
    emitted_until: datetime | None = None  # every minute before this one is final (emitted, or had no trade)
    _forming: dict[datetime, dict[str, _Forming]] = field(default_factory=dict)
    _quotes: dict[str, deque[tuple[datetime, float]]] = field(default_factory=dict)
    _uncovered: list[Backfill] = field(default_factory=list)
    _lost_at: datetime | None = None
    _pending: Backfill | None = None

    def add_trade(self, *, symbol: str, at: datetime, price: float, amount: float) -> None:
        """A trade of `symbol` at venue time `at` (aware)."""
        minute = minute_of(at)
        if self.emitted_until is not None and minute < self.emitted_until:
            self.late_trades += 1
            return
        by_symbol = self._forming.setdefault(minute, {})
        forming = by_symbol.get(symbol)
        if forming is None:
            by_symbol[symbol] = _Forming(price, price, price, price, amount)
        else:
            forming.add(price, amount)

    def add_quote(self, *, symbol: str, at: datetime, bid: float, ask: float) -> None:
        """A best bid/ask of `symbol` at venue time `at`; quotes of one symbol arrive in time order."""
        if bid > 0 and ask >= bid:
            quotes = self._quotes.setdefault(symbol, deque())
            quotes.append((at, ask - bid))
            if self.emitted_until is not None:
                # Minutes still to close end after `emitted_until`: older quotes but the latest are not needed.
                while len(quotes) > 1 and quotes[1][0] < self.emitted_until:
                    quotes.popleft()

    def lost(self, at: datetime) -> None:
        """The trade stream broke; `at` is the last moment it is known to have delivered everything."""
        if self._lost_at is None:
            self._lost_at = at

    def resumed(self, at: datetime) -> None:
        """The trade stream delivers again from `at` on: the minutes from the loss's to `at`'s are uncovered."""
        if self._lost_at is None:
            return
        start = minute_of(self._lost_at)
        if self.emitted_until is not None:
            start = max(start, self.emitted_until)
        self._uncovered.append(Backfill(start=start, end=minute_of(at) + MINUTE))
        self._uncovered.sort(key=lambda gap: gap.start)
        self._lost_at = None

    def start_uncovered(self, at: datetime) -> None:
        """The stream starts at `at`: the minute holding it is only partly seen, so it comes from history."""
        self.lost(at)
        self.resumed(at)

    @property
    def needs_backfill(self) -> Backfill | None:
        """The uncovered stretch `close` reached once it was over: nothing more is emitted until `backfilled`
        hands in its bars."""
        return self._pending

    def close(self, now: datetime) -> list[list[Bar]]:
        """The cross-sections of every minute that ended at or before `now`, oldest first; stops at an uncovered
        stretch (once that is over, `needs_backfill` names it)."""
        if self._pending is not None:
            return []
        horizon = minute_of(now)  # minutes before it are over
        gap = self._next_gap()
        stop_at = horizon if gap is None else min(horizon, gap.start)
        emitted = [self._emit(minute) for minute in sorted(self._forming) if minute < stop_at]
        if gap is not None and gap.start < horizon and gap.end <= horizon:
            self._pending = gap
        if self.emitted_until is None or stop_at > self.emitted_until:
            self.emitted_until = stop_at
        return emitted

    def backfilled(self, bars: list[Bar]) -> list[list[Bar]]:
        """Hands in the venue's bars for the pending stretch (bars outside it or of other symbols are ignored)
        and returns its cross-sections; what the stream saw of those minutes is dropped."""
        gap = self._pending
        if gap is None:
            return []
        self._pending = None
        self._uncovered.remove(gap)
        for minute in [m for m in self._forming if gap.start <= m < gap.end]:
            del self._forming[minute]
        by_minute: dict[datetime, dict[str, Bar]] = {}
        for bar in bars:
            if gap.start <= bar.timestamp < gap.end and bar.symbol in self.symbols:
                by_minute.setdefault(bar.timestamp, {}).setdefault(bar.symbol, bar)
        if self.emitted_until is None or gap.end > self.emitted_until:
            self.emitted_until = gap.end
        return [
            [
                _with_spread(row[symbol], self._spread_before(symbol, minute + MINUTE))
                for symbol in sorted(row, key=self._rank)
            ]
            for minute, row in sorted(by_minute.items())
        ]

    def _next_gap(self) -> Backfill | None:
        """The earliest uncovered stretch; a loss not yet resumed is one without an end."""
        gaps = list(self._uncovered)
        if self._lost_at is not None:
            start = minute_of(self._lost_at)
            if self.emitted_until is not None:
                start = max(start, self.emitted_until)
            gaps.append(Backfill(start=start, end=datetime.max.replace(tzinfo=UTC)))
        return min(gaps, key=lambda gap: gap.start, default=None)

    def _emit(self, minute: datetime) -> list[Bar]:
        by_symbol = self._forming.pop(minute)
        return [
            Bar(
                timestamp=minute,
                symbol=symbol,
                open=forming.open,
                high=forming.high,
                low=forming.low,
                close=forming.close,
                volume=forming.volume,
                spread=self._spread_before(symbol, minute + MINUTE),
            )
            for symbol in sorted(by_symbol, key=self._rank)
            for forming in (by_symbol[symbol],)
        ]

    def _spread_before(self, symbol: str, end: datetime) -> float:
        """The spread of the latest quote before `end`; older quotes are forgotten (minutes close in order)."""
        quotes = self._quotes.get(symbol)
        if not quotes:
            return 0.0
        while len(quotes) > 1 and quotes[1][0] < end:
            quotes.popleft()
        return quotes[0][1]

    def _rank(self, symbol: str) -> int:
        return self.symbols.index(symbol) if symbol in self.symbols else len(self.symbols)


def _with_spread(bar: Bar, spread: float) -> Bar:
    return Bar(
        timestamp=bar.timestamp,
        symbol=bar.symbol,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        spread=spread,
    )
