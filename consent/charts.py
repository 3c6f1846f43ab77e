"""Plotly figures for the privacy dashboard: pure functions from counts to figure dicts."""

from __future__ import annotations

from consent.models import Regime, RequestType


def open_requests_figure(by_type_regime: list[dict]) -> dict:
    """Stacked bars: open requests per type, one trace per regime (zeros included)."""
    counts = {(row["type"], row["regime"]): row["n"] for row in by_type_regime}
    labels = [label for _value, label in RequestType.choices]
    data = [
        {
            "type": "bar",
            "name": regime_label,
            "x": labels,
            "y": [
                counts.get((type_value, regime_value), 0) for type_value, _ in RequestType.choices
            ],
        }
        for regime_value, regime_label in Regime.choices
    ]
    layout = {
        "barmode": "stack",
        "title": {"text": "Open requests by type and regime"},
        "yaxis": {"title": {"text": "Open requests"}, "rangemode": "tozero", "dtick": 1},
        "margin": {"t": 40, "r": 10, "b": 80, "l": 50},
        "height": 320,
    }
    return {"data": data, "layout": layout}
