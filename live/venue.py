"""A ccxt exchange as TRADEOS opens it: by its id, with every endpoint moved to `TRADEOS_EXCHANGE_URL` when set.

The URL override is pure (`override_endpoints`): it replaces the scheme and host of each endpoint in ccxt's
`urls["api"]` tree and keeps each path, so a proxy, a self-hosted gateway or a local test venue receives exactly the
requests the exchange would. WebSocket endpoints keep a WebSocket scheme (http -> ws, https -> wss).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from live.domain import Bar

T = TypeVar("T")
log = logging.getLogger("tradeos.venue")
_MINUTE_MS = 60_000

_WEBSOCKET_SCHEME = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


class VenueError(ValueError):
    """The exchange or a symbol cannot be used; the message names which and why, in one line."""


class VenueFailure(VenueError):
    """The venue kept failing a call that was right to make (after the retries); one line saying what and why."""


def override_endpoints(urls: Mapping[str, Any], base_url: str) -> dict[str, Any]:
    """`urls` (a ccxt `urls["api"]` tree: nested mappings of endpoint URLs) with every endpoint's scheme and host
    replaced by `base_url`'s, paths and queries kept; a WebSocket endpoint gets the WebSocket form of the scheme."""
    base = urlsplit(base_url.strip())
    if base.scheme not in _WEBSOCKET_SCHEME or not base.netloc or base.path not in ("", "/"):
        raise VenueError(
            f"exchange URL {base_url!r} is not like https://host[:port] (http, https, ws or wss)"
        )
    return {key: _moved(value, base.scheme, base.netloc) for key, value in urls.items()}


def _moved(value: Any, scheme: str, netloc: str) -> Any:
    if isinstance(value, Mapping):
        return {key: _moved(inner, scheme, netloc) for key, inner in value.items()}
    if not isinstance(value, str) or "://" not in value:
        return value
    parts = urlsplit(value)
    websocket = parts.scheme in ("ws", "wss")
    new_scheme = (_WEBSOCKET_SCHEME if websocket else _HTTP_SCHEME)[scheme]
    return urlunsplit((new_scheme, netloc, parts.path, parts.query, parts.fragment))


def check_exchange_id(exchange_id: str) -> None:
    """VenueError unless ccxt has a WebSocket ("pro") client for `exchange_id` (the live feed needs one)."""
    import ccxt.pro

    if exchange_id not in ccxt.pro.exchanges:
        raise VenueError(
            f"--exchange {exchange_id!r}: not a ccxt exchange with live market data"
            " (ccxt.pro.exchanges lists the ids, e.g. binance, kraken, coinbase)"
        )


def open_exchange(exchange_id: str, *, exchange_url: str | None, streaming: bool) -> Any:
    """A fresh ccxt client for `exchange_id` with its rate limiter on, its endpoints moved to `exchange_url` if
    given; `streaming` picks the asyncio WebSocket client (ccxt.pro), else the asyncio REST client. Call
    `close()` on it when done."""
    import ccxt.async_support
    import ccxt.pro

    check_exchange_id(exchange_id)
    module: Any = ccxt.pro if streaming else ccxt.async_support
    exchange = getattr(module, exchange_id)({"enableRateLimit": True})
    if exchange_url:
        exchange.urls["api"] = override_endpoints(exchange.urls["api"], exchange_url)
    return exchange


def check_symbols(markets: Mapping[str, Any], symbols: tuple[str, ...], *, exchange_id: str) -> None:
    """VenueError naming the first symbol the exchange does not list (as `BASE/QUOTE`)."""
    for symbol in symbols:
        if symbol not in markets:
            raise VenueError(f"--symbols: {exchange_id} has no market {symbol!r} (symbols are like BTC/USDT)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """How long to wait before retrying a venue call: `first`, doubling up to `most`; `attempts` tries in all."""

    first: float = 1.0
    most: float = 60.0
    attempts: int = 10

    def delay(self, attempt: int) -> float:
        return float(min(self.most, self.first * 2**attempt))


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The venue's `Retry-After` (seconds) from a response's headers, if it gave one as a number."""
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


async def call_with_retries(
    exchange: Any,
    call: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    what: str,
    on_wait: Callable[[float, str], None] | None = None,
) -> T:
    """`call()` retried through the venue's pushback: a rate limit (HTTP 429/418) waits the `Retry-After` it gave
    (else the backoff), an unavailable venue or a network error waits the backoff; other errors are raised."""
    import ccxt

    for attempt in range(backoff.attempts):
        try:
            return await call()
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
            wait = retry_after_seconds(getattr(exchange, "last_response_headers", None))
            reason = f"rate limited ({type(exc).__name__})"
            wait = backoff.delay(attempt) if wait is None else wait
        except (ccxt.ExchangeNotAvailable, ccxt.NetworkError) as exc:
            wait = backoff.delay(attempt)
            reason = f"unavailable ({type(exc).__name__}: {str(exc)[:120]})"
        if attempt + 1 == backoff.attempts:
            break
        if on_wait is not None:
            on_wait(wait, reason)
        log.warning("%s: %s; retrying in %.1fs", what, reason, wait)
        await asyncio.sleep(wait)
    raise VenueFailure(f"{what}: the venue kept refusing after {backoff.attempts} attempts ({reason})")


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPage:
    """One page of the venue's 1-minute bars: every minute before `covered_until` has been asked for."""

    bars: list[Bar]
    covered_until: datetime


async def minute_bars_between(
    exchange: Any,
    symbol: str,
    *,
    start: datetime,
    end: datetime,
    backoff: Backoff,
    page: int = 1000,
) -> AsyncIterator[HistoryPage]:
    """The venue's 1-minute bars of `symbol` opening in [start, end), page by page, oldest first. A minute the
    venue reports without volume had no trade: it is left out, never invented. Spread is unknown here (0.0)."""
    since = _ms(start)
    end_ms = _ms(end)
    while since < end_ms:
        cursor = since
        rows = await call_with_retries(
            exchange,
            functools.partial(
                exchange.fetch_ohlcv, symbol, "1m", since=cursor, limit=page, params={"until": end_ms - 1}
            ),
            backoff=backoff,
            what=f"{exchange.id} 1m history of {symbol}",
        )
        rows = [row for row in rows if cursor <= int(row[0]) < end_ms]
        since = int(rows[-1][0]) + _MINUTE_MS if rows else end_ms
        bars = [
            Bar(
                timestamp=datetime.fromtimestamp(int(row[0]) / 1000, tz=UTC),
                symbol=symbol,
                open=float(row[1]),
                high=float(row[2]),
                low=float(row[3]),
                close=float(row[4]),
                volume=float(row[5]),
            )
            for row in rows
            if row[5] is not None and float(row[5]) > 0
        ]
        yield HistoryPage(bars=bars, covered_until=datetime.fromtimestamp(since / 1000, tz=UTC))


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
