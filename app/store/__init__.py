"""Vector store: one protocol, one backend per engine."""

from app.store import base
from app.store.base import *  # noqa: F403  (the interface's public names: base.__all__)
from app.store.edge import EdgeStore

__all__ = [*base.__all__, "EdgeStore"]
