"""Benchmark of the privacy paths on real data: consent derivation and the suppression check
inside a Shopify import, the consent gate count, erasure, and the re-import of erased persons.

    .venv/bin/python bench/privacy.py --n 100000 [--erase 20] [--database-url postgres://...]

Generates customers with bench/generate.py into var/bench-privacy-N/ (reused when present),
imports them into a fresh database (SQLite in that directory, or --database-url, whose database
is dropped and re-created), and prints a table. Timings are wall-clock on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="customers to generate and import")
    parser.add_argument("--erase", type=int, default=20, help="persons to erase")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    data_dir = ROOT / "var" / f"bench-privacy-{args.n}"
    csv_path = data_dir / "shopify_customers.csv"
    if not csv_path.exists():
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "generate.py"),
                "--customers",
                str(args.n),
                "--events",
                "0",
                "--seed",
                str(args.seed),
                "--out",
                str(data_dir),
            ],
            check=True,
        )
    os.environ["CDP_VAR_DIR"] = str(data_dir)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
        (data_dir / "cdp.sqlite3").unlink(missing_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if args.database_url:
        _recreate_postgres(args.database_url)
    call_command("migrate", verbosity=0)
    run_benchmark(csv_path, args, connection.vendor)


def _recreate_postgres(url: str) -> None:
    import psycopg
    from django.db import connection

    connection.close()
    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


class Timer:
    """Wraps a function and adds up the time spent in it."""

    def __init__(self, module, name: str):
        self.module, self.name = module, name
        self.original = getattr(module, name)
        self.seconds = 0.0
        self.calls = 0

        def wrapped(*a, **kw):
            start = time.perf_counter()
            try:
                return self.original(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1

        setattr(module, name, wrapped)


def per_call(timer: Timer) -> float:
    """Milliseconds per call."""
    return 1000 * timer.seconds / max(timer.calls, 1)


def run_benchmark(csv_path: Path, args, vendor: str) -> None:
    from django.contrib.auth.models import User
    from django.core.files import File

    from consent.models import ConsentRecord, Suppression
    from consent.selectors import consent_granted_profiles
    from consent.services.requests import request_complete, request_create, request_run
    from profiles.models import DataSource, Identity, Profile, RawRecord
    from profiles.services import imports
    from profiles.services.imports import import_run_create

    rows: list[tuple[str, str, str]] = []

    def row(step: str, value: str, note: str = "") -> None:
        rows.append((step, value, note))
        print(f"  {step}: {value} {note}", file=sys.stderr)

    consent_timer = Timer(imports, "consent_from_source_records")
    suppression_timer = Timer(imports, "suppression_check")
    source = DataSource.objects.create(name="shop", preset="shopify")
    start = time.perf_counter()
    with open(csv_path, "rb") as handle:
        run = import_run_create(source=source, file=File(handle, name="shopify.csv"), sync=True)
    total = time.perf_counter() - start
    row(
        "import (all steps)",
        f"{total:.1f} s",
        f"{run.rows_done:,} rows, {run.rows_done / total:,.0f} rows/s",
    )
    row(
        "  of which consent derivation",
        f"{consent_timer.seconds:.1f} s",
        f"{consent_timer.calls} batches, {per_call(consent_timer):.0f} ms/batch",
    )
    row(
        "  of which suppression check",
        f"{suppression_timer.seconds:.2f} s",
        f"{per_call(suppression_timer):.1f} ms/batch (empty list)",
    )
    row(
        "consent records written",
        f"{ConsentRecord.objects.count():,}",
        f"{Profile.objects.count():,} profiles",
    )

    start = time.perf_counter()
    granted = consent_granted_profiles("email_marketing", "email").count()
    row("consent gate count (SQL)", f"{time.perf_counter() - start:.2f} s", f"{granted:,} granted")

    officer = User.objects.create_superuser("bench", password="x")
    emails = list(
        Identity.objects.filter(type="email", key__isnull=False)
        .order_by("id")
        .values_list("key", flat=True)[: args.erase * 50 : 50]
    )
    start = time.perf_counter()
    for email in emails:
        dsr = request_create(
            type="erasure",
            regime="gdpr",
            requester_email=email,
            created_by=officer,
            verify="officer",
            verification_method="bench",
        )
        request_run(request=dsr, actor=officer, sync=True)
        request_complete(request=dsr, actor=officer)
    per = (time.perf_counter() - start) / max(len(emails), 1)
    row(
        "erasure per person (find, suppress, delete, scrub)",
        f"{1000 * per:.0f} ms",
        f"{len(emails)} persons, {Suppression.objects.count()} hashes",
    )

    suppression_timer.seconds, suppression_timer.calls = 0.0, 0
    source2 = DataSource.objects.create(name="shop-again", preset="shopify")
    start = time.perf_counter()
    with open(csv_path, "rb") as handle:
        run = import_run_create(source=source2, file=File(handle, name="again.csv"), sync=True)
    total = time.perf_counter() - start
    dropped = RawRecord.objects.filter(import_run=run, status="suppressed").count()
    row("re-import into a second source", f"{total:.1f} s", f"{run.rows_done:,} rows")
    row(
        "  rows dropped by suppression",
        f"{dropped}",
        f"check {per_call(suppression_timer):.1f} ms/batch",
    )

    print()
    print(f"Privacy benchmark: {args.n:,} customers on {vendor} (shared 2-core machine)")
    width = max(len(r[0]) for r in rows)
    print(f"| {'step'.ljust(width)} | {'value':>10} | note |")
    print(f"|{'-' * (width + 2)}|{'-' * 12}|------|")
    for step, value, note in rows:
        print(f"| {step.ljust(width)} | {value:>10} | {note} |")


if __name__ == "__main__":
    main()
