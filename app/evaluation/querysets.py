"""Named query sets stored in SQLite (``<data-dir>/querysets.sqlite``) for ``POST /v1/eval/run``.

A set is a snapshot: the query files' rows and the photos' bytes are copied in when it is
saved, so an evaluation the PM console runs next month grades the same queries even if the
files were edited or moved. Saving a name again replaces that set as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.evaluation.judgements import image_key, text_key
from app.evaluation.search import EvalQuery
from app.profiles.model import NAME_RE
from app.sqlite import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS query_sets (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    query_set TEXT NOT NULL REFERENCES query_sets(name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    query_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'text')),
    label TEXT NOT NULL,
    text TEXT,
    image BLOB,
    query_type TEXT NOT NULL,
    category TEXT NOT NULL,
    relevant TEXT NOT NULL,
    PRIMARY KEY (query_set, position)
);
"""


class QuerySetError(LookupError):
    """An unknown query set, or a bad name."""


@dataclass(frozen=True)
class QuerySetInfo:
    name: str
    source: str
    saved_at: str
    image_queries: int
    text_queries: int


class QuerySetStore(SqliteFile):
    schema = SCHEMA

    def save(self, name: str, queries: Sequence[EvalQuery], source: str = "") -> QuerySetInfo:
        if not NAME_RE.match(name):
            raise QuerySetError(
                f"query set name {name!r}: 1-64 of a-z, 0-9, - and _, "
                "starting with a letter or digit"
            )
        if not queries:
            raise QuerySetError(f"query set {name!r} would be empty")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        rows = [
            (
                name,
                i,
                q.query_id,
                q.kind,
                q.label,
                q.text,
                q.image,
                q.query_type,
                q.category,
                ";".join(sorted(q.relevant)),
            )
            for i, q in enumerate(queries)
        ]
        with self.transaction() as db:  # readers see the old set or the new, never half
            db.execute("DELETE FROM query_sets WHERE name = ?", (name,))
            db.execute(
                "INSERT INTO query_sets (name, source, saved_at) VALUES (?, ?, ?)",
                (name, source, now),
            )
            db.executemany("INSERT INTO queries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return self.info(name)

    def summaries(self) -> list[QuerySetInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT s.name, s.source, s.saved_at,"
                " SUM(q.kind = 'image'), SUM(q.kind = 'text')"
                " FROM query_sets s JOIN queries q ON q.query_set = s.name"
                " GROUP BY s.name ORDER BY s.name"
            ).fetchall()
        return [QuerySetInfo(r[0], r[1], r[2], int(r[3] or 0), int(r[4] or 0)) for r in rows]

    def info(self, name: str) -> QuerySetInfo:
        for found in self.summaries():
            if found.name == name:
                return found
        raise QuerySetError(self._unknown(name))

    def load(self, name: str) -> list[EvalQuery]:
        with self._lock:
            rows = self._db.execute(
                "SELECT query_id, kind, label, text, image, query_type, category, relevant"
                " FROM queries WHERE query_set = ? ORDER BY position",
                (name,),
            ).fetchall()
        if not rows:
            raise QuerySetError(self._unknown(name))
        out = []
        for query_id, kind, label, text, image, query_type, category, relevant in rows:
            key = image_key(image) if kind == "image" else text_key(text)
            out.append(
                EvalQuery(
                    query_id,
                    kind,
                    label,
                    frozenset(relevant.split(";")),
                    key,
                    text=text,
                    image=image,
                    query_type=query_type,
                    category=category,
                )
            )
        return out

    def photo(self, name: str, index: int) -> bytes:
        """The photo of the set's ``index``-th query (from 0, in the set's order)."""
        with self._lock:
            row = self._db.execute(
                "SELECT image FROM queries WHERE query_set = ? ORDER BY position LIMIT 1 OFFSET ?",
                (name, index),
            ).fetchone()
        if row is None or row[0] is None:
            raise QuerySetError(f"query set {name!r} has no photo query at position {index}")
        return bytes(row[0])

    def delete(self, name: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM query_sets WHERE name = ?", (name,))
        return cur.rowcount > 0

    def _unknown(self, name: str) -> str:
        known = ", ".join(s.name for s in self.summaries()) or "none yet"
        return f"no query set {name!r}; known: {known} (add one with `snapshop queryset add`)"
