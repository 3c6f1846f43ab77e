"""Dashboard load benchmark: N profiles generated with set-based SQL on PostgreSQL.

    .venv/bin/python bench/bench_dashboards.py --n 1000000            # insights generated in SQL
    .venv/bin/python bench/bench_dashboards.py --n 100000 --compute   # + the real full/incr. run

It uses its own database (default postgres://postgres@127.0.0.1:5432/cdp_bench_insights,
created when missing; override with BENCH_DATABASE_URL) and empties its tables first. Steps:

1. profiles, source records (1.3 per profile), identities, merge logs and merge suggestions;
   with ``--compute`` also order events (60% of profiles, 1-4 orders each, some refunded) and
   page views, then a real full insight run and an incremental run after new orders arrive;
   without it, ProfileInsight rows are generated directly (what a full run would write);
2. the dashboard metrics refresh (the GROUP BY queries every insight run ends with);
3. each dashboard and one profile 360 page requested through Django's test client, logged in:
   1 warm-up, then ``--repeat`` timed requests; median, p95 and max wall time, SQL queries.

It prints one table. Dashboards read only the materialised InsightMetric table, so their time
does not grow with N; the refresh and run times do, and are printed to show it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cdp_bench_insights"


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    if "bench" not in name:
        raise SystemExit(f"Refusing to use {name!r}: the benchmark empties its tables.")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def timed(label: str, timings: list, func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    timings.append((label, time.perf_counter() - start))
    print(f"  {label}: {timings[-1][1]:.1f} s", file=sys.stderr, flush=True)
    return result


def generate(n: int, compute: bool) -> None:
    from django.db import connection

    from profiles.models import DataSource

    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE profiles_event, profiles_identity, profiles_sourcerecord, profiles_mergelog,"
            " profiles_mergesuggestion, profiles_profileredirect, profiles_rawrecord,"
            " profiles_importrun, profiles_datasource, profiles_profile, insights_profileinsight,"
            " insights_insightrun, insights_insightmetric, cdp_auditevent CASCADE"
        )
    sources = [
        DataSource.objects.create(name=name, kind=kind)
        for name, kind in (("Shopify", "file"), ("CRM", "file"), ("Web", "api"))
    ]
    s1, s2, s3 = (s.pk for s in sources)
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO profiles_profile (id, first_name, last_name, email, phone, city, country,
                attributes, attribute_sources, created_at, updated_at)
            SELECT i, 'First' || i, 'Last' || i, 'p' || i || '@example.org', '', 'Berlin', 'DE',
                '{}', '{}', now() - (i %% 730) * interval '1 day', now()
            FROM generate_series(1, %s) AS i
            """,
            [n],
        )
        cur.execute("SELECT setval(pg_get_serial_sequence('profiles_profile', 'id'), %s)", [n])
        cur.execute(
            """
            INSERT INTO profiles_sourcerecord (source_id, external_key, attributes, traits,
                observed_at, content_hash, profile_id, created_at, updated_at)
            SELECT CASE WHEN i %% 10 < 7 THEN %s ELSE %s END, 'k' || i,
                '{}'::jsonb, '{}'::jsonb, '{}'::jsonb, '', i, now(), now()
            FROM generate_series(1, %s) AS i
            UNION ALL
            SELECT %s, 'web' || i, '{}'::jsonb, '{}'::jsonb, '{}'::jsonb, '', i, now(), now()
            FROM generate_series(1, %s) AS i WHERE i %% 10 < 3
            """,
            [s1, s2, n, s3, n],
        )
        cur.execute(
            """
            INSERT INTO profiles_identity (type, raw_value, key, flag, source_record_id,
                profile_id, created_at)
            SELECT 'email', 'p' || profile_id || '@example.org', 'p' || profile_id ||
                '@example.org', '', id, profile_id, now()
            FROM profiles_sourcerecord
            """
        )
        cur.execute(
            """
            INSERT INTO profiles_mergelog (survivor_id, merged_ids, reason, snapshot, created_at,
                survivor_snapshot, extensions)
            SELECT i * 50, '[]', 'shared identifier', '[]',
                now() - (i %% 180) * interval '1 day', '{}', '{}'
            FROM generate_series(1, %s / 50) AS i
            """,
            [n],
        )
        cur.execute(
            """
            INSERT INTO profiles_mergesuggestion (left_id, right_id, score, field_scores, rule,
                reasons, status, created_at)
            SELECT i * 200, i * 200 + 1, 0.8, '{}', 'bench', '[]',
                CASE WHEN i %% 3 = 0 THEN 'accepted' ELSE 'pending' END, now()
            FROM generate_series(1, %s / 200) AS i
            """,
            [n],
        )
        if compute:
            cur.execute(
                """
                INSERT INTO profiles_event (source_id, message_id, type, name, properties, context,
                    timestamp, received_at, user_id, anonymous_id, profile_id)
                SELECT %s, 'o-' || i || '-' || k, 'track', 'Order Completed',
                    jsonb_build_object('order_id', 'o-' || i || '-' || k,
                        'total', round((10 + (i * 7 + k * 13) %% 190)::numeric, 2),
                        'currency', 'EUR'),
                    '{}', now() - ((i * 31 + k * 97) %% 700) * interval '1 day', now(), '', '', i
                FROM generate_series(1, %s) AS i
                CROSS JOIN LATERAL generate_series(1, 1 + i %% 4) AS k
                WHERE i %% 5 < 3
                """,
                [s1, n],
            )
            cur.execute(
                """
                INSERT INTO profiles_event (source_id, message_id, type, name, properties, context,
                    timestamp, received_at, user_id, anonymous_id, profile_id)
                SELECT %s, 'r-' || i, 'track', 'Order Refunded',
                    jsonb_build_object('order_id', 'o-' || i || '-1'), '{}', now(), now(), '', '', i
                FROM generate_series(1, %s) AS i WHERE i %% 5 = 0 AND i %% 50 = 0
                """,
                [s1, n],
            )
            cur.execute(
                """
                INSERT INTO profiles_event (source_id, message_id, type, name, properties, context,
                    timestamp, received_at, user_id, anonymous_id, profile_id)
                SELECT %s, 'pv-' || i || '-' || k, 'page', 'Home', '{}', '{}',
                    now() - ((i + k * 5) %% 60) * interval '1 day', now(), '', '', i
                FROM generate_series(1, %s) AS i CROSS JOIN generate_series(1, 2) AS k
                """,
                [s3, n],
            )
        else:
            cur.execute(
                """
                INSERT INTO insights_profileinsight (profile_id, order_count, revenue, refunded,
                    average_order_value, unconverted_order_count, first_order_at, last_order_at,
                    days_since_last_order, purchase_days, recency_score, frequency_score,
                    monetary_score, rfm_group, events_30d, active_days_30d, engagement_score,
                    predicted_purchases_365d, probability_alive, predicted_clv, custom,
                    computed_at)
                SELECT i, c, c * 42.5, 0, CASE WHEN c > 0 THEN 42.5 END, 0,
                    CASE WHEN c > 0 THEN now() - (i %% 700) * interval '1 day' END,
                    CASE WHEN c > 0 THEN now() - (i %% 300) * interval '1 day' END,
                    CASE WHEN c > 0 THEN i %% 300 END, c,
                    CASE WHEN c > 0 THEN 1 + i %% 5 END, CASE WHEN c > 0 THEN 1 + (i / 5) %% 5 END,
                    CASE WHEN c > 0 THEN 1 + (i / 25) %% 5 END,
                    CASE WHEN c > 0 THEN (ARRAY['champions','loyal','potential_loyalists',
                        'at_risk','hibernating','lost'])[1 + i %% 6] ELSE '' END,
                    i %% 9, i %% 7, (i %% 7) * 100 / 30,
                    CASE WHEN c > 0 THEN (i %% 100) / 25.0 END,
                    CASE WHEN c > 0 THEN (i %% 100) / 100.0 END,
                    CASE WHEN c > 0 THEN (i %% 3000) * 1.0 END, '{}', now()
                FROM (SELECT i, CASE WHEN i %% 5 < 3 THEN 1 + i %% 4 ELSE 0 END AS c
                      FROM generate_series(1, %s) AS i) AS g
                """,
                [n],
            )
        cur.execute("ANALYZE")


