import math

import pytest

from reranker.metrics import mrr, ndcg_at_k, recall_at_k


def test_recall_counts_relevant_items_in_the_top_k() -> None:
    assert recall_at_k(["a", "b", "c", "d"], {"b", "d", "z"}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(["a", "b", "c", "d"], {"b", "d", "z"}, 4) == pytest.approx(2 / 3)
    assert recall_at_k(["b", "b"], {"b"}, 2) == 1.0
    assert recall_at_k(["a"], set(), 10) == 0.0


def test_mrr_is_one_over_the_first_relevant_rank() -> None:
    assert mrr(["a", "b", "c"], {"c"}) == pytest.approx(1 / 3)
    assert mrr(["a", "b", "c"], {"c"}, k=2) == 0.0
    assert mrr(["c"], {"c"}) == 1.0


def test_ndcg_by_hand() -> None:
    # Relevant at ranks 2 and 4 of 4, with 3 relevant items in all, cut at 4.
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(["x", "a", "y", "b"], {"a", "b", "c"}, 4) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], {"a"}, 10) == 0.0
    assert ndcg_at_k(["a", "a"], {"a", "b"}, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_bad_k_is_refused() -> None:
    with pytest.raises(ValueError):
        recall_at_k(["a"], {"a"}, 0)
    with pytest.raises(ValueError):
        ndcg_at_k(["a"], {"a"}, 0)
