"""Smart starting points: ready-made rule trees a marketer opens in the builder and adapts."""

from __future__ import annotations

from dataclasses import dataclass

ORDER = "Order Completed"


@dataclass(frozen=True)
class Starter:
    name: str
    description: str
    rules: dict


def _event(event: str, op: str, count: int, days: int | None) -> dict:
    return {
        "type": "event",
        "event": event,
        "frequency": {"op": op, "count": count},
        "window": {"type": "last_days", "days": days} if days else None,
        "where": [],
    }


def _and(*children) -> dict:
    return {"type": "group", "op": "and", "negate": False, "children": list(children)}


STARTERS: dict[str, Starter] = {
    "new_customers": Starter(
        "New customers",
        "Profiles first seen in the last 30 days who have ordered.",
        {
            "include": _and(
                {"type": "field", "field": "created_at", "operator": "within_last", "value": 30},
                _event(ORDER, "at_least", 1, None),
            )
        },
    ),
    "lapsed_buyers": Starter(
        "Lapsed buyers",
        "Ordered before, but not in the last 90 days.",
        {"include": _and(_event(ORDER, "at_least", 1, None), _event(ORDER, "at_most", 0, 90))},
    ),
    "frequent_buyers": Starter(
        "Frequent buyers",
        "Three or more orders in the last 180 days.",
        {"include": _and(_event(ORDER, "at_least", 3, 180))},
    ),
    "engaged_never_purchased": Starter(
        "Engaged but never purchased",
        "Viewed at least three products in the last 30 days and never ordered.",
        {
            "include": _and(
                _event("Product Viewed", "at_least", 3, 30), _event(ORDER, "at_most", 0, None)
            )
        },
    ),
}