def measure(client, url: str, repeat: int) -> tuple[list[float], int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url)  # warm-up
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")
    times = []
    with CaptureQueriesContext(connection) as queries:
        for _ in range(repeat):
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
    return times, len(queries) // repeat, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="profiles (1,000,000 = issue)")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--compute", action="store_true", help="run the real insight jobs")
    parser.add_argument("--skip-generate", action="store_true", help="reuse the last data")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from insights.models import InsightRun
    from insights.selectors import DASHBOARDS
    from insights.services.metrics import dashboard_metrics_refresh
    from insights.services.runs import insight_run_create

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    timings: list[tuple[str, float]] = []
    if not args.skip_generate:
        print(f"generating {args.n:,} profiles", file=sys.stderr)
        timed("generate (SQL)", timings, generate, args.n, args.compute)
    if args.compute:
        timed("full insight run", timings, insight_run_create, kind="full", sync=True)
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute(
                """INSERT INTO profiles_event (source_id, message_id, type, name, properties,
                    context, timestamp, received_at, user_id, anonymous_id, profile_id)
                SELECT (SELECT min(id) FROM profiles_datasource), 'new-' || i, 'track',
                    'Order Completed', jsonb_build_object('order_id', 'new-' || i, 'total', 20),
                    '{}', now(), now(), '', '', i
                FROM generate_series(1, %s, 100) AS i""",
                [args.n],
            )
        timed(
            f"incremental run ({args.n // 100:,} profiles)",
            timings,
            insight_run_create,
            kind=InsightRun.Kind.INCREMENTAL,
            sync=True,
        )
    else:
        timed("dashboard metrics refresh", timings, dashboard_metrics_refresh)

    User.objects.filter(username="bench").delete()
    User.objects.create_superuser("bench", "bench@example.org", "bench-pw-1")
    client = Client()
    client.login(username="bench", password="bench-pw-1")
    rows = []
    for slug in DASHBOARDS:
        times, queries, size = measure(
            client, f"/admin/insights/profileinsight/dashboards/{slug}/", args.repeat
        )
        rows.append((f"dashboard: {slug}", times, queries, size))
    times, queries, size = measure(
        client, f"/admin/insights/profileinsight/profile/{args.n // 2 + 1}/", args.repeat
    )
    rows.append(("profile 360 page", times, queries, size))

    print(f"\nprofiles: {args.n:,}   database: PostgreSQL   repeat: {args.repeat}\n")
    print(f"| {'step':<42} | {'seconds':>9} |")
    print(f"|{'-' * 44}|{'-' * 11}:|")
    for label, seconds in timings:
        print(f"| {label:<42} | {seconds:>9.1f} |")
    print()
    print(f"| {'page':<24} | {'median ms':>9} | {'p95 ms':>7} | {'max ms':>7} | {'queries':>7} |")
    print(f"|{'-' * 26}|{'-' * 10}:|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|")
    for label, times, queries, _size in rows:
        p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
        print(
            f"| {label:<24} | {statistics.median(times):>9.1f} | {p95:>7.1f} "
            f"| {max(times):>7.1f} | {queries:>7} |"
        )


if __name__ == "__main__":
    main()
