"""Segment count speed on PostgreSQL: the compiler's query against a hand-written one.

Usage (PostgreSQL only; the database is filled with generated rows, so use a scratch one)::

    createdb -h 127.0.0.1 -U postgres cdp_bench_segments
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cdp_bench_segments \\
        .venv/bin/python bench/bench_segments.py --n 1000000 --events-per-profile 10

Profiles and events are generated with set-based SQL (generate_series, deterministic with
setseed), not through the import pipeline; the data is kept and reused while ``--n`` and the
events per profile match (``--regenerate`` forces a fresh load). For each segment the script
times the full ``rules_count`` call (validation + compilation + the COUNT in PostgreSQL) and
the hand-written SQL for the same audience on the same indexes, in the same run, checks that
both give the same number, and prints a table of medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from segments.selectors import rules_count  # noqa: E402

NOW = datetime.now(UTC)

CITIES = ["Berlin", "Hamburg", "München", "Köln", "Leipzig", "New York", "Chicago", "Boston", ""]
COUNTRIES = ["DE", "DE", "DE", "US", "US", "AT", "FR", ""]
LAST_NAMES = ["Müller", "Schmidt", "Meyer", "Weber", "Smith", "Miller", "Jones", "Brown", "Mayer"]
EVENTS = ["Order Completed", "Product Viewed", "Product Viewed", "Product Viewed", "Page Viewed"]


def sql_array(values: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def field(name, operator, value=None):
    node = {"type": "field", "field": name, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


SIX_CONDITIONS = {
    "include": {
        "type": "group",
        "op": "and",
        "children": [
            field("country", "equals", "DE"),
            field("accepts_email_marketing", "equals", True),
            {
                "type": "group",
                "op": "or",
                "children": [
                    field("city", "equals", "Berlin"),
                    field("city", "equals", "Hamburg"),
                ],
            },
            field("total_spent", "greater", 100),
            {
                "type": "event",
                "event": "Order Completed",
                "frequency": {"op": "at_least", "count": 2},
                "window": {"type": "last_days", "days": 90},
                "where": [],
            },
        ],
    }
}
SIX_CONDITIONS_SQL = """
SELECT count(*) FROM profiles_profile p
WHERE p.country = 'DE'
  AND (p.attributes ->> 'accepts_email_marketing')::boolean
  AND (p.city = 'Berlin' OR p.city = 'Hamburg')
  AND (p.attributes ->> 'total_spent')::numeric > 100
  AND (SELECT count(*) FROM profiles_event e
       WHERE e.profile_id = p.id AND e.name = 'Order Completed'
         AND e.timestamp >= %(now)s - interval '90 days') >= 2
"""
SIMPLE = {"include": {"type": "group", "op": "and", "children": [field("country", "equals", "AT")]}}
SIMPLE_SQL = "SELECT count(*) FROM profiles_profile p WHERE p.country = 'AT'"
JSON_ATTRIBUTE = {
    "include": {"type": "group", "op": "and", "children": [field("total_spent", "greater", 450)]}
}
JSON_ATTRIBUTE_SQL = (
    "SELECT count(*) FROM profiles_profile p WHERE (p.attributes ->> 'total_spent')::numeric > 450"
)
NEVER_PURCHASED = {
    "include": {
        "type": "group",
        "op": "and",
        "children": [
            field("city", "equals", "Leipzig"),
            {
                "type": "event",
                "event": "Order Completed",
                "frequency": {"op": "at_most", "count": 0},
                "window": None,
                "where": [],
            },
        ],
    }
}
NEVER_PURCHASED_SQL = """
SELECT count(*) FROM profiles_profile p
WHERE p.city = 'Leipzig'
  AND NOT EXISTS (SELECT 1 FROM profiles_event e
                  WHERE e.profile_id = p.id AND e.name = 'Order Completed')
