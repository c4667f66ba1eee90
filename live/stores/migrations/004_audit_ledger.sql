-- The tamper-evident audit ledger (live/audit.py, README "Verifying the audit ledger"): one HMAC-SHA256 chained
-- entry per order intent, fill, risk event and control action, appended in the transaction that writes the row it
-- covers. The key is never here: a database user can change rows, but not make them verify again.
-- Operator actions say from where: the client address of the API request (`engine` for the engine's own).
ALTER TABLE control_actions ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT '';

CREATE TABLE IF NOT EXISTS audit_ledger (
    seq          bigint      PRIMARY KEY CHECK (seq > 0),
    recorded_at  timestamptz NOT NULL,
    kind         text        NOT NULL,                -- order, fill, risk_event, control_action
    ref          text        NOT NULL,                -- the covered row's id
    actor        text        NOT NULL,
    origin       text        NOT NULL,
    payload      text        NOT NULL,                -- the covered row, canonical JSON
    prev_hash    text        NOT NULL,
    hash         text        NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_ledger_recorded_at_idx ON audit_ledger (recorded_at);

-- Append-only: rows are never updated or deleted (a superuser can still disable this; `tradeos audit verify` then
-- names what changed).
CREATE OR REPLACE FUNCTION audit_ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_ledger is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_ledger_append_only BEFORE UPDATE OR DELETE ON audit_ledger
    FOR EACH ROW EXECUTE FUNCTION audit_ledger_refuse_change();
CREATE TRIGGER audit_ledger_no_truncate BEFORE TRUNCATE ON audit_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION audit_ledger_refuse_change();
