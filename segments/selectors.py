"""Reading segments: counts, previews, explanations, type-ahead values and history."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import BooleanField, Case, Count, Exists, QuerySet, TextField, Value, When
from django.db.models.fields.json import KT, KeyTextTransform, KeyTransform
from django.db.models.functions import Cast
from django.utils import timezone

from consent.selectors import restricted_profile_ids
from profiles.constants import TRAIT_PREFIX
from profiles.models import Event, FieldMapping, Profile, SourceRecord
from segments.compiler import CompileContext, Compiled, rules_compile
from segments.models import Segment, SegmentMembership, SegmentMembershipChange, SegmentRefresh
from segments.registry import get_registry

PREVIEW_FIELDS = ("id", "first_name", "last_name", "email", "city", "country", "created_at")


def segment_rules_get(segment_id: int) -> dict | None:
    return Segment.objects.filter(pk=segment_id).values_list("rules", flat=True).first()


def compile_context(
    *, now: datetime | None = None, segment: Segment | None = None, collect: bool = False
) -> CompileContext:
    """The context rules compile in: now, the workspace time zone, other segments' rules."""
    return CompileContext(
        registry=get_registry(),
        now=now or timezone.now(),
        tz=ZoneInfo(settings.CDP_TIME_ZONE),
        segment_rules=segment_rules_get,
        collect={} if collect else None,
        stack=(segment.pk,) if segment is not None and segment.pk else (),
    )


def rules_compiled(rules, *, now=None, segment=None, collect=False) -> Compiled:
    """Validated and compiled rules; raises RuleError."""
    return rules_compile(rules, compile_context(now=now, segment=segment, collect=collect))


def segment_candidates() -> QuerySet[Profile]:
    """The profiles a segment may hold: everyone but those whose processing is restricted.

    Counts, previews and refreshes all start here, so the live count in the builder is the
    size the next refresh gives.
    """
    return Profile.objects.exclude(pk__in=restricted_profile_ids())


def rules_profiles(rules, *, now=None, segment=None) -> QuerySet[Profile]:
    """The profiles matching ``rules`` (one query)."""
    return segment_candidates().filter(rules_compiled(rules, now=now, segment=segment).q)


def rules_count(rules, *, now=None, segment=None) -> int:
    """The audience size, counted in the database."""
    return rules_profiles(rules, now=now, segment=segment).count()


def rules_counts(rules, *, now=None, segment=None) -> dict:
    """Audience size and each group's and condition's own count, in one aggregate query."""
    compiled = rules_compiled(rules, now=now, segment=segment, collect=True)
    aggregates = {"total": Count("pk", filter=compiled.q)}
    names = {}
    for index, (path, q) in enumerate(compiled.nodes.items()):
        names[f"n{index}"] = path
        aggregates[f"n{index}"] = Count("pk", filter=q)
    row = segment_candidates().aggregate(**aggregates)
    return {"total": row["total"], "nodes": {names[k]: v for k, v in row.items() if k != "total"}}


def rules_preview(rules, *, now=None, segment=None, limit: int = 20) -> list[dict]:
    return list(
        rules_profiles(rules, now=now, segment=segment)
        .order_by("-pk")
        .values(*PREVIEW_FIELDS)[:limit]
    )


def rules_explain(rules, *, profile_id: int, now=None, segment=None) -> dict | None:
    """Whether each group and condition (by path) holds for one profile, and the result.

    One query: every node becomes a boolean column of the profile's row.
    """
    compiled = rules_compiled(rules, now=now, segment=segment, collect=True)
    columns = {
        f"n{index}": Case(
            When(q, then=Value(True)), default=Value(False), output_field=BooleanField()
        )
        for index, q in enumerate(compiled.nodes.values())
    }
    columns["result"] = Case(
        When(compiled.q, then=Value(True)), default=Value(False), output_field=BooleanField()
    )
    row = Profile.objects.filter(pk=profile_id).annotate(**columns).values(*columns).first()
    if row is None:
        return None
    nodes = {path: bool(row[f"n{i}"]) for i, path in enumerate(compiled.nodes)}
    return {"result": bool(row["result"]), "nodes": nodes, "rules": compiled.rules}


