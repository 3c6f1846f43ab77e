"""Reading for activation: who is eligible, why others are left out, and the rows to send.

All of it is composed into SQL: the member set is a subquery, exclusions are anti-joins, the
contact point is one ranked join by source priority, and pseudonymous ids and row hashes are
computed by the database, so the same query feeds a Python stream, an ``INSERT ... SELECT``
and PostgreSQL's COPY.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, F, OuterRef, QuerySet
from django.db.models.fields.json import KeyTextTransform

from activation.db import hmac_pads
from activation.models import Activation, ActivationMember, ActivationRun
from activation.sources import OnlyThose, consent_exclusions, segment_member_ids
from profiles.models import DataSource, Identity, Profile, SourceRecord

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


@dataclass(frozen=True)
class Exclusion:
    """People left out for one reason: those for whom ``exists`` is true (or, with
    ``when_missing``, false). Kept as a bare EXISTS so PostgreSQL plans it as a semi-join or
    anti-join, never a per-row subplan."""

    exists: Exists
    when_missing: bool = False

    def applies(self):
        return ~self.exists if self.when_missing else self.exists

    def not_applies(self):
        return self.exists if self.when_missing else ~self.exists


def _correlated(ids: QuerySet) -> Exists:
    """EXISTS over a one-column subquery of profile ids, correlated on the outer ``pk``."""
    column = (
        ids.query.values_select[0]
        if ids.query.values_select
        else next(iter(ids.query.annotation_select))
    )
    return Exists(ids.filter(**{column: OuterRef("pk")}))


def activation_exclusions(*, activation: Activation, member_ids: QuerySet) -> dict[str, Exclusion]:
    """{reason: Exclusion} in counting order, consent reasons first."""
    reasons = {}
    for reason, ids in consent_exclusions(member_ids, activation.destination).items():
        if isinstance(ids, OnlyThose):
            reasons[reason] = Exclusion(_correlated(ids.ids), when_missing=True)
        else:
            reasons[reason] = Exclusion(_correlated(ids))
    if activation.contact_point:
        identities = Identity.objects.filter(
            profile_id=OuterRef("pk"), type=activation.contact_point, key__isnull=False
        )
        reasons[NO_CONTACT_POINT] = Exclusion(Exists(identities), when_missing=True)
    return reasons


def eligible_profiles(
    *, activation: Activation, member_ids: QuerySet, contact_joined: bool = False
) -> QuerySet[Profile]:
    """Members minus every exclusion: the people this activation may send.

    ``contact_joined``: the caller inner-joins the contact point, which already leaves out
    people without one, so that test is not repeated.
    """
    qs = Profile.objects.filter(pk__in=member_ids)
    reasons = activation_exclusions(activation=activation, member_ids=member_ids)
    for reason, exclusion in reasons.items():
        if not (contact_joined and reason == NO_CONTACT_POINT):
            qs = qs.filter(exclusion.not_applies())
    return qs


def activation_preview(*, activation: Activation, member_ids: QuerySet) -> dict:
    """Expected count and exclusions by reason; each person is counted under the first reason
    that applies. One COUNT per reason, each planned as joins."""
    members = Profile.objects.filter(pk__in=member_ids)
    reasons = activation_exclusions(activation=activation, member_ids=member_ids)
    excluded = {}
    earlier: list[Exclusion] = []
    for reason, exclusion in reasons.items():
        qs = members.filter(exclusion.applies())
        for previous in earlier:
            qs = qs.filter(previous.not_applies())
        excluded[reason] = qs.count()
        earlier.append(exclusion)
    total = members.count()
    return {
        "members": total,
        "excluded": excluded,
        "excluded_total": sum(excluded.values()),
        "eligible": total - sum(excluded.values()),
    }


@dataclass(frozen=True)
class RowQuery:
    """SELECT pid, cdp_id[, contact_value], a_<attribute>... of eligible people, by pid.

    Plain SQL (with params) so it can be streamed, wrapped in INSERT ... SELECT or COPY.
    """

    sql: str
    params: tuple
    columns: Columns

    def hash_sql(self, alias: str = "e") -> tuple[str, list]:
        """SQL for the MD5 of what is sent (contact and attributes) of row ``alias``."""
        names = self.columns.value_names[1:]
        if not names:
            return "MD5('')", []
        parts = " || %s || ".join(f"COALESCE({alias}.{n}, '')" for n in names)
        return f"MD5({parts})", [SEPARATOR] * (len(names) - 1)


def hmac_sql(vendor: str, column: str, key: str) -> tuple[str, list]:
    if vendor == "postgresql":
        ipad, opad = hmac_pads(key.encode())
        return (
            f"encode(sha256(%s::bytea || sha256(%s::bytea || convert_to({column}::text, 'UTF8')))"
            ", 'hex')",
            [opad, ipad],
        )
    return f"cdp_hmac_sha256(%s, {column})", [key]


def activation_rows(
    *, activation: Activation, member_ids: QuerySet, columns: Columns | None = None
) -> RowQuery:
    """The rows to send: eligible members with their pseudonymous id, contact point (chosen by
    source priority: lower DataSource.priority, then the most recently updated record, then
    the newest identity) and attributes. Set-based: the contact point comes from one ranked
    join over the members' identities, not a per-row subquery."""
    columns = columns or activation_columns(activation)
    annotations = {"pid": F("pk")}
    for attribute in columns.attributes:
        if attribute in PROFILE_COLUMNS:
            annotations[_alias(attribute)] = F(attribute)
        else:
            annotations[_alias(attribute)] = KeyTextTransform(attribute, "attributes")
    inner = (
        eligible_profiles(
            activation=activation, member_ids=member_ids, contact_joined=bool(columns.contact)
        )
        .annotate(**annotations)
        .values(*annotations)
    )
    inner_sql, inner_params = inner.query.sql_with_params()
    id_sql, hmac_params = hmac_sql(connection.vendor, "p.pid", activation.destination.secret)
    # A person keeps the id they were first sent with (from the snapshot); the HMAC is only
    # computed for people new to this activation (COALESCE stops at the first non-null).
    select = [f"p.pid, COALESCE(m.pseudo_id, {id_sql}) AS cdp_id"]
    join_sql, join_params = "", []
    if columns.contact:
        member_sql, member_params = member_ids.query.sql_with_params()
        select.append("c.contact_value")
        tables = (
            f"FROM {Identity._meta.db_table} i "
            f"JOIN {SourceRecord._meta.db_table} r ON r.id = i.source_record_id "
            f"JOIN {DataSource._meta.db_table} s ON s.id = r.source_id "
            f"WHERE i.type = %s AND i.key IS NOT NULL AND i.profile_id IN ({member_sql})"
        )
        order = "s.priority, r.updated_at DESC, i.id DESC"
        if connection.vendor == "postgresql":
            # DISTINCT ON keeps the planner's row estimate right (a ROW_NUMBER() = 1 filter is
            # guessed at 0.5% and turns the joins above it into per-row index probes).
            join_sql = (
                "JOIN (SELECT DISTINCT ON (i.profile_id) i.profile_id, i.key AS contact_value "
                f"{tables} ORDER BY i.profile_id, {order}) c ON c.profile_id = p.pid"
            )
        else:
            join_sql = (
                "JOIN (SELECT i.profile_id, i.key AS contact_value, ROW_NUMBER() OVER ("
                f"PARTITION BY i.profile_id ORDER BY {order}) AS rn {tables}) c "
                "ON c.profile_id = p.pid AND c.rn = 1"
            )
        join_params = [columns.contact, *member_params]
    select += [f"p.{_alias(a)}" for a in columns.attributes]
    sql = (
        f"SELECT {', '.join(select)} FROM ({inner_sql}) p {join_sql} "
        f"LEFT JOIN {ActivationMember._meta.db_table} m "
        "ON m.activation_id = %s AND m.profile_id = p.pid ORDER BY p.pid"
    )
    params = (*hmac_params, *inner_params, *join_params, activation.pk)
    return RowQuery(sql, params, columns)


