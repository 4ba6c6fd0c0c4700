"""HitFieldMap against a dict (the oracle) under random writes, folds included."""

from __future__ import annotations

import random
import uuid

import pytest

from app.store import hit_map as hit_map_module
from app.store.hit_map import COMPACT_FROM, HitFieldMap, PlainHitMap, Values, hit_map, uuid_int


def _values(rng: random.Random) -> Values:
    return (f"p{rng.randrange(10**6)}", f"{rng.randrange(10**5)}.jpg", f"cat/{rng.randrange(7)}")


def _ids(rng: random.Random, n: int) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]


def test_lookups_match_a_dict_through_writes_and_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hit_map_module, "FOLD_AT", 40)  # fold often
    rng = random.Random(7)
    ids = [*_ids(rng, 400), "17", "not-a-uuid", "é"]  # ids in other forms too
    oracle = {pid: _values(rng) for pid in ids[:300]}
    m = HitFieldMap(oracle.items())
    folds = 0
    packed = m._packed
    for step in range(2_000):
        pid = rng.choice(ids)
        if rng.random() < 0.3:
            m.delete(pid)
            oracle.pop(pid, None)
        else:
            oracle[pid] = _values(rng)
            m.set(pid, oracle[pid])
        folds += m._packed is not packed
        packed = m._packed
        if step % 97 == 0:
            assert m.get_many(ids) == [oracle.get(pid) for pid in ids]
            assert len(m) == len(oracle)
    assert folds > 5  # the arrays were rebuilt many times on the way
    assert m.get_many(ids) == [oracle.get(pid) for pid in ids]
    assert m.get_many([]) == []


def test_ids_sharing_their_first_64_bits_are_told_apart() -> None:
    base = uuid.UUID("12345678-1234-4234-8234-000000000000").int
    ids = [str(uuid.UUID(int=base + i)) for i in (5, 1, 9, 3)]
    m = HitFieldMap((pid, (f"p{i}", f"{i}.jpg", "c")) for i, pid in enumerate(ids))
    assert m.get_many(ids) == [(f"p{i}", f"{i}.jpg", "c") for i in range(4)]
    assert m.get(str(uuid.UUID(int=base + 2))) is None  # between two of them
    assert m.get(str(uuid.UUID(int=base + 10))) is None  # past the last


def test_uuid_form_is_recognised_and_nothing_else() -> None:
    u = uuid.uuid4()
    assert uuid_int(str(u)) == u.int
    assert uuid_int(str(u).upper()) == u.int
    assert uuid_int(u.hex) is None  # no hyphens: not the engine's form, kept as a string
    assert uuid_int("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz") is None
    # Ids of UUID shape that are not hex (spaces included, which fromhex would skip).
    m = HitFieldMap([(str(u), ("p", "i.jpg", "c"))])
    odd = ["zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", str(u)[:9] + " " + str(u)[10:]]
    assert m.get_many([*odd, str(u)]) == [None, None, ("p", "i.jpg", "c")]
    assert HitFieldMap([]).get(str(u)) is None


def test_small_stores_get_the_dict_and_large_ones_the_compact_map() -> None:
    rows = [(str(uuid.uuid4()), ("p", "i.jpg", "c"))]
    assert isinstance(hit_map(rows, COMPACT_FROM - 1), PlainHitMap)
    assert isinstance(hit_map(rows, COMPACT_FROM), HitFieldMap)
    plain = PlainHitMap(rows)
    plain.set("x", ("q", "j.jpg", "c"))
    plain.delete(rows[0][0])
    assert plain.get_many([rows[0][0], "x"]) == [None, ("q", "j.jpg", "c")] and len(plain) == 1
