"""The judgement store: keys, upserts, the judges' verdict, CSV export/import (all or nothing)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.evaluation import judgements as jm
from app.evaluation.judgements import (
    CSV_COLUMNS,
    JudgementError,
    JudgementStore,
    check_key,
    image_key,
    text_key,
)
from ingestion.catalog import MAX_ID_CHARS

SHA = "ab" * 32
HEADER = ",".join(CSV_COLUMNS)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JudgementStore]:
    s = JudgementStore(tmp_path / "sub" / "judgements.sqlite")
    yield s
    s.close()


class Clock:
    """Stands in for the store's clock so "most recent" is under the test's control."""

    def __init__(self) -> None:
        self.second = 0

    def __call__(self) -> str:
        self.second += 1
        return f"2024-05-01T00:00:{self.second:02d}.000000+00:00"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(jm, "_now", c)
    return c


def _import(store: JudgementStore, text: str, source: str = "f.csv") -> int:
    return store.import_csv(io.StringIO(text, newline=""), source)


def test_text_keys_ignore_case_and_spacing() -> None:
    assert text_key("Navy  Shirt") == text_key(" navy shirt\t") == "text:navy shirt"
    assert text_key("STRASSE") == text_key("straße")  # casefold, not lower
    assert text_key("navy shirt") != text_key("navy shirts")
    with pytest.raises(ValueError):
        text_key("  \n ")


def test_image_keys_are_the_sha256_of_the_bytes() -> None:
    data = b"\xff\xd8 not really a jpeg"
    assert image_key(data) == "image:" + hashlib.sha256(data).hexdigest()
    assert image_key(data) != image_key(data + b"\x00")
    with pytest.raises(ValueError):
        image_key(b"")


def test_check_key_canonicalises_good_keys_and_refuses_bad_ones() -> None:
    assert check_key("text:Navy  SHIRT") == "text:navy shirt"
    assert check_key("image:" + SHA.upper()) == "image:" + SHA
    assert check_key("text:" + "a" * 1000) == "text:" + "a" * 1000
    for bad in (
        "navy shirt",
        "TEXT:navy",
        "text:",
        "text:   ",
        "text:" + "a" * 1001,
        "image:" + SHA[:-1],
        "image:" + SHA + "0",
        "image:" + "g" * 64,
        "",
    ):
        with pytest.raises(JudgementError):
            check_key(bad)


def test_store_creates_its_folder_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "judgements.sqlite"
    first = JudgementStore(path)
    first.record("text:shirt", "p1", True, "alice")
    first.close()
    again = JudgementStore(path)
    assert [(m.query_key, m.product_id, m.relevant) for m in again.find()] == [
        ("text:shirt", "p1", True)
    ]
    again.close()


def test_record_validates_every_field(store: JudgementStore) -> None:
    good = {"query_key": "text:shirt", "product_id": "p1", "relevant": True, "judge": "alice"}
    for field, value in (
        ("query_key", "shirt"),
        ("product_id", "  "),
        ("product_id", "p" * (MAX_ID_CHARS + 1)),
        ("product_id", "p\n1"),
        ("judge", ""),
        ("judge", "x" * 65),
        ("judge", "al\tice"),
        ("judge", "bob\x07"),
        ("relevant", 1),
    ):
        with pytest.raises(JudgementError):
            store.record(**{**good, field: value})  # type: ignore[arg-type]
    with pytest.raises(JudgementError, match="note"):
        store.record(**good, note="n" * 2001)  # type: ignore[arg-type]
    assert store.count() == 0
    mark = store.record("text:Shirt ", " p1 ", True, " alice ", note="n" * 2000)
    assert (mark.query_key, mark.product_id, mark.judge) == ("text:shirt", "p1", "alice")


def test_any_product_id_the_catalog_accepts_can_be_judged(store: JudgementStore) -> None:
    # Judgements once stopped at 200 characters while the catalog accepts 256.
    longest = "p" * MAX_ID_CHARS
    assert MAX_ID_CHARS == 256
    assert store.record("text:shirt", longest, True, "alice").product_id == longest


def test_recording_again_replaces_the_judges_mark(store: JudgementStore, clock: Clock) -> None:
    first = store.record("text:shirt", "p1", True, "alice", note="looks right")
    second = store.record("text:SHIRT", "p1", False, "alice", note="wrong colour")
    assert second.updated_at > first.updated_at
    assert store.find() == [second]  # one row per (query, product, judge)
    store.record("text:shirt", "p1", True, "bob")
    assert store.count() == 2


def test_qrels_majority_of_judges(store: JudgementStore, clock: Clock) -> None:
    store.record("text:shirt", "p1", True, "alice")
    store.record("text:shirt", "p1", True, "bob")
    store.record("text:shirt", "p1", False, "carol")  # latest, but outvoted
    store.record("text:shirt", "p2", False, "alice")
    store.record("text:shirt", "p2", False, "bob")
    store.record("text:shirt", "p2", True, "carol")
    store.record("image:" + SHA, "p3", True, "dave")
    assert store.qrels() == {
        "text:shirt": {"p1": True, "p2": False},
        "image:" + SHA: {"p3": True},
    }


def test_qrels_tie_goes_to_the_most_recent_mark(store: JudgementStore, clock: Clock) -> None:
    store.record("text:shirt", "p1", True, "alice")
    store.record("text:shirt", "p1", False, "bob")
    assert store.qrels()["text:shirt"]["p1"] is False
    store.record("text:shirt", "p1", True, "bob", note="changed my mind")  # now 2 vs 0
    assert store.qrels()["text:shirt"]["p1"] is True
    store.record("text:shirt", "p1", False, "carol")
    store.record("text:shirt", "p1", False, "dave")  # 2 vs 2, dave's "no" is the latest
    assert store.qrels()["text:shirt"]["p1"] is False
    store.record("text:shirt", "p1", True, "alice")  # alice re-marks: 2 vs 2, latest is "yes"
    assert store.qrels()["text:shirt"]["p1"] is True


def test_qrels_tie_by_recency_from_imported_times(store: JudgementStore) -> None:
    # Rows in the file in the opposite order of their times: recency, not file order, decides.
    _import(
        store,
        f"{HEADER}\n"
        "text:a,p1,0,bob,,2024-01-02T00:00:00Z\n"
        "text:a,p1,1,alice,,2024-01-01T00:00:00+00:00\n"
        "text:b,p1,1,bob,,2024-01-01T12:00:00+02:00\n"  # 10:00 UTC
        "text:b,p1,0,alice,,2024-01-01T11:00:00\n",  # no zone: UTC, so later
    )
    assert store.qrels() == {"text:a": {"p1": False}, "text:b": {"p1": False}}
    listed = store.find(query_key="text:b")
    assert [m.updated_at for m in listed] == [
        "2024-01-01T11:00:00.000000+00:00",
        "2024-01-01T10:00:00.000000+00:00",
    ]


def test_list_filters_and_pages_newest_first(store: JudgementStore, clock: Clock) -> None:
    for i in range(7):
        store.record(f"text:q{i % 2}", f"p{i}", i % 3 == 0, "alice" if i < 4 else "bob")
    everything = store.find()
    assert [m.product_id for m in everything] == [f"p{i}" for i in reversed(range(7))]
    assert store.count() == 7
    assert [m.product_id for m in store.find(limit=3)] == ["p6", "p5", "p4"]
    assert [m.product_id for m in store.find(limit=3, offset=3)] == ["p3", "p2", "p1"]
    assert store.find(limit=3, offset=7) == []
    assert {m.product_id for m in store.find(query_key="text:Q1")} == {"p1", "p3", "p5"}
    assert store.count(query_key="text:q1") == 3
    assert [m.product_id for m in store.find(judge="bob")] == ["p6", "p5", "p4"]
    assert store.count(query_key="text:q0", judge="alice") == 2
    assert [m.judge for m in store.find(product_id="p4")] == ["bob"]
    assert store.count(product_id="nope") == 0
    with pytest.raises(JudgementError):
        store.find(query_key="not a key")
    with pytest.raises(JudgementError):
        store.find(limit=-1)


def test_delete_removes_one_judges_mark(store: JudgementStore) -> None:
    store.record("text:shirt", "p1", True, "alice")
    store.record("text:shirt", "p1", False, "bob")
    assert store.delete("text:Shirt", "p1", "alice") is True
    assert [m.judge for m in store.find()] == ["bob"]
    assert store.delete("text:shirt", "p1", "alice") is False
    assert store.delete("text:shirt", "p2", "bob") is False
    assert store.qrels() == {"text:shirt": {"p1": False}}


def test_export_then_import_reproduces_the_store(store: JudgementStore, tmp_path: Path) -> None:
    store.record("text:navy shirt", "p1", True, "alice", note='says "navy", fits\nsecond line')
    store.record("text:navy shirt", "p1", False, "bob")
    store.record("image:" + SHA, "p2", False, "alice", note="ünïcode ✓")
    store.record("text:lamp", "p3", True, "Zoë Müller")
    buffer = io.StringIO()
    assert store.export_csv(buffer) == 4
    text = buffer.getvalue()
    assert text.splitlines()[0] == HEADER
    assert "\ntext:lamp,p3,1,Zoë Müller," in text

    path = tmp_path / "out.csv"
    path.write_text(text, encoding="utf-8")
    fresh = JudgementStore(tmp_path / "fresh.sqlite")
    with path.open(newline="", encoding="utf-8") as fh:
        assert fresh.import_csv(fh, str(path)) == 4
    assert fresh.find() == store.find()
    assert fresh.qrels() == store.qrels()
    again = io.StringIO()
    fresh.export_csv(again)
    assert again.getvalue() == text
    # Importing the same file twice changes nothing: it is an upsert.
    assert _import(fresh, text) == 4
    assert fresh.find() == store.find()
    fresh.close()


def test_import_upserts_over_existing_marks(store: JudgementStore) -> None:
    store.record("text:shirt", "p1", True, "alice")
    n = _import(store, "relevant,judge,query_key,product_id\nno,alice,text:shirt,p1\n")
    assert n == 1
    (mark,) = store.find()
    assert mark.relevant is False


def test_import_accepts_relevant_words_and_optional_columns(
    store: JudgementStore, clock: Clock
) -> None:
    words = ["1", "0", "true", "FALSE", "Yes", " no "]
    rows = "".join(f"text:q,p{i},{w},alice\n" for i, w in enumerate(words))
    assert _import(store, "Query_Key, product_id ,RELEVANT,judge\n" + rows + "\n,,,\n") == 6
    got = {m.product_id: m.relevant for m in store.find()}
    assert got == {"p0": True, "p1": False, "p2": True, "p3": False, "p4": True, "p5": False}
    # Rows without updated_at get the (one) time of the import; notes default to empty.
    assert {m.updated_at for m in store.find()} == {"2024-05-01T00:00:01.000000+00:00"}
    assert {m.note for m in store.find()} == {""}


def test_a_bad_file_imports_nothing_and_names_every_bad_line(store: JudgementStore) -> None:
    store.record("text:kept", "p0", True, "alice")
    text = (
        f"{HEADER}\n"
        "text:ok,p1,1,alice,,\n"  # line 2: fine
        "text:ok,p2,maybe,alice,,\n"  # 3: relevant
        "text:ok,,1,alice,,\n"  # 4: product_id
        "shirt,p3,1,alice,,\n"  # 5: key without prefix
        "image:1234,p3,1,alice,,\n"  # 6: short sha
        "text:ok,p4,1,,,\n"  # 7: no judge
        'text:ok,p5,1,"a\tb",,\n'  # 8: control character in judge
        'text:ok,p6,1,alice,"two\nlines",\n'  # 9-10: fine, spans two lines
        "text:ok,p7,1,alice,,yesterday\n"  # 11: bad time
        "text:ok,p8,1\n"  # 12: short row
    )
    with pytest.raises(JudgementError) as info:
        _import(store, text, "marks.csv")
    problems = info.value.problems
    assert [p.split(":")[1] for p in problems] == ["3", "4", "5", "6", "7", "8", "11", "12"]
    assert all(p.startswith("marks.csv:") for p in problems)
    message = str(info.value)
    assert "8 bad row(s); nothing imported" in message
    assert "marks.csv:3: relevant" in message and "'maybe'" in message
    assert "marks.csv:4: product_id is empty" in message
    assert "marks.csv:5: query key 'shirt'" in message
    assert "marks.csv:7: judge is empty" in message
    assert "marks.csv:11: updated_at 'yesterday'" in message
    assert "marks.csv:12: 3 fields, the header has 6" in message
    assert [m.query_key for m in store.find()] == ["text:kept"]  # nothing of the file


def test_only_twenty_problems_are_listed(store: JudgementStore) -> None:
    rows = "".join(f"text:q,p{i},maybe,alice\n" for i in range(25))
    with pytest.raises(JudgementError) as info:
        _import(store, "query_key,product_id,relevant,judge\n" + rows)
    assert len(info.value.problems) == 20
    assert info.value.problems[-1].startswith("f.csv:21:")
    assert "25 bad row(s)" in str(info.value) and "... and 5 more" in str(info.value)
    assert store.count() == 0


def test_missing_columns_are_named(store: JudgementStore) -> None:
    with pytest.raises(JudgementError, match=r"f\.csv:1: missing column\(s\) relevant, judge"):
        _import(store, "query_key,product_id,note\ntext:q,p1,hi\n")
    with pytest.raises(JudgementError, match="empty file"):
        _import(store, "")
    assert store.count() == 0


def test_a_utf8_bom_and_non_ascii_text_are_read(store: JudgementStore, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffquery_key,product_id,relevant,judge,note\r\n"
        "text:Café Crème,p1,yes,José,très bien\r\n".encode()
    )
    # Read as plain utf-8 the BOM reaches the header; the store must still find query_key.
    with path.open(newline="", encoding="utf-8") as fh:
        assert store.import_csv(fh, str(path)) == 1
    (mark,) = store.find()
    assert (mark.query_key, mark.judge, mark.note) == ("text:café crème", "José", "très bien")
    assert store.qrels() == {"text:café crème": {"p1": True}}
