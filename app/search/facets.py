"""Category facets: how the fused candidates spread over the top two category levels.

Counted by the engine (Qdrant facet over the candidates' point ids), so a server backend counts
the same way. One point stands for each candidate, so the counts are of products when results
are grouped by product, and of images otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.search.schemas import FacetCount
from app.store import Hit, VectorStore, category_ancestors
from app.store.fields import CATEGORY, CATEGORY_PATH

CATEGORY_KEY = CATEGORY  # payload: the category path and its ancestors
MAX_DEPTH = 2


def category_facets(store: VectorStore, window: Sequence[Hit]) -> list[FacetCount]:
    """Levels 1-2 of the ``window`` hits' categories, most frequent first (ties: by name).

    The engine indexes categories lower-cased (filters ignore case); a facet shows the
    catalog's own spelling, taken from the candidates' payloads.
    """
    spelled: dict[str, str] = {}
    for hit in window:
        path = str(hit.payload.get(CATEGORY_PATH, ""))
        parts = [p.strip() for p in path.split("/") if p.strip()]
        for level, key in enumerate(category_ancestors(path)):
            spelled.setdefault(key, "/".join(parts[: level + 1]))
    counts = store.facet(CATEGORY_KEY, [hit.id for hit in window])
    kept = [(spelled.get(v, v), n) for v, n in counts if 1 <= len(v.split("/")) <= MAX_DEPTH]
    return [FacetCount(value=v, count=n) for v, n in sorted(kept, key=lambda vn: (-vn[1], vn[0]))]
