-- Custom risk profiles: every version of every one, append-only (live/profiles.py; the built-ins are code, never
-- stored). `body` is the canonical JSON of the validated content, `content_hash` its sha256; the engine records the
-- hash it trades under and halts (PROFILE_HASH_MISMATCH) if the row of the version it loaded stops matching it.
CREATE TABLE IF NOT EXISTS profile_versions (
    id            bigserial   PRIMARY KEY,
    name          text        NOT NULL,
    version       integer     NOT NULL CHECK (version >= 1),
    body          text        NOT NULL,              -- canonical JSON: keys sorted, no spaces
    content_hash  text        NOT NULL,              -- sha256 hex of body
    created_at    timestamptz NOT NULL DEFAULT now(),
    actor         text        NOT NULL,
    UNIQUE (name, version)
);

-- Append-only: a version once saved is never changed or removed (a change is a new version). Someone able to
-- disable this trigger can still edit a row; the engine's hash check is what catches that.
CREATE OR REPLACE FUNCTION profile_versions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'profile_versions is append-only: save a new version instead of changing one';
END;
$$;

CREATE TRIGGER profile_versions_append_only
    BEFORE UPDATE OR DELETE ON profile_versions
    FOR EACH ROW EXECUTE FUNCTION profile_versions_append_only();
