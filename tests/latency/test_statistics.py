"""Median/spread summaries and Spearman's rank correlation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archstat.latency.statistics import ranks, spearman, spread


def test_spread_of_known_values() -> None:
    # 1, 2, 3, 4, 100: median 3; quartiles (linear interpolation at positions 1 and 3) 2 and 4
    s = spread([4, 1, 100, 3, 2])
    assert (s.median, s.p25, s.p75, s.iqr, s.min, s.max, s.n) == (3, 2, 4, 2, 1, 100, 5)
    assert s.mean == 22 and s.std == pytest.approx(43.6177, abs=1e-4)  # sqrt(sum((x-22)^2)/4)


def test_spread_needs_values() -> None:
    with pytest.raises(ValueError, match="no measurements"):
        spread([])


def test_ranks_share_ties() -> None:
    # 10 is smallest (1); the two 20s share ranks 2 and 3 -> 2.5; 30 is 4
    assert list(ranks([20, 10, 30, 20])) == [2.5, 1.0, 4.0, 2.5]


def test_spearman_by_hand() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x = 1,2,3,4,5, y = 2,1,4,3,5: d^2 = 1+1+1+1+0 = 4; rho = 1 - 6*4/(5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1, 2], [1, 2]))
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


@settings(max_examples=100, deadline=None)
# Integers, so that the transforms keep every tie and every order exactly (nearly equal floats
# such as 0.01 and 0.010000000000000002 can collide under log).
@given(st.lists(st.tuples(st.integers(1, 10_000), st.integers(1, 10_000)), min_size=3, max_size=30,
                unique_by=lambda t: t[0]))
def test_spearman_ignores_monotone_transforms(pairs) -> None:
    x, y = zip(*pairs)
    rho = spearman(x, y)
    if not math.isnan(rho):
        assert spearman([v ** 3 for v in x], [math.log(v) for v in y]) == pytest.approx(rho, abs=1e-9)
        assert -1 - 1e-12 <= rho <= 1 + 1e-12
