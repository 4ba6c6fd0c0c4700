"""Graph blocks: a store-made payload field that makes the engine link points within a category.

A filtered HNSW walk steps only on points that match the filter. A category's points whose
nearest neighbours all lie in other categories (infant booties, in ``apparel``, sit beside the
footwear) then form an island the walk cannot reach at any beam: at 300k and 1M products one
typed query filtered to ``apparel`` found none of its exact 10 (bench/README.md, "an island in
the graph").

Qdrant's filterable HNSW (A. Vasnetsov, "Filtrable HNSW", qdrant.tech, 2019) guards against
this: for each value of an indexed field it links the points holding that value among
themselves. It does so only for values holding between the full-scan threshold and ``4 / mean
links a point`` of the collection (by percolation, a random share larger than that stays
connected anyway), so a category of half the catalog never gets them. Graph blocks split every
category level into ``splits`` hashed blocks (``apparel#0`` ... ``apparel#15``). With the
engine's threshold at ``1 / splits`` of the store's scan threshold (``engine_full_scan_kb``),
the blocks of exactly the categories that searches walk (those above the store's threshold,
``HnswOptions.scans``) get links, and each block stays under the engine's cap while the mean
links a point stay under ``4 * splits``. The other fields' values build no links
(``enable_hnsw`` off): their small values are scanned by the store, and their large ones are
covered by the blocks.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any, Final

from app.store.fields import CATEGORY

GRAPH_BLOCK: Final = "graph_block"


def block_of(point_id: str, splits: int) -> int:
    """The block a point falls in: the same on every machine and run (CRC32 of its id)."""
    return zlib.crc32(point_id.encode("utf-8")) % splits


def graph_blocks(point_id: str, categories: Iterable[str], splits: int) -> list[str]:
    """The point's block in each of its category levels: ``<category>#<block>``."""
    block = block_of(point_id, splits)
    return [f"{category}#{block}" for category in categories]


def with_blocks(point_id: str, payload: dict[str, Any], splits: int) -> dict[str, Any]:
    """``payload`` as the store writes it: its blocks set from its ``category`` levels, or, in a
    collection without blocks, none (a payload read from another store may carry that store's).
    The caller's dict is left as it was."""
    if splits:
        categories = payload.get(CATEGORY) or ()
        return {**payload, GRAPH_BLOCK: graph_blocks(point_id, categories, splits)}
    if GRAPH_BLOCK in payload:
        return {k: v for k, v in payload.items() if k != GRAPH_BLOCK}
    return payload


def engine_full_scan_kb(full_scan_kb: int, splits: int) -> int:
    """The engine's full-scan threshold for a collection with ``splits`` blocks: the blocks of
    every category above ``full_scan_kb`` reach it; 0 splits keeps the store's own."""
    return max(1, full_scan_kb // splits) if splits > 0 else full_scan_kb
