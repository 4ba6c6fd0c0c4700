"""Which engine searches a query's legs make (``app.search.running``): a cross-modal leg takes
its anchors from the same-tower leg's hits instead of searching for them again, the photo leg
takes the identity leg's, and a search asks for the whole photo's nearest points only of the
leg the exact-match rule judges by."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from app.profiles.model import FusionSpec
from app.search import legs, running
from app.search.leg_names import (
    IMAGE_INSTANCE,
    IMAGE_TO_IMAGE,
    IMAGE_TO_TEXT,
    TEXT_TO_IMAGE,
    TEXT_TO_TEXT,
)
from app.search.query import SearchQuery
from app.search.ranking import group_hits
from app.search.running import EXACT_CHECKED
from app.search.schemas import PredictedCategory
from app.search.service import SearchService
from app.store import (
    IMAGE_VECTOR,
    INSTANCE_VECTOR,
    TEXT_VECTOR,
    DenseQuery,
    EdgeStore,
    Hit,
    SearchFilter,
    StoreQuery,
)
from ingestion.pipeline import ingest_catalog
from tests.fakes import InstanceFakeEncoder

LIMIT = 100  # the default profile's candidates per leg


class RecordingStore:
    """The real store, keeping every dense query it is asked."""

    def __init__(self, store: EdgeStore) -> None:
        self._store = store
        self.dense: list[DenseQuery] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def search_batch(self, queries: Sequence[StoreQuery]) -> list[list[Hit]]:
        self.dense += [q for q in queries if isinstance(q, DenseQuery)]
        return self._store.search_batch(queries)

    def search_dense(self, vector: Any, limit: int, flt: Any, **kw: Any) -> list[Hit]:
        self.dense.append(DenseQuery(vector, limit, flt, kw["using"], kw.get("min_score")))
        return self._store.search_dense(vector, limit, flt, **kw)

    def asked(self, using: str, limit: int) -> int:
        """How many searches of the ``using`` vectors asked for ``limit`` hits."""
        return sum(1 for q in self.dense if q.using == using and q.limit == limit)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, mini_catalog: Path) -> Iterator[RecordingStore]:
    edge = EdgeStore(tmp_path_factory.mktemp("running") / "qdrant")
    ingest_catalog(mini_catalog, edge, InstanceFakeEncoder())
    yield RecordingStore(edge)
    edge.close()


@pytest.fixture(scope="module")
def service(store: RecordingStore) -> Iterator[SearchService]:
    svc = SearchService(store, InstanceFakeEncoder())  # type: ignore[arg-type]
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def photo(mini_catalog: Path) -> bytes:
    return sorted((mini_catalog / "images").iterdir())[3].read_bytes()


def test_a_cross_modal_leg_is_anchored_by_the_same_tower_leg(
    service: SearchService, store: RecordingStore, photo: bytes
) -> None:
    store.dense.clear()
    service.search(SearchQuery(text="blue shirt"))
    # The text leg's own search, and no second one for the anchors of words -> photos.
    assert store.asked(TEXT_VECTOR, LIMIT) == 1 and store.asked(TEXT_VECTOR, legs.ANCHORS) == 0
    assert store.asked(IMAGE_VECTOR, LIMIT) >= 1
    store.dense.clear()
    service.search(SearchQuery(image=photo))
    assert store.asked(IMAGE_VECTOR, LIMIT) == 1 and store.asked(IMAGE_VECTOR, legs.ANCHORS) == 0
    assert store.asked(TEXT_VECTOR, LIMIT) >= 1


@pytest.mark.parametrize("leg", [TEXT_TO_IMAGE, IMAGE_TO_TEXT])
def test_anchored_legs_find_what_they_found_with_their_own_anchor_search(
    service: SearchService, store: RecordingStore, photo: bytes, leg: str
) -> None:
    if leg == TEXT_TO_IMAGE:
        lists, _ = service.leg_lists(SearchQuery(text="blue shirt"))
        vec = service.encoder.encode_texts(["blue shirt"])[0]
        alone = legs.text_to_image(store._store, vec, LIMIT, SearchFilter())
    else:
        lists, _ = service.leg_lists(SearchQuery(image=photo))
        vec = service._embedder.photo(photo, None, {}).image
        alone = legs.image_to_text(store._store, vec, LIMIT, SearchFilter())
    assert lists[leg] and lists[leg] == group_hits(alone, True)


@pytest.mark.parametrize(
    "spec",
    [
        FusionSpec(weights={TEXT_TO_TEXT: 0}),  # the text leg does not run
        FusionSpec(floors={TEXT_TO_TEXT: 0.3}),  # its hits are floored: not the nearest 10
    ],
)
def test_without_an_unfloored_same_tower_leg_the_anchors_are_searched(
    service: SearchService, store: RecordingStore, spec: FusionSpec
) -> None:
    store.dense.clear()
    response = service.search(SearchQuery(text="blue shirt", fusion=spec))
    assert TEXT_TO_IMAGE in response.legs
    assert store.asked(TEXT_VECTOR, legs.ANCHORS) == 1
    anchors = next(q for q in store.dense if q.limit == legs.ANCHORS)
    assert anchors.min_score is None


def test_a_photo_search_asks_the_whole_photo_of_the_judging_leg_only(
    service: SearchService, store: RecordingStore, photo: bytes
) -> None:
    store.dense.clear()
    response = service.search(SearchQuery(image=photo))
    assert IMAGE_INSTANCE in response.legs and IMAGE_TO_IMAGE in response.legs
    assert store.asked(INSTANCE_VECTOR, EXACT_CHECKED) == 1
    assert store.asked(IMAGE_VECTOR, EXACT_CHECKED) == 0
    assert response.results[0].exact_match  # a catalog photo: the judge still finds it
    # Without the identity leg the image leg judges, and its whole-photo search runs.
    store.dense.clear()
    spec = FusionSpec(weights={IMAGE_INSTANCE: 0})
    response = service.search(SearchQuery(image=photo, fusion=spec))
    assert store.asked(IMAGE_VECTOR, EXACT_CHECKED) == 1
    assert store.asked(INSTANCE_VECTOR, EXACT_CHECKED) == 0
    assert response.results[0].exact_match
    # Offline re-fusion may weigh either leg: it gets both legs' whole-photo points.
    _, judged = service.leg_lists(SearchQuery(image=photo))
    assert set(judged) == {IMAGE_INSTANCE, IMAGE_TO_IMAGE}


class LegSpy:
    """A dense leg's search, recording the anchors it was given and the hits it returned."""

    def __init__(self, search: Any) -> None:
        self.search = search
        self.calls: list[tuple[Sequence[Hit] | None, list[Hit]]] = []

    def __call__(self, *args: Any, anchors: Sequence[Hit] | None = None) -> list[Hit]:
        hits: list[Hit] = (
            self.search(*args) if anchors is None else self.search(*args, anchors=anchors)
        )
        self.calls.append((anchors, hits))
        return hits


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, LegSpy]:
    out = {}
    for leg in (IMAGE_INSTANCE, IMAGE_TO_IMAGE, IMAGE_TO_TEXT):
        out[leg] = LegSpy(running.DENSE_LEGS[leg])
        monkeypatch.setitem(running.DENSE_LEGS, leg, out[leg])
    return out


