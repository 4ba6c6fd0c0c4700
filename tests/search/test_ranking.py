"""The exact-match rule in ``fuse_legs``: judged by the whole photo's cosines where given."""

from __future__ import annotations

from app.profiles.model import FusionSpec
from app.search.ranking import fuse_legs

LISTS = {
    "image": [("a", 0.95), ("b", 0.90), ("c", 0.80)],
    "image_text": [("b", 0.30), ("a", 0.20)],
}
SPEC = FusionSpec(method="rrf", k=1, weights={"image": 1.0, "image_text": 2.0})


def test_without_judged_cosines_the_leg_scores_decide() -> None:
    fused, exact = fuse_legs(LISTS, SPEC, exact_match=0.94)
    assert exact == {"a"} and fused[0].item == "a"


def test_judged_cosines_replace_the_leg_scores() -> None:
    # The views' mean scores "a" 0.95, but the whole photo is "c"'s very shot.
    fused, exact = fuse_legs(LISTS, SPEC, 0.99, {"image": {"c": 1.0, "a": 0.97}})
    assert exact == {"c"}
    assert [f.item for f in fused] == ["c", "b", "a"]


def test_an_exact_match_no_leg_listed_still_leads() -> None:
    fused, exact = fuse_legs(LISTS, SPEC, 0.99, {"image": {"z": 0.999}})
    assert exact == {"z"}
    assert fused[0].item == "z" and fused[0].score == 0.0
    assert sorted(f.item for f in fused[1:]) == ["a", "b", "c"]


def test_no_judged_cosines_for_the_judge_means_no_exact_match() -> None:
    fused, exact = fuse_legs(LISTS, SPEC, 0.5, {"image_instance": {"a": 1.0}})
    assert exact == set()
    assert [f.item for f in fused] == [f.item for f in fuse_legs(LISTS, SPEC)[0]]
