"""CLIP BPE tokenizer on top of HF ``tokenizers``, id-for-id equal to open_clip's.

open_clip's ``SimpleTokenizer`` is pure Python and imports torch, so at export time we
translate its vocabulary into a ``tokenizer.json`` (same byte-to-unicode table, same
merges, same ``</w>`` end-of-word suffix, same pre-tokenizer regex) and at inference
time run that file with the Rust ``tokenizers`` library.

Text cleaning: open_clip runs ``ftfy.fix_text`` + double ``html.unescape`` + whitespace
collapse + lowercase. We do the same when ftfy is importable. Without ftfy we apply
NFC normalisation instead of ``fix_text``; the ids only differ for text that ftfy would
repair (mojibake, ligatures like "ﬁ", full-width letters, curly quotes, control chars).
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE

SOT_TOKEN = "<start_of_text>"
EOT_TOKEN = "<end_of_text>"
PAD_ID = 0
END_OF_WORD = "</w>"
# open_clip's pre-tokenizer: special tokens, English contractions, letter runs,
# single digits, and runs of everything else that is not whitespace.
_SPLIT_PATTERN = (
    SOT_TOKEN + "|" + EOT_TOKEN + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)
# The vocabulary file ships with open_clip: 256 byte symbols, their </w> forms,
# 48894 merges, then the two special tokens -> 49408 ids.
BPE_VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
_NUM_MERGES = 49152 - 256 - 2

_fix_text: Callable[[str], str] | None
try:
    from ftfy import fix_text as _fix_text
except ImportError:  # pragma: no cover - depends on the environment
    _fix_text = None


def clean_text(text: str) -> str:
    """open_clip's 'lower' cleaning (ftfy when available, see module doc)."""
    text = _fix_text(text) if _fix_text is not None else unicodedata.normalize("NFC", text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """Tokenize text to fixed-length int64 id rows: SOT, tokens, EOT, zero padding."""

    def __init__(
        self,
        tokenizer_json: Path,
        context_length: int = 77,
        *,
        sot_id: int | None = None,
        eot_id: int | None = None,
        pad_id: int = PAD_ID,
    ) -> None:
        if context_length < 2:
            raise ValueError("context_length must leave room for SOT and EOT")
        self._tok = Tokenizer.from_file(str(tokenizer_json))
        self.context_length = context_length
        self.sot_id = sot_id if sot_id is not None else self._token_id(SOT_TOKEN)
        self.eot_id = eot_id if eot_id is not None else self._token_id(EOT_TOKEN)
        self.pad_id = pad_id

    @classmethod
    def from_config(
        cls, bundle_dir: Path, config: dict[str, Any], context_length: int
    ) -> ClipTokenizer:
        """Build from a manifest's ``tokenizer`` entry."""
        kind = config.get("kind")
        if kind != "clip-bpe":
            raise ValueError(f"unsupported tokenizer kind {kind!r} (only 'clip-bpe')")
        return cls(
            Path(bundle_dir) / str(config.get("file", "tokenizer.json")),
            context_length,
            sot_id=config.get("sot_id"),
            eot_id=config.get("eot_id"),
            pad_id=int(config.get("pad_id", PAD_ID)),
        )

    def _token_id(self, token: str) -> int:
        token_id = self._tok.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token} token")
        return int(token_id)

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` without SOT/EOT or truncation."""
        return list(self._tok.encode(clean_text(text), add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """int64 (N, context_length): SOT, tokens, EOT, zero padding, like open_clip."""
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of strings, not one string")
        out = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        # One encode() per text rather than encode_batch(): batches here are small, and
        # encode_batch starts the Rust thread pool, which then warns (and disables
        # itself) in every process forked afterwards, e.g. by a server's workers.
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > self.context_length:
                # Like open_clip: cut, then force the last slot back to EOT, because the
                # text tower pools the features at the EOT position.
                ids = ids[: self.context_length]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = ids
        return out


def find_bpe_vocab() -> Path:
    """Locate open_clip's BPE vocab without importing open_clip (which imports torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed; it provides " + BPE_VOCAB_FILE)
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BPE_VOCAB_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{BPE_VOCAB_FILE} not found in the open_clip package")


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2 style reversible byte -> printable character table: printable Latin-1
    # bytes map to themselves, the rest to code points from 256 upwards.
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def build_clip_tokenizer_json(out_path: Path, bpe_path: Path | None = None) -> dict[str, Any]:
    """Write a ``tokenizers`` JSON equivalent to open_clip's SimpleTokenizer.

    Returns the manifest ``tokenizer`` entry describing it.
    """
    bpe_path = bpe_path or find_bpe_vocab()
    with gzip.open(bpe_path, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    # Line 0 is a version header; open_clip uses exactly the next _NUM_MERGES lines.
    merges: list[tuple[str, str]] = []
    for line in lines[1 : _NUM_MERGES + 1]:
        left, right = line.split()
        merges.append((left, right))

    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + END_OF_WORD for s in symbols]
    vocab_list += [left + right for left, right in merges]
    vocab_list += [SOT_TOKEN, EOT_TOKEN]
    vocab = {token: i for i, token in enumerate(vocab_list)}
    if len(vocab) != len(vocab_list):
        raise ValueError(f"{bpe_path}: duplicate vocabulary entries")

    tok = Tokenizer(BPE(vocab=vocab, merges=merges, end_of_word_suffix=END_OF_WORD))
    # ClipTokenizer cleans text in Python first (see clean_text); this normaliser makes
    # the JSON usable on its own and is a no-op on already cleaned text.
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.NFC(),
            normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Strip(),
            normalizers.Lowercase(),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # Keep the regex matches and drop what lies between them (whitespace).
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="removed", invert=True),
            # Map each piece's UTF-8 bytes through the same table as open_clip.
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.add_special_tokens([SOT_TOKEN, EOT_TOKEN])

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_path))
    # Sanity-check that the saved file round-trips to the ids we expect.
    loaded = json.loads(out_path.read_text(encoding="utf-8"))
    if loaded["model"]["vocab"].get(EOT_TOKEN) != len(vocab_list) - 1:
        raise ValueError("tokenizer.json vocabulary does not match open_clip's layout")
    return {
        "file": out_path.name,
        "kind": "clip-bpe",
        "vocab_size": len(vocab_list),
        "pad_id": PAD_ID,
        "sot_id": vocab[SOT_TOKEN],
        "eot_id": vocab[EOT_TOKEN],
        "clean": "ftfy-or-nfc+html-unescape+whitespace+lower",
    }


class WordPieceTokenizer:
    """A BERT-family ``tokenizer.json`` (e.g. MiniLM's): [CLS] tokens [SEP], zero padding.

    The text tower derives its attention mask from ``input_ids != pad_id``, so the padded
    id rows are the whole input, exactly as for the CLIP tokenizer.
    """

    def __init__(self, tokenizer_json: Path, context_length: int, pad_id: int = 0) -> None:
        if context_length < 2:
            raise ValueError("context_length must leave room for [CLS] and [SEP]")
        self._tok = Tokenizer.from_file(str(tokenizer_json))
        # The shipped file pads/truncates to its own length; we do both to context_length.
        self._tok.no_padding()
        self._tok.no_truncation()
        self.context_length = context_length
        self.pad_id = pad_id
        sep = self._tok.token_to_id("[SEP]")
        if sep is None:
            raise ValueError(f"{tokenizer_json}: no [SEP] token")
        self.sep_id = int(sep)

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of strings, not one string")
        out = np.full((len(texts), self.context_length), self.pad_id, dtype=np.int64)
        for row, text in enumerate(texts):
            ids = list(self._tok.encode(text).ids)
            if len(ids) > self.context_length:
                # Keep [SEP] last, as the Hugging Face tokenizer's truncation does.
                ids = [*ids[: self.context_length - 1], self.sep_id]
            out[row, : len(ids)] = ids
        return out


TextTokenizer = ClipTokenizer | WordPieceTokenizer


def trim_padding(ids: np.ndarray, pad_id: int) -> np.ndarray:
    """``ids`` without the padding columns every row has at its end (at least two columns).

    For a text graph with a dynamic token axis: a 5-token query then costs 5 positions, not the
    context length. Exact for towers that mask padding (MiniLM's mean pooling) or never look
    past the end token (CLIP's causal attention).
    """
    used = np.flatnonzero((ids != pad_id).any(axis=0))
    width = max(2, int(used[-1]) + 1) if used.size else 2
    return np.ascontiguousarray(ids[:, :width])


def token_lengths(ids: np.ndarray, pad_id: int) -> np.ndarray:
    """Each row's length up to its last non-padding token (padding sits at the end)."""
    used = ids != pad_id
    last = ids.shape[1] - np.argmax(used[:, ::-1], axis=1)
    return np.where(used.any(axis=1), last, 0).astype(np.int64)


def length_groups(lengths: np.ndarray, max_batch: int, min_rows: int) -> list[np.ndarray]:
    """Row indices in batches of similar length, shortest first.

    A batch is padded to its longest text, so sorting by length first cuts the padded positions
    (product texts of 10-40 tokens padded to 40 waste about a third). A batch closes once it holds
    ``min_rows`` token positions, enough to keep the matmuls efficient, or ``max_batch`` texts;
    smaller batches would pay more per call than padding costs. The length sorting of
    translation decoders (Marian's maxi-batches: Junczys-Dowmunt et al., "Marian: Fast Neural
    Machine Translation in C++", ACL 2018).
    """
    order = np.argsort(lengths, kind="stable")
    groups: list[np.ndarray] = []
    start = 0
    for end in range(1, len(order) + 1):
        longest = max(int(lengths[order[end - 1]]), 1)
        if end - start >= max_batch or (end - start) * longest >= min_rows or end == len(order):
            groups.append(order[start:end])
            start = end
    return groups


def load_tokenizer(bundle_dir: Path, config: dict[str, Any], context_length: int) -> TextTokenizer:
    """The tokenizer a manifest's ``tokenizer`` entry describes."""
    kind = config.get("kind")
    if kind == "clip-bpe":
        return ClipTokenizer.from_config(bundle_dir, config, context_length)
    if kind == "wordpiece":
        return WordPieceTokenizer(
            Path(bundle_dir) / str(config.get("file", "tokenizer.json")),
            context_length,
            pad_id=int(config.get("pad_id", 0)),
        )
    raise ValueError(f"unsupported tokenizer kind {kind!r} (known: clip-bpe, wordpiece)")
