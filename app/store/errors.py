"""Store errors, by what a caller may do about them.

Only ``ModelMismatchError`` allows dropping a collection (``--replace-model``): every other
store error, a server timeout above all, must leave the catalog as it is.
"""

from __future__ import annotations


class StoreError(RuntimeError):
    """A store problem a person can act on (missing collection, locked directory, server down)."""


class ModelMismatchError(StoreError):
    """The collection holds another model's vectors, or an older store format: its points
    cannot be compared with this model's, and re-ingesting with ``--replace-model`` drops them."""


class StoreUnavailableError(StoreError):
    """The store could not answer now (server unreachable, timed out, refused): try again later.
    Nothing about the collection's contents follows from it."""


class NoSuchCollectionError(StoreError):
    """A collection named by an operator (swap, drop) does not exist."""


class CollectionRefusedError(StoreError):
    """A collection operation that would break serving: dropping the live collection, making an
    empty or unfinished one live, building a second collection of the live model."""
