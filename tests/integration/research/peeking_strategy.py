"""A deliberately peeking strategy for the look-ahead check's tests: it loads the replay file it is given and, on
each bar, looks up the same symbol's NEXT close, goes long when it is higher and short when it is lower. It trades
brilliantly and is worthless: `tradeos backtest --check-lookahead` must catch it."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from live.domain import Bar
from live.profiles import Profile
from live.strategy.api import StrategyParams
from live.strategy.base import PortfolioView, SignalRecorder, TargetPosition


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class PeekingParams(StrategyParams):
    data: str  # the replay file it reads the future from


class PeekingStrategy:
    name = "peeking"
    version = "1"
    Params = PeekingParams

    def __init__(self, *, symbols: Iterable[str], params: PeekingParams) -> None:
        self.symbols = tuple(symbols)
        closes: dict[str, list[tuple[datetime, float]]] = {}
        with open(params.data, newline="") as file:
            for row in csv.DictReader(file):
                closes.setdefault(row["symbol"], []).append((_utc(row["timestamp"]), float(row["close"])))
        # (timestamp, symbol) -> the symbol's next close in the file: the future.
        self.next_close = {
            (at, symbol): following[1]
            for symbol, rows in closes.items()
            for (at, _), following in zip(rows, rows[1:], strict=False)
        }
        self.wanted: list[TargetPosition] = []

    def warm_up(self, bars: Sequence[Bar]) -> None:
        pass

    def observe(self, bars: Sequence[Bar], *, regime: str, profile: Profile, signals: SignalRecorder) -> None:
        self.wanted = []
        for bar in bars:
            future = self.next_close.get((bar.timestamp, bar.symbol))
            strength = 0.0 if future is None else (1.0 if future > bar.close else -1.0)
            signals.record((bar.timestamp, bar.symbol, "peek", strength, 1, regime, strength != 0.0))
            if strength:
                self.wanted.append(
                    TargetPosition(symbol=bar.symbol, direction=1 if strength > 0 else -1, signal_type="peek")
                )

    def decide(self, *, profile: Profile, book: PortfolioView) -> Sequence[TargetPosition]:
        return self.wanted
