"""The query photo's views: the whole photo and centre crops, embedded together and averaged."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.search.encode import QUERY_VIEWS, QueryEmbedder, query_views
from tests.fakes import InstanceFakeEncoder


def _photo(w: int = 200, h: int = 100) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_views_are_the_photo_and_its_centre_crops() -> None:
    image = Image.open(io.BytesIO(_photo())).convert("RGB")
    views = query_views(image)
    assert len(views) == 1 + len(QUERY_VIEWS)
    assert views[0] is image
    for frac, view in zip(QUERY_VIEWS, views[1:], strict=True):
        assert view.size == (round(200 * frac), round(100 * frac))
        # Centred: the crop equals the middle of the photo.
        left, top = (200 - view.width) // 2, (100 - view.height) // 2
        middle = image.crop((left, top, left + view.width, top + view.height))
        assert np.array_equal(np.asarray(view), np.asarray(middle))


def test_photo_vectors_are_the_unit_mean_of_the_views() -> None:
    encoder = InstanceFakeEncoder()
    data = _photo()
    views = query_views(Image.open(io.BytesIO(data)).convert("RGB"))
    emb, inst = encoder.encode_images_with_instance(views)
    want_emb = emb.mean(0) / np.linalg.norm(emb.mean(0))
    want_inst = inst.mean(0) / np.linalg.norm(inst.mean(0))
    for micro_batch in (False, True):
        embedder = QueryEmbedder(encoder, micro_batch=micro_batch)
        try:
            got = embedder.photo(data, None, {})
        finally:
            embedder.close()
        assert got.instance is not None and got.whole_instance is not None
        assert np.allclose(got.image, want_emb, atol=1e-6)
        assert np.allclose(got.instance, want_inst, atol=1e-6)
        # The whole photo's own vectors ride along for the exact-match rule.
        assert np.allclose(got.whole_image, emb[0], atol=1e-6)
        assert np.allclose(got.whole_instance, inst[0], atol=1e-6)
