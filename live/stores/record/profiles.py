"""`profile_versions`: every version of every custom profile, append-only (name, version, canonical body, its
content hash, when and by whom). The engine reads the version it trades under; the API saves and lists them."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from live.stores.record.statements import Query, Row, column_list, rows_of

PROFILE_VERSION_COLUMNS = ("id", "name", "version", "body", "content_hash", "created_at", "actor")
_READ = PROFILE_VERSION_COLUMNS[1:]


class StoredProfile(NamedTuple):
    """One saved version of a custom profile, as stored (not yet validated or checked against its hash)."""

    name: str
    version: int
    body: str
    content_hash: str
    created_at: datetime
    actor: str


_stored = rows_of(StoredProfile._make)


def _one(rows: list[Row]) -> StoredProfile | None:
    return StoredProfile._make(rows[0]) if rows else None


def save_profile_version(
    *, name: str, body: str, content_hash: str, actor: str
) -> Query[StoredProfile | None]:
    """Saves `body` as the next version of `name` (1 for a new name) and returns the row. Callers hold the profile
    lock (live/stores/record/decisions.py), so two saves of one name do not race for a version number; the
    unique (name, version) refuses one if they do."""
    return Query(
        sql="INSERT INTO profile_versions (name, version, body, content_hash, actor)"
        " SELECT %(name)s, COALESCE(MAX(version), 0) + 1, %(body)s, %(hash)s, %(actor)s"
        " FROM profile_versions WHERE name = %(name)s"
        f" RETURNING {column_list(_READ)}",
        params={"name": name, "body": body, "hash": content_hash, "actor": actor},
        decode=_one,
    )


def profile_version(*, name: str, version: int) -> Query[StoredProfile | None]:
    """One version of a custom profile; None if there is no such row."""
    return Query(
        sql=f"SELECT {column_list(_READ)} FROM profile_versions WHERE name = %s AND version = %s",
        params=(name, version),
        decode=_one,
    )


def latest_profile_version(*, name: str) -> Query[StoredProfile | None]:
    """The newest version of a custom profile; None if it was never saved."""
    return Query(
        sql=f"SELECT {column_list(_READ)} FROM profile_versions WHERE name = %s ORDER BY version DESC LIMIT 1",
        params=(name,),
        decode=_one,
    )


def latest_profile_versions() -> Query[list[StoredProfile]]:
    """The newest version of every custom profile, by name."""
    return Query(
        sql=f"SELECT DISTINCT ON (name) {column_list(_READ)} FROM profile_versions"
        " ORDER BY name, version DESC",
        decode=_stored,
    )
