"""Survivorship: which of a profile's source records supplies each attribute.

The active ruleset names a default strategy and per-attribute overrides (source priority, most
recent by event time, most frequent). Each value remembers its source record.
"""

from __future__ import annotations

from collections import defaultdict

from django.utils import timezone

from cdp.bulk import bulk_update_rows
from profiles.models import Profile, SourceRecord

# Canonical attributes copied to indexed Profile columns for search and lists.
PROFILE_COLUMNS = ("first_name", "last_name", "email", "phone", "city", "country")


SOURCE_PRIORITY, MOST_RECENT, MOST_FREQUENT = "source_priority", "most_recent", "most_frequent"


def survivor_values(
    records: list[dict], *, default: str = SOURCE_PRIORITY, overrides: dict | None = None
) -> tuple[dict, dict]:
    """Pick each attribute's value from plain record dicts, by the attribute's strategy.

    Each dict: id, priority, updated_at (ISO text), attributes, observed_at (attribute -> ISO
    event time). Strategies: ``source_priority`` (best priority, then most recent),
    ``most_recent`` (latest event time, so a late-arriving older observation never wins; then
    priority), ``most_frequent`` (the value most records agree on, then priority, then recency).
    Empty values are no evidence. Returns (attributes, attribute -> source record id).
    """
    overrides = overrides or {}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for record in records:
        for name, value in record["attributes"].items():
            if value is not None and value != "":
                counts[(name, str(value).strip().casefold())] += 1
    best: dict[str, tuple] = {}
    for record in records:
        for name, value in record["attributes"].items():
            if value is None or value == "":
                continue
            observed = record["observed_at"].get(name) or record["updated_at"]
            strategy = overrides.get(name, default)
            if strategy == MOST_RECENT:
                rank = (observed, -record["priority"], record["id"])
            elif strategy == MOST_FREQUENT:
                frequency = counts[(name, str(value).strip().casefold())]
                rank = (frequency, -record["priority"], observed, record["id"])
            else:
                rank = (-record["priority"], observed, record["id"])
            if name not in best or rank > best[name][0]:
                best[name] = (rank, value, record["id"])
    attributes = {name: entry[1] for name, entry in sorted(best.items())}
    sources = {name: entry[2] for name, entry in sorted(best.items())}
    return attributes, sources


def _active_strategies() -> tuple[str, dict]:
    from profiles.models import Ruleset

    ruleset = (
        Ruleset.objects.filter(is_active=True)
        .only("survivorship_default", "survivorship_overrides")
        .first()
    )
    if ruleset is None:
        return SOURCE_PRIORITY, {}
    return ruleset.survivorship_default, dict(ruleset.survivorship_overrides or {})


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
    default, overrides = _active_strategies()
    profiles = []
    for profile_id, records in grouped.items():
        attributes, sources = survivor_values(records, default=default, overrides=overrides)
        profile = Profile(pk=profile_id, attributes=attributes, attribute_sources=sources)
        for column in PROFILE_COLUMNS:
            max_length = Profile._meta.get_field(column).max_length
            setattr(profile, column, str(attributes.get(column, ""))[:max_length])
        profile.updated_at = now
        profiles.append(profile)
    bulk_update_rows(
        Profile, profiles, ["attributes", "attribute_sources", *PROFILE_COLUMNS, "updated_at"]
    )
