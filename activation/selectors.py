"""Reading for activation: who is eligible, why others are left out, and the rows to send.

All of it is composed into SQL: the member set is a subquery, exclusions are subqueries, the
contact point is a correlated subquery by source priority, and pseudonymous ids and row hashes
are computed by the database (activation.db), so the same query feeds a Python stream, an
``INSERT ... SELECT`` and PostgreSQL's COPY.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import MD5, Cast, Coalesce, Concat

from activation.db import HmacSha256
from activation.models import Activation, ActivationRun
from activation.sources import consent_exclusions
from profiles.models import Identity, Profile

# Attributes stored as Profile columns; any other name is read from Profile.attributes.
PROFILE_COLUMNS = ("first_name", "last_name", "email", "phone", "city", "country")
NO_CONTACT_POINT = "no_contact_point"
SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Columns:
    """The exported columns, in order: the pseudonymous id, the contact point, attributes."""

    contact: str  # "" when the activation sends no contact point
    attributes: tuple[str, ...]

    @property
    def header(self) -> list[str]:
        return ["cdp_id", *([self.contact] if self.contact else []), *self.attributes]

    @property
    def value_names(self) -> list[str]:
        """The query's names for the header's columns."""
        contact = ["contact_value"] if self.contact else []
        return ["cdp_id", *contact, *(_alias(a) for a in self.attributes)]


def activation_columns(activation: Activation) -> Columns:
    contact = activation.contact_point or ""
    attributes = tuple(a for a in dict.fromkeys(activation.attributes or []) if a != contact)
    return Columns(contact=contact, attributes=attributes)


def _alias(name: str) -> str:
    return f"a_{''.join(ch if ch.isalnum() else '_' for ch in name)}"


def contact_point_subquery(id_type: str):
    """A person's contact point of a type: the valid identity from the highest-priority source
    (lower DataSource.priority wins), then the most recently updated record, then the newest."""
    identities = Identity.objects.filter(
        profile_id=OuterRef("pk"), type=id_type, key__isnull=False
    ).order_by("source_record__source__priority", "-source_record__updated_at", "-id")
    return Subquery(identities.values("key")[:1], output_field=CharField())


def has_contact_point(id_type: str):
    return Exists(
        Identity.objects.filter(profile_id=OuterRef("pk"), type=id_type, key__isnull=False)
    )


def activation_exclusions(*, activation: Activation, member_ids: QuerySet) -> dict[str, Q]:
    """{reason: condition on Profile} in counting order, consent reasons first."""
    reasons = {
        reason: Q(pk__in=ids)
        for reason, ids in consent_exclusions(member_ids, activation.destination).items()
    }
    if activation.contact_point:
        reasons[NO_CONTACT_POINT] = ~Q(has_contact=True)
    return reasons


def _candidates(activation: Activation, member_ids: QuerySet) -> QuerySet[Profile]:
    qs = Profile.objects.filter(pk__in=member_ids)
    if activation.contact_point:
        qs = qs.annotate(has_contact=has_contact_point(activation.contact_point))
    return qs


def eligible_profiles(*, activation: Activation, member_ids: QuerySet) -> QuerySet[Profile]:
    """Members minus every exclusion: the people this activation may send."""
    qs = _candidates(activation, member_ids)
    for condition in activation_exclusions(activation=activation, member_ids=member_ids).values():
        qs = qs.exclude(condition)
    return qs


def activation_preview(*, activation: Activation, member_ids: QuerySet) -> dict:
    """Expected count and exclusions by reason, each person counted once (first reason), in
    one aggregate query."""
    reasons = activation_exclusions(activation=activation, member_ids=member_ids)
    aggregates = {"members": Count("pk")}
    earlier = Q()
    for i, (_reason, condition) in enumerate(reasons.items()):
        aggregates[f"r{i}"] = Count("pk", filter=condition & ~earlier if i else condition)
        earlier = earlier | condition
    totals = _candidates(activation, member_ids).aggregate(**aggregates)
    excluded = {reason: totals[f"r{i}"] for i, reason in enumerate(reasons)}
    return {
        "members": totals["members"],
        "excluded": excluded,
        "excluded_total": sum(excluded.values()),
        "eligible": totals["members"] - sum(excluded.values()),
    }


def activation_rows(
    *,
    activation: Activation,
    member_ids: QuerySet,
    columns: Columns | None = None,
    extra: dict | None = None,
) -> QuerySet:
    """values_list(pk, cdp_id, row_hash, contact, *attributes, *extra) of eligible people,
    ordered by pk."""
    columns = columns or activation_columns(activation)
    qs = eligible_profiles(activation=activation, member_ids=member_ids)
    annotations = {
        "pid": F("pk"),
        "cdp_id": HmacSha256(Cast("pk", CharField()), key=activation.destination.secret),
    }
    names = []
    if columns.contact:
        annotations["contact_value"] = contact_point_subquery(columns.contact)
        names.append("contact_value")
    for attribute in columns.attributes:
        alias = _alias(attribute)
        if attribute in PROFILE_COLUMNS:
            annotations[alias] = F(attribute)
        else:
            annotations[alias] = KeyTextTransform(attribute, "attributes")
        names.append(alias)
    qs = qs.annotate(**annotations)
    parts = []
    for name in names:
        parts += [Coalesce(Cast(name, CharField()), Value("")), Value(SEPARATOR)]
    parts = parts or [Value(""), Value("")]
    qs = qs.annotate(row_hash=MD5(Concat(*parts, output_field=CharField())), **(extra or {}))
    return qs.values_list("pid", "cdp_id", "row_hash", *names, *(extra or {})).order_by("pk")


def activation_runs_recent(*, activation: Activation, limit: int = 20) -> QuerySet[ActivationRun]:
    return activation.runs.order_by("-created_at", "-id")[:limit]


def activation_last_success(*, activation: Activation) -> ActivationRun | None:
    return (
        activation.runs.filter(status=ActivationRun.Status.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )
