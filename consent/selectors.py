"""Reading consent and requests. The consent selectors are the interface for segments and
activation: they return querysets / subqueries, so a caller composes them into one SQL query.

    Profile.objects.filter(pk__in=consent_granted_profile_ids("email_marketing", "email"))
"""

from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from consent.models import (
    OPEN_STATUSES,
    Channel,
    ConsentRecord,
    ConsentStatus,
    DataSubjectRequest,
    Purpose,
    Restriction,
)


def _channel_filter(channel: str | None) -> Q:
    if channel is None:
        return Q()
    return Q(channel__key__in=[channel, Channel.ALL])


# The one rule for "current": the newest decision by capture time, then by id. A record on the
# 'all' channel counts for every channel (callers filter records by ``_channel_filter``).
NEWEST_FIRST = ("-captured_at", "-id")


def consent_status_subquery(purpose: str, channel: str | None = None, profile_ref: str = "pk"):
    """The current status of a purpose (on a channel, or any channel) for ``OuterRef(profile_ref)``,
    as a value (for segment conditions, which also need 'unknown'). NULL when the person never
    decided (unknown).
    """
    records = ConsentRecord.objects.filter(
        Q(profile_id=OuterRef(profile_ref), purpose__key=purpose) & _channel_filter(channel)
    ).order_by(*NEWEST_FIRST)
    return Subquery(records.values("status")[:1])


def newest_consent_records(records: QuerySet, partition: list[str]) -> QuerySet:
    """Each partition's current record (``NEWEST_FIRST``): those with no newer record.

    An anti-join, so a filter added afterwards (such as ``status=granted``) applies to the newest
    record only: an older grant never counts when a withdrawal came after it. On PostgreSQL it
    runs on the (profile, purpose, channel, -captured_at, -id) index. Used for sets of people
    (activation, granted/denied audiences); ``consent_status_subquery`` gives one status value.
    """
    newer = records.filter(
        Q(captured_at__gt=OuterRef("captured_at"))
        | Q(captured_at=OuterRef("captured_at"), id__gt=OuterRef("id")),
        **{name: OuterRef(name) for name in partition},
    )
    return records.filter(~Exists(newer))


def restricted_profile_ids() -> QuerySet:
    """Ids of profiles whose processing is restricted (a subquery)."""
    return Restriction.objects.values("profile_id")


def _current_with_status(purpose: str, channel: str | None, statuses: list[str]) -> QuerySet:
    records = ConsentRecord.objects.filter(Q(purpose__key=purpose) & _channel_filter(channel))
    return newest_consent_records(records, ["profile_id"]).filter(status__in=statuses)


def consent_granted_profiles(purpose: str, channel: str | None = None) -> QuerySet:
    """Profiles whose current state for the purpose (on the channel) is granted and who are not
    restricted. Unknown, denied and withdrawn are all 'not granted'."""
    from profiles.models import Profile

    granted = _current_with_status(purpose, channel, [ConsentStatus.GRANTED])
    return Profile.objects.filter(pk__in=granted.values("profile_id")).exclude(
        pk__in=restricted_profile_ids()
    )


def consent_granted_profile_ids(purpose: str, channel: str | None = None) -> QuerySet:
    """``consent_granted_profiles`` as a ``values('pk')`` subquery for ``pk__in``."""
    return consent_granted_profiles(purpose, channel).values("pk")


def consent_denied_profile_ids(purpose: str, channel: str | None = None) -> QuerySet:
    """Profiles whose current state is denied or withdrawn (explicit opt-out), as a subquery."""
    denied = [ConsentStatus.DENIED, ConsentStatus.WITHDRAWN]
    return _current_with_status(purpose, channel, denied).values("profile_id")


def consent_state(*, profile_id: int) -> list[dict]:
    """The current state of every purpose x channel the profile has a decision for."""
    newest: dict[tuple[str, str], ConsentRecord] = {}
    for record in (
        ConsentRecord.objects.filter(profile_id=profile_id)
        .select_related("purpose", "channel")
        .order_by("captured_at", "id")
    ):
        newest[(record.purpose.key, record.channel.key)] = record
    return [
        {
            "purpose": purpose,
            "channel": channel,
            "status": r.status,
            "captured_at": r.captured_at.isoformat(),
            "source": r.source,
            "record": r.pk,
        }
        for (purpose, channel), r in sorted(newest.items())
    ]


def consent_history(*, profile_ids: list[int]) -> QuerySet[ConsentRecord]:
    return (
        ConsentRecord.objects.filter(profile_id__in=profile_ids)
        .select_related("purpose", "channel")
        .order_by("captured_at", "id")
    )


def purposes_all() -> QuerySet[Purpose]:
    return Purpose.objects.all()


# --- requests -------------------------------------------------------------------------------


def workspace_today() -> date:
    from zoneinfo import ZoneInfo

    return timezone.now().astimezone(ZoneInfo(settings.CDP_TIME_ZONE)).date()


def privacy_dashboard(*, today: date | None = None) -> dict:
    """Counts for the privacy dashboard, each computed in SQL."""
    today = today or workspace_today()
    open_qs = DataSubjectRequest.objects.filter(status__in=OPEN_STATUSES)
    totals = open_qs.aggregate(
        open=Count("id"),
        due_soon=Count(
            "id", filter=Q(due_date__gte=today, due_date__lte=today + timedelta(days=7))
        ),
        overdue=Count("id", filter=Q(due_date__lt=today)),
        unverified=Count("id", filter=Q(verified_at__isnull=True)),
        ack_overdue=Count("id", filter=Q(acknowledge_by__lt=today, acknowledged_at__isnull=True)),
    )
    by_type_regime = list(
        open_qs.values("type", "regime").annotate(n=Count("id")).order_by("type", "regime")
    )
    soonest = list(open_qs.filter(verified_at__isnull=False).order_by("due_date", "id")[:10])
    return {"today": today, "totals": totals, "by_type_regime": by_type_regime, "soonest": soonest}
