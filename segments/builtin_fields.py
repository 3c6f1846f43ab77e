"""The registry entries segments ships with: profile attributes, custom traits, behaviour
(events) and membership of other segments. Other apps add theirs in ``<app>/segment_fields.py``.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from django.db.models import Exists, Func, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.lookups import Exact, GreaterThanOrEqual, LessThanOrEqual

from profiles.constants import CANONICAL_ATTRIBUTES, TRAIT_PREFIX, AttributeType
from segments.compiler import (
    PERIODS,
    CompileContext,
    Problems,
    RuleError,
    _describe,
    bounded_number,
    coerce_days,
    coerce_value,
    parse_number,
    period_dates,
    rules_compile,
)
from segments.registry import (
    ConditionKind,
    Field,
    FieldFamily,
    FieldType,
    Registry,
    Target,
    json_present,
)

PROFILE_COLUMNS = ("first_name", "last_name", "email", "phone", "city", "country")
TYPES = {
    AttributeType.STRING: FieldType.STRING,
    AttributeType.EMAIL: FieldType.STRING,
    AttributeType.PHONE: FieldType.STRING,
    AttributeType.COUNTRY: FieldType.STRING,
    AttributeType.DATE: FieldType.DATE,
    AttributeType.NUMBER: FieldType.NUMBER,
    AttributeType.INTEGER: FieldType.INTEGER,
    AttributeType.BOOLEAN: FieldType.BOOLEAN,
}
NORMALIZERS = {AttributeType.EMAIL: str.lower, AttributeType.COUNTRY: str.upper}
TRAIT_NAME = r"[A-Za-z0-9_]{1,100}"
PROPERTY_NAME = re.compile(r"[A-Za-z0-9_$-]{1,100}(\.[A-Za-z0-9_$-]{1,100}){0,4}")


def profile_fields() -> list[Field]:
    fields = []
    for attribute in CANONICAL_ATTRIBUTES.values():
        if attribute.name in PROFILE_COLUMNS:
            target = Target(attribute.name, blank_is_missing=True)
        else:
            target = Target(f"attributes__{attribute.name}", json=True)
        fields.append(
            Field(
                key=attribute.name,
                label=attribute.label,
                type=TYPES[attribute.type],
                target=target,
                normalize=NORMALIZERS.get(attribute.type),
                suggest_values=attribute.type not in (AttributeType.EMAIL, AttributeType.PHONE),
            )
        )
    fields.append(
        Field(
            key="created_at",
            label="Profile created",
            type=FieldType.DATETIME,
            target=Target("created_at"),
            suggest_values=False,
        )
    )
    return fields


def trait_field(name: str) -> Field:
    """A custom trait: true when any of the profile's source records has it (see docs)."""
    return Field(
        key=f"{TRAIT_PREFIX}{name}",
        label=name.replace("_", " ").capitalize(),
        type=FieldType.STRING,
        target=Target(f"traits__{name}", json=True, model="profiles.SourceRecord"),
        group="Custom traits",
    )


def trait_names() -> list[str]:
    from segments.selectors import trait_names_known

    return trait_names_known()


# --- behaviour --------------------------------------------------------------------------

FREQUENCY = {"at_least": "at least", "at_most": "at most", "exactly": "exactly"}
PROPERTY_OPERATORS = {
    "equals": "=",
    "not_equals": "≠",
    "greater": ">",
    "greater_or_equal": "≥",
    "less": "<",
    "less_or_equal": "≤",
    "contains": "contains",
    "is_set": "is set",
    "is_not_set": "is not set",
}
PROPERTY_LOOKUPS = {
    "equals": "exact",
    "not_equals": "exact",
    "greater": "gt",
    "greater_or_equal": "gte",
    "less": "lt",
    "less_or_equal": "lte",
    "contains": "icontains",
}


def _number_or_text(value: Any) -> Any:
    """Numeric text as its number (a whole number stays exact), other text trimmed."""
    if isinstance(value, str):
        number = parse_number(value)
        return value.strip() if number is None else number
    return value


class EventKind(ConditionKind):
    """Behaviour: an event performed at least / at most / exactly N times, in a window,
    with optional property filters. Events retried with the same messageId are stored once."""

    def default(self) -> dict:
        return {
            "type": "event",
            "event": "",
            "frequency": {"op": "at_least", "count": 1},
            "window": {"type": "last_days", "days": 30},
            "where": [],
        }

    def validate(self, node: dict, path: str, problems: Problems, registry: Registry):
        ok = True
        name = node.get("event")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            problems.add(path, 'Name the event (e.g. "Order Completed").')
            ok = False
        frequency = node.get("frequency") or {"op": "at_least", "count": 1}
        op = frequency.get("op") if isinstance(frequency, dict) else None
        count, error = coerce_value(
            frequency.get("count", 1) if isinstance(frequency, dict) else None,
            FieldType.INTEGER,
            "the number of times",
        )
        if op not in FREQUENCY:
            problems.add(
                path, f"{_describe(op)} is not a frequency; use at_least, at_most or exactly."
            )
            ok = False
        elif error or not 0 <= count <= 1_000_000:
            problems.add(path, error or "The number of times must be between 0 and 1000000.")
            ok = False
        elif op == "at_least" and count < 1:
            problems.add(path, "'at least 0 times' is always true; use at least 1.")
            ok = False
        window = self._window(node.get("window"), path, problems)
        if window is False:
            ok = False
        where = []
        filters = node.get("where") or []
        if not isinstance(filters, list) or len(filters) > 10:
            problems.add(path, "where must be a list of at most 10 property filters.")
            return None
        for index, item in enumerate(filters):
            clean = self._property(item, f"{path}.where.{index}", problems)
            if clean is None:
                ok = False
            else:
                where.append(clean)
        if not ok:
            return None
        return {
            "type": "event",
            "event": name.strip(),
            "frequency": {"op": op, "count": count},
            "window": window,
            "where": where,
        }

    def _window(self, window: Any, path: str, problems: Problems):
        if window in (None, {}, "") or (isinstance(window, dict) and not window.get("type")):
            return None
        kind = window.get("type") if isinstance(window, dict) else None
        if kind == "last_days":
            days, error = coerce_days(window.get("days"), "the time window")
            if error:
                problems.add(path, error)
                return False
            return {"type": "last_days", "days": days}
        if kind == "between":
            first, error = coerce_value(window.get("from"), FieldType.DATE, "the window start")
            last, error2 = coerce_value(window.get("to"), FieldType.DATE, "the window end")
            if error or error2:
                problems.add(path, error or error2)
                return False
            if first > last:
                problems.add(path, "The window must not end before it starts.")
                return False
            return {"type": "between", "from": first.isoformat(), "to": last.isoformat()}
        if kind == "period":
            if window.get("period") not in PERIODS:
                problems.add(path, f"{_describe(window.get('period'))} is not a calendar period.")
                return False
            return {"type": "period", "period": window["period"]}
        problems.add(path, f"{_describe(kind)} is not a window; use last_days, between or period.")
        return False

    def _property(self, item: Any, path: str, problems: Problems):
        if not isinstance(item, dict):
            problems.add(path, "A property filter is an object {property, operator, value}.")
            return None
        prop = item.get("property")
        if not isinstance(prop, str) or not PROPERTY_NAME.fullmatch(prop):
            problems.add(path, f"{_describe(prop)} is not a property name (letters, digits, _ .).")
            return None
        op = item.get("operator")
        if op not in PROPERTY_OPERATORS:
            problems.add(
                path,
                f"Unknown operator {_describe(op)} for an event property; "
                f"use one of: {', '.join(PROPERTY_OPERATORS)}.",
            )
            return None
        if op in ("is_set", "is_not_set"):
            return {"property": prop, "operator": op}
        value = _number_or_text(item.get("value"))
        if isinstance(value, int | float) and not isinstance(value, bool):
            if parse_number(value) is None:  # infinite (1e400 in the JSON)
                problems.add(path, f"{_describe(item.get('value'))} is not a number (for {prop}).")
                return None
            value, error = bounded_number(
                value, item.get("value"), prop, whole=isinstance(value, int)
            )
            if error:
                problems.add(path, error)
                return None
        if op in ("greater", "greater_or_equal", "less", "less_or_equal"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.add(path, f"{_describe(item.get('value'))} is not a number (for {prop}).")
                return None
        elif isinstance(value, str):
            if not value:
                problems.add(path, f"A value is needed for {prop}.")
                return None
        elif not isinstance(value, int | float | bool):
            problems.add(path, f"{_describe(value)} is not text, a number or yes/no (for {prop}).")
            return None
        return {"property": prop, "operator": op, "value": value}

    def events(self, node: dict, ctx: CompileContext):
        """The profile's matching events (correlated to the outer profile)."""
        from profiles.models import Event

        rows = Event.objects.filter(profile=OuterRef("pk"), name=node["event"])
        window = node.get("window")
        if window and window["type"] == "last_days":
            rows = rows.filter(timestamp__gte=ctx.now - timedelta(days=window["days"]))
        elif window and window["type"] == "between":
            first = date.fromisoformat(window["from"])
            last = date.fromisoformat(window["to"])
            rows = rows.filter(
                timestamp__gte=ctx.day_start(first),
                timestamp__lt=ctx.day_start(last + timedelta(days=1)),
            )
        elif window and window["type"] == "period":
            first, following = period_dates(window["period"], ctx.today())
            rows = rows.filter(
                timestamp__gte=ctx.day_start(first), timestamp__lt=ctx.day_start(following)
            )
        for item in node["where"]:
            path = "properties__" + "__".join(item["property"].split("."))
            present = json_present(path)
            op = item["operator"]
            if op == "is_set":
                rows = rows.filter(present)
            elif op == "is_not_set":
                rows = rows.exclude(present)
            else:
                positive = present & Q(**{f"{path}__{PROPERTY_LOOKUPS[op]}": item["value"]})
                rows = rows.filter(~positive if op == "not_equals" else positive)
        return rows.order_by()

    def compile(self, node: dict, ctx: CompileContext) -> Q:
        rows = self.events(node, ctx)
        op, count = node["frequency"]["op"], node["frequency"]["count"]
        exists = Q(Exists(rows.values("pk")))
        if op == "at_least" and count == 1:
            return exists
        if count == 0:  # at most 0 / exactly 0: never
            return ~exists
        # A correlated COUNT, as one would write it by hand; the planner costs it like the
        # hand-written query (EXISTS ... OFFSET looked dearer and triggered JIT compilation).
        counted = Subquery(
            rows.annotate(n=Func(Value(1), function="COUNT", output_field=IntegerField())).values(
                "n"
            )[:1],
            output_field=IntegerField(),
        )
        lookup = {"at_least": GreaterThanOrEqual, "at_most": LessThanOrEqual, "exactly": Exact}
        return Q(lookup[op](counted, count))

    def describe(self, node: dict, registry: Registry) -> str:
        freq = node["frequency"]
        times = "time" if freq["count"] == 1 else "times"
        text = f"{node['event']} {FREQUENCY[freq['op']]} {freq['count']} {times}"
        window = node.get("window")
        if window and window["type"] == "last_days":
            text += f" in the last {window['days']} days"
        elif window and window["type"] == "between":
            text += f" between {window['from']} and {window['to']}"
        elif window and window["type"] == "period":
            text += f" {PERIODS[window['period']].lower()}"
        for item in node["where"]:
            value = f" {item['value']}" if "value" in item else ""
            text += f", where {item['property']} {PROPERTY_OPERATORS[item['operator']]}{value}"
        return text


class SegmentKind(ConditionKind):
    """Membership of another segment, evaluated live from that segment's current rules."""

    def default(self) -> dict:
        return {"type": "segment", "segment": None, "in": True}

    def validate(self, node: dict, path: str, problems: Problems, registry: Registry):
        segment_id, error = coerce_value(node.get("segment"), FieldType.INTEGER, "the segment")
        if error or segment_id < 1:
            problems.add(path, "Choose a segment (its id).")
            return None
        member = node.get("in", True)
        if not isinstance(member, bool):
            problems.add(path, "in must be true or false.")
            return None
        return {"type": "segment", "segment": segment_id, "in": member}

    def compile(self, node: dict, ctx: CompileContext) -> Q:
        segment_id = node["segment"]
        if segment_id in ctx.stack:
            chain = " → ".join(f"#{s}" for s in (*ctx.stack, segment_id))
            raise RuleError(
                [{"path": ctx.path, "message": f"Segments refer to each other: {chain}."}]
            )
        rules = ctx.segment_rules(segment_id)
        if rules is None:
            raise RuleError(
                [{"path": ctx.path, "message": f"Segment #{segment_id} does not exist."}]
            )
        inner = CompileContext(
            registry=ctx.registry,
            now=ctx.now,
            tz=ctx.tz,
            segment_rules=ctx.segment_rules,
            stack=(*ctx.stack, segment_id),
            negated=ctx.negated != (not node["in"]),
        )
        try:
            q = rules_compile(rules, inner).q
        except RuleError as exc:
            message = f"Segment #{segment_id} has invalid rules: {exc}"
            raise RuleError([{"path": ctx.path, "message": message}]) from exc
        return q if node["in"] else ~q

    def describe(self, node: dict, registry: Registry) -> str:
        from segments.models import Segment

        name = Segment.objects.filter(pk=node["segment"]).values_list("name", flat=True).first()
        label = f"“{name}”" if name else f"#{node['segment']}"
        return f"{'In' if node['in'] else 'Not in'} segment {label}"


def register(registry: Registry) -> None:
    for f in profile_fields():
        registry.register_field(f)
    registry.register_family(
        FieldFamily(
            prefix=TRAIT_PREFIX,
            label="Custom trait",
            group="Custom traits",
            name_pattern=TRAIT_NAME,
            build=trait_field,
            list_names=trait_names,
        )
    )
    registry.register_kind(
        EventKind("event", "Performed an event", "Behaviour", "segments/conditions/_event.html")
    )
    registry.register_kind(
        SegmentKind(
            "segment", "In another segment", "Segments", "segments/conditions/_segment.html"
        )
    )
