"""The field registry: every field and condition type a segment rule may name.

Rule JSON can only reach the database through entries registered here, so a rule can never
name an arbitrary column or inject SQL. Other apps extend it without editing this app: an app
module ``<app>/segment_fields.py`` with a ``register(registry)`` function is discovered when the
registry is first used (see docs/segments.md, "Extending the registry").

Three kinds of entries:

- ``Field``: a typed value of a profile (a column, a JSON attribute, or a column/JSON key of a
  related table such as insights), used by ``{"type": "field", ...}`` conditions with the
  operators of its type.
- ``FieldFamily``: fields named by a prefix and a free name, e.g. ``trait:<name>`` for custom
  traits; the family validates the name and builds the field on demand.
- ``ConditionKind``: a condition of its own shape (behaviour, segment membership, consent...),
  which validates, compiles and describes its JSON itself.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db.models import Exists, F, Model, OuterRef, Q
from django.db.models.fields.json import KT
from django.db.models.lookups import IsNull

if TYPE_CHECKING:
    from segments.compiler import CompileContext, Problems


class FieldType:
    """Value types of fields; each has its own operators (``OPERATORS_BY_TYPE``)."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    DATE = "date"  # stored as an ISO date text (YYYY-MM-DD)
    DATETIME = "datetime"  # a timestamp column
    BOOLEAN = "boolean"

    ALL = (STRING, NUMBER, INTEGER, DATE, DATETIME, BOOLEAN)


@dataclass(frozen=True)
class Operator:
    """An operator and the shape of the value it takes."""

    name: str
    label: str
    # none | one | two (between) | list | days (whole number of days) | period (calendar)
    arity: str
    negative: bool = False  # true for operators that include missing values


OPERATORS: dict[str, Operator] = {
    o.name: o
    for o in [
        Operator("equals", "equals", "one"),
        Operator("not_equals", "does not equal", "one", negative=True),
        Operator("contains", "contains", "one"),
        Operator("not_contains", "does not contain", "one", negative=True),
        Operator("starts_with", "starts with", "one"),
        Operator("in", "is one of", "list"),
        Operator("not_in", "is none of", "list", negative=True),
        Operator("greater", "is greater than", "one"),
        Operator("greater_or_equal", "is at least", "one"),
        Operator("less", "is less than", "one"),
        Operator("less_or_equal", "is at most", "one"),
        Operator("between", "is between", "two"),
        Operator("on", "is on", "one"),
        Operator("before", "is before", "one"),
        Operator("after", "is after", "one"),
        Operator("within_last", "is within the last (days)", "days"),
        Operator("not_within_last", "is more than (days) ago", "days"),
        Operator("in_period", "is in the period", "period"),
        Operator("is_set", "is set", "none"),
        Operator("is_not_set", "is not set", "none", negative=True),
    ]
}

_TEXT = ["equals", "not_equals", "contains", "not_contains", "starts_with", "in", "not_in"]
_NUMERIC = [
    "equals",
    "not_equals",
    "greater",
    "greater_or_equal",
    "less",
    "less_or_equal",
    "between",
]
_TIME = ["on", "before", "after", "between", "within_last", "not_within_last", "in_period"]
_PRESENCE = ["is_set", "is_not_set"]

OPERATORS_BY_TYPE: dict[str, list[str]] = {
    FieldType.STRING: _TEXT + _PRESENCE,
    FieldType.NUMBER: _NUMERIC + _PRESENCE,
    FieldType.INTEGER: _NUMERIC + _PRESENCE,
    FieldType.DATE: _TIME + _PRESENCE,
    FieldType.DATETIME: _TIME + _PRESENCE,
    FieldType.BOOLEAN: ["equals", "not_equals", *_PRESENCE],
}
# A field with a fixed set of values (``Field.choices``) is tested for one value or several.
CHOICE_OPERATORS = ["equals", "not_equals", "in", "not_in"]

