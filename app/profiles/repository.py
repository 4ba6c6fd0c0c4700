"""Fusion profiles persisted in SQLite (``<data-dir>/profiles.sqlite``), every version kept.

A save never overwrites: it appends version n+1, so a response that names ``profile@version``
can always be traced back to the exact settings, and a bad edit can be undone by saving an
older body again. The built-in ``default`` profile is served as version 0 until someone saves
one of that name.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.profiles.model import DEFAULT_PROFILE, FusionProfile
from app.sqlite import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
)
"""


class ProfileError(LookupError):
    """An unknown profile (or version)."""


class ProfileRepository(SqliteFile):
    schema = SCHEMA

    def names(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT name FROM profiles ORDER BY name").fetchall()
        return sorted({DEFAULT_PROFILE.name, *(r[0] for r in rows)})

    def get(self, name: str, version: int | None = None) -> FusionProfile:
        sql = "SELECT body FROM profiles WHERE name = ?"
        args: tuple[object, ...] = (name,)
        if version is not None:
            sql += " AND version = ?"
            args += (version,)
        with self._lock:
            row = self._db.execute(sql + " ORDER BY version DESC LIMIT 1", args).fetchone()
        if row is None:
            if name == DEFAULT_PROFILE.name and version in (None, 0):
                return DEFAULT_PROFILE
            what = f"{name!r} version {version}" if version is not None else repr(name)
            raise ProfileError(f"no fusion profile {what}; known: {', '.join(self.names())}")
        return FusionProfile.model_validate_json(row[0])

    def versions(self, name: str) -> list[int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT version FROM profiles WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
        return [r[0] for r in rows]

    def save(self, profile: FusionProfile) -> FusionProfile:
        """Store ``profile`` as the next version of its name and return it as stored."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.transaction() as db:  # version numbers never collide
            (latest,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM profiles WHERE name = ?",
                (profile.name,),
            ).fetchone()
            stored = profile.model_copy(update={"version": latest + 1, "updated_at": now})
            db.execute(
                "INSERT INTO profiles (name, version, body, updated_at) VALUES (?, ?, ?, ?)",
                (stored.name, stored.version, stored.model_dump_json(), now),
            )
        return stored
