"""``snapshop judgements``: add, export, import into another data dir, list."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app
from app.evaluation.judgements import JudgementStore

runner = CliRunner()


def _run(data_dir: Path, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--data-dir", str(data_dir), "judgements", *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def test_add_export_import_list(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    photo = tmp_path / "q.jpg"
    photo.write_bytes(b"pretend jpeg bytes")
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()

    code, stdout, _ = _run(
        first, "add", "--query", "Navy  Shirt", "--product", "p1", "--relevant", "--judge", "al"
    )
    assert code == 0, stdout
    assert "p1 is relevant for text:navy shirt" in stdout
    code, stdout, _ = _run(
        first, "add", "--image", str(photo), "--product", "p2", "--not-relevant",
        "--judge", "bo", "--note", "wrong colour",
    )  # fmt: skip
    assert code == 0 and f"image:{sha}" in stdout
    code, _, _ = _run(
        first, "add", "--query-key", "text:NAVY shirt", "--product", "p1", "--not-relevant",
        "--judge", "bo",
    )  # fmt: skip
    assert code == 0

    exported = tmp_path / "marks.csv"
    code, _, stderr = _run(first, "export", str(exported))
    assert code == 0 and "wrote 3 marks" in stderr
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "query_key,product_id,relevant,judge,note,updated_at"
    assert len(lines) == 4

    code, stdout, _ = _run(second, "import", str(exported))
    assert code == 0 and "imported 3 marks" in stdout
    a, b = JudgementStore(first / "judgements.sqlite"), JudgementStore(second / "judgements.sqlite")
    try:
        assert b.find() == a.find()
        assert b.qrels() == {"text:navy shirt": {"p1": False}, f"image:{sha}": {"p2": False}}
    finally:
        a.close()
        b.close()

    code, stdout, stderr = _run(second, "list", "--judge", "bo")
    assert code == 0, stderr
    assert "wrong colour" in stdout and "p2" in stdout
    assert "2 of 2 marks" in stderr  # bo's two, not al's
    code, _, stderr = _run(second, "list", "--product", "p1", "--limit", "1")
    assert code == 0 and "1 of 2 marks" in stderr

    code, stdout, _ = _run(second, "export", "-")
    assert code == 0 and stdout == exported.read_text(encoding="utf-8")


def test_import_of_a_bad_file_fails_and_imports_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "query_key,product_id,relevant,judge\ntext:a,p1,1,al\ntext:a,p2,sure,al\nnope,p3,1,al\n"
    )
    code, _, stderr = _run(tmp_path / "data", "import", str(bad))
    assert code != 0
    assert f"{bad}:3: relevant" in stderr and f"{bad}:4: query key 'nope'" in stderr
    assert _count(tmp_path / "data") == 0


def test_add_needs_one_query_and_a_verdict(tmp_path: Path) -> None:
    base = ["add", "--product", "p1", "--judge", "al"]
    code, _, stderr = _run(tmp_path, *base, "--relevant")
    assert code != 0 and "exactly one of --query" in stderr
    code, _, stderr = _run(tmp_path, *base, "--query", "a", "--query-key", "text:a", "--relevant")
    assert code != 0 and "exactly one of --query" in stderr
    code, _, stderr = _run(tmp_path, *base, "--query", "a")
    assert code != 0 and "--relevant or --not-relevant" in stderr
    code, _, stderr = _run(tmp_path, *base, "--query-key", "shirt", "--relevant")
    assert code != 0 and "must start with 'text:' or 'image:'" in stderr
    assert _count(tmp_path) == 0


def _count(data_dir: Path) -> int:
    store = JudgementStore(data_dir / "judgements.sqlite")
    try:
        return store.count()
    finally:
        store.close()
