"""The embedded engine's collections: one shard folder per model under ``<data-dir>/qdrant``.

The first collection is the folder itself (``default``: the layout snapshop always had); others
live in ``collections/<name>/``. ``live.json`` names the live one and is replaced atomically
(written beside, then renamed), so a reader sees the old name or the new one; without it the
live collection is ``default``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.files import write_text_atomic
from app.store.base import DEFAULT_INDEXING_THRESHOLD_KB, HnswOptions, VectorStore
from app.store.collections import (
    CollectionInfo,
    check_name,
    check_swap_target,
    model_tag,
    now_iso,
)
from app.store.edge import META_FILE, EdgeStore
from app.store.errors import CollectionRefusedError, NoSuchCollectionError, StoreError

ROOT_COLLECTION = "default"
COLLECTIONS_DIR = "collections"
LIVE_FILE = "live.json"


class EdgeCollections:
    """``StoreCollections`` of the embedded engine under ``root`` (``<data-dir>/qdrant``)."""

    backend = EdgeStore.backend

    def __init__(
        self,
        root: Path,
        indexing_threshold_kb: int = DEFAULT_INDEXING_THRESHOLD_KB,
        hnsw: HnswOptions | None = None,
        quantization: str | None = None,
        index_apart: bool = False,
    ) -> None:
        self.root = root
        self._index_apart = index_apart  # see EdgeStore: a serving process builds apart
        self.where = str(root)
        self._threshold_kb = indexing_threshold_kb
        self._hnsw = hnsw
        self._quantization = quantization  # of collections created from here on

    def path(self, name: str) -> Path:
        if name == ROOT_COLLECTION:
            return self.root
        return self.root / COLLECTIONS_DIR / check_name(name)

    def names(self) -> list[str]:
        """Every collection that holds a store (its meta file written)."""
        found = [ROOT_COLLECTION] if (self.root / META_FILE).is_file() else []
        folder = self.root / COLLECTIONS_DIR
        if folder.is_dir():
            found += sorted(p.name for p in folder.iterdir() if (p / META_FILE).is_file())
        return found

    def live(self) -> str:
        try:
            raw = json.loads((self.root / LIVE_FILE).read_text())
        except FileNotFoundError:
            return ROOT_COLLECTION
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {self.root / LIVE_FILE}: {exc}") from exc
        name = raw.get("collection") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            raise StoreError(f"{self.root / LIVE_FILE} names no collection")
        return name

    def collection_for(self, model_id: str) -> str:
        """``default`` when it holds ``model_id`` (a swap back to the first model), else the
        model's own folder."""
        root = self.meta(ROOT_COLLECTION) or {}
        return ROOT_COLLECTION if root.get("model_id") == model_id else model_tag(model_id)

    def meta(self, name: str) -> dict[str, Any] | None:
        try:
            meta = json.loads((self.path(name) / META_FILE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read the collection {name!r}: {exc}") from exc
        return meta if isinstance(meta, dict) else None

    def open(self, name: str | None = None) -> EdgeStore:
        return EdgeStore(
            self.path(name or self.live()),
            indexing_threshold_kb=self._threshold_kb,
            hnsw=self._hnsw,
            quantization=self._quantization,
            index_apart=self._index_apart,
        )

    def list(self, open_stores: Mapping[str, VectorStore] | None = None) -> list[CollectionInfo]:
        held = open_stores or {}
        live = self.live()
        names = self.names()
        if live not in names:
            names.insert(0, live)  # live but not ingested yet: shown empty
        names.sort(key=lambda n: n != live)
        out = []
        for name in names:
            meta = self.meta(name) or {}
            points: int | None = None
            error = None
            try:
                if name in held:
                    points = held[name].count()
                elif meta:
                    store = self.open(name)  # a shard is counted by opening it
                    try:
                        points = store.count()
                    finally:
                        store.close()
                else:
                    points = 0
            except StoreError as exc:
                error = str(exc)
            out.append(CollectionInfo.of(name, live, meta, points, error))
        return out

    def swap(self, name: str) -> str:
        check_swap_target(name, self.meta(name), self.where)
        before = self.live()
        if name != before:
            self.root.mkdir(parents=True, exist_ok=True)
            document = {"collection": name, "since": now_iso()}
            write_text_atomic(self.root / LIVE_FILE, json.dumps(document, indent=2))
        return before

    def drop(self, name: str) -> None:
        if name == self.live():
            raise CollectionRefusedError(
                f"{name!r} is the live collection: swap another one in first"
            )
        if self.meta(name) is None and not self.path(name).is_dir():
            raise NoSuchCollectionError(f"no collection {name!r} in {self.where}")
        # Opened first: a shard another process holds (a server, a build) refuses, and is kept.
        store = self.open(name)
        try:
            store.drop()
        finally:
            store.close()
        if name != ROOT_COLLECTION:
            shutil.rmtree(self.path(name), ignore_errors=True)

    def close(self) -> None:
        """Nothing held: each store holds its own shard."""