def field_values(*, key: str, prefix: str = "", limit: int = 15) -> list[str]:
    """Real distinct values of a field starting with ``prefix`` (type-ahead)."""
    field = get_registry().field(key)
    if field is not None and field.choices:
        text = prefix.strip().casefold()
        return [
            value
            for value, label in field.choices
            if value.casefold().startswith(text) or label.casefold().startswith(text)
        ][:limit]
    if field is None or not field.suggest_values:
        return []
    queryset, expression = field.target.values_queryset()
    # Compared and returned as text whatever the stored type (a JSON number, yes/no or date,
    # a numeric column): text lookups on a JSON key would otherwise compare with JSON and fail
    # on SQLite ("malformed JSON"). Ordered by the value itself, so numbers come 2, 9, 10.
    order = expression
    if isinstance(expression, KeyTextTransform):
        order = KeyTransform(expression.key_name, *expression.get_source_expressions())
    rows = (
        queryset.annotate(_v=Cast(expression, TextField()), _o=order)
        .exclude(_v__isnull=True)
        .exclude(_v="")
    )
    if prefix:
        rows = rows.filter(_v__istartswith=prefix)
    values = rows.order_by("_o", "_v").values_list("_v", flat=True).distinct()
    # One text may come from values of two types (2 and "2"): keep it once.
    return list(dict.fromkeys(values[: limit * 2]))[:limit]


def event_names(*, prefix: str = "", limit: int = 15) -> list[str]:
    rows = Event.objects.exclude(name="")
    if prefix:
        rows = rows.filter(name__istartswith=prefix)
    return list(rows.order_by("name").values_list("name", flat=True).distinct()[:limit])


def event_property_values(*, event: str, prop: str, prefix: str = "", limit: int = 15) -> list:
    path = "properties__" + "__".join(prop.split("."))
    rows = Event.objects.filter(name=event).annotate(_v=KT(path)).exclude(_v__isnull=True)
    if prefix:
        rows = rows.filter(_v__istartswith=prefix)
    return [str(v) for v in rows.order_by("_v").values_list("_v", flat=True).distinct()[:limit]]


def trait_names_known(sample: int = 500) -> list[str]:
    """Custom trait names in use: those on source records, i.e. of rows that were applied.

    The names in recently updated source records, plus mapped trait names that some source
    record of that mapping's source actually has (so a trait of older records is not lost). A
    mapping alone makes nothing known: it is saved before its file is imported, and a file
    whose rows were all rejected applied no trait. Three queries, whatever the number of names.
    """
    names: set[str] = set()
    for traits in SourceRecord.objects.order_by("-updated_at").values_list("traits", flat=True)[
        :sample
    ]:
        names.update((traits or {}).keys())
    mapped = sorted(
        {
            (source_id, target[len(TRAIT_PREFIX) :])
            for source_id, target in FieldMapping.objects.filter(
                target__startswith=TRAIT_PREFIX
            ).values_list("source_id", "target")
        }
    )
    unseen = [(source_id, name) for source_id, name in mapped if name and name not in names]
    if unseen:
        checks = {
            f"t{i}": Exists(SourceRecord.objects.filter(source_id=source_id, traits__has_key=name))
            for i, (source_id, name) in enumerate(unseen)
        }
        # One row carrying one EXISTS per name (no source record at all: nothing applied).
        found = SourceRecord.objects.annotate(**checks).values(*checks).first() or {}
        names.update(name for i, (_s, name) in enumerate(unseen) if found.get(f"t{i}"))
    return sorted(n for n in names if n)


def segment_list() -> QuerySet[Segment]:
    return Segment.objects.select_related("created_by").order_by("name")


def segment_size_history(*, segment: Segment, limit: int = 500) -> list[dict]:
    """Sizes at successful refreshes, oldest first."""
    rows = (
        SegmentRefresh.objects.filter(segment=segment, status=SegmentRefresh.Status.SUCCEEDED)
        .order_by("-finished_at")
        .values("finished_at", "size", "entered_count", "left_count")[:limit]
    )
    return list(reversed(rows))


def segment_changes(*, segment: Segment, limit: int = 50) -> QuerySet[SegmentMembershipChange]:
    return (
        SegmentMembershipChange.objects.filter(segment=segment)
        .select_related("profile")
        .order_by("-at", "-id")[:limit]
    )


def segment_members(*, segment: Segment, after: int = 0, limit: int = 100) -> QuerySet[Profile]:
    """Materialised members in id order, ``after`` a profile id (keyset pagination)."""
    ids = SegmentMembership.objects.filter(segment=segment, profile_id__gt=after).values(
        "profile_id"
    )
    return Profile.objects.filter(pk__in=ids).order_by("pk")[:limit]
