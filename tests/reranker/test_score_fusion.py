"""Min-max, z-score and DBSF on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from reranker import dbsf_fuse, fuse, minmax_fuse, zscore_fuse
from reranker.dbsf import dbsf_normalise


def test_minmax_maps_each_list_to_unit_range_and_sums() -> None:
    fused = minmax_fuse([[("a", 0.9), ("b", 0.5), ("c", 0.1)], [("c", 10.0), ("a", 0.0)]])
    scores = {f.item: f.score for f in fused}
    assert scores == pytest.approx({"a": 1.0 + 0.0, "b": 0.5, "c": 0.0 + 1.0})
    # a and c tie at 1.0: a reached rank 1 in a list, and so did c; then item order.
    assert [f.item for f in fused] == ["a", "c", "b"]


def test_zscore_scales_by_spread_and_puts_the_lowest_at_zero() -> None:
    fused = zscore_fuse([[("a", 3.0), ("b", 2.0), ("c", 1.0)]], weights=[2.0])
    scores = {f.item: f.score for f in fused}
    std = np.std([3.0, 2.0, 1.0])
    assert scores == pytest.approx({"a": 2 * 2 / std, "b": 2 * 1 / std, "c": 0.0})
    # Listed at the bottom never scores below not being listed at all.
    two = {f.item: f.score for f in zscore_fuse([[("a", 1.0), ("b", 0.0)], [("c", 5.0)]])}
    assert two["b"] == 0.0 and two["a"] > 0


def test_dbsf_clips_outliers_to_three_sigma() -> None:
    scores = np.array([100.0] + [1.0] * 20)
    normed = dbsf_normalise(scores)
    assert normed[0] == 1.0  # clipped, not 1 with everything else squashed to 0
    mean, std = scores.mean(), scores.std()
    assert normed[1] == pytest.approx((1.0 - (mean - 3 * std)) / (6 * std))
    assert dbsf_fuse([[("x", 0.4)]])[0].score == 1.0  # one score: no spread, full credit


def test_equal_scores_do_not_divide_by_zero() -> None:
    for method in ("minmax", "zscore", "dbsf"):
        fused = fuse(method, [[("a", 0.5), ("b", 0.5)]])
        assert all(np.isfinite(f.score) for f in fused)
        assert [f.item for f in fused] == ["a", "b"]  # tie: rank 1 first


def test_unknown_method_and_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fusion method"):
        fuse("borda", [[("a", 1.0)]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        fuse("minmax", [[("a", 1.0)]], weights=[-1.0])
