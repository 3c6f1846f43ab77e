"""Survivorship: which of a profile's source records supplies each attribute.

The active ruleset names a default strategy and per-attribute overrides (source priority, most
recent by event time, most frequent). Each value remembers its source record.

``survivor_values`` is the rule, over plain values. On PostgreSQL, when no attribute uses
``most_frequent`` (whose case folding is Python's), ``profile_attributes_refresh`` runs the
same ranking as one SQL statement per chunk (DISTINCT ON per profile and attribute), so bulk
merges never bring attributes through Python.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import connection
from django.utils import timezone

from cdp.bulk import bulk_update_rows
from profiles.models import (
    DataSource,
    Profile,
    SourceRecord,
    SurvivorshipStrategy,
    survivorship_overrides_valid,
)

# Canonical attributes copied to indexed Profile columns for search and lists.
PROFILE_COLUMNS = ("first_name", "last_name", "email", "phone", "city", "country")


SOURCE_PRIORITY, MOST_RECENT, MOST_FREQUENT = (
    SurvivorshipStrategy.SOURCE_PRIORITY.value,
    SurvivorshipStrategy.MOST_RECENT.value,
    SurvivorshipStrategy.MOST_FREQUENT.value,
)
# From this many profiles on, the SQL refresh turns JIT off and raises work_mem (a small
# refresh is planned far below the JIT cost threshold and sorts in the default work_mem).
BIG_REFRESH = 5000
_ACTIVE = object()  # profile_attributes_refresh reads the active ruleset itself


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


def single_record_values(record_id: int, attributes: dict) -> tuple[dict, dict]:
    """``survivor_values`` of a one-record profile, without ranking: the record's non-empty
    values, each from that record (the same under every strategy)."""
    values = {
        name: value
        for name, value in sorted(attributes.items())
        if value is not None and value != ""
    }
    return values, dict.fromkeys(values, record_id)


_PROFILE_COLUMN_LENGTHS = [Profile._meta.get_field(column).max_length for column in PROFILE_COLUMNS]


def profile_column_values(attributes: dict) -> list[str]:
    """The indexed Profile columns (``PROFILE_COLUMNS`` order) of a profile's attributes."""
    return [
        str(attributes.get(column, ""))[:length]
        for column, length in zip(PROFILE_COLUMNS, _PROFILE_COLUMN_LENGTHS, strict=True)
    ]


def _active_strategies() -> tuple[str, dict]:
    from profiles.models import Ruleset

    return _strategies(
        Ruleset.objects.filter(is_active=True)
        .only("survivorship_default", "survivorship_overrides")
        .first()
    )


def _strategies(ruleset) -> tuple[str, dict]:
    """The default strategy and the valid overrides; entries the admin would refuse (saved
    before it checked them) are ignored rather than stopping every merge and import."""
    if ruleset is None:
        return SOURCE_PRIORITY, {}
    default = ruleset.survivorship_default
    return (
        default if default in SurvivorshipStrategy.values else SOURCE_PRIORITY,
        survivorship_overrides_valid(ruleset.survivorship_overrides),
    )


def _updated_text_sql() -> str:
    """A record's updated_at as Python's ``isoformat()`` writes it (UTC), which
    ``survivor_values`` compares with observed_at texts."""
    utc = "s.updated_at AT TIME ZONE 'UTC'"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
        f"date_part('microseconds', {utc})::int %% 1000000 = 0 THEN '' "
        f"ELSE to_char({utc}, '.US') END || '+00:00'"
    )


def _column_sql(column: str, max_length: int) -> str:
    """``str(attributes.get(column, ""))[:max_length]`` of a JSONB scalar."""
    value = f"(a.attributes -> '{column}')"
    text = (
        f"CASE jsonb_typeof({value}) WHEN 'string' THEN {value} #>> '{{}}' "
        f"WHEN 'boolean' THEN CASE WHEN {value} = 'true' THEN 'True' ELSE 'False' END "
        f"ELSE coalesce({value}::text, '') END"
    )
    return f"left({text}, {max_length})"


