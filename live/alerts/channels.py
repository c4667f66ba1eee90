"""Where alerts go: the `Channel` port and its adapter for every service `apprise` speaks (webhooks as `json://` /
`jsons://`, Telegram `tgram://`, Slack `slack://`, e-mail `mailto://`, ...).

A channel is named in the record and the logs by its scheme and a hash of its URL (`json:3f2a9c01b7de`), never by
the URL: URLs carry tokens and passwords (`TRADEOS_ALERT_URLS` is a secret).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import apprise

# apprise's own records at INFO and below name hosts and payloads; warnings say why a send failed.
logging.getLogger("apprise").setLevel(logging.WARNING)


class ChannelError(ValueError):
    """A configured alert URL that no channel understands; the message names it by position, never by value."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SendResult:
    delivered: bool
    error: str = ""


class Channel(Protocol):
    """One destination. `send` makes one attempt and never raises: the notifier retries and dead-letters."""

    @property
    def name(self) -> str: ...

    def send(self, *, title: str, body: str) -> SendResult: ...


def channel_name(url: str) -> str:
    """The URL's scheme and the first 12 hex digits of its SHA-256: stable across restarts, reveals no secret."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "url"
    return f"{scheme}:{hashlib.sha256(url.encode()).hexdigest()[:12]}"


class AppriseChannel:
    """One URL through apprise (one `Apprise` object per URL, so each channel succeeds or fails on its own)."""

    def __init__(self, url: str) -> None:
        self._apprise = apprise.Apprise()
        self.name = channel_name(url)
        if not self._apprise.add(url):
            raise ChannelError(f"{self.name} is not a URL apprise understands")

    def send(self, *, title: str, body: str) -> SendResult:
        try:
            delivered = bool(self._apprise.notify(title=title, body=body))
        except Exception as exc:  # a plugin's own error: one failed attempt, never the notifier's end
            return SendResult(delivered=False, error=f"{type(exc).__name__}: {exc}")
        return SendResult(delivered=delivered, error="" if delivered else "refused or unreachable")


def channels_from_urls(urls: Iterable[str]) -> list[Channel]:
    """A channel per configured URL, in order; a URL apprise does not understand is a ChannelError naming its
    position in TRADEOS_ALERT_URLS."""
    channels: list[Channel] = []
    for position, url in enumerate(urls, start=1):
        try:
            channels.append(AppriseChannel(url))
        except ChannelError as exc:
            raise ChannelError(f"TRADEOS_ALERT_URLS: URL #{position} ({exc})") from None
    return channels
