"""A Qdrant server's snapshop collections: one per model, ``SNAPSHOP_QDRANT_COLLECTION`` the alias
naming the live one.

Collections are named ``<alias>-<model tag>``; a swap is one ``update_collection_aliases``
request that deletes the alias and creates it again on the new collection, which the server
applies atomically: every search goes to the old collection or the new one. Every store this
hands out shares its one client (qdrant-client's local mode allows one per folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from qdrant_client import QdrantClient, models

from app.store.base import VectorStore
from app.store.collections import CollectionInfo, check_name, check_swap_target, model_tag
from app.store.errors import CollectionRefusedError, NoSuchCollectionError
from app.store.server import (
    META_KEY,
    QdrantServerStore,
    ServerOptions,
    alias_target,
    server_calls,
)


class ServerCollections:
    """``StoreCollections`` on a Qdrant server (or a local-mode folder)."""

    def __init__(
        self, client: QdrantClient, options: ServerOptions, where: str, local: bool = False
    ) -> None:
        self._client = client
        self.options = options
        self.alias = options.collection
        self.where = where
        self.local = local
        self.backend = "qdrant-local" if local else "qdrant-server"

    def _calls(self, doing: str) -> AbstractContextManager[None]:
        return server_calls(f"the collections of {self.alias!r} at {self.where}", doing)

    def live(self) -> str | None:
        with self._calls("be read"):
            target = alias_target(self._client.get_aliases().aliases, self.alias)
            if target is not None:
                return target
            # A collection of the alias's name: made before snapshop used aliases.
            return self.alias if self._client.collection_exists(self.alias) else None

    def collection_for(self, model_id: str) -> str:
        return f"{self.alias}-{model_tag(model_id)}"

    def meta(self, name: str) -> dict[str, Any] | None:
        with self._calls("be read"):
            if not self._client.collection_exists(check_name(name)):
                return None
            found = self._client.get_collection(name).config.metadata or {}
        meta = found.get(META_KEY)
        return meta if isinstance(meta, dict) else None

    def open(self, name: str | None = None) -> QdrantServerStore:
        options = self.options if name is None else replace(self.options, collection=name)
        if name is not None:
            options = replace(options, alias=False)
        return QdrantServerStore(
            self._client, options, self.where, local=self.local, owns_client=False
        )

    def _ours(self) -> list[str]:
        """snapshop's collections of this alias: ``<alias>-*`` and ``<alias>`` itself."""
        with self._calls("be listed"):
            names = [c.name for c in self._client.get_collections().collections]
        return sorted(n for n in names if n == self.alias or n.startswith(f"{self.alias}-"))

    def list(self, open_stores: Mapping[str, VectorStore] | None = None) -> list[CollectionInfo]:
        live = self.live()
        out = []
        for name in sorted(self._ours(), key=lambda n: n != live):
            meta = self.meta(name)
            if meta is None:
                continue  # not snapshop's: a name that merely starts alike
            with self._calls("be counted"):
                points = int(self._client.count(name, exact=True).count)
            out.append(CollectionInfo.of(name, live, meta, points))
        return out

    def swap(self, name: str) -> str | None:
        check_swap_target(name, self.meta(name), f"{self.where}")
        with self._calls("be aliased"):
            aliases = self._client.get_aliases().aliases
            before = alias_target(aliases, self.alias)
            if before is None and self._client.collection_exists(self.alias):
                raise CollectionRefusedError(
                    f"{self.alias!r} at {self.where} is a collection, not an alias (made before "
                    "snapshop swapped models), and an alias cannot take its name: set "
                    "SNAPSHOP_QDRANT_COLLECTION to a new name, run `snapshop ingest` (it makes "
                    "the collection and the alias), point the API at it, then delete the old "
                    "collection"
                )
            if before == name:
                return before
            operations: list[Any] = []
            if before is not None:
                operations.append(
                    models.DeleteAliasOperation(
                        delete_alias=models.DeleteAlias(alias_name=self.alias)
                    )
                )
            operations.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=name, alias_name=self.alias)
                )
            )
            # One request: the server applies both or neither, and no search sees no alias.
            self._client.update_collection_aliases(operations)
        return before

    def drop(self, name: str) -> None:
        if name == self.live():
            raise CollectionRefusedError(
                f"{name!r} is the live collection: swap another one in first"
            )
        if self.meta(name) is None:
            raise NoSuchCollectionError(f"no snapshop collection {name!r} at {self.where}")
        with self._calls("be deleted"):
            self._client.delete_collection(name)

    def close(self) -> None:
        self._client.close()
