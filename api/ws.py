"""WebSocket fan-out (docs/api.md, WebSocket): one Redis subscription per API process, a bounded queue per client.

The hub never awaits a client: it only puts into queues, so a client that cannot keep up fills its own queue and is
dropped, while the others (and the engine, which only publishes to Redis) carry on. `portfolio_update`s are
coalesced to at most one per `portfolio_interval` seconds, always delivering the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from decimal import Decimal
from urllib.parse import urlsplit

from fastapi import WebSocket
from redis.exceptions import RedisError
from starlette.websockets import WebSocketDisconnect

from api.auth import websocket_authorized
from api.browser_session import configured_token
from api.reads import decode_json, read_portfolio
from api.stores import Stores, StoreUnavailable
from live.settings import Settings
from live.stores import redis_keys
from live.wire import EVENT_TYPES, PortfolioUpdate

log = logging.getLogger("tradeos.api.ws")

SLOW_CLIENT_CLOSE_CODE = 1013  # "try again later"
_CLOSE_GRACE_SECONDS = 1.0


class Subscriber:
    """One client's mailbox. `dropped` is set when the hub gave up on it."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize)
        self.dropped = asyncio.Event()


class EventHub:
    """Relays the engine's events channel to every connected client."""

    def __init__(self, *, stores: Stores, queue_size: int = 1024, portfolio_interval: float = 0.25) -> None:
        self._stores = stores
        self._queue_size = queue_size
        self._portfolio_interval = portfolio_interval
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_portfolio_at = float("-inf")
        self._pending_portfolio: str | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._stopping = False
        self.subscribed = asyncio.Event()

    @property
    def client_count(self) -> int:
        return len(self._subscribers)

    @property
    def queue_size(self) -> int:
        """Messages a client may fall behind before it is dropped."""
        return self._queue_size

    def queued(self) -> tuple[int, int]:
        """(the deepest client queue, the messages queued over all clients)."""
        depths = [subscriber.queue.qsize() for subscriber in self._subscribers]
        return (max(depths, default=0), sum(depths))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tradeos-ws-hub")

    async def stop(self) -> None:
        self._stopping = True
        if self._flush_handle:
            self._flush_handle.cancel()
        if self._task:
            # redis-py can swallow a cancellation that races its read timeout; the flag ends the loop anyway.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
        for subscriber in list(self._subscribers):
            self._drop(subscriber)

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(self._queue_size)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    async def _run(self) -> None:
        channel = redis_keys.events_channel(self._stores.redis_db)
        backoff = 0.1
        while not self._stopping:
            pubsub = self._stores.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                self.subscribed.set()
                backoff = 0.1
                while not self._stopping:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    # With no client the message is only read off the connection: decoding every event the engine
                    # publishes at full speed would take the CPU an operator's halt is waiting for.
                    if self._subscribers and message is not None and message.get("type") == "message":
                        self.dispatch(message["data"])
                        # Let the client senders run between messages of a burst.
                        await asyncio.sleep(0)
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("events subscription lost (%s); retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def dispatch(self, raw: bytes | str) -> None:
        """Relays one published event as-is; malformed or unknown ones are ignored."""
        event = decode_json(raw)
        if event is None or event.get("type") not in EVENT_TYPES:
            return
        text = raw.decode() if isinstance(raw, bytes) else raw
        if event["type"] != "portfolio_update":
            self._fan_out(text)
            return
        now = time.monotonic()
        if now - self._last_portfolio_at >= self._portfolio_interval and self._flush_handle is None:
            self._last_portfolio_at = now
            self._fan_out(text)
            return
        self._pending_portfolio = text
        if self._flush_handle is None:
            delay = max(0.0, self._last_portfolio_at + self._portfolio_interval - now)
            self._flush_handle = asyncio.get_running_loop().call_later(delay, self._flush_portfolio)

    def _flush_portfolio(self) -> None:
        self._flush_handle = None
        if self._pending_portfolio is not None:
            text, self._pending_portfolio = self._pending_portfolio, None
            self._last_portfolio_at = time.monotonic()
            self._fan_out(text)

    def _fan_out(self, text: str) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(text)
            except asyncio.QueueFull:
                log.warning("dropping a WebSocket client that fell %d messages behind", self._queue_size)
                self._drop(subscriber)

    def _drop(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        subscriber.dropped.set()


async def initial_portfolio_message(*, stores: Stores, initial_cash: Decimal) -> str | None:
    """The `portfolio_update` a client gets on connecting: `GET /portfolio` as it stands, stamped like every
    message with the engine clock it was marked at (null for a book never marked)."""
    try:
        portfolio = await read_portfolio(stores=stores, initial_cash=initial_cash)
    except StoreUnavailable:
        return None
    return PortfolioUpdate.of(portfolio, timestamp=portfolio.timestamp).encode()


async def _send_loop(websocket: WebSocket, subscriber: Subscriber) -> None:
    while True:
        await websocket.send_text(await subscriber.queue.get())


async def _receive_loop(websocket: WebSocket) -> None:
    """Reads (and ignores) what the client sends, to notice when it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def _port_on_served_host(origin: str, host: str | None) -> int | None:
    """The port of an `http(s)://` `origin` whose host name is the one the `Host` header names; None otherwise."""
    parsed = urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or not host:
        return None
    try:
        origin_port = parsed.port or (443 if parsed.scheme == "https" else 80)
        served = urlsplit(f"//{host.strip().lower()}")
    except ValueError:  # a port that is not a number
        return None
    return origin_port if parsed.hostname == served.hostname else None


def _served_port(host: str | None, origin: str) -> int | None:
    try:
        served = urlsplit(f"//{(host or '').strip().lower()}")
        return served.port or (443 if origin.startswith("https:") else 80)
    except ValueError:
        return None


def _normalised(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_allowed(*, origin: str | None, host: str | None, settings: Settings) -> bool:
    """Whether a handshake's `Origin` may open the WebSocket: none (not a browser), the API's own (same host and
    port as the `Host` header), the dashboard's (same host, `TRADEOS_DASHBOARD_PORT`), or one listed in
    `TRADEOS_WS_ALLOWED_ORIGINS`. A page from any other site is refused, whatever credentials its browser holds."""
    if origin is None:
        return True
    origin = _normalised(origin)
    if origin in settings.api.ws_origin_allow_list:
        return True
    port = _port_on_served_host(origin, host)
    return port is not None and port in (_served_port(host, origin), settings.api.dashboard_port)


def is_dashboard_origin(*, origin: str | None, host: str | None, settings: Settings) -> bool:
    """Whether a handshake comes from the dashboard's page (`TRADEOS_HOST` or the API's host name, on
    `TRADEOS_DASHBOARD_PORT`): the one origin whose session cookie opens the WebSocket."""
    if origin is None:
        return False
    origin = _normalised(origin)
    if origin == f"http://{settings.api.host}:{settings.api.dashboard_port}".lower():
        return True
    return _port_on_served_host(origin, host) == settings.api.dashboard_port


async def serve_client(websocket: WebSocket) -> None:
    """One client: origin and auth checked before accepting, the initial snapshot, then relayed events until
    either side ends."""
    app_state = websocket.app.state
    settings: Settings = app_state.settings
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin=origin, host=websocket.headers.get("host"), settings=settings):
        log.warning("WebSocket handshake refused: origin %r is not allowed", (origin or "")[:200])
        await websocket.close(code=1008, reason="origin not allowed")  # before accept: handshake refused, 403
        return
    from_dashboard = is_dashboard_origin(origin=origin, host=websocket.headers.get("host"), settings=settings)
    if not websocket_authorized(websocket, configured_token(websocket.app), session_allowed=from_dashboard):
        await websocket.close(
            code=1008, reason="missing or invalid token"
        )  # before accept: handshake rejected
        return
    hub: EventHub = app_state.hub
    subscriber = hub.subscribe()  # before the snapshot is read, so nothing published meanwhile is missed
    tasks: list[asyncio.Task[None]] = []
    try:
        await websocket.accept()
        initial = await initial_portfolio_message(
            stores=app_state.stores, initial_cash=settings.engine.initial_cash
        )
        if initial is not None:
            await websocket.send_text(initial)
        tasks = [
            asyncio.create_task(_send_loop(websocket, subscriber)),
            asyncio.create_task(_receive_loop(websocket)),
            asyncio.create_task(subscriber.dropped.wait()),  # type: ignore[arg-type]
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        if tasks[2] in done:
            # A blocked send would block the close frame too: give it a moment, then let the server close.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    websocket.close(code=SLOW_CLIENT_CLOSE_CODE, reason="too slow: dropped"),
                    _CLOSE_GRACE_SECONDS,
                )
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(subscriber)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
