"""Insight fields for the segment builder's registry (discovered by segments.registry).

Keys: ``insight:<name>`` for the built-in insights (``insight:predicted_clv``,
``insight:rfm_group``...) and ``insight:custom:<key>`` for custom insights. Each condition is an
EXISTS over the profile's ProfileInsight row, so a profile without insights never matches a
positive condition. Only the registry imports this module.
"""

from __future__ import annotations

from insights.fields import INSIGHT_FIELDS, rfm_group_code
from insights.models import CustomInsight, key_validator

PREFIX = "insight:"
CUSTOM_PREFIX = "insight:custom:"
MODEL = "insights.ProfileInsight"


def register(registry) -> None:
    from segments.registry import Field, FieldFamily, FieldType, Target

    types = {
        "number": FieldType.NUMBER,
        "integer": FieldType.INTEGER,
        "datetime": FieldType.DATETIME,
        "string": FieldType.STRING,
    }
    for f in INSIGHT_FIELDS.values():
        registry.register_field(
            Field(
                key=PREFIX + f.key,
                label=f.label,
                type=types[f.type],
                target=Target(f.column, model=MODEL, blank_is_missing=f.type == "string"),
                group="Insights",
                suggest_values=f.key == "rfm_group",
                # "RFM group = At risk": the label a marketer types becomes the stored code.
                normalize=rfm_group_code if f.key == "rfm_group" else None,
            )
        )

    def custom_field(name: str):
        return Field(
            key=CUSTOM_PREFIX + name,
            label=f"Custom insight: {name}",
            type=FieldType.NUMBER,
            target=Target(f"custom__{name}", json=True, model=MODEL),
            group="Insights",
            suggest_values=False,
        )

    registry.register_family(
        FieldFamily(
            prefix=CUSTOM_PREFIX,
            label="Custom insight",
            group="Insights",
            name_pattern=key_validator.regex.pattern.strip("^$"),
            build=custom_field,
            list_names=lambda: list(
                CustomInsight.objects.filter(is_active=True).values_list("key", flat=True)
            ),
        )
    )
