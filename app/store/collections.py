"""A store's collections, one per model version, and which one is live.

A model change needs new vectors for the whole catalog. Instead of re-embedding in place (the
catalog unsearchable meanwhile), each model gets its own collection, built while the live one
serves; then the live pointer moves in one atomic step (an alias update on a Qdrant server, a
file replaced on disk for the embedded engine). The old collection is kept until an operator
drops it, so a swap can be undone by swapping back.

``StoreCollections`` is what each backend implements (``EdgeCollections``,
``ServerCollections``); the CLI and the API speak only this.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from app.store.base import STORE_FORMAT, VectorStore
from app.store.errors import CollectionRefusedError, NoSuchCollectionError

# What a collection name may hold: Qdrant's and a file system's safe subset.
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def model_tag(model_id: str) -> str:
    """A short, name-safe tag of ``model_id``: readable, and unique through its hash.

    ``snapshop-tiny:none:abc`` -> ``snapshop-tiny-none-abc-1b2c3d4e``.
    """
    slug = _UNSAFE.sub("-", model_id).strip("-.")[:40].rstrip("-.") or "model"
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def now_iso() -> str:
    """A creation time as the collections record it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    if not NAME.match(name) or name in (".", ".."):
        raise NoSuchCollectionError(
            f"{name!r} is not a collection name (letters, digits, '_', '.', '-')"
        )
    return name


@dataclass(frozen=True)
class CollectionInfo:
    """One collection as ``snapshop status`` and ``GET /v1/admin/collections`` show it."""

    name: str
    live: bool
    model_id: str | None
    points: int | None  # None: it could not be counted now (``error`` says why)
    created_at: str | None  # None: made before snapshop recorded it
    bundle: str | None  # the model bundle it was built with, when recorded
    error: str | None = None

    @classmethod
    def of(
        cls,
        name: str,
        live: str | None,
        meta: Mapping[str, Any],
        points: int | None,
        error: str | None = None,
    ) -> CollectionInfo:
        """The collection ``name`` from its stored metadata (``live``: the live one's name)."""
        return cls(
            name=name,
            live=name == live,
            model_id=meta.get("model_id"),
            points=points,
            created_at=meta.get("created_at"),
            bundle=meta.get("bundle"),
            error=error,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "live": self.live,
            "model": self.model_id,
            "points": self.points,
            "created_at": self.created_at,
            "bundle": self.bundle,
            "error": self.error,
        }


def check_swap_target(name: str, meta: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """The metadata of ``name`` if it can be made live: it exists and has this store format."""
    if meta is None:
        raise NoSuchCollectionError(f"no collection {name!r} in {where}")
    if meta.get("format") != STORE_FORMAT:
        raise CollectionRefusedError(
            f"the collection {name!r} has store format {meta.get('format')}, this snapshop "
            f"serves {STORE_FORMAT}: rebuild it with `snapshop ingest --new-collection`"
        )
    return meta


class StoreCollections(Protocol):
    """The collections of one store location (a data dir, or a Qdrant server and alias)."""

    backend: str
    where: str  # the data dir or server, for messages

    def live(self) -> str | None:
        """The live collection's name, read afresh; None when there is none yet."""

    def collection_for(self, model_id: str) -> str:
        """The name a new collection of ``model_id`` gets (``--new-collection``)."""

    def meta(self, name: str) -> dict[str, Any] | None:
        """The snapshop metadata of ``name`` (format, model_id, bundle, created_at...); None
        when there is no such collection."""

    def open(self, name: str | None = None) -> VectorStore:
        """A store over collection ``name``; None: the live one (a collection created through
        it becomes the live one)."""

    def list(self, open_stores: Mapping[str, VectorStore] | None = None) -> list[CollectionInfo]:
        """Every collection, the live one first. ``open_stores``: stores this process holds
        open, by name (an embedded shard cannot be opened twice): their counts come from them."""

    def swap(self, name: str) -> str | None:
        """Make ``name`` the live collection in one atomic step; the one live before, if any.

        Checks that it exists and has the current store format; whether it is complete is the
        caller's to check (it holds the store)."""

    def drop(self, name: str) -> None:
        """Delete collection ``name``; ``CollectionRefusedError`` for the live one."""

    def close(self) -> None: ...
