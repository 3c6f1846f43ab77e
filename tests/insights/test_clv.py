"""The CLV models against the CDNOW sample that the lifetimes wheel ships (its data only).

Published fits for these 2,357 customers (weeks): BG/NBD r=0.243, alpha=4.414, a=0.793,
b=2.426 (Fader, Hardie & Lee 2005); Gamma-Gamma p=6.25, q=3.74, v=15.44.
"""

from __future__ import annotations

import csv
import importlib.metadata

import numpy as np
import pytest

from insights import clv


def cdnow() -> dict[str, np.ndarray]:
    """Read the CSV from the installed lifetimes distribution's files (no import of lifetimes)."""
    files = importlib.metadata.files("lifetimes") or []
    wanted = "cdnow_customers_summary_with_transactions.csv"
    path = next(f for f in files if f.name == wanted).locate()
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {name: np.array([float(r[name]) for r in rows]) for name in ("x", "t_x", "T", "zbar")}


@pytest.fixture(scope="module")
def data():
    return cdnow()


def test_cdnow_sample_size(data):
    assert len(data["x"]) == 2357


def test_bgnbd_fit_matches_published_parameters(data):
    params = clv.bgnbd_fit(data["x"], data["t_x"], data["T"])
    assert params.r == pytest.approx(0.243, abs=0.001)
    assert params.alpha == pytest.approx(4.414, abs=0.001)
    assert params.a == pytest.approx(0.793, abs=0.001)
    assert params.b == pytest.approx(2.426, abs=0.001)


def test_bgnbd_fit_is_unit_free_except_alpha(data):
    """The same customers measured in days: r, a, b unchanged, alpha x 7."""
    params = clv.bgnbd_fit(data["x"], data["t_x"] * 7, data["T"] * 7)
    assert (round(params.r, 3), round(params.a, 3), round(params.b, 3)) == (0.243, 0.793, 2.426)
    assert params.alpha == pytest.approx(4.414 * 7, abs=0.01)


def test_gamma_gamma_fit_matches_published_parameters(data):
    repeat = data["x"] > 0
    params = clv.gamma_gamma_fit(data["x"][repeat], data["zbar"][repeat])
    assert params.p == pytest.approx(6.25, abs=0.01)
    assert params.q == pytest.approx(3.74, abs=0.01)
    assert params.v == pytest.approx(15.44, abs=0.02)


def test_predictions_for_known_customers():
    """Paper's worked example: x=2, t_x=30.43, T=38.86 weeks, 39 weeks ahead -> 1.226 purchases."""
    params = clv.BgNbdParams(r=0.242594, alpha=4.413594, a=0.792919, b=2.425945)
    expected = clv.bgnbd_expected_purchases(params, 39, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, abs=0.001)
    # Someone who never came back after the first purchase is alive for sure under BG/NBD.
    assert clv.bgnbd_probability_alive(params, [0], [0], [38.86])[0] == 1.0
    assert clv.bgnbd_probability_alive(params, [2], [30.43], [38.86])[0] == pytest.approx(
        0.7266, abs=0.001
    )


def test_fit_refuses_degenerate_data():
    with pytest.raises(clv.FitError, match="bought twice"):
        clv.bgnbd_fit([0, 0, 0], [0, 0, 0], [5, 6, 7])
    with pytest.raises(clv.FitError, match="three customers"):
        clv.bgnbd_fit([1], [2], [3])
