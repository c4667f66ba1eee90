"""Alerts and the dead-man's switch: the two processes that outlive the engine (README, Alerts and the dead-man's
switch).

- `events.py`: what an alert says and when it is sent (pure: coalescing, digests, backoff).
- `channels.py`: the `Channel` port and its apprise adapter (webhooks, Telegram, Slack, e-mail, ...).
- `notifier.py`: reads the recorded events after its cursors and delivers them, at least once, de-duplicated.
- `watchdog.py`: halts trading through the kill switch when the engine's heartbeat stops.
"""
