"""Rule tree -> one ORM filter over Profile, with validation that explains every problem.

Validation is pure (plain values in, cleaned tree and problems out). Compilation builds a ``Q``
without touching the database; each condition's ``Q`` is two-valued (never SQL NULL), so a
negated group is exactly the complement of the group. Semantics: docs/segments.md.

Rule JSON::

    {"include": <group>, "exclude": <group>}
    group     = {"type": "group", "op": "and"|"or", "negate": false, "children": [<node>...]}
    field     = {"type": "field", "field": "city", "operator": "equals", "value": "Berlin"}
    event     = {"type": "event", "event": "Order Completed",
                 "frequency": {"op": "at_least", "count": 2},
                 "window": {"type": "last_days", "days": 90},
                 "where": [{"property": "total", "operator": "greater", "value": 50}]}
    segment   = {"type": "segment", "segment": 12, "in": true}
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q

from segments.registry import OPERATORS, PERIODS, Field, FieldType, Registry

EVERYONE = Q(pk__isnull=False)
# Whole numbers are bound to what a 64-bit integer holds (SQLite's INTEGER, PostgreSQL's
# bigint); larger ones cannot even be sent to SQLite as a parameter.
INTEGER_MIN, INTEGER_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 12
MAX_NODES = 300
MAX_LIST = 1000


class RuleError(ValueError):
    """Rules that cannot be compiled; ``problems`` is a list of {"path", "message"}."""

    def __init__(self, problems: list[dict]):
        self.problems = problems
        super().__init__("; ".join(f"{p['path']}: {p['message']}" for p in problems))


class Problems(list):
    """Problems found while validating, each with the path of the node it concerns."""

    def add(self, path: str, message: str) -> None:
        self.append({"path": path, "message": message})


@dataclass
class CompileContext:
    """What compilation needs besides the rules: the clock, the workspace time zone, other
    segments' rules (for membership conditions) and optionally a place to collect each node's Q.
    """

    registry: Registry
    now: datetime
    tz: ZoneInfo
    segment_rules: Callable[[int], dict | None] = lambda segment_id: None
    collect: dict[str, Q] | None = None
    stack: tuple[int, ...] = ()
    path: str = ""
    # True while compiling under an odd number of negations (NOT group, exclude, not in
    # segment): conditions there must be two-valued, never SQL NULL.
    negated: bool = False

    def day_start(self, day: date) -> datetime:
        """Midnight at the start of ``day`` in the workspace time zone."""
        return datetime.combine(day, time(0), tzinfo=self.tz)

    def today(self) -> date:
        return self.now.astimezone(self.tz).date()


# --- values -----------------------------------------------------------------------------


def _describe(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


def parse_number(value: Any) -> int | float | None:
    """A finite number from a JSON number or numeric text (whole numbers stay exact), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if not isinstance(value, float) or math.isnan(value) or math.isinf(value):
        return None
    return value


def bounded_number(
    number: int | float, value: Any, label: str, *, whole: bool = True
) -> tuple[Any, str]:
    """(number, "") when the database can hold it: a 64-bit integer, or a finite float."""
    if whole:
        if INTEGER_MIN <= number <= INTEGER_MAX:
            return number, ""
        return None, (
            f"{_describe(value)} is out of range for {label}; "
            f"use a whole number from {INTEGER_MIN} to {INTEGER_MAX}."
        )
    try:
        return float(number), ""
    except OverflowError:
        return None, f"{_describe(value)} is out of range for {label}."


def coerce_value(value: Any, value_type: str, label: str) -> tuple[Any, str]:
    """(converted value, error message or "") for one scalar value of a field type."""
    if value_type == FieldType.STRING:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return None, f"{_describe(value)} is not text (for {label})."
        text = str(value).strip()
        if not text:
            return None, f"A value is needed for {label}; use 'is not set' for empty values."
        return text, ""
    if value_type in (FieldType.NUMBER, FieldType.INTEGER):
        number = parse_number(value)
        if number is None:
            return None, f"{_describe(value)} is not a number (for {label})."
        if value_type == FieldType.INTEGER:
            if number != int(number):
                return None, f"{_describe(value)} is not a whole number (for {label})."
            return bounded_number(int(number), value, label)
        return bounded_number(number, value, label, whole=False)
    if value_type in (FieldType.DATE, FieldType.DATETIME):
        if isinstance(value, str) and len(value.strip()) == 10:
            try:
                return date.fromisoformat(value.strip()), ""
            except ValueError:
                pass
        return None, f"{_describe(value)} is not a date as YYYY-MM-DD (for {label})."
    if value_type == FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value, ""
        if isinstance(value, str) and value.strip().lower() in (
            "true",
            "yes",
            "1",
            "false",
            "no",
            "0",
        ):
            return value.strip().lower() in ("true", "yes", "1"), ""
        return None, f"{_describe(value)} is not yes/no (true or false) (for {label})."
    return None, f"Unknown value type {value_type!r}."