def test_the_photo_leg_is_anchored_by_the_identity_leg_and_anchors_the_text_leg(
    service: SearchService, photo: bytes, spies: dict[str, LegSpy]
) -> None:
    service.search(SearchQuery(image=photo))
    ((identity_anchors, identity),) = spies[IMAGE_INSTANCE].calls
    ((photo_anchors, photo_hits),) = spies[IMAGE_TO_IMAGE].calls
    ((text_anchors, _),) = spies[IMAGE_TO_TEXT].calls
    assert identity_anchors is None and identity
    assert photo_anchors is identity and text_anchors is photo_hits


@pytest.mark.parametrize(
    "spec",
    [
        FusionSpec(weights={IMAGE_INSTANCE: 0}),  # the identity leg does not run
        FusionSpec(floors={IMAGE_INSTANCE: 0.3}),  # its hits are floored: not the nearest 10
    ],
)
def test_without_an_unfloored_identity_leg_the_photo_leg_is_unanchored(
    service: SearchService, photo: bytes, spies: dict[str, LegSpy], spec: FusionSpec
) -> None:
    service.search(SearchQuery(image=photo, fusion=spec))
    ((photo_anchors, photo_hits),) = spies[IMAGE_TO_IMAGE].calls
    assert photo_anchors is None
    assert spies[IMAGE_TO_TEXT].calls[0][0] is photo_hits  # it still anchors the text leg


def test_a_floored_photo_leg_anchors_nothing_but_is_anchored(
    service: SearchService, photo: bytes, spies: dict[str, LegSpy]
) -> None:
    service.search(SearchQuery(image=photo, fusion=FusionSpec(floors={IMAGE_TO_IMAGE: 0.0})))
    ((_, identity),) = spies[IMAGE_INSTANCE].calls
    assert spies[IMAGE_TO_IMAGE].calls[0][0] is identity
    assert spies[IMAGE_TO_TEXT].calls[0][0] is None  # a floor of 0 is a floor all the same


@pytest.mark.parametrize("applied", [False, True])
def test_with_category_prediction_the_photo_legs_keep_their_anchors(
    service: SearchService,
    photo: bytes,
    spies: dict[str, LegSpy],
    monkeypatch: pytest.MonkeyPatch,
    applied: bool,
) -> None:
    share = 1.0 if applied else 0.1  # against the profile's confidence of 0.7
    guess = PredictedCategory(path="apparel", confidence=share, applied=False)
    monkeypatch.setattr(running, "predict_category", lambda hits, confidence: guess)
    response = service.search(SearchQuery(image=photo, predict_category=True))
    assert response.predicted_category is not None
    assert response.predicted_category.applied is applied
    ((text_anchors, _),) = spies[IMAGE_TO_TEXT].calls
    if applied:  # searched again inside the category: anchored as without prediction
        ((photo_anchors, photo_hits),) = spies[IMAGE_TO_IMAGE].calls
        assert photo_anchors is spies[IMAGE_INSTANCE].calls[0][1] and text_anchors is photo_hits
    else:  # the prediction's own photo search is the leg, and anchors the text leg
        assert spies[IMAGE_TO_IMAGE].calls == [] and text_anchors
