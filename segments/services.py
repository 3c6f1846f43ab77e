"""Changing segments: create, update, refresh (materialise membership) and schedules."""

from __future__ import annotations

import logging
import unicodedata

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from cdp.audit import audit_record, audit_record_many
from cdp.jobs import job_enqueue
from segments.compiler import RuleError
from segments.models import Segment, SegmentMembership, SegmentMembershipChange, SegmentRefresh
from segments.selectors import rules_compiled, rules_profiles

logger = logging.getLogger(__name__)

SCHEDULE_NAME = "segments: refresh scheduled segments"


class SegmentError(ValueError):
    """A change a user can fix (duplicate name, invalid rules)."""


def segment_name_clean(name: str) -> str:
    """The one rule for a segment name (API, builder, admin form): stripped, not empty, at most
    the model field's length, and no control characters (NUL, newline, ...) or unpaired
    surrogates (which UTF-8 cannot encode). Raises SegmentError; the message never echoes the
    name, as a surrogate could not be rendered in it.
    """
    name = (name or "").strip()
    if not name:
        raise SegmentError("A segment needs a name.")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise SegmentError("A segment name may not hold control characters or unpaired surrogates.")
    max_length = Segment._meta.get_field("name").max_length
    if len(name) > max_length:
        raise SegmentError(f"A segment name has at most {max_length} characters.")
    return name


DESCRIPTION_MAX_LENGTH = 2000


def segment_description_clean(description: str) -> str:
    """The one rule for a segment description: stripped, at most 2,000 characters, line breaks
    and tabs allowed, no other control characters (NUL, ...) or unpaired surrogates. Raises
    SegmentError without echoing the text."""
    description = (description or "").strip()
    if any(
        unicodedata.category(ch) == "Cs"
        or (unicodedata.category(ch) == "Cc" and ch not in "\n\r\t")
        for ch in description
    ):
        raise SegmentError(
            "A segment description may not hold control characters (other than line breaks "
            "and tabs) or unpaired surrogates."
        )
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise SegmentError(
            f"A segment description has at most {DESCRIPTION_MAX_LENGTH:,} characters."
        )
    return description


def _check(*, name: str, rules, segment: Segment | None = None) -> tuple[str, dict]:
    name = segment_name_clean(name)
    duplicate = Segment.objects.filter(name__iexact=name)
    if segment is not None and segment.pk:
        duplicate = duplicate.exclude(pk=segment.pk)
    if duplicate.exists():
        raise SegmentError(f"A segment named “{name}” already exists.")
    compiled = rules_compiled(rules, segment=segment)  # raises RuleError
    return name, compiled.rules


