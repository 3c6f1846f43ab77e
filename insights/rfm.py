"""RFM scoring: quintile cut points, scores 1-5 and named groups. Pure functions, no ORM.

Scores are quintiles of the customers who have at least one order. For n such customers sorted
ascending, cut point k (k = 1..4) is the value at position ceil(k * n / 5) (1-based); a value's
score is 1 + the number of cut points it is strictly greater than. Equal values always get the
same score (ties are never split arbitrarily), so with many one-order customers the frequency
scores bunch up: every one-order customer gets the same, lowest, frequency score.
Recency is scored on the date of the last order (later is better), frequency on the number of
orders, monetary on revenue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# (recency scores, frequency scores, group): the recency x frequency grid of docs/insights.md.
GROUP_RULES: list[tuple[frozenset[int], frozenset[int], str]] = [
    (frozenset({5}), frozenset({4, 5}), "champions"),
    (frozenset({3, 4}), frozenset({4, 5}), "loyal"),
    (frozenset({4, 5}), frozenset({2, 3}), "potential_loyalists"),
    (frozenset({5}), frozenset({1}), "new"),
    (frozenset({4}), frozenset({1}), "promising"),
    (frozenset({3}), frozenset({3}), "need_attention"),
    (frozenset({3}), frozenset({1, 2}), "about_to_sleep"),
    (frozenset({1, 2}), frozenset({3, 4}), "at_risk"),
    (frozenset({1, 2}), frozenset({5}), "cannot_lose"),
    (frozenset({1}), frozenset({1}), "lost"),
    (frozenset({1, 2}), frozenset({1, 2}), "hibernating"),
]


def quintile_positions(n: int) -> list[int]:
    """0-based positions of the four cut points among n sorted values."""
    return [max(0, math.ceil(k * n / 5) - 1) for k in range(1, 5)]


def quintile_cuts(sorted_values: Sequence) -> list:
    """The four cut points of values sorted ascending (empty when there are none)."""
    if not sorted_values:
        return []
    return [sorted_values[i] for i in quintile_positions(len(sorted_values))]


def score(value, cuts: Sequence) -> int | None:
    """1..5: one plus the number of cut points the value is greater than."""
    if value is None or not cuts:
        return None
    return 1 + sum(1 for cut in cuts if value > cut)


def rfm_group(recency: int | None, frequency: int | None) -> str:
    """The named group for a recency and frequency score ("" without scores)."""
    if recency is None or frequency is None:
        return ""
    for recencies, frequencies, group in GROUP_RULES:
        if recency in recencies and frequency in frequencies:
            return group
    return ""
