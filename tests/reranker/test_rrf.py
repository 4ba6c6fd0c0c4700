import pytest

from reranker.rrf import rrf


def test_scores_match_the_formula_with_ranks_from_one() -> None:
    fused = dict(rrf([["a", "b"], ["b", "c"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)


def test_order_is_best_first() -> None:
    assert [item for item, _ in rrf([["a", "b", "c"], ["b", "a", "c"], ["b"]])] == ["b", "a", "c"]


def test_ties_break_by_best_rank_then_first_appearance() -> None:
    # x and y both score 1/61 + 1/62; x appears first, so it wins deterministically.
    assert [i for i, _ in rrf([["x", "y"], ["y", "x"]])] == ["x", "y"]
    # p (ranks 1 and 4) beats q (ranks 2 and 2) on equal-ish footing only by score; check exact.
    fused = rrf([["p", "q"], ["z", "q", "w", "p"]], k=1)
    scores = dict(fused)
    assert scores["p"] == pytest.approx(1 / 2 + 1 / 5)
    assert scores["q"] == pytest.approx(1 / 3 + 1 / 3)
    assert [i for i, _ in fused][:2] == ["p", "q"]


def test_duplicates_within_a_list_count_once_at_best_position() -> None:
    assert dict(rrf([["a", "a", "b"]], k=60)) == pytest.approx({"a": 1 / 61, "b": 1 / 63})


def test_weights_scale_each_list_and_zero_removes_it() -> None:
    fused = dict(rrf([["a"], ["b"]], k=60, weights=[2.0, 1.0]))
    assert fused["a"] == pytest.approx(2 / 61)
    assert "b" not in dict(rrf([["a"], ["b"]], weights=[1.0, 0.0]))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        rrf([["a"]], k=0)
    with pytest.raises(ValueError, match="1 weights for 2 lists"):
        rrf([["a"], ["b"]], weights=[1.0])


def test_empty_input_gives_empty_output() -> None:
    assert rrf([]) == []
    assert rrf([[], []]) == []