# Calendar periods, evaluated in settings.CDP_TIME_ZONE (weeks start on Monday).
PERIODS: dict[str, str] = {
    "today": "Today",
    "yesterday": "Yesterday",
    "this_week": "This week",
    "last_week": "Last week",
    "this_month": "This month",
    "last_month": "Last month",
    "this_quarter": "This quarter",
    "last_quarter": "Last quarter",
    "this_year": "This year",
    "last_year": "Last year",
}


def json_present(path: str) -> Q:
    """True when the JSON key exists and is not JSON null; never SQL NULL (both databases)."""
    return Q(**{f"{path}__isnull": False}) & ~Q(**{path: None})


@dataclass(frozen=True)
class Target:
    """Where a field's value lives, relative to a profile.

    ``path`` is a lookup path on ``model`` (``email``, ``attributes__total_spent``,
    ``traits__tier``); ``json`` says the last part is a JSON key (missing and JSON null are
    both "not set"). Without ``model`` the path is on Profile itself; with one, ``profile_path``
    links its rows to the profile and the condition holds when *some* row satisfies it.
    ``blank_is_missing`` treats "" as not set (Profile's text columns store missing as "").
    """

    path: str
    json: bool = False
    model: type[Model] | str | None = None
    profile_path: str = "profile"
    blank_is_missing: bool = False

    def _present(self) -> Q:
        if self.json:
            return json_present(self.path)
        if self.blank_is_missing:
            return ~Q(**{self.path: ""})
        return Q(IsNull(F(self.path), False))

    def _wrap(self, condition: Q) -> Q:
        if self.model is None:
            return condition
        model = apps.get_model(self.model) if isinstance(self.model, str) else self.model
        rows = model.objects.filter(condition, **{self.profile_path: OuterRef("pk")})
        return Q(Exists(rows))

    def present(self) -> Q:
        """True exactly when the value is present and not null (never SQL NULL)."""
        return self._wrap(self._present())

    def matches(self, lookups: dict[str, Any], *, strict: bool = True) -> Q:
        """True when the value is present and satisfies every ``{lookup: value}`` (one row).

        ``strict`` adds the presence test that makes the result FALSE rather than SQL NULL for
        a missing value. The compiler asks for it only under a negation: in a WHERE clause made
        of AND/OR alone, NULL already behaves as FALSE. Rows of a related table (EXISTS) and
        blank text columns (validated values are never empty) never need it. This keeps the SQL
        as plain as a hand-written query.
        """
        condition = Q()
        if self.model is None and not self.blank_is_missing:
            if strict:
                condition = self._present()
            elif self.json:
                # JSON null must still fail (SQLite compares its text 'null' with values).
                condition = ~Q(**{self.path: None})
        for lookup, value in lookups.items():
            condition &= Q(**{f"{self.path}__{lookup}": value})
        return self._wrap(condition)

    def values_queryset(self):
        """(queryset, value expression) for type-ahead of real values."""
        from profiles.models import Profile

        model = Profile
        if self.model is not None:
            model = apps.get_model(self.model) if isinstance(self.model, str) else self.model
        if self.json:
            # Rows where the key holds a value (JSON null is "not set", as in conditions).
            return model.objects.filter(json_present(self.path)), KT(self.path)
        return model.objects.all(), F(self.path)


@dataclass(frozen=True)
class Field:
    """A typed value a ``field`` condition can test. ``key`` is what rule JSON names."""

    key: str
    label: str
    type: str
    target: Target
    group: str = "Profile"
    description: str = ""
    normalize: Callable[[str], str] | None = None  # applied to text values before comparing
    suggest_values: bool = True  # offer real distinct values in the builder
    # (value, label) pairs: the only values a rule may name (a value or its label is accepted,
    # any case); the builder offers them instead of real distinct values.
    choices: tuple[tuple[str, str], ...] = ()

    @property
    def operators(self) -> list[str]:
        return CHOICE_OPERATORS if self.choices else OPERATORS_BY_TYPE[self.type]

    def choice(self, value: Any) -> str | None:
        """The choice's value that ``value`` names (its value or label, any case), else None."""
        text = str(value).strip().casefold()
        for key, label in self.choices:
            if text in (key.casefold(), label.casefold()):
                return key
        return None


