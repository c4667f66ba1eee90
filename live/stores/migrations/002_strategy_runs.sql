-- The strategy each engine start traded (a switch during a run is a control action, action = 'strategy', whose
-- value holds the strategies before and after). Only added: no existing table changes.
CREATE TABLE IF NOT EXISTS strategy_runs (
    id           bigserial PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    holder       text        NOT NULL DEFAULT '',   -- the engine (lease holder) that started
    spec         text        NOT NULL,              -- as given: builtin, package.module:Class, path/to/file.py:Class
    name         text        NOT NULL,
    version      text        NOT NULL,
    params       text        NOT NULL,              -- canonical JSON: keys sorted, no spaces
    params_hash  text        NOT NULL               -- sha256 hex of params
);