def _refresh_sql(profile_ids: list[int], default: str, overrides: dict, chunk: int) -> None:
    profile = connection.ops.quote_name(Profile._meta.db_table)
    record = connection.ops.quote_name(SourceRecord._meta.db_table)
    source = connection.ops.quote_name(DataSource._meta.db_table)
    if default == MOST_RECENT:
        others = [n for n, strategy in overrides.items() if strategy != MOST_RECENT]
        recent = "NOT (kv.key = ANY(%s::text[]))"
    else:
        others = [n for n, strategy in overrides.items() if strategy == MOST_RECENT]
        recent = "kv.key = ANY(%s::text[])"
    columns = ", ".join(
        f"{connection.ops.quote_name(c)} = {_column_sql(c, Profile._meta.get_field(c).max_length)}"
        for c in PROFILE_COLUMNS
    )
    sql = f"""
        WITH recs AS MATERIALIZED (
            SELECT s.id, s.profile_id, s.attributes, s.observed_at, d.priority,
                {_updated_text_sql()} AS updated_text
            FROM {record} s JOIN {source} d ON d.id = s.source_id
            WHERE s.profile_id = ANY(%s::bigint[])
        ), targets AS (
            SELECT DISTINCT profile_id FROM recs
        ), best AS (
            SELECT DISTINCT ON (r.profile_id, kv.key) r.profile_id, kv.key, kv.value, r.id
            FROM recs r CROSS JOIN LATERAL jsonb_each(r.attributes) kv
            CROSS JOIN LATERAL (SELECT coalesce(nullif(r.observed_at ->> kv.key, ''),
                r.updated_text) COLLATE "C" AS observed) o  -- compared as Python compares text
            WHERE kv.value <> 'null'::jsonb AND kv.value <> '""'::jsonb
            ORDER BY r.profile_id, kv.key, CASE WHEN {recent} THEN o.observed END DESC,
                r.priority ASC, o.observed DESC, r.id DESC
        ), a AS (
            SELECT t.profile_id,
                coalesce(jsonb_object_agg(b.key, b.value) FILTER (WHERE b.key IS NOT NULL),
                    '{{}}'::jsonb) AS attributes,
                coalesce(jsonb_object_agg(b.key, b.id) FILTER (WHERE b.key IS NOT NULL),
                    '{{}}'::jsonb) AS sources
            FROM targets t LEFT JOIN best b ON b.profile_id = t.profile_id
            GROUP BY t.profile_id
        )
        UPDATE {profile} p SET attributes = a.attributes, attribute_sources = a.sources,
            {columns}, updated_at = %s
        FROM a WHERE p.id = a.profile_id
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        if not connection.get_autocommit() and len(profile_ids) >= BIG_REFRESH:
            cursor.execute("SET LOCAL jit = off")  # compiling costs more than running it
            cursor.execute("SET LOCAL work_mem = '256MB'")
        for start in range(0, len(profile_ids), chunk):
            part = profile_ids[start : start + chunk]
            cursor.execute(sql, [part, others, now])


def profile_attributes_refresh(
    *, profile_ids: list[int], chunk: int = 50_000, ruleset=_ACTIVE
) -> None:
    """Recompute the derived attributes of these profiles from their source records.

    ``ruleset``: the active ruleset (or None) when the caller has read it already; by default
    it is read here.
    """
    if not profile_ids:
        return
    default, overrides = _active_strategies() if ruleset is _ACTIVE else _strategies(ruleset)
    if connection.vendor == "postgresql" and MOST_FREQUENT not in {default, *overrides.values()}:
        _refresh_sql(sorted(set(profile_ids)), default, overrides, chunk)
        return
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
        attributes, sources = survivor_values(records, default=default, overrides=overrides)
        profile = Profile(pk=profile_id, attributes=attributes, attribute_sources=sources)
        for column, value in zip(PROFILE_COLUMNS, profile_column_values(attributes), strict=True):
            setattr(profile, column, value)
        profile.updated_at = now
        profiles.append(profile)
    bulk_update_rows(
        Profile, profiles, ["attributes", "attribute_sources", *PROFILE_COLUMNS, "updated_at"]
    )
