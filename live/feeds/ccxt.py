"""Live 1-minute bars from a ccxt exchange's public market data (`tradeos up --feed ccxt --exchange ID`).

ccxt.pro's WebSocket client runs on an asyncio loop in a thread of the feed: trades and best bid/ask quotes go into
the pure bar builder (live/feeds/minute_bars.py), and each minute, once it is over (plus `grace_seconds` for trades
still on the wire), its cross-section is handed to the engine through a queue. The runner does not pace a live
feed (`LiveFeed`): bars come when the market makes them, and the stale-feed breaker counts wall-clock silence.

A broken trade stream is reconnected with a doubling backoff; the minutes it may have missed (from the last trade
it delivered to the first after the reconnection) are taken from the venue's REST history (`fetch_ohlcv`) once over,
so no bar is duplicated, dropped or invented. The first minute after start is only partly seen: it comes from
history too. Backfilled bars carry the spread of the latest quote before their end (0.0 before any quote).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from live.domain import Bar
from live.feeds.base import FeedError
from live.feeds.minute_bars import Backfill, MinuteBars
from live.instruments import Instrument, instruments_from_ccxt_markets
from live.venue import Backoff, VenueError, check_symbols, minute_bars_between, open_exchange

log = logging.getLogger("tradeos.feed.ccxt")

_CLOSE_EVERY_SECONDS = 0.25
_TRADES_KEPT = 10_000  # ccxt's per-symbol trade cache: more than a burst between two reads


class CcxtFeed:
    """Bars of `symbols` (unified, like BTC/USDT) on the ccxt exchange `exchange_id`, as the market makes them.

    `connect` checks the exchange id and the symbols against the venue's markets before anything starts (a bad
    one is a FeedError naming it). `clock` is the venue's time as this machine sees it (the tests pass their own).
    """

    bar_seconds = 60

    def __init__(
        self,
        *,
        exchange_id: str,
        symbols: tuple[str, ...],
        exchange_url: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        grace_seconds: float = 2.0,
        reconnect: Backoff = Backoff(first=0.5, most=30.0, attempts=1_000_000),
        history: Backoff = Backoff(first=1.0, most=30.0, attempts=1_000_000),
        instruments: Mapping[str, Instrument] | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.symbols = symbols
        # The venue's rules per symbol (step, tick, minimums), from its markets; None: the sim's whole units.
        self.instruments = instruments
        self.exchange_url = exchange_url
        self.received_trades = 0  # trades the stream delivered (read by the tests and the logs)
        self.reconnections = 0
        self._clock = clock
        self._grace = timedelta(seconds=grace_seconds)
        self._reconnect = reconnect
        self._history = history
        self._bars: queue.Queue[list[Bar]] = queue.Queue()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._last_trade_at: datetime | None = None
        self._last_keys: dict[str, tuple[int, int, str]] = {}  # per symbol: the last trade taken
        self._resuming = False  # the trade stream is back: its first trade marks the resumption

    @classmethod
    def connect(
        cls, *, exchange_id: str, symbols: tuple[str, ...], exchange_url: str | None = None, **options: Any
    ) -> CcxtFeed:
        """A feed whose exchange id and symbols were checked against the venue (FeedError naming the bad one)."""
        if not symbols:
            raise FeedError("--feed ccxt needs --symbols (e.g. BTC/USDT,ETH/USDT)")
        try:
            markets, precision_mode = asyncio.run(_load_markets(exchange_id, exchange_url))
            check_symbols(markets, symbols, exchange_id=exchange_id)
            instruments = instruments_from_ccxt_markets(markets, symbols, precision_mode=precision_mode)
        except VenueError as exc:
            raise FeedError(str(exc)) from None
        except ValueError as exc:
            raise FeedError(f"--exchange {exchange_id}: {exc}") from None
        return cls(
            exchange_id=exchange_id,
            symbols=symbols,
            exchange_url=exchange_url,
            instruments=instruments,
            **options,
        )

    def next_batch(self, timeout: float) -> list[Bar] | None:
        """The next minute's bars, or None if none is ready within `timeout` seconds (the stream starts on the
        first call)."""
        self._start()
        try:
            return self._bars.get(timeout=timeout)
        except queue.Empty:
            return None

    def batches(self) -> Iterator[list[Bar]]:
        """Each minute's bars, oldest first, until `close`."""
        while not self._closed.is_set():
            batch = self.next_batch(0.5)
            if batch:
                yield batch

    def close(self) -> None:
        """Stops the stream and closes the venue's connections."""
        self._closed.set()
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(main.cancel)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _start(self) -> None:
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(target=self._run, name="tradeos-feed-ccxt", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._stream())
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("the %s feed stopped", self.exchange_id)

    async def _stream(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        if self._closed.is_set():
            return
        exchange = open_exchange(self.exchange_id, exchange_url=self.exchange_url, streaming=True)
        exchange.options["tradesLimit"] = _TRADES_KEPT
        builder = MinuteBars(symbols=self.symbols)
        try:
            await self._load_markets(exchange)
            builder.start_uncovered(self._clock())
            log.info("%s feed: streaming trades and quotes of %s", self.exchange_id, ", ".join(self.symbols))
            await asyncio.gather(
                self._watch_trades(exchange, builder),
                self._watch_quotes(exchange, builder),
                self._close_minutes(exchange, builder),
            )
        finally:
            with contextlib.suppress(Exception):
                await exchange.close()

    async def _load_markets(self, exchange: Any) -> None:
        attempt = 0
        while True:
            try:
                await exchange.load_markets()
                return
            except Exception as exc:
                wait = self._reconnect.delay(attempt)
                attempt += 1
                log.warning("%s: cannot load markets (%s); retrying in %.1fs", self.exchange_id, exc, wait)
                await asyncio.sleep(wait)

    async def _watch_trades(self, exchange: Any, builder: MinuteBars) -> None:
        """Trades into the builder; a broken stream marks the loss and reconnects with backoff."""
        connected = True
        attempt = 0
        while True:
            try:
                await exchange.watch_trades_for_symbols(list(self.symbols))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._take_trades(exchange, builder)  # what came before the break
                if connected:
                    builder.lost(self._last_trade_at or self._clock())
                    log.warning("%s trade stream lost (%s); reconnecting", self.exchange_id, exc)
                connected = False
                await asyncio.sleep(self._reconnect.delay(attempt))
                attempt += 1
                continue
            if not connected:
                connected, attempt = True, 0
                self._resuming = True
            self._take_trades(exchange, builder)

    def _take_trades(self, exchange: Any, builder: MinuteBars) -> None:
        """Every trade in ccxt's cache not taken yet, of every symbol. A watch call returns only the symbol that
        woke it, and a trade arriving while nobody waits stays in the cache: reading the cache loses none."""
        for symbol in self.symbols:
            cached = exchange.trades.get(symbol) if isinstance(exchange.trades, dict) else None
            last = self._last_keys.get(symbol)
            for trade in list(cached or ()):
                at = _utc(trade.get("timestamp"))
                if at is None:
                    continue
                key = (int(trade["timestamp"]), _numeric(trade.get("id")), str(trade.get("id")))
                if last is not None and key <= last:
                    continue
                last = key
                if self._resuming:
                    builder.resumed(at)
                    self._resuming = False
                    self.reconnections += 1
                    log.info(
                        "%s trade stream back at %s; the minutes missed come from history",
                        self.exchange_id,
                        at,
                    )
                builder.add_trade(
                    symbol=symbol, at=at, price=float(trade["price"]), amount=float(trade["amount"])
                )
                self.received_trades += 1
                if self._last_trade_at is None or at > self._last_trade_at:
                    self._last_trade_at = at
            if last is not None:
                self._last_keys[symbol] = last

    async def _watch_quotes(self, exchange: Any, builder: MinuteBars) -> None:
        """Best bid/ask into the builder, for the bars' spread; a broken stream is simply reconnected."""
        attempt = 0
        while True:
            try:
                quotes = await exchange.watch_bids_asks(list(self.symbols))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("%s quote stream: %s; reconnecting", self.exchange_id, exc)
                await asyncio.sleep(self._reconnect.delay(attempt))
                attempt += 1
                continue
            attempt = 0
            for quote in quotes.values():
                bid, ask = quote.get("bid"), quote.get("ask")
                if quote.get("symbol") in self.symbols and bid is not None and ask is not None:
                    at = _utc(quote.get("timestamp")) or self._clock()
                    builder.add_quote(symbol=quote["symbol"], at=at, bid=float(bid), ask=float(ask))

    async def _close_minutes(self, exchange: Any, builder: MinuteBars) -> None:
        """Hands each minute to the engine once it is over; fills an uncovered stretch from history first."""
        while True:
            self._take_trades(exchange, builder)
            for cross_section in builder.close(self._clock() - self._grace):
                self._bars.put(cross_section)
            gap = builder.needs_backfill
            if gap is not None:
                try:
                    bars = await self._fetch(exchange, gap)
                except Exception:
                    # Nothing after the stretch is handed over before it: the stale-feed breaker sees the wait.
                    log.exception("%s: cannot fetch the missed minutes; trying again", self.exchange_id)
                    await asyncio.sleep(self._history.most)
                    continue
                for cross_section in builder.backfilled(bars):
                    self._bars.put(cross_section)
                continue
            await asyncio.sleep(_CLOSE_EVERY_SECONDS)

    async def _fetch(self, exchange: Any, gap: Backfill) -> list[Bar]:
        bars: list[Bar] = []
        for symbol in self.symbols:
            async for page in minute_bars_between(
                exchange, symbol, start=gap.start, end=gap.end, backoff=self._history
            ):
                bars.extend(page.bars)
        log.info("%s: %d bar(s) of %s .. %s from history", self.exchange_id, len(bars), gap.start, gap.end)
        return bars


async def _load_markets(exchange_id: str, exchange_url: str | None) -> tuple[dict[str, Any], int]:
    """The venue's markets, read once at start-up, and how it states their precision (ccxt's `precisionMode`);
    VenueError when the venue cannot be reached."""
    exchange = open_exchange(exchange_id, exchange_url=exchange_url, streaming=False)
    try:
        return dict(await exchange.load_markets()), int(exchange.precisionMode)
    except Exception as exc:
        where = exchange_url or "its public endpoints"
        reason = " ".join(str(exc).split())[:160]
        raise VenueError(
            f"--exchange {exchange_id}: cannot load its markets from {where} ({type(exc).__name__}: {reason})"
        ) from None
    finally:
        await exchange.close()


def _utc(milliseconds: Any) -> datetime | None:
    return None if milliseconds is None else datetime.fromtimestamp(int(milliseconds) / 1000, tz=UTC)


def _numeric(value: Any) -> int:
    """A trade id as a number for ordering (venues with text ids order by time, then text)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
