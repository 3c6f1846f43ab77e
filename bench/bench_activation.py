"""Benchmark: exporting an N-member audience to CSV, against a plain COPY TO of the same columns.

Usage (PostgreSQL; the database is emptied of profiles and activation data first)::

    createdb -h 127.0.0.1 -U postgres cdp_activation_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cdp_activation_bench \\
        .venv/bin/python bench/bench_activation.py --n 1000000

Rows are generated with set-based SQL (generate_series): N profiles, each with a source record
and an e-mail identity. Prints one table:

The audience is a segment of every profile, its membership written set-based.

- ``COPY TO (baseline)``: ``COPY (SELECT id, e-mail key, first_name, last_name, country ...)
  TO STDOUT`` into a file, the same columns with no consent check, no pseudonymous id.
- ``COPY TO with the HMAC id column``: the same, with the id replaced by the HMAC-SHA256
  expression the export computes (shows what the pseudonymous id alone costs).
- ``activation full CSV``: a real run (activation_run_execute): exclusions counted, rows
  selected with their contact point by source priority, HMAC ids computed, file written
  (COPY on PostgreSQL); ``+ snapshot`` adds the set-based snapshot refresh the run also does.
- ``activation full JSONL``: the Python streaming path (server-side cursor, chunked).
- ``changes-only run``: after changing 1% of the profiles, the delta run (stage + write).

``RSS Δ`` is the growth of the process's peak resident memory during that step: flat memory
means it stays near zero whatever N is.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from activation.models import Activation, ActivationRun, Destination  # noqa: E402
from activation.selectors import hmac_sql  # noqa: E402
from activation.services.files import resolve_export  # noqa: E402
from activation.services.runs import activation_run_execute  # noqa: E402
from segments.models import Segment  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sql(statement: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or [])


def reset_activation() -> None:
    sql(
        "TRUNCATE activation_activationmember, activation_runitem, activation_deliverybatch, "
        "activation_activationrun, activation_activation, activation_destination "
        "RESTART IDENTITY CASCADE"
    )


def generate(n: int) -> None:
    sql(
        "TRUNCATE profiles_identity, profiles_sourcerecord, profiles_profile "
        "RESTART IDENTITY CASCADE"
    )
    sql("DELETE FROM profiles_datasource WHERE name = 'bench'")
    sql(
        "INSERT INTO profiles_datasource (name, kind, preset, priority, default_region, created_at)"
        " VALUES ('bench', 'file', '', 10, '', now())"
    )
    countries = "(ARRAY['DE','FR','US','GB','NL','ES','IT'])[1 + g %% 7]"
    sql(
        "INSERT INTO profiles_profile (first_name, last_name, email, phone, city, country, "
        "attributes, attribute_sources, created_at, updated_at) "
        "SELECT 'First' || g, 'Last' || g, 'person' || g || '@example.com', '',"
        " 'City' || g %% 1000,"
        f" {countries}, jsonb_build_object('tier', (ARRAY['gold','silver','bronze'])[1 + g %% 3]),"
        " '{}'::jsonb, now(), now() FROM generate_series(1, %s) g",
        [n],
    )
    sql(
        "INSERT INTO profiles_sourcerecord (source_id, external_key, attributes, traits, "
        "observed_at, content_hash, profile_id, created_at, updated_at) "
        "SELECT s.id, p.email, '{}'::jsonb, '{}'::jsonb, '{}'::jsonb, '', p.id, now(), now() "
        "FROM profiles_profile p, profiles_datasource s WHERE s.name = 'bench'"
    )
    sql(
        "INSERT INTO profiles_identity (type, raw_value, key, flag, source_record_id, profile_id,"
        " created_at) SELECT 'email', r.external_key, r.external_key, '', r.id, r.profile_id, now()"
        " FROM profiles_sourcerecord r"
    )
    sql("ANALYZE")


def grant_consent() -> None:
    """Everyone granted e-mail marketing on e-mail 2 days ago; every 10th withdrew it 1 day ago."""
    sql("TRUNCATE consent_consentrecord RESTART IDENTITY")
    for status, age, modulo in (("granted", "2 days", 1), ("withdrawn", "1 day", 10)):
        sql(
            "INSERT INTO consent_consentrecord (profile_id, purpose_id, channel_id, status,"
            " lawful_basis, source, captured_at, evidence, conflict, origin_profile_id,"
            " created_at) SELECT p.id, u.id, c.id, %s, 'consent', 'import',"
            " now() - %s::interval, '{}'::jsonb, false, p.id, now()"
            " FROM profiles_profile p, consent_purpose u, consent_channel c"
            " WHERE u.key = 'email_marketing' AND c.key = 'email' AND p.id %% %s = 0",
            [status, age, modulo],
        )
    sql("ANALYZE consent_consentrecord")


def make_segment() -> Segment:
    """A segment of every profile, its membership materialised set-based (as a refresh does)."""
    Segment.objects.filter(name="bench everyone").delete()
    segment = Segment.objects.create(name="bench everyone")
    sql(
        "INSERT INTO segments_segmentmembership (segment_id, profile_id, entered_at) "
        "SELECT %s, id, now() FROM profiles_profile",
        [segment.pk],
    )
    sql("ANALYZE segments_segmentmembership")
    return segment


def timed(fn):
    before = peak_rss_mb()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start, peak_rss_mb() - before


def copy_baseline(path: Path, *, with_hmac: bool = False) -> int:
    """COPY of the same columns straight from the tables (id, e-mail, names, country); with
    ``with_hmac`` the id column is the same HMAC-SHA256 expression the export computes."""
    key = "x" * 64
    ident = "p.id"
    params: list = []
    if with_hmac:
        ident, params = hmac_sql("postgresql", "p.id", key)
    statement = connection.ops.compose_sql(
        f"COPY (SELECT {ident}, i.key, p.first_name, p.last_name, p.country "
        "FROM profiles_profile p JOIN profiles_identity i ON i.profile_id = p.id "
        "AND i.type = 'email' ORDER BY p.id) TO STDOUT WITH (FORMAT csv, HEADER)",
        params,
    )
    with transaction.atomic(), open(path, "wb") as out, connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        with cursor.cursor.copy(statement) as copy:
            for data in copy:
                out.write(data)
        return cursor.cursor.rowcount


def activation_run(activation: Activation) -> ActivationRun:
    run = ActivationRun.objects.create(activation=activation, mode=activation.mode)
    run = activation_run_execute(run=run)  # members: the segment's materialised membership
    if run.status != ActivationRun.Status.SUCCEEDED:
        raise SystemExit(f"run failed: {run.error}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="audience size")
    parser.add_argument("--skip-generate", action="store_true", help="reuse the data")
    parser.add_argument(
        "--csv-only", action="store_true", help="only the COPY baselines and the CSV runs"
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        print("note: not PostgreSQL; the COPY baseline is skipped", file=sys.stderr)
    call_command("migrate", verbosity=0)
    storage = Path(tempfile.mkdtemp(prefix="bench-activation-", dir=settings.VAR_DIR))
    settings.CDP_ACTIVATION_STORAGE = storage

    rows = []
    reset_activation()
    if not args.skip_generate:
        _, seconds, _ = timed(lambda: generate(args.n))
        print(f"generated {args.n:,} profiles (+ records, identities) in {seconds:.1f} s")

    if connection.vendor == "postgresql":
        # best of three: the machine is shared, the baseline should not be a slow outlier
        best = min(
            (timed(lambda: copy_baseline(storage / "baseline.csv")) for _ in range(3)),
            key=lambda t: t[1],
        )
        written, seconds, rss = best
        rows.append(("COPY TO (baseline, best of 3)", written, seconds, rss, ""))
        copy_rate = written / seconds
        written, seconds, rss = timed(
            lambda: copy_baseline(storage / "baseline2.csv", with_hmac=True)
        )
        rows.append(("COPY TO with the HMAC id column", written, seconds, rss, ""))
    else:
        copy_rate = None

    segment = make_segment()
    csv_dest = Destination.objects.create(name="bench csv", kind="file", folder="csv")
    activation = Activation.objects.create(
        segment=segment,
        name="bench full csv",
        destination=csv_dest,
        attributes=["first_name", "last_name", "country"],
        contact_point="email",
        mode=Activation.Mode.FULL,
    )
    run, seconds, rss = timed(lambda: activation_run(activation))
    write = run.timings["write"]
    rows.append(("activation full CSV: write", run.sent_count, write, rss, f"{run.timings}"))
    rows.append(("activation full CSV: + count, snapshot", run.sent_count, seconds, rss, ""))
    csv_size = resolve_export(run.file).stat().st_size
    best = None
    for _ in range(2):
        repeat, seconds, rss = timed(lambda: activation_run(activation))
        if best is None or repeat.timings["write"] < best[0].timings["write"]:
            best = (repeat, seconds, rss)
    repeat, seconds, rss = best
    rows.append(
        ("full CSV again (known ids): write", repeat.sent_count, repeat.timings["write"], rss, "")
    )
    rows.append(("full CSV again: whole run", repeat.sent_count, seconds, rss, f"{repeat.timings}"))

    # The same export behind a consent gate: everyone granted e-mail marketing two days ago,
    # every 10th person withdrew it yesterday (the newest decision counts).
    _, seconds, _ = timed(lambda: grant_consent())
    print(f"wrote consent records for {args.n:,} profiles in {seconds:.1f} s")
    gated_dest = Destination.objects.create(
        name="bench gated csv",
        kind="file",
        folder="gated",
        consent_purpose="email_marketing",
        consent_channel="email",
    )
    gated = Activation.objects.create(
        segment=segment,
        name="bench consent-gated csv",
        destination=gated_dest,
        attributes=["first_name", "last_name", "country"],
        contact_point="email",
        mode=Activation.Mode.FULL,
    )
    run, seconds, rss = timed(lambda: activation_run(gated))
    expected = args.n - args.n // 10
    if run.sent_count != expected or run.excluded.get("no_consent") != args.n // 10:
        raise SystemExit(f"consent gate: sent {run.sent_count}, excluded {run.excluded}")
    rows.append(
        (
            "consent-gated CSV (10% withdrawn): write",
            run.sent_count,
            run.timings["write"],
            rss,
            f"{run.timings}",
        )
    )
    rows.append(("consent-gated CSV: whole run", run.sent_count, seconds, rss, ""))

    jsonl_dest = Destination.objects.create(
        name="bench jsonl", kind="file", folder="jsonl", file_format="jsonl"
    )
    if args.csv_only:
        return report(args, rows, copy_rate, csv_size)
    jsonl = Activation.objects.create(
        segment=segment,
        name="bench full jsonl",
        destination=jsonl_dest,
        attributes=["first_name", "last_name", "country"],
        contact_point="email",
    )
    run, seconds, rss = timed(lambda: activation_run(jsonl))
    rows.append(("activation full JSONL (Python stream)", run.sent_count, seconds, rss, ""))

    changes = Activation.objects.create(
        segment=segment,
        name="bench changes",
        destination=csv_dest,
        attributes=["first_name", "last_name", "country"],
        contact_point="email",
        mode=Activation.Mode.CHANGES,
    )
    run, seconds, rss = timed(lambda: activation_run(changes))
    rows.append(("changes-only: first run (all added)", run.sent_count, seconds, rss, ""))
    sql("UPDATE profiles_profile SET first_name = first_name || 'x' WHERE id %% 100 = 0")
    run, seconds, rss = timed(lambda: activation_run(changes))
    rows.append(
        (
            f"changes-only: 1% changed ({run.updated_count:,} updated)",
            run.sent_count,
            seconds,
            rss,
            "",
        )
    )

    report(args, rows, copy_rate, csv_size)


def report(args, rows, copy_rate, csv_size) -> None:
    print()
    print(f"database: {connection.vendor}, N = {args.n:,}, CSV file {csv_size / 1e6:.1f} MB")
    print(f"{'step':<44} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'vs COPY':>8} {'RSS Δ MB':>9}")
    for label, count, secs, rss, _ in rows:
        rate = count / secs if secs else 0
        ratio = f"{rate / copy_rate:.2f}" if copy_rate else "-"
        print(f"{label:<44} {count:>10,} {secs:>8.2f} {rate:>10,.0f} {ratio:>8} {rss:>9.1f}")
    print(f"peak RSS of the process: {peak_rss_mb():.0f} MB")
    for label, *_rest, extra in rows:
        if extra:
            print(f"{label} phases (s): {extra}")


if __name__ == "__main__":
    main()
