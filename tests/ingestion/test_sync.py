"""Incremental ingest: only what changed is embedded; removals follow the catalog."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.embedding import Encoder
from app.store import EdgeStore
from ingestion.pipeline import ingest_catalog

FIELDS = ["product_id", "title", "category", "image_files"]


def _write(root: Path, rows: list[dict[str, str]]) -> None:
    with (root / "products.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def catalog(tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    root = tmp_path / "cat"
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(6):
        Image.new("RGB", (40, 50), (40 * i, 255 - 40 * i, 90)).save(root / "images" / f"{i}.jpg")
        rows.append(
            {
                "product_id": f"p{i}",
                "title": f"thing{i} shirt",
                "category": "A/B",
                "image_files": f"{i}.jpg",
            }
        )
    Image.new("RGB", (40, 50), (1, 2, 3)).save(root / "images" / "extra.jpg")
    rows[0]["image_files"] = "0.jpg;extra.jpg"
    _write(root, rows)
    return root, rows


@pytest.fixture
def parts(tmp_path: Path, tiny_bundle: Path) -> Iterator[tuple[EdgeStore, Encoder]]:
    store = EdgeStore(tmp_path / "q")
    yield store, Encoder(tiny_bundle, device="cpu")
    store.close()


def test_same_catalog_twice_embeds_and_writes_nothing(
    parts: tuple[EdgeStore, Encoder], catalog: tuple[Path, list[dict[str, str]]]
) -> None:
    root, _ = catalog
    store, encoder = parts
    first = ingest_catalog(root, store, encoder)
    assert (first.added, first.embedded, first.written) == (6, 7, 7)
    second = ingest_catalog(root, store, encoder)
    assert (second.embedded, second.written, second.unchanged) == (0, 0, 6)
    assert second.summary() == "ingested 6 products, 7 images, 0 rejected"


def test_changes_updates_and_prune_follow_the_catalog(
    parts: tuple[EdgeStore, Encoder], catalog: tuple[Path, list[dict[str, str]]]
) -> None:
    root, rows = catalog
    store, encoder = parts
    ingest_catalog(root, store, encoder)
    rows[1]["title"] = "zebra patterned shirt"  # metadata change
    Image.new("RGB", (40, 50), (9, 9, 9)).save(root / "images" / "2.jpg")  # new photo bytes
    rows[0]["image_files"] = "0.jpg"  # one image removed
    del rows[5]  # product gone
    Image.new("RGB", (40, 50), (7, 70, 7)).save(root / "images" / "new.jpg")
    rows.append(
        {
            "product_id": "p9",
            "title": "brand new hat",
            "category": "A/C",
            "image_files": "new.jpg",
        }
    )
    _write(root, rows)

    kept = ingest_catalog(root, store, encoder)  # without --prune: p5 stays
    assert (kept.added, kept.updated, kept.deleted) == (1, 3, 0)
    # p1, p2, p9, and p0 whose image list (part of every point's payload) changed.
    assert kept.embedded == 4
    assert kept.written == 5  # those 4 upserts + p0's removed image
    assert store.search_bm25("thing5", 5)

    pruned = ingest_catalog(root, store, encoder, prune=True)
    assert (pruned.deleted, pruned.embedded, pruned.unchanged) == (1, 0, 6)
    assert store.count() == 6
    assert store.search_bm25("thing5", 5) == []
    assert [h.payload["product_id"] for h in store.search_bm25("zebra", 5)] == ["p1"]
    assert [h.payload["product_id"] for h in store.search_bm25("hat", 5)] == ["p9"]
    assert store.search_bm25("thing1", 5) == []  # the old title is gone everywhere


def test_a_rejected_row_keeps_its_points_even_with_prune(
    parts: tuple[EdgeStore, Encoder], catalog: tuple[Path, list[dict[str, str]]]
) -> None:
    root, rows = catalog
    store, encoder = parts
    ingest_catalog(root, store, encoder)
    rows[3]["title"] = ""  # a broken edit: rejected, but the product must not vanish
    _write(root, rows)
    report = ingest_catalog(root, store, encoder, prune=True)
    assert report.rejected == 1 and report.deleted == 0
    assert store.search_bm25("thing3", 5)
