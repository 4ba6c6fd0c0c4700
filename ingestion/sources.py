"""Row readers for the two catalog formats; they report broken lines, ``catalog`` judges content.

Both yield one ``SourceRow`` per product line, with the physical line number a person would look
up in an editor. Encoding damage and structural damage (a CSV row with the wrong number of
fields, a JSONL line that is not an object) are per-row problems, never a failed run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 1_000_000  # a "row" this long is a broken file, not a product


class SourceFileError(ValueError):
    """The products file cannot be read at all (missing header columns, unreadable file)."""


@dataclass(frozen=True)
class SourceRow:
    line: int  # 1-based line where the row starts
    fields: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # set when the row could not be parsed
    product_id: str = ""  # best effort, for the quarantine report of a broken row


def _bad_utf8(value: str) -> bool:
    # Undecodable bytes come through surrogateescape as lone surrogates.
    return any("\udc80" <= c <= "\udcff" for c in value)


def csv_rows(
    path: Path, required: Collection[str], reserved: Collection[str] = ()
) -> Iterator[SourceRow]:
    """Rows of a CSV file with a header line; the header must have the ``required`` columns."""
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in required if c not in header]
        if missing:
            raise SourceFileError(f"{path}: missing column(s) {', '.join(missing)}")
        clash = sorted(set(header) & set(reserved))
        if clash:
            raise SourceFileError(
                f"{path}: column name(s) {', '.join(clash)} are reserved; rename the column(s)"
            )
        start = 2
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a NUL byte in the file
                yield SourceRow(start, problem=f"unreadable CSV row: {exc}")
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            pid = str(row.get("product_id") or "").strip()
            if None in row:
                extra = len(row[None])  # type: ignore[index]
                yield SourceRow(
                    line,
                    problem=f"row has {len(header) + extra} fields, the header has {len(header)}",
                    product_id=pid,
                )
                continue
            if any(v is None for v in row.values()):
                given = sum(v is not None for v in row.values())
                yield SourceRow(
                    line,
                    problem=f"row has {given} fields, the header has {len(header)}",
                    product_id=pid,
                )
                continue
            if any(_bad_utf8(v) for v in row.values()):
                yield SourceRow(line, problem="row is not valid UTF-8", product_id=pid)
                continue
            yield SourceRow(line, {k: v.strip() for k, v in row.items() if k})


def jsonl_rows(path: Path) -> Iterator[SourceRow]:
    """One JSON object per line; blank lines are skipped."""
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                yield SourceRow(line_no, problem=f"line is {len(raw)} bytes; at most 1 MB")
                continue
            try:
                text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError:
                yield SourceRow(line_no, problem="line is not valid UTF-8")
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield SourceRow(line_no, problem=f"not valid JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(obj, dict):
                yield SourceRow(
                    line_no, problem=f"a line must be a JSON object, not {type(obj).__name__}"
                )
                continue
            yield SourceRow(line_no, obj)
