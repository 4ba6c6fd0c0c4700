"""Our tokenizers-based CLIP tokenizer must give open_clip's ids exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
from tokenizers import Tokenizer

from app.embedding import ClipTokenizer, load_manifest
from app.embedding import tokenizer as tokenizer_module
from app.embedding.tokenizer import (
    build_clip_tokenizer_json,
    clean_text,
    length_groups,
    token_lengths,
    trim_padding,
)

FULL_WIDTH = "\uff21\uff22\uff23 full width"  # full-width ABC

STRINGS = [
    "navy blue tshirt for men",
    "",
    "   ",
    "Hello, World!!",
    "don't won't it's we're they've I'm you'll he'd",
    "Café crème brûlée",
    "naïve résumé",
    "日本語のテキスト",
    "中文 商品 搜索",
    "Привет мир",
    "ΟΔΥΣΣΕΥΣ",  # final sigma: Rust would lowercase it differently than Python
    "İstanbul",
    "straße",
    "emoji 👗👠 dress 🔥",
    "price $19.99 -50% off!!!",
    "12345 67890",
    "size XL/XXL, 2-pack",
    "&amp; &lt;b&gt; html &quot;x&quot;",
    "tabs\tand\nnewlines\r\n here",
    "MiXeD CaSe",
    "word " * 100,  # > 77 tokens: truncated, EOT kept
    "a" * 300,  # one very long word
    "<start_of_text> inside",
    "fiancé ﬁne",
    FULL_WIDTH,
    "“curly quotes”",
    "ça va? ¿qué tal?",
    "العربية",
    "हिन्दी",
    "🙂",
    "a.b.c",
    "e-mail@example.com",
    "#hashtag @user",
    "100% cotton (machine-washable)",
    "women's running shoes",
    "kids' toys",
    "red\u00a0dress",
    "ŧħïś ïś ŵëïŗð",
    "Nike Air Max 270 — black/white, UK 9",
    "  leading and trailing  ",
]


@pytest.fixture(scope="module")
def clip_tokenizer(tiny_bundle: Path) -> ClipTokenizer:
    manifest = load_manifest(tiny_bundle)
    return ClipTokenizer.from_config(tiny_bundle, manifest.tokenizer, manifest.context_length)


@pytest.fixture(scope="module")
def reference() -> open_clip.SimpleTokenizer:
    return open_clip.get_tokenizer("ViT-B-32")


def test_ids_match_open_clip(
    clip_tokenizer: ClipTokenizer, reference: open_clip.SimpleTokenizer
) -> None:
    expected = reference(STRINGS).numpy()
    got = clip_tokenizer.encode_batch(STRINGS)
    assert got.dtype == np.int64
    assert got.shape == (len(STRINGS), 77)
    mismatched = [s for s, a, b in zip(STRINGS, expected, got, strict=True) if not (a == b).all()]
    assert mismatched == []


def test_layout_sot_eot_padding(clip_tokenizer: ClipTokenizer) -> None:
    empty, short, long = clip_tokenizer.encode_batch(["", "red dress", "word " * 100])
    sot, eot = clip_tokenizer.sot_id, clip_tokenizer.eot_id
    assert (sot, eot) == (49406, 49407)
    assert empty[:2].tolist() == [sot, eot] and not empty[2:].any()
    assert short[0] == sot and short[3] == eot and not short[4:].any()
    # Truncation keeps EOT in the last slot: the text tower pools there.
    assert long[0] == sot and long[-1] == eot and (long[1:-1] != 0).all()


def test_encode_batch_rejects_a_bare_string(clip_tokenizer: ClipTokenizer) -> None:
    with pytest.raises(TypeError):
        clip_tokenizer.encode_batch("red dress")


def test_fallback_cleaning_without_ftfy(
    monkeypatch: pytest.MonkeyPatch,
    clip_tokenizer: ClipTokenizer,
    reference: open_clip.SimpleTokenizer,
) -> None:
    monkeypatch.setattr(tokenizer_module, "_fix_text", None)
    # Without ftfy, ids still match for text ftfy would not repair...
    plain = [s for s in STRINGS if s not in ("fiancé ﬁne", FULL_WIDTH, "“curly quotes”")]
    assert np.array_equal(clip_tokenizer.encode_batch(plain), reference(plain).numpy())
    # ...and differ (the documented limitation) for ligatures and full-width letters.
    assert clean_text("ﬁne " + FULL_WIDTH) == "ﬁne \uff41\uff42\uff43 full width"


def test_tokenizer_json_works_standalone(tmp_path: Path, clip_tokenizer: ClipTokenizer) -> None:
    info = build_clip_tokenizer_json(tmp_path / "tokenizer.json")
    assert info["kind"] == "clip-bpe" and info["vocab_size"] == 49408
    raw = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    # The JSON's own normaliser lower-cases and collapses whitespace like clean_text.
    text = "  Navy   BLUE\tT-Shirt  "
    assert raw.encode(text, add_special_tokens=False).ids == clip_tokenizer.encode(text)


def test_trim_padding_keeps_the_longest_row() -> None:
    ids = np.array([[5, 7, 9, 0, 0, 0], [5, 9, 0, 0, 0, 0]])
    assert trim_padding(ids, 0).tolist() == [[5, 7, 9], [5, 9, 0]]
    assert trim_padding(np.zeros((2, 6), dtype=np.int64), 0).shape == (2, 2)


def test_token_lengths_end_at_the_last_token_that_is_not_padding() -> None:
    ids = np.array([[5, 7, 9, 0], [5, 0, 9, 0], [0, 0, 0, 0], [1, 2, 3, 4]])
    assert token_lengths(ids, 0).tolist() == [3, 3, 0, 4]


def test_length_groups_sort_by_length_and_close_at_the_row_budget() -> None:
    lengths = np.array([30, 2, 10, 2, 30, 10, 3, 10])
    groups = length_groups(lengths, max_batch=3, min_rows=20)
    # Shortest first; every index exactly once; no group over max_batch texts.
    assert sorted(int(i) for g in groups for i in g) == list(range(8))
    flat = [int(lengths[i]) for g in groups for i in g]
    assert flat == sorted(flat)
    assert all(1 <= len(g) <= 3 for g in groups)
    # A group closes once texts x its longest reaches 20 positions: 2,2,3 (max 3 texts), then
    # 10,10 (20 positions), 10,30 (60), 30 (the last).
    assert [[int(lengths[i]) for i in g] for g in groups] == [[2, 2, 3], [10, 10], [10, 30], [30]]
    assert length_groups(np.array([], dtype=np.int64), 4, 10) == []
