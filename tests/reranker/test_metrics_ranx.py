"""Our metrics against ranx (Bassani, "ranx: A Blazing-Fast Python Library for Ranking
Evaluation and Comparison", ECIR 2022), a trusted implementation, on random runs.

``snapshop eval`` reports means computed by ``app.evaluation.metrics_table.summarise`` over
``reranker.metrics``; every number it prints must equal what ranx gives for the same run.
ranx compiles with numba on first use (about a minute on a fresh venv, cached after).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import ranx  # a dev dependency: its absence must fail the suite, not skip this check

from app.evaluation.metrics_table import summarise

RANX_NAMES = {
    "recall@1": "recall@1",
    "recall@5": "recall@5",
    "recall@10": "recall@10",
    "mrr": "mrr",
    "ndcg@10": "ndcg@10",
}


def _ranx(ranked: list[list[str]], relevant: list[frozenset[str]]) -> dict[str, float]:
    qrels = ranx.Qrels({f"q{i}": {d: 1 for d in rel} for i, rel in enumerate(relevant)})
    # Scores strictly decreasing with rank, so ranx sorts exactly as we ranked.
    run = ranx.Run(
        {f"q{i}": {d: float(len(r) - j) for j, d in enumerate(r)} for i, r in enumerate(ranked)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety chatter
        got = ranx.evaluate(qrels, run, list(RANX_NAMES.values()), make_comparable=True)
    return {ours: float(got[theirs]) for ours, theirs in RANX_NAMES.items()}


def test_means_match_ranx_on_random_runs() -> None:
    rng = np.random.default_rng(7)
    catalog = [f"p{i}" for i in range(60)]
    ranked, relevant = [], []
    for _ in range(300):
        ranked.append(list(rng.choice(catalog, size=int(rng.integers(1, 11)), replace=False)))
        n_rel = int(rng.integers(1, 25))  # up to more relevant items than the cut-off
        relevant.append(frozenset(rng.choice(catalog, size=n_rel, replace=False).tolist()))
    ours = summarise(ranked, relevant)
    theirs = _ranx(ranked, relevant)
    for name, value in theirs.items():
        # ours are rounded to 4 places for display
        assert ours[name] == pytest.approx(value, abs=5e-5), name
    assert ours["n"] == 300
    # The random runs are neither trivially perfect nor empty, so the comparison has teeth.
    assert 0.05 < ours["ndcg@10"] < 0.95 and 0.05 < ours["mrr"] < 0.95


def test_a_hand_worked_run_matches_ranx_and_arithmetic() -> None:
    ranked = [["a", "x", "b"], ["y", "z", "c"], ["d"]]
    relevant = [frozenset({"a", "b"}), frozenset({"c", "q"}), frozenset({"e"})]
    ours = summarise(ranked, relevant)
    # q0: hits at 1 and 3 of 2 relevant; q1: hit at 3 of 2 relevant; q2: none.
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    by_hand = {
        "recall@1": (0.5 + 0 + 0) / 3,
        "recall@5": (1 + 0.5 + 0) / 3,
        "recall@10": (1 + 0.5 + 0) / 3,
        "mrr": (1 + 1 / 3 + 0) / 3,
        "ndcg@10": (ndcg0 + ndcg1 + 0) / 3,
    }
    theirs = _ranx(ranked, relevant)
    for name, value in by_hand.items():
        assert ours[name] == pytest.approx(value, abs=5e-5), name
        assert theirs[name] == pytest.approx(value, abs=1e-9), name
