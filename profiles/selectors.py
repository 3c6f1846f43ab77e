"""Reading profiles and what belongs to them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import phonenumbers
from django.conf import settings
from django.db.models import Count, Min, Prefetch, QuerySet

from cdp.normalize import IdentifierTypes, InvalidValue, identifier_key
from cdp.spreadsheet import spreadsheet_safe
from profiles.models import DataSource, Event, Identity, Profile, SourceRecord
from profiles.services.resolution import profile_resolve_id


def profile_detail_queryset() -> QuerySet[Profile]:
    return Profile.objects.annotate(event_count=Count("events", distinct=True)).prefetch_related(
        Prefetch(
            "source_records",
            queryset=SourceRecord.objects.select_related("source").order_by("source__priority"),
        ),
        Prefetch("identities", queryset=Identity.objects.order_by("type", "id")),
    )


def profile_get(*, profile_id: int) -> Profile | None:
    """A profile with its details, following merge redirects."""
    live = profile_resolve_id(profile_id)
    if live is None:
        return None
    return profile_detail_queryset().get(pk=live.pk)


class AmbiguousLookup(ValueError):
    """A phone number without a region that names different people in different regions."""


def lookup_keys(
    id_type: str, value: str, region: str = "", *, everywhere: bool = False
) -> set[str]:
    """The keys a searched identifier may be stored under.

    A phone number written without its country code ("(401) 465-2236") is read in the given
    region, else in each region it may have been stored under: the installation's default
    and every source's default region (imports and tracking normalise with those). With
    ``everywhere`` (the admin's search, which lists candidates for a person to look at), in
    every region where it is a valid number: a record's own country may have read it.
    """
    keys = _keys_in(id_type, value, [region.upper() or None])
    # Other regions only for a national phone number: one with its country code, or text
    # without a digit (a name searched in the admin), reads the same or not at all in each.
    if (
        id_type == IdentifierTypes.PHONE
        and not region
        and not keys
        and any(map(str.isdigit, value))
    ):
        if everywhere:
            regions = sorted(phonenumbers.SUPPORTED_REGIONS)
        else:
            sources = DataSource.objects.values_list("default_region", flat=True).distinct()
            regions = sorted({settings.CDP_DEFAULT_PHONE_REGION.upper(), *sources} - {""})
        keys = _keys_in(id_type, value, regions)
    return keys


def _keys_in(id_type: str, value: str, regions: list[str | None]) -> set[str]:
    keys = set()
    for region in regions:
        try:
            key = identifier_key(id_type, value, region=region).key
        except InvalidValue:
            continue
        if key:
            keys.add(key)
    return keys


def profile_lookup(*, id_type: str, value: str, region: str = "") -> Profile | None:
    """The profile holding an identifier, given in any spelling its type normalises.

    AmbiguousLookup when a phone number without a region reads as the numbers of different
    people in the regions tried (the caller must name the region).
    """
    keys = lookup_keys(id_type, value, region)
    if not keys:
        return None
    # Per key the first profile holding it (one key on two profiles is not this ambiguity).
    found = dict(
        Identity.objects.filter(type=id_type, key__in=keys, profile__isnull=False)
        .values("key")
        .annotate(first=Min("profile_id"))
        .values_list("key", "first")
    )
    if not found:
        return None
    if len(set(found.values())) > 1:
        raise AmbiguousLookup(
            f"{value} is the number of different people in different regions "
            f"({', '.join(sorted(found))}); give region."
        )
    return profile_detail_queryset().get(pk=min(found.values()))


def profile_recent_events(*, profile: Profile, limit: int = 20) -> QuerySet[Event]:
    return Event.objects.filter(profile=profile).order_by("-timestamp")[:limit]


def headline_counts() -> list[tuple[str, int, type]]:
    """(label, count, model whose changelist the tile opens) for the admin index; each a COUNT."""
    from profiles.models import DataSource, ImportRun, RawRecord

    return [
        ("Profiles", Profile.objects.count(), Profile),
        ("Source records", SourceRecord.objects.count(), SourceRecord),
        ("Identities", Identity.objects.count(), Identity),
        ("Events", Event.objects.count(), Event),
        ("Sources", DataSource.objects.count(), DataSource),
        ("Imports", ImportRun.objects.count(), ImportRun),
        (
            "Rejected rows",
            RawRecord.objects.filter(status=RawRecord.Status.REJECTED).count(),
            RawRecord,
        ),
    ]


def merge_suggestion_sides(*, suggestion) -> list[dict]:
    """Both profiles of a suggestion: attributes with their source, identities, recent events."""
    sides = []
    for profile_id in (suggestion.left_id, suggestion.right_id):
        profile = profile_detail_queryset().filter(pk=profile_id).first()
        if profile is None:
            sides.append({"id": profile_id, "missing": True})
            continue
        records = {sr.pk: sr for sr in profile.source_records.all()}
        attributes = []
        for name, value in profile.attributes.items():
            record = records.get(profile.attribute_sources.get(name))
            attributes.append({"name": name, "value": value, "source": _record_label(record)})
        sides.append(
            {
                "id": profile.pk,
                "profile": profile,
                "attributes": attributes,
                # Each with the record it came from: the same value from two records is two
                # rows, which would look like a duplicate without it.
                "identities": [
                    {
                        "type": identity.get_type_display(),
                        "raw_value": identity.raw_value,
                        "flag": identity.flag,
                        "source": _record_label(records.get(identity.source_record_id)),
                    }
                    for identity in profile.identities.all()
                ],
                "events": list(profile_recent_events(profile=profile, limit=10)),
                "event_count": profile.event_count,
            }
        )
    return sides


def _record_label(record: SourceRecord | None) -> str:
    return f"{record.source.name} {record.external_key}" if record else "?"


def import_run_report(*, run) -> dict:
    """The final report of an import: counts, rejected rows by reason, formats detected.

    Every row read is counted once: read = created + updated + unchanged + rejected +
    suppressed (rows of erased people, dropped by the suppression list).
    """
    reasons = sorted((run.rejected_reasons or {}).items(), key=lambda item: (-item[1], item[0]))
    return {
        "read": run.rows_done,
        "total": run.rows_total,
        "created": run.created_count,
        "updated": run.updated_count,
        "unchanged": run.unchanged_count,
        "rejected": run.rejected_count,
        "suppressed": run.suppressed_count,
        "reasons": reasons,
        "finished": run.status in (run.Status.SUCCEEDED, run.Status.FAILED),
    }


def import_run_rejected_csv_lines(*, run) -> Iterator[str]:
    """The rejected rows of a run as CSV lines: the file's columns, then an ``error`` column.

    Semicolons for a semicolon file, else commas: a semicolon file comes from a decimal-comma
    locale, whose Excel splits a CSV on semicolons only (a comma download opened as one column);
    tabs or pipes would open as one column in every Excel.
    Streams from the database in chunks (constant memory whatever the number of rows).
    """
    from profiles.models import RawRecord
    from profiles.services.imports import EXTRA_VALUES

    headers = list(run.headers or [])
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if run.delimiter == ";" else ",")

    def line(values: list) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([spreadsheet_safe(v) for v in values])
        return buffer.getvalue()

    yield "\ufeff" + line([*headers, "row", "error"])
    rows = (
        RawRecord.objects.filter(import_run=run, status=RawRecord.Status.REJECTED)
        .order_by("row_number")
        .values_list("row_number", "payload", "error")
    )
    for number, payload, error in rows.iterator(chunk_size=2000):
        extra = payload.get(EXTRA_VALUES) or []
        values = [payload.get(h, "") for h in headers] + [number, error]
        if extra:
            values[-1] = f"{error} (extra values: {' | '.join(map(str, extra))})"
        yield line(values)


# The parts of a profile (admin 360 page, REST API) that hold more than the profile itself,
# and the permission a user needs to see each (the same as for the admin list of those rows).
PROFILE_PARTS = {
    "identities": "profiles.view_identity",
    "source_records": "profiles.view_sourcerecord",
    "merges": "profiles.view_mergelog",
    "events": "profiles.view_event",
    "consent": "consent.view_consentrecord",
    "segments": "segments.view_segmentmembership",
    "loyalty": "profiles.view_loyaltymember",
}


def profile_parts(user) -> frozenset[str]:
    """The parts of a profile ``user`` may see."""
    return frozenset(part for part, perm in PROFILE_PARTS.items() if user.has_perm(perm))
