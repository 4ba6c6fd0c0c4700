"""Offline re-fusion ranks as the service does; tuning chooses on train, grades held-out."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.components import open_components
from app.evaluation.offline import CachedQuery, collect, rank, score, sweep
from app.evaluation.queries import read_image_queries, read_text_queries
from app.evaluation.search import EvalQuery, eval_queries
from app.evaluation.tune import MIN_GAIN, split, tune
from app.profiles.model import DEFAULT_PROFILE, FusionSpec
from app.search.leg_names import LEGS
from app.search.query import SearchQuery
from app.search.service import SearchService
from app.settings import Settings
from reranker import METHODS


@pytest.fixture(scope="module")
def service(ingested_dir: Path, tiny_bundle: Path) -> Iterator[SearchService]:
    with open_components(Settings(data_dir=ingested_dir, model=tiny_bundle)) as parts:
        yield parts.service


@pytest.fixture(scope="module")
def queries(mini_queries: Path) -> list[EvalQuery]:
    return eval_queries(
        read_image_queries(mini_queries / "image_queries.csv"),
        read_text_queries(mini_queries / "text_queries.csv"),
    )


def test_offline_fusion_ranks_as_the_service_does(
    service: SearchService, queries: list[EvalQuery]
) -> None:
    cached = collect(service, queries)
    assert {q.kind for q in cached} == {"image", "text"}
    rng = random.Random(3)
    specs = [
        FusionSpec.model_validate(DEFAULT_PROFILE.model_dump(include={"method", "k", "weights"}))
    ]
    for method in METHODS:
        weights = {leg: rng.choice([0.0, 0.5, 1.0, 3.0]) for leg in LEGS}
        weights["image"] = weights["bm25"] = 1.0  # every query keeps a leg
        specs.append(FusionSpec(method=method, k=rng.choice([1, 20, 60]), weights=weights))
    differ = 0
    for spec in specs:
        offline = [rank(c, spec, DEFAULT_PROFILE.exact_match) for c in cached]
        served = [
            [r.product_id for r in service.search(q.search(10, spec)).results] for q in queries
        ]
        assert offline == served, spec
        differ += offline != [rank(c, specs[0], DEFAULT_PROFILE.exact_match) for c in cached]
    assert differ >= 2  # the specs really rank differently, so the equality is not vacuous


def _synthetic(n: int, seed: int = 0) -> list[CachedQuery]:
    """Text queries where BM25 puts the answer first and text_text puts it at rank 8."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        answer = f"p{i}"
        noise = [f"n{i}_{j}" for j in range(20)]
        rng.shuffle(noise)
        bm25 = [(answer, 9.0)] + [(x, 5.0 - j * 0.1) for j, x in enumerate(noise[:10])]
        dense = [(x, 0.9 - j * 0.01) for j, x in enumerate(noise[10:17])]
        dense.append((answer, 0.5))
        out.append(
            CachedQuery(f"q{i}", "text", frozenset({answer}), {"bm25": bm25, "text_text": dense})
        )
    return out


def test_tune_finds_the_better_weighting_and_reports_both_splits() -> None:
    cached = _synthetic(40)
    base = DEFAULT_PROFILE.model_copy(update={"weights": {"bm25": 1.0, "text_text": 32.0}})
    result = tune(cached, base, trials=60, seed=1)
    assert result.n_train + result.n_validation == 40
    assert result.validation["base"] < 0.6  # text_text dominates: the answer sits low
    assert result.validation["best"] == pytest.approx(1.0)
    assert result.train["best"] == pytest.approx(1.0)
    assert result.improved
    body = result.to_json()
    assert body["best"]["validation"] == 1.0 and body["base"]["validation"] < 0.6
    assert body["top"][0]["train"] == 1.0


def test_the_tuned_profile_keeps_the_rest_of_the_base_and_says_how_it_won() -> None:
    cached = _synthetic(40)
    base = DEFAULT_PROFILE.model_copy(
        update={"weights": {"bm25": 1.0, "text_text": 32.0}, "candidates": 50, "version": 3}
    )
    result = tune(cached, base, trials=60, seed=1)
    saved = result.tuned_profile(base, "tuned")
    assert saved.name == "tuned" and saved.spec() == result.best
    assert saved.candidates == 50 and saved.exact_match == base.exact_match
    assert saved.description == (
        f"snapshop tune from default@3: ndcg@10 train {result.train['base']:.4f} -> 1.0000, "
        f"validation {result.validation['base']:.4f} -> 1.0000 "
        f"({result.n_train}/{result.n_validation} queries, seed 1)"
    )
    with pytest.raises(ValidationError):
        result.tuned_profile(base, "Not a name")


