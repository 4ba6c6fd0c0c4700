"""Vector store: one protocol, one backend per engine.

The backends are imported on first use (``app.components.open_store`` picks one from the
settings), so code that only speaks the interface loads neither engine's client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.store import base
from app.store.base import *  # noqa: F403  (the interface's public names: base.__all__)

if TYPE_CHECKING:
    from app.store.edge import EdgeStore
    from app.store.edge_collections import EdgeCollections
    from app.store.server import QdrantServerStore
    from app.store.server_collections import ServerCollections

__all__ = [
    *base.__all__,
    "EdgeCollections",
    "EdgeStore",
    "QdrantServerStore",
    "ServerCollections",
]

_BACKENDS = {
    "EdgeStore": "app.store.edge",
    "EdgeCollections": "app.store.edge_collections",
    "QdrantServerStore": "app.store.server",
    "ServerCollections": "app.store.server_collections",
}


def __getattr__(name: str) -> Any:
    if name in _BACKENDS:
        import importlib

        return getattr(importlib.import_module(_BACKENDS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
