"""The query photo's views: the whole photo and centre crops, embedded together and averaged."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.search.encode import QUERY_CROP, QueryEmbedder, query_views
from tests.fakes import InstanceFakeEncoder


def _photo(w: int = 200, h: int = 100) -> bytes:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_views_are_the_photo_and_its_stretched_centre_crop() -> None:
    image = Image.open(io.BytesIO(_photo())).convert("RGB")
    # A dim, low-contrast photo (a phone's exposure): values squeezed into 60..120.
    dim = Image.fromarray((np.asarray(image) * (60 / 255) + 60).astype(np.uint8))
    views = query_views(dim)
    assert len(views) == 2
    assert views[0] is dim
    crop = views[1]
    assert crop.size == (round(200 * QUERY_CROP), round(100 * QUERY_CROP))
    # Centred, and stretched to (nearly) the full range, per channel.
    left, top = (200 - crop.width) // 2, (100 - crop.height) // 2
    middle = np.asarray(dim.crop((left, top, left + crop.width, top + crop.height)))
    got = np.asarray(crop).astype(int)
    assert middle.max() - middle.min() <= 61
    for c in range(3):
        assert got[..., c].min() <= 5 and got[..., c].max() >= 250
    # The stretch keeps the order of pixel values (a monotone map of each channel).
    flat_in, flat_out = middle[..., 0].ravel(), got[..., 0].ravel()
    order = np.argsort(flat_in, kind="stable")
    assert np.all(np.diff(flat_out[order]) >= 0)


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
