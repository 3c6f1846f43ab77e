"""The insight fields segments can name, and a selector that evaluates one condition.

One list serves both the segment registry (``insights/segment_fields.py``) and
``insight_condition_profile_ids``, the registry-independent way to turn "predicted CLV > 500"
into a queryset of profile ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db.models import Q, QuerySet

from insights.models import CustomInsight, ProfileInsight, RfmGroup

CUSTOM_PREFIX = "custom:"


@dataclass(frozen=True)
class InsightField:
    key: str  # what a segment rule names
    label: str
    column: str  # ProfileInsight column, or custom__<key>
    type: str  # number | integer | datetime | string
    json: bool = False


INSIGHT_FIELDS: dict[str, InsightField] = {
    f.key: f
    for f in [
        InsightField("order_count", "Orders", "order_count", "integer"),
        InsightField("revenue", "Revenue (historical CLV)", "revenue", "number"),
        InsightField("average_order_value", "Average order value", "average_order_value", "number"),
        InsightField("first_order_at", "First order", "first_order_at", "datetime"),
        InsightField("last_order_at", "Last order", "last_order_at", "datetime"),
        InsightField(
            "days_since_last_order", "Days since last order", "days_since_last_order", "integer"
        ),
        InsightField("recency_score", "RFM recency score", "recency_score", "integer"),
        InsightField("frequency_score", "RFM frequency score", "frequency_score", "integer"),
        InsightField("monetary_score", "RFM monetary score", "monetary_score", "integer"),
        InsightField("rfm_group", "RFM group", "rfm_group", "string"),
        InsightField("engagement_score", "Engagement score (0-100)", "engagement_score", "integer"),
        InsightField("predicted_clv", "Predicted CLV (365 days)", "predicted_clv", "number"),
        InsightField(
            "probability_alive", "Probability still active", "probability_alive", "number"
        ),
        InsightField(
            "predicted_purchases_365d",
            "Predicted purchases (365 days)",
            "predicted_purchases_365d",
            "number",
        ),
    ]
}
RFM_GROUP_LABELS = {label.lower(): value for value, label in RfmGroup.choices}


def rfm_group_code(value: str) -> str:
    """An RFM group named by its label ("At risk", any case) or its code ("at_risk")."""
    return RFM_GROUP_LABELS.get(value.strip().lower(), value.strip())


class ConditionError(ValueError):
    """A condition naming an unknown field or operator, or a value of the wrong type."""


def insight_field(key: str) -> InsightField:
    if key in INSIGHT_FIELDS:
        return INSIGHT_FIELDS[key]
    if key.startswith(CUSTOM_PREFIX):
        name = key[len(CUSTOM_PREFIX) :]
        if CustomInsight.objects.filter(key=name).exists():
            return InsightField(key, name, f"custom__{name}", "number", json=True)
    raise ConditionError(f"{key!r} is not an insight field")


OPERATORS = {
    "equals": "exact",
    "greater": "gt",
    "greater_or_equal": "gte",
    "less": "lt",
    "less_or_equal": "lte",
    "in": "in",
}


def _coerce(field: InsightField, value):
    if field.key == "rfm_group" and isinstance(value, str):
        return rfm_group_code(value)
    if field.type in ("number", "integer"):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ConditionError(f"{field.label}: {value!r} is not a number") from None
        return float(number) if field.json else number
    return value


def insight_condition_profile_ids(*, key: str, operator: str, value=None) -> QuerySet:
    """Profile ids whose insight satisfies ``<key> <operator> <value>``.

    Operators: equals, not_equals, greater, greater_or_equal, less, less_or_equal, in,
    is_set, is_not_set. A profile without an insight row or value matches only not_equals
    and is_not_set (missing is not equal to anything). RFM groups may be named by label.
    """
    field = insight_field(key)
    rows = ProfileInsight.objects.all()
    present = Q(**{f"{field.column}__isnull": False})
    if field.json:
        present &= ~Q(**{field.column: None})
    if field.type == "string":
        present &= ~Q(**{field.column: ""})
    if operator == "is_set":
        return rows.filter(present).values("profile_id")
    if operator in ("is_not_set", "not_equals"):
        from profiles.models import Profile

        matching = (
            rows.filter(present)
            if operator == "is_not_set"
            else rows.filter(present, **{field.column: _coerce(field, value)})
        )
        return Profile.objects.exclude(pk__in=matching.values("profile_id")).values("pk")
    if operator not in OPERATORS:
        raise ConditionError(f"{operator!r} is not an operator")
    value = [_coerce(field, v) for v in value] if operator == "in" else _coerce(field, value)
    lookup = f"{field.column}__{OPERATORS[operator]}"
    return rows.filter(present, **{lookup: value}).values("profile_id")