REASON_LABELS = {
    "suppressed": "Erased or on the suppression list",
    "restricted": "Processing restricted",
    "no_consent": "No consent for the destination's purpose",
    "opted_out_of_sale": "Opted out of sale or sharing (e.g. GPC)",
    NO_CONTACT_POINT: "No usable contact point",
}


def activation_overview(*, activation: Activation) -> dict:
    """What the activation page shows before a run: expected count, exclusions by reason (as
    they would be now), the last successful run and the run history."""
    preview = activation_preview(
        activation=activation, member_ids=segment_member_ids(activation.segment)
    )
    preview["excluded_rows"] = [
        (REASON_LABELS.get(reason, reason), count) for reason, count in preview["excluded"].items()
    ]
    return {
        "preview": preview,
        "last_success": activation_last_success(activation=activation),
        "runs": list(activation_runs_recent(activation=activation)),
        "snapshot_size": activation.members.count(),
    }


def activation_runs_recent(*, activation: Activation, limit: int = 20) -> QuerySet[ActivationRun]:
    return activation.runs.order_by("-created_at", "-id")[:limit]


def activation_last_success(*, activation: Activation) -> ActivationRun | None:
    return (
        activation.runs.filter(status=ActivationRun.Status.SUCCEEDED)
        .order_by("-finished_at", "-id")
        .first()
    )