def coerce_days(value: Any, label: str) -> tuple[int | None, str]:
    days, error = coerce_value(value, FieldType.INTEGER, label)
    if error:
        return None, f"{_describe(value)} is not a whole number of days (for {label})."
    if not 0 < days <= 36500:
        return None, f"The number of days must be between 1 and 36500 (for {label})."
    return days, ""


def coerce_operand(
    op_name: str, value: Any, value_type: str, label: str, normalize=None
) -> tuple[Any, str]:
    """Check and convert the value an operator takes (per its arity)."""
    arity = OPERATORS[op_name].arity
    if arity == "none":
        return None, ""
    if arity == "days":
        return coerce_days(value, label)
    if arity == "period":
        if value not in PERIODS:
            return None, (
                f"{_describe(value)} is not a calendar period; use one of: {', '.join(PERIODS)}."
            )
        return value, ""
    # Calendar-date operators of a time field take a date; "one" of other fields their type.
    if arity == "list":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            return None, f"'{OPERATORS[op_name].label}' needs a list of values (for {label})."
        if len(items) > MAX_LIST:
            return None, f"At most {MAX_LIST} values are allowed in a list (for {label})."
        out = []
        for item in items:
            converted, error = coerce_value(item, value_type, label)
            if error:
                return None, error
            out.append(
                normalize(converted) if normalize and isinstance(converted, str) else converted
            )
        return out, ""
    if arity == "two":
        if not isinstance(value, list) or len(value) != 2:
            return None, f"'between' needs two values [from, to] (for {label})."
        low, error = coerce_value(value[0], value_type, label)
        if error:
            return None, error
        high, error = coerce_value(value[1], value_type, label)
        if error:
            return None, error
        if low > high:
            return None, f"The first value must not be after the second (for {label})."
        return [low, high], ""
    converted, error = coerce_value(value, value_type, label)
    if not error and normalize and isinstance(converted, str):
        converted = normalize(converted)
    return converted, error


def coerce_choices(value: Any, f: Field) -> tuple[Any, str]:
    """Each value (one or a list) as one of the field's choices, or a problem naming them."""
    chosen = [f.choice(v) for v in (value if isinstance(value, list) else [value])]
    if None in chosen:
        wrong = (value if isinstance(value, list) else [value])[chosen.index(None)]
        labels = ", ".join(label for _, label in f.choices)
        return None, f"{_describe(wrong)} is not one of: {labels} (for {f.label})."
    return (chosen if isinstance(value, list) else chosen[0]), ""


def jsonable(value: Any) -> Any:
    """Cleaned values back to JSON (dates as ISO text)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


# --- calendar ---------------------------------------------------------------------------


def period_dates(period: str, today: date) -> tuple[date, date]:
    """[first day, day after the last day) of a calendar period containing/preceding today."""
    if period == "today":
        return today, today + timedelta(days=1)
    if period == "yesterday":
        return today - timedelta(days=1), today
    if period in ("this_week", "last_week"):
        monday = today - timedelta(days=today.weekday())
        if period == "last_week":
            monday -= timedelta(days=7)
        return monday, monday + timedelta(days=7)
    if period in ("this_month", "last_month"):
        first = today.replace(day=1)
        if period == "last_month":
            first = (first - timedelta(days=1)).replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following
    if period in ("this_quarter", "last_quarter"):
        first = today.replace(month=3 * ((today.month - 1) // 3) + 1, day=1)
        if period == "last_quarter":
            first = (first - timedelta(days=1)).replace(day=1)
            first = first.replace(month=3 * ((first.month - 1) // 3) + 1)
        month = first.month + 3
        following = first.replace(year=first.year + (month - 1) // 12, month=(month - 1) % 12 + 1)
        return first, following
    if period in ("this_year", "last_year"):
        year = today.year - (1 if period == "last_year" else 0)
        return date(year, 1, 1), date(year + 1, 1, 1)
    raise ValueError(period)


def time_bounds(op_name: str, value: Any, ctx: CompileContext) -> dict[str, Any]:
    """Lookups (gte/lt) of a time operator, as datetimes. Calendar days and periods start at
    midnight in the workspace time zone; rolling windows count back from now in exact days."""
    if op_name == "on":
        return {"gte": ctx.day_start(value), "lt": ctx.day_start(value + timedelta(days=1))}
    if op_name == "before":
        return {"lt": ctx.day_start(value)}
    if op_name == "after":
        return {"gte": ctx.day_start(value + timedelta(days=1))}
    if op_name == "between":
        return {"gte": ctx.day_start(value[0]), "lt": ctx.day_start(value[1] + timedelta(days=1))}
    if op_name == "within_last":
        return {"gte": ctx.now - timedelta(days=value)}
    if op_name == "not_within_last":
        return {"lt": ctx.now - timedelta(days=value)}
    if op_name == "in_period":
        first, following = period_dates(value, ctx.today())
        return {"gte": ctx.day_start(first), "lt": ctx.day_start(following)}
    raise ValueError(op_name)


def date_bounds(op_name: str, value: Any, ctx: CompileContext) -> dict[str, str]:
    """The same for date-only fields (ISO text): calendar in the workspace time zone, rolling
    windows from the UTC date N days ago."""
    if op_name == "on":
        return {"exact": value.isoformat()}
    if op_name == "before":
        return {"lt": value.isoformat()}
    if op_name == "after":
        return {"gt": value.isoformat()}
    if op_name == "between":
        return {"gte": value[0].isoformat(), "lte": value[1].isoformat()}
    if op_name == "within_last":
        return {"gte": (ctx.now.astimezone(UTC) - timedelta(days=value)).date().isoformat()}
    if op_name == "not_within_last":
        return {"lt": (ctx.now.astimezone(UTC) - timedelta(days=value)).date().isoformat()}
    if op_name == "in_period":
        first, following = period_dates(value, ctx.today())
        return {"gte": first.isoformat(), "lt": following.isoformat()}
    raise ValueError(op_name)


# --- validation -------------------------------------------------------------------------


GROUP_KEYS = {"type", "op", "negate", "children"}


def _unstorable_text(value: Any, path: str) -> str | None:
    """The path of the first text (key or value) no database can hold: an unpaired surrogate
    (UTF-8 cannot encode it) or NUL (PostgreSQL refuses it), or None."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or any(0xD800 <= ord(ch) <= 0xDFFF for ch in item):
                return where
        elif isinstance(item, dict):
            stack.extend((k, where) for k in item)
            stack.extend((v, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}.{i}") for i, v in enumerate(item))
    return None


def _group(node: Any, path: str, problems: Problems, registry: Registry, depth: int, count: list):
    if not isinstance(node, dict) or node.get("type", "group") != "group":
        problems.add(path, 'Expected a group: {"type": "group", "op": "and", ...}.')
        return None
    unknown = set(node) - GROUP_KEYS
    if unknown:
        # A misspelt "children" would otherwise leave an empty group: everyone.
        problems.add(path, f"Unknown keys in a group: {', '.join(sorted(map(str, unknown)))}.")
    op = node.get("op", "and")
    if op not in ("and", "or"):
        problems.add(path, f'{_describe(op)} is not a group operator; use "and" or "or".')
    negate = node.get("negate", False)
    if not isinstance(negate, bool):
        problems.add(path, "negate must be true or false.")
    children = node.get("children", [])
    if not isinstance(children, list):
        problems.add(path, "children must be a list.")
        children = []
    if depth > MAX_DEPTH:
        problems.add(path, f"Groups can be nested at most {MAX_DEPTH} deep.")
        return None
    clean_children = []
    for index, child in enumerate(children):
        count[0] += 1
        if count[0] > MAX_NODES:
            problems.add(path, f"A segment can have at most {MAX_NODES} conditions and groups.")
            break
        clean = validate_node(child, f"{path}.{index}", problems, registry, depth + 1, count)
        if clean is not None:
            clean_children.append(clean)
    return {"type": "group", "op": op, "negate": negate is True, "children": clean_children}


def _field(node: dict, path: str, problems: Problems, registry: Registry):
    key = node.get("field")
    f = registry.field(key)
    if f is None:
        problems.add(path, f"Unknown field {_describe(key)}.")
        return None
    op_name = node.get("operator")
    if op_name not in f.operators:
        known = ", ".join(f.operators)
        problems.add(
            path,
            f"Unknown operator {_describe(op_name)} for {f.label} ({f.type}); use one of: {known}.",
        )
        return None
    value, error = coerce_operand(op_name, node.get("value"), f.type, f.label, f.normalize)
    if not error and f.choices:
        value, error = coerce_choices(value, f)
    if error:
        problems.add(path, error)
        return None
    clean = {"type": "field", "field": f.key, "operator": op_name}
    if OPERATORS[op_name].arity != "none":
        clean["value"] = jsonable(value)
    return clean


def validate_node(
    node: Any, path: str, problems: Problems, registry: Registry, depth=0, count=None
):
    count = count if count is not None else [0]
    if not isinstance(node, dict):
        problems.add(path, "Expected an object (a group or a condition).")
        return None
    node_type = node.get("type")
    if node_type == "group":
        return _group(node, path, problems, registry, depth, count)
    if node_type == "field":
        return _field(node, path, problems, registry)
    kind = registry.kinds.get(node_type) if isinstance(node_type, str) else None
    if kind is None:
        known = ", ".join(["group", "field", *registry.kinds])
        problems.add(path, f"Unknown condition type {_describe(node_type)}; use one of: {known}.")
        return None
    return kind.validate(node, path, problems, registry)


def rules_validate(rules: Any, registry: Registry) -> tuple[dict, Problems]:
    """Check a rule tree; returns the cleaned tree and the problems (empty when valid).

    A bare group is accepted as the include part.
    """
    problems = Problems()
    if isinstance(rules, dict) and rules.get("type") == "group":
        rules = {"include": rules}
    if not isinstance(rules, dict):
        problems.add("rules", 'Rules must be an object with "include" (and "exclude") groups.')
        return {}, problems
    bad_text = _unstorable_text(rules, "rules")
    if bad_text:
        problems.add(
            "rules", f"Text at {bad_text} may not hold NUL or unpaired surrogate characters."
        )
        return {}, problems
    unknown = set(rules) - {"include", "exclude"}
    if unknown:
        problems.add("rules", f"Unknown keys: {', '.join(sorted(unknown))}.")
    count = [0]
    empty = {"type": "group", "op": "and", "negate": False, "children": []}
    clean = {}
    for part, default_op in (("include", "and"), ("exclude", "or")):
        node = rules.get(part, {**empty, "op": default_op})
        clean[part] = _group(node, part, problems, registry, 0, count) or {
            **empty,
            "op": default_op,
        }
    return clean, problems


# --- compilation ------------------------------------------------------------------------


def compile_field(node: dict, f: Field, ctx: CompileContext) -> Q:
    op_name = node["operator"]
    op = OPERATORS[op_name]
    value = node.get("value")
    target = f.target
    if op_name in ("is_set", "is_not_set"):
        q = target.present()
        return ~q if op_name == "is_not_set" else q
    strict = ctx.negated or op.negative
    if f.type in (FieldType.DATE, FieldType.DATETIME):
        parsed = (
            [date.fromisoformat(v) for v in value]
            if isinstance(value, list)
            else date.fromisoformat(value)
            if op.arity == "one"
            else value
        )
        if f.type == FieldType.DATETIME:
            return target.matches(time_bounds(op_name, parsed, ctx), strict=strict)
        return target.matches(date_bounds(op_name, parsed, ctx), strict=strict)
    positive = {
        "equals": "exact",
        "not_equals": "exact",
        "contains": "icontains",
        "not_contains": "icontains",
        "starts_with": "istartswith",
        "in": "in",
        "not_in": "in",
        "greater": "gt",
        "greater_or_equal": "gte",
        "less": "lt",
        "less_or_equal": "lte",
    }
    if op_name == "between":
        return target.matches({"gte": value[0], "lte": value[1]}, strict=strict)
    q = target.matches({positive[op_name]: value}, strict=strict)
    return ~q if op.negative else q


def compile_node(node: dict, path: str, ctx: CompileContext) -> Q:
    node_type = node["type"]
    if node_type == "group":
        outer = ctx.negated
        ctx.negated = outer != node["negate"]
        parts = [compile_node(c, f"{path}.{i}", ctx) for i, c in enumerate(node["children"])]
        ctx.negated = outer
        if not parts:
            q = EVERYONE  # an empty group is ignored, negated or not
        else:
            q = functools.reduce(operator.and_ if node["op"] == "and" else operator.or_, parts)
            if node["negate"]:
                q = ~q
    elif node_type == "field":
        q = compile_field(node, ctx.registry.field(node["field"]), ctx)
    else:
        ctx.path = path
        q = ctx.registry.kinds[node_type].compile(node, ctx)
    if ctx.collect is not None:
        ctx.collect[path] = q
    return q


@dataclass
class Compiled:
    """A compiled rule tree: the filter, the cleaned rules and (if asked) every node's Q."""

    q: Q
    rules: dict
    nodes: dict[str, Q] = field(default_factory=dict)


def rules_compile(rules: Any, ctx: CompileContext) -> Compiled:
    """Validate and compile. Raises RuleError listing every problem."""
    clean, problems = rules_validate(rules, ctx.registry)
    if problems:
        raise RuleError(problems)
    include = compile_node(clean["include"], "include", ctx)
    q = include
    if clean["exclude"]["children"]:
        outer = ctx.negated
        ctx.negated = not outer
        q = include & ~compile_node(clean["exclude"], "exclude", ctx)
        ctx.negated = outer
    return Compiled(q=q, rules=clean, nodes=ctx.collect if ctx.collect is not None else {})
