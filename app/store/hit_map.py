"""Point id -> the fields a leg's hit carries (product id, image file, category path), held in
memory so that legs never ask the engine for payloads (``EdgeStore``'s hot path).

A dict of Python strings takes about 300 bytes a point: 300 MB of a 1M-product server's memory
(tracemalloc, ids included). ``HitFieldMap`` keeps about 70 (70 MB at 1M): point ids (UUIDs)
as two sorted uint64 arrays, product ids and image names in one string each with offsets,
category paths as codes into a list of the distinct paths. The price: a lookup of 100 hits
takes about 0.1 ms where the dict takes 5 us (104 against 5.3 us, measured), so only stores of
``COMPACT_FROM`` points or more use it. Writes made after its arrays were packed go to a dict
that lookups read first; it is folded into the arrays once it grows past a quarter of them
(or ``FOLD_AT``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

Values = tuple[str, str, str]  # product_id, image_file, category_path
MASK = (1 << 64) - 1
FOLD_AT = 50_000  # entries the write dict may hold (or a quarter of the arrays) before a fold
# Stores this large get the compact map. Below, the dict's speed wins: on the dev catalog the
# compact map cost 6-8 % of 8-client queries/s (two rounds, old and new code alternating),
# and its ~230 MB saving per 1M points matters only where memory is the limit.
COMPACT_FROM = 250_000


def uuid_int(pid: str) -> int | None:
    """The 128-bit number of a point id in UUID form; None for any other id."""
    if len(pid) != 36 or not pid[8] == pid[13] == pid[18] == pid[23] == "-":
        return None
    try:
        return int(pid.replace("-", ""), 16)
    except ValueError:
        return None


@dataclass(frozen=True)
class _Packed:
    """One consistent state: arrays plus the writes made since they were packed. A fold makes
    a new one and swaps it in whole, so a reader never sees half of one."""

    hi: np.ndarray  # uint64 first half of each UUID, sorted by (hi, lo)
    lo: np.ndarray  # uint64 second half
    row: np.ndarray  # int64: where the sorted id's values are (rows keep the order they came in)
    codes: np.ndarray  # int32 per row: index into paths
    # Every row's product id, one after another, as one str: slicing it gives the str at once
    # (ids and file names are ASCII, one byte a character, in practice).
    products: str
    product_at: np.ndarray  # int64 offsets per row, n + 1 of them
    images: str
    image_at: np.ndarray
    paths: list[str]
    # point id -> values written since the arrays were packed; None: deleted since
    extra: dict[str, Values | None] = field(default_factory=dict)

    def values(self, rows: list[int]) -> list[Values]:
        at = np.asarray(rows, np.int64)
        p0, p1 = self.product_at[at].tolist(), self.product_at[at + 1].tolist()
        i0, i1 = self.image_at[at].tolist(), self.image_at[at + 1].tolist()
        codes = self.codes[at].tolist()
        products, images, paths = self.products, self.images, self.paths
        return [
            (products[a:b], images[c:d], paths[e])
            for a, b, c, d, e in zip(p0, p1, i0, i1, codes, strict=True)
        ]


PACK_CHUNK = 65_536  # rows turned into arrays at a time: the build's Python objects stay few


def _pack(rows: Iterable[tuple[int, str, str, str]], extra: dict[str, Values | None]) -> _Packed:
    """Arrays of ``rows`` (UUID number, product id, image file, category path)."""
    his: list[np.ndarray] = []
    los: list[np.ndarray] = []
    code_parts: list[np.ndarray] = []
    product_parts: list[str] = []
    image_parts: list[str] = []
    product_lens: list[np.ndarray] = []
    image_lens: list[np.ndarray] = []
    paths: dict[str, int] = {}
    it = iter(rows)
    while chunk := list(islice(it, PACK_CHUNK)):
        n = len(chunk)
        his.append(np.fromiter((r[0] >> 64 for r in chunk), np.uint64, n))
        los.append(np.fromiter((r[0] & MASK for r in chunk), np.uint64, n))
        product_parts.append("".join(r[1] for r in chunk))
        product_lens.append(np.fromiter((len(r[1]) for r in chunk), np.int64, n))
        image_parts.append("".join(r[2] for r in chunk))
        image_lens.append(np.fromiter((len(r[2]) for r in chunk), np.int64, n))
        code_parts.append(
            np.fromiter((paths.setdefault(r[3], len(paths)) for r in chunk), np.int32, n)
        )

    def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype)

    def offsets(lens: list[np.ndarray]) -> np.ndarray:
        sizes = joined(lens, np.int64)
        at = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=at[1:])
        return at

    hi, lo = joined(his, np.uint64), joined(los, np.uint64)
    order = np.lexsort((lo, hi))
    return _Packed(
        hi=hi[order],
        lo=lo[order],
        row=order.astype(np.int64),
        codes=joined(code_parts, np.int32),
        products="".join(product_parts),
        product_at=offsets(product_lens),
        images="".join(image_parts),
        image_at=offsets(image_lens),
        paths=list(paths),
        extra=extra,
    )


def _halves(pids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Each id's UUID as two uint64 halves, and whether it is a UUID at all."""
    n = len(pids)
    joined = "".join(pids)
    dashes = "-" * n
    # The usual case, every id a UUID in its 36-character form, in a few C-level steps.
    if (
        set(map(len, pids)) == {36}
        and joined[8::36] == joined[13::36] == joined[18::36] == joined[23::36] == dashes
    ):
        digits = joined.replace("-", "")
        if len(digits) == 32 * n:  # no hyphen anywhere else
            try:
                raw = bytes.fromhex(digits)
            except ValueError:  # not hex: look at each id below
                raw = b""
            if len(raw) == 16 * n:  # (fromhex skips whitespace: then it is short)
                halves = np.frombuffer(raw, ">u8").astype(np.uint64)
                return halves[0::2], halves[1::2], [True] * n
    keys = [uuid_int(p) for p in pids]
    ok = [k is not None for k in keys]
    nums = [k if k is not None else 0 for k in keys]
    hi = np.fromiter((k >> 64 for k in nums), np.uint64, len(nums))
    lo = np.fromiter((k & MASK for k in nums), np.uint64, len(nums))
    return hi, lo, ok


