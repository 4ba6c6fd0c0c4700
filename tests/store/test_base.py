"""The backend-neutral store options (app/store/base.py)."""

import pytest

from app.store import HnswOptions


def test_the_beam_widens_and_acorn_stops_at_the_large_size() -> None:
    hnsw = HnswOptions(ef=40, ef_large=90, large_from=1_000, acorn_max_selectivity=0.3)
    assert [hnsw.beam(n) for n in (0, 999, 1_000, 10**6)] == [40, 40, 90, 90]
    assert [hnsw.acorn(n) for n in (0, 999, 1_000, 10**6)] == [0.3, 0.3, None, None]
    assert HnswOptions(acorn_max_selectivity=0.0).acorn(10) is None
    fixed = hnsw.fixed_beam(64)
    assert (fixed.beam(10), fixed.beam(10**6)) == (64, 64)
    assert fixed.acorn(10) == 0.3  # only the beam is fixed


def test_a_filter_is_scanned_while_its_matches_fit_the_threshold() -> None:
    hnsw = HnswOptions(full_scan_kb=3)  # 3,072 bytes
    assert [hnsw.scans(n, 384) for n in (0, 2, 3)] == [True, True, False]  # 1,536 bytes each
    assert [hnsw.scans(n, 640) for n in (1, 2)] == [True, False]  # 2,560 bytes each


@pytest.mark.parametrize(
    "bad",
    [{"m": 2}, {"ef_large": 0}, {"large_from": -1}, {"acorn_max_selectivity": 1.5}],
)
def test_options_out_of_range_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="HNSW options"):
        HnswOptions(**bad)  # type: ignore[arg-type]