@transaction.atomic
def segment_create(
    *, name: str, rules, description: str = "", created_by=None, scheduled: bool = False
) -> Segment:
    """Create a segment after validating its rules (RuleError / SegmentError otherwise)."""
    name, clean = _check(name=name, rules=rules)
    description = segment_description_clean(description)
    segment = Segment.objects.create(
        name=name,
        description=description,
        rules=clean,
        scheduled=scheduled,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    audit_record(actor=created_by, action="segment.create", target=segment)
    return segment


@transaction.atomic
def segment_update(
    *, segment: Segment, name: str, rules, description: str = "", updated_by=None
) -> Segment:
    name, clean = _check(name=name, rules=rules, segment=segment)
    description = segment_description_clean(description)
    changed = sorted(
        k
        for k, v in (("name", name), ("description", description), ("rules", clean))
        if getattr(segment, k) != v
    )
    segment.name, segment.description, segment.rules = name, description, clean
    segment.updated_at = timezone.now()
    segment.save(update_fields=["name", "description", "rules", "updated_at"])
    audit_record(
        actor=updated_by, action="segment.update", target=segment, details={"changed": changed}
    )
    return segment


@transaction.atomic
def segment_refresh_request(*, segment: Segment, requested_by=None, sync: bool = False):
    """Queue a refresh of the segment's membership (or run it now with ``sync``).

    A refresh already queued or running is returned instead of queueing another.
    """
    pending = SegmentRefresh.objects.filter(
        segment=segment,
        status__in=[SegmentRefresh.Status.QUEUED, SegmentRefresh.Status.RUNNING],
    ).first()
    if pending is not None and not sync:
        return pending
    refresh = SegmentRefresh.objects.create(
        segment=segment, requested_by=requested_by if getattr(requested_by, "pk", None) else None
    )
    audit_record(actor=requested_by, action="segment.refresh", target=segment)
    job_enqueue("segments.tasks.segment_refresh_execute", refresh.pk, sync=sync)
    if sync:
        refresh.refresh_from_db()
    return refresh


def _tmp_name(refresh: SegmentRefresh) -> str:
    return connection.ops.quote_name(f"segments_refresh_{refresh.pk}")


def segment_refresh_execute(*, refresh: SegmentRefresh) -> SegmentRefresh:
    """Materialise membership set-based: the new member ids go into a temporary table once,
    then who left and who entered are written with INSERT ... SELECT and membership updated.
    """
    SegmentRefresh.objects.filter(pk=refresh.pk).update(
        status=SegmentRefresh.Status.RUNNING, started_at=timezone.now()
    )
    try:
        with transaction.atomic():
            segment = Segment.objects.select_for_update().get(pk=refresh.segment_id)
            # Restricted profiles (restriction of processing) are never members.
            members = rules_profiles(segment.rules, segment=segment)
            size, entered, left, now = _materialise(refresh, segment, members)
            segment.size, segment.refreshed_at = size, now
            segment.save(update_fields=["size", "refreshed_at"])
            SegmentRefresh.objects.filter(pk=refresh.pk).update(
                status=SegmentRefresh.Status.SUCCEEDED,
                size=size,
                entered_count=entered,
                left_count=left,
                finished_at=now,
            )
    except RuleError as exc:
        logger.warning("segment refresh %s failed: invalid rules", refresh.pk)
        SegmentRefresh.objects.filter(pk=refresh.pk).update(
            status=SegmentRefresh.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
    except Exception as exc:  # the run row records any failure
        logger.exception("segment refresh %s failed", refresh.pk)
        SegmentRefresh.objects.filter(pk=refresh.pk).update(
            status=SegmentRefresh.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
    refresh.refresh_from_db()
    return refresh


def _materialise(refresh, segment, members) -> tuple[int, int, int, object]:
    sql, params = members.values("pk").query.sql_with_params()
    tmp = _tmp_name(refresh)
    membership = connection.ops.quote_name(SegmentMembership._meta.db_table)
    changes = connection.ops.quote_name(SegmentMembershipChange._meta.db_table)
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    not_new = f"NOT EXISTS (SELECT 1 FROM {tmp} t WHERE t.profile_id = {membership}.profile_id)"
    not_member = (
        f"NOT EXISTS (SELECT 1 FROM {membership} m WHERE m.segment_id = %s "
        "AND m.profile_id = t.profile_id)"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {tmp} (profile_id bigint PRIMARY KEY)")
        try:
            cursor.execute(f"INSERT INTO {tmp} (profile_id) {sql}", params)
            cursor.execute(
                f"INSERT INTO {changes} (refresh_id, segment_id, profile_id, kind, at) "
                f"SELECT %s, %s, profile_id, 'left', %s FROM {membership} "
                f"WHERE segment_id = %s AND {not_new}",
                [refresh.pk, segment.pk, at, segment.pk],
            )
            left = cursor.rowcount
            cursor.execute(
                f"DELETE FROM {membership} WHERE segment_id = %s AND {not_new}", [segment.pk]
            )
            cursor.execute(
                f"INSERT INTO {changes} (refresh_id, segment_id, profile_id, kind, at) "
                f"SELECT %s, %s, t.profile_id, 'entered', %s FROM {tmp} t WHERE {not_member}",
                [refresh.pk, segment.pk, at, segment.pk],
            )
            entered = cursor.rowcount
            cursor.execute(
                f"INSERT INTO {membership} (segment_id, profile_id, entered_at) "
                f"SELECT %s, t.profile_id, %s FROM {tmp} t WHERE {not_member}",
                [segment.pk, at, segment.pk],
            )
            cursor.execute(f"SELECT COUNT(*) FROM {tmp}")
            size = cursor.fetchone()[0]
        finally:
            cursor.execute(f"DROP TABLE {tmp}")
    return size, entered, left, now


@transaction.atomic
def segment_members_restrict(profile_ids: list[int]) -> dict[str, int]:
    """Take restricted profiles out of every segment at once (a consent restriction hook).

    Each segment they leave gets a refresh row (its run row and a point of its size history)
    with their ``left`` changes, so the history says who left and when; later refreshes leave
    restricted profiles out. A handful of statements, whatever the number of segments.
    """
    memberships = SegmentMembership.objects.filter(profile_id__in=profile_ids)
    left_by_segment = dict(
        memberships.values("segment_id").annotate(n=Count("id")).values_list("segment_id", "n")
    )
    if not left_by_segment:
        return {"segments": 0, "memberships": 0}
    now = timezone.now()
    segments = list(
        Segment.objects.select_for_update().filter(pk__in=left_by_segment).order_by("pk")
    )
    refreshes = SegmentRefresh.objects.bulk_create(
        [
            SegmentRefresh(
                segment=segment,
                status=SegmentRefresh.Status.SUCCEEDED,
                size=max(0, (segment.size or 0) - left_by_segment[segment.pk]),
                left_count=left_by_segment[segment.pk],
                created_at=now,
                started_at=now,
                finished_at=now,
            )
            for segment in segments
        ]
    )
    refresh_of = {r.segment_id: r.pk for r in refreshes}
    SegmentMembershipChange.objects.bulk_create(
        [
            SegmentMembershipChange(
                refresh_id=refresh_of[segment_id],
                segment_id=segment_id,
                profile_id=profile_id,
                kind=SegmentMembershipChange.Kind.LEFT,
                at=now,
            )
            for segment_id, profile_id in memberships.values_list("segment_id", "profile_id")
        ]
    )
    deleted, _ = memberships.delete()
    for segment in segments:
        segment.size = max(0, (segment.size or 0) - left_by_segment[segment.pk])
    Segment.objects.bulk_update(segments, ["size"])
    audit_record_many(
        actor=None,
        action="segment.restriction",
        entries=[
            (
                f"segments.segment:{s.pk}",
                {"refresh": refresh_of[s.pk], "left": left_by_segment[s.pk]},
            )
            for s in segments
        ],
    )
    return {"segments": len(segments), "memberships": deleted}


def segments_subject_collect(subject) -> dict[str, list[dict]]:
    """A person's segment memberships and membership history (access export), by name."""
    ids = subject.all_profile_ids
    return {
        "segment_memberships": list(
            SegmentMembership.objects.filter(profile_id__in=ids)
            .order_by("segment__name", "profile_id")
            .values("profile_id", "segment_id", "segment__name", "entered_at")
        ),
        "segment_membership_changes": list(
            SegmentMembershipChange.objects.filter(profile_id__in=ids)
            .order_by("at", "id")
            .values("profile_id", "segment_id", "segment__name", "kind", "at")
        ),
    }


def segments_subject_erase(subject) -> dict[str, int]:
    ids = subject.all_profile_ids
    changes, _ = SegmentMembershipChange.objects.filter(profile_id__in=ids).delete()
    memberships, _ = SegmentMembership.objects.filter(profile_id__in=ids).delete()
    return {"segment_memberships": memberships, "segment_membership_changes": changes}


def segments_refresh_scheduled() -> int:
    """Queue a refresh of every segment marked ``scheduled``; returns how many."""
    count = 0
    for segment in Segment.objects.filter(scheduled=True):
        segment_refresh_request(segment=segment)
        count += 1
    return count


def segments_schedule_ensure(*, minutes: int = 60) -> tuple[object, bool]:
    """Create or update the one django-q2 schedule that refreshes scheduled segments."""
    from django_q.models import Schedule

    return Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "segments.tasks.segments_refresh_scheduled",
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
        },
    )
