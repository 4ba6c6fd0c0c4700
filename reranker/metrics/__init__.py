"""Ranking metrics over plain lists: one module per metric, binary relevance.

Conventions shared by every metric: ``ranked`` lists item ids best first (ranks start at 1),
``relevant`` is the set of ids judged relevant, and a query with no relevant item scores 0.
"""

from reranker.metrics.mrr import mrr
from reranker.metrics.ndcg import ndcg_at_k
from reranker.metrics.recall import recall_at_k

__all__ = ["mrr", "ndcg_at_k", "recall_at_k"]