def _locate(packed: _Packed, pids: Sequence[str]) -> list[int | None]:
    """Each id's row in ``packed``'s arrays, or None."""
    n = len(packed.hi)
    if not pids or n == 0:
        return [None] * len(pids)
    hi, lo, ok = _halves(pids)
    at = np.minimum(np.searchsorted(packed.hi, hi), n - 1)
    same_hi = packed.hi[at] == hi
    found = same_hi & (packed.lo[at] == lo)
    rows = packed.row[at].tolist()
    out: list[int | None] = [
        r if f and u else None for r, f, u in zip(rows, found.tolist(), ok, strict=True)
    ]
    for i in np.flatnonzero(same_hi & ~found).tolist():  # two ids share 64 bits: walk on
        p = int(at[i]) + 1
        while ok[i] and p < n and packed.hi[p] == hi[i]:
            if packed.lo[p] == lo[i]:
                out[i] = int(packed.row[p])
                break
            p += 1
    return out


class HitFieldMap:
    """Compact ``point id -> (product_id, image_file, category_path)``.

    Reads may run in any number of threads while one thread writes (the store's writer, under
    its lock): every read takes one ``_Packed`` and reads only it.
    """

    def __init__(self, rows: Iterable[tuple[str, Values]]) -> None:
        extra: dict[str, Values | None] = {}

        def packable() -> Iterable[tuple[int, str, str, str]]:
            for pid, (product, image, path) in rows:
                key = uuid_int(pid)
                if key is None:  # not a UUID: kept as it is
                    extra[pid] = (product, image, path)
                else:
                    yield key, product, image, path

        self._packed = _pack(packable(), extra)

    def get_many(self, pids: Sequence[str]) -> list[Values | None]:
        """Each id's values, or None for an id the map does not hold."""
        packed = self._packed
        out: list[Values | None] = [None] * len(pids)
        ask: list[int] = []  # places in pids of ids to look up in the arrays
        if not packed.extra:  # no write since the arrays were packed (the usual case)
            ask = list(range(len(pids)))
        for i, pid in enumerate(pids if packed.extra else ()):
            if pid in packed.extra:
                out[i] = packed.extra[pid]
            else:
                ask.append(i)
        rows = _locate(packed, [pids[i] for i in ask])
        held = [(i, row) for i, row in zip(ask, rows, strict=True) if row is not None]
        for (i, _), values in zip(held, packed.values([r for _, r in held]), strict=True):
            out[i] = values
        return out

    def get(self, pid: str) -> Values | None:
        return self.get_many([pid])[0]

    def set(self, pid: str, values: Values) -> None:
        self._packed.extra[pid] = values
        self._maybe_fold()

    def delete(self, pid: str) -> None:
        self._packed.extra[pid] = None
        self._maybe_fold()

    def __len__(self) -> int:
        packed = self._packed
        ids = list(packed.extra)
        in_arrays = dict(zip(ids, _locate(packed, ids), strict=True))
        n = len(packed.hi)
        for pid, values in packed.extra.items():
            held = in_arrays.get(pid) is not None
            n += (values is not None) - held
        return n

    def _maybe_fold(self) -> None:
        packed = self._packed
        if len(packed.extra) <= max(FOLD_AT, len(packed.hi) // 4):
            return
        keyed = {pid: uuid_int(pid) for pid in packed.extra}
        numbered = [(pid, k) for pid, k in keyed.items() if k is not None]
        stale = {r for r in _locate(packed, [pid for pid, _ in numbered]) if r is not None}

        def rows() -> Iterable[tuple[int, str, str, str]]:
            # Python lists: a fold walks every row, and numpy scalars are slow one at a time.
            keys = zip(packed.hi.tolist(), packed.lo.tolist(), packed.row.tolist(), strict=True)
            codes = packed.codes.tolist()
            pa, ia = packed.product_at.tolist(), packed.image_at.tolist()
            for hi, lo, row in keys:
                if row in stale:
                    continue
                product = packed.products[pa[row] : pa[row + 1]]
                image = packed.images[ia[row] : ia[row + 1]]
                yield (hi << 64) | lo, product, image, packed.paths[codes[row]]
            for pid, key in numbered:
                values = packed.extra[pid]
                if values is not None:
                    yield key, values[0], values[1], values[2]

        left = {pid: v for pid, v in packed.extra.items() if keyed[pid] is None}
        self._packed = _pack(rows(), left)


class PlainHitMap:
    """``HitFieldMap``'s interface over a dict: ~20x faster lookups, ~300 bytes a point."""

    def __init__(self, rows: Iterable[tuple[str, Values]]) -> None:
        self._map = {pid: _shared(values) for pid, values in rows}

    def get_many(self, pids: Sequence[str]) -> list[Values | None]:
        found = self._map
        return [found.get(pid) for pid in pids]

    def get(self, pid: str) -> Values | None:
        return self._map.get(pid)

    def set(self, pid: str, values: Values) -> None:
        self._map[pid] = _shared(values)

    def delete(self, pid: str) -> None:
        self._map.pop(pid, None)

    def __len__(self) -> int:
        return len(self._map)


def _shared(values: Values) -> Values:
    # Category paths repeat across the catalog: one string each, not one per point.
    return values[0], values[1], sys.intern(values[2])


HitMap = HitFieldMap | PlainHitMap


def hit_map(rows: Iterable[tuple[str, Values]], points: int) -> HitMap:
    """The map for a store of ``points`` points: compact from ``COMPACT_FROM`` on."""
    return HitFieldMap(rows) if points >= COMPACT_FROM else PlainHitMap(rows)
