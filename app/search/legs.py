"""Retrieval legs: each turns one query input into a ranked list of catalog points, raw scores on.

Every leg applies the request's filter and its score floor inside the engine, so a floor
never lets a filtered-out point back in, and a filter never lowers what a floor keeps. Hits carry
only the payload fields that grouping and results use (``HIT_FIELDS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

from app.store import (
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    TEXT_VECTOR,
    DenseQuery,
    Hit,
    SearchFilter,
    VectorStore,
    category_ancestors,
)
from app.store.fields import CATEGORY_PATH, HIT_FIELDS

__all__ = [
    "bm25",
    "cross_modal",
    "dense_query",
    "image_instance",
    "image_to_image",
    "image_to_text",
    "outscoring",
    "text_to_image",
    "text_to_text",
    "widened",
]

# Nearest points by the query's own tower that name the categories a cross-modal leg also
# searches inside (``cross_modal``).
ANCHORS = 10
# Scores this close are equal: the engine's float32 cosine against ours (``outscoring``).
TIE = 1e-5


def _below(flt: SearchFilter) -> int:
    """The category depth one level below what ``flt`` fixes (0: the top level)."""
    return len(category_ancestors(flt.category)) if flt.category else 0


def _groups(hits: Sequence[Hit], depth: int) -> list[str]:
    """The categories of ``hits`` at ``depth`` (0: top level), in order of first appearance."""
    paths = (category_ancestors(str(h.payload.get(CATEGORY_PATH, ""))) for h in hits)
    return list(dict.fromkeys(p[depth] for p in paths if len(p) > depth))


def cross_modal(
    store: VectorStore,
    vec: np.ndarray,
    own: str,
    other: str,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None,
    anchors: Sequence[Hit] | None = None,
) -> list[Hit]:
    """``vec`` (a query of the tower behind the ``own`` vectors) against the ``other`` vectors.

    A query of one tower lies far from every vector of the other (CLIP's modality gap), and
    HNSW's greedy walk, which only follows neighbours that come closer, can settle in the wrong
    cluster of a mixed catalog: at 100k products a grocery photo searched against the texts
    found only clothes (recall@10 0 against exact search, at any search beam). So the query's
    nearest points by its own tower (where the walk is reliable; searched in the same engine
    call) name the categories it belongs to, one level below what the filter fixes (the top
    level when it fixes none). A named category missing from the leg's own top hits means the
    walk may have missed it: the search then also runs inside it, where the engine walks that
    category's own links. The union, best first, is the leg: a point scores the same cosine in
    every search, so only what is found changes. When the walk went right, the extra cost is
    the small anchor search.

    ``anchors``: the query's nearest points by its own tower under the same filter, unfloored,
    when the caller already has them (the same-tower leg's first hits): the anchor search is
    then skipped. At 100k points it is a full-beam walk of its own.

    Where the store scans the filter's matches exactly (``VectorStore.scans``) the leg is the
    one search: no anchors, no searches inside categories.
    """
    flt = flt or SearchFilter()
    main = dense_query(vec, limit, flt, other, min_score)
    if store.scans(flt, other):
        # The filter's matches are scanned exactly: there is no walk to go astray, and a
        # search inside one of its categories could only find what this one finds.
        return store.search_batch([main])[0]
    if anchors is None:
        own_query = DenseQuery(vec, ANCHORS, flt, own, None, (CATEGORY_PATH,))
        hits, near = store.search_batch([main, own_query])
    else:
        hits, near = store.search_batch([main])[0], list(anchors[:ANCHORS])
    return widened(store, vec, other, hits, near, limit, flt, min_score)


def widened(
    store: VectorStore,
    vec: np.ndarray,
    using: str,
    hits: list[Hit],
    anchors: Sequence[Hit],
    limit: int,
    flt: SearchFilter,
    min_score: float | None,
) -> list[Hit]:
    """``hits`` (``vec``'s walk over the ``using`` vectors under ``flt``), also searched inside
    each category that the first ``anchors`` name and the first ``hits`` lack, one level below
    what ``flt`` fixes; the union, best first. A point scores the same in every search, so only
    what is found changes."""
    depth = _below(flt)
    near = _groups(anchors[:ANCHORS], depth)
    missed = [g for g in near if g not in _groups(hits[:ANCHORS], depth)]
    if not missed:
        return hits
    # Each group lies inside the filter's category, so narrowing to it keeps the filter.
    inside = store.search_batch(
        [dense_query(vec, limit, flt.with_category(g), using, min_score) for g in missed]
    )
    found: dict[str, Hit] = {}
    for hit in chain(hits, *inside):
        found.setdefault(hit.id, hit)
    return sorted(found.values(), key=lambda h: -h.score)[:limit]


def image_to_image(
    store: VectorStore,
    image_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
    ef: int | None = None,
    anchors: Sequence[Hit] | None = None,
) -> list[Hit]:
    """Query photo against catalog photos (image tower on both sides). ``ef``: the HNSW beam,
    when not the store's.

    ``anchors``: the identity leg's first hits for the same photo and filter, unfloored. The
    identity vectors walk a graph of their own. An anchor that the walk did not return although
    its photo scores above the walk's 10th hit proves the walk missed it; the leg then also
    searches inside that anchor's category, where the walk missed (``widened``). At 1M
    products, unfiltered, three grocery photos of 50 walked into clothes and found none of their
    exact 10: anchored, the leg's recall@10 went from 0.936 to 0.996. A category the anchors
    merely name is not searched (identity and image vectors often disagree about a photo's
    neighbours): over those 50 photos, unfiltered and filtered, that would have been 18 more
    searches, the anchored leg taking 13-77 ms each time, and none found anything. The proof
    fired for exactly the three lost photos. The check reads the anchors' stored photo vectors.
    """
    flt = flt or SearchFilter()
    hits = store.search_batch([dense_query(image_vec, limit, flt, IMAGE_VECTOR, min_score, ef)])[0]
    if anchors is None or store.scans(flt, IMAGE_VECTOR):
        return hits
    # Only anchors whose category the walk's first hits lack could widen it: the others' photo
    # vectors are not read (most photos have none).
    depth = _below(flt)
    seen = set(_groups(hits[:ANCHORS], depth))
    elsewhere = [a for a in anchors[:ANCHORS] if set(_groups([a], depth)) - seen]
    missed = outscoring(store, image_vec, IMAGE_VECTOR, hits, elsewhere, min_score)
    return widened(store, image_vec, IMAGE_VECTOR, hits, missed, limit, flt, min_score)


def outscoring(
    store: VectorStore,
    vec: np.ndarray,
    using: str,
    hits: Sequence[Hit],
    points: Sequence[Hit],
    min_score: float | None,
) -> list[Hit]:
    """The ``points`` not among ``hits`` whose ``using`` vector scores above the ``ANCHORS``-th
    hit's score for ``vec`` (above ``min_score`` when there are fewer hits): points the search
    should have returned and did not. Scored from their stored vectors (cosine)."""
    found = {h.id for h in hits}
    unseen = [p for p in points if p.id not in found]
    if not unseen:
        return []
    if len(hits) >= ANCHORS:
        bar = hits[ANCHORS - 1].score
    else:
        bar = min_score if min_score is not None else -np.inf
    stored = store.vectors([p.id for p in unseen], (using,))
    query = vec / (np.linalg.norm(vec) or 1.0)
    out = []
    for p in unseen:
        v = stored.get(p.id, {}).get(using)
        if v is not None and float(query @ (v / (np.linalg.norm(v) or 1.0))) > bar + TIE:
            out.append(p)
    return out


def image_instance(
    store: VectorStore,
    instance_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
    ef: int | None = None,
) -> list[Hit]:
    """Query photo against catalog photos by the identity embedding: the very product, re-shot.

    Each catalog image is its own point, so a product with several photos matches on any of
    them (grouping by product keeps its best). ``ef``: the HNSW beam, when not the store's.
    """
    query = dense_query(instance_vec, limit, flt, INSTANCE_VECTOR, min_score, ef)
    return store.search_batch([query])[0]


def image_to_text(
    store: VectorStore,
    image_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
    anchors: Sequence[Hit] | None = None,
) -> list[Hit]:
    """Query photo against the products' text embeddings (the towers share one space).

    Robust when the catalog photo is a studio shot and the query a shelf snapshot: the text
    names what the item is, whatever the picture looks like. Searched as ``cross_modal``
    (``anchors``: the photo leg's first hits, if the caller has them).
    """
    return cross_modal(store, image_vec, IMAGE_VECTOR, TEXT_VECTOR, limit, flt, min_score, anchors)


def text_to_image(
    store: VectorStore,
    text_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
    anchors: Sequence[Hit] | None = None,
) -> list[Hit]:
    """Typed query (text tower) against catalog photos, searched as ``cross_modal``
    (``anchors``: the text leg's first hits, if the caller has them)."""
    return cross_modal(store, text_vec, TEXT_VECTOR, IMAGE_VECTOR, limit, flt, min_score, anchors)


def text_to_text(
    store: VectorStore,
    text_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
) -> list[Hit]:
    """Typed query against the products' text embeddings: synonyms and paraphrases match."""
    return store.search_dense(
        text_vec, limit, flt, using=TEXT_VECTOR, min_score=min_score, with_payload=HIT_FIELDS
    )


def bm25(
    store: VectorStore,
    text: str,
    limit: int,
    flt: SearchFilter | None,
    min_score: float | None = None,
) -> list[Hit]:
    """Keyword match over the products' text, inside the engine (exact terms, SKUs, brands)."""
    return store.search_bm25(text, limit, flt, min_score=min_score, with_payload=HIT_FIELDS)


def dense_query(
    vector: np.ndarray,
    limit: int,
    flt: SearchFilter | None,
    using: str,
    min_score: float | None = None,
    ef: int | None = None,
) -> DenseQuery:
    """A vector leg as a query, for ``search_batch``: hits with ``HIT_FIELDS`` only; ``ef``:
    the HNSW beam, when not the store's."""
    return DenseQuery(vector, limit, flt, using, min_score, with_payload=HIT_FIELDS, ef=ef)
