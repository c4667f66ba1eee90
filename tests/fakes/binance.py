"""A local Binance spot venue for the tests: the subset of Binance's real wire protocol that ccxt's `binance` client
uses for public market data, served on a free loopback port (point ccxt at it with `TRADEOS_EXCHANGE_URL`).

REST (`/api/v3/...`): `exchangeInfo` (spot markets with their PRICE_FILTER / LOT_SIZE / NOTIONAL filters), `klines`
(1m, from the recorded trades: every minute of the range, a minute without a trade at the last close with zero
volume, as Binance does), `time`, `ticker/bookTicker`; `/fapi/v1/exchangeInfo` and `/dapi/v1/exchangeInfo` list no
market (ccxt loads the derivatives markets with the spot ones). WebSocket (`/ws/<n>`): Binance's `SUBSCRIBE` /
`{"result": null, "id": ...}` handshake, then `<symbol>@trade` and `<symbol>@bookTicker` events.

Misbehaviour on demand: `answer_next(status, count, retry_after)` (HTTP 429 with Retry-After, 5xx),
`drop_connections()`, `refuse_connections`, and silence (no trade is sent unless the test makes one).

Part 2 (orders) adds routes to `_signed_routes`: each is checked like Binance does (`X-MBX-APIKEY` header, HMAC-SHA256
`signature` of the query string with the secret, `timestamp` within `recvWindow`) by `_check_signature`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl
from aiohttp import WSMsgType, web

MINUTE_MS = 60_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeTrade:
    """One trade as the venue recorded it (the test's independent computations read these)."""

    symbol: str  # unified, e.g. BTC/USDT
    trade_id: int
    price: Decimal
    amount: Decimal
    at_ms: int

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.at_ms / 1000, tz=UTC)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _venue_id(symbol: str) -> str:
    return symbol.replace("/", "")


