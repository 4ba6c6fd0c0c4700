"""Ingest a small generated catalog (with broken images) through the real model and store."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from app.embedding import Encoder
from app.embedding.preprocess import load_image
from app.store import EdgeStore, ModelMismatchError, SearchFilter, StoreUnavailableError
from ingestion.catalog import read_catalog
from ingestion.documents import product_text
from ingestion.pipeline import ingest_catalog
from tests.fakes import FakeEncoder


def _catalog(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    colours = {"r": (220, 20, 20), "g": (20, 200, 20), "b": (20, 20, 220)}
    for name, rgb in colours.items():
        Image.new("RGB", (60, 80), rgb).save(root / "images" / f"{name}.jpg")
    Image.new("RGB", (50, 50), (200, 200, 0)).save(root / "images" / "y.png")
    (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "products.csv").write_text(
        "product_id,title,category,image_files\n"
        "red,Red Shirt,Apparel/Topwear/Shirts,r.jpg\n"
        "green,Green Apple,Grocery/Fruit/Apple,g.jpg;missing.jpg\n"
        "blue,Blue Jeans,Apparel/Bottomwear/Jeans,b.jpg;y.png\n"
        "broken,Broken Product,Apparel/Topwear/Shirts,broken.jpg\n"
        "gone,Gone Product,Apparel,nowhere.jpg\n"
        ",No Id,Apparel,r.jpg\n"
    )
    return root


def test_ingest_counts_points_rejects_and_payloads(tmp_path: Path, tiny_bundle: Path) -> None:
    catalog = _catalog(tmp_path / "cat")
    encoder = Encoder(tiny_bundle, device="cpu")
    store = EdgeStore(tmp_path / "qdrant")
    seen: list[tuple[int, int]] = []
    try:
        report = ingest_catalog(
            catalog, store, encoder, batch_size=2, progress=lambda n, total: seen.append((n, total))
        )
        assert report.summary() == "ingested 3 products, 4 images, 4 rejected"
        # Every listed image was accounted for in the progress bar, against the right total.
        assert sum(n for n, _ in seen) == 7
        assert {total for _, total in seen} == {7}
        reasons = sorted((r.product_id, r.reason.split(":")[0]) for r in report.rejects)
        assert reasons == [
            ("", "missing product_id"),
            ("broken", "unreadable image"),
            ("gone", "image file not found"),
            ("green", "image file not found"),
        ]
        assert store.count() == 4
        assert store.count(SearchFilter(category="Apparel")) == 3
        # The blue product's two images are two points carrying the same product payload.
        hits = store.search_bm25("jeans", 10)
        assert sorted(h.payload["image_file"] for h in hits) == ["b.jpg", "y.png"]
        assert {h.payload["product_id"] for h in hits} == {"blue"}
        # Each image is its own nearest neighbour.
        red_vec = encoder.encode_images([load_image(catalog / "images" / "r.jpg")])[0]
        assert store.search_dense(red_vec, 1)[0].payload["image_file"] == "r.jpg"
    finally:
        store.close()


def test_products_sharing_a_text_have_it_embedded_once(tmp_path: Path) -> None:
    catalog = tmp_path / "cat"
    (catalog / "images").mkdir(parents=True)
    for name, rgb in {"a": (200, 30, 30), "b": (30, 200, 30), "c": (30, 30, 200)}.items():
        Image.new("RGB", (40, 40), rgb).save(catalog / "images" / f"{name}.jpg")
    (catalog / "products.csv").write_text(
        "product_id,title,category,image_files\n"
        "s1,Linen Shirt,Apparel/Topwear/Shirts,a.jpg\n"
        "s2,Linen Shirt,Apparel/Topwear/Shirts,b.jpg\n"
        "j1,Blue Jeans,Apparel/Bottomwear/Jeans,c.jpg\n"
    )
    encoder = FakeEncoder()
    embedded: list[str] = []
    encode_texts = encoder.encode_texts

    def counting(texts: Any) -> Any:
        embedded.extend(texts)
        return encode_texts(texts)

    encoder.encode_texts = counting  # type: ignore[method-assign]
    store = EdgeStore(tmp_path / "qdrant")
    try:
        report = ingest_catalog(catalog, store, encoder, batch_size=8)  # type: ignore[arg-type]
        assert report.summary() == "ingested 3 products, 3 images, 0 rejected"
        assert len(embedded) == len(set(embedded)) == 2
        # both shirts carry the vector their shared text gets alone
        shirts = [h.id for h in store.search_bm25("linen", 10)]
        vectors = store.vectors(shirts)
        assert len(vectors) == 2
        shared = next(t for t in embedded if t.startswith("Linen Shirt"))
        for named in vectors.values():
            assert np.allclose(named["text"], encode_texts([shared])[0], atol=1e-6)
    finally:
        store.close()


def _many(root: Path, n: int) -> Path:
    """``n`` one-image products, each with its own noise photo and title."""
    (root / "images").mkdir(parents=True)
    rows = ["product_id,title,category,image_files"]
    for i in range(n):
        noise = np.random.default_rng(i).integers(0, 256, (48, 40, 3), dtype=np.uint8)
        Image.fromarray(noise).save(root / "images" / f"p{i}.png")
        rows.append(f"p{i},Cotton Shirt number {i},Apparel/Topwear/Shirts,p{i}.png")
    (root / "products.csv").write_text("\n".join(rows) + "\n")
    return root


class _Overlap(FakeEncoder):
    """Records which thread runs each tower, and whether a batch's texts were running while
    its images were (the image run waits a little for the text run to start)."""

    def __init__(self, parallel: bool) -> None:
        self.parallel_towers = parallel
        self.text_threads: set[str] = set()
        self.text_started = threading.Event()
        self.overlapped: list[bool] = []

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_threads.add(threading.current_thread().name)
        self.text_started.set()
        return super().encode_texts(texts)

    def encode_pixels_with_instance(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.parallel_towers:
            self.overlapped.append(self.text_started.wait(timeout=10))
        self.text_started.clear()
        return super().encode_pixels_with_instance(pixels)


@pytest.mark.parametrize("parallel", [False, True])
def test_texts_are_embedded_beside_the_images_when_the_towers_run_in_parallel(
    tmp_path: Path, parallel: bool
) -> None:
    catalog = _many(tmp_path / "cat", 10)
    encoder = _Overlap(parallel)
    reference = FakeEncoder()
    store = EdgeStore(tmp_path / "qdrant")
    try:
        report = ingest_catalog(catalog, store, encoder, batch_size=4)  # type: ignore[arg-type]
        assert report.summary() == "ingested 10 products, 10 images, 0 rejected"
        if parallel:
            assert {name.split("_")[0] for name in encoder.text_threads} == {"ingest-text"}
            assert encoder.overlapped == [True, True, True]  # 3 batches of 4, 4, 2
        else:
            assert encoder.text_threads == {threading.main_thread().name}
        # Either way every point carries its own product's text and image vectors: of the ten
        # products' vectors, its own are the nearest, and the same.
        products = read_catalog(catalog).products
        names = [p.product_id for p in products]
        texts = reference.encode_texts([product_text(p) for p in products])
        images = reference.encode_images(
            [load_image(catalog / "images" / p.image_files[0]) for p in products]
        )
        by_id = {h.id: h.payload["product_id"] for h in store.scan(["product_id"])}
        assert len(by_id) == 10
        for pid, named in store.vectors(list(by_id)).items():
            for using, refs in (("text", texts), ("image", images)):
                scores = refs @ named[using]
                assert names[int(np.argmax(scores))] == by_id[pid]
                assert float(scores.max()) > 0.999
    finally:
        store.close()


def test_parallel_towers_store_the_same_vectors(tmp_path: Path, tiny_bundle: Path) -> None:
    """The real encoder, its towers on one thread each and run at once, writes the vectors that
    it writes with one tower after the other on two threads."""
    catalog = _many(tmp_path / "cat", 9)
    stored = {}
    for parallel in (False, True):
        encoder = Encoder(tiny_bundle, device="cpu", threads=2, parallel_towers=parallel)
        assert encoder.parallel_towers is parallel
        store = EdgeStore(tmp_path / f"qdrant-{parallel}")
        try:
            ingest_catalog(catalog, store, encoder, batch_size=4)
            ids = [h.id for h in store.scan(["product_id"])]
            stored[parallel] = store.vectors(ids)
        finally:
            store.close()
    assert stored[True].keys() == stored[False].keys() and len(stored[True]) == 9
    for pid, named in stored[True].items():
        for using in ("image", "text"):
            assert np.allclose(named[using], stored[False][pid][using], atol=1e-5)


def test_a_new_model_replaces_the_old_vectors_only_when_asked(
    tmp_path: Path, tiny_bundle: Path
) -> None:
    catalog = _catalog(tmp_path / "cat")
    store = EdgeStore(tmp_path / "qdrant")
    try:
        store.ensure_collection(8, "some-older-model")
        encoder = Encoder(tiny_bundle, device="cpu")
        with pytest.raises(ModelMismatchError, match="--replace-model"):
            ingest_catalog(catalog, store, encoder)
        report = ingest_catalog(catalog, store, encoder, replace_model=True)
        assert report.images == 4
        assert store.info().model_id == encoder.model_id
        assert store.info().dim == encoder.dim
    finally:
        store.close()


class TimingOutStore:
    """A real store whose collection check times out, as a remote server's may."""

    def __init__(self, store: EdgeStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def ensure_collection(self, *args: Any, **kwargs: Any) -> None:
        raise StoreUnavailableError("the collection could not be read now: timed out")


def test_only_a_model_change_drops_the_catalog_never_a_store_timeout(
    tmp_path: Path, fake_encoder: FakeEncoder
) -> None:
    catalog = _catalog(tmp_path / "cat")
    store = EdgeStore(tmp_path / "qdrant")
    try:
        assert ingest_catalog(catalog, store, fake_encoder).images == 4
        flaky = TimingOutStore(store)
        with pytest.raises(StoreUnavailableError, match="timed out"):
            ingest_catalog(catalog, flaky, fake_encoder, replace_model=True)  # type: ignore[arg-type]
        assert store.count() == 4 and store.info().model_id == fake_encoder.model_id
    finally:
        store.close()


def test_a_long_index_build_keeps_talking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine says nothing while it builds the HNSW graph (minutes at 100k points) and
    holds the GIL: the run still writes the seconds so far to its stream meanwhile."""
    import ingestion.pipeline as pipeline
    from tests.observability.test_heartbeat import hold_gil

    monkeypatch.setattr(pipeline, "INDEX_HEARTBEAT_S", 0.2)
    store = EdgeStore(tmp_path / "qdrant")
    built = store.build_index

    def slow_build() -> bool:
        hold_gil(1.0)
        return built()

    monkeypatch.setattr(store, "build_index", slow_build)
    log = tmp_path / "stderr.txt"
    try:
        with log.open("w") as out:
            report = ingest_catalog(_catalog(tmp_path / "cat"), store, FakeEncoder(), indexing=out)
    finally:
        store.close()
    assert report.written > 0
    said = log.read_text().splitlines()
    assert len(said) >= 3 and all(s.startswith("building the HNSW index: ") for s in said)