"""

CASES = [
    ("6 conditions, nested OR, event ≥2 in 90 d", SIX_CONDITIONS, SIX_CONDITIONS_SQL),
    ("simple attribute: country = AT", SIMPLE, SIMPLE_SQL),
    ("JSON attribute: total_spent > 450", JSON_ATTRIBUTE, JSON_ATTRIBUTE_SQL),
    ("city = Leipzig, never ordered", NEVER_PURCHASED, NEVER_PURCHASED_SQL),
]


def loaded(n: int, events: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM profiles_profile")
        profiles = cursor.fetchone()[0]
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'profiles_event'")
        estimate = cursor.fetchone()[0]
    return profiles == n and abs(estimate - events) <= events * 0.02


def generate(n: int, per_profile: int) -> None:
    """Profiles and events with set-based SQL; indexes are rebuilt after the load."""
    events = n * per_profile
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE profiles_event, profiles_sourcerecord, profiles_profile, "
            "segments_segmentmembership, segments_segmentmembershipchange CASCADE"
        )
        cursor.execute(
            "INSERT INTO profiles_datasource (name, kind, preset, priority, default_region, "
            "write_key, created_at) VALUES ('bench', 'api', '', 100, '', 'bench-write-key', now()) "
            "ON CONFLICT (name) DO NOTHING"
        )
        cursor.execute("SELECT id FROM profiles_datasource WHERE name = 'bench'")
        source_id = cursor.fetchone()[0]
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'profiles_event' "
            "AND indexname NOT LIKE '%%_pkey'"
        )
        all_indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'profiles_event'::regclass "
            "AND contype = 'u'"
        )
        unique = [row[0] for row in cursor.fetchall()]
        event_indexes = [(name, sql) for name, sql in all_indexes if name not in unique]
        for name in unique:
            cursor.execute(f'ALTER TABLE profiles_event DROP CONSTRAINT "{name}"')
        for name, _ in event_indexes:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        cursor.execute("SET session_replication_role = replica")  # no FK triggers while loading
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            f"""
            INSERT INTO profiles_profile (first_name, last_name, email, phone, city, country,
                attributes, attribute_sources, created_at, updated_at)
            SELECT 'F' || g,
                   ({sql_array(LAST_NAMES)})[1 + floor(random() * {len(LAST_NAMES)})::int],
                   'p' || g || '@example.com', '',
                   ({sql_array(CITIES)})[1 + floor(random() * {len(CITIES)})::int],
                   ({sql_array(COUNTRIES)})[1 + floor(random() * {len(COUNTRIES)})::int],
                   CASE WHEN random() < 0.8
                        THEN jsonb_build_object('total_spent', round((random() * 500)::numeric, 2),
                                                'accepts_email_marketing', random() < 0.5)
                        ELSE '{{}}'::jsonb END,
                   '{{}}'::jsonb,
                   %(now)s - random() * interval '730 days',
                   %(now)s
            FROM generate_series(1, %(n)s) g
            """,
            {"n": n, "now": NOW},
        )
        cursor.execute("SELECT min(id) FROM profiles_profile")
        first_id = cursor.fetchone()[0]
        cursor.execute(
            f"""
            INSERT INTO profiles_event (source_id, message_id, type, name, properties, context,
                timestamp, received_at, user_id, anonymous_id, profile_id)
            SELECT %(source)s, 'm-' || g, 'track',
                   ({sql_array(EVENTS)})[1 + floor(random() * {len(EVENTS)})::int],
                   jsonb_build_object('total', round((random() * 200)::numeric, 2)),
                   '{{}}'::jsonb,
                   %(now)s - random() * interval '400 days', %(now)s, '', '',
                   %(first)s + floor(random() * %(n)s)::bigint
            FROM generate_series(1, %(events)s) g
            """,
            {"source": source_id, "now": NOW, "first": first_id, "n": n, "events": events},
        )
        cursor.execute("SET session_replication_role = DEFAULT")
        for _name, definition in event_indexes:
            cursor.execute(definition)
        for name in unique:
            cursor.execute(
                f'ALTER TABLE profiles_event ADD CONSTRAINT "{name}" UNIQUE (source_id, message_id)'
            )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE profiles_profile")
        cursor.execute("VACUUM ANALYZE profiles_event")
    print(
        f"generated {n:,} profiles and {events:,} events in {time.perf_counter() - started:.0f} s"
    )


def timed(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up (caches, plan)
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def raw_count(sql: str):
    def run():
        with connection.cursor() as cursor:
            cursor.execute(sql, {"now": NOW})
            return cursor.fetchone()[0]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="profiles (default 100,000)")
    parser.add_argument("--events-per-profile", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query (median)")
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("This benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")

    call_command("migrate", verbosity=0)
    events = args.n * args.events_per_profile
    if args.regenerate or not loaded(args.n, events):
        generate(args.n, args.events_per_profile)
    else:
        print(f"reusing {args.n:,} profiles and ~{events:,} events")

    rows = []
    for label, rules, sql in CASES:
        orm_ms, orm_count = timed(lambda rules=rules: rules_count(rules, now=NOW), args.repeat)
        sql_ms, sql_count = timed(raw_count(sql), args.repeat)
        if orm_count != sql_count:
            sys.exit(f"{label}: compiler counted {orm_count}, hand-written SQL {sql_count}")
        rows.append((label, orm_count, orm_ms, sql_ms, orm_ms / sql_ms if sql_ms else 0))

    print(
        f"\nPostgreSQL {connection.pg_version // 10000}, {args.n:,} profiles, {events:,} events, "
        f"median of {args.repeat} runs after a warm-up\n"
    )
    header = (
        f"| {'segment':<42} | {'members':>9} | {'compiler ms':>11} | {'hand SQL ms':>11} | ratio |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for label, count, orm_ms, sql_ms, ratio in rows:
        print(f"| {label:<42} | {count:>9,} | {orm_ms:>11.1f} | {sql_ms:>11.1f} | {ratio:>5.2f} |")


if __name__ == "__main__":
    main()