class FakeBinance:
    """Binance spot market data on `url` (`with FakeBinance(symbols=...) as venue:`)."""

    def __init__(
        self,
        *,
        symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"),
        api_key: str | None = None,
        secret: str | None = None,
    ) -> None:
        self.symbols = symbols
        self.api_key = api_key
        self.secret = secret
        self.trades: list[FakeTrade] = []
        self.quotes: dict[str, tuple[Decimal, Decimal]] = {}
        self.requests: Counter[str] = Counter()  # path -> requests answered (misbehaviour included)
        self.kline_requests: list[dict[str, str]] = []  # the query of each /api/v3/klines answered with data
        self.refuse_connections = False
        self.subscriptions: set[str] = set()  # streams subscribed on open connections, e.g. btcusdt@trade
        self._misbehaviour: list[tuple[int, float | None]] = []
        self._sockets: list[tuple[web.WebSocketResponse, set[str]]] = []
        self._lock = threading.Lock()
        self._next_id = 1
        self._update_id = 1
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-binance", daemon=True)
        self._runner: web.AppRunner | None = None
        self._market: threading.Thread | None = None
        self._market_stop = threading.Event()
        self.port = 0

    # -- the test's side ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeBinance:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._market_stop.set()
        if self._market is not None:
            self._market.join(timeout=10)
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def trade(self, symbol: str, price: str | Decimal, amount: str | Decimal, *, at: datetime) -> FakeTrade:
        """Records a trade and sends it to every connection subscribed to the symbol's trade stream."""
        with self._lock:
            recorded = FakeTrade(
                symbol=symbol,
                trade_id=self._next_id,
                price=Decimal(price),
                amount=Decimal(amount),
                at_ms=_ms(at),
            )
            self._next_id += 1
            self.trades.append(recorded)
        event = {
            "e": "trade",
            "E": recorded.at_ms,
            "s": _venue_id(symbol),
            "t": recorded.trade_id,
            "p": str(recorded.price),
            "q": str(recorded.amount),
            "T": recorded.at_ms,
            "m": False,
            "M": True,
        }
        self._send(f"{_venue_id(symbol).lower()}@trade", event)
        return recorded

    def record_history(self, trades: list[tuple[str, Decimal, Decimal, datetime]]) -> None:
        """Records past trades (symbol, price, amount, time) without sending them: the venue's history."""
        with self._lock:
            for symbol, price, amount, at in trades:
                self.trades.append(
                    FakeTrade(
                        symbol=symbol, trade_id=self._next_id, price=price, amount=amount, at_ms=_ms(at)
                    )
                )
                self._next_id += 1

    def quote(self, symbol: str, bid: str | Decimal, ask: str | Decimal) -> None:
        """Sets the best bid/ask and sends it on the symbol's bookTicker stream (Binance sends no event type)."""
        with self._lock:
            self.quotes[symbol] = (Decimal(bid), Decimal(ask))
            self._update_id += 1
            update_id = self._update_id
        event = {"u": update_id, "s": _venue_id(symbol), "b": str(bid), "B": "1.0", "a": str(ask), "A": "1.0"}
        self._send(f"{_venue_id(symbol).lower()}@bookTicker", event)

    def start_market(self, *, every_seconds: float = 0.25) -> None:
        """Trades (and quotes) of every symbol stamped with the wall clock, every `every_seconds`, prices walking
        by the tick: a live market for `tradeos up --feed ccxt`. Runs until the venue stops."""
        self._market = threading.Thread(target=self._trade_live, args=(every_seconds,), daemon=True)
        self._market.start()

    def _trade_live(self, every_seconds: float) -> None:
        step = 0
        while not self._market_stop.wait(every_seconds):
            for k, symbol in enumerate(self.symbols):
                price = Decimal(100 * (k + 1)) + Decimal((step * 7 + k) % 23 - 11) / 100
                self.quote(symbol, price - Decimal("0.01"), price + Decimal("0.01"))
                self.trade(symbol, price, Decimal("0.001") * (step % 5 + 1), at=datetime.now(UTC))
            step += 1

    def minute_bars(self) -> pl.DataFrame:
        """The recorded trades as 1-minute bars by a polars group-by (the tests' independent account of each minute:
        `timestamp` UTC, `symbol`, `open`, `high`, `low`, `close`, `volume` rounded to 8 places)."""
        with self._lock:
            trades = list(self.trades)
        frame = pl.DataFrame(
            {
                "at": [t.at for t in trades],
                "id": [t.trade_id for t in trades],
                "symbol": [t.symbol for t in trades],
                "price": [float(t.price) for t in trades],
                "amount": [float(t.amount) for t in trades],
            },
            schema={
                "at": pl.Datetime("us", "UTC"),
                "id": pl.Int64,
                "symbol": pl.String,
                "price": pl.Float64,
                "amount": pl.Float64,
            },
        )
        return (
            frame.sort("id")
            .with_columns(pl.col("at").dt.truncate("1m").alias("timestamp"))
            .group_by("timestamp", "symbol", maintain_order=True)
            .agg(
                pl.col("price").first().alias("open"),
                pl.col("price").max().alias("high"),
                pl.col("price").min().alias("low"),
                pl.col("price").last().alias("close"),
                pl.col("amount").sum().round(8).alias("volume"),
            )
            .sort("timestamp", "symbol")
        )

    def answer_next(self, status: int, *, count: int = 1, retry_after: float | None = None) -> None:
        """The next `count` REST requests get `status` (429 with `Retry-After`, a 5xx) instead of an answer."""
        with self._lock:
            self._misbehaviour.extend([(status, retry_after)] * count)

    def drop_connections(self) -> None:
        """Closes every WebSocket connection, as a venue's restart or a network cut does."""
        asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(timeout=10)

    def misbehaviour_left(self) -> int:
        with self._lock:
            return len(self._misbehaviour)

    # -- the server --------------------------------------------------------------------------------------

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._count_and_misbehave])
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/fapi/v1/exchangeInfo", self._no_markets)
        app.router.add_get("/dapi/v1/exchangeInfo", self._no_markets)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/ticker/bookTicker", self._book_ticker)
        for method, path, handler in self._signed_routes():
            app.router.add_route(method, path, handler)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/ws/{stream}", self._websocket)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port the OS gave

    async def _stop(self) -> None:
        await self._drop()
        if self._runner is not None:
            await self._runner.cleanup()

    def _signed_routes(self) -> list[tuple[str, str, Handler]]:
        """Order and account endpoints (part 2): none yet."""
        return []

    def _check_signature(self, request: web.Request) -> web.Response | None:
        """Binance's request signing: None when the key and the HMAC-SHA256 signature match, else its error."""
        if self.api_key is None or self.secret is None or request.headers.get("X-MBX-APIKEY") != self.api_key:
            return web.json_response(
                {"code": -2015, "msg": "Invalid API-key, IP, or permissions."}, status=401
            )
        query = request.query_string
        payload, _, signature = query.rpartition("&signature=")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return web.json_response(
                {"code": -1022, "msg": "Signature for this request is not valid."}, status=400
            )
        return None

    @web.middleware
    async def _count_and_misbehave(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        with self._lock:
            self.requests[request.path] += 1
            misbehaviour = self._misbehaviour.pop(0) if self._misbehaviour and request.path != "/ws" else None
        if misbehaviour is not None and not request.path.startswith("/ws"):
            status, retry_after = misbehaviour
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            if status == 429:
                body = {
                    "code": -1003,
                    "msg": "Too many requests; current limit is 1200 request weight per minute.",
                }
                return web.json_response(body, status=429, headers=headers)
            return web.Response(status=status, text="Service Unavailable", headers=headers)
        return await handler(request)

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": _ms(datetime.now(UTC)),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                ],
                "exchangeFilters": [],
                "symbols": [_market(symbol) for symbol in self.symbols],
            }
        )

    async def _no_markets(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"timezone": "UTC", "serverTime": _ms(datetime.now(UTC)), "rateLimits": [], "symbols": []}
        )

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": _ms(datetime.now(UTC))})

    async def _book_ticker(self, request: web.Request) -> web.Response:
        with self._lock:
            quotes = dict(self.quotes)
        rows = [
            {"symbol": _venue_id(s), "bidPrice": str(b), "bidQty": "1.0", "askPrice": str(a), "askQty": "1.0"}
            for s, (b, a) in quotes.items()
        ]
        wanted = request.query.get("symbol")
        if wanted is not None:
            match = [row for row in rows if row["symbol"] == wanted]
            return web.json_response(match[0] if match else {"code": -1121, "msg": "Invalid symbol."})
        return web.json_response(rows)

    async def _klines(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        venue_id = query.get("symbol", "")
        symbol = next((s for s in self.symbols if _venue_id(s) == venue_id), None)
        if symbol is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        if query.get("interval") != "1m":
            return web.json_response({"code": -1120, "msg": "Invalid interval."}, status=400)
        limit = min(int(query.get("limit", "500")), 1000)
        with self._lock:
            self.kline_requests.append(query)
            trades = sorted(
                (t for t in self.trades if t.symbol == symbol), key=lambda t: (t.at_ms, t.trade_id)
            )
        if not trades:
            return web.json_response([])
        now_ms = _ms(datetime.now(UTC))
        first_minute = trades[0].at_ms // MINUTE_MS * MINUTE_MS
        start = max(int(query.get("startTime", first_minute)), first_minute)
        start = -(-start // MINUTE_MS) * MINUTE_MS  # the first kline opening at or after startTime
        end = int(query.get("endTime", now_ms))
        end = min(end, max(now_ms, trades[-1].at_ms))
        return web.json_response(_klines(trades, start=start, end=end, limit=limit))

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_connections:
            return web.Response(status=503, text="Service Unavailable")
        socket = web.WebSocketResponse(heartbeat=None)
        await socket.prepare(request)
        streams: set[str] = set()
        entry = (socket, streams)
        self._sockets.append(entry)
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                command = json.loads(message.data)
                params = [str(p) for p in command.get("params", [])]
                if command.get("method") == "SUBSCRIBE":
                    streams.update(params)
                elif command.get("method") == "UNSUBSCRIBE":
                    streams.difference_update(params)
                await socket.send_json({"result": None, "id": command.get("id")})
                self._refresh_subscriptions()
        finally:
            if entry in self._sockets:
                self._sockets.remove(entry)
            self._refresh_subscriptions()
        return socket

    def _refresh_subscriptions(self) -> None:
        self.subscriptions = {stream for _, streams in self._sockets for stream in streams}

    def _send(self, stream: str, event: dict[str, Any]) -> None:
        async def send() -> None:
            for socket, streams in list(self._sockets):
                if stream in streams and not socket.closed:
                    await socket.send_json(event)

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(timeout=10)

    async def _drop(self) -> None:
        for socket, _ in list(self._sockets):
            await socket.close()
        self._sockets.clear()
        self._refresh_subscriptions()


def _market(symbol: str) -> dict[str, Any]:
    base, quote = symbol.split("/")
    return {
        "symbol": _venue_id(symbol),
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _klines(trades: list[FakeTrade], *, start: int, end: int, limit: int) -> list[list[Any]]:
    """Binance's 1m klines opening in [start, end], from the trades; an empty minute repeats the last close."""
    by_minute: dict[int, list[FakeTrade]] = {}
    for trade in trades:
        by_minute.setdefault(trade.at_ms // MINUTE_MS * MINUTE_MS, []).append(trade)
    last_close = next((t.price for t in reversed(trades) if t.at_ms < start), trades[0].price)
    rows: list[list[Any]] = []
    minute = start
    while minute <= end and len(rows) < limit:
        inside = by_minute.get(minute, [])
        if inside:
            prices = [t.price for t in inside]
            volume = sum((t.amount for t in inside), Decimal(0))
            quote_volume = sum((t.amount * t.price for t in inside), Decimal(0))
            o, h, lo, c = prices[0], max(prices), min(prices), prices[-1]
            last_close = c
        else:
            o = h = lo = c = last_close
            volume = quote_volume = Decimal(0)
        rows.append(
            [
                minute,
                f"{o:f}",
                f"{h:f}",
                f"{lo:f}",
                f"{c:f}",
                f"{volume:f}",
                minute + MINUTE_MS - 1,
                f"{quote_volume:f}",
                len(inside),
                "0",
                "0",
                "0",
            ]
        )
        minute += MINUTE_MS
    return rows
