"""Properties every fusion method must have (hypothesis generates the lists)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reranker import METHODS, Method, fuse

ITEMS = st.sampled_from([f"p{i}" for i in range(12)])


@st.composite
def scored_list(draw: st.DrawFn) -> list[tuple[str, float]]:
    """Distinct items with scores, best first (score ties ordered by item, like an engine)."""
    items = draw(st.lists(ITEMS, unique=True, max_size=8))
    scores = draw(
        st.lists(
            st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 3)),
            min_size=len(items),
            max_size=len(items),
        )
    )
    return sorted(zip(items, scores, strict=True), key=lambda p: (-p[1], p[0]))


LEGS = st.lists(scored_list(), min_size=1, max_size=4)
WEIGHT = st.sampled_from([0.25, 0.5, 1.0, 2.0])
METHOD = st.sampled_from(METHODS)


def _as_dict(fused: list) -> dict[str, float]:
    return {f.item: round(f.score, 9) for f in fused}


@settings(max_examples=200, deadline=None)
@given(legs=LEGS, method=METHOD, data=st.data())
def test_weight_zero_removes_a_leg(legs: list, method: Method, data: st.DataObject) -> None:
    weights = data.draw(st.lists(WEIGHT, min_size=len(legs), max_size=len(legs)))
    drop = data.draw(st.integers(0, len(legs) - 1))
    with_zero = fuse(method, legs, [0.0 if i == drop else w for i, w in enumerate(weights)])
    without = fuse(
        method,
        [leg for i, leg in enumerate(legs) if i != drop],
        [w for i, w in enumerate(weights) if i != drop],
    )
    assert [f.item for f in with_zero] == [f.item for f in without]
    assert _as_dict(with_zero) == _as_dict(without)


@settings(max_examples=200, deadline=None)
@given(legs=LEGS, method=METHOD, data=st.data())
def test_leg_order_does_not_matter(legs: list, method: Method, data: st.DataObject) -> None:
    weights = data.draw(st.lists(WEIGHT, min_size=len(legs), max_size=len(legs)))
    perm = data.draw(st.permutations(range(len(legs))))
    a = fuse(method, legs, weights)
    b = fuse(method, [legs[i] for i in perm], [weights[i] for i in perm])
    assert [f.item for f in a] == [f.item for f in b]
    assert _as_dict(a) == _as_dict(b)


def _beats_everywhere(legs: list, a: str, b: str) -> bool:
    """a is listed wherever b is, always strictly above it (and in at least one list)."""
    present = False
    for leg in legs:
        ids = [item for item, _ in leg]
        score = dict(leg)
        if b in ids and (a not in ids or score[a] <= score[b] or ids.index(a) > ids.index(b)):
            return False
        present |= a in ids
    return present


@settings(max_examples=300, deadline=None)
@given(legs=LEGS, extra=scored_list(), method=METHOD, data=st.data())
def test_an_item_never_falls_below_one_it_beats_everywhere(
    legs: list, extra: list, method: Method, data: st.DataObject
) -> None:
    weights = data.draw(st.lists(WEIGHT, min_size=len(legs), max_size=len(legs)))
    for with_extra in (False, True):
        lists = [*legs, extra] if with_extra else legs
        w = [*weights, 1.0] if with_extra else weights
        position = {f.item: i for i, f in enumerate(fuse(method, lists, w))}
        for a in position:
            for b in position:
                if a != b and _beats_everywhere(lists, a, b):
                    assert position[a] < position[b], (a, b)


@settings(max_examples=200, deadline=None)
@given(legs=LEGS, method=METHOD)
def test_contributions_add_up_to_the_fused_score(legs: list, method: Method) -> None:
    for f in fuse(method, legs):
        assert len(f.contributions) == len(legs)
        assert abs(sum(f.contributions) - f.score) < 1e-9
        for i, leg in enumerate(legs):
            if f.item not in dict(leg):
                assert f.contributions[i] == 0.0
