"""Human relevance judgements in SQLite (``<data-dir>/judgements.sqlite``).

A person marks a product relevant or not relevant for a query; ``snapshop eval --judgements``
adds the verdicts to the known answers (qrels). A query is named by a key, so the same query
typed twice, or the same photo uploaded twice, collects marks under one name:

- ``text:<casefolded text, whitespace collapsed>`` for a typed query,
- ``image:<sha256 hex of the file bytes>`` for a photo.

Each judge holds one mark per (query, product): marking again replaces it. Several judges'
marks are combined by majority, a tie going to the most recent mark.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from app.sqlite import SqliteFile
from ingestion.catalog import MAX_ID_CHARS

TEXT_PREFIX = "text:"
IMAGE_PREFIX = "image:"
MAX_TEXT_CHARS = 1000
MAX_PRODUCT_ID_CHARS = MAX_ID_CHARS  # any id the catalog accepts can be judged
MAX_JUDGE_CHARS = 64
MAX_NOTE_CHARS = 2000
MAX_REPORTED_PROBLEMS = 20
CSV_COLUMNS = ("query_key", "product_id", "relevant", "judge", "note", "updated_at")
REQUIRED_COLUMNS = ("query_key", "product_id", "relevant", "judge")
TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"0", "false", "no"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
    query_key TEXT NOT NULL,
    product_id TEXT NOT NULL,
    judge TEXT NOT NULL,
    relevant INTEGER NOT NULL CHECK (relevant IN (0, 1)),
    note TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (query_key, product_id, judge)
);
CREATE INDEX IF NOT EXISTS judgements_by_time ON judgements (updated_at);
CREATE INDEX IF NOT EXISTS judgements_by_product ON judgements (product_id);
"""
# Newest first; the rest of the key makes the order total, so it never depends on insert order
# (an export re-imported elsewhere lists identically).
ORDER = "ORDER BY updated_at DESC, query_key, product_id, judge"
COLUMNS = "query_key, product_id, relevant, judge, note, updated_at"