def test_tune_keeps_the_profile_when_nothing_beats_it_by_more_than_noise() -> None:
    cached = _synthetic(30)
    base = DEFAULT_PROFILE.model_copy(update={"weights": {"bm25": 4.0, "text_text": 1.0}})
    assert score(cached, base, None) == pytest.approx(1.0)
    result = tune(cached, base, trials=30)
    assert not result.improved and result.best == result.base
    assert result.train["best"] < result.train["base"] + MIN_GAIN


def test_split_keeps_an_answer_set_on_one_side_and_is_seeded() -> None:
    cached = []
    for product in range(30):
        for shot in range(3):  # three photos of each product
            cached.append(
                CachedQuery(f"p{product}_{shot}", "image", frozenset({f"p{product}"}), {})
            )
    train, held = split(cached, 0.3, seed=5)
    assert len(train) + len(held) == 90 and held
    assert not {q.relevant for q in train} & {q.relevant for q in held}
    assert [q.query_id for q in split(cached, 0.3, seed=5)[1]] == [q.query_id for q in held]
    assert [q.query_id for q in split(cached, 0.3, seed=6)[1]] != [q.query_id for q in held]
    with pytest.raises(ValueError, match="too few"):
        split(cached[:1], 0.3)


def test_sweep_moves_one_leg_and_holds_the_rest() -> None:
    cached = _synthetic(10)
    base = FusionSpec(weights={"bm25": 1.0, "text_text": 1.0})
    curves = sweep(cached, base, ["bm25", "text_text"], grid=(0.0, 1.0, 16.0))
    assert [w for w, _ in curves["bm25"]] == [0.0, 1.0, 16.0]
    odd = sweep(cached, base.model_copy(update={"weights": {"bm25": 3.0}}), ["bm25"], grid=(0.0,))
    assert [w for w, _ in odd["bm25"]] == [0.0, 3.0]  # the weight in use is always a point
    # bm25 off: only the dense leg, answer at rank 8; bm25 heavy: answer first.
    assert curves["bm25"][0][1] < 0.5 and curves["bm25"][2][1] == 1.0
    assert curves["text_text"][0][1] == 1.0  # dense leg off leaves the perfect BM25 alone


def test_tune_refuses_an_unknown_metric_or_method() -> None:
    with pytest.raises(ValueError, match="metric"):
        tune(_synthetic(10), DEFAULT_PROFILE, metric="precision@3")
    with pytest.raises(ValueError, match="method"):
        tune(_synthetic(10), DEFAULT_PROFILE, methods=["borda"])


def test_paired_t_separates_one_lucky_query_from_a_consistent_gain() -> None:
    import numpy as np

    from app.evaluation.tune import MIN_T, paired_t

    base = np.zeros(40)
    one = base.copy()
    one[0] = 1.0  # a single query moves: a gain, but no evidence
    assert paired_t(one, base) < MIN_T
    many = base + np.r_[np.ones(20), np.zeros(20)]
    assert paired_t(many, base) > MIN_T
    assert paired_t(base + 0.5, base) == float("inf")  # every query gains alike
    assert paired_t(base, base) == 0.0
    assert paired_t(base - 0.5, base) == 0.0


def test_evaluation_searches_under_the_named_profile(
    service: SearchService, queries: list[EvalQuery], tmp_path: Path
) -> None:
    """Not just its weights: its candidates and exact-match rule apply too."""
    from app.evaluation.search import evaluate_search
    from app.profiles import ProfileRepository

    repo = ProfileRepository(tmp_path / "profiles.sqlite")
    # Few candidates per leg and no exact-match tier: a different ranking from the default's.
    repo.save(
        DEFAULT_PROFILE.model_copy(update={"name": "narrow", "candidates": 10, "exact_match": None})
    )
    narrow = SearchService(service.store, service.encoder, profiles=repo)
    try:
        result = evaluate_search(narrow, queries, profile="narrow", per_query=True)
        assert result["profile"] == "narrow@1"
        for record, q in zip(result["queries"], queries, strict=True):
            direct = narrow.search(
                SearchQuery(text=q.text, image=q.image, k=10, profile="narrow")
            ).results
            assert [r["product_id"] for r in record["results"]] == [r.product_id for r in direct]
        default = evaluate_search(narrow, queries, per_query=True)
        assert [r["results"] for r in default["queries"]] != [
            r["results"] for r in result["queries"]
        ]
    finally:
        narrow.close()
        repo.close()
