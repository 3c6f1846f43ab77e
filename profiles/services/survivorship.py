"""Survivorship: which of a profile's source records supplies each attribute.

The rule (for now one per workspace): the source with the best (lowest) priority wins; among
equals, the most recently observed value. Each value remembers its source record.
"""

from __future__ import annotations

from collections import defaultdict

from django.utils import timezone

from cdp.bulk import bulk_update_rows
from profiles.models import Profile, SourceRecord

# Canonical attributes copied to indexed Profile columns for search and lists.
PROFILE_COLUMNS = ("first_name", "last_name", "email", "phone", "city", "country")


def survivor_values(records: list[dict]) -> tuple[dict, dict]:
    """Pick each attribute's value from plain record dicts.

    Each dict: id, priority, updated_at (ISO text), attributes, observed_at.
    Returns (attributes, attribute -> source record id).
    """
    best: dict[str, tuple] = {}
    for record in records:
        for name, value in record["attributes"].items():
            if value is None or value == "":
                continue
            observed = record["observed_at"].get(name) or record["updated_at"]
            rank = (-record["priority"], observed, record["id"])
            if name not in best or rank > best[name][0]:
                best[name] = (rank, value, record["id"])
    attributes = {name: entry[1] for name, entry in sorted(best.items())}
    sources = {name: entry[2] for name, entry in sorted(best.items())}
    return attributes, sources


def profile_attributes_refresh(*, profile_ids: list[int]) -> None:
    """Recompute the derived attributes of these profiles from their source records."""
    grouped: dict[int, list[dict]] = defaultdict(list)
    for start in range(0, len(profile_ids), 2000):
        rows = SourceRecord.objects.filter(profile_id__in=profile_ids[start : start + 2000]).values(
            "id", "profile_id", "attributes", "observed_at", "updated_at", "source__priority"
        )
        for row in rows:
            grouped[row["profile_id"]].append(
                {
                    "id": row["id"],
                    "priority": row["source__priority"],
                    "updated_at": row["updated_at"].isoformat(),
                    "attributes": row["attributes"] or {},
                    "observed_at": row["observed_at"] or {},
                }
            )
    now = timezone.now()
    profiles = []
    for profile_id, records in grouped.items():
        attributes, sources = survivor_values(records)
        profile = Profile(pk=profile_id, attributes=attributes, attribute_sources=sources)
        for column in PROFILE_COLUMNS:
            max_length = Profile._meta.get_field(column).max_length
            setattr(profile, column, str(attributes.get(column, ""))[:max_length])
        profile.updated_at = now
        profiles.append(profile)
    bulk_update_rows(
        Profile, profiles, ["attributes", "attribute_sources", *PROFILE_COLUMNS, "updated_at"]
    )