class JudgementError(ValueError):
    """Bad input: a field of one mark, or the rows of a CSV file (``problems`` lists them)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class Judgement:
    query_key: str
    product_id: str
    relevant: bool
    judge: str
    note: str
    updated_at: str  # ISO-8601 UTC, microseconds: as text, it sorts in time order


def text_key(text: str) -> str:
    """The key of a typed query: case and spacing do not make a different query."""
    normalised = " ".join(text.casefold().split())
    if not normalised:
        raise ValueError("a text query needs some text")
    return TEXT_PREFIX + normalised


def image_key(data: bytes) -> str:
    """The key of a photo query: the same bytes are the same query."""
    if not data:
        raise ValueError("an image query needs the image bytes")
    return IMAGE_PREFIX + hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """A client's query key in its canonical form, or ``JudgementError`` saying what is wrong.

    Text keys are normalised like ``text_key`` and image hex is lowercased, so a key a person
    typed by hand still lands on the same query as the one the code derives.
    """
    if key.startswith(TEXT_PREFIX):
        text = key[len(TEXT_PREFIX) :]
        if len(text) > MAX_TEXT_CHARS:
            raise JudgementError(f"query key text is over {MAX_TEXT_CHARS} characters")
        try:
            return text_key(text)
        except ValueError:
            raise JudgementError("query key 'text:' needs some text after it") from None
    if key.startswith(IMAGE_PREFIX):
        digest = key[len(IMAGE_PREFIX) :].lower()
        if not _SHA256_HEX.fullmatch(digest):
            raise JudgementError("query key 'image:' must be followed by 64 hex digits (sha256)")
        return IMAGE_PREFIX + digest
    shown = key if len(key) <= 40 else key[:40] + "..."
    raise JudgementError(f"query key {shown!r} must start with 'text:' or 'image:'")


def _now() -> str:
    return _iso(datetime.now(UTC))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_timestamp(value: str) -> str:
    """An ISO-8601 time in the stored form (UTC, microseconds); a time without zone is UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise JudgementError(f"updated_at {value!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _iso(moment)


def parse_relevant(value: str) -> bool:
    word = value.strip().casefold()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise JudgementError(f"relevant must be 1/0, true/false or yes/no, got {value!r}")


def _check_name(field: str, value: str, max_chars: int, empty_hint: str = "") -> str:
    """A product id or a judge: one printable line, not empty, not over ``max_chars``."""
    value = value.strip()
    if not value:
        raise JudgementError(f"{field} is empty{empty_hint}")
    if len(value) > max_chars:
        raise JudgementError(f"{field} is over {max_chars} characters")
    if not value.isprintable():
        raise JudgementError(f"{field} holds control characters (tabs, newlines, ...)")
    return value


def _check_note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise JudgementError(f"note is over {MAX_NOTE_CHARS} characters")
    if "\x00" in note:
        raise JudgementError("note holds a NUL character")
    return note


def _validate(
    query_key: str, product_id: str, relevant: bool, judge: str, note: str, updated_at: str
) -> Judgement:
    if not isinstance(relevant, bool):
        raise JudgementError("relevant must be true or false")
    return Judgement(
        query_key=check_key(query_key),
        product_id=_check_name("product_id", product_id, MAX_PRODUCT_ID_CHARS),
        relevant=relevant,
        judge=_check_name("judge", judge, MAX_JUDGE_CHARS, ": say who made the mark"),
        note=_check_note(note),
        updated_at=updated_at,
    )


def _row(row: tuple[str, str, int, str, str, str]) -> Judgement:
    return Judgement(row[0], row[1], bool(row[2]), row[3], row[4], row[5])


class JudgementStore(SqliteFile):
    schema = SCHEMA

    def record(
        self, query_key: str, product_id: str, relevant: bool, judge: str, note: str = ""
    ) -> Judgement:
        """Store ``judge``'s mark for (query, product), replacing their earlier one."""
        mark = _validate(query_key, product_id, relevant, judge, note, _now())
        with self._lock:
            self._upsert([mark])
        return mark

    def _upsert(self, marks: Iterable[Judgement]) -> None:
        self._db.executemany(
            f"INSERT INTO judgements ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (query_key, product_id, judge) DO UPDATE SET "
            "relevant = excluded.relevant, note = excluded.note, updated_at = excluded.updated_at",
            (
                (m.query_key, m.product_id, int(m.relevant), m.judge, m.note, m.updated_at)
                for m in marks
            ),
        )

    @staticmethod
    def _where(
        query_key: str | None, product_id: str | None, judge: str | None
    ) -> tuple[str, tuple[str, ...]]:
        clauses: list[str] = []
        args: list[str] = []
        if query_key is not None:
            clauses.append("query_key = ?")
            args.append(check_key(query_key))
        if product_id is not None:
            clauses.append("product_id = ?")
            args.append(product_id.strip())
        if judge is not None:
            clauses.append("judge = ?")
            args.append(judge.strip())
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)

    def find(
        self,
        query_key: str | None = None,
        product_id: str | None = None,
        judge: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Judgement]:
        """Marks matching every filter given, newest first."""
        if limit < 0 or offset < 0:
            raise JudgementError("limit and offset must not be negative")
        where, args = self._where(query_key, product_id, judge)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM judgements{where} {ORDER} LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [_row(r) for r in rows]

    def count(
        self, query_key: str | None = None, product_id: str | None = None, judge: str | None = None
    ) -> int:
        where, args = self._where(query_key, product_id, judge)
        with self._lock:
            (n,) = self._db.execute(f"SELECT COUNT(*) FROM judgements{where}", args).fetchone()
        return int(n)

    def delete(self, query_key: str, product_id: str, judge: str) -> bool:
        """Remove one judge's mark; False when there was none."""
        where, args = self._where(query_key, product_id, judge)
        with self._lock:
            cursor = self._db.execute(f"DELETE FROM judgements{where}", args)
        return cursor.rowcount > 0

    def qrels(self) -> dict[str, dict[str, bool]]:
        """Per query key, per product: the judges' verdict (majority; a tie goes to the latest).

        Marks made in the same microsecond are ordered by judge name, so the verdict never
        depends on the order rows were stored in.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT query_key, product_id, relevant FROM judgements "
                "ORDER BY query_key, product_id, updated_at, judge"
            ).fetchall()
        tally: dict[tuple[str, str], list[int]] = {}
        for key, product, relevant in rows:
            votes = tally.setdefault((key, product), [0, 0, 0])  # yes, no, latest
            votes[0 if relevant else 1] += 1
            votes[2] = relevant  # rows come oldest first: the last one seen is the latest
        verdicts: dict[str, dict[str, bool]] = {}
        for (key, product), (yes, no, latest) in tally.items():
            verdicts.setdefault(key, {})[product] = yes > no if yes != no else bool(latest)
        return verdicts

    def export_csv(self, fh: TextIO) -> int:
        """Every mark as CSV (``CSV_COLUMNS``, relevant as 1/0); returns the rows written."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM judgements ORDER BY query_key, product_id, judge"
            ).fetchall()
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for key, product, relevant, judge, note, updated_at in rows:
            writer.writerow((key, product, 1 if relevant else 0, judge, note, updated_at))
        return len(rows)

    def import_csv(self, fh: TextIO, source: str) -> int:
        """Upsert the marks of an exported (or hand-written) CSV; returns how many.

        All or nothing: every row is checked first and one bad row imports none, so a fixed
        file can simply be imported again. Problems are reported as ``source:LINE: reason``.
        """
        marks = read_csv(fh, source)
        with self.transaction():
            self._upsert(marks)
        return len(marks)


