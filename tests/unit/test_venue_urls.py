"""`--exchange-url` (live/venue.py `override_endpoints`): every endpoint of the venue moves to the given scheme and
host, its path kept, WebSocket endpoints on the WebSocket form of the scheme."""

from __future__ import annotations

from urllib.parse import urlsplit

import ccxt.pro
import pytest

from live.venue import VenueError, override_endpoints


def _endpoints(tree: object, prefix: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        found: dict[str, str] = {}
        for key, value in tree.items():
            found.update(_endpoints(value, f"{prefix}/{key}"))
        return found
    return {prefix: tree} if isinstance(tree, str) else {}


def test_every_binance_endpoint_moves_to_the_given_host_with_its_path_kept() -> None:
    original = ccxt.pro.binance().urls["api"]

    moved = override_endpoints(original, "http://127.0.0.1:8123")

    before, after = _endpoints(original), _endpoints(moved)
    assert before.keys() == after.keys()
    assert len(after) > 20  # REST of every product and the WebSocket streams
    for key, url in after.items():
        old, new = urlsplit(before[key]), urlsplit(url)
        assert new.netloc == "127.0.0.1:8123", key
        assert (new.path, new.query) == (old.path, old.query), key
        assert new.scheme == ("ws" if old.scheme in ("ws", "wss") else "http"), key
    assert after["/ws/spot"] == "ws://127.0.0.1:8123/ws"
    assert after["/public"] == "http://127.0.0.1:8123/api/v3"


def test_a_secure_base_gives_secure_websockets_and_a_websocket_base_gives_http_for_rest() -> None:
    urls = {"public": "https://api.example.com/api/v3", "ws": {"spot": "wss://stream.example.com:9443/ws"}}

    assert override_endpoints(urls, "https://gateway.local") == {
        "public": "https://gateway.local/api/v3",
        "ws": {"spot": "wss://gateway.local/ws"},
    }
    assert override_endpoints(urls, "ws://10.0.0.2:9000/") == {
        "public": "http://10.0.0.2:9000/api/v3",
        "ws": {"spot": "ws://10.0.0.2:9000/ws"},
    }


def test_values_that_are_not_urls_are_left_alone() -> None:
    urls = {"public": "https://api.example.com/v1", "rateLimits": 50, "note": "see docs"}

    assert override_endpoints(urls, "http://h:1") == {
        "public": "http://h:1/v1",
        "rateLimits": 50,
        "note": "see docs",
    }


@pytest.mark.parametrize("base", ["ftp://host", "http://host/prefix", "host:8080", "http://"])
def test_a_base_that_is_not_a_scheme_and_host_is_refused(base: str) -> None:
    with pytest.raises(VenueError, match="not like https://host"):
        override_endpoints({"public": "https://api.example.com/v1"}, base)