@dataclass(frozen=True)
class FieldFamily:
    """Fields named ``<prefix><name>``, e.g. ``trait:loyalty_tier``; built on demand."""

    prefix: str
    label: str
    group: str
    name_pattern: str
    build: Callable[[str], Field]
    list_names: Callable[[], list[str]] = lambda: []

    def field_for(self, key: str) -> Field | None:
        name = key[len(self.prefix) :]
        if not re.fullmatch(self.name_pattern, name):
            return None
        return self.build(name)


@dataclass
class ConditionKind:
    """A condition type with its own JSON shape. Subclass and register it.

    ``validate`` appends problems and returns the cleaned node; ``compile`` returns a Q over
    Profile that is never SQL NULL (so NOT is the complement); ``describe`` is one line of text.
    """

    type: str
    label: str
    group: str
    template: str = "segments/conditions/_generic.html"

    def default(self) -> dict:
        return {"type": self.type}

    def validate(self, node: dict, path: str, problems: Problems, registry: Registry) -> dict:
        raise NotImplementedError

    def compile(self, node: dict, ctx: CompileContext) -> Q:
        raise NotImplementedError

    def describe(self, node: dict, registry: Registry) -> str:
        return self.label


@dataclass
class Registry:
    """All fields, field families and condition kinds a rule may use."""

    fields: dict[str, Field] = field(default_factory=dict)
    families: dict[str, FieldFamily] = field(default_factory=dict)
    kinds: dict[str, ConditionKind] = field(default_factory=dict)

    def register_field(self, f: Field) -> None:
        if f.type not in FieldType.ALL:
            raise ValueError(f"Field {f.key}: unknown type {f.type!r}")
        if f.key in self.fields:
            raise ValueError(f"Field {f.key!r} is already registered")
        self.fields[f.key] = f

    def register_family(self, family: FieldFamily) -> None:
        self.families[family.prefix] = family

    def register_kind(self, kind: ConditionKind) -> None:
        if kind.type in ("group", "field") or kind.type in self.kinds:
            raise ValueError(f"Condition type {kind.type!r} is already registered")
        self.kinds[kind.type] = kind

    def field(self, key: str) -> Field | None:
        if not isinstance(key, str):
            return None
        if key in self.fields:
            return self.fields[key]
        for prefix, family in self.families.items():
            if key.startswith(prefix):
                return family.field_for(key)
        return None

    def palette(self) -> list[dict]:
        """Sections of the builder's palette: fields by group, then condition kinds."""
        sections: dict[str, list[dict]] = {}
        for f in self.fields.values():
            sections.setdefault(f.group, []).append(
                {"type": "field", "key": f.key, "label": f.label, "value_type": f.type}
            )
        for family in self.families.values():
            for name in family.list_names():
                f = family.build(name)
                sections.setdefault(family.group, []).append(
                    {"type": "field", "key": f.key, "label": f.label, "value_type": f.type}
                )
        for kind in self.kinds.values():
            sections.setdefault(kind.group, []).append(
                {"type": kind.type, "key": kind.type, "label": kind.label, "value_type": ""}
            )
        return [{"group": g, "items": items} for g, items in sections.items()]


_registry: Registry | None = None
_lock = threading.Lock()


def get_registry() -> Registry:
    """The project's registry: built-ins plus every installed app's ``segment_fields``."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = registry_build()
    return _registry


def registry_build() -> Registry:
    registry = Registry()
    from segments import builtin_fields

    builtin_fields.register(registry)
    for config in apps.get_app_configs():
        if config.name == "segments":
            continue
        try:
            module = importlib.import_module(f"{config.name}.segment_fields")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.segment_fields":
                raise
            continue
        module.register(registry)
    return registry


def registry_reset() -> None:
    """Forget the built registry (tests that register extra fields)."""
    global _registry
    _registry = None