def read_csv(fh: TextIO, source: str) -> list[Judgement]:
    """The marks of a judgements CSV, or ``JudgementError`` listing its bad rows."""
    reader = csv.reader(fh)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise JudgementError(f"{source}:1: {exc}") from None
    if header is None:
        raise JudgementError(f"{source}: empty file; expected a header: {','.join(CSV_COLUMNS)}")
    # A BOM from a spreadsheet export, or spacing/case in a hand-written header, is not an error.
    names = [name.lstrip("\ufeff").strip().casefold() for name in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise JudgementError(
            f"{source}:1: missing column(s) {', '.join(missing)}; "
            f"expected a header: {','.join(CSV_COLUMNS)} (note and updated_at optional)"
        )
    at = {name: names.index(name) for name in CSV_COLUMNS if name in names}
    marks: list[Judgement] = []
    problems: list[str] = []
    now = _now()  # rows without a time share the moment of the import
    line = reader.line_num
    while True:
        start = line + 1  # a quoted field may span lines: report where the row begins
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"{source}:{start}: {exc}")
            break  # the reader cannot resynchronise after a broken quote
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(names):
            problems.append(f"{source}:{start}: {len(fields)} fields, the header has {len(names)}")
            continue

        def field(name: str, values: list[str] = fields) -> str:
            return values[at[name]] if name in at else ""

        try:
            stamp = field("updated_at").strip()
            marks.append(
                _validate(
                    field("query_key").strip(),
                    field("product_id"),
                    parse_relevant(field("relevant")),
                    field("judge"),
                    field("note"),
                    parse_timestamp(stamp) if stamp else now,
                )
            )
        except JudgementError as exc:
            problems.append(f"{source}:{start}: {exc}")
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        lines = "\n".join(shown) + (f"\n... and {more} more" if more else "")
        raise JudgementError(
            f"{source}: {len(problems)} bad row(s); nothing imported:\n{lines}", problems=shown
        )
    return marks
