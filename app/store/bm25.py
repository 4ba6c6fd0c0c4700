"""BM25 term weights, the same for every backend: qdrant-edge's own BM25 embedder.

The engine scores a query by summing, over shared terms, the document's weight times the term's
IDF (the collection's ``Modifier.Idf``, computed by the engine from its live points). The
document side depends on the collection's average length, fixed when it is created. A server
collection given the vectors made here, with the same modifier, scores exactly as the embedded
engine does: one tokenizer (stemming, stopwords) and one formula for both.
"""

from __future__ import annotations

from collections.abc import Sequence

import qdrant_edge as qe

DEFAULT_AVG_LEN = 16.0  # product texts are short; 256 (the engine default) suits articles

# (indices, values) of a sparse vector: the form both engines' clients take.
Sparse = tuple[list[int], list[float]]


class Bm25Terms:
    """Document and query vectors of one collection (its average document length)."""

    def __init__(self, avg_len: float = DEFAULT_AVG_LEN) -> None:
        self.avg_len = avg_len
        self._embedder = qe.Bm25(qe.Bm25Config(avg_len=avg_len))

    def document(self, text: str) -> qe.SparseVector:
        return self._embedder.embed_document(text)

    def query(self, text: str) -> qe.SparseVector:
        """Each term of ``text`` once, weight 1 (the IDF is the engine's): empty when only
        stopwords or punctuation remain."""
        return self._embedder.embed_query(text)

    def tokens(self, text: str) -> list[int]:
        """The engine's BM25 terms of ``text`` (stemmed, stopwords dropped), repeats kept.

        qdrant-edge exposes no tokenizer, so each word is run through the query embedder (which
        tokenizes exactly like the document side); used for average lengths and by test oracles.
        Query-side terms do not depend on ``avg_len``.
        """
        return [int(i) for word in text.split() for i in self._embedder.embed_query(word).indices]

    def average_length(self, corpus: Sequence[str]) -> float:
        """The average length, in terms, of ``corpus``; the default for an empty one."""
        lengths = [len(self.tokens(t)) for t in corpus]
        return (sum(lengths) / len(lengths)) if lengths else DEFAULT_AVG_LEN


def as_pair(vector: qe.SparseVector) -> Sparse:
    return [int(i) for i in vector.indices], [float(v) for v in vector.values]
