"""Benchmark of loyalty at scale: bulk enrolment, earning over order events, a re-run (retries
earn nothing), tier evaluation, expiry, redemptions, a bulk adjustment and segment queries.

Usage (PostgreSQL is the production setting; the database is created/migrated, its loyalty and
profile tables must be empty)::

    .venv/bin/python bench/generate.py --customers 100000 --events 1000000 --seed 42 \\
        --out var/bench-100k
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cdp_bench_loyalty \\
        .venv/bin/python bench/loyalty.py --data var/bench-100k [--limit-events N]

Only ``Order Completed`` / ``Order Refunded`` lines are loaded (about 18% of the events), as
Events of one profile per userId/anonymousId: the loader bypasses ingestion and resolution,
which have their own benchmarks; it is not timed. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from profiles.loyalty_selectors import loyalty_member_condition, loyalty_summary  # noqa: E402
from profiles.models import (  # noqa: E402
    DataSource,
    Event,
    LoyaltyEarningRule,
    LoyaltyLedgerEntry,
    LoyaltyMember,
    LoyaltyProgram,
    LoyaltyTier,
    Profile,
)
from profiles.services import loyalty  # noqa: E402
from profiles.services.tracking import parse_timestamp  # noqa: E402

ROWS: list[tuple[str, int, float]] = []


def step(name: str):
    """Time a block: ``with step(name) as t: ...; t.rows = n``."""

    class _Timer:
        rows = 0

        def __enter__(self):
            self.start = time.perf_counter()
            return self

        def __exit__(self, *exc):
            ROWS.append((name, self.rows, time.perf_counter() - self.start))

    return _Timer()


def load(data: Path, limit: int | None) -> int:
    source, _ = DataSource.objects.get_or_create(name="bench-web", defaults={"kind": "api"})
    profiles: dict[str, int] = {}
    batch: list[Event] = []
    loaded = 0

    def flush():
        keys = {e._key for e in batch} - profiles.keys()
        if keys:
            created = Profile.objects.bulk_create([Profile() for _ in keys], batch_size=5000)
            profiles.update(zip(sorted(keys), (p.pk for p in created), strict=True))
        for event in batch:
            event.profile_id = profiles[event._key]
        Event.objects.bulk_create(batch, batch_size=5000, ignore_conflicts=True)
        batch.clear()

    with open(data / "events.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if '"Order Completed"' not in line and '"Order Refunded"' not in line:
                continue
            message = json.loads(line)
            if message.get("type") != "track":
                continue
            event = Event(
                source=source,
                message_id=message["messageId"],
                type="track",
                name=message["event"],
                properties=message.get("properties") or {},
                timestamp=parse_timestamp(message["timestamp"]),
                user_id=message.get("userId") or "",
            )
            event._key = message.get("userId") or "anon:" + message.get("anonymousId", "")
            batch.append(event)
            loaded += 1
            if len(batch) >= 20000:
                flush()
            if limit and loaded >= limit:
                break
    if batch:
        flush()
    return loaded


def program_create() -> LoyaltyProgram:
    program = LoyaltyProgram.objects.create(
        name="Bench club", slug="bench", points_validity_days=365, member_number_prefix="BC"
    )
    LoyaltyTier.objects.create(program=program, name="Base", rank=0)
    LoyaltyTier.objects.create(program=program, name="Silver", rank=1, min_qualifying_points=500)
    LoyaltyTier.objects.create(
        program=program, name="Gold", rank=2, min_qualifying_points=1500, min_spend=3000
    )
    rule = LoyaltyEarningRule
    rule.objects.create(program=program, name="per unit", kind=rule.Kind.PER_UNIT)
    rule.objects.create(
        program=program, name="qualifying", kind=rule.Kind.PER_UNIT, currency="qualifying"
    )
    rule.objects.create(
        program=program, name="first order", kind=rule.Kind.FIRST_ORDER, bonus_points=100
    )
    return program


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="bench/generate.py output")
    parser.add_argument("--limit-events", type=int, default=None)
    parser.add_argument("--redemptions", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    call_command("migrate", verbosity=0)
    if LoyaltyMember.objects.exists() or Profile.objects.exists():
        print("The database already holds profiles or members: use an empty one.")
        return 2
    started = time.perf_counter()
    orders = load(args.data, args.limit_events)
    load_seconds = time.perf_counter() - started
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum does after a bulk load
    profile_ids = list(Profile.objects.values_list("pk", flat=True))
    first_event = Event.objects.order_by("timestamp").values_list("timestamp", flat=True).first()
    enrolled_at = first_event - timedelta(days=1)
    end = datetime(2026, 12, 1, tzinfo=UTC)
    program = program_create()

    with step("enrol members (bulk)") as t:
        t.rows = loyalty.loyalty_members_enrol_bulk(
            program=program, profile_ids=profile_ids, at=enrolled_at
        )["enrolled"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    with step("earn from order events (incl. refunds, tiers)") as t:
        counts = loyalty.loyalty_events_earn(program=program, at=end)
        t.rows = counts.get("events", 0)
    with step("earn again (nothing new: idempotent)") as t:
        again = loyalty.loyalty_events_earn(program=program, at=end)
        t.rows = again.get("events", 0)
    with step("evaluate tiers (all members)") as t:
        t.rows = loyalty.loyalty_tiers_evaluate(program=program, at=end)["evaluated"]
    with step("expire points (daily job at the end of the data)") as t:
        t.rows = loyalty.loyalty_points_expire(program=program, at=end)["expired_lots"]
    rng = random.Random(args.seed)
    rich = list(
        LoyaltyMember.objects.filter(program=program, points_balance__gte=10).values_list(
            "pk", flat=True
        )
    )
    picks = rng.sample(rich, min(args.redemptions, len(rich)))
    with step(f"redeem 10 points x {len(picks)} (one transaction each)") as t:
        for pk in picks:
            member = LoyaltyMember.objects.get(pk=pk)
            loyalty.loyalty_points_redeem(member=member, points=10, reason="bench", at=end)
        t.rows = len(picks)
    sample = rng.sample(profile_ids, min(10000, len(profile_ids)))
    members = list(LoyaltyMember.objects.filter(profile_id__in=sample).values_list("pk", flat=True))
    with step("bulk adjustment +25 (admin action)") as t:
        entries, _skipped = loyalty.loyalty_points_adjust_bulk(
            member_ids=members, points=25, reason="bench goodwill", at=end
        )
        t.rows = len(entries)
    with step("segment count: Gold and balance >= 500") as t:
        t.rows = Profile.objects.filter(
            loyalty_member_condition(
                program_id=program.pk, tier__name="Gold", points_balance__gte=500
            )
        ).count()
    with step("profile 360 summary x 200") as t:
        for pid in sample[:200]:
            loyalty_summary(Profile(pk=pid))
        t.rows = 200
    with step("expire points (400 days later: all that is left)") as t:
        t.rows = loyalty.loyalty_points_expire(program=program, at=end + timedelta(days=400))[
            "expired_lots"
        ]

    ledger = LoyaltyLedgerEntry.objects.count()
    print(
        f"\nloyalty benchmark: {connection.vendor}, {len(profile_ids):,} profiles, "
        f"{orders:,} order/refund events loaded in {load_seconds:.1f} s (not timed below), "
        f"{ledger:,} ledger entries at the end"
    )
    print(
        f"earning counts: orders {counts.get('orders', 0):,}, refunds "
        f"{counts.get('refunds', 0):,}, points {counts.get('points_earned', 0):,}, "
        f"reversed {counts.get('points_reversed', 0):,}, duplicates "
        f"{counts.get('duplicate_orders', 0):,}\n"
    )
    print(f"| {'step':<52} | {'rows':>10} | {'seconds':>8} | {'rows/s':>10} |")
    print(f"|{'-' * 54}|{'-' * 12}|{'-' * 10}|{'-' * 12}|")
    for name, rows, seconds in ROWS:
        rate = f"{rows / seconds:,.0f}" if seconds > 0 and rows else "-"
        print(f"| {name:<52} | {rows:>10,} | {seconds:>8.2f} | {rate:>10} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
