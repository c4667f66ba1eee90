-- TRADEOS system of record. Times are timestamptz (UTC); money is numeric; quantities are integers.

CREATE TABLE bars (
    timestamp   timestamptz NOT NULL,
    symbol      text        NOT NULL,
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL,
    spread      double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (timestamp, symbol)
);

-- Every computed signal value (the IC analysis needs the full cross-section), actionable or not.
CREATE TABLE signals (
    id           bigserial PRIMARY KEY,
    timestamp    timestamptz NOT NULL,
    symbol       text        NOT NULL,
    signal_type  text        NOT NULL,
    strength     double precision NOT NULL CHECK (strength BETWEEN -1 AND 1),
    horizon_bars integer     NOT NULL,
    regime       text        NOT NULL,
    actionable   boolean     NOT NULL DEFAULT false
);
CREATE INDEX signals_timestamp_idx ON signals (timestamp);

CREATE TABLE orders (
    id                text PRIMARY KEY,           -- client order id: a resubmission is a no-op
    timestamp         timestamptz NOT NULL,       -- engine clock at submission
    symbol            text        NOT NULL,
    side              text        NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity          integer     NOT NULL CHECK (quantity > 0),
    signal_type       text        NOT NULL,
    reduces_position  boolean     NOT NULL,
    status            text        NOT NULL CHECK (status IN ('submitted', 'filled', 'rejected', 'cancelled')),
    reason            text        NOT NULL DEFAULT '',
    tick_to_order_us  double precision,           -- bar arrival to submission, engine-measured
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_timestamp_idx ON orders (timestamp);

CREATE TABLE fills (
    id            text PRIMARY KEY,
    order_id      text        NOT NULL REFERENCES orders (id),
    timestamp     timestamptz NOT NULL,
    symbol        text        NOT NULL,
    side          text        NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity      integer     NOT NULL CHECK (quantity > 0),
    price         numeric(24, 8) NOT NULL,
    fee           numeric(24, 8) NOT NULL,
    signal_type   text        NOT NULL,
    realized_pnl  numeric(24, 8) NOT NULL
);
CREATE INDEX fills_timestamp_idx ON fills (timestamp);
CREATE UNIQUE INDEX fills_one_per_order ON fills (order_id);

-- Current book, one row per symbol ever traded (quantity 0 = flat); rebuilt from fills on recovery.
CREATE TABLE positions (
    symbol        text PRIMARY KEY,
    quantity      integer        NOT NULL,
    avg_price     numeric(24, 8) NOT NULL,
    realized_pnl  numeric(24, 8) NOT NULL,
    updated_at    timestamptz    NOT NULL
);

CREATE TABLE equity (
    timestamp        timestamptz PRIMARY KEY,
    total_value      numeric(24, 8) NOT NULL,
    cash             numeric(24, 8) NOT NULL,
    high_water_mark  numeric(24, 8) NOT NULL
);

CREATE TABLE risk_events (
    id             bigserial PRIMARY KEY,
    timestamp      timestamptz NOT NULL,
    code           text        NOT NULL,
    detail         text        NOT NULL,
    symbol         text,
    halts_trading  boolean     NOT NULL DEFAULT false,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX risk_events_timestamp_idx ON risk_events (timestamp);

CREATE TABLE regime_changes (
    id         bigserial PRIMARY KEY,
    timestamp  timestamptz NOT NULL,
    previous   text,
    current    text        NOT NULL,
    model      text        NOT NULL
);

-- Operator actions: halt, resume, reduce, flatten, profile; who, when, why.
CREATE TABLE control_actions (
    id         bigserial PRIMARY KEY,
    timestamp  timestamptz NOT NULL DEFAULT now(),
    action     text        NOT NULL,
    actor      text        NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    value      text        NOT NULL DEFAULT ''
);

-- One engine holds the book: a lease with a fencing token. Writes check the token.
CREATE TABLE engine_lease (
    id          integer PRIMARY KEY CHECK (id = 1),
    holder      text        NOT NULL,
    token       bigint      NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Where the engine is: the last bar whose events are all committed, and the accounting anchors.
CREATE TABLE engine_state (
    id               integer PRIMARY KEY CHECK (id = 1),
    last_bar_ts      timestamptz,
    initial_cash     numeric(24, 8) NOT NULL,
    high_water_mark  numeric(24, 8) NOT NULL,
    trading_state    text        NOT NULL DEFAULT 'active',
    profile          text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Operator API access log (latency feeds /metrics/system).
CREATE TABLE api_requests (
    id          bigserial PRIMARY KEY,
    timestamp   timestamptz NOT NULL,
    method      text        NOT NULL,
    path        text        NOT NULL,
    status      integer     NOT NULL,
    latency_ms  double precision NOT NULL
);
