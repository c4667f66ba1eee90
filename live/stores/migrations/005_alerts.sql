-- Alerts (live/alerts/): what the notifier delivered, what it gave up on, and how far it has read the record.
-- Only added: no existing table changes.

-- One row per (event, channel) delivered: the notifier never sends an event to a channel twice, across restarts.
-- `channel` names a configured URL without revealing it (its scheme and a hash: live/alerts/channels.py).
CREATE TABLE IF NOT EXISTS alert_deliveries (
    kind          text        NOT NULL,   -- fill, rejection, risk_event, breaker_trip, halt, resume, flow_failed, ...
    event_id      text        NOT NULL,   -- the event's id in its own table (or the report's file name)
    channel       text        NOT NULL,
    message_id    text        NOT NULL,   -- events coalesced into one message share it
    attempts      integer     NOT NULL,
    delivered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, event_id, channel)
);

-- The dead letters: an alert a channel refused every time it was tried. Never retried on its own.
CREATE TABLE IF NOT EXISTS alert_dead_letters (
    kind        text        NOT NULL,
    event_id    text        NOT NULL,
    channel     text        NOT NULL,
    message_id  text        NOT NULL,
    attempts    integer     NOT NULL,
    last_error  text        NOT NULL,
    title       text        NOT NULL,
    body        text        NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, event_id, channel)
);

-- How far the notifier has read each kind of event: everything before `position` is delivered or dead-lettered.
CREATE TABLE IF NOT EXISTS alert_cursors (
    kind        text PRIMARY KEY,
    position    text        NOT NULL,   -- as the kind's source reads it: a row id, or an ISO 8601 time and an id
    floor       text        NOT NULL,   -- the position at the notifier's first start: nothing before it is sent
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The notifier reads rejections by when they were recorded, as the engine records them.
CREATE INDEX IF NOT EXISTS orders_rejected_updated_at_idx ON orders (updated_at, id) WHERE status = 'rejected';
